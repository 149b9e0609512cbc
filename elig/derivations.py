"""The catalogue of derived values: each a named method with its formula.

A derivation is a small declaration plus a pure function. The declaration
(``@derivation(...)``) names the concept it computes, the method names a
protocol may use in parentheses, the inputs (vocabulary concepts and the unit
the formula wants them in), constants that a protocol may override
(``(alveolar gas equation, Patm: 700 mmHg)``), the formula as people read it
and its reference. The function receives plain floats already converted to
those units and returns the value and the formula with the numbers substituted.

Adding a derived value is one decorated function here and one concept in
``elig/data/vocabulary.yaml``; the checker, evaluator, explanation and
documentation pick it up from the declaration.
"""

from __future__ import annotations

import math
import types
from typing import Callable, Mapping

import attrs

from elig.units import format_converted as fmt


@attrs.frozen
class Input:
    key: str  # name of the argument in the formula
    concept: str  # vocabulary concept
    unit: str  # unit the formula wants


@attrs.frozen
class Param:
    """A constant of the formula that a protocol may override."""

    key: str
    names: tuple[str, ...]  # how a protocol may name it: "Patm", "barometric pressure"
    default: float
    unit: str
    meaning: str


@attrs.frozen
class Inputs:
    """What a derivation function receives: floats in the declared units."""

    values: Mapping[str, float]
    age: int | None = None
    sex: str | None = None

    def __getattr__(self, key: str) -> float:
        try:
            return self.values[key]
        except KeyError:
            raise AttributeError(key) from None


@attrs.frozen
class Derivation:
    key: str
    concept: str
    title: str
    method_names: tuple[str, ...]  # names of the method family ("Cockcroft-Gault")
    variant_names: tuple[str, ...]  # names selecting this variant; () for the family default
    inputs: tuple[Input, ...]
    needs_age: bool
    needs_sex: bool
    params: tuple[Param, ...]
    unit: str
    formula: str
    reference: str
    compute: Callable[[Inputs], tuple[float, str]] = attrs.field(eq=False, repr=False)
    # Inputs measured together (PaO2 with FiO2): paired by time, not taken independently.
    paired: bool = False
    notes: str = ""


def derivation(**declaration):
    """Declare a derivation; the decorated function becomes its ``compute``."""

    def wrap(fn: Callable[[Inputs], tuple[float, str]]) -> Derivation:
        decl = dict(declaration)
        decl["inputs"] = tuple(Input(k, c, u) for k, (c, u) in decl.pop("inputs", {}).items())
        decl["params"] = tuple(decl.pop("params", ()))
        decl.setdefault("variant_names", ())
        decl.setdefault("needs_age", False)
        decl.setdefault("needs_sex", False)
        return Derivation(compute=fn, **decl)

    return wrap


# ---------------------------------------------------------------- renal
_CG_REF = ("Cockcroft DW, Gault MH. Prediction of creatinine clearance from serum creatinine. "
           "Nephron 1976;16(1):31-41.")


def _cg(age: int, weight: float, scr: float, female: bool) -> float:
    return (140 - age) * weight / (72 * scr) * (0.85 if female else 1.0)


def _cg_text(age: int, weight: float, weight_label: str, scr: float, female: bool) -> str:
    text = f"(140 − {age}) × {fmt(weight)} kg / (72 × {fmt(scr)} mg/dL)"
    return text + (" × 0.85" if female else "") + (f"  [{weight_label}]" if weight_label else "")


@derivation(
    key="cockcroft-gault", concept="creatinine clearance", title="Cockcroft-Gault (actual body weight)",
    method_names=("Cockcroft-Gault", "Cockcroft Gault", "CG", "Cockcroft-Gault formula"),
    inputs={"scr": ("serum creatinine", "mg/dL"), "weight": ("body weight", "kg")},
    needs_age=True, needs_sex=True, unit="mL/min",
    formula="CrCl = (140 − age) × weight / (72 × SCr) × (0.85 if female)",
    reference=_CG_REF,
    notes="Age in whole years at the evaluation date; actual body weight in kg; SCr in mg/dL "
          "(µmol/L is converted with creatinine's molar mass, 113.12 g/mol).",
)
def cockcroft_gault(v: Inputs) -> tuple[float, str]:
    female = v.sex == "female"
    return _cg(v.age, v.weight, v.scr, female), _cg_text(v.age, v.weight, "", v.scr, female)


def ideal_body_weight(height_cm: float, female: bool) -> float:
    """Devine: 50 kg (45.5 kg for women) + 2.3 kg per inch over 5 feet."""
    inches_over_5ft = height_cm / 2.54 - 60
    return (45.5 if female else 50.0) + 2.3 * inches_over_5ft


