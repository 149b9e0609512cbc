"""Measurement selection: the newest usable value of a concept in a window, or why there is none.

Measurements are open-world: no usable value (missing, undated, future, stale,
unit-less, unreadable, implausible, conflicting) is a ``Unusable`` with the
reason and the data to collect. A usable one is a ``Picked`` value in the
concept's canonical unit.
"""

from __future__ import annotations

import datetime as dt
import math

import attrs

from elig.engine import plan as p
from elig.engine.bounds import REL_TOL
from elig.engine.context import Context, Picked, Unusable, new_picked, new_unusable
from elig.engine.memo import Memo
from elig.engine.results import ValueUsed, new_value_used, value_used
from elig.engine.summary import date_text
from elig.records.dates import window_start, within
from elig.records.patient import Observation
from elig.terminology.units import format_converted as fmt3, format_number as fmt, with_unit
from elig.terminology.vocabulary import Concept

PAIRING_TOLERANCE = dt.timedelta(hours=1)


# What ``select`` finds, the first item of its answer. Both evaluators select through it: the
# explaining one phrases what it found (``read_measurement``), the compiled one keeps the value.
PICKED = 0  # (PICKED, newest, value, reading): the newest usable result, its canonical value, its UnitReading
NO_RESULT = 1  # no result of the concept (qualitative results are not measurements)
UNDATED = 2  # results, none with a date
FUTURE = 3  # every dated result is after the evaluation date
DOUBT = 4  # (DOUBT, newest, why, entry): ``entry`` cannot be placed in time or matched, and may be newer
#           (why: "undated", a result of the concept; "unreadable", an entry naming no concept and with no
#           code; "unmatched", an entry whose display alone names the concept)
COARSE = 5  # (COARSE, newest): the newest is dated too coarsely to tell whether it is in the window
STALE = 6  # (STALE, newest): the newest is older than the window
UNREADABLE = 7  # (UNREADABLE, newest): the newest's value cannot be read (``read_value`` says why)
TWIN_UNREADABLE = 8  # (TWIN_UNREADABLE, newest, value, twin): a result of the same time cannot be read
CONFLICT = 9  # (CONFLICT, newest, value, twin): a result of the same time gives another value

_NO_RESULT, _UNDATED, _FUTURE = (NO_RESULT,), (UNDATED,), (FUTURE,)


def select(ctx: Context, concept: Concept, records, opens: dt.date | None) -> tuple:
    """The selection of a measurement, without a phrase: the newest result of ``concept`` dated
    no later than the evaluation date, if it is usable (in the window that opens on ``opens``,
    when there is one; readable; no entry that may be newer; no same-time result that cannot be
    read or disagrees), with its value in the concept's canonical unit. ``records`` are the
    concept's observations, newest first. The answer is a tuple whose first item says what was
    found (``PICKED``, ``NO_RESULT``, ...; see above).

    One pass over the results: up to the newest, then its same-time twins (they follow it), then
    only whether a result has no date (those come last)."""
    as_of = ctx.as_of
    newest = None
    undated = None  # the first result without a date
    dated = counted = False
    results = iter(records)
    for o in results:
        if o.value is None and not o.problem and o.result is not None:
            continue  # a qualitative result: not a measurement
        counted = True
        d = o.date
        if d is None:
            if undated is None:
                undated = o
            continue
        dated = True
        if d.bounds[0] <= as_of:  # d.earliest()
            newest, date = o, d
            break
    twins = ()
    if newest is not None:
        twinning = True
        for o in results:
            d = o.date
            if o.value is None and not o.problem and o.result is not None:
                continue
            if d is None:
                if undated is None:
                    undated = o
                break  # the undated come last; the first of them is all that is asked
            if twinning and d.bounds[0] <= as_of:  # d.earliest()
                # The reader gives one object per distinct date; equal dates have equal bounds.
                if d is date or (d.bounds[2] == date.bounds[2] and d == date):
                    twins += (o,)
                else:
                    twinning = False
    if newest is None:
        return _FUTURE if dated else _UNDATED if counted else _NO_RESULT
    # An entry that cannot be placed in time, or whose code names the concept only in its display,
    # may be the newest: the older value must not decide in its place (docs/semantics.md).
    if undated is not None:
        return DOUBT, newest, "undated", undated
    idx = ctx._index or ctx.index()
    if (idx["unreadable"] or idx["unmatched"]) and (
            idx["unreadable"].get("observation") or idx["unmatched"].get(concept.name)):
        doubt = _maybe_newer(idx, concept, newest)
        if doubt is not None:
            return doubt
    if opens is not None:  # ``within(date, opens, as_of)``, inline
        lo, hi, _ = date.bounds  # date.earliest(), date.latest()
        if not (lo >= opens and hi <= as_of):
            return (STALE if hi < opens or lo > as_of else COARSE), newest
    # ``canonical(ctx, concept, newest)``, inline
    value = newest.value
    if value is None or newest.problem:
        return UNREADABLE, newest
    table = ctx.memo.readings.get(concept.name)
    reading = (table and table.get(newest.unit)) or readable(ctx, concept, newest.unit)
    factor = reading.scale
    if factor is None:
        return UNREADABLE, newest
    value *= factor
    plausible = concept.plausible
    if plausible and not (plausible[0] <= value <= plausible[1]):
        return UNREADABLE, newest
    for twin in twins:
        # Two results at the same instant that disagree: neither may silently win. A twin that
        # cannot be read may disagree too, so it makes the result of that instant uncertain.
        other = canonical(ctx, concept, twin)
        if other is None:
            return TWIN_UNREADABLE, newest, value, twin
        if not math.isclose(other[0], value, rel_tol=REL_TOL):
            return CONFLICT, newest, value, twin
    return PICKED, newest, value, reading


