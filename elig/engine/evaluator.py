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
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Iterable

import attrs

from elig import __version__
from elig.engine import plan as p
from elig.language.canonical import SYMBOLS
from elig.records.dates import PartialDate, parse_date, whole_years_between, window_start, within
from elig.terminology.derivations import Inputs
from elig.records.patient import Condition, Medication, Observation, Patient, Procedure
from elig.engine.results import (
    CollectItem, CriterionResult, Derived, EvaluationResult, Explanation, Outcome, ThresholdUsed,
    ValueUsed, Verdict, kleene_and, kleene_or,
)
from elig.terminology.units import format_converted as fmt3, format_number as fmt, with_unit
from elig.terminology.vocabulary import Concept

REL_TOL = 1e-9
ACTIVE_CONDITION = ("active", "recurrence", "relapse")
INACTIVE_CONDITION = ("inactive", "remission", "resolved")
ACTIVE_MEDICATION = ("active", "on-hold", "intended")
PAIRING_TOLERANCE = dt.timedelta(hours=1)


def compare(a: float, op: str, b: float) -> bool:
    """Compare with exact boundaries: a value within rounding noise of b equals b."""
    equal = math.isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)
    if op == ">=":
        return equal or a > b
    if op == "<=":
        return equal or a < b
    if op == ">":
        return not equal and a > b
    if op == "<":
        return not equal and a < b
    if op == "==":
        return equal
    if op == "!=":
        return not equal
    raise ValueError(op)


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


@attrs.frozen
class _Picked:
    """A usable measurement: the record, its value in canonical units, and how it was read."""

    obs: Observation
    value: float
    used: ValueUsed


@attrs.frozen
class _Unusable:
    reason: str
    missing: tuple[str, ...]
    values: tuple[ValueUsed, ...] = ()


def evaluate(checked: p.CheckedProtocol, patient: Patient, as_of=None) -> EvaluationResult:
    """Evaluate every criterion; pure: the same inputs give the same result."""
    return _Evaluation(checked, patient, as_of_date := as_date(as_of)).run(as_of_date)


