"""UCUM unit codes, as FHIR systems send them, read into elig's one pint registry.

FHIR ``Quantity.code`` carries UCUM (https://ucum.org): ``10*9/L``, ``mm[Hg]``,
``{INR}``, ``mL/min/{1.73_m2}``, ``[lb_av]``, ``Cel``. pint does not read these:
square brackets are stripped (``[pH]`` would become pico-henry), ``10*9`` is not
a number, ``Cel`` and ``mo`` are unknown. ``ucumvert`` supplies a UCUM grammar
(lark); this module walks its parse tree and builds the quantity directly in
``elig.terminology.units.ureg`` (ucumvert's own transformer builds in pint's *application*
registry, and quantities of two registries cannot meet).

Decisions, all deliberate:

* **Atoms come from a whitelist.** Every UCUM atom elig reads is listed in
  ``_ATOMS`` with the pint expression it means; an atom that is valid UCUM but
  not listed (``[HPF]``, ``[arb'U]``, ``B[SPL]``...) raises ``UnitSyntaxError``
  rather than being handed to pint, whose spelling of the same letters may mean
  something else (pint reads ``[pH]`` as a pico-henry).
* **Annotations are dimensionless** (``{INR}``, ``{cells}``, ``{score}``,
  ``{RBC}`` mean "1"), as UCUM says, **except** the body-surface-area
  normalisation ``{1.73_m2}``: ``mL/min/{1.73_m2}`` (eGFR) is a different
  quantity from ``mL/min`` (measured creatinine clearance), and converting one
  into the other must fail. It is read as the unit ``bsa_1_73`` of its own base
  dimension ``[body_surface_area_normalised]``, so ``mL/min/{1.73_m2}`` converts
  to ``L/h/{1.73_m2}`` but not to ``mL/min`` (``pint.DimensionalityError``).
  Spellings that are not UCUM but mean the same (``/1.73m2``, ``/1.73 m²``,
  ``/{1.73m2}``) are read the same way.
* **``U`` (enzyme unit) is read as ``international_unit``**, as
  ``elig.terminology.units.parse_unit`` reads ``U/L``: laboratories report ALT and AST in
  ``U/L`` and ``IU/L`` interchangeably (the IUB international unit of enzyme
  activity *is* 1 µmol/min), and elig's vocabulary declares ``U/L``. Reading UCUM
  ``U`` as µmol/min would make the two spellings of one result incomparable.
* ``a``/``mo``/``wk``/``d`` are pint's Julian year (365.25 d), mean month
  (year/12), week and day, as UCUM defines ``a_j``/``mo_j``.
* ``eq`` and ``osm`` are moles, as UCUM defines them (``meq/L`` of sodium is mmol/L).
* ``u`` (unified atomic mass unit) is deliberately not read: no laboratory sends
  daltons per litre, and a clinician's ``u/l`` means units per litre.

Parsing a code costs about a millisecond; results are cached per string (the
cache holds immutable answers only, so it is not state that changes results).
"""

from __future__ import annotations

import functools
import re

import pint

from elig.terminology.registry import UnitSyntaxError, ureg

__all__ = ["parse_ucum", "is_ucum_like", "BSA_UNIT", "BSA_DIMENSION", "UnitSyntaxError"]

# The body-surface-area normalisation of eGFR ({1.73_m2}): a unit of its own
# dimension, defined with the others in elig.terminology.registry.
BSA_UNIT = "bsa_1_73"
BSA_DIMENSION = "[body_surface_area_normalised]"

