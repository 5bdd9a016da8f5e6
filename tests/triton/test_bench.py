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


def test_soak_short_form_reports_what_the_gateway_counted(exported_repo, data_dir, tmp_path):
    """A short real soak (make soak runs 10 minutes): its own Triton and gateway, the report files,
    and each refusal the client saw counted by the gateway under one of its reasons."""
    import json

    from bench import soak

    soak.main(["--model-repository", str(exported_repo), "--data-dir", str(data_dir), "--minutes", "0.35",
               "--peak-seconds", "3", "--out", str(tmp_path)])  # fmt: skip
    (report_path,) = tmp_path.glob("*-soak.json")
    report = json.loads(report_path.read_text())
    assert report["peak_texts_per_s"] > 0 and report["peak_end_texts_per_s"] > 0
    assert report["load"]["texts"] > 0
    assert [t for t, _ in report["errors_per_window"]] == [10, 20]  # one row per 10 s tick
    errors = report["load"]["errors"]
    assert set(errors) <= {"RESOURCE_EXHAUSTED"}, errors
    assert set(report["refused_by_reason"]) <= {"queue_full", "queue_time", "queue_age", "deadline"}
    assert sum(report["refused_by_reason"].values()) == errors.get("RESOURCE_EXHAUSTED", 0)
    assert sum(e for _, e in report["errors_per_window"]) <= sum(errors.values())
    assert report_path.with_suffix(".md").read_text().startswith("# Gateway memory soak")


async def test_analyze_cost_table_on_the_session_gateway(gateway_target, data_dir, capsys):
    from bench import sentences

    texts = sentences.messages(data_dir, 24)
    rows = await sentences.measure(gateway_target.listen, texts, 4)
    assert [r.calls for r in rows[:2]] == [24, 24] and rows[2].calls == rows[1].sentences > 24
    table = sentences.table(rows)
    assert "| Analyze, whole text | 24 |" in table and "x |" in table
