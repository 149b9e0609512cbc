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
reference. The closures decide on their own the records a screening run mostly
sees, by the same reading the explaining functions make:

* measurements (``_Measure``): the newest usable result in the window, picked by
  ``measure.select``, the selection kernel the explaining evaluator phrases: no
  result, an undated one or an entry that may be newer, a stale, future-only,
  unit-less, unreadable or implausible newest result, or a same-time result that
  disagrees, is unknown;
* comparisons against plain, × ULN (reference range, else the vocabulary's
  default for the sex) and sex-specific thresholds, ranges, age, and derived
  values from plain inputs;
* events: each record judged by ``events.record_matches`` (the explaining
  evaluator's own function), without the explanation around it;
* the record's own pregnancy, lactation and sex fields, and attestations.

Anything else (ratios, rates, evidence searches for a fact, multiples of the
LLN, body sites that decide, dates that could not be read) is decided by calling
the explaining rule function and keeping its outcome: a *fallback*, counted in
``CompiledProtocol.fallback_report`` (the benchmark reports the rate). Tests hold
the two evaluators to the same outcome for every criterion of every patient
(tests/test_compiled.py).

An explanation is built only when asked for: ``CompiledProtocol.explain`` runs the
explaining evaluator for that one patient.
"""

from __future__ import annotations

import datetime as dt
from typing import Callable

import attrs

from elig.engine import plan as p
from elig.engine.bounds import COMPARE, quick_uln
from elig.engine.derive import derivation_plan
from elig.engine.events import (
    ACTIVE_CONDITION, GOING_MEDICATION, INACTIVE_CONDITION, NOT_RECORDED, PROCEDURE_STATUS, STOPPED_MEDICATION,
    record_matches,
)
from elig.engine.evaluator import Evaluation, as_date, evaluate, verdict_of
from elig.engine.index import (KINDS, concepts_of, display_only_concept, display_only_note, newest_first_key,
                               site_check)
from elig.engine.logic import unless
from elig.engine.measure import PICKED, select
from elig.engine.results import EvaluationResult, Outcome, Verdict
from elig.records.dates import window_start, within
from elig.records.patient import Condition, Medication, Patient, Procedure
from elig.terminology.derivations import Inputs

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
        # Caches owned by this compiled protocol (no global state): what an entry means per distinct
        # (kind, codes, name, category), ULNs per reference range, one reader per (concept, window)
        # (each holding its unit factors).
        self._entry_kinds: dict = {}
        self._ulns: dict = {}
        self._measures: dict = {}
        self._site_concepts = tuple(c for c in self.vocabulary.concepts if c.site_codes)
        # How often a rule was handed to the explaining evaluator, by rule text; and of how many
        # patients, with how many such patients (``fallback_report``).
        self._fallbacks: dict[str, int] = {}
        self._patients = 0
        self._patients_fell_back = 0
        self._criteria = tuple((c.id, c.section, self._compile(c.plan, c.section)) for c in checked.criteria)

    # ---------------------------------------------------------------- per patient
    def outcomes(self, patient: Patient, as_of=None) -> Screened:
        """The verdict and per-criterion outcomes, identical to ``evaluate``'s, without explanations."""
        run = _Run(self, patient, as_of if isinstance(as_of, dt.date) and not isinstance(as_of, dt.datetime)
                   else as_date(as_of))
        run._index, notes = self._index(patient)
        run.display_notes.extend(notes)
        ids = []
        outcomes = []
        excluded = []
        all_good = True
        for cid, section, rule in self._criteria:
            run.section = section
            o = rule(run)
            ids.append(cid)
            outcomes.append(o)
            if section == "inclusion":
                if o is NOT_MET:
                    excluded.append(cid)
                elif o is not MET:
                    all_good = False
            elif section == "exclusion":
                if o is MET:
                    excluded.append(cid)
                elif o is not NOT_MET:
                    all_good = False
            else:
                all_good = False
        verdict = (Verdict.INELIGIBLE if excluded else Verdict.ELIGIBLE if all_good else Verdict.UNDETERMINED)
        self._patients += 1
        self._patients_fell_back += run.fell_back
        return Screened(patient.id, verdict, tuple(zip(ids, outcomes)), tuple(excluded),
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

    def _index(self, patient: Patient) -> tuple[dict[str, dict[str, list]], list[str]]:
        """``index.index_record``'s index and notes, each distinct entry kind looked up once.

        What an entry contributes (its concepts, whether it names none, the concept its display
        alone names) depends only on (kind, codes, name, category), which this protocol caches.
        """
        idx: dict[str, dict[str, list]] = {kind: {} for kind in KINDS}
        unmatched: dict[str, list] = {}
        unreadable: dict[str, list] = {}
        idx["unmatched"] = unmatched
        idx["unreadable"] = unreadable
        notes: list[str] = []
        cache = self._entry_kinds
        for kind, entries in (("observation", patient.observations), ("condition", patient.conditions),
                              ("procedure", patient.procedures), ("medication", patient.medications)):
            by_name = idx[kind]
            for entry in entries:
                codes = entry.codes
                key = (kind, codes, entry.concept, getattr(entry, "category", ()))
                known = cache.get(key)
                if known is None:
                    known = cache[key] = self._entry_kind(kind, entry)
                names, nameless, shown = known
                for name in names:
                    got = by_name.get(name)
                    if got is None:
                        by_name[name] = [entry]
                    else:
                        got.append(entry)
                if nameless:
                    unreadable.setdefault(kind, []).append(entry)
                if shown is not None:
                    coding, concept = shown
                    notes.append(display_only_note(entry, coding, concept))
                    if kind == "observation":
                        unmatched.setdefault(concept.name, []).append(entry)
        for kind in idx:
            for entries in idx[kind].values():
                if len(entries) > 1:
                    entries.sort(key=newest_first_key, reverse=True)
        return idx, notes

    def _entry_kind(self, kind: str, entry) -> tuple[tuple[str, ...], bool, tuple | None]:
        concepts = concepts_of(self.vocabulary, entry, self._site_concepts)
        shown = display_only_concept(self.vocabulary, entry) if not concepts and entry.codes else None
        return tuple(c.name for c in concepts), not entry.concept and not entry.codes, shown

    # ---------------------------------------------------------------- compiling plan nodes
    def _compile(self, node: p.RulePlan, section: str) -> Rule:
        if isinstance(node, p.LogicPlan):
            return self._logic(node, section)
        if isinstance(node, p.ComparisonPlan):
            return self._comparison(node)
        if isinstance(node, p.EventPlan):
            return self._event(node)
        if isinstance(node, p.AttestationPlan):
            return _attestation(node)
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
        negate = op == "none"

        def rule_or(run: _Run) -> Outcome:
            out = NOT_MET
            for child in children:
                o = child(run)
                if o is MET:
                    out = MET
                    break  # true wins
                if o is UNKNOWN:
                    out = UNKNOWN
            if negate:
                return NOT_MET if out is MET else MET if out is NOT_MET else UNKNOWN
            return out
        return rule_or

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
        kind, name = concept.kind, concept.name
        procedure = kind == "procedure"  # as events.records_of gathers them: status codes are conditions
        site_codes = bool(concept.site_codes)
        matches = _record_matcher(node)

        def rule(run: _Run) -> Outcome:
            idx = run._index
            records = idx[kind].get(name, ())
            unreadable = idx["unreadable"].get(kind)
            if procedure:
                records = [*records, *idx["condition"].get(name, ())]
                unreadable = unreadable or idx["unreadable"].get("condition")
            out = NOT_MET
            as_of = run.as_of
            for r in records:
                if (getattr(r, "verification_status", None) or "") in NOT_RECORDED:
                    continue
                ok = matches(as_of, r)
                if site_codes:
                    site = site_check(concept, r)  # a record matched through its body site only
                    if site is not None:
                        ok = _KLEENE_AND[ok, site[0]]
                if ok:
                    return MET  # true wins
                if ok is None:
                    out = UNKNOWN
            if out is NOT_MET and unreadable:
                return UNKNOWN  # an entry that names no concept may be one
            return out
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


def _record_matcher(node: p.EventPlan):
    """Whether one record satisfies the event's prefix, grade and timing: ``events.record_matches``'s
    answer (True, False or None), without its phrase. Records with a date that could not be read
    are left to ``record_matches`` itself."""
    active = node.prefix in ("active", "taking")
    grade = node.grade
    timed = node.timing_kind is not None and node.duration is not None
    kind, op, duration = node.timing_kind, node.timing_op, node.duration
    acute = node.concept.acute
    opens_by_date: dict = {}

    def matches(as_of: dt.date, r) -> bool | None:
        if r.unreadable_dates:
            return record_matches(as_of, node, r)[0]
        if isinstance(r, Condition):
            cls, start, end = Condition, r.onset, r.abatement
        elif isinstance(r, (Medication, Procedure)):
            cls, start, end = (Medication if isinstance(r, Medication) else Procedure), r.start, r.end
        else:
            return record_matches(as_of, node, r)[0]
        if start is not None:
            if start.earliest() > as_of:
                return False
            if start.latest() > as_of:
                return None  # known only to the month (or year) of the evaluation date
        out = True
        if active:
            out = _active_at(r, cls, start, end, as_of)
            if out is False:
                return False
        if grade is not None:
            g = getattr(r, "grade", None)
            if g is None:
                out = None
            elif not grade[0] <= g <= grade[1]:
                return False
        if timed:
            opens = opens_by_date.get(as_of)
            if opens is None:
                opens = opens_by_date[as_of] = window_start(as_of, duration.amount, duration.unit)
            t = _timing(kind, op, acute, opens, as_of, r, cls, start, end)
            if t is False:
                return False
            if t is None:
                out = None
        return out
    return matches


def _active_at(r, cls, start, end, as_of: dt.date) -> bool | None:
    """``events.active_at``'s answer, without its phrase."""
    if end is not None:
        if end.latest() < as_of:
            return False
        if end.earliest() >= as_of:
            return True
        return None
    status = (getattr(r, "clinical_status", None) or getattr(r, "status", None) or "").lower()
    if cls is Condition:
        if status and status not in _CONDITION_STATUS:
            return None  # a status elig cannot read may be 'resolved'
        return status not in INACTIVE_CONDITION
    if cls is Medication:
        if status and status not in _MEDICATION_STATUS:
            return None
        return status not in STOPPED_MEDICATION
    if status and status not in PROCEDURE_STATUS:
        return None
    if status == "completed" and start is not None:
        if start.latest() < as_of:
            return False
        return True if start.earliest() >= as_of else None
    return True


def _timing(kind, op, acute, opens: dt.date, as_of: dt.date, r, cls, start, end) -> bool | None:
    """``events.timing``'s answer, without its phrase."""
    if kind == "onset_within":
        return None if start is None else within(start, opens, as_of)
    if kind == "lasting":
        if start is None:
            return None
        a, b = _LASTING[op](start.earliest(), opens), _LASTING[op](start.latest(), opens)
        return a if a == b else None
    if start is None:
        return None
    if start.earliest() > as_of:
        return False
    began_in = within(start, opens, as_of)
    if began_in:
        return True
    if acute:
        return began_in
    if cls is Procedure and end is None:
        return False if start.latest() < opens else None
    if end is not None:
        if end.latest() < opens:
            return False
        return True if within(end, opens, as_of) or end.earliest() > as_of else None
    return _active_at(r, cls, start, end, opens)


# lasting OP D  <=>  onset after (or before, ...) the day D before the evaluation date (events.timing)
_LASTING = {"<": lambda onset, b: onset > b, "<=": lambda onset, b: onset >= b, ">": lambda onset, b: onset < b,
            ">=": lambda onset, b: onset <= b, "==": lambda onset, b: onset == b, "!=": lambda onset, b: onset != b}
_CONDITION_STATUS = ACTIVE_CONDITION + INACTIVE_CONDITION
_MEDICATION_STATUS = STOPPED_MEDICATION + GOING_MEDICATION


def _scaled(default: float | None, factor) -> float | None:
    """A vocabulary default ULN in the canonical unit (as ``bounds.bound_value`` scales it)."""
    return None if default is None else default * (factor if isinstance(factor, float) else 1.0)


# ``kleene_and`` of two yes/no/None answers, as events.event combines a record's match and its site
_KLEENE_AND = {(a, b): (False if a is False or b is False else None if a is None or b is None else True)
               for a in (True, False, None) for b in (True, False, None)}


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


def _answers(run: _Run):
    """The record's answers by attestation key, read once per patient; None when an answer names a
    study (``facts.attestation`` then weighs which study it was given for)."""
    got = run.once.get(_answers, run.once)
    if got is run.once:
        got = {}
        for a in run.patient.attestations:
            if a.study:
                got = None
                break
            if a.value is not None:
                seen = got.get(a.key)
                if seen is None:
                    got[a.key] = {a.value}
                else:
                    seen.add(a.value)
        run.once[_answers] = got
    return got


def _attestation(node: p.AttestationPlan) -> Rule:
    key = node.key

    def rule(run: _Run) -> Outcome:
        answers = _answers(run)
        if answers is None:
            return run.explained(node)
        given = answers.get(key)
        if given is None or len(given) != 1:
            return UNKNOWN  # not attested yet, or sources that disagree (as facts.attestation reads them)
        return MET if next(iter(given)) else NOT_MET
    return rule


def _fact(node: p.FactPlan, compiled: CompiledProtocol, section: str) -> Rule:
    """A fact as ``facts.fact`` reads it: the record's own field, then the sex the fact cannot hold
    for, then the evidence its concept names; with no evidence entry in the record at all, the
    reading of who is asked (``only_if``) decides whether it is "no" or unknown. Evidence that is
    there is the explaining function's to weigh (dates, cut-offs, disagreements)."""
    if node.sex is not None:
        want = node.sex

        def rule_sex(run: _Run) -> Outcome:
            sex = run.patient.sex
            if sex is None:
                return UNKNOWN
            return MET if sex == want else NOT_MET
        return rule_sex
    concept = node.concept
    field, not_for_sex = concept.field, concept.not_for_sex
    name = concept.field or concept.name
    evidence = []  # (index kind, concept name) of each piece of evidence facts.evidence reads
    for ev_name in concept.evidence:
        ev = compiled.vocabulary.lookup(ev_name)
        if ev.kind in ("test", "measurement"):
            evidence.append(("observation", ev.name))
        elif ev.kind == "condition":
            evidence.append(("condition", ev.name))
    reading = compiled._compile(node.only_if, section) if node.only_if is not None else None

    def rule(run: _Run) -> Outcome:
        patient = run.patient
        value = getattr(patient, field, None) if field else None
        if value is not None:
            return MET if value else NOT_MET
        sex = patient.sex
        if sex is not None and sex == not_for_sex:
            return NOT_MET
        idx = run._index
        for kind, ev_name in evidence:
            if idx[kind].get(ev_name):
                return run.explained(node)
        # No evidence: "not asked" when the reading excludes the patient and the record says nothing.
        if reading is not None and name not in patient.unstated_facts and reading(run) is NOT_MET:
            return NOT_MET
        return UNKNOWN
    return rule


def _explained(node) -> Rule:
    """Decided by the explaining evaluator's function for the node (the reference), keeping the outcome."""
    def rule(run: _Run) -> Outcome:
        return run.explained(node)
    return rule
