"""The compiled evaluator: verdicts and per-criterion outcomes, without explanations.

``compile_protocol`` turns a checked plan, once, into a tree of closures specialised
for that protocol: every node's fields (operator, concept, window, thresholds as
canonical floats, section) are bound when it is compiled, so evaluating a patient
walks no plan and builds no explanation. Codes are mapped to concepts once per
distinct code (a cache the compiled protocol owns), unit factors and reference
ranges are checked once per distinct unit and range.

Meaning stays with the explaining evaluator (``elig.engine.evaluator``), the
reference. The compiled closures decide on their own only the plain cases, through
functions that sit beside the explaining ones and say when they cannot answer
(``measure.quick_value``, ``bounds.quick_uln``, ``events.records_of``); everything
else (derived values, ratios, rates, facts, attestations, recorded events, unusual
records) is decided by calling the explaining rule function and keeping its
outcome. Tests hold the two to the same outcome for every criterion of every
patient (tests/test_compiled.py).

An explanation is built only when asked for: ``CompiledProtocol.explain`` runs the
explaining evaluator for that one patient.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

import attrs

from elig.engine import plan as p
from elig.engine.bounds import compare, quick_uln
from elig.engine.comparisons import comparison
from elig.engine.derive import quick_derived
from elig.engine.events import event
from elig.engine.facts import quick_attestation
from elig.engine.evaluator import Evaluation, as_date, evaluate, verdict_of
from elig.engine.logic import unless
from elig.engine.measure import quick_value
from elig.engine.results import EvaluationResult, Outcome, Verdict
from elig.records.patient import Patient

MET, NOT_MET, UNKNOWN = Outcome.MET, Outcome.NOT_MET, Outcome.UNKNOWN
Rule = Callable[["_Run"], Outcome]


@attrs.frozen
class Screened:
    """What a screening run keeps of one patient: the verdict and each criterion's outcome."""

    patient_id: str
    verdict: Verdict
    outcomes: tuple[tuple[str, Outcome], ...]  # (criterion id, outcome), protocol order
    excluded_by: tuple[str, ...]
    data_issues: int  # problems noted on the record (as EvaluationResult.data_issues counts them)


class _Run(Evaluation):
    """One patient at one date: the explaining evaluator's context, with the compiled protocol's caches."""

    def __init__(self, compiled: "CompiledProtocol", patient: Patient, as_of: dt.date):
        super().__init__(compiled.checked, patient, as_of)
        self.concept_cache = compiled._concepts
        self.factors = compiled._factors
        self.ulns = compiled._ulns
        self.fallbacks = compiled._fallbacks
        self.fell_back = False

    def explained(self, node) -> Outcome:
        """The outcome the explaining evaluator's rule function gives (counted: a fallback)."""
        self.fell_back = True
        key = node.text
        self.fallbacks[key] = self.fallbacks.get(key, 0) + 1
        return self.rule(node).outcome


class CompiledProtocol:
    """A checked protocol compiled for screening many patients; build it once with ``compile_protocol``."""

    def __init__(self, checked: p.CheckedProtocol):
        self.checked = checked
        # Caches owned by this compiled protocol (no global state): concepts per distinct
        # (kind, codes, name), unit factors per (unit, concept), ULNs per reference range.
        self._concepts: dict = {}
        self._factors: dict = {}
        self._ulns: dict = {}
        # How often a rule was handed to the explaining evaluator, by rule text; and of how many
        # patients, with how many such patients (``fallback_report``).
        self._fallbacks: dict[str, int] = {}
        self._patients = 0
        self._patients_fell_back = 0
        self._criteria = tuple((c.id, c.section, _compile(c.plan, c.section)) for c in checked.criteria)

    def outcomes(self, patient: Patient, as_of=None) -> Screened:
        """The verdict and per-criterion outcomes, identical to ``evaluate``'s, without explanations."""
        run = _Run(self, patient, as_of if isinstance(as_of, dt.date) and not isinstance(as_of, dt.datetime)
                   else as_date(as_of))
        run.index()  # also notes coded entries whose display alone names a concept
        pairs = []
        for cid, section, rule in self._criteria:
            run.section = section
            pairs.append((cid, section, rule(run)))
        self._patients += 1
        self._patients_fell_back += run.fell_back
        verdict = verdict_of([(s, o) for _, s, o in pairs])
        excluded = tuple(cid for cid, s, o in pairs
                         if (s == "inclusion" and o is NOT_MET) or (s == "exclusion" and o is MET))
        return Screened(patient.id, verdict, tuple((cid, o) for cid, _, o in pairs), excluded,
                        len(patient.issues) + len(run.display_notes))

    def fallback_report(self) -> dict:
        """How often ``outcomes`` handed a rule to the explaining evaluator's functions, since compiling."""
        n = self._patients
        total = sum(self._fallbacks.values())
        return {"patients": n, "patients_with_fallback": self._patients_fell_back,
                "patient_rate": self._patients_fell_back / n if n else 0.0,
                "fallbacks": total, "per_patient": total / n if n else 0.0,
                "rules": sorted(self._fallbacks.items(), key=lambda kv: -kv[1])}

    def explain(self, patient: Patient, as_of=None) -> EvaluationResult:
        """The full explanation of one patient (the explaining evaluator)."""
        return evaluate(self.checked, patient, as_of)