class _Evaluation:
    def __init__(self, checked: p.CheckedProtocol, patient: Patient, as_of: dt.date):
        self.checked = checked
        self.patient = patient
        self.as_of = as_of
        self.vocabulary = checked.vocabulary
        self.resolver = checked.resolver
        self._index: dict[str, dict[str, list]] | None = None
        self.display_notes: list[str] = []
        self.section = "inclusion"

    # ------------------------------------------------------------ record index
    def index(self) -> dict[str, dict[str, list]]:
        """Entries of the record by concept name, built once per evaluation, newest first."""
        if self._index is None:
            idx: dict[str, dict[str, list]] = {"observation": {}, "condition": {}, "procedure": {}, "medication": {}}
            for kind, entries in (("observation", self.patient.observations), ("condition", self.patient.conditions),
                                  ("procedure", self.patient.procedures), ("medication", self.patient.medications)):
                for entry in entries:
                    concepts = self._concepts_of(entry)
                    for concept in concepts:
                        idx[kind].setdefault(concept.name, []).append(entry)
                    if not concepts and entry.codes:
                        self._display_only(entry)
            for kind in idx:
                for entries in idx[kind].values():
                    entries.sort(key=_newest_first_key, reverse=True)
            self._index = idx
        return self._index

    def _display_only(self, entry) -> None:
        """A coded entry whose display names a concept its code is not in: say so, never match it.

        Display text never decides a match; but silently dropping a 'Myocardial infarction'
        coded in a local system could make a patient look eligible, so the report shows it.
        """
        for coding in entry.codes:
            if not coding.display:
                continue
            text = re.sub(r"\s*\([^)]*\)\s*$", "", coding.display)  # SNOMED semantic tags: "(disorder)"
            concept = self.vocabulary.lookup(text)
            if concept is not None:
                self.display_notes.append(
                    f"{entry.source}: '{coding.display}' names the concept '{concept.name}', but its code "
                    f"{coding} is not in that concept's value set, so it is not counted (add the code to the "
                    f"vocabulary if it means the same)")
                return

    def _concepts_of(self, entry) -> list[Concept]:
        found: list[Concept] = []
        for coding in entry.codes:
            for concept in self.vocabulary.by_code(coding):
                if concept not in found:
                    found.append(concept)
        if entry.concept:
            # The native format names concepts directly; FHIR entries are matched by code only.
            concept = self.vocabulary.lookup(entry.concept)
            if concept is not None and concept not in found:
                found.append(concept)
                # A named entry carries its concept's codes, so broader value sets that hold them
                # match too: a record of 'dialysis' is also 'organ support'.
                found.extend(c for c in self.vocabulary.broader(concept) if c not in found)
        return found

    # ------------------------------------------------------------ whole protocol
    def run(self, as_of: dt.date) -> EvaluationResult:
        self.index()  # also collects the coded entries whose display alone names a concept
        results = []
        for c in self.checked.criteria:
            self.section = c.section
            explanation = self.rule(c.plan)
            results.append(CriterionResult(
                id=c.id, section=c.section, sentence=c.sentence, rule=c.rule_text, notes=c.notes,
                outcome=explanation.outcome, explanation=explanation, attested=_only_attestations(c.plan),
            ))
        verdict = overall_verdict(results)
        return EvaluationResult(
            protocol_id=self.checked.id, protocol_title=self.checked.title, protocol_checksum=self.checked.checksum,
            patient_id=self.patient.id, patient_source=self.patient.source_file, patient_name=self.patient.name,
            as_of=as_of.isoformat(), elig_version=__version__, verdict=verdict, criteria=tuple(results),
            to_collect=collect(results),
            data_issues=tuple(str(i) for i in self.patient.issues) + tuple(self.display_notes),
        )

    def rule(self, node: p.RulePlan) -> Explanation:
        if isinstance(node, p.ComparisonPlan):
            return self.comparison(node)
        if isinstance(node, p.EventPlan):
            return self.event(node)
        if isinstance(node, p.FactPlan):
            return self.fact(node)
        if isinstance(node, p.AttestationPlan):
            return self.attestation(node)
        if isinstance(node, p.RatePlan):
            return self.rate(node)
        if isinstance(node, p.LogicPlan):
            return self.logic(node)
        raise TypeError(type(node).__name__)

    # ------------------------------------------------------------ logic
    def logic(self, node: p.LogicPlan) -> Explanation:
        text = node.text
        if node.op == "unless":
            main = self.rule(node.children[0])
            exception = self.rule(node.children[1])
            if self.section == "inclusion":
                outcome = kleene_or([main.outcome, exception.outcome])
            else:
                outcome = kleene_and([main.outcome, exception.outcome.negate()])
            if exception.outcome is Outcome.MET:
                summary = f"waived: {exception.summary}"
            elif exception.outcome is Outcome.NOT_MET:
                summary = f"{main.summary}; the exception does not apply ({exception.summary})"
            else:
                summary = f"{main.summary}; exception undetermined: {exception.summary}"
            return Explanation(kind="unless", rule=text, outcome=outcome, summary=summary,
                               children=(main, exception))
        children = tuple(self.rule(c) for c in node.children)
        outcomes = [c.outcome for c in children]
        if node.op in ("and", "all"):
            outcome = kleene_and(outcomes)
        elif node.op in ("or", "any"):
            outcome = kleene_or(outcomes)
        elif node.op == "none":
            outcome = kleene_or(outcomes).negate()
        else:  # not
            outcome = outcomes[0].negate()
        return Explanation(kind=node.op, rule=text, outcome=outcome, summary=_logic_summary(node.op, children, outcome),
                           children=children)

    # ------------------------------------------------------------ measurements
    def window_text(self, window: p.Duration | None) -> str:
        if window is None:
            return ""
        return f" within {window.text} before {self.as_of.isoformat()}"

    def measurement(self, concept: Concept, label: str, window: p.Duration | None,
                    candidates: list | None = None) -> _Picked | _Unusable:
        """The newest usable value of a concept in the window, or why there is none."""
        want = f"{label}{self.window_text(window)}"
        records = candidates if candidates is not None else self.index()["observation"].get(concept.name, [])
        records = [o for o in records if o.value is not None or o.problem or o.result is None]
        if not records:
            return _Unusable(f"no {label} recorded", (want,))
        start = window_start(self.as_of, window.amount, window.unit) if window else dt.date.min
        dated = [o for o in records if o.date is not None]
        if not dated:
            return _Unusable(f"{label} is recorded without a date", (want,))
        not_future = [o for o in dated if o.date.earliest() <= self.as_of]
        if not not_future:
            return _Unusable(f"every {label} is dated after the evaluation date {self.as_of}", (want,))
        newest = not_future[0]
        in_window = within(newest.date, start, self.as_of) if window else True
        if in_window is None:
            return _Unusable(f"the newest {label} is dated only to {newest.date}, which may fall outside "
                             f"the {window.text} window", (want,), (self.raw_value(concept, newest),))
        if not in_window:
            return _Unusable(f"stale: the newest {label} is from {newest.date}, older than {window.text} "
                             f"before {self.as_of}", (want,), (self.raw_value(concept, newest),))
        picked = self.read_value(concept, label, newest, want)
        if isinstance(picked, _Picked):
            # Two results at the same instant that disagree: neither may silently win.
            for twin in not_future[1:]:
                if twin.date != newest.date:
                    break
                other = self.read_value(concept, label, twin, want)
                if isinstance(other, _Picked) and not math.isclose(other.value, picked.value, rel_tol=REL_TOL):
                    return _Unusable(f"conflicting {label} results at the same time ({newest.date}): "
                                     f"{fmt(picked.value)} and {with_unit(fmt(other.value), concept.unit)}",
                                     (f"{want} (confirmed result)",), (picked.used, other.used))
        return picked

    def raw_value(self, concept: Concept, obs: Observation) -> ValueUsed:
        return ValueUsed(concept=concept.name, value=obs.value, unit=obs.unit, date=_date(obs.date),
                         source=str(obs.source), text=obs.value_text or obs.result)

    def read_value(self, concept: Concept, label: str, obs: Observation, want: str) -> _Picked | _Unusable:
        raw = self.raw_value(concept, obs)
        if obs.problem or obs.value is None:
            return _Unusable(f"{label} on {obs.date} cannot be used: {obs.problem or 'no numeric value'}",
                             (want,), (raw,))
        unit = obs.unit
        if unit is None:
            if concept.unitless == "canonical":
                unit = concept.unit
            else:
                return _Unusable(f"{label} on {obs.date} is recorded without a unit, so {fmt(obs.value)} "
                                 f"cannot be read", (want,), (raw,))
        factor = self.resolver.factor(unit, concept.unit or "1", concept.molar_mass)
        if isinstance(factor, str):
            return _Unusable(f"{label} on {obs.date}: {factor}", (want,), (raw,))
        value = obs.value * factor
        conversion = None
        if self.resolver.unit_key(unit) != self.resolver.unit_key(concept.unit or "1"):
            conversion = f"{with_unit(fmt(obs.value), unit)} = {with_unit(fmt3(value), concept.unit)}"
        used = attrs.evolve(raw, canonical_value=value, canonical_unit=concept.unit, conversion=conversion)
        if concept.plausible and not (concept.plausible[0] <= value <= concept.plausible[1]):
            lo, hi = concept.plausible
            return _Unusable(f"implausible {label} {with_unit(fmt(value), concept.unit)} on {obs.date} (plausible range "
                             f"{fmt(lo)}–{with_unit(fmt(hi), concept.unit)}); check the value and its unit", (want,), (used,))
        return _Picked(obs, value, used)

    def age(self) -> int | None:
        if self.patient.birth_date is None:
            return None
        return whole_years_between(self.patient.birth_date, self.as_of)

    def subject_value(self, subject: p.SubjectRef, window: p.Duration | None):
        """(value, values used, derived explanation) or _Unusable."""
        if isinstance(subject, p.MeasureRef):
            if subject.concept.kind == "demographic":
                return self.demographic(subject)
            picked = self.measurement(subject.concept, subject.label, window)
            if isinstance(picked, _Unusable):
                return picked
            return picked.value, (picked.used,), None, picked.obs
        if isinstance(subject, p.RatioRef):
            return self.ratio(subject, window)
        return self.derived(subject, window)

    def demographic(self, subject: p.MeasureRef):
        if subject.concept.name == "age":
            if self.patient.birth_date is None:
                return _Unusable("the birth date is not recorded", ("birth date",))
            age = self.age()
            if age is None:
                return _Unusable(f"the birth date is known only to {self.patient.birth_date}, "
                                 f"which leaves the age undecided", ("full birth date",))
            used = ValueUsed(concept="age", value=float(age), unit="years", canonical_value=float(age),
                             canonical_unit="year", date=self.as_of.isoformat(),
                             source=f"birth date {self.patient.birth_date} ({self.patient.source_file or 'record'})",
                             text=f"{age} years at {self.as_of}")
            return float(age), (used,), None, None
        return _Unusable(f"no rule computes {subject.concept.name}", (subject.concept.name,))

    def ratio(self, subject: p.RatioRef, window: p.Duration | None):
        pair = self.paired([subject.numerator, subject.denominator], window)
        if isinstance(pair, _Unusable):
            return pair
        (num, den), pairing = pair
        if den.value == 0:
            return _Unusable(f"{subject.denominator.label} is zero", (subject.denominator.label,), (den.used,))
        value = num.value / den.value
        unit = subject.unit
        derived = Derived(
            concept=subject.label, method="ratio of paired measurements",
            formula=f"{subject.label} = {subject.numerator.label} / {subject.denominator.label}",
            substituted=f"{with_unit(fmt(num.value), subject.numerator.concept.unit)} / {fmt(den.value)} = {with_unit(fmt(value), unit)}",
            value=value, unit=unit, inputs=(num.used, den.used), pairing=pairing,
        )
        return value, (num.used, den.used), derived, None

    def paired(self, refs: list, window: p.Duration | None):
        """Measurements taken together: each input at the first input's time (±1 h, or the same day)."""
        first, *others = refs
        records = self.index()["observation"].get(first.concept.name, [])
        want = [f"{r.label} measured together{self.window_text(window)}" for r in refs]
        if not records:
            return _Unusable(f"no {first.label} recorded", tuple(want))
        start = window_start(self.as_of, window.amount, window.unit) if window else dt.date.min
        reasons = []
        for obs in records:
            if obs.date is None or obs.date.earliest() > self.as_of:
                continue
            if window and within(obs.date, start, self.as_of) is not True:
                reasons.append(f"the newest {first.label} ({obs.date}) is outside the {window.text} window")
                break
            picked_first = self.read_value(first.concept, first.label, obs, want[0])
            if isinstance(picked_first, _Unusable):
                reasons.append(picked_first.reason)
                continue
            partners = []
            for ref in others:
                partner = self._partner(ref, obs)
                if partner is None:
                    break
                picked = self.read_value(ref.concept, ref.label, partner, want[0])
                if isinstance(picked, _Unusable):
                    return picked
                partners.append(picked)
            if len(partners) == len(others):
                when = obs.date
                pairing = (f"{first.label} of {when} paired with " +
                           ", ".join(f"{r.label} of {pk.obs.date}" for r, pk in zip(others, partners)) +
                           (" (same time ±1 h)" if when.time else " (same day)"))
                return [picked_first, *partners], pairing
            reasons.append(f"no {others[len(partners)].label} recorded at the time of {first.label} on {obs.date}")
        reason = reasons[0] if reasons else f"no usable {first.label}"
        return _Unusable(reason, tuple(want))

    def _partner(self, ref, obs: Observation) -> Observation | None:
        candidates = self.index()["observation"].get(ref.concept.name, [])
        at = obs.date.instant()
        best = None
        for other in candidates:
            if other.date is None:
                continue
            other_at = other.date.instant()
            if at is not None and other_at is not None:
                gap = abs(other_at - at)
                if gap <= PAIRING_TOLERANCE and (best is None or gap < best[0]):
                    best = (gap, other)
            elif other.date.is_complete and obs.date.is_complete and other.date.earliest() == obs.date.earliest():
                if best is None:
                    best = (dt.timedelta(0), other)
        return best[1] if best else None

    def derived(self, subject: p.DerivedRef, window: p.Duration | None):
        d = subject.derivation
        values: dict[str, float] = {}
        used: list[ValueUsed] = []
        missing: list[str] = []
        reasons: list[str] = []
        pairing = None
        concepts = {i.key: self.vocabulary.lookup(i.concept) for i in d.inputs}
        if d.paired:
            refs = [p.MeasureRef(concepts[i.key], i.concept) for i in d.inputs]
            pair = self.paired(refs, window)
            if isinstance(pair, _Unusable):
                return pair
            picked_list, pairing = pair
            picked_map = dict(zip([i.key for i in d.inputs], picked_list))
        else:
            picked_map = {}
            for inp in d.inputs:
                picked = self.measurement(concepts[inp.key], inp.concept, window)
                if isinstance(picked, _Unusable):
                    missing.extend(picked.missing)
                    reasons.append(picked.reason)
                    used.extend(picked.values)
                    continue
                picked_map[inp.key] = picked
        for inp in d.inputs:
            picked = picked_map.get(inp.key)
            if picked is None:
                continue
            concept = concepts[inp.key]
            factor = self.resolver.factor(concept.unit, inp.unit, concept.molar_mass)
            values[inp.key] = picked.value * (factor if isinstance(factor, float) else 1.0)
            used.append(picked.used)
        age = sex = None
        if d.needs_age:
            age = self.age()
            if age is None:
                missing.append("birth date")
                reasons.append("the age is unknown (no full birth date)")
            else:
                used.insert(0, ValueUsed(concept="age", value=float(age), unit="years", date=self.as_of.isoformat(),
                                         source=f"birth date {self.patient.birth_date}", text=f"{age} years"))
        if d.needs_sex:
            sex = self.patient.sex
            if sex is None:
                missing.append("sex")
                reasons.append("the sex is not recorded")
            else:
                used.insert(1 if d.needs_age and age is not None else 0,
                            ValueUsed(concept="sex", value=None, unit=None, text=sex, source="patient record"))
        if reasons:
            return _Unusable(f"{subject.concept.name} ({d.title}) cannot be computed: " + "; ".join(reasons),
                             tuple(missing), tuple(used))
        params = {prm.key: prm.default for prm in d.params}
        overridden = dict(subject.params)
        params.update(overridden)
        value, substituted = d.compute(Inputs(values={**values, **params}, age=age, sex=sex))
        param_text = tuple(f"{prm.names[0]} = {fmt(params[prm.key])}" + ("" if prm.unit == "1" else f" {prm.unit}") +
                           ("" if prm.key in overridden else " (default)") for prm in d.params)
        derived = Derived(concept=subject.concept.name, method=d.title, formula=d.formula,
                          substituted=f"{substituted} = {with_unit(fmt(value), d.unit)}", value=value, unit=d.unit,
                          inputs=tuple(used), reference=d.reference, pairing=pairing, parameters=param_text)
        factor = self.resolver.factor(d.unit, subject.concept.unit or d.unit)
        canonical = value * factor if isinstance(factor, float) else value
        return canonical, tuple(used), derived, None

    # ------------------------------------------------------------ comparisons
    def comparison(self, node: p.ComparisonPlan) -> Explanation:
        text = node.text
        label = node.subject.label
        got = self.subject_value(node.subject, node.window)
        if isinstance(got, _Unusable):
            derived = None
            return Explanation(kind="comparison", rule=text, outcome=Outcome.UNKNOWN,
                               summary=f"unknown: {got.reason}", reason=got.reason, missing=got.missing,
                               values=got.values)
        value, used, derived, obs = got
        unit = _subject_unit(node.subject)
        test = node.test
        if isinstance(test, p.SexTest):
            return self.sex_comparison(node, text, label, value, unit, used, derived, obs)
        if isinstance(test, p.CompareTest):
            bound = self.bound_value(test.bound, node.subject, obs)
            if isinstance(bound, _Unusable):
                return Explanation(kind="comparison", rule=text, outcome=Outcome.UNKNOWN,
                                   summary=f"unknown: {bound.reason}", reason=bound.reason,
                                   missing=bound.missing, values=used, derived=derived)
            limit, threshold = bound
            threshold = attrs.evolve(threshold, text=f"{SYMBOLS[test.op]} {threshold.text}")
            outcome = Outcome.of(compare(value, test.op, limit))
            summary = (f"{label} {with_unit(fmt(value), unit)} {'meets' if outcome is Outcome.MET else 'does not meet'} "
                       f"{SYMBOLS[test.op]} {_limit_text(test.bound, limit, unit)}")
            distance = _distance(value, test.op, limit, unit) if outcome is Outcome.NOT_MET else None
            return Explanation(kind="comparison", rule=text, outcome=outcome, summary=summary, values=used,
                               threshold=threshold, derived=derived, distance=distance)
        # range
        lo = self.bound_value(test.low, node.subject, obs)
        hi = self.bound_value(test.high, node.subject, obs)
        for b in (lo, hi):
            if isinstance(b, _Unusable):
                return Explanation(kind="comparison", rule=text, outcome=Outcome.UNKNOWN,
                                   summary=f"unknown: {b.reason}", reason=b.reason, missing=b.missing, values=used,
                                   derived=derived)
        (lo_v, lo_t), (hi_v, hi_t) = lo, hi
        ok_lo = compare(value, ">=" if test.low_inclusive else ">", lo_v)
        ok_hi = compare(value, "<=" if test.high_inclusive else "<", hi_v)
        outcome = Outcome.of(ok_lo and ok_hi)
        range_text = (f"{'[' if test.low_inclusive else '('}{_limit_text(test.low, lo_v, unit)}, "
                      f"{_limit_text(test.high, hi_v, unit)}{']' if test.high_inclusive else ')'}")
        summary = f"{label} {with_unit(fmt(value), unit)} is {'within' if outcome is Outcome.MET else 'outside'} {range_text}"
        threshold = ThresholdUsed(text=f"{'' if test.low_inclusive else 'more than '}{lo_t.text} to "
                                       f"{hi_t.text}{'' if test.high_inclusive else ' (exclusive)'}",
                                  value=None, unit=unit, uln=lo_t.uln or hi_t.uln,
                                  uln_source=lo_t.uln_source or hi_t.uln_source)
        distance = None
        if outcome is Outcome.NOT_MET:
            distance = (_distance(value, ">=" if test.low_inclusive else ">", lo_v, unit) if not ok_lo
                        else _distance(value, "<=" if test.high_inclusive else "<", hi_v, unit))
        return Explanation(kind="comparison", rule=text, outcome=outcome, summary=summary, values=used,
                           threshold=threshold, derived=derived, distance=distance)

    def sex_comparison(self, node, text, label, value, unit, used, derived, obs) -> Explanation:
        outcomes = {}
        thresholds = {}
        for sex, test in node.test.branches:
            bound = self.bound_value(test.bound, node.subject, obs, sex=sex)
            if isinstance(bound, _Unusable):
                outcomes[sex] = Outcome.UNKNOWN
                continue
            limit, threshold = bound
            thresholds[sex] = (test, limit, threshold)
            outcomes[sex] = Outcome.of(compare(value, test.op, limit))
        sex = self.patient.sex
        if sex in outcomes:
            outcome = outcomes[sex]
            test, limit, threshold = thresholds.get(sex, (None, None, None))
            if test is None:
                return Explanation(kind="comparison", rule=text, outcome=Outcome.UNKNOWN,
                                   summary=f"unknown: no threshold could be set for {sex}", values=used,
                                   derived=derived, reason="threshold unavailable")
            summary = (f"{label} {with_unit(fmt(value), unit)} {'meets' if outcome is Outcome.MET else 'does not meet'} "
                       f"{SYMBOLS[test.op]} {_limit_text(test.bound, limit, unit)} (threshold for {sex})")
            return Explanation(kind="comparison", rule=text, outcome=outcome, summary=summary, values=used,
                               threshold=attrs.evolve(threshold, text=f"{SYMBOLS[test.op]} {threshold.text} if {sex}"),
                               derived=derived,
                               distance=_distance(value, test.op, limit, unit) if outcome is Outcome.NOT_MET else None)
        distinct = set(outcomes.values())
        if len(distinct) == 1 and Outcome.UNKNOWN not in distinct:
            outcome = distinct.pop()
            return Explanation(kind="comparison", rule=text, outcome=outcome,
                               summary=f"{label} {with_unit(fmt(value), unit)} gives '{outcome}' whatever the sex "
                                       f"(sex not recorded)", values=used, derived=derived)
        reason = "the sex is not recorded, and the threshold depends on it"
        return Explanation(kind="comparison", rule=text, outcome=Outcome.UNKNOWN, summary=f"unknown: {reason}",
                           values=used, derived=derived, reason=reason, missing=("sex",))

    def bound_value(self, bound: p.Bound, subject: p.SubjectRef, obs: Observation | None, sex: str | None = None):
        """The threshold as a canonical float, resolving x ULN; or why it cannot be set."""
        unit = _subject_unit(subject)
        if bound.lln_factor is not None:
            return self.lln_value(bound, subject, obs, unit)
        if bound.uln_factor is None:
            return bound.value, ThresholdUsed(text=bound.text, value=bound.value, unit=unit)
        concept = subject.concept
        uln, source = None, None
        if obs is not None and obs.reference_high is not None:
            ref_unit = obs.reference_unit or obs.unit or concept.unit
            factor = self.resolver.factor(ref_unit, concept.unit or "1", concept.molar_mass) if ref_unit else 1.0
            if isinstance(factor, float):
                uln = obs.reference_high * factor
                source = f"reference range of {obs.source.record} (upper limit {with_unit(fmt(obs.reference_high), ref_unit)})"
        if uln is None and concept.uln is not None:
            sex_for_uln = sex or self.patient.sex
            default = concept.uln.for_sex(sex_for_uln)
            if default is not None:
                factor = self.resolver.factor(concept.uln.unit, concept.unit or "1", concept.molar_mass)
                uln = default * (factor if isinstance(factor, float) else 1.0)
                specific = concept.uln.male is not None and concept.uln.female is not None
                source = f"{concept.uln.source}" + (f", {sex_for_uln}" if specific else "")
        if uln is None:
            why = ("the observation has no reference range and the default ULN depends on sex, which is not recorded"
                   if concept.uln is not None else
                   "the observation has no reference range and the vocabulary declares no default ULN")
            return _Unusable(why, (f"reference range (ULN) of {subject.label}",) if concept.uln is None else ("sex",))
        limit = bound.uln_factor * uln
        return limit, ThresholdUsed(text=bound.text, value=limit, unit=unit, uln=uln, uln_source=source)

    def lln_value(self, bound: p.Bound, subject: p.SubjectRef, obs: Observation | None, unit: str):
        """A multiple of the lower limit of normal, from the observation's reference range."""
        concept = subject.concept
        if obs is not None and obs.reference_low is not None:
            ref_unit = obs.reference_unit or obs.unit or concept.unit
            factor = self.resolver.factor(ref_unit, concept.unit or "1", concept.molar_mass) if ref_unit else 1.0
            if isinstance(factor, float):
                lln = obs.reference_low * factor
                source = f"reference range of {obs.source.record} (lower limit {with_unit(fmt(obs.reference_low), ref_unit)})"
                limit = bound.lln_factor * lln
                return limit, ThresholdUsed(text=bound.text, value=limit, unit=unit, uln=lln, uln_source=source,
                                             limit="LLN")
        return _Unusable("the observation has no reference range with a lower limit, and the vocabulary declares "
                         "no default LLN", (f"reference range (LLN) of {subject.label}",))

    # ------------------------------------------------------------ rates
    def rate(self, node: p.RatePlan) -> Explanation:
        text = node.text
        concept = node.concept
        label = node.node.name.text
        want = (f"two {label} results{self.window_text(node.window)}",)
        start = window_start(self.as_of, node.window.amount, node.window.unit)
        picked = []
        for obs in self.index()["observation"].get(concept.name, []):
            if obs.date is None or obs.date.earliest() > self.as_of:
                continue
            if within(obs.date, start, self.as_of) is not True:
                break
            got = self.read_value(concept, label, obs, want[0])
            if isinstance(got, _Picked):
                picked.append(got)
            if len(picked) == 2:
                break
        if len(picked) < 2:
            reason = f"a daily increase needs two {label} results within {node.window.text}; found {len(picked)}"
            return Explanation(kind="rate", rule=text, outcome=Outcome.UNKNOWN, summary=f"unknown: {reason}",
                               reason=reason, missing=want, values=tuple(x.used for x in picked))
        newer, older = picked
        days = _days_between(older.obs.date, newer.obs.date)
        if not days:
            reason = f"both {label} results are from {newer.obs.date} without times, so the daily change is unknown"
            return Explanation(kind="rate", rule=text, outcome=Outcome.UNKNOWN, summary=f"unknown: {reason}",
                               reason=reason, missing=want, values=(newer.used, older.used))
        per_day = (newer.value - older.value) / days
        outcome = Outcome.of(compare(per_day, node.op, node.bound.value))
        unit = concept.unit
        derived = Derived(concept=f"daily increase in {label}", method="difference of the two newest results per day",
                          formula="increase per day = (newer − older) / days between",
                          substituted=f"({fmt(newer.value)} − {fmt(older.value)}) {unit} / {fmt(days)} d = "
                                      f"{with_unit(fmt(per_day), unit)} per day",
                          value=per_day, unit=f"{unit}/day", inputs=(older.used, newer.used))
        summary = (f"{label} rose {with_unit(fmt(per_day), unit)} per day; {'meets' if outcome is Outcome.MET else 'does not meet'} "
                   f"{SYMBOLS[node.op]} {_limit_text(node.bound, node.bound.value, unit)}")
        return Explanation(kind="rate", rule=text, outcome=outcome, summary=summary, values=(older.used, newer.used),
                           threshold=ThresholdUsed(text=f"{SYMBOLS[node.op]} {node.bound.text} per day",
                                                   value=node.bound.value, unit=unit), derived=derived)

    # ------------------------------------------------------------ events
    def event(self, node: p.EventPlan) -> Explanation:
        text = node.text
        concept = node.concept
        searched = node.searched
        if concept.kind == "test":
            return self.test_event(node, text, searched)
        kind = concept.kind
        records = self.index()[kind].get(concept.name, [])
        records = [r for r in records if (getattr(r, "verification_status", None) or "") not in
                   ("refuted", "entered-in-error")]
        if not records:
            return Explanation(kind="event", rule=text, outcome=Outcome.NOT_MET,
                               summary=f"no matching record of {concept.name}", searched=searched)
        verdicts = []
        values = []
        whys = []
        for r in records:
            ok, why = self.record_matches(node, r)
            verdicts.append(Outcome.of(ok))
            whys.append(why)
            values.append(_record_value(concept, r, why))
        outcome = kleene_or(verdicts)
        if outcome is Outcome.MET:
            summary = f"{concept.name}: " + next(w for w, o in zip(whys, verdicts) if o is Outcome.MET)
        elif outcome is Outcome.UNKNOWN:
            summary = f"{concept.name}: " + next(w for w, o in zip(whys, verdicts) if o is Outcome.UNKNOWN)
        else:
            summary = f"{concept.name} recorded, but not as the rule requires: {whys[0]}"
        missing = ()
        reason = None
        if outcome is Outcome.UNKNOWN:
            reason = next(w for w, o in zip(whys, verdicts) if o is Outcome.UNKNOWN)
            missing = (f"{concept.name}: {reason}",)
        return Explanation(kind="event", rule=text, outcome=outcome, summary=summary, values=tuple(values),
                           searched=searched, reason=reason, missing=missing)

    def record_matches(self, node: p.EventPlan, r) -> tuple[bool | None, str]:
        """Whether one record satisfies prefix, grade and timing; with a phrase saying why."""
        as_of = self.as_of
        start_date, end_date = _period(r)
        if start_date is not None and start_date.earliest() > as_of:
            return False, f"dated {start_date}, after the evaluation date"
        if start_date is not None and start_date.latest() > as_of:
            # Known only to the month (or year) of the evaluation date: it may begin after it.
            return None, f"dated only to {start_date}, which may be after the evaluation date"
        checks: list[tuple[bool | None, str]] = []
        if node.prefix in ("active", "taking"):
            checks.append(self.active_at(r, as_of))
        if node.grade is not None:
            lo, hi, word = node.grade
            g = getattr(r, "grade", None)
            if g is None:
                checks.append((None, f"{word} not recorded"))
            else:
                checks.append((lo <= g <= hi, f"{word} {g}"))
        if node.timing_kind is not None and node.duration is not None:
            checks.append(self.timing(node, start_date, end_date, r))
        if not checks:
            when = f"since {start_date}" if start_date else "undated"
            return True, f"recorded ({when})"
        ok = kleene_and(Outcome.of(c[0]) for c in checks)
        return ({Outcome.MET: True, Outcome.NOT_MET: False}.get(ok), "; ".join(c[1] for c in checks))

    def active_at(self, r, as_of: dt.date) -> tuple[bool | None, str]:
        start, end = _period(r)
        status = (getattr(r, "clinical_status", None) or getattr(r, "status", None) or "").lower()
        if end is not None:
            if end.latest() < as_of:
                return False, f"ended {end}"
            if end.earliest() >= as_of:
                return True, f"ongoing until {end}"
            return None, f"ended {end}, imprecise"
        if isinstance(r, Condition):
            if status in INACTIVE_CONDITION:
                return False, f"status {status}"
            return True, f"status {status or 'not given, read as active'} since {start or 'an unknown date'}"
        if isinstance(r, Medication):
            if status in ("completed", "stopped", "cancelled", "not-taken"):
                return False, f"status {status}"
            return True, f"{status or 'no status'}, started {start or 'on an unknown date'}, no end date"
        if status in ("completed",) and start is not None:
            # A completed procedure without an end date happened on its start date.
            if start.latest() < as_of:
                return False, f"completed {start}"
            return (True if start.earliest() >= as_of else None), f"performed {start}"
        return True, f"in progress since {start or 'an unknown date'}"

    def timing(self, node: p.EventPlan, start: PartialDate | None, end: PartialDate | None, r) -> tuple[bool | None, str]:
        dur = node.duration
        opens = window_start(self.as_of, dur.amount, dur.unit)
        if node.timing_kind == "onset_within":
            if start is None:
                return None, "onset date not recorded"
            return within(start, opens, self.as_of), f"onset {start}"
        if node.timing_kind == "lasting":
            if start is None:
                return None, "onset date not recorded"
            boundary = opens  # onset on this day means it has lasted exactly the duration
            op = node.timing_op
            # lasting < D  <=>  onset after as_of − D, and so on for the other comparators.
            def holds(onset: dt.date) -> bool:
                return {"<": onset > boundary, "<=": onset >= boundary, ">": onset < boundary,
                        ">=": onset <= boundary, "==": onset == boundary, "!=": onset != boundary}[op]
            a, b = holds(start.earliest()), holds(start.latest())
            verdict = a if a == b else None
            return verdict, f"onset {start}, {SYMBOLS[op]} {dur.text} before {self.as_of} means onset " \
                            f"{'after' if op in ('<', '<=') else 'before'} {boundary}"
        # within: present at some time in [opens, as_of]
        if start is None:
            return None, "date not recorded"
        if start.earliest() > self.as_of:
            return False, f"from {start}, after the evaluation date"
        began_in = within(start, opens, self.as_of)
        if began_in:
            return True, f"from {start}, within {dur.text}"
        if node.concept.acute:
            # An acute event (infarction, stroke) is counted when it happens in the window,
            # not because an old record was never closed.
            return began_in, (f"onset {start}, before the {dur.text} window" if began_in is False
                              else f"onset {start}, which may fall outside the {dur.text} window")
        active, why = self.active_at(r, opens) if not isinstance(r, Procedure) or end else (None, "")
        if isinstance(r, Procedure) and end is None:
            return (False if start.latest() < opens else None), f"performed {start}, before the {dur.text} window"
        if end is not None:
            ended_in = within(end, opens, self.as_of)
            if end.latest() < opens:
                return False, f"{start} to {end}, before the {dur.text} window"
            return (True if ended_in or end.earliest() > self.as_of else None), f"{start} to {end}, overlapping the window"
        return active, f"from {start}; {why}"

    def test_event(self, node: p.EventPlan, text: str, searched) -> Explanation:
        concept = node.concept
        records = self.index()["observation"].get(concept.name, [])
        start = window_start(self.as_of, node.duration.amount, node.duration.unit) if node.duration else dt.date.min
        results = []
        for obs in records:
            if obs.date is None:
                results.append((None, obs, "undated"))
                continue
            inside = within(obs.date, start, self.as_of)
            if inside is False:
                continue
            res = obs.result
            verdict = {"positive": True, "negative": False}.get(res) if res else None
            results.append((verdict if inside else None, obs, res or "no readable result"))
        values = tuple(ValueUsed(concept=concept.name, value=o.value, unit=o.unit, date=_date(o.date),
                                 source=str(o.source), text=f"{res} on {o.date}") for _, o, res in results)
        window = f" within {node.duration.text}" if node.duration else ""
        if not results:
            # A test result is a measurement: open-world. An untested patient is not "negative",
            # and a missing screening test must never make a patient look eligible.
            reason = f"no {concept.name} result{window}"
            return Explanation(kind="event", rule=text, outcome=Outcome.UNKNOWN, summary=f"unknown: {reason}",
                               searched=searched, reason=reason,
                               missing=(f"{concept.name} result{window} before {self.as_of}",))
        outcome = kleene_or(Outcome.of(v) for v, _, _ in results)
        first = next((r for r in results if Outcome.of(r[0]) is outcome), results[0])
        summary = f"{concept.name}: {first[2]} on {first[1].date}"
        missing = (f"readable {concept.name} result{window}",) if outcome is Outcome.UNKNOWN else ()
        return Explanation(kind="event", rule=text, outcome=outcome, summary=summary, values=values,
                           searched=searched, missing=missing, reason=summary if missing else None)

    # ------------------------------------------------------------ facts and attestations
    def fact(self, node: p.FactPlan) -> Explanation:
        text = node.text
        sex = self.patient.sex
        if node.sex is not None:
            if sex is None:
                return Explanation(kind="fact", rule=text, outcome=Outcome.UNKNOWN, summary="unknown: sex not recorded",
                                   reason="sex not recorded", missing=("sex",))
            return Explanation(kind="fact", rule=text, outcome=Outcome.of(sex == node.sex), summary=f"sex: {sex}")
        name = node.concept.field or node.concept.name
        value = getattr(self.patient, name, None)
        if value is None and sex is not None and sex == node.concept.not_for_sex:
            return Explanation(kind="fact", rule=text, outcome=Outcome.NOT_MET,
                               summary=f"not {name}: the patient is {sex}")
        if value is None:
            return Explanation(kind="fact", rule=text, outcome=Outcome.UNKNOWN, summary=f"unknown: {name} not recorded",
                               reason=f"{name} not recorded", missing=(f"{name} (yes/no)",))
        return Explanation(kind="fact", rule=text, outcome=Outcome.of(bool(value)),
                           summary=f"{name}: {'yes' if value else 'no'} (patient record)")

    def attestation(self, node: p.AttestationPlan) -> Explanation:
        text = node.text
        found = next((a for a in self.patient.attestations if a.key == node.key), None)
        if found is None or found.value is None:
            return Explanation(kind="attestation", rule=text, outcome=Outcome.UNKNOWN,
                               summary=f"awaiting attestation: {node.statement}", reason="not attested yet",
                               missing=(f"attestation: {node.statement}",))
        by = f" by {found.by}" if found.by else ""
        on = f" on {found.date}" if found.date else ""
        return Explanation(kind="attestation", rule=text, outcome=Outcome.of(found.value),
                           summary=f"attested {'yes' if found.value else 'no'}{by}{on}: {node.statement}",
                           values=(ValueUsed(concept=node.statement, value=None, unit=None, source=str(found.source),
                                             text="yes" if found.value else "no", date=_date(found.date)),))


