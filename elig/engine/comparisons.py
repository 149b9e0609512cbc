"""Comparison rules: a value (measured, demographic, ratio or derived) against a threshold, a range,
or thresholds that depend on sex."""

from __future__ import annotations

import attrs

from elig.engine import plan as p
from elig.engine.bounds import COMPARE, bound_reads, bound_value, compare, subject_unit
from elig.engine.context import Context, Picked, Unusable
from elig.engine.derive import subject_value
from elig.engine.measure import measure_key, read_measurement
from elig.engine.memo import Memo
from elig.engine.results import (
    Explanation, Outcome, ThresholdUsed, explanation, new_explanation, new_threshold_used,
)
from elig.engine.summary import distance, limit_text, meets
from elig.language.canonical import SYMBOLS
from elig.terminology.units import format_beside, format_number as fmt, with_unit

# A value this close to a threshold (relative) may fall on the other side under another lab's
# rounding of a molar-mass conversion (creatinine: 88.40, 88.4 or 88.42 µmol/L per mg/dL).
NEAR_THRESHOLD = 1e-3
MET, NOT_MET, UNKNOWN = Outcome.MET, Outcome.NOT_MET, Outcome.UNKNOWN
outcome_of = Outcome.of


def conversion_note(ctx: Context, used, derived, value: float, limits) -> str:
    """'; …converted at 88.40 µmol/L per mg/dL…' when a molar-mass conversion went into a value that
    lies within rounding of a threshold; else nothing (docs/semantics.md, "Unit conversions")."""
    for lim in limits:
        if abs(value - lim) <= NEAR_THRESHOLD * abs(lim):
            break
    else:
        return ""
    inputs = list(used) + (list(derived.inputs) if derived is not None else [])
    notes = []
    for v in inputs:
        concept = ctx.vocabulary.lookup(v.concept) if v.concept else None
        if concept is None or not concept.molar_mass or not v.unit or v.canonical_value is None:
            continue
        factor = molar_factor(ctx, concept, v.unit)
        if factor is None:
            continue
        mass = concept.molar_mass_source or f"{concept.molar_mass:g} g/mol"
        note = (f"{concept.name} converted at {factor:.2f} µmol/L per mg/dL (molar mass: {mass}); a laboratory "
                f"that rounds the factor otherwise may place this value on the other side of the threshold")
        if note not in notes:
            notes.append(note)
    return "".join(f"; {n}" for n in notes)


def molar_factor(ctx: Context, concept, unit: str) -> float | None:
    """µmol/L per mg/dL of the concept when ``unit`` is of the other kind (molar vs mass) than its
    canonical unit, i.e. when the molar mass was used to read the value; else None."""
    same = ctx.resolver.factor(unit, concept.unit or "1")  # no molar mass: fails across the two kinds
    if isinstance(same, float):
        return None
    factor = ctx.resolver.factor("mg/dL", "umol/L", concept.molar_mass)
    return factor if isinstance(factor, float) else None


def compared(ctx: Context, test: p.CompareTest, subject, obs, unit: str, sex: str | None, table: dict):
    """The threshold of a comparison (``bound_value``) as (limit, the threshold with its comparator,
    the comparator and limit as the summary says them), or why it cannot be set. With ``sex``, the
    threshold of that sex's branch, said so. Made once per (test, what the bound reads of the
    patient) and kept in ``table``, the comparison node's own (``_Static.bounds``, in the
    protocol's memo: the node, and so ``test`` and ``subject``, outlive it)."""
    reads = bound_reads(ctx, test.bound, obs, sex)
    # One test per table without a sex (the node's own); the tests of a node's sex branches share one.
    key = reads if sex is None else (id(test), sex, reads)
    found = table.get(key)
    if found is None:
        found = bound_value(ctx, test.bound, subject, obs, sex=sex)
        if not isinstance(found, Unusable):
            limit, t = found
            symbol = SYMBOLS[test.op]
            # The threshold with its comparator: ``attrs.evolve(t, text=...)``, built quickly.
            if sex is None:
                found = (limit, new_threshold_used(f"{symbol} {t.text}", t.value, t.unit, t.uln, t.uln_source, t.limit),
                         f"{symbol} {limit_text(test.bound, limit, unit)}")
            else:
                found = (limit, new_threshold_used(f"{symbol} {t.text} if {sex}", t.value, t.unit, t.uln,
                                                   t.uln_source, t.limit),
                         f"{symbol} {limit_text(test.bound, limit, unit)} (threshold for {sex})")
        Memo.put(table, key, found)
    return found


