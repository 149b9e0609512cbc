"""What the explaining evaluator works out once per protocol and distinct value, not once per patient.

A ``Memo`` belongs to one ``CheckedProtocol`` (never module-global): the concepts a
distinct (kind, codes, name) of a record entry means, and how a distinct recorded
unit reads for a concept. Every entry depends only on the protocol's vocabulary and
unit resolver and on its key, so a cached answer is the answer the evaluator would
compute again. Each table is bounded: past ``LIMIT`` distinct keys it starts again
empty, so a stream of ever-new codes or units cannot grow it without end.
"""

from __future__ import annotations

LIMIT = 50_000


class Memo:
    """Caches of one checked protocol, shared by every evaluation of it."""

    __slots__ = ("concepts", "display_only", "units", "explanations")

    def __init__(self) -> None:
        # (kind, codes, concept name, category codes) -> the concepts the entry means (index.concepts_of)
        self.concepts: dict = {}
        # codes -> (coding, concept) whose display names a concept the code is not in, or None
        self.display_only: dict = {}
        # (recorded unit, unit as read, concept name) -> measure.UnitReading
        self.units: dict = {}
        # plan-node keys -> explanations that depend on nothing of the patient but the key
        self.explanations: dict = {}

    @staticmethod
    def put(table: dict, key, value):
        """Store ``value`` under ``key`` (emptying the table first when it is full); return ``value``."""
        if len(table) >= LIMIT:
            table.clear()
        table[key] = value
        return value
