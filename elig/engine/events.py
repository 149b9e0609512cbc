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
from elig.engine.index import period, site_answer, site_phrase, sites_text
from elig.engine.results import Explanation, Outcome, explanation, kleene_or, value_used
from elig.engine.summary import date_text, record_value
from elig.language.canonical import SYMBOLS
from elig.records.dates import PartialDate, within
from elig.records.patient import Condition, Medication, Procedure

# The members as plain names: reading ``Outcome.MET`` goes through the enum class's __getattr__ hook.
MET, NOT_MET, UNKNOWN = Outcome.MET, Outcome.NOT_MET, Outcome.UNKNOWN
outcome_of = Outcome.of

ACTIVE_CONDITION = ("active", "recurrence", "relapse")
INACTIVE_CONDITION = ("inactive", "remission", "resolved")
STOPPED_MEDICATION = ("completed", "stopped", "cancelled", "not-taken")
GOING_MEDICATION = ("active", "on-hold", "intended", "draft")
PROCEDURE_STATUS = ("preparation", "in-progress", "not-done", "on-hold", "stopped", "completed", "unknown")
NOT_RECORDED = ("refuted", "entered-in-error")
_NOT_MET, _UNKNOWN = NOT_MET, UNKNOWN


def records_of(idx: dict, concept) -> tuple[list, list]:
    """The entries of the indexed record (``Context.index``) an event rule judges (refuted ones left
    out), and the entries without concept or code that may be one of them. Both evaluators start
    here: with neither, the event is not present."""
    kind = concept.kind
    records = idx[kind].get(concept.name, [])
    unreadable = idx["unreadable"].get(kind, [])
    if kind == "procedure":
        # Status codes of past procedures are recorded as conditions (ICD-10-CM Z90.710,
        # acquired absence of uterus; Z98.51, tubal ligation status).
        records = records + idx["condition"].get(concept.name, [])
        unreadable = unreadable + idx["unreadable"].get("condition", [])
    records = [r for r in records if (getattr(r, "verification_status", None) or "") not in NOT_RECORDED]
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
    records, unreadable = records_of(ctx.index(), concept)
    as_of = ctx.as_of
    opens = ctx.window_opens(node.duration) if node.timing_kind is not None and node.duration is not None else None
    judge = ctx.memo.of_node(node) or ctx.memo.for_node(node, judge_of(node))
    verdicts = []
    values = []
    whys = []
    for r in records:
        checks = []
        ok, case, site = judge(as_of, r, opens, checks)
        start, end = period(r)
        why = _match_phrase(case, checks, as_of, node, r, start, end, opens)
        if site[1] == "own":
            why += sites_text(r)
        else:
            why = f"{why}; {site_phrase(concept, r, *site)}"
        verdicts.append(outcome_of(ok))
        whys.append(why)
        values.append(record_value(concept, r, start, why))
    outcome, case = records_outcome(verdicts, unreadable)
    if case == "doubt":
        return _doubt(concept, text, searched, unreadable)
    if not records:
        return _not_present(ctx, node)
    if outcome is MET:
        summary = f"{concept.name}: " + next(w for w, o in zip(whys, verdicts) if o is MET)
    elif outcome is UNKNOWN:
        summary = f"{concept.name}: " + next(w for w, o in zip(whys, verdicts) if o is UNKNOWN)
    else:
        summary = f"{concept.name} recorded, but not as the rule requires: {whys[0]}"
    missing = ()
    reason = None
    if outcome is UNKNOWN:
        reason = next(w for w, o in zip(whys, verdicts) if o is UNKNOWN)
        missing = (f"{concept.name}: {reason}",)
    return explanation(kind="event", rule=text, outcome=outcome, summary=summary, values=tuple(values),
                       searched=searched, reason=reason, missing=missing)


def _not_present(ctx: Context, node: p.EventPlan) -> Explanation:
    """No matching record and nothing unreadable: the same explanation for every patient, built once."""
    key = ("not present", id(node))
    found = ctx.memo.recall(key, (node,))
    if found is None:
        found = ctx.memo.keep(key, (node,), explanation(
            kind="event", rule=node.text, outcome=NOT_MET,
            summary=f"no matching record of {node.concept.name}", searched=node.searched))
    return found


