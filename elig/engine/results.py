"""Results of an evaluation, and the explanation of every verdict, as data.

The evaluator builds these immutable objects; renderers (``elig.report``) only
read them. ``to_json_dict`` gives the documented, versioned JSON form
(schema: ``elig/data/result.schema.json``); serialising the same result twice
gives the same bytes.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from elig.records.builder import slot_builder

SCHEMA_VERSION = "1.0"


class Outcome(str, enum.Enum):
    """Three-valued (Kleene) outcome of a rule."""

    MET = "met"
    NOT_MET = "not met"
    UNKNOWN = "unknown"

    def __str__(self) -> str:
        return self.value

    @staticmethod
    def of(value: bool | None) -> "Outcome":
        if value is None:
            return _UNKNOWN
        return _MET if value else _NOT_MET

    def negate(self) -> "Outcome":
        return _NEGATION[self]


# The members as plain names: reading ``Outcome.MET`` costs an enum descriptor call each time.
_MET, _NOT_MET, _UNKNOWN = Outcome.MET, Outcome.NOT_MET, Outcome.UNKNOWN
_NEGATION = {_MET: _NOT_MET, _NOT_MET: _MET, _UNKNOWN: _UNKNOWN}


def kleene_and(outcomes) -> Outcome:
    """False wins, then unknown: ``unknown and false`` is false (reading stops at the first false)."""
    unknown = False
    for o in outcomes:
        if o is _NOT_MET:
            return _NOT_MET
        if o is _UNKNOWN:
            unknown = True
    return _UNKNOWN if unknown else _MET


def kleene_or(outcomes) -> Outcome:
    """True wins, then unknown: ``unknown or true`` is true (reading stops at the first true)."""
    unknown = False
    for o in outcomes:
        if o is _MET:
            return _MET
        if o is _UNKNOWN:
            unknown = True
    return _UNKNOWN if unknown else _NOT_MET


class Verdict(str, enum.Enum):
    ELIGIBLE = "eligible"
    INELIGIBLE = "ineligible"
    UNDETERMINED = "undetermined"

    def __str__(self) -> str:
        return self.value


# The rule of the verdict, stated once: the outcome by which a criterion of each section excludes
# the patient, and the one by which it counts towards eligibility. Any other outcome (unknown) leaves
# the verdict undetermined unless another criterion excludes. evaluator.verdict_and_exclusions and
# CriterionResult.excludes both read these.
EXCLUDING = {"inclusion": Outcome.NOT_MET, "exclusion": Outcome.MET}
SETTLING = {"inclusion": Outcome.MET, "exclusion": Outcome.NOT_MET}


@attrs.frozen(weakref_slot=False)  # no weak references: see the builders below
class ValueUsed:
    """One recorded value the evaluator used, with where it came from."""

    concept: str
    value: float | None  # as recorded
    unit: str | None  # as recorded
    canonical_value: float | None = None
    canonical_unit: str | None = None
    conversion: str | None = None  # "97.2 µmol/L = 1.10 mg/dL"
    date: str | None = None
    source: str | None = None
    text: str | None = None  # for qualitative values and events: what the record says


@attrs.frozen(weakref_slot=False)  # no weak references: see the builders below
class ThresholdUsed:
    text: str  # as the protocol wrote it: "≥ 60 mL/min", "≤ 2.5 x ULN"
    value: float | None  # canonical value compared against
    unit: str | None
    uln: float | None = None
    uln_source: str | None = None  # "reference range of Observation/abc" or "vocabulary default"
    limit: str = "ULN"  # which limit of normal `uln` holds: "ULN", or "LLN" for `≥ LLN`


@attrs.frozen(weakref_slot=False)  # no weak references: see the builders below
class Derived:
    """How a derived value was computed: method, formula, the numbers substituted."""

    concept: str
    method: str
    formula: str
    substituted: str
    value: float
    unit: str
    inputs: tuple[ValueUsed, ...] = ()
    reference: str = ""
    pairing: str | None = None
    parameters: tuple[str, ...] = ()  # "Patm = 760 mmHg (default)"


@attrs.frozen(weakref_slot=False)  # no weak references: see the builders below
class Explanation:
    """Why a rule came out as it did. One class for every rule kind keeps renderers simple."""

    kind: str  # comparison | event | fact | attestation | rate | and | or | not | any | all | none | unless
    rule: str  # canonical text of this (sub)rule
    outcome: Outcome
    summary: str  # one line a person reads
    values: tuple[ValueUsed, ...] = ()
    threshold: ThresholdUsed | None = None
    derived: Derived | None = None
    reason: str | None = None  # for unknown: why
    missing: tuple[str, ...] = ()  # data to collect to decide
    searched: tuple[str, ...] = ()  # codes searched for events
    distance: str | None = None  # what would change the outcome
    children: tuple["Explanation", ...] = ()


@attrs.frozen(weakref_slot=False)  # no weak references: see the builders below
class CriterionResult:
    id: str
    section: str  # inclusion | exclusion
    sentence: str | None
    rule: str
    notes: tuple[str, ...]
    outcome: Outcome
    explanation: Explanation
    attested: bool = False  # decided (or awaiting) a person's attestation only

    @property
    def excludes(self) -> bool:
        """Whether this criterion makes the patient ineligible."""
        return EXCLUDING.get(self.section) is self.outcome


@attrs.frozen(weakref_slot=False)  # no weak references: see the builders below
class CollectItem:
    """A datum to collect, and the criteria it would help decide."""

    item: str
    criteria: tuple[str, ...]


@attrs.frozen(weakref_slot=False)  # no weak references: see the builders below
class EvaluationResult:
    protocol_id: str
    protocol_title: str | None
    protocol_checksum: str
    patient_id: str
    patient_source: str
    as_of: str
    elig_version: str
    verdict: Verdict
    criteria: tuple[CriterionResult, ...]
    to_collect: tuple[CollectItem, ...] = ()
    data_issues: tuple[str, ...] = ()
    patient_name: str | None = None

    @property
    def inclusions(self) -> tuple[CriterionResult, ...]:
        return tuple(c for c in self.criteria if c.section == "inclusion")

    @property
    def exclusions(self) -> tuple[CriterionResult, ...]:
        return tuple(c for c in self.criteria if c.section == "exclusion")

    def criterion(self, cid: str) -> CriterionResult:
        for c in self.criteria:
            if c.id == cid:
                return c
        raise KeyError(cid)

    def to_json_dict(self) -> dict[str, Any]:
        out = attrs.asdict(self, value_serializer=_serialise, filter=_keep)
        return {"schema_version": SCHEMA_VERSION, **out}


# Builders: the evaluator makes some fifty of these objects per patient, and an attrs frozen class's
# own ``__init__`` costs three to four times what a slot builder does (``elig.records.builder``). Each
# gives the very object the class's constructor gives; every field is given, in declaration order.
new_value_used = slot_builder(ValueUsed, (
    "concept", "value", "unit", "canonical_value", "canonical_unit", "conversion", "date", "source", "text"))
new_explanation = slot_builder(Explanation, (
    "kind", "rule", "outcome", "summary", "values", "threshold", "derived", "reason", "missing", "searched",
    "distance", "children"))
new_derived = slot_builder(Derived, (
    "concept", "method", "formula", "substituted", "value", "unit", "inputs", "reference", "pairing", "parameters"))
new_threshold_used = slot_builder(ThresholdUsed, ("text", "value", "unit", "uln", "uln_source", "limit"))
new_criterion_result = slot_builder(CriterionResult, (
    "id", "section", "sentence", "rule", "notes", "outcome", "explanation", "attested"))
new_collect_item = slot_builder(CollectItem, ("item", "criteria"))
new_evaluation_result = slot_builder(EvaluationResult, (
    "protocol_id", "protocol_title", "protocol_checksum", "patient_id", "patient_source", "as_of", "elig_version",
    "verdict", "criteria", "to_collect", "data_issues", "patient_name"))


def value_used(concept: str, value: float | None, unit: str | None, canonical_value: float | None = None,
               canonical_unit: str | None = None, conversion: str | None = None, date: str | None = None,
               source: str | None = None, text: str | None = None) -> ValueUsed:
    """``ValueUsed(...)``, built quickly."""
    return new_value_used(concept, value, unit, canonical_value, canonical_unit, conversion, date, source, text)


def explanation(kind: str, rule: str, outcome: Outcome, summary: str, values: tuple = (), threshold=None,
                derived=None, reason: str | None = None, missing: tuple = (), searched: tuple = (),
                distance: str | None = None, children: tuple = ()) -> Explanation:
    """``Explanation(...)``, built quickly."""
    return new_explanation(kind, rule, outcome, summary, values, threshold, derived, reason, missing, searched,
                            distance, children)


def _keep(field, value) -> bool:
    """A threshold's ``limit`` appears only when it is not the usual ULN."""
    return not (field.name == "limit" and value == "ULN")


def _serialise(inst, field, value):
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        # Twelve significant digits: binary noise (1.7999999999999998) never reaches the JSON.
        return float(f"{value:.12g}")
    return value