def _maybe_newer(idx: dict, concept: Concept, newest: Observation) -> tuple | None:
    """``select``'s ``DOUBT`` answer for an entry that names no concept and has no code, or whose
    display alone names ``concept``, and that may be newer than ``newest``; None when there is none."""
    earliest = newest.date.earliest()
    for o in idx["unreadable"].get("observation") or ():
        if o.date is None or o.date.latest() >= earliest:
            return DOUBT, newest, "unreadable", o
    for o in idx["unmatched"].get(concept.name) or ():
        if o.date is None or o.date.latest() >= earliest:
            return DOUBT, newest, "unmatched", o
    return None


def canonical(ctx: Context, concept: Concept, obs: Observation) -> tuple[float, "UnitReading"] | None:
    """(the observation's value in the concept's canonical unit, how its unit reads), or None when
    ``read_value`` finds it unusable (a problem, no value, no unit, a unit refused, that does not
    convert or does not fit, an implausible value): the reading without its phrases."""
    value = obs.value
    if value is None or obs.problem:
        return None
    table = ctx.memo.readings.get(concept.name)
    reading = (table and table.get(obs.unit)) or readable(ctx, concept, obs.unit)
    factor = reading.scale
    if factor is None:
        return None
    value *= factor
    plausible = concept.plausible
    if plausible and not (plausible[0] <= value <= plausible[1]):
        return None
    return value, reading


def measurement(ctx: Context, concept: Concept, label: str, window: p.Duration | None,
                candidates: list | None = None, key=None) -> Picked | Unusable:
    """The newest usable value of a concept in the window, or why there is none (``key``: the
    measurement's key for this evaluation, when the caller made it already)."""
    if candidates is not None:
        return read_measurement(ctx, concept, label, window, candidates)
    # Two rules that read one measurement in one window (ALT in I4.5 and E8) read it once. The
    # concept belongs to the protocol, alive as long as the evaluation, so its id is a key.
    if key is None:
        key = measure_key(concept, label, window)
    found = ctx.measured.get(key)
    if found is None:
        found = ctx.measured[key] = read_measurement(ctx, concept, label, window,
                                                     (ctx._index or ctx.index())["observation"].get(concept.name, ()))
    return found


def measure_key(concept: Concept, label: str, window: p.Duration | None) -> tuple:
    """The key of a measurement in one evaluation (``Context.measured``)."""
    return (id(concept), label, None) if window is None else (id(concept), label, window.amount, window.unit,
                                                               window.text)