def _doubt(concept, text: str, searched, unreadable: list) -> Explanation:
    """Unknown: no readable record matches, but an entry that names no concept may be one."""
    first = unreadable[0]
    more = f" (and {len(unreadable) - 1} more)" if len(unreadable) > 1 else ""
    reason = (f"no readable record of {concept.name} matches, but {first.source}{more} names no concept and has "
              f"no code, so it may be one")
    return explanation(kind="event", rule=text, outcome=UNKNOWN, summary=f"unknown: {reason}",
                       searched=searched, reason=reason, missing=(f"{concept.name}: a readable {first.source}",))


def active_at(r, as_of: dt.date) -> tuple[bool | None, str]:
    """Whether an entry is current on a date; with a phrase saying why."""
    start, end = period(r)
    ok, case = active(r, start, end, as_of)
    return ok, _active_phrase(case, r, start, end)


# ---------------------------------------------------------------- the decisions
# Each function below decides one thing of one record and returns its answer (True, False, or
# None for unknown) with the case that gave it, a short tag that the explaining functions above
# phrase and the compiled evaluator (``elig.engine.compiled``) ignores. Both evaluators decide
# through these functions only.

def judge_of(node: p.EventPlan):
    """The decision whether one record is the event, with the rule's fields read once (both
    evaluators keep it per protocol and rule): ``judge(as_of, r, opens, checks=None)`` gives
    (answer, case, site).

    The record must satisfy prefix, grade and timing (the window of which opens on ``opens``)
    and, when it was matched through its concept's site codes only, have a body site the concept
    lists (Kleene and of the two; ``site`` is ``index.site_answer``'s answer and case). When the
    case is "checks", a ``checks`` list given receives the (what, answer, case) of each check that
    applies: "active", "grade", "timing", in that order."""
    concept = node.concept
    prefixed = node.prefix in ("active", "taking")
    grade = node.grade
    kind, op, acute = node.timing_kind, node.timing_op, concept.acute
    timed = kind is not None and node.duration is not None
    plain = not (prefixed or grade is not None or timed)
    any_date = prefixed or kind is not None  # an unreadable date of any kind leaves the record unknown
    sited = bool(concept.site_codes)
    own = (None, "own")

    def judge(as_of: dt.date, r, opens: dt.date | None, checks: list | None = None) -> tuple:
        ok, case = _match(as_of, r, opens, checks)
        if not sited:
            return ok, case, own
        site = site_answer(concept, r)
        if site[1] != "own":
            ok = all_hold((ok, site[0]))
        return ok, case, site

    def _match(as_of: dt.date, r, opens: dt.date | None, checks: list | None) -> tuple[bool | None, str]:
        start, end = period(r)
        if start is not None:
            if start.earliest() > as_of:
                return False, "after"
            if start.latest() > as_of:
                # Known only to the month (or year) of the evaluation date: it may begin after it.
                return None, "maybe after"
        bad = r.unreadable_dates
        if bad and (any_date or any("end" not in b.lower() and "abatement" not in b.lower() for b in bad)):
            # A date given but unreadable is not a missing date: an unreadable start may be after the
            # evaluation date (a planned procedure), an unreadable end date is no evidence that the
            # entry goes on (nor its status that it ended).
            return None, "unreadable"
        if plain:
            return True, "recorded"
        a = g = t = True
        if prefixed:
            a, case = active(r, start, end, as_of)
            if checks is not None:
                checks.append(("active", a, case))
        if grade is not None:
            level = getattr(r, "grade", None)
            g, case = (None, "missing") if level is None else (grade[0] <= level <= grade[1], "grade")
            if checks is not None:
                checks.append(("grade", g, case))
        if timed:
            t, case = timing(kind, op, acute, opens, as_of, r, start, end)
            if checks is not None:
                checks.append(("timing", t, case))
        return all_hold((a, g, t)), "checks"
    return judge


