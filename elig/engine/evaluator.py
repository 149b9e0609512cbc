"""Evaluate a checked protocol against one patient at an explicit date.

Meaning (see docs/semantics.md):
- Every rule is met, not met or unknown; ``and``/``or`` follow Kleene logic.
- Measurements are open-world: no usable value (missing, stale, unit-less,
  unreadable, implausible) is unknown, with the reason and the data to collect.
- Conditions, procedures, medications and tests are judged on the record: no
  matching entry is "not present", and the explanation lists the codes searched.
- Attestations are unknown until recorded.
- Boundaries are exact: values within a relative 1e-9 of a threshold are
  equal to it, so floating-point noise from unit conversion never flips a verdict.

The evaluator only compares floats: thresholds were converted to canonical
units by the checker, and recorded units are converted through the protocol's
``UnitResolver`` cache. It returns ``elig.engine.results`` objects and prints nothing.

This module is the visitor: ``Evaluation`` dispatches each plan node to the
function of its rule kind (``comparisons``, ``rates``, ``events``, ``facts``,
``logic``), which read the record through the shared ``Context``
(``context``, ``index``, ``measure``, ``derive``, ``bounds``) and phrase their
explanation with ``summary``.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterable

from elig import __version__
from elig.engine import plan as p
from elig.engine.bounds import REL_TOL, compare  # noqa: F401  (part of this module's interface)
from elig.engine.comparisons import comparison
from elig.engine.context import Context
from elig.engine.events import event
from elig.engine.facts import attestation, definition, fact
from elig.engine.logic import logic
from elig.engine.memo import Memo
from elig.engine.rates import rate
from elig.engine.results import (
    EXCLUDING, SETTLING, CollectItem, CriterionResult, EvaluationResult, Explanation, Outcome, Verdict,
    new_collect_item, new_criterion_result, new_evaluation_result,
)
from elig.records.dates import parse_date

MET, NOT_MET, UNKNOWN = Outcome.MET, Outcome.NOT_MET, Outcome.UNKNOWN
ELIGIBLE, INELIGIBLE, UNDETERMINED = Verdict.ELIGIBLE, Verdict.INELIGIBLE, Verdict.UNDETERMINED
from elig.records.patient import Patient


def as_date(value) -> dt.date:
    if value is None:
        return dt.date.today()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    d = parse_date(str(value))
    if not d.is_complete:
        raise ValueError(f"the evaluation date must be a full date (YYYY-MM-DD), not {value!r}")
    return d.earliest()


def evaluate(checked: p.CheckedProtocol, patient: Patient, as_of=None) -> EvaluationResult:
    """Evaluate every criterion; pure: the same inputs give the same result."""
    return Evaluation(checked, patient, as_date(as_of)).run()


class Evaluation(Context):
    """The explaining evaluator: one ``visit_<PlanNode>`` per rule kind, each returning an ``Explanation``."""

    # type of plan node -> its visit_ method, per class: filled when the class is made (``_visit_table``)
    _visitors: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._visitors = _visit_table(cls)

    def rule(self, node: p.RulePlan) -> Explanation:
        try:
            visit = self._visitors[type(node)]
        except KeyError:
            raise TypeError(type(node).__name__) from None
        return visit(self, node)

    # Each visit_ method is its rule kind's function, ``(context, node) -> Explanation``.
    visit_ComparisonPlan = comparison
    visit_EventPlan = event
    visit_FactPlan = fact
    visit_AttestationPlan = attestation
    visit_DefinitionPlan = definition
    visit_RatePlan = rate
    visit_LogicPlan = logic

    def run(self) -> EvaluationResult:
        self.index()  # also collects the coded entries whose display alone names a concept
        results = []
        memo = self.memo
        rule = self.rule
        criteria = self.checked.criteria
        known = memo.of_node(criteria)
        if known is None:
            # Per protocol: whether each criterion is made of attestations only, the results of
            # criteria whose explanation the memo shares (per id of that living explanation), and
            # each criterion's section.
            known = memo.for_node(criteria, (tuple([only_attestations(c.plan) for c in criteria]), {},
                                             tuple([c.section for c in criteria])))
        flags, made, sections = known
        outcomes = []
        for c, attested in zip(criteria, flags):
            self.section = c.section
            explanation = rule(c.plan)
            outcome = explanation.outcome
            # A criterion whose explanation the memo shares gives the very same result every time.
            if memo.is_shared(explanation):
                hit = made.get(id(explanation))
                if hit is not None and hit[0] is c and hit[1] is explanation:
                    result = hit[2]
                else:
                    result = new_criterion_result(c.id, c.section, c.sentence, c.rule_text, c.notes,
                                                  outcome, explanation, attested)
                    Memo.put(made, id(explanation), (c, explanation, result))
            else:
                result = new_criterion_result(c.id, c.section, c.sentence, c.rule_text, c.notes, outcome,
                                              explanation, attested)
            results.append(result)
            outcomes.append(outcome)
        verdict = verdict_and_exclusions(sections, outcomes)[0]
        patient = self.patient
        checked = self.checked
        issues = patient.issues
        notes = self.display_notes
        return new_evaluation_result(
            checked.id, checked.title, checked.checksum, patient.id, patient.source_file, self.as_of.isoformat(),
            __version__, verdict, tuple(results), collect(results),
            (tuple([str(i) for i in issues]) + tuple(notes)) if issues or notes else (), patient.name)


def _visit_table(cls) -> dict:
    """The visitor's dispatch table: each plan node type (``plan.<Name>``) to ``cls.visit_<Name>``."""
    return {getattr(p, name[len("visit_"):]): getattr(cls, name) for name in dir(cls)
            if name.startswith("visit_") and isinstance(getattr(p, name[len("visit_"):], None), type)}


Evaluation._visitors = _visit_table(Evaluation)


# ---------------------------------------------------------------- the whole protocol
def verdict_and_exclusions(sections, outcomes) -> tuple[Verdict, list[int]]:
    """The verdict from each criterion's section and outcome, and the positions of the criteria that
    exclude: any failed inclusion or met exclusion is ineligible; every inclusion met and every
    exclusion not met is eligible; else undetermined. Both evaluators decide the verdict here."""
    excluded = []
    settled = True
    for i, (section, o) in enumerate(zip(sections, outcomes)):
        if EXCLUDING.get(section) is o:
            excluded.append(i)
        elif SETTLING.get(section) is not o:
            settled = False
    return (INELIGIBLE if excluded else ELIGIBLE if settled else UNDETERMINED), excluded


def collect(results: Iterable[CriterionResult]) -> tuple[CollectItem, ...]:
    """Data to collect: each missing item of an undecided criterion, with the criteria it decides."""
    order: dict[str, list[str]] = {}
    for r in results:
        if r.outcome is not UNKNOWN:
            continue
        for item in _missing(r.explanation):
            ids = order.setdefault(item, [])
            if r.id not in ids:
                ids.append(r.id)
    return tuple([new_collect_item(item, tuple(ids)) for item, ids in order.items()])


def _missing(e: Explanation) -> list[str]:
    if e.outcome is not UNKNOWN:
        return []
    out = list(e.missing)
    for c in e.children:
        for m in _missing(c):
            if m not in out:
                out.append(m)
    return out


def only_attestations(node) -> bool:
    """Whether a rule is made of attestations only (decided, or awaiting, a person's answer)."""
    if isinstance(node, p.AttestationPlan):
        return True
    if isinstance(node, p.LogicPlan):
        return all(only_attestations(c) for c in node.children)
    return False
