"""What admission knows about a backend: the cost of a batch, and how far estimates are off.

Both are measured per model version while it serves (a ``conversation`` text with its
context costs several times a ``goemotions`` text, and a shared CPU changes both):

- :class:`CostModel`: the seconds one batch holds the backend, fitted as ``a + b * tokens``
  over recent batches. A queue of many texts is served in a few large batches, so its time
  is a few fixed costs plus its tokens, not one small batch's cost per token times all of
  them (which refused ordinary bursts).
- :class:`Calibration`: the ratio of what answers really took to what was estimated when
  they were admitted; admission scales estimates by a high quantile of it, so the budget
  holds for the tail of real answers rather than for the estimate's mean.
"""

from __future__ import annotations

import math

import numpy as np

# Weight of the newest batch in the cost model's moving moments (about 20 batches of memory:
# a backend that slows shows within a second under load).
_COST_SMOOTHING = 0.05
# The fitted per-token cost is kept within [this share, all] of the mean cost per token: at
# most this much of a batch's time is fixed overhead. Batches of nearly one size say little
# about the slope, and a slope near 0 would price a queue of long texts as a few free batches.
_LOWEST_TOKEN_SHARE = 0.3


class CostModel:
    """Seconds one batch of ``tokens`` padded tokens holds the backend: ``a + b * tokens``.

    Exponentially weighted least squares over recent batches; before any batch it knows
    nothing (:attr:`known` is False).
    """

    def __init__(self) -> None:
        self.batches = 0
        self._x = self._y = self._xx = self._xy = 0.0
        self.a = 0.0  # seconds per batch
        self.b = 0.0  # seconds per padded token

    @property
    def known(self) -> bool:
        return self.batches > 0

    def add(self, tokens: int, seconds: float) -> None:
        """One batch of ``tokens`` padded tokens held the backend for ``seconds``."""
        self.batches += 1
        w = max(_COST_SMOOTHING, 1.0 / self.batches)  # a plain mean until enough batches
        x, y = float(tokens), max(seconds, 0.0)
        self._x += w * (x - self._x)
        self._y += w * (y - self._y)
        self._xx += w * (x * x - self._xx)
        self._xy += w * (x * y - self._xy)
        mean_per_token = self._y / self._x if self._x > 0 else 0.0
        var = self._xx - self._x * self._x
        slope = (self._xy - self._x * self._y) / var if var > (0.05 * self._x) ** 2 else mean_per_token
        self.b = min(max(slope, _LOWEST_TOKEN_SHARE * mean_per_token), mean_per_token)
        self.a = max(self._y - self.b * self._x, 0.0)

    def batch_s(self, tokens: int) -> float:
        return self.a + self.b * tokens

    def drain_s(self, sequences: int, tokens: int, max_texts: int, token_budget: int) -> float:
        """Seconds to serve ``sequences`` of ``tokens`` in total, in the largest batches allowed."""
        if sequences <= 0:
            return 0.0
        batches = max(math.ceil(sequences / max_texts), math.ceil(tokens / token_budget))
        return batches * self.a + self.b * tokens


# Answers kept for the quantile, and how often it is recomputed.
_WINDOW = 512
_EVERY = 32
# The quantile of actual / estimated answer times that scales estimates: the budget is a
# p99, and the ratio's own p98 over a few hundred answers is that with less noise.
_QUANTILE = 98
# Added to each estimate before the ratio is taken (and when it is applied): the work around
# the backend (the event loop's turn, post-processing, serialization) is a few milliseconds
# whatever the queue, and a ratio of small estimates would blow it up.
SLACK_S = 0.02
# The correction is kept within these bounds: past them the cost model itself is wrong and
# the queue-head age (CoDel's signal) is the better guard.
_LOWEST, _HIGHEST = 0.5, 4.0


# Feedback on the tail itself: an interactive answer later than _LATE_SHARE of the budget
# (counted from the call's arrival, its wait for room included) multiplies the estimates by
# _LATE_STEP more, at most once per _LATE_EVERY_S (the late answers of one batch are one
# signal), up to _TAIL_HIGHEST; the multiplier decays back to 1 with a time constant of
# _RECOVERY_S. Below capacity no answer is late and it stays 1 (nothing is refused); at the
# onset of an overload the quantile above lags, and this follows within a second. Bounded low,
# since a queue kept too short makes small batches, and throughput falls with them.
_LATE_SHARE = 0.9
_LATE_STEP = 1.1
_LATE_EVERY_S = 0.05
_TAIL_HIGHEST = 2.0
_RECOVERY_S = 5.0


class Calibration:
    """Scales estimates to the answer times to expect: a high quantile of
    (actual answer time) / (estimate + slack) over recent answers (1.0 until :data:`_EVERY`
    answers have been seen), times a multiplier that late answers raise and time lowers."""

    def __init__(self, budget_s: float) -> None:
        self._ratios = np.ones(_WINDOW)
        self._seen = 0
        self.factor = 1.0
        self._late_after = budget_s * _LATE_SHARE
        self._tail = 1.0
        self._tail_at = 0.0

    def add(self, estimated_s: float, took_s: float, waited_s: float, now: float) -> None:
        """One answered interactive text: estimated at admission, ``took_s`` from admission to
        answer after ``waited_s`` waiting for room."""
        self._ratios[self._seen % _WINDOW] = took_s / (estimated_s + SLACK_S)
        self._seen += 1
        if self._seen % _EVERY == 0:
            window = self._ratios[: min(self._seen, _WINDOW)]
            self.factor = float(min(max(np.percentile(window, _QUANTILE), _LOWEST), _HIGHEST))
        late = self._late_after and waited_s + took_s > self._late_after
        if late and now - self._tail_at >= _LATE_EVERY_S:
            self._tail = min(self.tail(now) * _LATE_STEP, _TAIL_HIGHEST)
            self._tail_at = now

    def tail(self, now: float) -> float:
        """The late-answer multiplier now (1 when no answer came late for a while)."""
        if self._tail == 1.0:
            return 1.0
        return 1.0 + (self._tail - 1.0) * math.exp(-(now - self._tail_at) / _RECOVERY_S)

    def scale(self, estimated_s: float, now: float) -> float:
        """The answer time to expect (at the quantile) for an estimate of ``estimated_s``."""
        return (estimated_s + SLACK_S) * self.factor * self.tail(now)
