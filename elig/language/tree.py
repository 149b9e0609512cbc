"""The typed syntax tree of a protocol.

Every node is a frozen attrs class with tuples for children and a source
``span`` that is kept out of equality, so two trees parsed from differently
laid-out text compare equal when they say the same thing. Quantities are pint
quantities from the package's one registry (``elig.terminology.units.ureg``). Nodes carry
no evaluation logic: checking lives in ``elig.engine.checker``, evaluation in
``elig.engine.evaluator``, printing in ``elig.language.canonical``.
"""

from __future__ import annotations

from typing import Union

import attrs
import pint

from elig.diagnostics import Span

_span = attrs.field(default=None, eq=False, repr=False, kw_only=True)


@attrs.frozen
class Name:
    """A concept name as written (``serum creatinine``, ``PaO2``)."""

    text: str
    span: Span | None = _span


@attrs.frozen
class Quantity:
    """A number with an optional unit, as the author wrote it.

    ``value`` is the pint quantity (dimensionless when no unit was written);
    ``number`` and ``unit`` keep the author's spelling for printing, and are
    left out of equality so ``1.5 mg/dl`` equals ``1.5 mg/dL``.
    """

    value: pint.Quantity
    number: str = attrs.field(eq=False)
    unit: str | None = attrs.field(eq=False)
    has_unit: bool = True
    # True for the bare bound of `18 to 75 years`, which borrows its unit from the other bound.
    borrowed: bool = attrs.field(default=False, eq=False)
    span: Span | None = _span


@attrs.frozen
class UlnMultiple:
    """``2.5 x ULN``: a multiple of the upper limit of normal."""

    factor: float
    number: str = attrs.field(eq=False)
    span: Span | None = _span


Threshold = Union[Quantity, UlnMultiple]


@attrs.frozen
class MethodParam:
    name: str
    value: Quantity
    span: Span | None = _span


@attrs.frozen
class Method:
    """``(Cockcroft-Gault, ideal body weight, Patm: 700 mmHg)``."""

    names: tuple[str, ...]
    params: tuple[MethodParam, ...] = ()
    span: Span | None = _span


@attrs.frozen
class Measure:
    """A measured or derived value named by a concept."""

    name: Name
    method: Method | None = None
    span: Span | None = _span


@attrs.frozen
class Ratio:
    """Arithmetic on measurements: ``PaO2/FiO2``."""

    numerator: Measure
    denominator: Measure
    span: Span | None = _span


Subject = Union[Measure, Ratio]


# ---------------------------------------------------------------- tests on a subject
@attrs.frozen
class Compare:
    comparator: str  # one of > >= < <= == !=
    threshold: Threshold
    span: Span | None = _span


@attrs.frozen
class Between:
    """An inclusive or exclusive range; ``18 to 75 years`` is inclusive at both ends."""

    low: Threshold
    high: Threshold
    low_inclusive: bool = True
    high_inclusive: bool = True
    span: Span | None = _span


@attrs.frozen
class SexBranch:
    sex: str  # "male" | "female"
    test: Compare
    span: Span | None = _span


@attrs.frozen
class BySex:
    """``> 1.5 mg/dL if male, > 1.4 mg/dL if female``."""

    branches: tuple[SexBranch, ...]
    span: Span | None = _span


Test = Union[Compare, Between, BySex]


# ---------------------------------------------------------------- rules
@attrs.frozen
class Comparison:
    subject: Subject
    test: Test
    window: Quantity | None = None
    span: Span | None = _span


@attrs.frozen
class GradeRange:
    word: str  # "grade", "stage", "class", "NYHA class"
    low: int
    high: int
    roman: bool = attrs.field(default=False, eq=False)  # written III to IV: printed the same way
    span: Span | None = _span


@attrs.frozen
class Timing:
    """When an event must have happened, relative to the evaluation date.

    kind ``within``: present at some time in the window;
    ``onset_within``: began in the window;
    ``lasting``: time since onset compared with a duration.
    """

    kind: str
    duration: Quantity
    comparator: str | None = None
    span: Span | None = _span


