"""The benchmark report's verdicts and its choice of the previous run (no measurement here)."""

import json

from bench.run import latest_results, targets


def _row(group, label, concurrency, texts_per_s, x_pipeline, x_ceiling, p50=1.0, p99=2.0):
    return {"group": group, "label": label, "concurrency": concurrency, "texts_per_s": texts_per_s,
            "x_pipeline": x_pipeline, "x_ceiling": x_ceiling, "p50_ms": p50, "p99_ms": p99}  # fmt: skip


def test_targets_take_the_best_level_and_say_by_how_much_they_are_missed():
    report = {"rows": [
        _row("gateway unary", "c1", 1, 200, 1.0, 0.25, p50=4.0, p99=16.5),
        _row("gateway unary", "c64", 64, 640, 3.2, 0.72),
        _row("gateway ClassifyBatch(64)", "c4", 4, 720, 3.6, 0.9),
    ]}  # fmt: skip
    verdicts = {t["name"].split(" (")[0]: t["verdict"] for t in targets(report)}
    assert verdicts["unary texts/s x pipeline"] == "met"
    assert verdicts["unary texts/s x ceiling"] == "missed by 10%"  # 0.72 against 0.8
    assert verdicts["ClassifyBatch(64) texts/s x ceiling"] == "met"  # 0.9 is the goal itself
    assert verdicts["unary c1 p50 ms"] == "met"
    assert verdicts["unary c1 p99 ms"] == "missed by 10%"  # 16.5 against 15
    assert "best: c64" in targets(report)[0]["name"]


def test_the_previous_run_is_this_hosts_latest_by_its_recorded_date(tmp_path):
    def write(name, host, date, rows=True):
        body = {"machine": {"host": host}, "date": date} | ({"rows": []} if rows else {})
        (tmp_path / name).write_text(json.dumps(body))

    write("2026-01-02-vm.json", "vm", "2026-01-02 10:00")
    write("2026-01-02-vm-rerun.json", "vm", "2026-01-02 11:30")
    write("2026-01-03-vm-soak.json", "vm", "2026-01-03 09:00", rows=False)  # not a make perf run
    write("2026-01-05-other.json", "other", "2026-01-05 09:00")
    assert latest_results(tmp_path, "vm").name == "2026-01-02-vm-rerun.json"
    assert latest_results(tmp_path, "nobody") is None
