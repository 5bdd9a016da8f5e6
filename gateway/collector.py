"""Python's garbage collector, tuned for a server and measured.

A full (oldest-generation) collection walks every container object the process holds (the
tokenizers, the protobuf descriptors, spaCy) on the event loop, and every answer in flight waits
for it: the tail that admission then keeps the queue short for. So:

- :func:`freeze` moves what start-up built into the permanent generation, which collections skip
  (once the gateway serves, and again when the sentencizer has loaded: one full collection each,
  tens of milliseconds, once per process);
- :func:`tune` sets how many allocations the young generation takes before a collection;
- every collection's pause is observed in ``emotionaware_gc_pause_seconds{generation}``.
"""

from __future__ import annotations

import gc
import logging
import time

from gateway.metrics import GC_PAUSE

log = logging.getLogger(__name__)
_started = [0.0]
_frozen = [False]
_pauses = [GC_PAUSE.labels(str(g)) for g in range(3)]


def _observe(phase: str, info: dict) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
    else:
        _pauses[info["generation"]].observe(time.perf_counter() - _started[0])


def tune(young_threshold: int) -> None:
    """Collect the young generation every ``young_threshold`` allocations (0: Python's default),
    and measure every pause. Older generations keep Python's ratios."""
    if young_threshold:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(young_threshold, older, oldest)
    if _observe not in gc.callbacks:
        gc.callbacks.append(_observe)


def freeze() -> None:
    """Collect once, then leave everything alive now out of every later collection."""
    gc.collect()
    gc.freeze()
    _frozen[0] = True
    log.info("garbage collection: %d objects frozen", gc.get_freeze_count())


def freeze_once() -> None:
    """:func:`freeze`, the first time a gateway of this process serves (start-up is done)."""
    if not _frozen[0]:
        freeze()
