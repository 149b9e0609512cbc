"""Thresholds: exact float comparison, and a bound as a canonical float (resolving × ULN).

Boundaries are exact: values within a relative 1e-9 of a threshold are equal
to it, so floating-point noise from unit conversion never flips a verdict.
"""

from __future__ import annotations

import math

from elig.engine import plan as p
from elig.engine.context import Unusable
from elig.engine.results import ThresholdUsed, new_threshold_used
from elig.records.patient import Observation
from elig.terminology.units import format_number as fmt, with_unit

REL_TOL = 1e-9


def ge(a: float, b: float) -> bool:
    return a > b or _isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


def le(a: float, b: float) -> bool:
    return a < b or _isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


def gt(a: float, b: float) -> bool:
    return a > b and not _isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


def lt(a: float, b: float) -> bool:
    return a < b and not _isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


def eq(a: float, b: float) -> bool:
    return _isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


def ne(a: float, b: float) -> bool:
    return not _isclose(a, b, rel_tol=REL_TOL, abs_tol=1e-12)


_isclose = math.isclose
# Each comparator as a function of (value, threshold): both evaluators compare with these.
COMPARE = {">=": ge, "<=": le, ">": gt, "<": lt, "==": eq, "!=": ne}


def compare(a: float, op: str, b: float) -> bool:
    """Compare with exact boundaries: a value within rounding noise of b equals b."""
    check = COMPARE.get(op)
    if check is None:
        raise ValueError(op)
    return check(a, b)


def subject_unit(subject) -> str:
    """The unit a subject's value is shown in ("years" for age, nothing for unit-less scores)."""
    if isinstance(subject, p.RatioRef):
        return subject.unit
    unit = subject.concept.unit or ""
    return {"year": "years", "1": ""}.get(unit, unit)


def uln_problem(concept, uln: float, low: float | None, factor: float, resolver) -> str | None:
    """Why a reference range's upper limit cannot serve as the ULN, or None when it can.

    It must be a finite, positive number, above the range's low end, and within the
    concept's plausible range: an upper limit of 1e308 U/L (or inf, or 0) would make any
    multiple of it meaningless, and the check would pass every value.
    """
    if not math.isfinite(uln) or uln <= 0:
        return "is not a positive finite number"
    if low is not None and math.isfinite(low) and low * factor > uln:
        return f"is below the range's low end {fmt(low)}"
    window = plausible_uln(concept, resolver)
    if window is not None and not window[0] <= uln <= window[1]:
        lo, hi = window
        return (f"is not a plausible upper limit of normal for {concept.name} "
                f"({fmt(lo)}–{with_unit(fmt(hi), concept.unit)})")
    return None


ULN_SPREAD = 4.0  # laboratories' upper limits differ from the usual one by far less than fourfold


def plausible_uln(concept, resolver) -> tuple[float, float] | None:
    """The upper limits of normal a reference range may give for the concept (canonical unit):
    within a factor of 4 of the vocabulary's default ULN; else within the plausible range.

    The factor comes from the protocol's ``UnitResolver``: this runs for every observation with
    a reference range, and pint is consulted once per distinct unit, not once per patient.
    """
    uln = concept.uln
    defaults = [v for v in (uln.value, uln.male, uln.female) if v is not None] if uln is not None else []
    if defaults and concept.unit_quantity is not None:
        # a vocabulary ULN in a unit that does not convert (a reason string) is checked by the vocabulary
        factor = resolver.factor(uln.unit, concept.unit or "1", concept.molar_mass)
        if isinstance(factor, float) and factor:
            return min(defaults) * factor / ULN_SPREAD, max(defaults) * factor * ULN_SPREAD
    return concept.plausible


def bound_value(ctx, bound: p.Bound, subject: p.SubjectRef, obs: Observation | None, sex: str | None = None):
    """The threshold as a canonical float and how it was set, resolving x ULN; or why it cannot be set.

    The answer depends on the bound and subject (nodes of the plan), and for a multiple of the ULN
    or LLN on the observation's reference range, unit and record name and on the sex: it is kept in
    the protocol's memo under exactly those, and the same (immutable) answer is returned again."""
    key = ("bound", id(bound), id(subject), bound_reads(ctx, bound, obs, sex))
    memo = ctx.memo
    found = memo.recall(key, (bound, subject))
    if found is None:
        found = memo.keep(key, (bound, subject), _bound_value(ctx, bound, subject, obs, sex))
    return found


