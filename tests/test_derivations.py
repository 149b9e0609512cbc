"""The catalogue of derived values: worked examples, method resolution, wiring, end to end."""

from __future__ import annotations

import math
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import elig
from elig.terminology.derivations import CATALOGUE, Derivation, Inputs
from elig.engine.results import Outcome
from elig.terminology.units import conversion_factor, parse_unit
from elig.terminology.vocabulary import default_vocabulary

ROOT = Path(__file__).resolve().parent.parent


def compute(key: str, age: int | None = None, sex: str | None = None, **values: float) -> tuple[float, str]:
    """Run a derivation as the evaluator does: parameters at their defaults unless given."""
    d = CATALOGUE.by_key[key]
    params = {prm.key: prm.default for prm in d.params}
    params.update({k: v for k, v in values.items() if k in params})
    inputs = {k: v for k, v in values.items() if k not in params}
    assert set(inputs) == {i.key for i in d.inputs}, f"{key} takes {[i.key for i in d.inputs]}"
    return d.compute(Inputs(values={**inputs, **params}, age=age, sex=sex))


def value(key: str, **kw) -> float:
    return compute(key, **kw)[0]


# ---------------------------------------------------------------- Cockcroft-Gault
def test_cockcroft_gault_worked_example():
    # (140 − 63) × 72 / (72 × 1.1) = 77 / 1.1 = 70.0 mL/min
    got, text = compute("cockcroft-gault", age=63, sex="male", scr=1.1, weight=72)
    assert got == pytest.approx(70.0, abs=1e-9)
    assert "(140 − 63)" in text and "72" in text and "1.1 mg/dL" in text


def test_cockcroft_gault_female_is_085_of_male():
    male = value("cockcroft-gault", age=63, sex="male", scr=1.1, weight=72)
    female, text = compute("cockcroft-gault", age=63, sex="female", scr=1.1, weight=72)
    assert female == pytest.approx(0.85 * male)
    assert female == pytest.approx(59.5)
    assert "× 0.85" in text


def test_cockcroft_gault_same_clearance_from_umol_per_litre():
    scr_mg_dl = 97.2 * conversion_factor("umol/L", "mg/dL", 113.12)
    assert scr_mg_dl == pytest.approx(1.0995, abs=1e-4)
    from_mg = value("cockcroft-gault", age=63, sex="male", scr=1.1, weight=72)
    from_umol = value("cockcroft-gault", age=63, sex="male", scr=scr_mg_dl, weight=72)
    assert abs(from_mg - from_umol) < 0.1


def test_cockcroft_gault_ideal_and_adjusted_weight():
    # Male, 180 cm: IBW = 50 + 2.3 × (180 / 2.54 − 60) = 75.0 kg
    ibw = 50 + 2.3 * (180 / 2.54 - 60)
    got, text = compute("cockcroft-gault-ideal", age=63, sex="male", scr=1.1, height=180)
    assert got == pytest.approx((140 - 63) * ibw / (72 * 1.1))
    assert "IBW" in text and "ideal body weight" in text
    # Adjusted: IBW + 0.4 × (100 − IBW)
    adj = ibw + 0.4 * (100 - ibw)
    got = value("cockcroft-gault-adjusted", age=63, sex="male", scr=1.1, weight=100, height=180)
    assert got == pytest.approx((140 - 63) * adj / (72 * 1.1))


@settings(max_examples=200, deadline=None)
@given(age=st.integers(18, 100), weight=st.floats(30, 200), scr=st.floats(0.2, 10),
       bump=st.floats(0.01, 5), sex=st.sampled_from(["male", "female"]))
def test_cockcroft_gault_decreases_with_creatinine(age, weight, scr, bump, sex):
    lower = value("cockcroft-gault", age=age, sex=sex, scr=scr, weight=weight)
    higher = value("cockcroft-gault", age=age, sex=sex, scr=scr + bump, weight=weight)
    assert higher < lower


