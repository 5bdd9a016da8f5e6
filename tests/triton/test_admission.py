"""Admission against the real `make serve` program (short forms of `make overload`).

The issue's ordinary loads are served without one refusal; closed loops keep their goodput
past capacity; a bulk job runs beside interactive callers without pushing them over the budget.
"""

from __future__ import annotations

import pytest

from bench import admission
from bench.reliability import Serve

BUDGET_MS = admission.BUDGET_MS


@pytest.fixture(scope="module")
def serve(exported_repo, tmp_path_factory):
    server = Serve(exported_repo, tmp_path_factory.mktemp("admission-logs"))
    yield server
    assert server.stop() == 0, server.log_path.read_text()[-3000:]


@pytest.fixture(scope="module")
def corpus(data_dir):
    return admission.corpus(data_dir)


def test_ordinary_loads_are_served_without_a_refusal(serve, corpus):
    outcomes = admission.run_cases(serve, corpus, seconds=5)
    print("\n".join(admission.cases_lines(outcomes)))
    stream, *bulk, callers = outcomes
    assert stream.texts == 200  # one stream written as fast as the client can: slowed, not refused
    assert [o.texts for o in bulk] == [8 * 32, 2 * 256, 2 * 256]
    assert callers.texts > 100
    for o in outcomes:
        assert o.refused == 0 and not o.errors and not o.reasons, o


def test_closed_loops_past_capacity_keep_their_goodput(serve, corpus):
    sweep = admission.run_sweep(
        serve, corpus, seconds=6, levels=(16, 256), batch_levels=(16,), factor=None, capacity_s=6, beside_s=3
    )
    print("\n".join(admission.sweep_lines(sweep)))
    rows = {(shape, level): (o, sweep.share(i)) for i, (shape, level, o) in enumerate(sweep.rows)}
    c16, _ = rows["unary", "c16"]
    assert c16.refused == 0 and not c16.errors  # within the budget: nothing refused
    # Callers that resend a refused call at once: the server paces them instead of spinning.
    # Goodput held, not collapsed (it was 0.36 of capacity before pacing). The long form (make
    # overload) reports the 0.9 goal; 6 s loads on a shared 2-CPU host move by a third between
    # runs, so this bound only separates held from collapsed.
    c256, share = rows["unary", "c256"]
    assert share >= 0.6 and not c256.errors
    assert admission.percentile(c256.served_ms, 99) <= 1.2 * BUDGET_MS  # accepted calls in the budget
    bulk, share = rows[f"batch {admission.BATCH}", "c16"]
    assert share >= 0.8 and bulk.refused == 0 and not bulk.errors


def test_a_bulk_job_beside_interactive_callers(serve, corpus):
    mixed = admission.run_mixed(serve, corpus, bulk_texts=2048, capacity_s=5)
    print("\n".join(admission.mixed_lines(mixed)))
    interactive, bulk = mixed.interactive, mixed.bulk
    assert bulk.texts == 2048 and bulk.refused == 0 and not bulk.errors
    assert not interactive.errors
    # Interactive calls at half the capacity beside a bulk job: in one fresh-clone run 7 of
    # 5,509 were refused (queue_time) while the answered ones had p99 264 ms, inside the 500 ms
    # budget: admission's calibrated estimate runs high for moments while a bulk batch is in
    # flight (issue 29, open). A handful is that; more would be the estimate failing.
    assert interactive.refused <= 0.005 * (interactive.texts + interactive.refused), interactive
    assert set(bulk.reasons) <= {"queue_time"}, bulk.reasons  # the whole mixed load's, by reason
    assert admission.percentile(interactive.served_ms, 99) <= BUDGET_MS
    # Bulk is served in the gaps, not starved. Its share of what the interactive load leaves was
    # 0.54 to 1.11 across runs on one 2-CPU host (0.57 in a fresh-clone CI run), where the load
    # generator takes its part of the same cores; the long form (make overload) reports the
    # share. Starving would be near zero, so this bound separates the two without timing the host.
    assert bulk.rate >= 0.4 * mixed.left
