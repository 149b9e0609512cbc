"""The one pint unit registry of elig, and the spelling of units as clinicians write them.

pint belongs to loading, checking and explaining. The evaluator never calls
pint per patient value: it asks a ``UnitResolver`` (owned by a loaded protocol)
for the factor that turns a recorded unit into the concept's canonical unit,
and that factor is computed once per distinct unit string.

Beware of percent: in pint ``55 %`` is the dimensionless 0.55, so ``Q(55, "%") > 50``
is silently False. elig therefore never compares quantities with bare numbers;
the checker rejects a percentage compared with a number.
"""

from __future__ import annotations

import functools
import math
import re
from typing import Callable

import attrs
import pint

from elig.terminology.registry import Q_, UnitSyntaxError, ureg
from elig.terminology.ucum import is_ucum_like, parse_ucum


_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")

# Whole-token spellings pint does not know, mapped to pint expressions.
_ALIASES = {
    "y": "year", "yr": "year", "yrs": "year", "years": "year", "year": "year",
    "mo": "month", "mos": "month", "months": "month", "month": "month",
    "wk": "week", "wks": "week", "weeks": "week", "week": "week",
    "d": "day", "days": "day", "day": "day",
    "h": "hour", "hr": "hour", "hrs": "hour", "hours": "hour", "hour": "hour",
    "min": "minute", "mins": "minute", "minutes": "minute",
    "dl": "dL", "ml": "mL", "l": "L", "ul": "uL", "mmhg": "mmHg",
    "mmol": "mmol", "umol": "umol", "nmol": "nmol", "mcmol": "umol", "mcg": "ug",
    "kpa": "kPa", "iu": "IU", "u": "IU", "bpm": "beat/minute",
    "%": "percent", "pct": "percent",
    "breath": "breath", "breaths": "breath", "beats": "beat", "cells": "cell", "cell": "cell",
    "mm3": "mm**3", "mm^3": "mm**3", "mm³": "mm**3", "cmm": "mm**3",
    "m2": "m**2", "m^2": "m**2", "m²": "m**2",
    "ms": "millisecond", "msec": "millisecond", "sec": "second", "s": "second",
    "kg": "kg", "g": "g", "mg": "mg", "ng": "ng", "pg": "pg", "cm": "cm", "m": "m",
    "in": "inch", "lb": "pound", "lbs": "pound",
}


# Whole units that mean something else to pint: G/L is giga (10^9) per litre on European
# lab reports, not grams; K/µL is thousands per microlitre, not kelvin.
_WHOLE = {
    "G/L": "1e9 / L", "T/L": "1e12 / L", "K/uL": "1e3 / uL", "K/mm3": "1e3 / mm**3", "K/cumm": "1e3 / mm**3",
    "M/uL": "1e6 / uL", "gm/dL": "g / dL", "gm/dl": "g / dL", "gm/L": "g / L", "mEq/L": "mmol / L",
    "meq/L": "mmol / L",
}


def normalise_unit_text(text: str) -> str:
    """Turn a clinician's unit into a pint expression.

    ``x 10^9/L`` → ``1e9 / L``; ``× 10⁹/L`` → ``1e9 / L``; ``µmol/L`` → ``umol / L``;
    ``/mm^3`` → ``1 / mm**3``; ``mg/dl`` → ``mg / dL``; ``50%`` → ``percent``.
    """
    s = re.sub(r"(?i)^(years?|yrs?)\s+(?:old|of\s+age)$", r"\1", text.strip())  # 18 years old, of age
    s = s.translate(_SUPERSCRIPTS)
    s = s.replace("µ", "u").replace("μ", "u").replace("·", "*")
    s = re.sub(r"\s+", "", s)
    if not s:
        raise UnitSyntaxError("empty unit")
    # Per 1.73 m² of body surface area, as typed: /1.73m^2, /1,73m2, per1.73m2 (never 1.73 × m²).
    s = re.sub(r"(?i)(?:/|per)1[.,]73m(?:\^?2)?$", "/1.73m2", s)
    if s in _WHOLE:
        return _WHOLE[s]
    # A leading scale: x10^9, ×10^9, 10^9, 10*9 (UCUM), 10**9, 10E9.
    scale = ""
    m = re.match(r"^[x×*]?10(?:\^|\*\*|\*|e|E)?(-?\d+)(.*)$", s)
    if m and (m.group(2) == "" or m.group(2)[0] in "/*"):
        scale = f"1e{m.group(1)}"
        s = m.group(2)
    parts = re.split(r"([/*])", s)
    out: list[str] = [scale] if scale else []
    for part in parts:
        if part in ("/", "*"):
            if not out:
                out.append("1")
            out.append(f" {part} ")
            continue
        if part == "":
            continue
        out.append(_one_factor(part))
    expr = "".join(out).strip()
    return expr or "1"