def distance_text(ctx: Context, value: float, op: str, limit: float, unit: str) -> str:
    """``summary.distance(value, op, limit, unit)``, made once per distinct one."""
    key = ("distance", value, op, limit, unit)
    texts = ctx.memo.texts
    text = texts.get(key)
    if text is None:
        text = Memo.put(texts, key, distance(value, op, limit, unit))
    return text


def beside(ctx: Context, value: float, limit: float) -> str:
    """``format_beside(value, limit)``, made once per distinct pair."""
    key = ("beside", value, limit)
    texts = ctx.memo.texts
    text = texts.get(key)
    if text is None:
        text = Memo.put(texts, key, format_beside(value, limit))
    return text


@attrs.frozen
class _Static:
    """What a comparison node says whatever the patient: worked out once per node (protocol's memo)."""

    measured: bool  # a measurement (not a demographic, ratio or derived value)
    unit: str  # the unit its value is shown in (``subject_unit``)
    suffix: str  # ``with_unit("", unit)``: what follows a number shown in that unit
    plain: tuple | None  # for a threshold that reads nothing of the patient: ``compared``'s answer
    check: object  # for one threshold, its comparator (``bounds.COMPARE``)
    key: tuple | None  # for a measurement, its key in the evaluation (``measure.measure_key``)
    bounds: dict  # ``compared``'s answers for this node's tests, per what they read of the patient
    molar: bool  # a value near a threshold may carry a molar-mass conversion (``conversion_note``)


def _static(ctx: Context, node: p.ComparisonPlan) -> _Static:
    found = ctx.memo.of_node(node)
    if found is None:
        subject, test = node.subject, node.test
        unit = subject_unit(subject)
        plain = check = None
        bounds: dict = {}
        if isinstance(test, p.CompareTest):
            check = COMPARE[test.op]
            if bound_reads(ctx, test.bound, None, None) is None:
                plain = compared(ctx, test, subject, None, unit, None, bounds)
        measured = isinstance(subject, p.MeasureRef) and subject.concept.kind != "demographic"
        found = ctx.memo.for_node(node, _Static(
            measured, unit, with_unit("", unit), plain, check,
            measure_key(subject.concept, subject.label, node.window) if measured else None, bounds,
            not measured or bool(getattr(ctx.vocabulary.lookup(subject.concept.name), "molar_mass", None))))
    return found


def _unknown(text: str, why, values=(), derived=None) -> Explanation:
    """A comparison that cannot be decided: ``why`` (an ``Unusable``) says why and what to collect."""
    reason = why.reason
    return new_explanation("comparison", text, UNKNOWN, f"unknown: {reason}", values, None, derived, reason,
                           why.missing, (), None, ())


