"""gateway.collector: the young generation's threshold, frozen start-up objects, measured pauses."""

from __future__ import annotations

import gc

import pytest
from prometheus_client import REGISTRY

from gateway import collector


def _pauses(generation: int) -> float:
    return (
        REGISTRY.get_sample_value("emotionaware_gc_pause_seconds_count", {"generation": str(generation)})
        or 0.0
    )


@pytest.fixture(autouse=True)
def restore_gc():
    threshold, callbacks, frozen = gc.get_threshold(), list(gc.callbacks), collector._frozen[0]
    yield
    gc.set_threshold(*threshold)
    gc.callbacks[:] = callbacks
    gc.unfreeze()
    collector._frozen[0] = frozen


def test_tune_sets_the_young_threshold_keeps_the_older_ones_and_measures_each_pause():
    _, older, oldest = gc.get_threshold()
    collector.tune(12_345)
    collector.tune(12_345)  # a second server in the process: one callback still
    assert gc.get_threshold() == (12_345, older, oldest)
    assert gc.callbacks.count(collector._observe) == 1
    before = _pauses(2)
    gc.collect()
    assert _pauses(2) == before + 1
    collector.tune(0)  # 0 keeps Python's threshold
    assert gc.get_threshold()[0] == 12_345


def test_freeze_once_leaves_start_up_objects_out_of_collections_once_per_process():
    collector._frozen[0] = False
    gc.unfreeze()
    collector.tune(0)
    collector.freeze_once()
    frozen, collections = gc.get_freeze_count(), _pauses(2)
    assert frozen > 1000  # the test process's modules, at least
    collector.freeze_once()  # a later server, or serving again after Triton came back
    assert _pauses(2) == collections  # no second full collection
    collector.freeze()  # the sentencizer loaded: its objects too (frozen ones may have been freed)
    assert _pauses(2) == collections + 1 and gc.get_freeze_count() > 1000