# ---------------------------------------------------------------- helpers
def overall_verdict(results: Iterable[CriterionResult]) -> Verdict:
    results = list(results)
    if any(r.excludes for r in results):
        return Verdict.INELIGIBLE
    if all((r.section == "inclusion" and r.outcome is Outcome.MET) or
           (r.section == "exclusion" and r.outcome is Outcome.NOT_MET) for r in results):
        return Verdict.ELIGIBLE
    return Verdict.UNDETERMINED


def collect(results: Iterable[CriterionResult]) -> tuple[CollectItem, ...]:
    """Data to collect: each missing item of an undecided criterion, with the criteria it decides."""
    order: dict[str, list[str]] = {}
    for r in results:
        if r.outcome is not Outcome.UNKNOWN:
            continue
        for item in _missing(r.explanation):
            ids = order.setdefault(item, [])
            if r.id not in ids:
                ids.append(r.id)
    return tuple(CollectItem(item, tuple(ids)) for item, ids in order.items())


def _missing(e: Explanation) -> list[str]:
    if e.outcome is not Outcome.UNKNOWN:
        return []
    out = list(e.missing)
    for c in e.children:
        for m in _missing(c):
            if m not in out:
                out.append(m)
    return out


def _only_attestations(node) -> bool:
    if isinstance(node, p.AttestationPlan):
        return True
    if isinstance(node, p.LogicPlan):
        return all(_only_attestations(c) for c in node.children)
    return False


