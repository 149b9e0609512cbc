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

from elig.terminology.units import format_converted as fmt, format_input as exact, format_number as num


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
    # Accepted range (inclusive, in ``unit``) for a protocol's override; None: unbounded.
    low: float | None = None
    high: float | None = None


@attrs.frozen(slots=False)
class Inputs:
    """What a derivation function receives: floats in the declared units, each also an attribute
    (``v.weight``)."""

    values: Mapping[str, float]
    age: int | None = None
    sex: str | None = None

    def __attrs_post_init__(self) -> None:
        # Each value stored as an attribute of its own: ``v.weight`` is then a plain look-up, where
        # ``__getattr__`` would first fail the normal look-up and raise (and drop) an AttributeError.
        own = self.__dict__
        for key, value in self.values.items():
            own.setdefault(key, value)  # never in place of a field (values, age, sex)

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
    text = f"(140 − {age}) × {exact(weight)} kg / (72 × {exact(scr)} mg/dL)"
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


_DEVINE_REF = "Devine BJ. Gentamicin therapy. Drug Intell Clin Pharm 1974;8:650-5."


@derivation(
    key="devine", concept="ideal body weight", title="Ideal body weight (Devine)",
    method_names=("Devine", "Devine formula"),
    inputs={"height": ("body height", "cm")},
    needs_sex=True, unit="kg",
    formula="IBW = 50 kg (45.5 kg if female) + 2.3 kg × (height in inches − 60)",
    reference=_DEVINE_REF,
    notes="Height in cm is converted to inches (÷ 2.54). Defined for adults; below 5 feet the formula "
          "still subtracts, as published.",
)
def devine(v: Inputs) -> tuple[float, str]:
    female = v.sex == "female"
    ibw = ideal_body_weight(v.height, female)
    return ibw, f"{'45.5' if female else '50'} + 2.3 × ({fmt(v.height)} cm / 2.54 − 60)"


@derivation(
    key="adjusted-body-weight", concept="adjusted body weight", title="Adjusted body weight (IBW + 0.4 × excess)",
    method_names=("adjusted", "IBW + 0.4", "Devine adjusted"),
    inputs={"weight": ("body weight", "kg"), "height": ("body height", "cm")},
    needs_sex=True, unit="kg",
    formula="AdjBW = IBW + 0.4 × (actual weight − IBW); IBW by Devine",
    reference=_DEVINE_REF + " Winter MA et al. Pharmacotherapy 2012;32:604-12.",
    notes="The 0.4 correction factor is the one used for creatinine clearance dosing.",
)
def adjusted_body_weight(v: Inputs) -> tuple[float, str]:
    female = v.sex == "female"
    ibw = ideal_body_weight(v.height, female)
    adj = ibw + 0.4 * (v.weight - ibw)
    return adj, f"IBW = {fmt(ibw)} kg; {fmt(ibw)} + 0.4 × ({fmt(v.weight)} − {fmt(ibw)})"


def _fraction(x: float) -> str:
    """A fraction such as FiO2 with at least two decimals: 0.40, 0.21, 0.355."""
    text = num(x)
    if 0 < abs(x) < 1 and len(text.split(".")[-1]) < 2:
        return f"{x:.2f}"
    return text