@settings(max_examples=200, deadline=None)
@given(age=st.integers(18, 99), older=st.integers(1, 30), weight=st.floats(30, 200), scr=st.floats(0.2, 10),
       sex=st.sampled_from(["male", "female"]))
def test_cockcroft_gault_decreases_with_age(age, older, weight, scr, sex):
    young = value("cockcroft-gault", age=age, sex=sex, scr=scr, weight=weight)
    old = value("cockcroft-gault", age=min(age + older, 139), sex=sex, scr=scr, weight=weight)
    assert old < young


# ---------------------------------------------------------------- CKD-EPI 2021
def test_ckd_epi_2021_female_50_scr_1():
    # 142 × (1.0/0.7)^−1.200 × 0.9938^50 × 1.012 = 68.6 mL/min/1.73 m² (calculators show 69)
    got, text = compute("ckd-epi-2021", age=50, sex="female", scr=1.0)
    assert abs(got - 69) < 0.5
    assert got == pytest.approx(68.63, abs=0.01)
    assert "0.9938^50" in text and "× 1.012" in text


def test_ckd_epi_2021_male_and_low_creatinine_branch():
    # Male 60 y, SCr 1.2: 142 × (1.2/0.9)^−1.200 × 0.9938^60 = 69.2
    assert value("ckd-epi-2021", age=60, sex="male", scr=1.2) == pytest.approx(
        142 * (1.2 / 0.9) ** -1.2 * 0.9938 ** 60, rel=1e-12)
    assert value("ckd-epi-2021", age=60, sex="male", scr=1.2) == pytest.approx(69.2, abs=0.1)
    # Female 30 y, SCr 0.5 (below κ): 142 × (0.5/0.7)^−0.241 × 0.9938^30 × 1.012 = 129.3
    assert value("ckd-epi-2021", age=30, sex="female", scr=0.5) == pytest.approx(129.3, abs=0.1)


@pytest.mark.parametrize("sex, kappa", [("female", 0.7), ("male", 0.9)])
def test_ckd_epi_2021_is_continuous_at_kappa(sex, kappa):
    below = value("ckd-epi-2021", age=40, sex=sex, scr=kappa - 1e-9)
    at = value("ckd-epi-2021", age=40, sex=sex, scr=kappa)
    assert below == pytest.approx(at, rel=1e-6)
    assert at == pytest.approx(142 * 0.9938 ** 40 * (1.012 if sex == "female" else 1.0))


# ---------------------------------------------------------------- blood gases
def test_pf_ratio_worked_example():
    got, text = compute("pf-ratio", pao2=80, fio2=0.40)
    assert got == pytest.approx(200.0)
    assert text == "80 mmHg / 0.40"


def test_alveolar_gas_equation_worked_example():
    # PAO2 = 0.40 × (760 − 47) − 40 / 0.8 = 285.2 − 50 = 235.2; A-a = 235.2 − 80 = 155.2 mmHg
    got, text = compute("alveolar-gas-equation", pao2=80, fio2=0.40, paco2=40)
    assert got == pytest.approx(155.2)
    assert text == "PAO2 = 0.40 × (760 − 47) − 40 / 0.8 = 235.2 mmHg; PAO2 − PaO2 = 235.2 − 80"


def test_alveolar_gas_equation_room_air_and_altitude():
    # Room air at sea level: PAO2 = 0.21 × 713 − 50 = 99.73; PaO2 90 gives a normal gradient of 9.7 mmHg
    assert value("alveolar-gas-equation", pao2=90, fio2=0.21, paco2=40) == pytest.approx(9.73)
    # Patm 700 mmHg: PAO2 = 0.21 × 653 − 50 = 87.13
    assert value("alveolar-gas-equation", pao2=80, fio2=0.21, paco2=40, patm=700) == pytest.approx(7.13)


