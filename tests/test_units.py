"""Unit handling: conversions clinicians rely on, and the percent trap."""

from __future__ import annotations

import math

import pint
import pytest
from hypothesis import given, strategies as st

from elig.terminology.units import UnitResolver, UnitSyntaxError, conversion_factor, parse_unit

CREATININE = 113.12
BILIRUBIN = 584.66


def test_creatinine_mg_dl_and_umol_l():
    assert conversion_factor("mg/dL", "umol/L", CREATININE) == pytest.approx(88.40, abs=0.01)
    assert 97.2 * conversion_factor("µmol/L", "mg/dL", CREATININE) == pytest.approx(1.0995, abs=1e-4)


def test_bilirubin_umol_to_mg():
    assert 17.1 * conversion_factor("µmol/L", "mg/dL", BILIRUBIN) == pytest.approx(1.0, abs=0.001)


@pytest.mark.parametrize("unit", ["10^3/µL", "10*3/uL", "x10^9/L", "× 10⁹/L", "10^9/L"])
def test_counts_per_volume_are_one_dimension(unit):
    assert conversion_factor(unit, "10^9/L") == pytest.approx(1.0)


def test_cells_and_cubic_millimetres():
    assert conversion_factor("cells/µL", "10^9/L") == pytest.approx(0.001)
    assert conversion_factor("/mm3", "10^9/L") == pytest.approx(0.001)


def test_haemoglobin_g_dl_to_g_l():
    assert conversion_factor("g/dL", "g/L") == pytest.approx(10)


def test_percent_is_a_fraction_but_compares_as_percent():
    assert conversion_factor("%", "%") == 1
    assert conversion_factor("%", "1") == pytest.approx(0.01)


def test_incompatible_dimensions_raise():
    with pytest.raises(pint.DimensionalityError):
        conversion_factor("mg/dL", "mL/min")
    with pytest.raises(pint.DimensionalityError):
        conversion_factor("mg/dL", "umol/L")  # no molar mass: no bridge


def test_unreadable_unit():
    with pytest.raises(UnitSyntaxError):
        parse_unit("furlongs per fortnight!")


def test_resolver_caches_factors_and_reasons():
    r = UnitResolver()
    assert r.factor("g/dL", "g/L") == pytest.approx(10)
    assert r.factor("g/dL", "g/L") == pytest.approx(10)
    assert isinstance(r.factor("???", "g/L"), str)
    assert "cannot be converted" in r.factor("mL/min", "g/L")


@given(st.floats(min_value=0.01, max_value=50, allow_nan=False))
def test_creatinine_round_trip(value):
    there = value * conversion_factor("mg/dL", "µmol/L", CREATININE)
    back = there * conversion_factor("µmol/L", "mg/dL", CREATININE)
    assert math.isclose(back, value, rel_tol=1e-12)


@given(st.sampled_from(["mg/dL", "g/L", "g/dL", "mg/L", "ug/mL"]), st.sampled_from(["mg/dL", "g/L", "g/dL", "mg/L"]))
def test_mass_concentration_factors_are_inverse(a, b):
    assert conversion_factor(a, b) * conversion_factor(b, a) == pytest.approx(1.0)


@pytest.mark.parametrize("unit, canonical, factor", [
    ("G/L", "10^9/L", 1.0), ("K/µL", "10^9/L", 1.0), ("K/uL", "10^9/L", 1.0), ("gm/dL", "g/L", 10.0),
])
def test_lab_report_spellings_pint_would_misread(unit, canonical, factor):
    assert conversion_factor(unit, canonical) == pytest.approx(factor)