# ---------------------------------------------------------------- renal: eGFR
@derivation(
    key="ckd-epi-2021", concept="CKD-EPI eGFR", title="CKD-EPI 2021 creatinine equation (race-free)",
    # "CKD-EPI-2021" matches "CKD-EPI 2021" too (names match ignoring hyphens) and needs no backticks.
    method_names=("CKD-EPI-2021", "CKD-EPI", "CKD-EPI creatinine 2021", "2021 CKD-EPI", "CKD-EPI 2021 creatinine"),
    inputs={"scr": ("serum creatinine", "mg/dL")},
    needs_age=True, needs_sex=True, unit="mL/min/{1.73_m2}",
    formula="eGFR = 142 × min(SCr/κ, 1)^α × max(SCr/κ, 1)^−1.200 × 0.9938^age × 1.012 (if female); "
            "κ = 0.7 (female) or 0.9 (male); α = −0.241 (female) or −0.302 (male)",
    reference=("Inker LA, Eneanya ND, Coresh J, et al. New creatinine- and cystatin C-based equations to "
               "estimate GFR without race. N Engl J Med 2021;385(19):1737-49."),
    notes="Result in mL/min per 1.73 m² of body surface area (UCUM mL/min/{1.73_m2}, its own dimension): "
          "never comparable with a creatinine clearance in mL/min. SCr in mg/dL, standardised (IDMS-traceable) "
          "assay; µmol/L is converted with creatinine's molar mass, 113.12 g/mol. Validated for adults (≥ 18 years). "
          "No race coefficient.",
)
def ckd_epi_2021(v: Inputs) -> tuple[float, str]:
    female = v.sex == "female"
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = v.scr / kappa
    value = (142 * min(ratio, 1.0) ** alpha * max(ratio, 1.0) ** -1.200 * 0.9938 ** v.age
             * (1.012 if female else 1.0))
    scr = f"{fmt(v.scr)} mg/dL"
    text = (f"142 × min({scr} / {num(kappa)}, 1)^{num(alpha)} × max({scr} / {num(kappa)}, 1)^−1.200"
            f" × 0.9938^{v.age}" + (" × 1.012" if female else ""))
    return value, text.replace("^-", "^−")


# ---------------------------------------------------------------- respiratory
@derivation(
    key="pf-ratio", concept="PaO2/FiO2 ratio", title="PaO2/FiO2 ratio",
    # Names with '/' must be written in backticks in a protocol, so the first name is one that needs none.
    method_names=("PF ratio", "PaO2/FiO2", "P/F", "P/F ratio", "Horovitz index", "Horowitz index",
                  "oxygenation index"),
    inputs={"pao2": ("PaO2", "mmHg"), "fio2": ("FiO2", "1")},
    unit="mmHg", paired=True,
    formula="P/F = PaO2 / FiO2  (PaO2 in mmHg, FiO2 as a fraction: 40 % = 0.40)",
    reference=("Horovitz JH, Carrico CJ, Shires GT. Pulmonary response to major injury. Arch Surg "
               "1974;108(3):349-55. ARDS Definition Task Force. Acute respiratory distress syndrome: the "
               "Berlin Definition. JAMA 2012;307(23):2526-33."),
    notes="PaO2 and FiO2 must come from the same moment: FiO2 is paired with the PaO2 (within 1 hour, or the "
          "same day when no times are recorded). FiO2 recorded in % is converted to a fraction. "
          "'Oxygenation index' is accepted because protocols (notably translated ones) use it for PaO2/FiO2; "
          "the paediatric oxygenation index (FiO2 × mean airway pressure × 100 / PaO2) is a different quantity.",
)
def pf_ratio(v: Inputs) -> tuple[float, str]:
    return v.pao2 / v.fio2, f"{num(v.pao2)} mmHg / {_fraction(v.fio2)}"


@derivation(
    key="alveolar-gas-equation", concept="alveolar-arterial oxygen gradient",
    title="A-a gradient by the alveolar gas equation",
    method_names=("alveolar gas equation", "alveolar air equation", "A-a gradient", "alveolar-arterial gradient"),
    inputs={"pao2": ("PaO2", "mmHg"), "fio2": ("FiO2", "1"), "paco2": ("PaCO2", "mmHg")},
    params=(
        Param("patm", ("Patm", "barometric pressure", "atmospheric pressure", "PB"), 760.0, "mmHg",
              "barometric pressure (760 mmHg at sea level; lower at altitude)", low=200.0, high=1000.0),
        Param("ph2o", ("PH2O", "water vapour pressure", "water vapor pressure"), 47.0, "mmHg",
              "saturated water vapour pressure at 37 °C", low=0.0, high=100.0),
        Param("rq", ("RQ", "respiratory quotient", "R"), 0.8, "1", "respiratory quotient", low=0.5, high=1.5),
    ),
    unit="mmHg", paired=True,
    formula="P(A-a)O2 = PAO2 − PaO2; PAO2 = FiO2 × (Patm − PH2O) − PaCO2 / RQ",
    reference=("Fenn WO, Rahn H, Otis AB. A theoretical study of the composition of the alveolar air at "
               "altitude. Am J Physiol 1946;146(5):637-53. Curran-Everett D. A classic learning opportunity "
               "from Fenn, Rahn, and Otis (1946): the alveolar gas equation. Adv Physiol Educ 2006;30(2):58-62."),
    notes="The simplified alveolar gas equation (without the small FiO2 × PaCO2 × (1 − RQ) / RQ term). "
          "PaO2, FiO2 and PaCO2 come from the same blood gas: FiO2 and PaCO2 are paired with the PaO2 "
          "(within 1 hour, or the same day when no times are recorded). Patm, PH2O and RQ may be overridden, "
          "e.g. (alveolar gas equation, Patm: 700 mmHg).",
)
def alveolar_gas_equation(v: Inputs) -> tuple[float, str]:
    alveolar = v.fio2 * (v.patm - v.ph2o) - v.paco2 / v.rq
    text = (f"PAO2 = {_fraction(v.fio2)} × ({num(v.patm)} − {num(v.ph2o)}) − {num(v.paco2)} / {num(v.rq)} "
            f"= {num(alveolar)} mmHg; PAO2 − PaO2 = {num(alveolar)} − {num(v.pao2)}")
    return alveolar - v.pao2, text