def _logic_summary(op: str, children, outcome: Outcome) -> str:
    counts = {o: sum(1 for c in children if c.outcome is o) for o in Outcome}
    parts = ", ".join(f"{n} {o}" for o, n in counts.items() if n)
    names = {"and": "all required", "all": "all of", "or": "one suffices", "any": "any of", "none": "none of",
             "not": "not"}
    if op == "not":
        return f"not: {children[0].summary}"
    return f"{names[op]}: {parts} → {outcome}"


def _subject_unit(subject) -> str:
    if isinstance(subject, p.RatioRef):
        return subject.unit
    unit = subject.concept.unit or ""
    return {"year": "years", "1": ""}.get(unit, unit)


def _limit_text(bound: p.Bound, limit: float, unit: str) -> str:
    if bound.uln_factor is not None or bound.lln_factor is not None:
        return f"{bound.text} = {with_unit(fmt(limit), unit)}"
    return f"{bound.text}"


def _distance(value: float, op: str, limit: float, unit: str) -> str:
    gap = abs(value - limit)
    needs = f"{with_unit(fmt(value), unit)}; needs {SYMBOLS[op]} {with_unit(fmt(limit), unit)}"
    if math.isclose(value, limit, rel_tol=REL_TOL, abs_tol=1e-12):
        # A strict comparator at its own threshold: no distance to give, only the direction.
        return f"{needs} (it equals the threshold and must be {'above' if op in ('>', '>=') else 'below'} it)"
    return f"{needs} ({with_unit(fmt(gap), unit)} away)"