# UCUM atom -> pint expression in elig's registry. Metric atoms may take a prefix.
_ATOMS: dict[str, str] = {
    # SI base and derived (metric)
    "m": "meter", "s": "second", "g": "gram", "mol": "mole", "K": "kelvin", "A": "ampere", "cd": "candela",
    "rad": "radian", "sr": "steradian", "Hz": "hertz", "N": "newton", "Pa": "pascal", "J": "joule", "W": "watt",
    "C": "coulomb", "V": "volt", "F": "farad", "Ohm": "ohm", "S": "siemens", "Wb": "weber", "T": "tesla",
    "H": "henry", "lm": "lumen", "lx": "lux", "Bq": "becquerel", "Gy": "gray", "Sv": "sievert",
    "kat": "katal", "Ci": "curie", "eV": "electron_volt",
    "l": "liter", "L": "liter", "ar": "are", "t": "metric_ton", "bar": "bar",
    "Cel": "degree_Celsius",
    "eq": "mole", "osm": "mole",
    "U": "international_unit", "[IU]": "international_unit", "[iU]": "international_unit",
    "m[Hg]": "(1000 * millimeter_Hg)", "m[H2O]": "(100 * centimeter_H2O)",
    # time (non-metric, except s)
    "min": "minute", "h": "hour", "d": "day", "wk": "week",
    "mo": "month", "mo_j": "month", "mo_g": "(30.436875 * day)", "mo_s": "(29.53059 * day)",
    "a": "year", "a_j": "year", "a_g": "(365.2425 * day)", "a_t": "(365.24219 * day)",
    # dimensionless
    "10*": "10", "10^": "10", "%": "percent", "[ppth]": "permille", "[ppm]": "ppm", "[ppb]": "ppb",
    "[pptr]": "(1e-12)", "deg": "degree",
    # customary
    "[in_i]": "inch", "[ft_i]": "foot", "[yd_i]": "yard", "[mi_i]": "mile",
    "[lb_av]": "pound", "[oz_av]": "ounce", "[stone_av]": "stone", "[gr]": "grain",
    "[degF]": "degree_Fahrenheit", "[in_i'Hg]": "inch_Hg", "[in_i'H2O]": "inch_H2O_39F",
}
# Prefixed atoms pint knows under one name (nicer to display than 0.001 * ...).
_PREFIXED: dict[str, str] = {
    "mm[Hg]": "millimeter_Hg", "cm[H2O]": "centimeter_H2O", "mm[H2O]": "(0.1 * centimeter_H2O)",
}
_PREFIXES: dict[str, str] = {
    "Y": "yotta", "Z": "zetta", "E": "exa", "P": "peta", "T": "tera", "G": "giga", "M": "mega",
    "k": "kilo", "h": "hecto", "da": "deca", "d": "deci", "c": "centi", "m": "milli", "u": "micro",
    "n": "nano", "p": "pico", "f": "femto", "a": "atto", "z": "zepto", "y": "yocto",
    "Ki": "kibi", "Mi": "mebi", "Gi": "gibi", "Ti": "tebi",
}
_PREFIX_FACTORS: dict[str, str] = {
    "Y": "1e24", "Z": "1e21", "E": "1e18", "P": "1e15", "T": "1e12", "G": "1e9", "M": "1e6", "k": "1e3",
    "h": "1e2", "da": "1e1", "d": "1e-1", "c": "1e-2", "m": "1e-3", "u": "1e-6", "n": "1e-9", "p": "1e-12",
    "f": "1e-15", "a": "1e-18", "z": "1e-21", "y": "1e-24",
    "Ki": "1024", "Mi": "1048576", "Gi": "1073741824", "Ti": "1099511627776",
}

# {1.73_m2} and the ways people write it outside UCUM: /1.73m2, /1.73 m², /1.73_m^2, {1.73m2}.
_BSA_ANNOTATION = re.compile(r"^\{\s*1[.,]73\s*_?\s*m(?:\^?2|²)\s*\}$", re.IGNORECASE)
_BSA_LOOSE = re.compile(r"\{?\s*1[.,]73\s*_?\s*m(?:\^?2|²)\s*\}?", re.IGNORECASE)


class _Unsupported(Exception):
    """Raised inside the tree walk; turned into UnitSyntaxError with the whole code."""


def _normalise(text: str) -> str:
    s = text.strip().replace("µ", "u").replace("μ", "u")
    if "1.73" in s or "1,73" in s:
        s = _BSA_LOOSE.sub("{1.73_m2}", s)
        s = s.replace(" ", "")
    return s


@functools.cache
def _parser():
    # Imported late: the grammar costs ~0.1 s to build and most runs never need it.
    from ucumvert import get_ucum_parser

    return get_ucum_parser()


@functools.cache
def _expr(expression: str) -> pint.Quantity:
    q = ureg.parse_expression(expression)
    if not isinstance(q, pint.Quantity):
        q = ureg.Quantity(q, "dimensionless")
    return q


def _atom(atom: str) -> pint.Quantity:
    expression = _ATOMS.get(atom)
    if expression is None:
        raise _Unsupported(f"the UCUM unit {atom!r} is not one elig reads")
    return _expr(expression)


