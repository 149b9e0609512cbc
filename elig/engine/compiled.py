"""The compiled evaluator: verdicts and per-criterion outcomes, without explanations.

``compile_protocol`` turns a checked plan, once, into a tree of closures specialised
for that protocol: every node's fields (operator, concept, window, thresholds as
canonical floats, default ULNs by sex, section) are bound when it is compiled, so
evaluating a patient walks no plan, compares floats and builds no explanation and no
text. The compiled protocol owns its caches (no global state): the concepts of each
distinct code (so code-to-concept mapping is done once per distinct code, not per
entry), the factor of each distinct recorded unit per concept, the ULN of each
distinct reference range.

Meaning stays with the explaining evaluator (``elig.engine.evaluator``), the
reference. Where a rule kind's module has split its decisions from its phrases, the
closures call those decisions themselves, with the node's fields bound, and keep
only the answer:

* the record's index: ``index.index_record`` (with this protocol's caches);
* logic: ``logic.combiner`` (``results.kleene_and``/``kleene_or``, read only as far
  as the outcome needs) and ``logic.unless``;
* events: ``events.nothing_recorded``, ``records_of``, ``judge_of`` (prefix, grade,
  timing and body site of each record: ``active``, ``timing``, ``index.site_answer``)
  and ``records_outcome``, as ``events.event`` decides before phrasing;
* facts and attestations: ``facts.is_sex``, ``on_record``, ``evidence_sources``,
  ``not_asked`` and ``attested``, as ``facts.fact`` and ``facts.attestation`` do.

* measurements (``_Measure``): the newest usable result in the window, picked by
  ``measure.select``, the selection kernel the explaining evaluator phrases: no
  result, an undated one or an entry that may be newer, a stale, future-only,
  unit-less, unreadable or implausible newest result, or a same-time result that
  disagrees, is unknown.

Comparisons are still read here, by the same reading the explaining functions make:
against plain, × ULN (reference range, else the vocabulary's default for the sex)
and sex-specific thresholds, ranges, age, and derived values from plain inputs.

Anything else (ratios, rates, evidence found for a fact, multiples of the LLN,
tests as events, alternatives ``whichever`` is recorded) is decided by calling
the explaining rule function and keeping its outcome: a *fallback*, counted in
``CompiledProtocol.fallback_report`` (the benchmark reports the rate). Tests hold
the two evaluators to the same outcome for every criterion of every patient
(tests/test_compiled.py).

An explanation is built only when asked for: ``CompiledProtocol.explain`` runs the
explaining evaluator for that one patient.
"""

from __future__ import annotations

import datetime as dt
from itertools import repeat
from operator import call
from typing import Callable

import attrs

from elig.engine import plan as p
from elig.engine.bounds import COMPARE, quick_uln
from elig.engine.derive import derivation_plan
from elig.engine.events import judge_of, nothing_recorded, records_of, records_outcome
from elig.engine.evaluator import Evaluation, as_date, evaluate, verdict_and_exclusions
from elig.engine.facts import attested, evidence_sources, is_sex, not_asked, on_record
from elig.engine.index import index_record
from elig.engine.logic import combiner, unless
from elig.engine.measure import PICKED, select
from elig.engine.results import EvaluationResult, Outcome, Verdict
from elig.records.dates import window_start
from elig.records.patient import Patient
from elig.terminology.derivations import Inputs