def bound_reads(ctx, bound: p.Bound, obs: Observation | None, sex: str | None):
    """Everything of the patient that ``bound_value`` reads for this bound: nothing for a plain
    threshold; for a multiple of the ULN or LLN, the observation's reference range, units and
    record name, and the sex (the default ULN may depend on it). A memo key."""
    if bound.uln_factor is None and bound.lln_factor is None:
        return None
    ref = None if obs is None else (obs.reference_high, obs.reference_low, obs.reference_unit, obs.unit,
                                    obs.source.record)
    return ref, sex or ctx.patient.sex


def _bound_value(ctx, bound: p.Bound, subject: p.SubjectRef, obs: Observation | None, sex: str | None = None):
    unit = subject_unit(subject)
    if bound.lln_factor is not None:
        return lln_value(ctx, bound, subject, obs, unit)
    if bound.uln_factor is None:
        return bound.value, new_threshold_used(bound.text, bound.value, unit, None, None, "ULN")
    concept = subject.concept
    resolver = ctx.resolver
    uln, source, refused = None, None, None
    if obs is not None and obs.reference_high is not None:
        ref_unit = obs.reference_unit or obs.unit or concept.unit
        factor = resolver.factor(ref_unit, concept.unit or "1", concept.molar_mass) if ref_unit else 1.0
        stated = f"upper limit {with_unit(fmt(obs.reference_high), ref_unit)}"
        if not isinstance(factor, float):
            refused = f"the reference range of {obs.source.record} ({stated}) cannot be read: {factor}"
        else:
            refused = uln_problem(concept, obs.reference_high * factor, obs.reference_low, factor, resolver)
            if refused is None:
                uln = obs.reference_high * factor
                source = f"reference range of {obs.source.record} ({stated})"
            else:
                refused = f"the reference range of {obs.source.record} gives an {stated}, which {refused}"
    if uln is None and concept.uln is not None:
        sex_for_uln = sex or ctx.patient.sex
        default = concept.uln.for_sex(sex_for_uln)
        if default is not None:
            factor = resolver.factor(concept.uln.unit, concept.unit or "1", concept.molar_mass)
            uln = default * (factor if isinstance(factor, float) else 1.0)
            specific = concept.uln.male is not None and concept.uln.female is not None
            source = f"{concept.uln.source}" + (f", {sex_for_uln}" if specific else "")
            if refused:
                source += f", because {refused}"
    if uln is None:
        why = ("the observation has no reference range and the default ULN depends on sex, which is not recorded"
               if concept.uln is not None else
               "the observation has no reference range and the vocabulary declares no default ULN")
        if refused:
            why = refused + ("; the default ULN depends on sex, which is not recorded" if concept.uln is not None
                             else "; the vocabulary declares no default ULN")
        return Unusable(why, (f"reference range (ULN) of {subject.label}",) if concept.uln is None else ("sex",))
    limit = bound.uln_factor * uln
    return limit, new_threshold_used(bound.text, limit, unit, uln, source, "ULN")


def lln_value(ctx, bound: p.Bound, subject: p.SubjectRef, obs: Observation | None, unit: str):
    """A multiple of the lower limit of normal (`≥ LLN`), from the observation's reference range."""
    concept = subject.concept
    if obs is not None and obs.reference_low is not None:
        ref_unit = obs.reference_unit or obs.unit or concept.unit
        factor = ctx.resolver.factor(ref_unit, concept.unit or "1", concept.molar_mass) if ref_unit else 1.0
        if isinstance(factor, float):
            lln = obs.reference_low * factor
            source = f"reference range of {obs.source.record} (lower limit {with_unit(fmt(obs.reference_low), ref_unit)})"
            limit = bound.lln_factor * lln
            return limit, ThresholdUsed(text=bound.text, value=limit, unit=unit, uln=lln, uln_source=source,
                                        limit="LLN")
    return Unusable("the observation has no reference range with a lower limit, and the vocabulary declares "
                    "no default LLN", (f"reference range (LLN) of {subject.label}",))


def quick_uln(ctx, concept, obs: Observation, cache: dict) -> float | None:
    """The ULN an observation's own reference range gives, when ``bound_value`` would use it; else None.

    The compiled evaluator falls back to ``bound_value`` when this answers None (no reference
    range, a unit that does not convert, a limit ``uln_problem`` refuses). ``cache`` is the
    compiled protocol's: one check per distinct (concept, range, unit).
    """
    high = obs.reference_high
    if high is None:
        return None
    ref_unit = obs.reference_unit or obs.unit or concept.unit
    key = (concept.name, high, obs.reference_low, ref_unit)
    uln = cache.get(key, False)
    if uln is False:
        factor = ctx.resolver.factor(ref_unit, concept.unit or "1", concept.molar_mass) if ref_unit else 1.0
        uln = None
        if isinstance(factor, float) and uln_problem(concept, high * factor, obs.reference_low, factor, ctx.resolver) is None:
            uln = high * factor
        cache[key] = uln
    return uln