def compile_protocol(checked: p.CheckedProtocol) -> CompiledProtocol:
    return CompiledProtocol(checked)


# ---------------------------------------------------------------- compiling plan nodes
def _compile(node: p.RulePlan, section: str) -> Rule:
    if isinstance(node, p.LogicPlan):
        return _logic(node, section)
    if isinstance(node, p.ComparisonPlan):
        return _comparison(node)
    if isinstance(node, p.EventPlan):
        return _event(node)
    if isinstance(node, p.AttestationPlan):
        return _attestation(node)
    return _explained(node)


def _attestation(node: p.AttestationPlan) -> Rule:
    def rule(run: _Run) -> Outcome:
        outcome = quick_attestation(run, node)
        return outcome if outcome is not None else run.explained(node)
    return rule


def _explained(node) -> Rule:
    """Decided by the explaining evaluator's function for the node (the reference), keeping the outcome."""
    def rule(run: _Run) -> Outcome:
        return run.explained(node)
    return rule


def _logic(node: p.LogicPlan, section: str) -> Rule:
    op = node.op
    if op not in ("and", "all", "or", "any", "none", "not", "unless"):
        return _explained(node)  # whichever, and any operator added later
    children = tuple(_compile(c, section) for c in node.children)
    if op == "unless":
        main, exception = children

        def rule_unless(run: _Run) -> Outcome:
            return unless(section, main(run), exception(run))
        return rule_unless
    if op == "not":
        (only,) = children

        def rule_not(run: _Run) -> Outcome:
            o = only(run)
            return NOT_MET if o is MET else MET if o is NOT_MET else UNKNOWN
        return rule_not
    if op in ("and", "all"):
        def rule_and(run: _Run) -> Outcome:
            out = MET
            for child in children:
                o = child(run)
                if o is NOT_MET:
                    return NOT_MET  # false wins: the rest cannot change it
                if o is UNKNOWN:
                    out = UNKNOWN
            return out
        return rule_and

    def rule_or(run: _Run) -> Outcome:
        out = NOT_MET
        for child in children:
            o = child(run)
            if o is MET:
                out = MET
                break  # true wins
            if o is UNKNOWN:
                out = UNKNOWN
        if op == "none":
            return NOT_MET if out is MET else MET if out is NOT_MET else UNKNOWN
        return out
    return rule_or


def _event(node: p.EventPlan) -> Rule:
    concept = node.concept
    if concept.kind == "test":
        return _explained(node)

    kind, name = concept.kind, concept.name
    also = ("condition",) if kind == "procedure" else ()  # as events.records_of gathers them

    def rule(run: _Run) -> Outcome:
        # Nothing the event rule could judge (no entry of the concept, nothing unreadable that may
        # be one): not present. Otherwise events.event decides, from events.records_of.
        idx = run.index()
        if not idx[kind].get(name) and not idx["unreadable"].get(kind) and \
                not any(idx[k].get(name) or idx["unreadable"].get(k) for k in also):
            return NOT_MET
        return run.explained(node)
    return rule


def _comparison(node: p.ComparisonPlan) -> Rule:
    subject, test, window = node.subject, node.test, node.window

    def full(run: _Run) -> Outcome:
        return run.explained(node)

    if isinstance(subject, p.RatioRef) or (isinstance(subject, p.MeasureRef) and subject.concept.kind == "demographic"
                                          and subject.concept.name != "age"):
        return _explained(node)
    if isinstance(test, p.SexTest):
        branches = {sex: ((t.op, t.bound),) for sex, t in test.branches}
    elif isinstance(test, p.CompareTest):
        branches = {None: ((test.op, test.bound),)}
    else:
        branches = {None: ((">=" if test.low_inclusive else ">", test.low),
                           ("<=" if test.high_inclusive else "<", test.high))}
    by_sex = isinstance(test, p.SexTest)
    if any(getattr(b, "lln_factor", None) is not None for bounds in branches.values() for _, b in bounds):
        return _explained(node)  # a multiple of the lower limit of normal: bounds.bound_value decides
    plain = all(b.uln_factor is None for bounds in branches.values() for _, b in bounds)
    if not isinstance(subject, p.MeasureRef) and not plain:
        return _explained(node)  # a multiple of the ULN needs the observation behind the value
    concept = subject.concept

    if isinstance(subject, p.DerivedRef):
        def value_of(run: _Run):
            v = quick_derived(run, subject, window, run.factors)
            return None if v is None else (v, None)
    elif concept.kind == "demographic":  # age
        def value_of(run: _Run):
            age = run.age()
            return None if age is None else (float(age), None)
    else:
        def value_of(run: _Run):
            return quick_value(run, concept, window, run.factors)

    def rule(run: _Run) -> Outcome:
        got = value_of(run)
        if got is None:
            return full(run)
        bounds = branches.get(run.patient.sex) if by_sex else branches[None]
        if bounds is None:
            return full(run)  # sex not recorded (or no threshold for it): the explaining rule says what follows
        value, obs = got
        limits = []
        for op, b in bounds:  # every threshold first: one that cannot be set makes the outcome unknown
            if b.uln_factor is None:
                limits.append((op, b.value))
            else:
                uln = quick_uln(run, concept, obs, run.ulns)
                if uln is None:
                    return full(run)
                limits.append((op, b.uln_factor * uln))
        return MET if all(compare(value, op, limit) for op, limit in limits) else NOT_MET
    return rule