MET, NOT_MET, UNKNOWN = Outcome.MET, Outcome.NOT_MET, Outcome.UNKNOWN
Rule = Callable[["_Run"], Outcome]
of = Outcome.of


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
        self.fallbacks = compiled._fallbacks
        self.fell_back = False
        self.once: dict = {}  # what several rules read, read once per patient: measurements, answers

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
        self.vocabulary = checked.vocabulary
        self.resolver = checked.resolver
        # Caches owned by this compiled protocol (no global state): the names of the concepts of each
        # distinct (kind, codes, name, category) and the display-only reading of each distinct tuple of codes
        # (``index.index_record``'s), ULNs per reference range, one reader per (concept, window)
        # (each holding its unit factors).
        self._concepts: dict = {}
        self._display_only: dict = {}
        self._ulns: dict = {}
        self._measures: dict = {}
        # How often a rule was handed to the explaining evaluator, by rule text; and of how many
        # patients, with how many such patients (``fallback_report``).
        self._fallbacks: dict[str, int] = {}
        self._patients = 0
        self._patients_fell_back = 0
        self._protocol_id = checked.id.lower()
        self._ids = tuple(c.id for c in checked.criteria)
        self._sections = tuple(c.section for c in checked.criteria)
        self._rules = tuple((c.section, self._compile(c.plan, c.section)) for c in checked.criteria)

    # ---------------------------------------------------------------- per patient
    def outcomes(self, patient: Patient, as_of=None) -> Screened:
        """The verdict and per-criterion outcomes, identical to ``evaluate``'s, without explanations."""
        run = _Run(self, patient, as_of if isinstance(as_of, dt.date) and not isinstance(as_of, dt.datetime)
                   else as_date(as_of))
        run._index, notes = index_record(patient, self.vocabulary, self._concepts, self._display_only)
        run.display_notes.extend(notes)
        outcomes = []
        for section, rule in self._rules:
            run.section = section
            outcomes.append(rule(run))
        verdict, excluded = verdict_and_exclusions(self._sections, outcomes)
        ids = self._ids
        self._patients += 1
        self._patients_fell_back += run.fell_back
        return Screened(patient.id, verdict, tuple(zip(ids, outcomes)), tuple([ids[i] for i in excluded]),
                        len(patient.issues) + len(run.display_notes))

    def explain(self, patient: Patient, as_of=None) -> EvaluationResult:
        """The full explanation of one patient (the explaining evaluator)."""
        return evaluate(self.checked, patient, as_of)

    def fallback_report(self) -> dict:
        """How often ``outcomes`` handed a rule to the explaining evaluator's functions, since compiling."""
        n = self._patients
        total = sum(self._fallbacks.values())
        return {"patients": n, "patients_with_fallback": self._patients_fell_back,
                "patient_rate": self._patients_fell_back / n if n else 0.0,
                "fallbacks": total, "per_patient": total / n if n else 0.0,
                "rules": sorted(self._fallbacks.items(), key=lambda kv: -kv[1])}

    # ---------------------------------------------------------------- compiling plan nodes
    def _compile(self, node: p.RulePlan, section: str) -> Rule:
        if isinstance(node, p.LogicPlan):
            return self._logic(node, section)
        if isinstance(node, p.ComparisonPlan):
            return self._comparison(node)
        if isinstance(node, p.EventPlan):
            return self._event(node)
        if isinstance(node, p.AttestationPlan):
            return _attestation(node, self._protocol_id)
        if isinstance(node, p.FactPlan):
            return _fact(node, self, section)
        if isinstance(node, p.DefinitionPlan):
            return self._compile(node.plan, section)  # a definition's outcome is its rule's
        return _explained(node)

    def _logic(self, node: p.LogicPlan, section: str) -> Rule:
        op = node.op
        if op not in ("and", "all", "or", "any", "none", "not", "unless"):
            return _explained(node)  # whichever, and any operator added later
        children = tuple(self._compile(c, section) for c in node.children)
        if op == "unless":
            main, exception = children

            def rule_unless(run: _Run) -> Outcome:
                return unless(section, main(run), exception(run))
            return rule_unless
        combine = combiner(op)

        def rule(run: _Run) -> Outcome:
            return combine(map(call, children, repeat(run)))  # read only as far as the outcome needs
        return rule

    def _measure(self, concept, window: p.Duration | None) -> "_Measure":
        key = (concept.name, window)
        m = self._measures.get(key)
        if m is None:
            m = self._measures[key] = _Measure(self, concept, window)
        return m

    def _event(self, node: p.EventPlan) -> Rule:
        concept = node.concept
        if concept.kind == "test":
            return _explained(node)
        window = node.duration if node.timing_kind is not None else None
        judge = judge_of(node)

        def rule(run: _Run) -> Outcome:
            if nothing_recorded(run._index, concept):
                return NOT_MET
            records, unreadable = records_of(run._index, concept)
            as_of = run.as_of
            opens = None if window is None else run.window_opens(window)
            return records_outcome([of(judge(as_of, r, opens)[0]) for r in records], unreadable)[0]
        return rule

    def _comparison(self, node: p.ComparisonPlan) -> Rule:
        subject, test, window = node.subject, node.test, node.window
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
        if any(b.lln_factor is not None for bounds in branches.values() for _, b in bounds):
            return _explained(node)  # a multiple of the lower limit of normal: bounds.bound_value decides
        plain = all(b.uln_factor is None for bounds in branches.values() for _, b in bounds)
        if not isinstance(subject, p.MeasureRef) and not plain:
            return _explained(node)  # a multiple of the ULN needs the observation behind the value
        concept = subject.concept
        # Each threshold as (compare, limit, ULN factor): plain limits are canonical floats already.
        tests = {sex: tuple((COMPARE[op], b.value, b.uln_factor) for op, b in bounds)
                 for sex, bounds in branches.items()}

        if isinstance(subject, p.DerivedRef):
            value_of = self._derived(subject, window)
        elif concept.kind == "demographic":  # age
            def value_of(run: _Run):
                age = run.age()
                return UNKNOWN if age is None else (float(age), None)
        else:
            value_of = self._measure(concept, window)

        if plain:
            def decide(run: _Run, checks, value, obs, sex) -> Outcome:
                for cmp, limit, _ in checks:
                    if not cmp(value, limit):
                        return NOT_MET
                return MET
        else:
            uln_of = self._uln(concept)

            def decide(run: _Run, checks, value, obs, sex) -> Outcome:
                ok = True
                for cmp, limit, factor in checks:  # every threshold first: one that cannot be set is unknown
                    if factor is not None:
                        uln = uln_of(run, obs, sex)
                        if uln is None:
                            return UNKNOWN
                        limit = factor * uln
                    if ok and not cmp(value, limit):
                        ok = False
                return MET if ok else NOT_MET

        if not by_sex:
            checks = tests[None]

            def rule(run: _Run) -> Outcome:
                got = value_of(run)
                if got is None:
                    return run.explained(node)
                if got is UNKNOWN:
                    return UNKNOWN
                return decide(run, checks, got[0], got[1], run.patient.sex)
            return rule

        def rule_by_sex(run: _Run) -> Outcome:
            got = value_of(run)
            if got is None:
                return run.explained(node)
            if got is UNKNOWN:
                return UNKNOWN
            value, obs = got
            sex = run.patient.sex
            checks = tests.get(sex)
            if checks is not None:
                return decide(run, checks, value, obs, sex)
            # Sex not recorded: decided only when every sex's threshold gives the same answer.
            seen = {decide(run, c, value, obs, s) for s, c in tests.items()}
            return seen.pop() if len(seen) == 1 and UNKNOWN not in seen else UNKNOWN
        return rule_by_sex

    def _uln(self, concept):
        """The ULN ``bounds.bound_value`` would use: the observation's reference range when it can serve,
        else the vocabulary's default for the sex; None when neither can be set."""
        defaults: dict = {}
        factor = None
        if concept.uln is not None:
            factor = self.resolver.factor(concept.uln.unit, concept.unit or "1", concept.molar_mass)
            for sex in ("male", "female", None):
                defaults[sex] = _scaled(concept.uln.for_sex(sex), factor)
        cache = self._ulns

        def uln_of(run: _Run, obs, sex):
            if obs is not None and obs.reference_high is not None:
                uln = quick_uln(run, concept, obs, cache)
                if uln is not None:
                    return uln
            if sex in defaults:
                return defaults[sex]
            return None if concept.uln is None else _scaled(concept.uln.for_sex(sex), factor)
        return uln_of

    def _derived(self, subject: p.DerivedRef, window: p.Duration | None):
        """(value in the concept's canonical unit, None), UNKNOWN, or None (fallback), as ``derive.derived``
        reads it: through the same ``derive.derivation_plan`` (inputs' concepts, unit factors, parameters)."""
        d = subject.derivation
        if d.paired:
            return lambda run: None
        plan = derivation_plan(self.vocabulary, self.resolver, subject)  # the explaining evaluator's own
        inputs = []
        for inp in d.inputs:
            f = plan.factors[inp.key]
            inputs.append((inp.key, self._measure(plan.concepts[inp.key], window), f if isinstance(f, float) else 1.0))
        params = plan.params
        to_canonical = plan.factor if isinstance(plan.factor, float) else 1.0
        needs_age, needs_sex, compute = d.needs_age, d.needs_sex, d.compute

        def value_of(run: _Run):
            values = {}
            unknown = False
            for key, measure, factor in inputs:
                got = measure(run)
                if got is UNKNOWN:
                    unknown = True
                else:
                    values[key] = got[0] * factor
            age = sex = None
            if needs_age:
                age = run.age()
                if age is None:
                    unknown = True
            if needs_sex:
                sex = run.patient.sex
                if sex is None:
                    unknown = True
            if unknown:
                return UNKNOWN
            value, _ = compute(Inputs(values={**values, **params}, age=age, sex=sex))
            return value * to_canonical, None
        return value_of