def read_measurement(ctx: Context, concept: Concept, label: str, window: p.Duration | None,
                     records) -> Picked | Unusable:
    """``measurement`` from ``records`` (the concept's observations, newest first), not kept."""
    if window is None:
        opens = None
    else:  # ``ctx.window_opens(window)``, once per window ("7 days") and evaluation
        known = ctx.opened.get(window.text)
        if known is not None and known[0] == window.amount and known[1] == window.unit:
            opens = known[2]
        else:
            opens = ctx.window_opens(window)
            ctx.opened[window.text] = (window.amount, window.unit, opens)
    got = select(ctx, concept, records, opens)
    found = got[0]
    if found is PICKED:
        _, obs, value, reading = got
        # ``read_used(ctx, concept, obs, value, reading)``, inline
        conversion = None
        if reading.converted:
            conversion = _conversion(ctx, concept, obs.value, reading.unit, value)
        date = obs.date
        return new_picked(obs, value, new_value_used(
            concept.name, obs.value, obs.unit, value, concept.unit, conversion, None if date is None else str(date),
            str(obs.source), obs.value_text or obs.result))
    as_of = ctx.as_of
    if found is NO_RESULT:
        return new_unusable(f"no {label} recorded", (_want(ctx, label, window),), ())
    if found is UNDATED:
        return new_unusable(f"{label} is recorded without a date", (_want(ctx, label, window),), ())
    if found is FUTURE:
        return new_unusable(f"every {label} is dated after the evaluation date {as_of}", (_want(ctx, label, window),),
                            ())
    newest = got[1]
    if found is DOUBT:
        doubt = _doubt(concept, label, got[2], got[3], newest)
        return new_unusable(doubt[0], (_want(ctx, label, window),), doubt[1])
    if found is COARSE:
        return new_unusable(f"the newest {label} is dated only to {newest.date}, which may fall outside "
                            f"the {window.text} window", (_want(ctx, label, window),), (raw_value(concept, newest),))
    if found is STALE:
        return new_unusable(f"stale: the newest {label} is from {newest.date}, older than {window.text} "
                            f"before {as_of}", (_want(ctx, label, window),), (raw_value(concept, newest),))
    picked = read_value(ctx, concept, label, newest, None, window)
    if found is UNREADABLE:
        return picked
    twin = got[3]
    date = newest.date
    if found is TWIN_UNREADABLE:
        other = read_value(ctx, concept, label, twin, None, window)
        return Unusable(f"another {label} of the same time ({date}, {twin.source}) cannot be read, "
                        f"so {with_unit(fmt(picked.value), concept.unit)} may not be the result of that time: "
                        f"{other.reason}", (f"{_want(ctx, label, window)} (confirmed result)",),
                        (picked.used, *other.values))
    other = read_value(ctx, concept, label, twin, None, window)  # CONFLICT
    return Unusable(f"conflicting {label} results at the same time ({date}): "
                    f"{fmt(picked.value)} and {with_unit(fmt(other.value), concept.unit)}",
                    (f"{_want(ctx, label, window)} (confirmed result)",), (picked.used, other.used))


def _want(ctx: Context, label: str, window: p.Duration | None) -> str:
    """What to collect when a measurement cannot be used: the label and its window."""
    return f"{label}{ctx.window_text(window)}"


def _doubt(concept: Concept, label: str, why: str, o: Observation, newest: Observation):
    """(reason, values) of an entry that may be newer than ``newest`` (``select``'s ``DOUBT``)."""
    if why == "undated":
        return (f"a {label} result ({o.source}) has no readable date, so it may be newer than the one of "
                f"{newest.date}, which therefore cannot decide", (raw_value(concept, o),))
    if why == "unreadable":
        return (f"{o.source} names no concept and has no code, and it may be a {label} newer than the one of "
                f"{newest.date}, which therefore cannot decide", ())
    when = f"of {o.date}" if o.date is not None else "without a readable date"
    return (f"{o.source}, {when}, names {concept.name} in its display but its code is not in the "
            f"concept's value set; it may be the newest {label}, so the one of {newest.date} cannot "
            f"decide", (raw_value(concept, o),))


def raw_value(concept: Concept, obs: Observation) -> ValueUsed:
    return value_used(concept=concept.name, value=obs.value, unit=obs.unit, date=date_text(obs.date),
                     source=str(obs.source), text=obs.value_text or obs.result)


