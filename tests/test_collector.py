"""The cycle collector set for a batch (``elig.batch_gc``, ``elig/engine/collector.py``).

What a user relies on: the block changes only when cycles are collected, never what an
evaluation decides or explains; the process's settings are back as they were when the
block ends, however it ends; a batch of ``elig screen`` runs with it and gives the same rows.
"""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

import elig
from elig.commands import screen as screening
from elig.commands.screen import screen
from elig.engine import collector
from elig.engine.collector import BATCH_THRESHOLD, batch_gc, set_for_worker
from elig.report import render_json

from conftest import SYNTHEA_DIR

ROOT = Path(__file__).resolve().parent.parent
PROTOCOL = ROOT / "protocols" / "NCT06021067.elig"
EXAMPLES = sorted((ROOT / "examples" / "patients").glob("*.yaml"))


@pytest.fixture
def fresh_collector():
    """Each test starts from the interpreter's settings and leaves them so, whatever it does."""
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0, "a test before this one left objects frozen"
    yield before
    gc.unfreeze()
    gc.set_threshold(*before)


def test_block_freezes_what_was_loaded_and_collects_less_often(fresh_collector):
    with batch_gc():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (BATCH_THRESHOLD, *fresh_collector[1:])
    assert gc.get_threshold() == fresh_collector
    assert gc.get_freeze_count() == 0


def test_settings_come_back_when_the_block_raises(fresh_collector):
    with pytest.raises(RuntimeError, match="stopped"):
        with batch_gc():
            raise RuntimeError("stopped")
    assert gc.get_threshold() == fresh_collector
    assert gc.get_freeze_count() == 0


@pytest.fixture
def freezes(monkeypatch):
    """Every gc.freeze and gc.unfreeze the collector module makes, in order (the count of frozen
    objects itself falls whenever a frozen object is freed, so it cannot say who froze what)."""
    calls = []
    real_freeze, real_unfreeze = gc.freeze, gc.unfreeze
    monkeypatch.setattr(collector.gc, "freeze", lambda: (calls.append("freeze"), real_freeze())[1])
    monkeypatch.setattr(collector.gc, "unfreeze", lambda: (calls.append("unfreeze"), real_unfreeze())[1])
    return calls


def test_inner_block_leaves_the_outer_blocks_settings(fresh_collector, freezes):
    with batch_gc():
        with batch_gc():
            assert freezes == ["freeze"]
        assert freezes == ["freeze"]
        assert gc.get_threshold()[0] == BATCH_THRESHOLD
        assert gc.get_freeze_count() > 0
    assert freezes == ["freeze", "unfreeze"]
    assert gc.get_threshold() == fresh_collector
    assert gc.get_freeze_count() == 0


def test_objects_frozen_by_the_caller_stay_frozen(fresh_collector, freezes):
    gc.freeze()  # the caller's own (gc is one module: the spy sees it too)
    del freezes[:]
    with batch_gc():
        assert gc.get_threshold()[0] == BATCH_THRESHOLD
    assert freezes == []
    assert gc.get_freeze_count() > 0


def test_a_lower_threshold_is_not_applied(fresh_collector):
    gc.set_threshold(100_000, *fresh_collector[1:])
    with batch_gc(threshold=10_000):
        assert gc.get_threshold()[0] == 100_000
    assert gc.get_threshold()[0] == 100_000


def test_a_threshold_that_is_not_positive_is_refused(fresh_collector):
    with pytest.raises(ValueError, match="positive number of objects, not 0"):
        with batch_gc(threshold=0):
            pass
    assert gc.get_threshold() == fresh_collector


def test_a_worker_sets_the_collector_for_its_whole_life(fresh_collector, freezes):
    set_for_worker()
    assert freezes == ["freeze"]
    assert gc.get_threshold() == (BATCH_THRESHOLD, *fresh_collector[1:])
    assert gc.get_freeze_count() > 0


def test_a_threshold_that_is_not_positive_is_refused_by_a_worker_too(fresh_collector):
    with pytest.raises(ValueError, match="positive number of objects, not -1"):
        set_for_worker(-1)
    assert gc.get_threshold() == fresh_collector and gc.get_freeze_count() == 0


def test_a_pool_worker_sets_the_collector_when_it_starts(fresh_collector, monkeypatch):
    # elig screen --jobs N starts each worker through this initializer
    monkeypatch.setattr(screening, "_WORKER", None)
    screening._init_worker(str(PROTOCOL), None, str(PROTOCOL), None, False, None)
    assert screening._WORKER is not None
    assert gc.get_threshold()[0] == BATCH_THRESHOLD and gc.get_freeze_count() > 0


def _explanations(protocol, records):
    return [render_json(elig.evaluate(protocol, record, "2024-03-15")) for record in records]


def test_explanations_are_the_same_inside_the_block(fresh_collector):
    protocol = elig.load_protocol(PROTOCOL)
    records = [elig.load_patient(p) for p in EXAMPLES] + [elig.load_patient(p) for p in sorted(SYNTHEA_DIR.glob("*.json"))]
    assert len(records) > len(EXAMPLES), f"no Synthea bundles found in {SYNTHEA_DIR}"
    outside = _explanations(protocol, records)
    with batch_gc():
        inside = _explanations(protocol, records)
    assert inside == outside


def test_screen_runs_its_batch_with_the_collector_set_and_puts_it_back(fresh_collector):
    protocol = elig.load_protocol(PROTOCOL)
    seen = []
    rows = []
    for row in screen(protocol, [str(p) for p in EXAMPLES], "2024-03-15"):
        seen.append((gc.get_threshold()[0], gc.get_freeze_count() > 0))
        rows.append(row)
    assert seen == [(BATCH_THRESHOLD, True)] * len(EXAMPLES)
    assert gc.get_threshold() == fresh_collector and gc.get_freeze_count() == 0
    # the same verdicts as patient by patient with the collector untouched
    expected = [str(elig.evaluate(protocol, elig.load_patient(p), "2024-03-15").verdict) for p in EXAMPLES]
    assert [row.verdict for row in rows] == expected


def test_a_screen_left_unfinished_puts_the_settings_back_when_closed(fresh_collector):
    rows = screen(elig.load_protocol(PROTOCOL), [str(p) for p in EXAMPLES], "2024-03-15")
    next(rows)
    assert gc.get_threshold()[0] == BATCH_THRESHOLD
    rows.close()
    assert gc.get_threshold() == fresh_collector and gc.get_freeze_count() == 0
