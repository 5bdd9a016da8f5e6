"""Golden scores: the served graphs answer on this CPU what the committed golden scores say.

`make golden` wrote ``models/<name>/golden.json`` on one machine; this runs the same 500 texts
per model through the session's Triton and gateway, on whatever CPU runs CI (Intel with
AVX-512/VNNI or AMD with AVX2 only), and compares every label's score and the predicted sets.
"""

from __future__ import annotations

import pytest

from launcher import golden


@pytest.mark.parametrize("model", golden.MODELS)
async def test_served_scores_match_the_committed_golden_scores(stub, data_dir, model):
    committed = golden.load(model)
    assert committed.weights == golden.weights_digest(model), (
        f"models/{model}/golden.json was made for other weights; run `make golden` after a model changes"
    )
    texts = golden.inputs(model, data_dir)
    served = await golden.score(stub, model, texts, committed.labels)
    result = golden.compare(committed, texts, served)
    print(f"\nhere: {golden.cpu_name()}; golden made on: {committed.made_on}")
    print("\n".join([*golden.HEADER, result.row()]))
    assert result.texts == golden.SIZE
    assert result.max_diff <= golden.TOLERANCE, result.row()
    assert not result.flipped, result.row()
    # Thresholds are part of the model: the served ones are the committed ones (stored to 8 places).
    committed_thresholds = committed.served[0].thresholds
    assert all(
        max(abs(a - b) for a, b in zip(s.thresholds, committed_thresholds, strict=True)) <= 1e-7
        for s in served
    )