# ---------------------------------------------------------------- body size
def test_bmi_cdc_example():
    # CDC: 68 kg, 165 cm → 68 / 1.65² = 24.98 kg/m²
    got, text = compute("bmi", weight=68, height=165)
    assert got == pytest.approx(24.98, abs=0.005)
    assert text == "68 kg / (165 cm / 100)²"


def test_bsa_mosteller_and_dubois():
    # Mosteller: √(180 × 80 / 3600) = √4 = 2.00 m²
    assert value("mosteller", weight=80, height=180) == pytest.approx(2.0)
    # DuBois: 0.007184 × 70^0.425 × 175^0.725 = 1.848 m²
    assert value("dubois", weight=70, height=175) == pytest.approx(1.848, abs=0.001)
    # The two agree within a few per cent for an average adult.
    assert value("mosteller", weight=70, height=175) == pytest.approx(1.845, abs=0.001)


# ---------------------------------------------------------------- corrected QT
def test_qtc_bazett_and_fridericia():
    # RR 1000 ms: no correction. RR 640 ms: √0.64 = 0.8; RR 512 ms: ∛0.512 = 0.8.
    assert value("bazett", qt=400, rr=1000) == pytest.approx(400)
    assert value("fridericia", qt=400, rr=1000) == pytest.approx(400)
    assert value("bazett", qt=400, rr=640) == pytest.approx(500)
    assert value("fridericia", qt=400, rr=512) == pytest.approx(500)
    # QT 400 ms at RR 800 ms: Bazett 447.2, Fridericia 430.9
    assert value("bazett", qt=400, rr=800) == pytest.approx(447.2, abs=0.05)
    assert value("fridericia", qt=400, rr=800) == pytest.approx(430.9, abs=0.05)


def test_qtc_from_heart_rate_matches_rr():
    # Heart rate 75/min is an RR interval of 0.8 s.
    assert value("bazett-hr", qt=400, hr=75) == pytest.approx(value("bazett", qt=400, rr=800))
    assert value("fridericia-hr", qt=400, hr=75) == pytest.approx(value("fridericia", qt=400, rr=800))
    assert value("bazett-hr", qt=420, hr=60) == pytest.approx(420)


# ---------------------------------------------------------------- resolution
@pytest.mark.parametrize("concept, names, key", [
    ("creatinine clearance", ("Cockcroft-Gault",), "cockcroft-gault"),
    ("creatinine clearance", ("Cockcroft-Gault", "ideal body weight"), "cockcroft-gault-ideal"),
    ("creatinine clearance", ("cockcroft gault", "IBW"), "cockcroft-gault-ideal"),
    ("creatinine clearance", ("Cockcroft-Gault", "adjusted body weight"), "cockcroft-gault-adjusted"),
    ("creatinine clearance", ("ideal body weight",), "cockcroft-gault-ideal"),
    ("alveolar-arterial oxygen gradient", ("alveolar gas equation",), "alveolar-gas-equation"),
    ("PaO2/FiO2 ratio", ("PaO2/FiO2",), "pf-ratio"),
    ("PaO2/FiO2 ratio", ("Horovitz index",), "pf-ratio"),
    ("body surface area", ("Mosteller",), "mosteller"),
    ("body surface area", ("Du Bois",), "dubois"),
    ("CKD-EPI eGFR", ("CKD-EPI 2021",), "ckd-epi-2021"),
    ("CKD-EPI eGFR", ("ckd-epi-2021",), "ckd-epi-2021"),
    ("corrected QT interval", ("Fridericia",), "fridericia"),
    ("corrected QT interval", ("Bazett",), "bazett"),
    ("corrected QT interval", ("Fridericia", "heart rate"), "fridericia-hr"),
])
def test_resolve_picks_the_named_variant(concept, names, key):
    found = CATALOGUE.resolve(concept, None, names)
    assert isinstance(found, Derivation), found
    assert found.key == key


def test_resolve_default_without_names():
    assert CATALOGUE.resolve("creatinine clearance", "cockcroft-gault", ()).key == "cockcroft-gault"
    assert CATALOGUE.resolve("corrected QT interval", "bazett", ()).key == "bazett"