@attrs.frozen
class UnitReading:
    """How a value recorded in one unit reads for one concept: what ``read_value`` decides from the
    unit alone, worked out once per (concept, recorded unit) and kept in the protocol's memo."""

    unit: str | None  # the unit the value is read in (``recorded_unit``); None: no unit, so it cannot be read
    refused: str | None  # the vocabulary refuses the unit for this concept: why
    factor: float | str | None  # to the canonical unit, or why it does not convert (None when refused)
    fits: bool  # the unit may be read for the concept (``unit_fits``)
    converted: bool  # the canonical value is shown as a conversion (the units differ beyond spelling)
    scale: float | None  # ``factor`` when a value in this unit can be read; else None


def readable(ctx: Context, concept: Concept, recorded: str | None) -> UnitReading:
    """The ``UnitReading`` of a value of ``concept`` recorded in ``recorded`` (None: without a
    unit), from the protocol's memo (``Memo.readings``: per concept name, per recorded unit)."""
    readings = ctx.memo.readings
    table = readings.get(concept.name)
    if table is None:
        table = Memo.put(readings, concept.name, {})
    reading = table.get(recorded)
    if reading is None:
        unit = recorded_unit(concept, recorded)
        refused = factor = fits = converted = None
        if unit is not None:
            refused = concept.refused(unit)
            if not refused:
                resolver = ctx.resolver
                factor = resolver.factor(unit, concept.unit or "1", concept.molar_mass)
                if not isinstance(factor, str):
                    fits = recorded is None or unit_fits(ctx, concept, recorded, factor)
                    converted = resolver.unit_key(unit) != resolver.unit_key(concept.unit or "1")
        scale = factor if isinstance(factor, float) and fits else None
        reading = Memo.put(table, recorded, UnitReading(unit, refused, factor, bool(fits), bool(converted), scale))
    return reading


def recorded_unit(concept: Concept, recorded: str | None) -> str | None:
    """The unit a value recorded in ``recorded`` is read in: that unit; for a value without one, the
    concept's own when the vocabulary reads such values as canonical; else None (it cannot be read)."""
    if recorded is None:
        return concept.unit if concept.unitless == "canonical" else None
    return recorded


def read_used(ctx: Context, concept: Concept, obs: Observation, value: float, reading: UnitReading) -> ValueUsed:
    """The ``ValueUsed`` of an observation read as ``value`` (canonical unit) through ``reading``."""
    conversion = None
    if reading.converted:
        conversion = _conversion(ctx, concept, obs.value, reading.unit, value)
    date = obs.date
    return new_value_used(concept.name, obs.value, obs.unit, value, concept.unit, conversion,
                          None if date is None else str(date), str(obs.source),
                          obs.value_text or obs.result)


def _conversion(ctx: Context, concept: Concept, recorded: float, unit: str, value: float) -> str:
    """'97.2 µmol/L = 1.10 mg/dL': the text depends only on the recorded number, its unit and the
    concept, so it is made once per distinct one."""
    key = ("conversion", recorded, unit, concept.name)
    texts = ctx.memo.texts
    text = texts.get(key)
    if text is None:
        text = Memo.put(texts, key, f"{with_unit(fmt(recorded), unit)} = {with_unit(fmt3(value), concept.unit)}")
    return text


def read_value(ctx: Context, concept: Concept, label: str, obs: Observation, want: str | None,
               window: p.Duration | None = None) -> Picked | Unusable:
    """One observation's value in the concept's canonical unit, or why it cannot be read (with
    ``want`` to collect; None: the label within ``window``, made only when it is needed)."""
    if obs.problem or obs.value is None:
        return Unusable(f"{label} on {obs.date} cannot be used: {obs.problem or 'no numeric value'}",
                        (want or _want(ctx, label, window),), (raw_value(concept, obs),))
    table = ctx.memo.readings.get(concept.name)
    reading = (table and table.get(obs.unit)) or readable(ctx, concept, obs.unit)
    unit = reading.unit
    if unit is None:
        return Unusable(f"{label} on {obs.date} is recorded without a unit, so {fmt(obs.value)} "
                            f"cannot be read", (want or _want(ctx, label, window),), (raw_value(concept, obs),))
    if reading.refused:
        return Unusable(f"{label} on {obs.date} is in {unit}, which is not converted to {concept.unit}: "
                        f"{reading.refused}", (f"{want or _want(ctx, label, window)} in {concept.unit}",),
                        (raw_value(concept, obs),))
    factor = reading.factor
    if isinstance(factor, str):
        return Unusable(f"{label} on {obs.date}: {factor}", (want or _want(ctx, label, window),),
                        (raw_value(concept, obs),))
    if not reading.fits:
        return Unusable(f"{label} on {obs.date}: the unit {obs.unit!r} does not fit {concept.name}, which is read "
                        f"only " + ("without a unit or " if concept.unitless else "") +
                        f"in {' or '.join((concept.unit or '1', *concept.also_units))}",
                        (want or _want(ctx, label, window),),
                        (raw_value(concept, obs),))
    value = obs.value * factor
    used = read_used(ctx, concept, obs, value, reading)
    if concept.plausible and not (concept.plausible[0] <= value <= concept.plausible[1]):
        lo, hi = concept.plausible
        return Unusable(f"implausible {label} {with_unit(fmt(value), concept.unit)} on {obs.date} (plausible range "
                        f"{fmt(lo)}–{with_unit(fmt(hi), concept.unit)}); check the value and its unit",
                        (want or _want(ctx, label, window),), (used,))
    return new_picked(obs, value, used)


