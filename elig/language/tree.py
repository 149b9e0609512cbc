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
    # The unit as typed when the parser read it otherwise: `100x109/L` lost its superscript
    # and is read as 100 x 10^9/L; the checker warns (W211) so the reading is never silent.
    restored_from: str | None = attrs.field(default=None, eq=False)
    span: Span | None = _span


@attrs.frozen
class UlnMultiple:
    """``2.5 x ULN``: a multiple of the upper limit of normal (``≤ ULN``: a factor of 1)."""

    factor: float
    number: str = attrs.field(eq=False)
    span: Span | None = _span


@attrs.frozen
class LlnMultiple:
    """``≥ LLN``, ``≥ 0.8 x LLN``: a multiple of the lower limit of normal."""

    factor: float
    number: str = attrs.field(eq=False)
    span: Span | None = _span


Threshold = Union[Quantity, UlnMultiple, LlnMultiple]


@attrs.frozen
class MethodParam:
    name: str
    value: Quantity
    span: Span | None = _span


@attrs.frozen
class Method:
    """``(Cockcroft-Gault, ideal body weight, Patm: 700 mmHg)``, ``by Cockcroft-Gault``.

    What a parenthesised or ``by`` name means is the vocabulary's call (the checker's):
    a derivation method of a derived concept, the abbreviation of the name before it
    (``Absolute neutrophil count (ANC)``), or how a measured value is assessed
    (``by echocardiogram or MUGA``), kept but not checked against the record.
    """

    names: tuple[str, ...]
    params: tuple[MethodParam, ...] = ()
    by: bool = attrs.field(default=False, eq=False)  # written `by X or Y`: printed the same way
    span: Span | None = _span


@attrs.frozen
class Assessment:
    """``as assessed by echocardiogram or MUGA``: how the value is measured (not checked yet)."""

    names: tuple[str, ...]
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


@attrs.frozen
class Subjects:
    """``AST and ALT``, ``SGOT and/or SGPT``: several values sharing one test.

    ``joiner`` is ``and``, ``or`` or ``and/or``; the checker gives each its reading
    (docs/language.md, "Several subjects, one threshold").
    """

    items: tuple[Measure, ...]
    joiner: str
    span: Span | None = _span


Subject = Union[Measure, Ratio, Subjects]


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


@attrs.frozen
class Alternative:
    """``≤ 3 x ULN if Gilbert's syndrome``: a threshold for the patients a condition names."""

    test: Compare
    condition: "Event | SexFact"
    span: Span | None = _span


@attrs.frozen
class Conditional:
    """``≤ 1.5 x ULN (≤ 3 x ULN for Gilbert's syndrome)``.

    ``main`` is the threshold for everyone else; None when the sentence gives only the
    conditional one (``AST ≤ 5 x ULN if liver metastases``: the rule applies to those patients).
    """

    main: Compare | None
    alternatives: tuple[Alternative, ...]
    span: Span | None = _span


@attrs.frozen
class OneOf:
    """``ECOG performance status of 0 or 1``: one of the listed values."""

    values: tuple[Quantity, ...]
    span: Span | None = _span


@attrs.frozen
class NormalRange:
    """``within normal limits``: from the lower to the upper limit of normal."""

    span: Span | None = _span


Test = Union[Compare, Between, BySex, Conditional, OneOf, NormalRange]


# ---------------------------------------------------------------- rules
@attrs.frozen
class Comparison:
    subject: Subject
    test: Test
    window: Quantity | None = None
    assessment: Assessment | None = None
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
    # `Hypertension (HTN)`: the sponsor's abbreviation, kept for the reader.
    abbreviation: str | None = None
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


def thresholds(test) -> list:
    """The thresholds a comparison's test states: one, the two ends of a range, one per sex, or the
    main one and its conditional alternatives (the checker resolves them, lint reads them)."""
    if isinstance(test, Compare):
        return [test.threshold]
    if isinstance(test, Between):
        return [test.low, test.high]
    if isinstance(test, BySex):
        return [b.test.threshold for b in test.branches]
    if isinstance(test, Conditional):
        return ([test.main.threshold] if test.main else []) + [a.test.threshold for a in test.alternatives]
    return []
