"""Event rules: conditions, procedures, medications and tests judged on the record.

No matching entry of a condition, procedure or medication is "not present" (the
explanation lists the codes searched); a test is a measurement, so no result is
unknown. An entry matches when its prefix (active, taking), grade and timing
(within, onset within, lasting) hold; partial dates that straddle a boundary
are unknown.
"""

from __future__ import annotations

import datetime as dt

from elig.engine import plan as p
from elig.engine.context import Context
from elig.engine.index import period, site_check, sites_text
from elig.engine.results import Explanation, Outcome, ValueUsed, kleene_and, kleene_or
from elig.engine.summary import date_text, record_value
from elig.language.canonical import SYMBOLS
from elig.records.dates import PartialDate, window_start, within
from elig.records.patient import Condition, Medication, Procedure

ACTIVE_CONDITION = ("active", "recurrence", "relapse")
INACTIVE_CONDITION = ("inactive", "remission", "resolved")
STOPPED_MEDICATION = ("completed", "stopped", "cancelled", "not-taken")
GOING_MEDICATION = ("active", "on-hold", "intended", "draft")
PROCEDURE_STATUS = ("preparation", "in-progress", "not-done", "on-hold", "stopped", "completed", "unknown")
NOT_RECORDED = ("refuted", "entered-in-error")


def records_of(ctx: Context, concept) -> tuple[list, list]:
    """The entries an event rule judges (refuted ones left out), and the entries without concept or
    code that may be one of them. Both evaluators start here: with neither, the event is not present."""
    records = ctx.index()[concept.kind].get(concept.name, [])
    if concept.kind == "procedure":
        # Status codes of past procedures are recorded as conditions (ICD-10-CM Z90.710,
        # acquired absence of uterus; Z98.51, tubal ligation status).
        records = records + ctx.index()["condition"].get(concept.name, [])
    records = [r for r in records if (getattr(r, "verification_status", None) or "") not in NOT_RECORDED]
    unreadable = ctx.unreadable(concept.kind) + (ctx.unreadable("condition") if concept.kind == "procedure" else [])
    return records, unreadable


def nothing_recorded(idx: dict, concept) -> bool:
    """Whether the indexed record has no entry ``records_of`` would return for the concept (of any
    kind but test), nor one without concept or code that may be one."""
    kind = concept.kind
    return not (idx[kind].get(concept.name) or idx["unreadable"].get(kind) or
                (kind == "procedure" and (idx["condition"].get(concept.name) or idx["unreadable"].get("condition"))))


def event(ctx: Context, node: p.EventPlan) -> Explanation:
    text = node.text
    concept = node.concept
    searched = node.searched
    kind = concept.kind
    if kind == "test":
        return test_event(ctx, node, text, searched)
    if nothing_recorded(ctx.index(), concept):
        return _not_present(ctx, node)  # the shortcut of records_of finding nothing
    records, unreadable = records_of(ctx, concept)
    if not records:
        if unreadable:
            return _doubt(concept, text, searched, unreadable)
        return _not_present(ctx, node)
    verdicts = []
    values = []
    whys = []
    for r in records:
        ok, why = record_matches(ctx.as_of, node, r)
        site = site_check(concept, r)
        if site is not None:
            ok = {Outcome.MET: True, Outcome.NOT_MET: False}.get(kleene_and([Outcome.of(ok), Outcome.of(site[0])]))
            why = f"{why}; {site[1]}"
        else:
            why += sites_text(r)
        verdicts.append(Outcome.of(ok))
        whys.append(why)
        values.append(record_value(concept, r, period(r)[0], why))
    outcome = kleene_or(verdicts)
    if outcome is Outcome.NOT_MET and unreadable:
        return _doubt(concept, text, searched, unreadable)
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