# ---------------------------------------------------------------- body size
@derivation(
    key="bmi", concept="body mass index", title="Body mass index (Quetelet)",
    method_names=("BMI", "Quetelet", "Quetelet index", "body mass index"),
    inputs={"weight": ("body weight", "kg"), "height": ("body height", "cm")},
    unit="kg/m^2",
    formula="BMI = weight (kg) / height (m)²",
    reference=("Keys A, Fidanza F, Karvonen MJ, Kimura N, Taylor HL. Indices of relative weight and obesity. "
               "J Chronic Dis 1972;25(6):329-43. WHO. Obesity: preventing and managing the global epidemic. "
               "WHO Technical Report Series 894, 2000."),
    notes="Height recorded in cm is divided by 100. Weight and height are taken independently (the newest "
          "of each in the window).",
)
def bmi(v: Inputs) -> tuple[float, str]:
    metres = v.height / 100
    return v.weight / metres ** 2, f"{num(v.weight)} kg / ({num(v.height)} cm / 100)²"


@derivation(
    key="mosteller", concept="body surface area", title="Body surface area (Mosteller)",
    method_names=("Mosteller", "Mosteller formula"),
    inputs={"weight": ("body weight", "kg"), "height": ("body height", "cm")},
    unit="m^2",
    formula="BSA = √(height (cm) × weight (kg) / 3600)",
    reference="Mosteller RD. Simplified calculation of body-surface area. N Engl J Med 1987;317(17):1098.",
    notes="The default method for body surface area.",
)
def mosteller(v: Inputs) -> tuple[float, str]:
    return math.sqrt(v.height * v.weight / 3600), f"√({num(v.height)} cm × {num(v.weight)} kg / 3600)"


@derivation(
    key="dubois", concept="body surface area", title="Body surface area (DuBois and DuBois)",
    method_names=("DuBois", "Du Bois", "DuBois and DuBois", "Du Bois and Du Bois", "DuBois formula"),
    inputs={"weight": ("body weight", "kg"), "height": ("body height", "cm")},
    unit="m^2",
    formula="BSA = 0.007184 × weight (kg)^0.425 × height (cm)^0.725",
    reference=("Du Bois D, Du Bois EF. A formula to estimate the approximate surface area if height and "
               "weight be known. Arch Intern Med 1916;17(6):863-71."),
)
def dubois(v: Inputs) -> tuple[float, str]:
    value = 0.007184 * v.weight ** 0.425 * v.height ** 0.725
    return value, f"0.007184 × {num(v.weight)} kg^0.425 × {num(v.height)} cm^0.725"


# ---------------------------------------------------------------- cardiac: corrected QT
_BAZETT_REF = ("Bazett HC. An analysis of the time-relations of electrocardiograms. Heart 1920;7:353-70.")
_FRIDERICIA_REF = ("Fridericia LS. Die Systolendauer im Elektrokardiogramm bei normalen Menschen und bei "
                   "Herzkranken. Acta Med Scand 1920;53:469-86.")
_QTC_NOTES = ("QT and RR come from the same ECG: the RR interval is paired with the QT interval (within 1 hour, "
              "or the same day when no times are recorded).")