def active(r, start: PartialDate | None, end: PartialDate | None, as_of: dt.date) -> tuple[bool | None, str]:
    """Whether an entry that began at ``start`` and ended at ``end`` (``period``) is current on a date."""
    if end is not None:
        if end.latest() < as_of:
            return False, "ended"
        if end.earliest() >= as_of:
            return True, "ongoing"
        return None, "end imprecise"
    status = (getattr(r, "clinical_status", None) or getattr(r, "status", None) or "").lower()
    if isinstance(r, Condition):
        if status and status not in CONDITION_STATUS:
            # A status elig cannot read (garbage, or a word of no vocabulary) may be 'resolved'.
            return None, "status unread"
        return (False, "status") if status in INACTIVE_CONDITION else (True, "condition")
    if isinstance(r, Medication):
        if status and status not in MEDICATION_STATUS:
            return None, "status unread"
        return (False, "status") if status in STOPPED_MEDICATION else (True, "medication")
    if status and status not in PROCEDURE_STATUS:
        return None, "status unread"
    if status == "completed" and start is not None:
        # A completed procedure without an end date happened on its start date.
        if start.latest() < as_of:
            return False, "completed"
        return (True if start.earliest() >= as_of else None), "performed"
    return True, "in progress"


def timing(kind: str, op: str | None, acute: bool, opens: dt.date, as_of: dt.date, r, start: PartialDate | None,
           end: PartialDate | None) -> tuple[bool | None, str]:
    """Whether an entry's timing holds (``kind``: within, onset_within, lasting ``op``) for the window
    from ``opens`` to the evaluation date. The last case is ``active``'s, on the window's first day."""
    if kind == "onset_within":
        if start is None:
            return None, "onset undated"
        return within(start, opens, as_of), "onset"
    if kind == "lasting":
        if start is None:
            return None, "onset undated"
        # lasting < D  <=>  onset after as_of − D (the window's first day), and so on.
        holds = LASTING[op]
        a, b = holds(start.earliest(), opens), holds(start.latest(), opens)
        return (a if a == b else None), "lasting"
    # within: present at some time in [opens, as_of]
    if start is None:
        return None, "undated"
    if start.earliest() > as_of:
        return False, "after"
    began_in = within(start, opens, as_of)
    if began_in:
        return True, "began in"
    if acute:
        # An acute event (infarction, stroke) is counted when it happens in the window,
        # not because an old record was never closed.
        return began_in, "acute"
    if isinstance(r, Procedure) and end is None:
        return (False if start.latest() < opens else None), "performed before"
    if end is not None:
        if end.latest() < opens:
            return False, "ended before"
        return (True if within(end, opens, as_of) or end.earliest() > as_of else None), "overlapping"
    return active(r, start, end, opens)


def all_hold(answers) -> bool | None:
    """``kleene_and`` of yes/no/None answers: no wins, then unknown."""
    out = True
    for a in answers:
        if a is None:
            out = None
        elif not a:
            return False
    return out


def records_outcome(verdicts, unreadable: list) -> tuple[Outcome, str]:
    """An event's outcome from its records' outcomes (``kleene_or``: read only as far as needed),
    and the case: "doubt" when no readable record matches but an entry that names no concept may be one."""
    outcome = kleene_or(verdicts)
    if outcome is _NOT_MET and unreadable:
        return _UNKNOWN, "doubt"
    return outcome, "records"


# lasting OP D  <=>  onset after (or before, ...) the window's first day
LASTING = {"<": lambda onset, b: onset > b, "<=": lambda onset, b: onset >= b, ">": lambda onset, b: onset < b,
           ">=": lambda onset, b: onset <= b, "==": lambda onset, b: onset == b, "!=": lambda onset, b: onset != b}
CONDITION_STATUS = ACTIVE_CONDITION + INACTIVE_CONDITION
MEDICATION_STATUS = STOPPED_MEDICATION + GOING_MEDICATION


