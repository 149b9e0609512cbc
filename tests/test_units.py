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


# ---------------------------------------------------------------- a count inside a denominator
@pytest.mark.parametrize("unit, factor", [
    ("g/24h", 1.0), ("g/24 h", 1.0), ("g/24 hours", 1.0), ("g/24hr", 1.0), ("g/24H", 1.0),
    ("mg/24h", 0.001), ("mg/24 hrs", 0.001), ("g/(24.h)", 1.0), ("mg/12h", 0.002),
])
def test_a_daily_amount_written_per_24_hours_is_per_day_not_times_hours(unit, factor):
    """g/24h is grams per 24 hours; pint alone reads "g / 24h" as (g / 24) × hour."""
    assert parse_unit(unit).dimensionality == parse_unit("g/d").dimensionality
    assert conversion_factor(unit, "g/d") == pytest.approx(factor)


@given(st.integers(min_value=1, max_value=96), st.sampled_from(["h", "hr", "hrs", "hour", "hours", "H"]),
       st.sampled_from(["", " "]), st.sampled_from([("g", 1.0), ("mg", 1e-3), ("µg", 1e-6)]))
def test_any_amount_per_n_hours_converts_to_a_daily_amount(n, hours, space, mass):
    name, scale = mass
    assert conversion_factor(f"{name}/{n}{space}{hours}", "g/d") == pytest.approx(scale * 24 / n)


@given(st.integers(min_value=1, max_value=1000), st.sampled_from(["mL", "dL", "L"]))
def test_a_count_before_a_volume_divides_by_that_volume(n, volume):
    assert conversion_factor(f"mg/{n}{volume}", f"mg/{volume}") == pytest.approx(1 / n)


# ---------------------------------------------------------------- typos are not exotic units
CLINICAL = {"[mass]", "[length]", "[time]", "[substance]", "[temperature]", "[enzyme_activity]",
            "[body_surface_area_normalised]"}
VOLT = parse_unit("V").dimensionality


@pytest.mark.parametrize("unit, dimension", [("ng/mlx", "luminosity"), ("lx", "luminosity"), ("mg/dA", "current"),
                                             ("ng/mcd", "luminosity"), ("[pH]", "current")])
def test_a_unit_of_light_or_current_is_refused_as_a_typo(unit, dimension):
    with pytest.raises(UnitSyntaxError, match=dimension):
        parse_unit(unit)


def test_an_ecg_amplitude_in_millivolts_is_still_a_unit():
    assert conversion_factor("mV", "uV") == pytest.approx(1000.0)


@given(st.sampled_from(["mg/dL", "ng/mL", "g/L", "µmol/L", "U/L", "mmHg", "mL/min", "10^9/L", "pg/mL", "kg"]),
       st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=2))
def test_a_unit_with_stray_letters_is_refused_or_read_as_a_clinical_dimension(unit, stray):
    try:
        q = parse_unit(unit + stray)
    except UnitSyntaxError:
        return
    assert set(q.dimensionality) <= CLINICAL or q.dimensionality == VOLT, (unit + stray, q)


def test_an_unreadable_unit_in_a_protocol_names_its_place_and_the_likely_unit(tmp_path):
    from click.testing import CliRunner

    from elig.commands.cli import main

    path = tmp_path / "typo.elig"
    path.write_text("protocol X\ninclusion\n  I1\n    CEA < 5 ng/mlx\n  I2\n    urine protein excretion < 1 g/24h\n",
                    encoding="utf-8")
    r = CliRunner().invoke(main, ["check", str(path)])
    assert r.exit_code == 1
    assert f"{path}:4:13: error[E004]: unknown unit 'ng/mlx'" in r.output
    assert "did you mean 'ng/mL'?" in r.output
    assert ":6:" not in r.output  # grams per 24 hours is a daily amount, as the concept is
    assert "Traceback" not in r.output