# A count before a unit in a denominator is part of it: g/24h is grams per 24 hours, mg/100mL
# milligrams per 100 mL. pint would read "24h" as 24 × hour after the division (g/24 × h).
_COUNTED = re.compile(r"^(\d+(?:\.\d+)?)([A-Za-z][A-Za-z]*)$")


def _one_factor(token: str) -> str:
    counted = _COUNTED.match(token)
    if counted:
        return f"({counted.group(1)} * {_one_factor(counted.group(2))})"
    m = re.match(r"^([A-Za-z%\[\]{}_.]+?)(?:\^|\*\*)?(-?\d+)?$", token)
    base, power = (m.group(1), m.group(2)) if m else (token, None)
    key = base.lower() if base.lower() in _ALIASES else base
    unit = _ALIASES.get(key, _ALIASES.get(base, base))
    if unit == "mm**3" and power:
        power = None
    if power and "**" not in unit:
        return f"{unit}**{power}"
    return unit


# Bounds on the work one unit string may cause (docs/fhir.md, "Limits"): the longest unit a
# lab writes is about 25 characters (mL/min/{1.73_m2}); exponents are small (10^12, m2, s-1).
MAX_UNIT_CHARS = 64
MAX_EXPONENT = 24  # 10^24 (yotta) is the largest scale UCUM names; a dimension is never raised past 4
MAX_DIMENSION_POWER = 4
_EXPONENT = re.compile(r"(?:\^|\*\*|\*|[eE])\s*([+-]?\d+)", re.ASCII)
_CHAINED_POWER = re.compile(r"(?:\^|\*\*)\s*[+-]?\d+\s*(?:\^|\*\*)")
_SCALED_WORDS = ("percent", "permille", "ppm", "ppb")


def check_unit_bounds(text: str) -> None:
    """Refuse, before any parsing, a unit whose reading could cost more than a few microseconds:
    too long, an exponent beyond ±24, or a power of a power (``10^9^9``)."""
    if len(text) > MAX_UNIT_CHARS:
        raise UnitSyntaxError(f"cannot read unit {text[:20]!r}…: longer than {MAX_UNIT_CHARS} characters")
    if _CHAINED_POWER.search(text):
        raise UnitSyntaxError(f"cannot read unit {text!r}: a power of a power is not a unit")
    for m in _EXPONENT.finditer(text):
        if len(m.group(1).lstrip("+-")) > 2 or abs(int(m.group(1))) > MAX_EXPONENT:
            raise UnitSyntaxError(f"cannot read unit {text!r}: the exponent {m.group(1)} is beyond ±{MAX_EXPONENT}")


# The base dimensions of the units a clinic or laboratory reports. pint knows many more (lux,
# ampere, candela, bit...): "ng/mlx" would be nanograms per millilux, a typo read as a unit.
# The one unit with electric current in it that criteria use is the volt (ECG amplitudes in mV);
# [pH] read by pint is a pico-henry, and is refused with the rest.
_CLINICAL_DIMENSIONS = frozenset({"[mass]", "[length]", "[time]", "[substance]", "[temperature]",
                                  "[enzyme_activity]", "[body_surface_area_normalised]"})
_VOLT = ureg.parse_expression("V").dimensionality