# ---------------------------------------------------------------- the phrases of the decisions
def _match_phrase(case: str, checks: list, as_of: dt.date, node: p.EventPlan, r, start, end, opens) -> str:
    if case == "after":
        return f"dated {start}, after the evaluation date"
    if case == "maybe after":
        return f"dated only to {start}, which may be after the evaluation date"
    if case == "unreadable":
        return f"its {', '.join(r.unreadable_dates)} date could not be read"
    if case == "recorded":
        return f"recorded ({f'since {start}' if start else 'undated'})"
    phrases = []
    for what, ok, why in checks:
        if what == "active":
            phrases.append(_active_phrase(why, r, start, end))
        elif what == "grade":
            word = node.grade[2]
            phrases.append(f"{word} not recorded" if why == "missing" else f"{word} {r.grade}")
        else:
            phrases.append(_timing_phrase(why, ok, as_of, node, opens, r, start, end))
    return "; ".join(phrases)


def _active_phrase(case: str, r, start, end) -> str:
    if case == "ended":
        return f"ended {end}"
    if case == "ongoing":
        return f"ongoing until {end}"
    if case == "end imprecise":
        return f"ended {end}, imprecise"
    status = (getattr(r, "clinical_status", None) or getattr(r, "status", None) or "").lower()
    if case == "status unread":
        return f"status {status!r} is not one elig reads, so whether it is current is unknown"
    if case == "status":
        return f"status {status}"
    if case == "condition":
        return f"status {status or 'not given, read as active'} since {start or 'an unknown date'}"
    if case == "medication":
        return f"{status or 'no status'}, started {start or 'on an unknown date'}, no end date"
    if case == "completed":
        return f"completed {start}"
    if case == "performed":
        return f"performed {start}"
    return f"in progress since {start or 'an unknown date'}"


def _timing_phrase(case: str, ok, as_of: dt.date, node: p.EventPlan, opens: dt.date, r, start, end) -> str:
    dur = node.duration
    if case == "onset undated":
        return "onset date not recorded"
    if case == "onset":
        return f"onset {start}"
    if case == "lasting":
        op = node.timing_op
        return f"onset {start}, {SYMBOLS[op]} {dur.text} before {as_of} means onset " \
               f"{'after' if op in ('<', '<=') else 'before'} {opens}"
    if case == "undated":
        return "date not recorded"
    if case == "after":
        return f"from {start}, after the evaluation date"
    if case == "began in":
        return f"from {start}, within {dur.text}"
    if case == "acute":
        return (f"onset {start}, before the {dur.text} window" if ok is False
                else f"onset {start}, which may fall outside the {dur.text} window")
    if case == "performed before":
        return f"performed {start}, before the {dur.text} window"
    if case == "ended before":
        return f"{start} to {end}, before the {dur.text} window"
    if case == "overlapping":
        return f"{start} to {end}, overlapping the window"
    return f"from {start}; {_active_phrase(case, r, start, end)}"  # active on the window's first day


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
    values = tuple(value_used(concept=concept.name, value=o.value, unit=o.unit, date=date_text(o.date),
                             source=str(o.source), text=f"{res} on {o.date}") for _, o, res in results)
    window = f" within {node.duration.text}" if node.duration else ""
    if not results:
        # A test result is a measurement: open-world. An untested patient is not "negative",
        # and a missing screening test must never make a patient look eligible.
        reason = f"no {concept.name} result{window}"
        return explanation(kind="event", rule=text, outcome=UNKNOWN, summary=f"unknown: {reason}",
                           searched=searched, reason=reason,
                           missing=(f"{concept.name} result{window} before {as_of}",))
    outcome = kleene_or(outcome_of(v) for v, _, _ in results)
    first = next((r for r in results if outcome_of(r[0]) is outcome), results[0])
    summary = f"{concept.name}: {first[2]} on {first[1].date}"
    missing = (f"readable {concept.name} result{window}",) if outcome is UNKNOWN else ()
    return explanation(kind="event", rule=text, outcome=outcome, summary=summary, values=values,
                       searched=searched, missing=missing, reason=summary if missing else None)