@attrs.frozen
class Event:
    """A condition, procedure, medication, positive test or patient fact.

    ``prefix`` is ``history`` (any record), ``active`` (current),
    ``taking`` (a current medication), ``positive`` (a positive test) or None.
    """

    name: Name
    prefix: str | None = None
    grade: GradeRange | None = None
    timing: Timing | None = None
    # ``pregnant (if of childbearing potential)``: the patient fact that says who is asked.
    only_if: Name | None = None
    span: Span | None = _span


@attrs.frozen
class SexFact:
    sex: str
    span: Span | None = _span


@attrs.frozen
class Rate:
    """``daily increase in serum creatinine ≥ 44.2 µmol/L``."""

    name: Name
    comparator: str
    threshold: Quantity
    window: Quantity | None = None
    span: Span | None = _span


@attrs.frozen
class Attestation:
    """A fact only a person can record: consent, investigator judgment."""

    text: str
    quoted: bool = attrs.field(default=False, eq=False)
    span: Span | None = _span


@attrs.frozen
class Not:
    operand: "Rule"
    span: Span | None = _span


@attrs.frozen
class And:
    operands: tuple["Rule", ...]
    span: Span | None = _span


@attrs.frozen
class Or:
    operands: tuple["Rule", ...]
    span: Span | None = _span


@attrs.frozen
class Whichever:
    """``PTA ≤ 40% or INR ≥ 1.5 (whichever is recorded)``: alternative measurements of one
    thing, decided by those recorded; unknown only when none is (docs/semantics.md)."""

    operands: tuple["Rule", ...]
    span: Span | None = _span


@attrs.frozen
class ListOf:
    """``any of``, ``all of`` or ``none of`` a list of rules."""

    kind: str  # "any" | "all" | "none"
    items: tuple["Rule", ...]
    block: bool = attrs.field(default=False, eq=False)  # written as an indented block
    span: Span | None = _span


@attrs.frozen
class Unless:
    """``rule unless exception``: the criterion is waived when the exception holds."""

    rule: "Rule"
    exception: "Rule"
    span: Span | None = _span


Rule = Union[Comparison, Event, SexFact, Rate, Attestation, Not, And, Or, Whichever, ListOf, Unless]


@attrs.frozen
class Definition:
    """``define childbearing potential: RULE`` in a protocol's header: the protocol's own
    reading of a declared concept, replacing the vocabulary's."""

    name: Name
    rule: Rule
    span: Span | None = _span


# ---------------------------------------------------------------- protocol
@attrs.frozen
class Criterion:
    section: str  # "inclusion" | "exclusion"
    id: str
    sentence: str | None
    rule: Rule
    notes: tuple[str, ...] = ()
    span: Span | None = _span


@attrs.frozen
class VocabularyFile:
    """``vocabulary "oncology-site.yaml"``: concepts the author declares, relative to the protocol file."""

    path: str
    span: Span | None = _span


@attrs.frozen
class Protocol:
    id: str
    title: str | None
    criteria: tuple[Criterion, ...]
    version: str | None = None
    lookback: Quantity | None = None
    vocabularies: tuple[VocabularyFile, ...] = ()
    definitions: tuple[Definition, ...] = ()
    file: str = attrs.field(default="<protocol>", eq=False)
    source: str = attrs.field(default="", eq=False, repr=False)
    span: Span | None = _span

    @property
    def inclusions(self) -> tuple[Criterion, ...]:
        return tuple(c for c in self.criteria if c.section == "inclusion")

    @property
    def exclusions(self) -> tuple[Criterion, ...]:
        return tuple(c for c in self.criteria if c.section == "exclusion")


def children(node) -> tuple:
    """The rule-level children of a node, for walkers that need no dispatch."""
    if isinstance(node, (And, Or, Whichever)):
        return node.operands
    if isinstance(node, ListOf):
        return node.items
    if isinstance(node, Not):
        return (node.operand,)
    if isinstance(node, Unless):
        return (node.rule, node.exception)
    return ()
