"""Python's cycle collector, set for a batch of evaluations while the batch runs.

Evaluating builds many small objects (records, explanations, the values they show) and
hardly any reference cycles: nearly everything is freed by reference counting the moment
it is no longer used. CPython's cycle collector does not know that. With its default
settings it runs a young collection every 700 net new container objects and, every so
often, a full one that walks every object alive: the vocabulary, the unit registry, the
parsed grammar, the reader's memos of dates and codes, and whatever the caller keeps
(a batch of records, the results it is writing). A caller that keeps a batch of 500
explained results alive, as a report writer does, pays for it: on the organ-function
benchmark about half of the explaining evaluator's time went to collections, most of it to
full collections walking the same long-lived objects again (``docs/performance.md``).

``batch_gc()`` sets the collector for a batch and puts it back afterwards:

- the objects alive when the batch starts (the protocol, vocabulary, unit registry,
  grammar: everything loaded before the first patient) are moved out of the collector's
  reach with ``gc.freeze()``, so a full collection walks only what the batch made;
- the young generation's threshold is raised (200,000 net new containers, from 700), so
  a young collection runs rarely, and when it runs it finds the objects of a batch or
  two alive, not of many: the short-lived objects of one patient are freed by reference
  counting long before it. The threshold is kept well above what a batch keeps alive:
  500 explained patients of a 32-criterion protocol, with their records, are about
  85,000 container objects (34,000 the records, 52,000 the results), and a threshold of
  50,000 ran a young collection, walking most of them, for every batch of them.

It changes nothing an evaluation decides; only when memory that only the cycle collector
can free (cycles) is freed. Such cycles wait for at most one young collection, about
200,000 container objects. The settings are the process's own, so the block changes them
for every thread while it runs: it is meant for a batch that owns the process (``elig
screen``, a worker of a pool, a nightly job), not for a library call inside a server
that tunes its own collector. When something has already frozen objects
(``gc.get_freeze_count()``), or the collector is off, the block neither freezes nor
unfreezes: it does not take objects frozen by another out of the freeze. Blocks nest: an
inner block leaves the outer one's settings in place.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

#: Net new container objects between two young collections while a batch runs.
BATCH_THRESHOLD = 200_000


def _freeze_what_is_alive() -> None:
    """Collect what is garbage now (so that it is freed, not frozen), then freeze the rest."""
    gc.collect()
    gc.freeze()


def _raise_young_threshold(threshold: int) -> None:
    """Set the young generation's threshold to ``threshold`` if it is lower (never collect more often)."""
    if threshold < 1:
        raise ValueError(f"the collector's threshold must be a positive number of objects, not {threshold}")
    young, *older = gc.get_threshold()
    if threshold > young:
        gc.set_threshold(threshold, *older)


@contextlib.contextmanager
def batch_gc(threshold: int = BATCH_THRESHOLD) -> Iterator[None]:
    """Run the block with the cycle collector set for a batch of evaluations (see module).

    ``threshold`` is the young generation's threshold while the block runs; a threshold
    lower than the current one is not applied (the block only ever collects less often).
    """
    before = gc.get_threshold()
    _raise_young_threshold(threshold)
    # Freeze only when nothing else has (an outer block, a server of its own): unfreezing
    # afterwards would take the other's objects out of the freeze too.
    freeze = gc.get_freeze_count() == 0 and gc.isenabled()
    if freeze:
        _freeze_what_is_alive()
    try:
        yield
    finally:
        gc.set_threshold(*before)
        if freeze:
            gc.unfreeze()


def set_for_worker(threshold: int = BATCH_THRESHOLD) -> None:
    """Set the collector for the rest of a worker process's life (a pool's initializer calls it
    once the protocol is loaded): the worker only ever evaluates, so nothing is put back."""
    _raise_young_threshold(threshold)
    _freeze_what_is_alive()
