"""Rate rules: the daily change between the two newest results of a measurement in a window."""

from __future__ import annotations

from elig.engine import plan as p
from elig.engine.bounds import compare
from elig.engine.context import Context, Unusable
from elig.engine.measure import read_value
from elig.engine.results import Derived, Explanation, Outcome, ThresholdUsed, explanation
from elig.engine.summary import limit_text, meets
from elig.language.canonical import SYMBOLS
from elig.records.dates import PartialDate, within
from elig.terminology.units import format_beside, format_number as fmt, with_unit

# The members as plain names: reading ``Outcome.MET`` goes through the enum class's __getattr__ hook.
MET, NOT_MET, UNKNOWN = Outcome.MET, Outcome.NOT_MET, Outcome.UNKNOWN
outcome_of = Outcome.of


def rate(ctx: Context, node: p.RatePlan) -> Explanation:
    text = node.text
    concept = node.concept
    label = node.node.name.text
    as_of = ctx.as_of
    want = (f"two {label} results{ctx.window_text(node.window)}",)
    start = ctx.window_opens(node.window)
    picked = []
    for obs in ctx.observations(concept.name):
        if obs.date is None or obs.date.earliest() > as_of:
            continue
        if within(obs.date, start, as_of) is not True:
            break
        got = read_value(ctx, concept, label, obs, want[0])
        if isinstance(got, Unusable):
            # Skipping it would compute the change from older results in its place.
            reason = f"a {label} result in the window cannot be read, so the two newest are not known: {got.reason}"
            return explanation(kind="rate", rule=text, outcome=UNKNOWN, summary=f"unknown: {reason}",
                               reason=reason, missing=want, values=tuple(x.used for x in picked) + got.values)
        picked.append(got)
        if len(picked) == 2:
            break
    undated = next((o for o in ctx.observations(concept.name) if o.date is None), None)
    if undated is not None:
        reason = f"a {label} result ({undated.source}) has no readable date, so it may be one of the two newest"
        return explanation(kind="rate", rule=text, outcome=UNKNOWN, summary=f"unknown: {reason}",
                           reason=reason, missing=want, values=tuple(x.used for x in picked))
    if len(picked) < 2:
        reason = f"a daily increase needs two {label} results within {node.window.text}; found {len(picked)}"
        return explanation(kind="rate", rule=text, outcome=UNKNOWN, summary=f"unknown: {reason}",
                           reason=reason, missing=want, values=tuple(x.used for x in picked))
    newer, older = picked
    days = days_between(older.obs.date, newer.obs.date)
    if not days:
        reason = f"both {label} results are from {newer.obs.date} without times, so the daily change is unknown"
        return explanation(kind="rate", rule=text, outcome=UNKNOWN, summary=f"unknown: {reason}",
                           reason=reason, missing=want, values=(newer.used, older.used))
    per_day = (newer.value - older.value) / days
    outcome = outcome_of(compare(per_day, node.op, node.bound.value))
    unit = concept.unit
    derived = Derived(concept=f"daily increase in {label}", method="difference of the two newest results per day",
                      formula="increase per day = (newer − older) / days between",
                      substituted=f"({fmt(newer.value)} − {fmt(older.value)}) {unit} / {fmt(days)} d = "
                                  f"{with_unit(fmt(per_day), unit)} per day",
                      value=per_day, unit=f"{unit}/day", inputs=(older.used, newer.used))
    summary = (f"{label} rose {with_unit(format_beside(per_day, node.bound.value), unit)} per day; {meets(outcome)} "
               f"{SYMBOLS[node.op]} {limit_text(node.bound, node.bound.value, unit)}")
    return explanation(kind="rate", rule=text, outcome=outcome, summary=summary, values=(older.used, newer.used),
                       threshold=ThresholdUsed(text=f"{SYMBOLS[node.op]} {node.bound.text} per day",
                                               value=node.bound.value, unit=unit), derived=derived)


def days_between(older: PartialDate, newer: PartialDate) -> float | None:
    a, b = older.instant(), newer.instant()
    if a is not None and b is not None:
        return (b - a).total_seconds() / 86400
    if older.is_complete and newer.is_complete:
        return float((newer.earliest() - older.earliest()).days) or None
    return None
