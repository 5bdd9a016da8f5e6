"""The GPU benchmark's small real version on CPU: bundle model, PyTorch Triton model, gateways.

The full run needs a lent GPU (bench/gpu/run.sh); this runs the same code path with torch on
the CPU, a real Triton serving the PyTorch python-backend model and two gateway processes.
"""

from __future__ import annotations

import json

import pytest

from bench.gpu import bundle
from bench.gpu import run as gpu_run


@pytest.fixture(scope="module")
def small_bundle(tmp_path_factory, exported_repo, data_dir):
    out = tmp_path_factory.mktemp("gpu-bundle")
    bundle.pack_repo(out, exported_repo)
    rows = bundle.pack_model(out, data_dir)
    assert 1000 < rows < 20000  # the rows the test texts use, not the 30k vocabulary
    return out


def test_bundle_rebuilds_the_committed_model_exactly_for_its_texts(small_bundle):
    import torch

    from bench.gpu.torch_model import build, pad

    model = build(gpu_run.ARTIFACT, small_bundle / "model", "fp32", "cpu")
    texts = json.loads((small_bundle / "texts.json").read_text())
    from emotionaware.tokenization import TextTokenizer

    tokenizer = TextTokenizer(small_bundle / "model" / "tokenizer.json", 128)
    encoded = [tokenizer.encode(t).input_ids for t in texts[:8]]
    check = gpu_run.parity(
        model,
        encoded,
        json.loads((small_bundle / "model" / "reference.json").read_text())["logits"][:8],
        "cpu",
    )
    assert check["max_abs_logit_diff"] < 1e-3 and check["argmax_agreement"] == 1.0
    ids, mask = pad(encoded[:2])
    assert ids.shape[0] == 2 and torch.equal(mask.sum(1), torch.tensor([len(e) for e in encoded[:2]]))


def test_gpu_benchmark_runs_end_to_end_on_cpu(small_bundle, tmp_path):
    out = tmp_path / "results"
    gpu_run.main([
        "--bundle", str(small_bundle), "--device", "cpu", "--dtypes", "fp32", "--texts", "96", "--seconds", "2",
        "--ceiling-batch", "32", "--max-batch", "32", "--instances", "1", "--pa-concurrency", "2",
        "--gateways", "1,2", "--unary-concurrency", "4", "--batch-concurrency", "1",
        "--out", str(out), "--work", str(tmp_path / "work"),
    ])  # fmt: skip
    report = json.loads(next(out.glob("*-gpu-cpu.json")).read_text())
    paths = [r["path"] for r in report["rows"]]
    assert paths[0] == "perf_analyzer -> Triton"
    assert "gateway unary, 2 process(es)" in paths and "gateway ClassifyBatch(64), 1 process(es)" in paths
    for row in report["rows"]:
        assert row["texts_per_s"] > 0 and row["errors"] == {}, row
    assert report["parity"]["fp32"]["argmax_agreement"] == 1.0
    assert "Target (served through the gateway" in next(out.glob("*-gpu-cpu.md")).read_text()