def comparison(ctx: Context, node: p.ComparisonPlan) -> Explanation:
    text = node.text
    subject = node.subject
    label = subject.label
    hit = ctx.memo.nodes.get(id(node))  # ``ctx.memo.of_node(node)``, inline
    static = hit[1] if hit is not None and hit[0] is node else _static(ctx, node)
    if static.measured:  # subject_value, inline (and ``measurement``'s look-up in the evaluation's readings)
        key = static.key
        got = ctx.measured.get(key)
        if got is None:
            concept = subject.concept
            got = ctx.measured[key] = read_measurement(
                ctx, concept, label, node.window, (ctx._index or ctx.index())["observation"].get(concept.name, ()))
        if got.__class__ is not Picked:
            return _unknown(text, got, got.values)
        value, used, derived, obs = got.value, (got.used,), None, got.obs
    else:
        got = subject_value(ctx, subject, node.window)
        if isinstance(got, Unusable):
            return _unknown(text, got, got.values)
        value, used, derived, obs = got
    unit = static.unit
    check = static.check
    if check is not None:  # one threshold
        test = node.test
        bound = static.plain or compared(ctx, test, subject, obs, unit, None, static.bounds)
        if bound.__class__ is Unusable:
            return _unknown(text, bound, used, derived)
        limit, threshold, stated = bound
        texts = ctx.memo.texts
        shown = texts.get(("beside", value, limit)) or beside(ctx, value, limit)
        if check(value, limit):
            summary = f"{label} {shown}{static.suffix} meets {stated}"
            outcome, gap = MET, None
        else:
            summary = f"{label} {shown}{static.suffix} does not meet {stated}"
            outcome, gap = NOT_MET, distance_text(ctx, value, test.op, limit, unit)
        if static.molar and abs(value - limit) <= NEAR_THRESHOLD * abs(limit):
            summary += conversion_note(ctx, used, derived, value, (limit,))
        return new_explanation("comparison", text, outcome, summary, used, threshold, derived, None, (), (), gap, ())
    test = node.test
    if isinstance(test, p.SexTest):
        return sex_comparison(ctx, node, text, label, value, unit, used, derived, obs, static.bounds)
    # range
    lo = bound_value(ctx, test.low, node.subject, obs)
    hi = bound_value(ctx, test.high, node.subject, obs)
    for b in (lo, hi):
        if isinstance(b, Unusable):
            return _unknown(text, b, used, derived)
    (lo_v, lo_t), (hi_v, hi_t) = lo, hi
    ok_lo = compare(value, ">=" if test.low_inclusive else ">", lo_v)
    ok_hi = compare(value, "<=" if test.high_inclusive else "<", hi_v)
    outcome = outcome_of(ok_lo and ok_hi)
    range_text = (f"{'[' if test.low_inclusive else '('}{limit_text(test.low, lo_v, unit)}, "
                  f"{limit_text(test.high, hi_v, unit)}{']' if test.high_inclusive else ')'}")
    shown = max((format_beside(value, lo_v), format_beside(value, hi_v)), key=len)
    summary = (f"{label} {with_unit(shown, unit)} is {'within' if outcome is MET else 'outside'} {range_text}"
               + conversion_note(ctx, used, derived, value, (lo_v, hi_v)))
    threshold = ThresholdUsed(text=f"{'' if test.low_inclusive else 'more than '}{lo_t.text} to "
                                   f"{hi_t.text}{'' if test.high_inclusive else ' (exclusive)'}",
                              value=None, unit=unit, uln=hi_t.uln or lo_t.uln,
                              uln_source=hi_t.uln_source or lo_t.uln_source,
                              limit=hi_t.limit if hi_t.uln is not None else lo_t.limit)
    gap = None
    if outcome is NOT_MET:
        gap = (distance(value, ">=" if test.low_inclusive else ">", lo_v, unit) if not ok_lo
               else distance(value, "<=" if test.high_inclusive else "<", hi_v, unit))
    return explanation(kind="comparison", rule=text, outcome=outcome, summary=summary, values=used,
                       threshold=threshold, derived=derived, distance=gap)


def sex_comparison(ctx: Context, node, text, label, value, unit, used, derived, obs, table: dict) -> Explanation:
    outcomes = {}
    thresholds = {}
    patient_sex = ctx.patient.sex
    branches = node.test.branches
    if any(sex == patient_sex for sex, _ in branches):
        # The patient's own branch alone decides (and is all the explanation shows).
        branches = [(sex, test) for sex, test in branches if sex == patient_sex]
    for sex, test in branches:
        bound = compared(ctx, test, node.subject, obs, unit, sex, table)
        if isinstance(bound, Unusable):
            outcomes[sex] = UNKNOWN
            continue
        thresholds[sex] = (test, bound)
        outcomes[sex] = outcome_of(compare(value, test.op, bound[0]))
    sex = patient_sex
    if sex in outcomes:
        outcome = outcomes[sex]
        test, bound = thresholds.get(sex, (None, None))
        if test is None:
            return explanation(kind="comparison", rule=text, outcome=UNKNOWN,
                               summary=f"unknown: no threshold could be set for {sex}", values=used,
                               derived=derived, reason="threshold unavailable")
        limit, threshold, stated = bound
        summary = (f"{label} {with_unit(beside(ctx, value, limit), unit)} {meets(outcome)} {stated}"
                   + conversion_note(ctx, used, derived, value, (limit,)))
        return explanation(kind="comparison", rule=text, outcome=outcome, summary=summary, values=used,
                           threshold=threshold, derived=derived,
                           distance=(distance_text(ctx, value, test.op, limit, unit) if outcome is NOT_MET
                                     else None))
    distinct = set(outcomes.values())
    if len(distinct) == 1 and UNKNOWN not in distinct:
        outcome = distinct.pop()
        return explanation(kind="comparison", rule=text, outcome=outcome,
                           summary=f"{label} {with_unit(fmt(value), unit)} gives '{outcome}' whatever the sex "
                                   f"(sex not recorded)", values=used, derived=derived)
    reason = "the sex is not recorded, and the threshold depends on it"
    return explanation(kind="comparison", rule=text, outcome=UNKNOWN, summary=f"unknown: {reason}",
                       values=used, derived=derived, reason=reason, missing=("sex",))