def test_resolve_unknown_method_is_a_message():
    msg = CATALOGUE.resolve("creatinine clearance", "cockcroft-gault", ("MDRD",))
    assert isinstance(msg, str)
    assert "MDRD" in msg and "Cockcroft-Gault" in msg and "ideal body weight" in msg
    assert isinstance(CATALOGUE.resolve("creatinine clearance", None, ("Cockcroft-Gault", "lean body mass")), str)
    assert isinstance(CATALOGUE.resolve("serum creatinine", None, ()), str)


# ---------------------------------------------------------------- declarations and vocabulary
@pytest.mark.parametrize("d", list(CATALOGUE.by_key.values()), ids=lambda d: d.key)
def test_declaration_is_complete(d):
    assert d.title and d.method_names and d.formula and d.unit
    assert len(d.reference) > 30 and any(ch.isdigit() for ch in d.reference), "a real citation with year/pages"
    parse_unit(d.unit)
    for prm in d.params:
        parse_unit(prm.unit)
        assert prm.names and prm.meaning
        if prm.low is not None and prm.high is not None:
            assert prm.low <= prm.default <= prm.high
    assert len({i.key for i in d.inputs}) == len(d.inputs)


@pytest.fixture(scope="module")
def vocab():
    return default_vocabulary()


@pytest.mark.parametrize("d", list(CATALOGUE.by_key.values()), ids=lambda d: d.key)
def test_declaration_matches_vocabulary(vocab, d):
    concept = vocab.lookup(d.concept)
    if concept is None:
        pytest.skip(f"vocabulary has no concept '{d.concept}' yet")
    assert concept.kind == "derived"
    assert concept.name == d.concept, "use the vocabulary's canonical name"
    assert conversion_factor(d.unit, concept.unit) == pytest.approx(1.0)
    for inp in d.inputs:
        source = vocab.lookup(inp.concept)
        assert source is not None, f"input concept '{inp.concept}' is not in the vocabulary"
        assert source.name == inp.concept
        assert source.kind == "measurement"
        conversion_factor(source.unit, inp.unit, source.molar_mass)  # raises if incompatible


def test_inputs_cannot_be_zero(vocab):
    """Every formula divides by, or takes a root of, its inputs: the vocabulary's plausible range
    keeps zero and negative values out (an implausible value makes the derived value unknown)."""
    for d in CATALOGUE.by_key.values():
        for inp in d.inputs:
            source = vocab.lookup(inp.concept)
            if source is None:
                continue
            assert source.plausible is not None and source.plausible[0] > 0, inp.concept


def test_vocabulary_methods_exist_in_catalogue(vocab):
    for concept in vocab.concepts:
        if concept.kind != "derived":
            continue
        for key in concept.methods:
            assert key in CATALOGUE.by_key, f"{concept.name}: method '{key}' is not in elig/terminology/derivations.py"
            d = CATALOGUE.by_key[key]
            # A concept computes its own derivations, or reuses another concept's in the same
            # unit (QTcF is the corrected QT interval by Fridericia only).
            assert d.concept == concept.name or d.unit == concept.unit, (concept.name, key)


# ---------------------------------------------------------------- end to end
PROTOCOL = """\
protocol TEST-DERIVED
  title "Derived values end to end"

inclusion
  I1 "200 < PaO2/FiO2 ≤ 300 mmHg"
    200 < PaO2/FiO2 ≤ 300 mmHg
  I2 "alveolar-arterial gradient P(A-a)O2 > 35 mmHg"
    P(A-a)O2 > 35 mmHg
  I3 "PaO2/FiO2 ratio ≤ 300 mmHg"
    PF ratio ≤ 300 mmHg
  I4 "P(A-a)O2 > 35 mmHg at altitude"
    P(A-a)O2 > 35 mmHg (alveolar gas equation, Patm: 700 mmHg)
  I5 "eGFR ≥ 60"
    CKD-EPI eGFR ≥ 60 mL/min/1.73m2
  I6 "QTc ≤ 470 ms"
    QTc ≤ 470 ms (Fridericia)
  I7 "Creatinine clearance ≥ 60 mL/min (Cockcroft-Gault)"
    Creatinine clearance ≥ 60 mL/min (Cockcroft-Gault)
"""