def _check_quantity(text: str, q: pint.Quantity) -> pint.Quantity:
    """Refuse what parsed but is no unit a lab reports: a scale beyond 10^±30, a dimension
    raised past the 4th power, percent squared (``%%``), a dimension no clinical unit has
    (light, electric current: ``ng/mlx`` is a typo, not nanograms per millilux)."""
    magnitude = float(q.magnitude)
    if not (math.isfinite(magnitude) and 1e-30 <= abs(magnitude) <= 1e30):
        raise UnitSyntaxError(f"cannot read unit {text!r}: its scale is not one a laboratory uses")
    foreign = sorted(set(q.dimensionality) - _CLINICAL_DIMENSIONS)
    if foreign == ["[current]"] and q.dimensionality == _VOLT:
        foreign = []  # an ECG amplitude in mV or µV
    if foreign:
        names = ", ".join(d.strip("[]").replace("_", " ") for d in foreign)
        raise UnitSyntaxError(f"cannot read unit {text!r}: pint would read it as a unit of {names}, "
                              "which no clinical result has")
    for name, power in q.unit_items():
        if abs(power) > MAX_DIMENSION_POWER or (name in _SCALED_WORDS and power != 1):
            raise UnitSyntaxError(f"cannot read unit {text!r}: {name} to the power {power:g} is not a unit")
    return q


@functools.lru_cache(maxsize=2048)
def parse_unit(text: str) -> pint.Quantity:
    """Parse a clinician's unit to a pint quantity of magnitude 1 × scale.

    Raises ``UnitSyntaxError`` with a readable reason. Memoised: a unit string always
    means the same quantity, and a batch sees the same few dozen strings thousands of
    times (reading a UCUM string runs an Earley parser). Callers must not mutate the result.
    """
    if not isinstance(text, str):
        raise UnitSyntaxError(f"cannot read unit {str(type(text).__name__)}: a unit must be text")
    check_unit_bounds(text)
    return _check_quantity(text, _parse_unit(text))


def _parse_unit(text: str) -> pint.Quantity:
    expr = normalise_unit_text(text)
    if is_ucum_like(text) and re.sub(r"\s+", "", text).replace("µ", "u").replace("μ", "u") not in _WHOLE:
        # UCUM as FHIR sends it (10*3/uL, mm[Hg], {INR}, mL/min/{1.73_m2})
        try:
            return parse_ucum(text)
        except UnitSyntaxError:
            pass  # valid UCUM syntax with an atom elig does not read: try the clinician's spelling
    try:
        q = ureg.parse_expression(expr)
    except Exception as exc:  # pint raises several types; all mean "cannot read"
        try:
            return parse_ucum(text)  # non-UCUM spellings parse_ucum still reads (mL/min/1.73 m²)
        except UnitSyntaxError:
            raise UnitSyntaxError(f"cannot read unit {text!r}") from exc
    if not isinstance(q, pint.Quantity):
        q = Q_(float(q), "dimensionless")
    return q


# The units people write in eligibility criteria, for "did you mean" on a unit elig cannot read.
_COMMON_UNITS = (
    "mg/dL", "g/dL", "g/L", "mg/L", "ng/mL", "pg/mL", "ng/dL", "ng/L", "µg/L", "µg/dL", "µmol/L", "mmol/L",
    "nmol/L", "pmol/L", "mmol/mol", "U/L", "IU/L", "mIU/L", "mIU/mL", "U/mL", "IU/mL", "10^9/L", "10^12/L",
    "/mm3", "/µL", "cells/µL", "cells/mm3", "mL/min", "mL/min/1.73 m²", "mmHg", "kPa", "%", "s", "ms", "bpm",
    "breaths/min", "kg", "g", "cm", "kg/m²", "m²", "L", "mL", "g/d", "g/24h", "mg/24h", "mg/g", "mg/mmol",
    "mg/mg", "copies/mL", "days", "weeks", "months", "years", "Cel",
)


def suggest_unit(text: str) -> str | None:
    """The common unit closest to an unreadable one (``ng/mlx`` → ``ng/mL``), or None."""
    import difflib

    typed = re.sub(r"\s+", "", str(text)).replace("µ", "u").replace("μ", "u").lower()
    keys = {re.sub(r"\s+", "", u).replace("µ", "u").lower(): u for u in _COMMON_UNITS}
    match = difflib.get_close_matches(typed, list(keys), n=1, cutoff=0.7)
    return keys[match[0]] if match and keys[match[0]] != text else None


def quantity(number: float, unit_text: str | None) -> pint.Quantity:
    if unit_text is None:
        return Q_(number, "dimensionless")
    return number * parse_unit(unit_text)


