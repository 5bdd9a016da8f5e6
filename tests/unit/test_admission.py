"""The cost model and the calibration admission uses (no server)."""

from __future__ import annotations

import random

import pytest

from gateway import admission
from gateway.admission import SLACK_S, Calibration, CostModel


def test_the_cost_model_fits_a_fixed_cost_per_batch_and_a_cost_per_token():
    rng = random.Random(1)
    model = CostModel()
    for _ in range(400):
        tokens = rng.randrange(20, 2000)
        model.add(tokens, 0.004 + 0.0002 * tokens + rng.gauss(0, 0.0005))
    assert model.a == pytest.approx(0.004, abs=0.001)
    assert model.b == pytest.approx(0.0002, rel=0.05)
    # A queue of 640 texts of 25 tokens is 10 full batches, not 640 batches of one.
    assert model.drain_s(640, 16_000, 64, 8192) == pytest.approx(10 * 0.004 + 16_000 * 0.0002, rel=0.05)


def test_batches_of_one_size_price_every_token_the_same():
    model = CostModel()
    for _ in range(20):
        model.add(100, 0.05)
    assert (model.a, model.b) == (0.0, pytest.approx(0.0005))


def test_the_cost_model_follows_a_backend_that_slows():
    model = CostModel()
    for tokens in range(100, 1100, 10):
        model.add(tokens, 0.001 * tokens)
    for tokens in range(100, 500, 10):
        model.add(tokens, 0.003 * tokens)  # a neighbour took the CPU
    assert model.batch_s(300) > 0.7


def test_calibration_is_a_high_quantile_of_actual_over_estimated():
    calibration = Calibration(budget_s=0.5)
    assert calibration.scale(0.1, now=0.0) == pytest.approx(0.1 + SLACK_S)  # nothing seen yet
    for i in range(512):
        took = 0.12 * (2.0 if i % 10 == 0 else 1.0)  # one answer in ten twice as slow
        calibration.add(0.1, took, waited_s=0.0, now=0.0)
    assert calibration.factor == pytest.approx(0.24 / 0.12, rel=0.01)


def test_late_answers_raise_the_estimates_and_time_brings_them_back():
    calibration = Calibration(budget_s=0.5)
    calibration.add(0.1, 0.3, waited_s=0.0, now=10.0)  # within 90% of the budget: not late
    assert calibration.tail(10.0) == 1.0
    for i in range(20):
        calibration.add(0.1, 0.3, waited_s=0.2, now=10.0 + i * 0.1)  # 0.5 s in all: late
    assert calibration.tail(12.0) == pytest.approx(2.0, rel=0.05)  # at most twice
    three_constants = 12.0 + 3 * admission._RECOVERY_S
    assert calibration.tail(three_constants) == pytest.approx(1.0, abs=0.06)


def test_late_answers_of_one_batch_count_once():
    calibration = Calibration(budget_s=0.5)
    for _ in range(30):
        calibration.add(0.1, 0.6, waited_s=0.0, now=5.0)
    assert calibration.tail(5.0) == pytest.approx(admission._LATE_STEP)