@derivation(
    key="cockcroft-gault-ideal", concept="creatinine clearance", title="Cockcroft-Gault (ideal body weight)",
    method_names=("Cockcroft-Gault", "Cockcroft Gault", "CG", "Cockcroft-Gault formula"),
    variant_names=("ideal body weight", "IBW"),
    inputs={"scr": ("serum creatinine", "mg/dL"), "height": ("body height", "cm")},
    needs_age=True, needs_sex=True, unit="mL/min",
    formula="CrCl = (140 − age) × IBW / (72 × SCr) × (0.85 if female); "
            "IBW = 50 kg (45.5 kg if female) + 2.3 kg × (height in inches − 60)",
    reference=_CG_REF + " Devine BJ. Drug Intell Clin Pharm 1974;8:650-5.",
)
def cockcroft_gault_ideal(v: Inputs) -> tuple[float, str]:
    female = v.sex == "female"
    ibw = ideal_body_weight(v.height, female)
    text = (f"IBW = {'45.5' if female else '50'} + 2.3 × ({fmt(v.height)} cm / 2.54 − 60) = {fmt(ibw)} kg; "
            + _cg_text(v.age, ibw, "ideal body weight", v.scr, female))
    return _cg(v.age, ibw, v.scr, female), text


@derivation(
    key="cockcroft-gault-adjusted", concept="creatinine clearance", title="Cockcroft-Gault (adjusted body weight)",
    method_names=("Cockcroft-Gault", "Cockcroft Gault", "CG", "Cockcroft-Gault formula"),
    variant_names=("adjusted body weight", "ABW", "AdjBW"),
    inputs={"scr": ("serum creatinine", "mg/dL"), "weight": ("body weight", "kg"), "height": ("body height", "cm")},
    needs_age=True, needs_sex=True, unit="mL/min",
    formula="CrCl = (140 − age) × AdjBW / (72 × SCr) × (0.85 if female); AdjBW = IBW + 0.4 × (weight − IBW)",
    reference=_CG_REF + " Winter MA et al. Pharmacotherapy 2012;32:604-12.",
)
def cockcroft_gault_adjusted(v: Inputs) -> tuple[float, str]:
    female = v.sex == "female"
    ibw = ideal_body_weight(v.height, female)
    adj = ibw + 0.4 * (v.weight - ibw)
    text = (f"IBW = {fmt(ibw)} kg; AdjBW = {fmt(ibw)} + 0.4 × ({fmt(v.weight)} − {fmt(ibw)}) = {fmt(adj)} kg; "
            + _cg_text(v.age, adj, "adjusted body weight", v.scr, female))
    return _cg(v.age, adj, v.scr, female), text


# ---------------------------------------------------------------- the catalogue
def _collect(namespace: dict) -> Mapping[str, Derivation]:
    found = {d.key: d for d in namespace.values() if isinstance(d, Derivation)}
    return types.MappingProxyType(dict(sorted(found.items())))


def _norm(text: str) -> str:
    return " ".join(text.lower().replace("-", " ").split())


@attrs.frozen
class Catalogue:
    """Read-only index of derivations by key and by concept."""

    by_key: Mapping[str, Derivation]

    def for_concept(self, concept: str) -> tuple[Derivation, ...]:
        return tuple(d for d in self.by_key.values() if _norm(d.concept) == _norm(concept))

    def resolve(self, concept: str, default_key: str | None, names: tuple[str, ...]) -> Derivation | str:
        """The derivation a protocol names, or a message saying why none fits.

        ``names`` are the parenthesised words: the first names the method family
        (or a variant of the default family), the rest select a variant.
        """
        candidates = self.for_concept(concept)
        if not candidates:
            return f"no derivation computes '{concept}'"
        wanted = [_norm(n) for n in names]
        if not wanted:
            chosen = self.by_key.get(default_key) if default_key else candidates[0]
            return chosen or candidates[0]
        best = []
        for d in candidates:
            family = {_norm(n) for n in d.method_names}
            variants = {_norm(n) for n in d.variant_names}
            rest = [w for w in wanted if w not in family]
            names_family = len(rest) < len(wanted)
            if not rest and not variants and names_family:
                best.append((0, d))
            elif rest and all(w in variants for w in rest) and (names_family or len(wanted) == len(rest)):
                best.append((0, d))
        if best:
            return best[0][1]
        known = sorted({n for d in candidates for n in d.method_names[:1]} |
                       {f"{d.method_names[0]}, {d.variant_names[0]}" for d in candidates if d.variant_names})
        return f"unknown method ({', '.join(names)}) for {concept}; known: " + "; ".join(f"({k})" for k in known)


CATALOGUE = Catalogue(_collect(dict(globals())))
