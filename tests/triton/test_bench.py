"""Small real runs of the benchmark's load generator and baselines (the full runs are make perf)."""

from __future__ import annotations

from bench import gateway_load, speed_baselines


async def test_load_generator_shapes_run_without_errors(gateway_target, data_dir):
    from emotionaware.datasets import load_goemotions, load_meld

    texts = [e.text for e in load_goemotions(data_dir).test[:200]]
    unary = await gateway_load.unary(gateway_target.listen, texts, 4, 1.0, warmup_s=0.2)
    batch = await gateway_load.batch(gateway_target.listen, texts, 1, 1.0, batch_size=16, warmup_s=0.2)
    dialogue = [(e.speaker, e.text) for e in load_meld(data_dir).test[:12]]
    stream = await gateway_load.stream(gateway_target.listen, [dialogue], 1, 1.0, window=2, warmup_s=0.2)
    paced = await gateway_load.paced(gateway_target.listen, texts, 50, 1.0)
    for result in (unary, batch, stream, paced):
        assert result.texts > 0 and result.errors == {}, result.summary()
        assert 0 < result.percentile(50) <= result.percentile(99)


def test_in_process_ceiling_baseline(exported_repo, data_dir):
    from emotionaware.datasets import load_goemotions

    texts = [e.text for e in load_goemotions(data_dir).test[:128]]
    ceiling = speed_baselines.ort_ceiling(texts, exported_repo, "goemotions", threads=2)
    assert ceiling.texts == 128 and ceiling.texts_per_s > 0
