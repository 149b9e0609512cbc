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
from elig.engine.context import Context, Picked, Unusable
from elig.engine.memo import Memo
from elig.engine.results import ValueUsed
from elig.engine.summary import date_text
from elig.records.dates import window_start, within
from elig.records.patient import Observation
from elig.terminology.units import format_converted as fmt3, format_number as fmt, with_unit
from elig.terminology.vocabulary import Concept

PAIRING_TOLERANCE = dt.timedelta(hours=1)


def measurement(ctx: Context, concept: Concept, label: str, window: p.Duration | None,
                candidates: list | None = None) -> Picked | Unusable:
    """The newest usable value of a concept in the window, or why there is none."""
    if candidates is not None:
        return _measurement(ctx, concept, label, window, candidates)
    # Two rules that read one measurement in one window (ALT in I4.5 and E8) read it once. The
    # concept belongs to the protocol, alive as long as the evaluation, so its id is a key.
    key = (id(concept), label, None) if window is None else (id(concept), label, window.amount, window.unit,
                                                              window.text)
    found = ctx.measured.get(key)
    if found is None:
        found = ctx.measured[key] = _measurement(ctx, concept, label, window,
                                                 (ctx._index or ctx.index())["observation"].get(concept.name, ()))
    return found


def _measurement(ctx: Context, concept: Concept, label: str, window: p.Duration | None,
                 records) -> Picked | Unusable:
    as_of = ctx.as_of
    newest = None
    later = 0  # how many results after the newest are not in the future (same-time twins come first)
    undated = None  # the first result without a date
    dated = counted = False
    for o in records:
        if o.value is None and not o.problem and o.result is not None:
            continue  # a qualitative result: not a measurement
        counted = True
        d = o.date
        if d is None:
            if undated is None:
                undated = o
            continue
        dated = True
        if d.earliest() <= as_of:
            if newest is None:
                newest = o
            else:
                later += 1
    if not counted:
        return Unusable(f"no {label} recorded", (_want(ctx, label, window),))
    if not dated:
        return Unusable(f"{label} is recorded without a date", (_want(ctx, label, window),))
    if newest is None:
        return Unusable(f"every {label} is dated after the evaluation date {as_of}", (_want(ctx, label, window),))
    # An entry that cannot be placed in time, or whose code names the concept only in its display,
    # may be the newest: the older value must not decide in its place (docs/semantics.md).
    doubt = _may_be_newer(ctx, concept, label, undated, newest)
    if doubt is not None:
        return Unusable(doubt[0], (_want(ctx, label, window),), doubt[1])
    if window is not None:
        in_window = within(newest.date, ctx.window_opens(window), as_of)
        if in_window is None:
            return Unusable(f"the newest {label} is dated only to {newest.date}, which may fall outside "
                            f"the {window.text} window", (_want(ctx, label, window),), (raw_value(concept, newest),))
        if not in_window:
            return Unusable(f"stale: the newest {label} is from {newest.date}, older than {window.text} "
                            f"before {as_of}", (_want(ctx, label, window),), (raw_value(concept, newest),))
    picked = read_value(ctx, concept, label, newest, None, window)
    if later and isinstance(picked, Picked):
        # Two results at the same instant that disagree: neither may silently win. A twin that
        # cannot be read may disagree too, so it makes the result of that instant uncertain.
        date = newest.date
        seen = False
        for twin in records:
            if not seen:
                seen = twin is newest
                continue
            if twin.value is None and not twin.problem and twin.result is not None:
                continue
            d = twin.date
            if d is None or d.earliest() > as_of:
                continue
            if d != date:
                break
            other = read_value(ctx, concept, label, twin, None, window)
            if isinstance(other, Unusable):
                return Unusable(f"another {label} of the same time ({date}, {twin.source}) cannot be read, "
                                f"so {with_unit(fmt(picked.value), concept.unit)} may not be the result of that time: "
                                f"{other.reason}", (f"{_want(ctx, label, window)} (confirmed result)",),
                                (picked.used, *other.values))
            if not math.isclose(other.value, picked.value, rel_tol=REL_TOL):
                return Unusable(f"conflicting {label} results at the same time ({date}): "
                                f"{fmt(picked.value)} and {with_unit(fmt(other.value), concept.unit)}",
                                (f"{_want(ctx, label, window)} (confirmed result)",), (picked.used, other.used))
    return picked


def _want(ctx: Context, label: str, window: p.Duration | None) -> str:
    """What to collect when a measurement cannot be used: the label and its window."""
    return f"{label}{ctx.window_text(window)}"