def _needs_vocabulary():
    vocab = default_vocabulary()
    for name in ("PaO2", "FiO2", "PaCO2", "PaO2/FiO2 ratio", "alveolar-arterial oxygen gradient", "CKD-EPI eGFR",
                 "corrected QT interval", "QT interval", "RR interval"):
        if vocab.lookup(name) is None:
            pytest.skip(f"the vocabulary has no concept '{name}' yet (elig/data/vocabulary.yaml)")


@pytest.fixture(scope="module")
def protocol():
    _needs_vocabulary()
    return elig.parse_protocol_text(PROTOCOL, file="test_derived.elig")


def _obs(concept, v, unit, date):
    return {"concept": concept, "value": v, "unit": unit, "date": date}


def _evaluate(protocol, observations, **extra):
    record = {"id": "p1", "sex": "female", "birth_date": "1974-01-01", "observations": observations, **extra}
    return elig.evaluate(protocol, elig.patient_from_data(record), as_of="2024-03-15")


def _gas(pao2, fio2_percent, paco2=40, fio2_time="2024-03-14T08:05:00"):
    return [_obs("PaO2", pao2, "mmHg", "2024-03-14T08:00:00"),
            _obs("FiO2", fio2_percent, "%", fio2_time),
            _obs("PaCO2", paco2, "mmHg", "2024-03-14T08:00:00")]


def test_e2e_pf_ratio_upper_boundary_is_met(protocol):
    result = _evaluate(protocol, _gas(240, 80))  # 240 / 0.80 = 300 exactly
    assert result.criterion("I1").outcome is Outcome.MET
    assert result.criterion("I3").outcome is Outcome.MET
    derived = result.criterion("I3").explanation.derived
    assert derived.value == pytest.approx(300)
    assert "paired" in derived.pairing and "240 mmHg / 0.80" in derived.substituted


def test_e2e_pf_ratio_lower_boundary_is_not_met(protocol):
    result = _evaluate(protocol, _gas(120, 60))  # 120 / 0.60 = 200 exactly, and the range is 200 < x
    assert result.criterion("I1").outcome is Outcome.NOT_MET


def test_e2e_pf_ratio_inside_and_above(protocol):
    assert _evaluate(protocol, _gas(100, 40)).criterion("I1").outcome is Outcome.MET  # 250
    assert _evaluate(protocol, _gas(100, 30)).criterion("I1").outcome is Outcome.NOT_MET  # 333


def test_e2e_fio2_five_hours_apart_does_not_pair(protocol):
    result = _evaluate(protocol, _gas(240, 80, fio2_time="2024-03-14T13:00:00"))
    for cid in ("I1", "I2", "I3"):
        explanation = result.criterion(cid).explanation
        assert explanation.outcome is Outcome.UNKNOWN, cid
        assert "FiO2" in explanation.reason, cid
        assert explanation.missing, cid


def test_e2e_alveolar_arterial_gradient(protocol):
    result = _evaluate(protocol, _gas(240, 80))
    # PAO2 = 0.80 × (760 − 47) − 40 / 0.8 = 520.4; A-a = 280.4 mmHg
    i2 = result.criterion("I2").explanation
    assert i2.outcome is Outcome.MET
    assert i2.derived.value == pytest.approx(280.4)
    assert "PAO2 = 0.80 × (760 − 47) − 40 / 0.8 = 520.4 mmHg" in i2.derived.substituted
    assert any("760 mmHg (default)" in p for p in i2.derived.parameters)
    # With Patm 700 mmHg: PAO2 = 0.80 × 653 − 50 = 472.4; A-a = 232.4 mmHg
    i4 = result.criterion("I4").explanation
    assert i4.derived.value == pytest.approx(232.4)
    assert any(p.lower().startswith("patm = 700 mmhg") and "default" not in p for p in i4.derived.parameters)