def describe_dimension(q: pint.Quantity) -> str:
    """Name a dimension the way a clinician would, for messages."""
    d = q.dimensionality
    names = {
        ureg.parse_expression("mg/dL").dimensionality: "mass concentration (e.g. mg/dL)",
        ureg.parse_expression("umol/L").dimensionality: "molar concentration (e.g. µmol/L)",
        ureg.parse_expression("mL/min").dimensionality: "volume flow (e.g. mL/min)",
        ureg.parse_expression("1/L").dimensionality: "count per volume (e.g. 10^9/L)",
        ureg.parse_expression("mmHg").dimensionality: "pressure (e.g. mmHg)",
        ureg.parse_expression("kg").dimensionality: "mass (e.g. kg)",
        ureg.parse_expression("day").dimensionality: "time (e.g. days)",
        ureg.parse_expression("1/min").dimensionality: "rate per time (e.g. /min)",
        ureg.parse_expression("cm").dimensionality: "length (e.g. cm)",
        ureg.parse_expression("m**2").dimensionality: "area (e.g. m²)",
        ureg.parse_expression("IU/L").dimensionality: "enzyme activity per volume (e.g. U/L)",
        ureg.parse_expression("mL/min/bsa_1_73").dimensionality:
            "flow per 1.73 m² of body surface area (e.g. mL/min/1.73 m², an eGFR)",
    }
    if not d:
        return "dimensionless (a ratio, score, count or percentage)"
    return names.get(d, str(d))


# Molar mass lets mass and molar concentrations meet (creatinine mg/dL ↔ µmol/L).
_MOLAR = ureg.parse_expression("mol/L").dimensionality
_MASS_CONC = ureg.parse_expression("g/L").dimensionality


def conversion_factor(from_unit: str, to_unit: str, molar_mass_g_per_mol: float | None = None) -> float:
    """The factor f with value_in_to = value_in_from × f.

    Raises ``UnitSyntaxError`` for unreadable units and ``pint.DimensionalityError``
    when the dimensions differ and no molar mass bridges them.
    """
    src = parse_unit(from_unit)
    dst = parse_unit(to_unit)
    return conversion_factor_q(src, dst, molar_mass_g_per_mol)


def conversion_factor_q(src: pint.Quantity, dst: pint.Quantity,
                        molar_mass_g_per_mol: float | None = None) -> float:
    if src.dimensionality == dst.dimensionality:
        return float((src / dst).to("dimensionless").magnitude)
    if molar_mass_g_per_mol:
        mm = Q_(molar_mass_g_per_mol, "g/mol")
        if src.dimensionality == _MOLAR and dst.dimensionality == _MASS_CONC:
            return float((src * mm / dst).to("dimensionless").magnitude)
        if src.dimensionality == _MASS_CONC and dst.dimensionality == _MOLAR:
            return float((src / mm / dst).to("dimensionless").magnitude)
    raise pint.DimensionalityError(src.units, dst.units, src.dimensionality, dst.dimensionality)


@attrs.define
class UnitResolver:
    """Caches the factor from a recorded unit string to a canonical unit.

    Owned by a loaded protocol (never module-global), so evaluating many
    patients parses each distinct unit string once and then multiplies floats.
    A failed lookup is cached too, as the reason string.
    """

    _cache: dict = attrs.field(factory=dict)
    _parse: Callable[[str], pint.Quantity] = parse_unit

    _keys: dict = attrs.field(factory=dict)

    def unit_key(self, unit: str) -> str:
        """A spelling-independent key: 'mg/dl' and 'mg/dL' share one, so no conversion is shown."""
        key = self._keys.get(unit)
        if key is None:
            try:
                key = normalise_unit_text(unit)
            except UnitSyntaxError:
                key = unit
            self._keys[unit] = key
        return key

    def factor(self, from_unit: str, to_unit: str, molar_mass: float | None = None) -> float | str:
        """The factor, or a reason string when the unit cannot be converted."""
        key = (from_unit, to_unit, molar_mass)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        try:
            result: float | str = conversion_factor_q(self._parse(from_unit), self._parse(to_unit), molar_mass)
        except UnitSyntaxError:
            result = f"unreadable unit {from_unit!r}"
        except pint.DimensionalityError:
            result = f"unit {from_unit!r} cannot be converted to {to_unit}"
        self._cache[key] = result
        return result