def compile_protocol(checked: p.CheckedProtocol) -> CompiledProtocol:
    return CompiledProtocol(checked)


def _scaled(default: float | None, factor) -> float | None:
    """A vocabulary default ULN in the canonical unit (as ``bounds.bound_value`` scales it)."""
    return None if default is None else default * (factor if isinstance(factor, float) else 1.0)


class _Measure:
    """The newest usable value of a concept in a window: ``measure.select``'s pick, the very
    selection the explaining evaluator phrases (``measure.measurement``).

    Calling it gives (value in the canonical unit, observation), or ``UNKNOWN`` when
    ``select`` finds no usable value (none recorded, an undated result or an entry naming no
    concept, or naming it in its display only, that may be newer, only future results, the
    newest stale or outside the window, unreadable, unit-less, in a unit that is refused,
    does not convert or does not fit, implausible, or a same-time result that disagrees or
    cannot be read). Read once per patient: criteria that share a measurement (ALT in I4.5
    and E8) share the reading.
    """

    __slots__ = ("concept", "name", "window", "opens")

    def __init__(self, compiled: CompiledProtocol, concept, window: p.Duration | None):
        self.concept = concept
        self.name = concept.name
        self.window = window
        self.opens: dict = {}  # evaluation date -> first day of the window

    def __call__(self, run: _Run):
        memo = run.once
        got = memo.get(self, memo)
        if got is memo:
            got = memo[self] = self.read(run)
        return got

    def read(self, run: _Run):
        records = run._index["observation"].get(self.name)
        if not records:
            return UNKNOWN  # none recorded
        opens = None
        window = self.window
        if window is not None:
            as_of = run.as_of
            opens = self.opens.get(as_of)
            if opens is None:
                opens = self.opens[as_of] = window_start(as_of, window.amount, window.unit)
        got = select(run, self.concept, records, opens)
        if got[0] is PICKED:
            return got[2], got[1]
        return UNKNOWN