def _may_be_newer(ctx: Context, concept: Concept, label: str, undated: Observation | None, newest: Observation):
    """(reason, values) when an entry of the concept that cannot be placed or matched may be newer
    than ``newest`` (``undated``: the first of its results without a date, if any); None when every
    entry is dated and matched by code or name."""
    if undated is not None:
        o = undated
        return (f"a {label} result ({o.source}) has no readable date, so it may be newer than the one of "
                f"{newest.date}, which therefore cannot decide", (raw_value(concept, o),))
    idx = ctx._index or ctx.index()
    unreadable = idx["unreadable"].get("observation")
    unmatched = idx["unmatched"].get(concept.name)
    if not unreadable and not unmatched:
        return None
    for o in unreadable or ():
        if o.date is None or o.date.latest() >= newest.date.earliest():
            return (f"{o.source} names no concept and has no code, and it may be a {label} newer than the one of "
                    f"{newest.date}, which therefore cannot decide", ())
    for o in unmatched or ():
        if o.date is None or o.date.latest() >= newest.date.earliest():
            when = f"of {o.date}" if o.date is not None else "without a readable date"
            return (f"{o.source}, {when}, names {concept.name} in its display but its code is not in the "
                    f"concept's value set; it may be the newest {label}, so the one of {newest.date} cannot "
                    f"decide", (raw_value(concept, o),))
    return None


def raw_value(concept: Concept, obs: Observation) -> ValueUsed:
    return ValueUsed(concept=concept.name, value=obs.value, unit=obs.unit, date=date_text(obs.date),
                     source=str(obs.source), text=obs.value_text or obs.result)


@attrs.frozen
class UnitReading:
    """How a value recorded in one unit reads for one concept: what ``read_value`` decides from the
    unit alone, worked out once per (recorded unit, concept) and kept in the protocol's memo."""

    refused: str | None  # the vocabulary refuses the unit for this concept: why
    factor: float | str | None  # to the canonical unit, or why it does not convert (None when refused)
    fits: bool  # the unit may be read for the concept (``unit_fits``)
    converted: bool  # the canonical value is shown as a conversion (the units differ beyond spelling)


def unit_reading(ctx: Context, concept: Concept, recorded: str | None, unit: str) -> UnitReading:
    """The ``UnitReading`` of ``unit`` (the recorded unit, or the concept's own for a unit-less value
    read as canonical) for ``concept``, from the protocol's memo."""
    key = (recorded, unit, concept.name)
    table = ctx.memo.units
    reading = table.get(key)
    if reading is None:
        refused = concept.refused(unit)
        factor = fits = converted = None
        if not refused:
            resolver = ctx.resolver
            factor = resolver.factor(unit, concept.unit or "1", concept.molar_mass)
            if not isinstance(factor, str):
                fits = recorded is None or unit_fits(ctx, concept, recorded, factor)
                converted = resolver.unit_key(unit) != resolver.unit_key(concept.unit or "1")
        reading = Memo.put(table, key, UnitReading(refused, factor, bool(fits), bool(converted)))
    return reading


def recorded_unit(concept: Concept, recorded: str | None) -> str | None:
    """The unit a value recorded in ``recorded`` is read in: that unit; for a value without one, the
    concept's own when the vocabulary reads such values as canonical; else None (it cannot be read)."""
    if recorded is None:
        return concept.unit if concept.unitless == "canonical" else None
    return recorded


def read_value(ctx: Context, concept: Concept, label: str, obs: Observation, want: str | None,
               window: p.Duration | None = None) -> Picked | Unusable:
    """One observation's value in the concept's canonical unit, or why it cannot be read (with
    ``want`` to collect; None: the label within ``window``, made only when it is needed)."""
    if obs.problem or obs.value is None:
        return Unusable(f"{label} on {obs.date} cannot be used: {obs.problem or 'no numeric value'}",
                        (want or _want(ctx, label, window),), (raw_value(concept, obs),))
    unit = recorded_unit(concept, obs.unit)
    if unit is None:
        return Unusable(f"{label} on {obs.date} is recorded without a unit, so {fmt(obs.value)} "
                            f"cannot be read", (want or _want(ctx, label, window),), (raw_value(concept, obs),))
    reading = ctx.memo.units.get((obs.unit, unit, concept.name)) or unit_reading(ctx, concept, obs.unit, unit)
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
    conversion = None
    if reading.converted:
        # The text depends only on the recorded number, its unit and the concept: made once per distinct one.
        key = ("conversion", obs.value, unit, concept.name)
        texts = ctx.memo.texts
        conversion = texts.get(key)
        if conversion is None:
            conversion = Memo.put(texts, key, f"{with_unit(fmt(obs.value), unit)} = "
                                              f"{with_unit(fmt3(value), concept.unit)}")
    used = ValueUsed(concept.name, obs.value, obs.unit, value, concept.unit, conversion,
                     None if obs.date is None else str(obs.date), str(obs.source), obs.value_text or obs.result)
    if concept.plausible and not (concept.plausible[0] <= value <= concept.plausible[1]):
        lo, hi = concept.plausible
        return Unusable(f"implausible {label} {with_unit(fmt(value), concept.unit)} on {obs.date} (plausible range "
                        f"{fmt(lo)}–{with_unit(fmt(hi), concept.unit)}); check the value and its unit",
                        (want or _want(ctx, label, window),), (used,))
    return Picked(obs, value, used)


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
        used = ValueUsed(concept="age", value=float(age), unit="years", canonical_value=float(age),
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
