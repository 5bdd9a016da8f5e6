"""The arithmetic of `make overload`'s report: shares against the capacity beside each row,
and the ceiling an open loop can reach on a host whose CPUs the load generator shares."""

from __future__ import annotations

import math

import pytest

from bench import admission
from bench.admission import Floor, Outcome, Sweep


def _sweep(**kw) -> Sweep:
    rows = [
        ("unary", "c16", Outcome("a", seconds=10, texts=1500)),
        ("unary", "open 4x", Outcome("b", seconds=10, texts=800)),
    ]
    return Sweep({"unary": 200.0}, rows, **kw)


def test_a_share_is_against_the_capacity_measured_beside_its_row():
    sweep = _sweep(beside=[150.0, 160.0])
    assert sweep.share(0) == pytest.approx(150 / 150)
    assert sweep.share(1) == pytest.approx(80 / 160)
    assert _sweep().share(0) == pytest.approx(150 / 200)  # no measure beside: the first one


def test_the_ceiling_is_the_cpu_left_for_answers_over_what_answers_cost():
    # 2 CPUs; the load generator 0.5 and the refusing server 0.6 cores at 4x; answering at
    # capacity took 1.75 cores. Answering a share s costs 1.75 s, refusing the rest
    # 0.6 (1 - s / 4): s <= (2 - 0.5 - 0.6) / (1.75 - 0.15).
    sweep = _sweep(capacity_cores=1.75, floor=Floor(rate=800, server_cores=0.6, client_cores=0.5))
    ceiling = sweep.ceiling(4, cpus=2)
    assert ceiling == pytest.approx(0.9 / 1.6)
    used = ceiling * 1.75 + 0.6 * (1 - ceiling / 4) + 0.5
    assert used == pytest.approx(2.0)  # exactly the host's CPUs at the ceiling
    assert sweep.ceiling(4, cpus=16) == 1.0  # bounded: never more than capacity
    assert _sweep().ceiling(4, cpus=2) == 1.0  # no floor measured: no bound claimed
    assert not math.isnan(ceiling)


def test_targets_say_when_the_host_cannot_reach_the_open_loop_goal():
    sweep = _sweep(beside=[150.0, 160.0], capacity_cores=1.75, floor=Floor(800, 0.6, 0.5))
    met = dict(admission.targets(sweep=sweep, cpus=2))
    assert met["unary open 4x: answers >= 0.9 of capacity (0.50)"] is False
    assert met["unary open 4x: 0.9 of capacity within what this host allows (at most 0.56)"] is False
    assert met["unary c16: answers >= 0.9 of capacity (1.00)"] is True


def test_no_ceiling_is_claimed_when_refusing_costs_more_than_answering():
    # A degenerate measure (the floor server busier than the service at capacity) bounds nothing.
    sweep = _sweep(capacity_cores=0.1, floor=Floor(800, 0.6, 0.5))
    assert sweep.ceiling(4, cpus=2) == 1.0