def _attestation(node: p.AttestationPlan, protocol_id: str) -> Rule:
    key = node.key

    def rule(run: _Run) -> Outcome:
        return of(attested(run.answers(key), protocol_id))
    return rule


def _fact(node: p.FactPlan, compiled: CompiledProtocol, section: str) -> Rule:
    """A fact as ``facts.fact`` reads it: the record's own fields, then the evidence its concept names;
    with no evidence entry in the record at all, the reading of who is asked (``only_if``) decides
    whether it is "no" or unknown. Evidence that is there is the explaining function's to weigh
    (dates, cut-offs, disagreements)."""
    if node.sex is not None:
        want = node.sex

        def rule_sex(run: _Run) -> Outcome:
            return of(is_sex(run.patient, want))
        return rule_sex
    concept = node.concept
    name = concept.field or concept.name
    evidence = tuple((kind, ev.name) for kind, ev in evidence_sources(compiled.vocabulary, concept))
    reading = compiled._compile(node.only_if, section) if node.only_if is not None else None

    def rule(run: _Run) -> Outcome:
        patient = run.patient
        answer = on_record(patient, concept)[0]
        if answer is not None:
            return MET if answer else NOT_MET
        idx = run._index
        for kind, ev_name in evidence:
            if idx[kind].get(ev_name):
                return run.explained(node)
        if reading is not None and not_asked(reading(run), (), name in patient.unstated_facts):
            return NOT_MET
        return UNKNOWN
    return rule


def _explained(node) -> Rule:
    """Decided by the explaining evaluator's function for the node (the reference), keeping the outcome."""
    def rule(run: _Run) -> Outcome:
        return run.explained(node)
    return rule