_QTC_HR_NOTES = ("For records with a heart rate but no RR interval: RR = 60 / heart rate (s). The heart rate is "
                 "paired with the QT interval (within 1 hour, or the same day); use the ECG's ventricular rate.")


def _rr_from_hr(hr: float) -> float:
    return 60.0 / hr


@derivation(
    key="bazett", concept="corrected QT interval", title="QTc (Bazett)",
    method_names=("Bazett", "Bazett formula", "QTcB"),
    inputs={"qt": ("QT interval", "ms"), "rr": ("RR interval", "ms")},
    unit="ms", paired=True,
    formula="QTc = QT / √(RR in s)",
    reference=_BAZETT_REF, notes=_QTC_NOTES,
)
def bazett(v: Inputs) -> tuple[float, str]:
    rr_s = v.rr / 1000
    return v.qt / math.sqrt(rr_s), f"{num(v.qt)} ms / √({num(v.rr)} ms / 1000)"


@derivation(
    key="fridericia", concept="corrected QT interval", title="QTc (Fridericia)",
    method_names=("Fridericia", "Fridericia formula", "QTcF"),
    inputs={"qt": ("QT interval", "ms"), "rr": ("RR interval", "ms")},
    unit="ms", paired=True,
    formula="QTc = QT / ∛(RR in s)",
    reference=_FRIDERICIA_REF, notes=_QTC_NOTES,
)
def fridericia(v: Inputs) -> tuple[float, str]:
    rr_s = v.rr / 1000
    return v.qt / rr_s ** (1 / 3), f"{num(v.qt)} ms / ∛({num(v.rr)} ms / 1000)"


@derivation(
    key="bazett-hr", concept="corrected QT interval", title="QTc (Bazett, RR from heart rate)",
    method_names=("Bazett", "Bazett formula", "QTcB"),
    variant_names=("heart rate", "HR"),
    inputs={"qt": ("QT interval", "ms"), "hr": ("heart rate", "/min")},
    unit="ms", paired=True,
    formula="QTc = QT / √(RR in s); RR = 60 / heart rate",
    reference=_BAZETT_REF, notes=_QTC_HR_NOTES,
)
def bazett_hr(v: Inputs) -> tuple[float, str]:
    rr_s = _rr_from_hr(v.hr)
    return v.qt / math.sqrt(rr_s), f"RR = 60 / {num(v.hr)} = {num(rr_s)} s; {num(v.qt)} ms / √{num(rr_s)}"


@derivation(
    key="fridericia-hr", concept="corrected QT interval", title="QTc (Fridericia, RR from heart rate)",
    method_names=("Fridericia", "Fridericia formula", "QTcF"),
    variant_names=("heart rate", "HR"),
    inputs={"qt": ("QT interval", "ms"), "hr": ("heart rate", "/min")},
    unit="ms", paired=True,
    formula="QTc = QT / ∛(RR in s); RR = 60 / heart rate",
    reference=_FRIDERICIA_REF, notes=_QTC_HR_NOTES,
)
def fridericia_hr(v: Inputs) -> tuple[float, str]:
    rr_s = _rr_from_hr(v.hr)
    return v.qt / rr_s ** (1 / 3), f"RR = 60 / {num(v.hr)} = {num(rr_s)} s; {num(v.qt)} ms / ∛{num(rr_s)}"


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

    def is_method_name(self, name: str) -> bool:
        """Whether some derivation is called this (a method family or a variant)."""
        wanted = _norm(name)
        return any(wanted in {_norm(n) for n in (*d.method_names, *d.variant_names)} for d in self.by_key.values())

    def resolve(self, concept: str, default_key: str | None, names: tuple[str, ...],
                keys: tuple[str, ...] = ()) -> Derivation | str:
        """The derivation a protocol names, or a message saying why none fits.

        ``names`` are the parenthesised words: the first names the method family
        (or a variant of the default family), the rest select a variant. The candidates
        are the derivations of the concept and those its vocabulary entry declares
        (``keys``), so a concept such as QTcF can reuse Fridericia.
        """
        declared = tuple(self.by_key[k] for k in keys if k in self.by_key)
        candidates = declared + tuple(d for d in self.for_concept(concept) if d not in declared)
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
