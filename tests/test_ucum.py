"""UCUM codes as FHIR systems send them, read into elig's pint registry (elig.terminology.ucum)."""

from __future__ import annotations

import importlib

import pint
import pytest

from elig.terminology import units
from elig.terminology.ucum import BSA_UNIT, is_ucum_like, parse_ucum
from elig.terminology.units import UnitSyntaxError, conversion_factor_q, ureg

# code -> (a pint expression it must equal, in elig's registry)
REAL_WORLD = {
    "10*9/L": "1e9 / liter",
    "10*3/uL": "1e3 / microliter",
    "10*6/uL": "1e6 / microliter",
    "mm[Hg]": "millimeter_Hg",
    "/min": "1 / minute",
    "{INR}": "1",
    "%": "percent",
    "mg/dL": "milligram / deciliter",
    "umol/L": "micromole / liter",
    "a": "365.25 day",
    "mo": "365.25 day / 12",
    "wk": "7 day",
    "d": "day",
    "{cells}/uL": "1 / microliter",
    "[IU]/L": "international_unit / liter",
    "U/L": "international_unit / liter",
    "fL": "femtoliter",
    "pg": "picogram",
    "g/dL": "gram / deciliter",
    "kg/m2": "kilogram / meter ** 2",
    "cm": "centimeter",
    "kg": "kilogram",
    "[lb_av]": "pound",
    "[in_i]": "inch",
    "s": "second",
    "ms": "millisecond",
    "{score}": "1",
    "mg/g": "milligram / gram",
    "mL/min": "milliliter / minute",
    "mmol/L": "millimole / liter",
    "g/L": "gram / liter",
    "m[IU]/mL": "milliinternational_unit / milliliter",
    "meq/L": "millimole / liter",
}


@pytest.mark.parametrize("code", sorted(REAL_WORLD))
def test_real_world_codes_parse_to_what_they_mean(code):
    q = parse_ucum(code)
    assert isinstance(q, pint.Quantity)
    expected = ureg.parse_expression(REAL_WORLD[code])
    assert q.dimensionality == expected.dimensionality, code
    assert float((q / expected).to("dimensionless").magnitude) == pytest.approx(1.0, rel=1e-12), code


def test_quantities_live_in_elig_registry():
    # A quantity of another registry cannot be compared with elig's: this is what ucumvert's default does.
    q = parse_ucum("mg/dL")
    assert q + ureg.Quantity(1, "mg/dL") == ureg.Quantity(2, "mg/dL")
    assert conversion_factor_q(parse_ucum("mg/dL"), units.parse_unit("mg/dl")) == 1.0


def test_celsius_is_a_temperature():
    q = parse_ucum("Cel")
    assert q.units == ureg.degree_Celsius
    assert q.dimensionality == ureg.parse_expression("kelvin").dimensionality


def test_platelet_units_agree():
    assert parse_ucum("10*3/uL") == parse_ucum("10*9/L")
    assert conversion_factor_q(parse_ucum("10*3/uL"), parse_ucum("10*9/L")) == pytest.approx(1.0)
    # and with the clinician's spelling used in protocols
    assert conversion_factor_q(parse_ucum("10*3/uL"), units.parse_unit("x 10^9/L")) == pytest.approx(1.0)


def test_inr_annotation_is_dimensionless():
    q = parse_ucum("{INR}")
    assert q.dimensionless
    assert q == ureg.Quantity(1, "dimensionless")


@pytest.mark.parametrize("code", ["{cells}", "{score}", "{RBC}", "/{tot}", "{copies}/mL"])
def test_other_annotations_mean_one(code):
    q = parse_ucum(code)
    assert "body_surface" not in str(q.dimensionality)


def test_egfr_normalised_to_body_surface_is_not_a_flow():
    egfr = parse_ucum("mL/min/{1.73_m2}")
    flow = parse_ucum("mL/min")
    assert egfr.dimensionality != flow.dimensionality
    with pytest.raises(pint.DimensionalityError):
        egfr.to(flow.units)
    with pytest.raises(pint.DimensionalityError):
        conversion_factor_q(egfr, flow)
    with pytest.raises(pint.DimensionalityError):
        conversion_factor_q(egfr, units.parse_unit("mL/min"))
    # ... but it converts within its own kind
    assert conversion_factor_q(egfr, parse_ucum("L/h/{1.73_m2}")) == pytest.approx(0.06)
    assert BSA_UNIT in str(egfr.units)


@pytest.mark.parametrize("spelling", ["mL/min/{1.73m2}", "mL/min/1.73m2", "mL/min/1.73 m2", "mL/min/1.73_m2",
                                      "mL/min/1.73 m²", "mL/min/{1.73_m^2}"])
def test_body_surface_spellings_read_alike(spelling):
    assert parse_ucum(spelling) == parse_ucum("mL/min/{1.73_m2}")


def test_time_units_are_julian():
    assert parse_ucum("a").to("day").magnitude == pytest.approx(365.25)
    assert parse_ucum("mo").to("day").magnitude == pytest.approx(30.4375)
    assert parse_ucum("wk").to("day").magnitude == pytest.approx(7)


def test_enzyme_unit_reads_like_the_clinician_spelling():
    # Decision: UCUM U is read as international_unit, as elig.terminology.units.parse_unit reads "U/L" and "IU/L".
    assert conversion_factor_q(parse_ucum("U/L"), units.parse_unit("U/L")) == 1.0
    assert conversion_factor_q(parse_ucum("U/L"), parse_ucum("[IU]/L")) == 1.0


def test_mercury_pressure_matches_mmhg():
    assert conversion_factor_q(parse_ucum("mm[Hg]"), units.parse_unit("mmHg")) == pytest.approx(1.0)
    assert conversion_factor_q(parse_ucum("cm[H2O]"), parse_ucum("mm[Hg]")) == pytest.approx(0.73556, rel=1e-4)


def test_creatinine_molar_and_mass_meet_through_molar_mass():
    f = conversion_factor_q(parse_ucum("umol/L"), parse_ucum("mg/dL"), 113.12)
    assert 88.4 * f == pytest.approx(1.0, rel=1e-4)


@pytest.mark.parametrize("code", ["/[HPF]", "[arb'U]/mL", "B[SPL]", "[pH]", "u/l"])
def test_ucum_atoms_elig_does_not_read_are_refused(code):
    with pytest.raises(UnitSyntaxError, match="not one elig reads"):
        parse_ucum(code)


@pytest.mark.parametrize("text", ["", "   ", "mmHg", "x10^9/L", "mg/dL/", "furlongs", "10*9/L)", "mCel"])
def test_unreadable_units_raise_unit_syntax_error(text):
    with pytest.raises(UnitSyntaxError):
        parse_ucum(text)


def test_non_text_is_refused():
    with pytest.raises(UnitSyntaxError):
        parse_ucum(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("text,expected", [
    ("10*9/L", True), ("mm[Hg]", True), ("{INR}", True), ("mL/min/{1.73_m2}", True), ("mg/dL", True),
    ("/[HPF]", True), ("mmHg", False), ("x10^9/L", False), ("mL/min/1.73m2", False), ("", False), (None, False),
])
def test_is_ucum_like(text, expected):
    assert is_ucum_like(text) is expected


def test_module_import_is_idempotent():
    import elig.terminology.ucum as module

    importlib.reload(module)  # defines the BSA unit again only if absent: no error, same meaning
    assert module.parse_ucum("mL/min/{1.73_m2}").dimensionality == parse_ucum("mL/min/{1.73_m2}").dimensionality