def _not_present(ctx: Context, node: p.EventPlan) -> Explanation:
    """No matching record and nothing unreadable: the same explanation for every patient, built once."""
    key = ("not present", id(node))
    found = ctx.memo.recall(key, (node,))
    if found is None:
        found = ctx.memo.keep(key, (node,), Explanation(
            kind="event", rule=node.text, outcome=Outcome.NOT_MET,
            summary=f"no matching record of {node.concept.name}", searched=node.searched))
    return found


def _doubt(concept, text: str, searched, unreadable: list) -> Explanation:
    """Unknown: no readable record matches, but an entry that names no concept may be one."""
    first = unreadable[0]
    more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
    reason = (f"no readable record of {concept.name} matches, but {first.source}{more} names no concept and has "
              f"no code, so it may be one")
    return Explanation(kind="event", rule=text, outcome=Outcome.UNKNOWN, summary=f"unknown: {reason}",
                       searched=searched, reason=reason, missing=(f"{concept.name}: a readable {first.source}",))


def record_matches(as_of: dt.date, node: p.EventPlan, r) -> tuple[bool | None, str]:
    """Whether one record satisfies prefix, grade and timing; with a phrase saying why."""
    start_date, end_date = period(r)
    if start_date is not None and start_date.earliest() > as_of:
        return False, f"dated {start_date}, after the evaluation date"
    if start_date is not None and start_date.latest() > as_of:
        # Known only to the month (or year) of the evaluation date: it may begin after it.
        return None, f"dated only to {start_date}, which may be after the evaluation date"
    checks: list[tuple[bool | None, str]] = []
    if node.prefix in ("active", "taking"):
        checks.append(active_at(r, as_of))
    if node.grade is not None:
        lo, hi, word = node.grade
        g = getattr(r, "grade", None)
        if g is None:
            checks.append((None, f"{word} not recorded"))
        else:
            checks.append((lo <= g <= hi, f"{word} {g}"))
    if node.timing_kind is not None and node.duration is not None:
        checks.append(timing(as_of, node, start_date, end_date, r))
    bad = getattr(r, "unreadable_dates", ())
    starts = [b for b in bad if "end" not in b.lower() and "abatement" not in b.lower()]
    if starts or (bad and (node.prefix in ("active", "taking") or node.timing_kind is not None)):
        # A date given but unreadable is not a missing date: an unreadable start may be after the
        # evaluation date (a planned procedure), an unreadable end date is no evidence that the
        # entry goes on (nor its status that it ended).
        return None, f"its {', '.join(bad)} date could not be read"
    if not checks:
        when = f"since {start_date}" if start_date else "undated"
        return True, f"recorded ({when})"
    ok = kleene_and(Outcome.of(c[0]) for c in checks)
    return ({Outcome.MET: True, Outcome.NOT_MET: False}.get(ok), "; ".join(c[1] for c in checks))


def active_at(r, as_of: dt.date) -> tuple[bool | None, str]:
    start, end = period(r)
    status = (getattr(r, "clinical_status", None) or getattr(r, "status", None) or "").lower()
    if end is not None:
        if end.latest() < as_of:
            return False, f"ended {end}"
        if end.earliest() >= as_of:
            return True, f"ongoing until {end}"
        return None, f"ended {end}, imprecise"
    known = (ACTIVE_CONDITION + INACTIVE_CONDITION if isinstance(r, Condition) else
             STOPPED_MEDICATION + GOING_MEDICATION if isinstance(r, Medication) else PROCEDURE_STATUS)
    if status and status not in known:
        # A status elig cannot read (garbage, or a word of no vocabulary) may be 'resolved'.
        return None, f"status {status!r} is not one elig reads, so whether it is current is unknown"
    if isinstance(r, Condition):
        if status in INACTIVE_CONDITION:
            return False, f"status {status}"
        return True, f"status {status or 'not given, read as active'} since {start or 'an unknown date'}"
    if isinstance(r, Medication):
        if status in STOPPED_MEDICATION:
            return False, f"status {status}"
        return True, f"{status or 'no status'}, started {start or 'on an unknown date'}, no end date"
    if status in ("completed",) and start is not None:
        # A completed procedure without an end date happened on its start date.
        if start.latest() < as_of:
            return False, f"completed {start}"
        return (True if start.earliest() >= as_of else None), f"performed {start}"
    return True, f"in progress since {start or 'an unknown date'}"


