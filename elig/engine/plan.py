"""The checked protocol: what the evaluator runs.

The checker (``elig.engine.checker``) resolves every name of the tree to a vocabulary
concept or derivation and every threshold to a plain float in its concept's
canonical unit, so that evaluating a patient compares floats: pint is done
with by the time a plan exists. Plan nodes keep the tree node they came from
(for spans and canonical text) but never need it to evaluate.
"""

from __future__ import annotations

from typing import Union

import attrs
import pint

from elig.engine.memo import Memo
from elig.language import tree as t
from elig.terminology.derivations import Derivation
from elig.terminology.units import UnitResolver
from elig.terminology.vocabulary import Concept, Vocabulary


@attrs.frozen
class Duration:
    amount: float
    unit: str  # day | week | month | year | hour
    text: str  # as written: "7 days"


@attrs.frozen
class Bound:
    """A threshold in canonical units, or a multiple of the ULN or LLN."""

    text: str  # as written: "1.5 x 10^9/L", "2.5 x ULN"
    value: float | None = None  # canonical unit; None for ULN and LLN multiples
    uln_factor: float | None = None
    lln_factor: float | None = None
    quantity: pint.Quantity | None = attrs.field(default=None, eq=False, repr=False)


@attrs.frozen
class MeasureRef:
    concept: Concept
    label: str  # as the protocol wrote it


@attrs.frozen
class DerivedRef:
    concept: Concept
    derivation: Derivation
    label: str
    params: tuple[tuple[str, float], ...] = ()  # overridden constants, in the param's unit


@attrs.frozen
class RatioRef:
    numerator: MeasureRef
    denominator: MeasureRef
    label: str
    unit: str  # the ratio's canonical unit (numerator unit / denominator unit)


SubjectRef = Union[MeasureRef, DerivedRef, RatioRef]


@attrs.frozen
class CompareTest:
    op: str
    bound: Bound


@attrs.frozen
class RangeTest:
    low: Bound
    high: Bound
    low_inclusive: bool
    high_inclusive: bool


@attrs.frozen
class SexTest:
    branches: tuple[tuple[str, CompareTest], ...]


@attrs.frozen
class ComparisonPlan:
    subject: SubjectRef
    test: Union[CompareTest, RangeTest, SexTest]
    window: Duration | None
    node: t.Comparison = attrs.field(eq=False, repr=False)
    # Canonical text of the rule, printed once by the checker (reports show it for every patient).
    text: str = attrs.field(default="", eq=False, repr=False, kw_only=True)


@attrs.frozen
class EventPlan:
    concept: Concept
    prefix: str | None
    grade: tuple[int, int, str] | None
    timing_kind: str | None  # within | onset_within | lasting
    duration: Duration | None
    timing_op: str | None
    searched: tuple[str, ...]  # the codes a record is matched against, for "no matching record"
    node: t.Event = attrs.field(eq=False, repr=False)
    # Canonical text of the rule, printed once by the checker (reports show it for every patient).
    text: str = attrs.field(default="", eq=False, repr=False, kw_only=True)


@attrs.frozen
class DefinitionPlan:
    """A declared concept decided by a rule (``childbearing potential``): the vocabulary's
    default reading, or the protocol's own (``define NAME: RULE``). ``source`` says which,
    and ``definition`` is the rule's text, both shown in the report."""

    name: str
    source: str  # "vocabulary default" | "protocol"
    definition: str
    plan: "RulePlan"
    node: object = attrs.field(eq=False, repr=False)
    text: str = attrs.field(default="", eq=False, repr=False, kw_only=True)


@attrs.frozen
class FactPlan:
    """Pregnancy, lactation (``concept``) or sex (``sex``).

    ``only_if`` (``pregnant (if of childbearing potential)``): when the record does not
    say, the fact is "no" for whom the definition is not met, and unknown otherwise.
    """

    concept: Concept | None
    sex: str | None
    node: object = attrs.field(eq=False, repr=False)
    only_if: DefinitionPlan | None = None
    text: str = attrs.field(default="", eq=False, repr=False, kw_only=True)


@attrs.frozen
class RatePlan:
    concept: Concept
    op: str
    bound: Bound  # per day, canonical unit
    window: Duration
    node: t.Rate = attrs.field(eq=False, repr=False)
    # Canonical text of the rule, printed once by the checker (reports show it for every patient).
    text: str = attrs.field(default="", eq=False, repr=False, kw_only=True)


@attrs.frozen
class AttestationPlan:
    key: str
    statement: str  # what is attested, as the protocol says it
    node: t.Attestation = attrs.field(eq=False, repr=False)
    # Canonical text of the rule, printed once by the checker (reports show it for every patient).
    text: str = attrs.field(default="", eq=False, repr=False, kw_only=True)


@attrs.frozen
class LogicPlan:
    # whichever: alternative measurements (``a or b (whichever is recorded)``); the children
    # are ComparisonPlans, decided by those recorded (docs/semantics.md).
    op: str  # and | or | not | any | all | none | unless | whichever
    children: tuple["RulePlan", ...]
    node: object = attrs.field(eq=False, repr=False)
    text: str = attrs.field(default="", eq=False, repr=False, kw_only=True)


RulePlan = Union[ComparisonPlan, EventPlan, FactPlan, RatePlan, AttestationPlan, LogicPlan, DefinitionPlan]


@attrs.frozen
class CriterionPlan:
    id: str
    section: str
    sentence: str | None
    notes: tuple[str, ...]
    rule_text: str
    plan: RulePlan
    node: t.Criterion = attrs.field(eq=False, repr=False)


@attrs.frozen
class CheckedProtocol:
    """A protocol ready to evaluate many patients. Immutable except its caches (units, ``memo``)."""

    tree: t.Protocol
    criteria: tuple[CriterionPlan, ...]
    vocabulary: Vocabulary = attrs.field(repr=False)
    checksum: str
    resolver: UnitResolver = attrs.field(factory=UnitResolver, eq=False, repr=False)
    warnings: tuple = ()
    # What evaluations of this protocol work out once per distinct code, unit or rule (elig.engine.memo).
    memo: Memo = attrs.field(factory=Memo, eq=False, repr=False)

    @property
    def id(self) -> str:
        return self.tree.id

    @property
    def title(self) -> str | None:
        return self.tree.title
