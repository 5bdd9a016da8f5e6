"""Retries with jittered exponential back-off, bounded in attempts and in time.

Only UNAVAILABLE and RESOURCE_EXHAUSTED are retried (by default); every other code, such as
INVALID_ARGUMENT, is raised at once. A RESOURCE_EXHAUSTED that carries the server's
``retry-after-ms`` trailer is retried no sooner than that. Every attempt runs within the
call's one deadline: the client never sleeps past it, and gives up with the last error when
the next attempt could not start before it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import grpc

from emotionaware_client.errors import EmotionAwareError

__all__ = ["RetryEvent", "RetryPolicy"]

T = TypeVar("T")

#: Least time left for an attempt to be worth starting, in seconds.
MIN_ATTEMPT_S = 0.005


@dataclass(frozen=True)
class RetryEvent:
    """What :attr:`RetryPolicy.on_retry` is told before each back-off sleep."""

    attempt: int
    """The attempt that failed, 1-based."""
    error: EmotionAwareError
    """Its error."""
    delay_s: float
    """How long the client sleeps before the next attempt."""


@dataclass(frozen=True)
class RetryPolicy:
    """How failed calls are retried.

    The delay before retry ``n`` (1-based) is drawn uniformly from
    ``[(1 - jitter) * b, b]`` where ``b = min(max_backoff_s, initial_backoff_s * multiplier ** (n - 1))``,
    then raised to the server's ``retry-after-ms`` when it sent one. ``RetryPolicy.none()``
    disables retries.
    """

    max_attempts: int = 5
    """Most attempts per call, the first included (1: no retries)."""
    initial_backoff_s: float = 0.1
    """Back-off before the first retry."""
    max_backoff_s: float = 5.0
    """Largest back-off between two attempts (the server's retry-after may ask for more)."""
    multiplier: float = 2.0
    """Growth of the back-off per retry."""
    jitter: float = 0.5
    """Fraction of the back-off drawn at random (0: none; 1: full jitter)."""
    max_total_s: float | None = None
    """Most time a call may take across attempts and sleeps (None: the call's deadline only)."""
    retry_codes: frozenset[grpc.StatusCode] = field(
        default=frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
    )
    """Codes that are retried."""
    on_retry: Callable[[RetryEvent], None] | None = field(default=None, compare=False)
    """Called before each back-off sleep (logging, metrics, tests)."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff_s < 0 or self.max_backoff_s < 0 or self.multiplier < 1:
            raise ValueError("back-offs must not be negative and multiplier must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be in [0, 1]")

    @classmethod
    def none(cls) -> RetryPolicy:
        """A policy that never retries."""
        return cls(max_attempts=1)

    def retryable(self, error: EmotionAwareError) -> bool:
        """Whether ``error`` is of a code this policy retries."""
        return error.code in self.retry_codes

    def backoff_s(
        self, retry: int, retry_after_ms: int | None = None, rng: random.Random | None = None
    ) -> float:
        """Seconds to sleep before retry number ``retry`` (1-based), at least ``retry_after_ms``."""
        base = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (retry - 1))
        draw = (rng or random).random()
        delay = base * (1 - self.jitter * draw)
        if retry_after_ms is not None and retry_after_ms > 0:
            delay = max(delay, retry_after_ms / 1000)
        return delay


class _Budget:
    """The end of a call's time: its deadline, and the policy's max_total_s."""

    def __init__(self, timeout_s: float | None, policy: RetryPolicy, clock: Callable[[], float]) -> None:
        self.clock = clock
        start = clock()
        limits = [t for t in (timeout_s, policy.max_total_s) if t is not None]
        self.end = start + min(limits) if limits else None

    def remaining(self) -> float | None:
        return None if self.end is None else self.end - self.clock()


def _next_delay(
    policy: RetryPolicy, attempt: int, error: EmotionAwareError, budget: _Budget, rng: random.Random | None
) -> float | None:
    """Seconds to sleep before the next attempt, or None to give up with ``error``."""
    if attempt >= policy.max_attempts or not policy.retryable(error):
        return None
    delay = policy.backoff_s(attempt, error.retry_after_ms, rng)
    remaining = budget.remaining()
    if remaining is not None and delay + MIN_ATTEMPT_S > remaining:
        return None  # the next attempt could not start within the deadline
    if policy.on_retry is not None:
        policy.on_retry(RetryEvent(attempt, error, delay))
    return delay


def call_with_retry(
    attempt: Callable[[float | None], T],
    policy: RetryPolicy,
    timeout_s: float | None,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> T:
    """Run ``attempt(time_left_s)`` until it succeeds, retrying per ``policy`` within ``timeout_s``.

    ``attempt`` raises :class:`EmotionAwareError` on failure; the last one is re-raised.
    """
    budget = _Budget(timeout_s, policy, clock)
    number = 0
    while True:
        number += 1
        try:
            return attempt(budget.remaining())
        except EmotionAwareError as error:
            delay = _next_delay(policy, number, error, budget, rng)
            if delay is None:
                raise
        sleep(delay)


async def call_with_retry_async(
    attempt: Callable[[float | None], Awaitable[T]],
    policy: RetryPolicy,
    timeout_s: float | None,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
) -> T:
    """The asyncio form of :func:`call_with_retry`."""
    budget = _Budget(timeout_s, policy, clock)
    number = 0
    while True:
        number += 1
        try:
            return await attempt(budget.remaining())
        except EmotionAwareError as error:
            delay = _next_delay(policy, number, error, budget, rng)
            if delay is None:
                raise
        await sleep(delay)