def _prefixed(prefix: str, atom: str) -> pint.Quantity:
    whole = _PREFIXED.get(prefix + atom)
    if whole is not None:
        return _expr(whole)
    expression = _ATOMS.get(atom)
    if expression is None:
        raise _Unsupported(f"the UCUM unit {atom!r} (in {prefix + atom!r}) is not one elig reads")
    if atom == "Cel":
        raise _Unsupported(f"a prefixed temperature ({prefix + atom!r}) has no meaning")
    if expression.isidentifier() and prefix in _PREFIXES:
        try:
            return _expr(_PREFIXES[prefix] + expression)  # "micro" + "liter" -> microliter
        except pint.errors.UndefinedUnitError:
            pass
    return _expr(f"{_PREFIX_FACTORS[prefix]} * ({expression})")


@functools.cache
def _transformer():
    """A stateless tree walker, built once on first use."""
    from lark import Transformer

    one = ureg.Quantity(1, "dimensionless")
    bsa = ureg.Quantity(1, BSA_UNIT)

    class ToElig(Transformer):
        """Walks ucumvert's parse tree (rules main_term, term, component, annotatable, simple_unit)."""

        def ANNOTATION(self, token):  # noqa: N802 - lark calls token callbacks by terminal name
            return bsa if _BSA_ANNOTATION.match(str(token)) else one

        def simple_unit(self, args):
            if len(args) == 2:
                return _prefixed(str(args[0]), str(args[1]))
            token = args[0]
            if token.type == "FACTOR":
                return ureg.Quantity(int(token), "dimensionless")
            return _atom(str(token))

        def annotatable(self, args):
            base, exponent = args
            return base ** int(exponent)

        def component(self, args):
            unit, annotation = args
            return unit * annotation

        def term(self, args):
            left, op, right = args
            return left * right if str(op) == "." else left / right

        def main_term(self, args):
            if len(args) == 2:  # leading "/"
                return 1 / args[1]
            return args[0]

    return ToElig()


@functools.lru_cache(maxsize=4096)
def _parse_tree(code: str):
    from ucumvert import parse_ucum as ucumvert_parse

    return ucumvert_parse(code, _parser())


@functools.lru_cache(maxsize=4096)
def parse_ucum(text: str) -> pint.Quantity:
    """Read a UCUM code into a pint quantity of ``elig.terminology.units.ureg`` (magnitude = scale).

    ``parse_ucum("10*9/L")`` is 1e9 / liter; ``parse_ucum("{INR}")`` is 1
    (dimensionless); ``parse_ucum("mL/min/{1.73_m2}")`` is mL/min/bsa_1_73.
    Raises ``elig.terminology.units.UnitSyntaxError`` when the code is not UCUM or uses a
    UCUM unit elig does not read.
    """
    if not isinstance(text, str):
        raise UnitSyntaxError(f"cannot read unit {text!r}: a unit must be text")
    code = _normalise(text)
    if not code:
        raise UnitSyntaxError("empty unit")
    from lark.exceptions import LarkError, VisitError

    try:
        tree = _parse_tree(code)
    except LarkError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else "not UCUM"
        raise UnitSyntaxError(f"cannot read unit {text!r} as UCUM: {reason}") from None
    try:
        q = _transformer().transform(tree)
    except VisitError as exc:
        raise UnitSyntaxError(f"cannot read unit {text!r}: {exc.orig_exc}") from None
    except (pint.errors.PintError, ValueError, TypeError, ZeroDivisionError) as exc:
        raise UnitSyntaxError(f"cannot read unit {text!r}: {exc}") from None
    if not isinstance(q, pint.Quantity):
        q = ureg.Quantity(q, "dimensionless")
    return q


def is_ucum_like(text) -> bool:
    """True when the text is written in UCUM syntax (the UCUM grammar accepts it).

    It says nothing about whether elig reads every atom in it: ``/[HPF]`` is
    UCUM-like but ``parse_ucum`` refuses it. Clinician spellings that happen to
    be valid UCUM (``mg/dL``, ``kg``) are UCUM-like too; ``mmHg``, ``x10^9/L``
    and ``mL/min/1.73m2`` are not.
    """
    if not isinstance(text, str) or not text.strip():
        return False
    from lark.exceptions import LarkError

    try:
        _parse_tree(text.strip())
    except LarkError:
        return False
    return True