def format_number(x: float, digits: int = 3) -> str:
    """Format a number for people: up to ``digits`` significant decimals, no noise.

    Integers print without decimals; from 1000 one decimal, from 100 one, from 1 two, below 1
    ``digits`` significant ones; trailing zeros are dropped (``1.50`` is ``1.5``)."""
    if x == 0:
        return "0"
    ax = abs(x)
    if ax < 1000:  # most values (never NaN or an infinity, for which this is false)
        if ax % 1 == 0:
            return f"{x:.0f}"
        if ax >= 1:
            return (f"{x:.1f}" if ax >= 100 else f"{x:.2f}").rstrip("0").rstrip(".")
        s = f"{x:.{digits}g}"
        return s if "e" in s else s.rstrip("0").rstrip(".")
    if not math.isfinite(x) or ax >= 1e15:
        return f"{x:.6g}"
    return f"{x:.{0 if float(x).is_integer() else 1}f}"


def format_beside(x: float, limit: float, rel_tol: float = 1e-9) -> str:
    """``x`` formatted to be read beside ``limit``: with as many digits as it takes for the
    printed number to lie on the same side of the limit as ``x`` does.

    A creatinine clearance of 59.998 mL/min fails ≥ 60 mL/min; ``format_number`` would print
    60, and "60 does not meet ≥ 60" reads false. This prints 59.998. A value equal to the
    limit (within ``rel_tol``, the evaluator's tolerance) prints as ``format_number`` does.
    """
    text = format_number(x)
    if not (math.isfinite(x) and math.isfinite(limit)) or math.isclose(x, limit, rel_tol=rel_tol, abs_tol=1e-12):
        return text
    digits = 4
    while digits <= 17:
        shown = float(text)
        if shown != limit and (shown > limit) == (x > limit):
            return text
        text = f"{x:.{digits}g}"
        if "e" in text:
            text = f"{x:.{max(0, digits - 1 - int(math.floor(math.log10(abs(x)))))}f}"
        digits += 1
    return repr(x)


def format_converted(x: float) -> str:
    """A converted or computed value: three significant figures (97.2 µmol/L = 1.10 mg/dL)."""
    if x == 0:
        return "0"
    ax = abs(x)
    if ax >= 100:
        return f"{x:.1f}".rstrip("0").rstrip(".") if not float(x).is_integer() else f"{x:.0f}"
    digits = 2 - int(__import__("math").floor(__import__("math").log10(ax)))
    return f"{x:.{max(digits, 0)}f}"


def format_input(x: float) -> str:
    """A formula input as used: five significant figures, so the printed formula recomputes to
    the printed result (1.0995 mg/dL, not a rounded 1.10 that would give another clearance)."""
    if float(x).is_integer() and abs(x) < 1e15:
        return f"{x:.0f}"
    text = f"{x:.5g}"
    if "e" in text:
        text = f"{x:.5f}".rstrip("0").rstrip(".")
    return text


def unit_problem(text: str, cache: dict | None = None) -> str | None:
    """Why a recorded unit cannot be read, or None when it can (readers flag it on the record)."""
    if cache is not None and text in cache:
        return cache[text]
    try:
        parse_unit(text)
        reason = None
    except UnitSyntaxError as exc:
        reason = f"unreadable unit {text[:MAX_UNIT_CHARS]!r}" + (f" ({exc})" if "cannot read unit" not in str(exc)
                                                                 else _why(str(exc)))
    if cache is not None:
        cache[text] = reason
    return reason


def _why(message: str) -> str:
    """The reason part of 'cannot read unit 'x': reason', in brackets, or nothing."""
    _, sep, reason = message.partition("': ")
    return f" ({reason})" if sep and reason else ""


NO_UNIT = ("", "1", "dimensionless")


def with_unit(text: str, unit: str | None) -> str:
    """A formatted number and its unit as people write them: '60%', '2' (no stray '1'), '1.2 mg/dL'."""
    unit = (unit or "").strip()
    if unit in NO_UNIT:
        return text
    if unit == "%":
        return f"{text}%"
    return f"{text} {unit}"
