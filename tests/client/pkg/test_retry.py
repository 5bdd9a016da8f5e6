"""Retry and back-off logic with a fake clock (runs in the client's dev venv, see tests/client/README)."""

from __future__ import annotations

import random

import grpc
import pytest
from emotionaware_client import (
    InvalidArgumentError,
    ResourceExhaustedError,
    RetryEvent,
    RetryPolicy,
    UnavailableError,
)
from emotionaware_client.retry import call_with_retry, call_with_retry_async

pytestmark = pytest.mark.unit


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)


def failing(errors: list[Exception], result: str = "ok", cost_s: float = 0.0, time: FakeTime | None = None):
    timeouts: list[float | None] = []

    def attempt(remaining: float | None) -> str:
        timeouts.append(remaining)
        if time is not None:
            time.now += cost_s
        if errors:
            raise errors.pop(0)
        return result

    attempt.timeouts = timeouts  # type: ignore[attr-defined]
    return attempt


def test_backoff_grows_exponentially_within_jitter_and_cap():
    policy = RetryPolicy(initial_backoff_s=0.1, multiplier=2, max_backoff_s=1.0, jitter=0.5)
    rng = random.Random(1)
    for retry, base in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        draws = [policy.backoff_s(retry, rng=rng) for _ in range(200)]
        assert all(base * 0.5 - 1e-9 <= d <= base + 1e-9 for d in draws)
        assert max(draws) - min(draws) > base * 0.3  # jittered, not constant


def test_retry_after_is_a_floor():
    policy = RetryPolicy(initial_backoff_s=0.01, jitter=1.0)
    assert all(policy.backoff_s(1, retry_after_ms=300) >= 0.3 for _ in range(100))
    assert RetryPolicy(initial_backoff_s=2.0, jitter=0).backoff_s(1, retry_after_ms=300) == 2.0


def test_unavailable_is_retried_until_success():
    time = FakeTime()
    attempt = failing([UnavailableError("down"), UnavailableError("down")])
    events: list[RetryEvent] = []
    policy = RetryPolicy(on_retry=events.append)
    assert call_with_retry(attempt, policy, 10.0, sleep=time.sleep, clock=time.clock) == "ok"
    assert [e.attempt for e in events] == [1, 2]
    assert time.sleeps == [e.delay_s for e in events]


def test_resource_exhausted_sleeps_at_least_retry_after():
    time = FakeTime()
    attempt = failing([ResourceExhaustedError("busy", retry_after_ms=750)])
    assert call_with_retry(attempt, RetryPolicy(), 10.0, sleep=time.sleep, clock=time.clock) == "ok"
    assert len(time.sleeps) == 1 and time.sleeps[0] >= 0.75


@pytest.mark.parametrize(
    "code",
    [
        c
        for c in grpc.StatusCode
        if c not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
    ],
)
def test_other_codes_are_never_retried(code):
    from emotionaware_client.errors import error_for

    time = FakeTime()
    attempt = failing([error_for(code, "no")])
    with pytest.raises(type(error_for(code, "no"))):
        call_with_retry(attempt, RetryPolicy(), 10.0, sleep=time.sleep, clock=time.clock)
    assert time.sleeps == [] and len(attempt.timeouts) == 1


def test_attempts_are_bounded():
    time = FakeTime()
    attempt = failing([UnavailableError(str(i)) for i in range(10)])
    with pytest.raises(UnavailableError, match="2"):
        call_with_retry(attempt, RetryPolicy(max_attempts=3), 100.0, sleep=time.sleep, clock=time.clock)
    assert len(attempt.timeouts) == 3 and len(time.sleeps) == 2


def test_attempts_share_one_deadline_and_never_sleep_past_it():
    time = FakeTime()
    attempt = failing([UnavailableError(str(i)) for i in range(100)], cost_s=0.2, time=time)
    policy = RetryPolicy(max_attempts=100, initial_backoff_s=0.1, jitter=0)
    with pytest.raises(UnavailableError):
        call_with_retry(attempt, policy, 2.0, sleep=time.sleep, clock=time.clock)
    assert time.now <= 2.0
    # each attempt was given what was left of the one deadline
    assert attempt.timeouts[0] == 2.0
    assert all(a > b for a, b in zip(attempt.timeouts, attempt.timeouts[1:], strict=False))


def test_retry_after_beyond_the_deadline_gives_up_at_once():
    time = FakeTime()
    attempt = failing([ResourceExhaustedError("busy", retry_after_ms=5000)])
    with pytest.raises(ResourceExhaustedError) as raised:
        call_with_retry(attempt, RetryPolicy(), 1.0, sleep=time.sleep, clock=time.clock)
    assert raised.value.retry_after_ms == 5000 and time.sleeps == []


def test_max_total_bounds_a_call_without_deadline():
    time = FakeTime()
    attempt = failing([UnavailableError(str(i)) for i in range(100)], cost_s=0.1, time=time)
    policy = RetryPolicy(max_attempts=100, max_total_s=1.0, initial_backoff_s=0.05, jitter=0)
    with pytest.raises(UnavailableError):
        call_with_retry(attempt, policy, None, sleep=time.sleep, clock=time.clock)
    assert time.now <= 1.0


def test_policy_none_and_validation():
    time = FakeTime()
    attempt = failing([UnavailableError("down")])
    with pytest.raises(UnavailableError):
        call_with_retry(attempt, RetryPolicy.none(), 10.0, sleep=time.sleep, clock=time.clock)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(jitter=2)


def test_invalid_argument_is_raised_with_its_message():
    time = FakeTime()
    attempt = failing([InvalidArgumentError("text: must hold a visible character")])
    with pytest.raises(InvalidArgumentError, match="text") as raised:
        call_with_retry(attempt, RetryPolicy(), 10.0, sleep=time.sleep, clock=time.clock)
    assert raised.value.code is grpc.StatusCode.INVALID_ARGUMENT


async def test_async_retry_honours_retry_after():
    time = FakeTime()

    async def attempt(remaining: float | None) -> str:
        if not time.sleeps:
            raise ResourceExhaustedError("busy", retry_after_ms=400)
        return "ok"

    result = await call_with_retry_async(attempt, RetryPolicy(), 5.0, sleep=time.asleep, clock=time.clock)
    assert result == "ok" and time.sleeps[0] >= 0.4
