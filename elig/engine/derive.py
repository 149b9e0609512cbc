"""The value a comparison tests: a measurement, a demographic, a ratio of paired measurements, or a
derived value computed by its declared formula (``elig.terminology.derivations``)."""

from __future__ import annotations

import attrs

from elig.engine import plan as p
from elig.engine.context import Context, Unusable
from elig.engine.measure import demographic, measure_key, measurement, paired
from elig.engine.results import Derived, ValueUsed, new_derived, new_value_used
from elig.terminology.derivations import Inputs
from elig.terminology.units import format_number as fmt, with_unit


def subject_value(ctx: Context, subject: p.SubjectRef, window: p.Duration | None):
    """(value, values used, derived explanation, observation) or Unusable."""
    if isinstance(subject, p.MeasureRef):
        if subject.concept.kind == "demographic":
            return demographic(ctx, subject)
        picked = measurement(ctx, subject.concept, subject.label, window)
        if isinstance(picked, Unusable):
            return picked
        return picked.value, (picked.used,), None, picked.obs
    if isinstance(subject, p.RatioRef):
        return ratio(ctx, subject, window)
    return derived(ctx, subject, window)


def ratio(ctx: Context, subject: p.RatioRef, window: p.Duration | None):
    pair = paired(ctx, [subject.numerator, subject.denominator], window)
    if isinstance(pair, Unusable):
        return pair
    (num, den), pairing = pair
    if den.value == 0:
        return Unusable(f"{subject.denominator.label} is zero", (subject.denominator.label,), (den.used,))
    value = num.value / den.value
    unit = subject.unit
    d = Derived(
        concept=subject.label, method="ratio of paired measurements",
        formula=f"{subject.label} = {subject.numerator.label} / {subject.denominator.label}",
        substituted=f"{with_unit(fmt(num.value), subject.numerator.concept.unit)} / {fmt(den.value)} = {with_unit(fmt(value), unit)}",
        value=value, unit=unit, inputs=(num.used, den.used), pairing=pairing,
    )
    return value, (num.used, den.used), d, None


@attrs.frozen
class DerivationPlan:
    """What a derived subject needs beyond the record, worked out once per subject: both
    evaluators read a derived value through it (the explaining one through ``_plan``, kept in
    the protocol's memo; the compiled one when it compiles the subject)."""

    concepts: dict  # input key -> concept
    factors: dict  # input key -> factor from the concept's canonical unit to the input's unit
    params: dict  # parameter key -> value (defaults, overridden by the protocol)
    param_text: tuple[str, ...]
    factor: float | str  # from the derivation's unit to the subject concept's
    keys: dict  # input key -> (window, its measurement's key in an evaluation: ``measure.measure_key``)


def derivation_plan(vocabulary, resolver, subject: p.DerivedRef) -> DerivationPlan:
    """The ``DerivationPlan`` of a derived subject, from the protocol's vocabulary and unit resolver."""
    d = subject.derivation
    concepts = {i.key: vocabulary.lookup(i.concept) for i in d.inputs}
    factors = {}
    for inp in d.inputs:
        concept = concepts[inp.key]
        factors[inp.key] = resolver.factor(concept.unit, inp.unit, concept.molar_mass)
    params = {prm.key: prm.default for prm in d.params}
    overridden = dict(subject.params)
    params.update(overridden)
    param_text = tuple(f"{prm.names[0]} = {fmt(params[prm.key])}" + ("" if prm.unit == "1" else f" {prm.unit}") +
                       ("" if prm.key in overridden else " (default)") for prm in d.params)
    return DerivationPlan(concepts, factors, params, param_text,
                          resolver.factor(d.unit, subject.concept.unit or d.unit), {})


def _plan(ctx: Context, subject: p.DerivedRef) -> DerivationPlan:
    found = ctx.memo.of_node(subject)
    if found is None:
        found = ctx.memo.for_node(subject, derivation_plan(ctx.vocabulary, ctx.resolver, subject))
    return found


def derived(ctx: Context, subject: p.DerivedRef, window: p.Duration | None):
    d = subject.derivation
    plan = _plan(ctx, subject)
    values: dict[str, float] = {}
    used: list[ValueUsed] = []
    missing: list[str] = []
    reasons: list[str] = []
    pairing = None
    concepts = plan.concepts
    if d.paired:
        refs = [p.MeasureRef(concepts[i.key], i.concept) for i in d.inputs]
        pair = paired(ctx, refs, window)
        if isinstance(pair, Unusable):
            return pair
        picked_list, pairing = pair
        picked_map = dict(zip([i.key for i in d.inputs], picked_list))
    else:
        picked_map = {}
        keys = plan.keys
        for inp in d.inputs:
            known = keys.get(inp.key)
            if known is None or known[0] is not window:  # made for the window this subject is read in
                known = keys[inp.key] = (window, measure_key(concepts[inp.key], inp.concept, window))
            picked = measurement(ctx, concepts[inp.key], inp.concept, window, None, known[1])
            if isinstance(picked, Unusable):
                missing.extend(picked.missing)
                reasons.append(picked.reason)
                used.extend(picked.values)
                continue
            picked_map[inp.key] = picked
    for inp in d.inputs:
        picked = picked_map.get(inp.key)
        if picked is None:
            continue
        factor = plan.factors[inp.key]
        values[inp.key] = picked.value * (factor if isinstance(factor, float) else 1.0)
        used.append(picked.used)
    age = sex = None
    if d.needs_age:
        age = ctx.age()
        if age is None:
            missing.append("birth date")
            reasons.append("the age is unknown (no full birth date)")
        else:
            used.insert(0, new_value_used("age", float(age), "years", None, None, None, ctx.as_of.isoformat(),
                                          f"birth date {ctx.patient.birth_date}", f"{age} years"))
    if d.needs_sex:
        sex = ctx.patient.sex
        if sex is None:
            missing.append("sex")
            reasons.append("the sex is not recorded")
        else:
            used.insert(1 if d.needs_age and age is not None else 0,
                        new_value_used("sex", None, None, None, None, None, None, "patient record", sex))
    if reasons:
        return Unusable(f"{subject.concept.name} ({d.title}) cannot be computed: " + "; ".join(reasons),
                        tuple(missing), tuple(used))
    value, substituted = d.compute(Inputs(values={**values, **plan.params}, age=age, sex=sex))
    explained = new_derived(subject.concept.name, d.title, d.formula,
                            f"{substituted} = {with_unit(fmt(value), d.unit)}", value, d.unit, tuple(used),
                            d.reference, pairing, plan.param_text)
    factor = plan.factor
    canonical = value * factor if isinstance(factor, float) else value
    return canonical, tuple(used), explained, None
