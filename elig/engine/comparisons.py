"""Comparison rules: a value (measured, demographic, ratio or derived) against a threshold, a range,
or thresholds that depend on sex."""

from __future__ import annotations

import attrs

from elig.engine import plan as p
from elig.engine.bounds import bound_value, compare, subject_unit
from elig.engine.context import Context, Unusable
from elig.engine.derive import subject_value
from elig.engine.results import Explanation, Outcome, ThresholdUsed
from elig.engine.summary import distance, limit_text, meets
from elig.language.canonical import SYMBOLS
from elig.terminology.units import format_number as fmt, with_unit


def comparison(ctx: Context, node: p.ComparisonPlan) -> Explanation:
    text = node.text
    label = node.subject.label
    got = subject_value(ctx, node.subject, node.window)
    if isinstance(got, Unusable):
        return Explanation(kind="comparison", rule=text, outcome=Outcome.UNKNOWN,
                           summary=f"unknown: {got.reason}", reason=got.reason, missing=got.missing,
                           values=got.values)
    value, used, derived, obs = got
    unit = subject_unit(node.subject)
    test = node.test
    if isinstance(test, p.SexTest):
        return sex_comparison(ctx, node, text, label, value, unit, used, derived, obs)
    if isinstance(test, p.CompareTest):
        bound = bound_value(ctx, test.bound, node.subject, obs)
        if isinstance(bound, Unusable):
            return Explanation(kind="comparison", rule=text, outcome=Outcome.UNKNOWN,
                               summary=f"unknown: {bound.reason}", reason=bound.reason,
                               missing=bound.missing, values=used, derived=derived)
        limit, threshold = bound
        threshold = attrs.evolve(threshold, text=f"{SYMBOLS[test.op]} {threshold.text}")
        outcome = Outcome.of(compare(value, test.op, limit))
        summary = (f"{label} {with_unit(fmt(value), unit)} {meets(outcome)} "
                   f"{SYMBOLS[test.op]} {limit_text(test.bound, limit, unit)}")
        gap = distance(value, test.op, limit, unit) if outcome is Outcome.NOT_MET else None
        return Explanation(kind="comparison", rule=text, outcome=outcome, summary=summary, values=used,
                           threshold=threshold, derived=derived, distance=gap)
    # range
    lo = bound_value(ctx, test.low, node.subject, obs)
    hi = bound_value(ctx, test.high, node.subject, obs)
    for b in (lo, hi):
        if isinstance(b, Unusable):
            return Explanation(kind="comparison", rule=text, outcome=Outcome.UNKNOWN,
                               summary=f"unknown: {b.reason}", reason=b.reason, missing=b.missing, values=used,
                               derived=derived)
    (lo_v, lo_t), (hi_v, hi_t) = lo, hi
    ok_lo = compare(value, ">=" if test.low_inclusive else ">", lo_v)
    ok_hi = compare(value, "<=" if test.high_inclusive else "<", hi_v)
    outcome = Outcome.of(ok_lo and ok_hi)
    range_text = (f"{'[' if test.low_inclusive else '('}{limit_text(test.low, lo_v, unit)}, "
                  f"{limit_text(test.high, hi_v, unit)}{']' if test.high_inclusive else ')'}")
    summary = f"{label} {with_unit(fmt(value), unit)} is {'within' if outcome is Outcome.MET else 'outside'} {range_text}"
    threshold = ThresholdUsed(text=f"{'' if test.low_inclusive else 'more than '}{lo_t.text} to "
                                   f"{hi_t.text}{'' if test.high_inclusive else ' (exclusive)'}",
                              value=None, unit=unit, uln=hi_t.uln or lo_t.uln,
                              uln_source=hi_t.uln_source or lo_t.uln_source,
                              limit=hi_t.limit if hi_t.uln is not None else lo_t.limit)
    gap = None
    if outcome is Outcome.NOT_MET:
        gap = (distance(value, ">=" if test.low_inclusive else ">", lo_v, unit) if not ok_lo
               else distance(value, "<=" if test.high_inclusive else "<", hi_v, unit))
    return Explanation(kind="comparison", rule=text, outcome=outcome, summary=summary, values=used,
                       threshold=threshold, derived=derived, distance=gap)


def sex_comparison(ctx: Context, node, text, label, value, unit, used, derived, obs) -> Explanation:
    outcomes = {}
    thresholds = {}
    for sex, test in node.test.branches:
        bound = bound_value(ctx, test.bound, node.subject, obs, sex=sex)
        if isinstance(bound, Unusable):
            outcomes[sex] = Outcome.UNKNOWN
            continue
        limit, threshold = bound
        thresholds[sex] = (test, limit, threshold)
        outcomes[sex] = Outcome.of(compare(value, test.op, limit))
    sex = ctx.patient.sex
    if sex in outcomes:
        outcome = outcomes[sex]
        test, limit, threshold = thresholds.get(sex, (None, None, None))
        if test is None:
            return Explanation(kind="comparison", rule=text, outcome=Outcome.UNKNOWN,
                               summary=f"unknown: no threshold could be set for {sex}", values=used,
                               derived=derived, reason="threshold unavailable")
        summary = (f"{label} {with_unit(fmt(value), unit)} {meets(outcome)} "
                   f"{SYMBOLS[test.op]} {limit_text(test.bound, limit, unit)} (threshold for {sex})")
        return Explanation(kind="comparison", rule=text, outcome=outcome, summary=summary, values=used,
                           threshold=attrs.evolve(threshold, text=f"{SYMBOLS[test.op]} {threshold.text} if {sex}"),
                           derived=derived,
                           distance=distance(value, test.op, limit, unit) if outcome is Outcome.NOT_MET else None)
    distinct = set(outcomes.values())
    if len(distinct) == 1 and Outcome.UNKNOWN not in distinct:
        outcome = distinct.pop()
        return Explanation(kind="comparison", rule=text, outcome=outcome,
                           summary=f"{label} {with_unit(fmt(value), unit)} gives '{outcome}' whatever the sex "
                                   f"(sex not recorded)", values=used, derived=derived)
    reason = "the sex is not recorded, and the threshold depends on it"
    return Explanation(kind="comparison", rule=text, outcome=Outcome.UNKNOWN, summary=f"unknown: {reason}",
                       values=used, derived=derived, reason=reason, missing=("sex",))