def unit_fits(ctx: Context, concept: Concept, unit: str, factor: float) -> bool:
    """Whether a recorded unit may be read for the concept. Units of another dimension fail the
    conversion already; a dimensionless concept (a score, a ratio, a fraction) also refuses a
    dimensionless unit of another scale (``%`` on ECOG) unless the vocabulary lists it."""
    if math.isclose(factor, 1.0, rel_tol=1e-12):
        return True
    q = concept.unit_quantity
    if q is None or not q.dimensionless:
        return True
    key = ctx.resolver.unit_key(unit)
    return any(key == ctx.resolver.unit_key(u) for u in concept.also_units)


def demographic(ctx: Context, subject: p.MeasureRef):
    """(value, values used, derived, observation) of a demographic concept (age), or Unusable."""
    patient = ctx.patient
    if subject.concept.name == "age":
        if patient.birth_date is None:
            return Unusable("the birth date is not recorded", ("birth date",))
        age = ctx.age()
        if age is None:
            return Unusable(f"the birth date is known only to {patient.birth_date}, "
                            f"which leaves the age undecided", ("full birth date",))
        used = value_used(concept="age", value=float(age), unit="years", canonical_value=float(age),
                         canonical_unit="year", date=ctx.as_of.isoformat(),
                         source=f"birth date {patient.birth_date} ({patient.source_file or 'record'})",
                         text=f"{age} years at {ctx.as_of}")
        return float(age), (used,), None, None
    return Unusable(f"no rule computes {subject.concept.name}", (subject.concept.name,))


def paired(ctx: Context, refs: list, window: p.Duration | None):
    """Measurements taken together: each input at the first input's time (±1 h, or the same day)."""
    as_of = ctx.as_of
    first, *others = refs
    records = ctx.observations(first.concept.name)
    want = [f"{r.label} measured together{ctx.window_text(window)}" for r in refs]
    if not records:
        return Unusable(f"no {first.label} recorded", tuple(want))
    start = window_start(as_of, window.amount, window.unit) if window else dt.date.min
    undated = next((o for o in records if o.date is None), None)
    if undated is not None:
        return Unusable(f"a {first.label} result ({undated.source}) has no readable date, so it may be the newest",
                        tuple(want), (raw_value(first.concept, undated),))
    reasons = []
    for obs in records:
        if obs.date is None or obs.date.earliest() > as_of:
            continue
        if window and within(obs.date, start, as_of) is not True:
            reasons.append(f"the newest {first.label} ({obs.date}) is outside the {window.text} window")
            break
        picked_first = read_value(ctx, first.concept, first.label, obs, want[0])
        if isinstance(picked_first, Unusable):
            reasons.append(picked_first.reason)
            continue
        partners = []
        for ref in others:
            partner = pairing_partner(ctx.observations(ref.concept.name), obs)
            if partner is None:
                break
            picked = read_value(ctx, ref.concept, ref.label, partner, want[0])
            if isinstance(picked, Unusable):
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
    return Unusable(reason, tuple(want))


def pairing_partner(candidates: list, obs: Observation) -> Observation | None:
    """The candidate taken closest to ``obs`` within ±1 h (or on the same day, without times)."""
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
