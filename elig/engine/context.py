"""What every rule of one evaluation reads: the patient, the date, the protocol, the indexed record.

A ``Context`` is built once per patient and evaluation date. The rule modules
(``comparisons``, ``rates``, ``events``, ``facts``, ``logic``) are functions of a
context and a plan node; ``rule`` dispatches a node to its function (the visitor
is ``elig.engine.evaluator.Evaluation``).
"""

from __future__ import annotations

import datetime as dt

import attrs

from elig.engine import plan as p
from elig.engine.index import index_record
from elig.engine.memo import Memo
from elig.records.dates import whole_years_between, window_start
from elig.engine.results import ValueUsed
from elig.records.builder import slot_builder
from elig.records.patient import Observation, Patient


@attrs.frozen(weakref_slot=False)  # no weak references: built by ``new_picked``
class Picked:
    """A usable measurement: the record, its value in canonical units, and how it was read."""

    obs: Observation
    value: float
    used: ValueUsed


@attrs.frozen(weakref_slot=False)
class Unusable:
    reason: str
    missing: tuple[str, ...]
    values: tuple[ValueUsed, ...] = ()


new_picked = slot_builder(Picked, ("obs", "value", "used"))  # ``Picked(obs, value, used)``, built quickly
new_unusable = slot_builder(Unusable, ("reason", "missing", "values"))  # ``Unusable(...)``, every field given


class Context:
    def __init__(self, checked: p.CheckedProtocol, patient: Patient, as_of: dt.date):
        self.checked = checked
        self.patient = patient
        self.as_of = as_of
        self.vocabulary = checked.vocabulary
        self.resolver = checked.resolver
        self._index: dict[str, dict[str, list]] | None = None
        self.display_notes: list[str] = []
        self.section = "inclusion"
        self.measured: dict = {}  # measure.measurement's answers, per (concept, label, window)
        self.opened: dict = {}  # per window text ("7 days"): (amount, unit, the window's first day)
        self._answers: dict | None = None
        self._age: int | None | bool = False  # not yet worked out
        self.memo = checked.memo.check(checked.vocabulary)
        self.concept_cache: dict = self.memo.concepts  # concept names per distinct (kind, codes, name, category)

    def rule(self, node: p.RulePlan):
        """The explanation of a (sub)rule; the visitor subclass dispatches by node type."""
        raise NotImplementedError

    def index(self) -> dict[str, dict[str, list]]:
        """Entries of the record by concept name, built once per evaluation, newest first."""
        if self._index is None:
            self._index, notes = index_record(self.patient, self.vocabulary, self.concept_cache,
                                              self.memo.display_only)
            self.display_notes.extend(notes)
        return self._index

    def answers(self, key: str) -> list:
        """The patient's attestations of ``key`` that give a value, in record order."""
        if self._answers is None:
            self._answers = {}
            for a in self.patient.attestations:
                if a.value is not None:
                    self._answers.setdefault(a.key, []).append(a)
        return self._answers.get(key, [])

    def window_opens(self, window: p.Duration) -> dt.date:
        """The first day of a look-back window ending on the evaluation date."""
        return self.opens(window.amount, window.unit)

    def opens(self, amount: float, unit: str) -> dt.date:
        """``window_start(as_of, amount, unit)``, once per protocol, date and length (the protocol's memo)."""
        key = ("opens", self.as_of, amount, unit)
        opens = self.memo.texts.get(key)
        if opens is None:
            opens = Memo.put(self.memo.texts, key, window_start(self.as_of, amount, unit))
        return opens

    def observations(self, concept_name: str) -> list:
        return self.index()["observation"].get(concept_name, [])

    def unreadable(self, kind: str) -> list:
        """Entries of a kind that name no concept and carry no code (their concept could not be read)."""
        return self.index()["unreadable"].get(kind, [])

    def unmatched(self, concept_name: str) -> list:
        """Observations whose display names the concept but whose code is not in its value set."""
        return self.index()["unmatched"].get(concept_name, [])

    def age(self) -> int | None:
        """Whole years at the evaluation date (None when the birth date leaves it undecided), once per evaluation."""
        age = self._age
        if age is False:
            born = self.patient.birth_date
            age = self._age = None if born is None else whole_years_between(born, self.as_of)
        return age

    def window_text(self, window: p.Duration | None) -> str:
        if window is None:
            return ""
        key = ("window", self.as_of, window.text)
        text = self.memo.texts.get(key)
        if text is None:
            text = Memo.put(self.memo.texts, key, f" within {window.text} before {self.as_of.isoformat()}")
        return text