def test_e2e_alveolar_arterial_gradient_boundary_and_missing_paco2(protocol):
    # Room air: PAO2 = 0.21 × 713 − 50 = 99.73; PaO2 64.73 gives exactly 35 mmHg, not > 35
    result = _evaluate(protocol, _gas(64.73, 21))
    assert result.criterion("I2").explanation.derived.value == pytest.approx(35.0)
    assert result.criterion("I2").outcome is Outcome.NOT_MET
    no_paco2 = _gas(240, 80)[:2]
    assert _evaluate(protocol, no_paco2).criterion("I2").outcome is Outcome.UNKNOWN
    assert _evaluate(protocol, no_paco2).criterion("I1").outcome is Outcome.MET  # P/F needs no PaCO2


def test_e2e_ckd_epi_qtc_and_cockcroft_gault(protocol):
    obs = [_obs("serum creatinine", 88.4, "µmol/L", "2024-03-10"),  # = 1.00 mg/dL
           _obs("body weight", 72, "kg", "2024-03-10"),
           _obs("QT interval", 400, "ms", "2024-03-10T09:00:00"),
           _obs("RR interval", 800, "ms", "2024-03-10T09:00:00")]
    result = _evaluate(protocol, obs)
    egfr = result.criterion("I5").explanation
    assert egfr.outcome is Outcome.MET
    assert egfr.derived.value == pytest.approx(68.6, abs=0.1)  # female, 50 years at 2024-03-15
    qtc = result.criterion("I6").explanation
    assert qtc.outcome is Outcome.MET and qtc.derived.value == pytest.approx(430.9, abs=0.05)
    crcl = result.criterion("I7").explanation
    assert crcl.derived.value == pytest.approx((140 - 50) * 72 / (72 * 1.0) * 0.85, abs=0.1)
    # Without the sex, the eGFR cannot be computed: unknown, and the sex is to be collected.
    record = {"id": "p2", "birth_date": "1974-01-01", "observations": obs}
    unknown = elig.evaluate(protocol, elig.patient_from_data(record), as_of="2024-03-15").criterion("I5")
    assert unknown.outcome is Outcome.UNKNOWN and "sex" in unknown.explanation.missing


def test_checker_rejects_unknown_method_and_parameter():
    _needs_vocabulary()
    with pytest.raises(elig.ProtocolError) as err:
        elig.parse_protocol_text("protocol T\ninclusion\n  I1\n    P(A-a)O2 > 35 mmHg (alveolar gas equation, "
                                 "altitude: 2000 m)\n  I2\n    QTc ≤ 470 ms (Framingham)\n")
    text = str(err.value)
    assert "E113" in text and "E102" in text


# ---------------------------------------------------------------- documentation
def test_docs_page_is_generated_from_the_catalogue():
    generated = subprocess.run([sys.executable, str(ROOT / "docs" / "gen_derived.py")], capture_output=True,
                               text=True, check=True, encoding="utf-8").stdout
    for key in CATALOGUE.by_key:
        assert f"`{key}`" in generated
    committed = (ROOT / "docs" / "derived.md").read_text(encoding="utf-8")
    assert committed == generated, "regenerate: .venv/bin/python docs/gen_derived.py > docs/derived.md"


def test_docs_examples_parse_and_pick_their_derivation():
    _needs_vocabulary()
    gen = runpy.run_path(str(ROOT / "docs" / "gen_derived.py"), run_name="gen_derived")
    for d in CATALOGUE.by_key.values():
        example = gen["_example"](d)
        checked = elig.parse_protocol_text(f"protocol T\ninclusion\n  I1\n    {example}\n")
        assert checked.criteria[0].plan.subject.derivation.key == d.key, example