def timing(as_of: dt.date, node: p.EventPlan, start: PartialDate | None, end: PartialDate | None,
           r) -> tuple[bool | None, str]:
    dur = node.duration
    opens = window_start(as_of, dur.amount, dur.unit)
    if node.timing_kind == "onset_within":
        if start is None:
            return None, "onset date not recorded"
        return within(start, opens, as_of), f"onset {start}"
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
        return verdict, f"onset {start}, {SYMBOLS[op]} {dur.text} before {as_of} means onset " \
                        f"{'after' if op in ('<', '<=') else 'before'} {boundary}"
    # within: present at some time in [opens, as_of]
    if start is None:
        return None, "date not recorded"
    if start.earliest() > as_of:
        return False, f"from {start}, after the evaluation date"
    began_in = within(start, opens, as_of)
    if began_in:
        return True, f"from {start}, within {dur.text}"
    if node.concept.acute:
        # An acute event (infarction, stroke) is counted when it happens in the window,
        # not because an old record was never closed.
        return began_in, (f"onset {start}, before the {dur.text} window" if began_in is False
                          else f"onset {start}, which may fall outside the {dur.text} window")
    active, why = active_at(r, opens) if not isinstance(r, Procedure) or end else (None, "")
    if isinstance(r, Procedure) and end is None:
        return (False if start.latest() < opens else None), f"performed {start}, before the {dur.text} window"
    if end is not None:
        ended_in = within(end, opens, as_of)
        if end.latest() < opens:
            return False, f"{start} to {end}, before the {dur.text} window"
        return (True if ended_in or end.earliest() > as_of else None), f"{start} to {end}, overlapping the window"
    return active, f"from {start}; {why}"


def test_event(ctx: Context, node: p.EventPlan, text: str, searched) -> Explanation:
    concept = node.concept
    as_of = ctx.as_of
    records = ctx.observations(concept.name)
    start = ctx.window_opens(node.duration) if node.duration else dt.date.min
    results = []
    for obs in records:
        if obs.date is None:
            results.append((None, obs, "undated"))
            continue
        inside = within(obs.date, start, as_of)
        if inside is False:
            continue
        res = obs.result
        verdict = {"positive": True, "negative": False}.get(res) if res else None
        results.append((verdict if inside else None, obs, res or "no readable result"))
    values = tuple(ValueUsed(concept=concept.name, value=o.value, unit=o.unit, date=date_text(o.date),
                             source=str(o.source), text=f"{res} on {o.date}") for _, o, res in results)
    window = f" within {node.duration.text}" if node.duration else ""
    if not results:
        # A test result is a measurement: open-world. An untested patient is not "negative",
        # and a missing screening test must never make a patient look eligible.
        reason = f"no {concept.name} result{window}"
        return Explanation(kind="event", rule=text, outcome=Outcome.UNKNOWN, summary=f"unknown: {reason}",
                           searched=searched, reason=reason,
                           missing=(f"{concept.name} result{window} before {as_of}",))
    outcome = kleene_or(Outcome.of(v) for v, _, _ in results)
    first = next((r for r in results if Outcome.of(r[0]) is outcome), results[0])
    summary = f"{concept.name}: {first[2]} on {first[1].date}"
    missing = (f"readable {concept.name} result{window}",) if outcome is Outcome.UNKNOWN else ()
    return Explanation(kind="event", rule=text, outcome=outcome, summary=summary, values=values,
                       searched=searched, missing=missing, reason=summary if missing else None)
