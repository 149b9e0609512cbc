"""What the explaining evaluator works out once per protocol and distinct value, not once per patient.

A ``Memo`` belongs to one ``CheckedProtocol`` (never module-global) and holds:

- ``concepts``: the names of the concepts a distinct (kind, codes, name, category) of a record
  entry means (``index.index_record``);
- ``display_only``: for a distinct tuple of codes that means no concept, the concept its
  display names (reported in a note);
- ``readings``: how a distinct recorded unit reads for a concept (``measure.UnitReading``), per
  concept name and recorded unit;
- ``texts``: numbers as explanations print them (a conversion, a value beside its threshold),
  per distinct number and what it is printed with;
- ``nodes``: what one plan node's rule function works out once from the node alone (its unit,
  a plain threshold, the concepts of its events), per node;
- shared explanations: an explanation that depends on nothing of the patient but a key
  (an event rule with no matching record, an attestation not given, a logic rule over
  shared children) is built once and the same immutable object is returned again.

Every entry depends only on the protocol (its vocabulary, unit resolver, plan nodes) and
on its key, so a cached answer is the answer the evaluator would compute again. Shared
explanations are stored with the objects their key names (``parts``) and returned only
when those are the very same objects, so an ``id`` reused after an object is freed can
never return another's explanation. Each table is bounded: past ``LIMIT`` keys it starts
again empty, so a stream of ever-new codes or units cannot grow it without end.
"""

from __future__ import annotations

from operator import is_

LIMIT = 50_000


class Memo:
    """Caches of one checked protocol, shared by every evaluation of it."""

    __slots__ = ("vocabulary", "concepts", "display_only", "readings", "texts", "explanations", "shared", "nodes")

    def __init__(self) -> None:
        self.vocabulary = None  # the vocabulary the tables were filled from
        self.concepts: dict = {}
        self.display_only: dict = {}
        self.readings: dict = {}  # concept name -> {recorded unit -> UnitReading}
        self.texts: dict = {}  # numbers as an explanation prints them, per distinct (what, number, ...)
        self.explanations: dict = {}  # key -> (parts, value)
        self.shared: dict = {}  # id(value) -> value, for every value of ``explanations``
        self.nodes: dict = {}  # id(plan node) -> (node, what its rule function works out from it alone)

    def check(self, vocabulary) -> "Memo":
        """This memo, emptied first if it was filled from another vocabulary (a protocol copied
        with ``attrs.evolve`` shares its memo)."""
        if self.vocabulary is not vocabulary:
            self.__init__()
            self.vocabulary = vocabulary
        return self

    @staticmethod
    def put(table: dict, key, value):
        """Store ``value`` under ``key`` (emptying the table first when it is full); return ``value``."""
        if len(table) >= LIMIT:
            table.clear()
        table[key] = value
        return value

    def of_node(self, node):
        """What was kept for this very plan node (``for_node``), or None."""
        hit = self.nodes.get(id(node))
        if hit is not None and hit[0] is node:
            return hit[1]
        return None

    def for_node(self, node, value):
        """Keep ``value``, worked out from ``node`` alone, for that node; return ``value``."""
        return Memo.put(self.nodes, id(node), (node, value))[1]

    def recall(self, key, parts: tuple):
        """The value kept under ``key`` for these very objects (``is``), or None."""
        hit = self.explanations.get(key)
        if hit is None:
            return None
        kept = hit[0]
        if len(kept) != len(parts) or not all(map(is_, kept, parts)):
            return None
        return hit[1]

    def keep(self, key, parts: tuple, value):
        """Keep ``value`` under ``key`` with the objects it was made from; return ``value``."""
        if len(self.explanations) >= LIMIT:
            self.explanations.clear()
            self.shared.clear()
        self.explanations[key] = (parts, value)
        self.shared[id(value)] = value
        return value

    def is_shared(self, value) -> bool:
        """Whether ``value`` is one this memo keeps (the same object)."""
        return self.shared.get(id(value)) is value