def _date(d: PartialDate | None) -> str | None:
    return str(d) if d is not None else None


def _newest_first_key(entry):
    d = getattr(entry, "date", None) or getattr(entry, "onset", None) or getattr(entry, "start", None)
    if d is None:
        return (dt.date.min, dt.time(0, 0))
    return d.sort_key()


def _period(r) -> tuple[PartialDate | None, PartialDate | None]:
    if isinstance(r, Condition):
        return r.onset, r.abatement
    if isinstance(r, (Procedure, Medication)):
        return r.start, r.end
    return getattr(r, "date", None), None


def _record_value(concept: Concept, r, why: str) -> ValueUsed:
    start, end = _period(r)
    codes = ", ".join(str(c) for c in r.codes)
    extra = f" (coded {codes})" if codes else (f" (recorded as '{r.concept}')" if r.concept else "")
    return ValueUsed(concept=concept.name, value=None, unit=None, date=_date(start), source=str(r.source),
                     text=f"{why}{extra}")


def _days_between(older: PartialDate, newer: PartialDate) -> float | None:
    a, b = older.instant(), newer.instant()
    if a is not None and b is not None:
        return (b - a).total_seconds() / 86400
    if older.is_complete and newer.is_complete:
        return float((newer.earliest() - older.earliest()).days) or None
    return None
