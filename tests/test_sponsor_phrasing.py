"""Sponsor phrasing as written (issue 9, part 3): each construct parses, prints back
canonically, keeps its tree, checks, and evaluates with the meaning a clinician reads."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

import elig
from elig.commands.cli import main
from elig.engine import checker
from elig.engine.evaluator import evaluate
from elig.language import canonical, parser
from elig.language import tree as t
from elig.records.loader import patient_from_data

AS_OF = "2024-03-15"


@pytest.mark.parametrize("text, printed", [
    ("Absolute neutrophil count (ANC) ≥1,500/mm3", "Absolute neutrophil count ≥ 1,500 /mm3 (ANC)"),
    ("AST and ALT ≤ 3.0 x ULN", "AST and ALT ≤ 3.0 x ULN"),
    ("AST/ALT ≤ 2.5 × ULN", "AST/ALT ≤ 2.5 x ULN"),
    ("SGOT and/or SGPT no greater than 3 times upper limit of normal (ULN)", "SGOT and/or SGPT ≤ 3 x ULN"),
    ("Total bilirubin ≤ 1.5 x ULN (≤ 3 x ULN for Gilbert's syndrome)",
     "Total bilirubin ≤ 1.5 x ULN, ≤ 3 x ULN if Gilbert's syndrome"),
    ("ALT ≤ 2.5 x ULN or ≤ 5 x ULN in patients with liver metastases",
     "ALT ≤ 2.5 x ULN, ≤ 5 x ULN if liver metastases"),
    ("AST ≤ 5 × ULN if liver metastases", "AST ≤ 5 x ULN if liver metastases"),
    ("eGFR ≥ 60 mL/min/1.73 m²", "eGFR ≥ 60 mL/min/1.73 m²"),
    ("eGFR ≥ 45 mL/min/1.73 m2 (CKD-EPI 2021)", "eGFR ≥ 45 mL/min/1.73 m2 (CKD-EPI 2021)"),
    ("ECOG performance status of 0 or 1", "ECOG performance status 0 or 1"),
    ("ECOG 0, 1 or 2", "ECOG 0, 1 or 2"),
    ("Serum potassium within normal limits", "Serum potassium within normal limits"),
    ("Potassium within the institutional normal range", "Potassium within normal limits"),
    ("bilirubin ≤ ULN", "bilirubin ≤ ULN"),
    ("haemoglobin ≥ LLN", "haemoglobin ≥ LLN"),
    ("LVEF ≥ 50% by echocardiogram or MUGA", "LVEF ≥ 50% by echocardiogram or MUGA"),
    ("LVEF ≥ 50% as assessed by echocardiogram", "LVEF ≥ 50% assessed by echocardiogram"),
    ("Age >/= 18 years", "Age ≥ 18 years"),
    ("Age ≧ 18 years", "Age ≥ 18 years"),
    ("Triglycerides =< 400 mg/dL", "Triglycerides ≤ 400 mg/dL"),
    ("creatinine </= 1.5 mg/dL", "creatinine ≤ 1.5 mg/dL"),
    ("ALT ≤ 3 x upper limit of normal (ULN)", "ALT ≤ 3 x ULN"),
    ("ALT ≤ 3 times the institutional ULN", "ALT ≤ 3 x ULN"),
    ("TBil ≤ 1.5 x ULN (upper limit of normal)", "TBil ≤ 1.5 x ULN"),
    ("Platelets < 100x109/L", "Platelets < 100 x 10^9/L"),
    ("hypertension (HTN)", "hypertension (HTN)"),
    ("Estimated glomerular filtration rate below 20 mL/min/1.73 m2", "Estimated glomerular filtration rate < 20 mL/min/1.73 m2"),
    ("age over 65 years", "age > 65 years"),
    ("Age equal or superior to 21 years and < 80 years", "21 years ≤ Age < 80 years"),
    ("age < 18 or above 45 years", "age < 18 years or age > 45 years"),
    ("Bilirubin < 2 X upper normal value", "Bilirubin < 2 x ULN"),
    ("ALT less than 2.5X upper limit normal", "ALT < 2.5 x ULN"),
    ("Bilirubin within the normal limit", "Bilirubin within normal limits"),
    ("LVEF ≥ 50% by either echocardiogram or MUGA", "LVEF ≥ 50% by echocardiogram or MUGA"),
    ("≥ 18 years of age", "age ≥ 18 years"),
    ("At least 18 years old", "age ≥ 18 years"),
    ("Less than 18 years of age", "age < 18 years"),
    ("Child-Pugh: <=7", "Child-Pugh ≤ 7"),
    ("BMI: >18 and < 30 kg/m2", "18 < BMI < 30 kg/m2"),
    ("Age between 18 to 25 years", "Age 18 to 25 years"),
    ("Age >75 years,", "Age > 75 years"),
    ("Patients ≥19 years old", "age ≥ 19 years"),
    ("Children < 5 years old", "age < 5 years"),
    ("Patients aged < 20 or > 70 years", "age < 20 years or age > 70 years"),
    ("Women ≥ 18 years of age", "female and age ≥ 18 years"),
    # comparators, ranges, units and the ULN as the corpus types them
    ("Aged greater than and equal to 30 years", "age ≥ 30 years"),
    ("ANC greater than/equal to 1200/mm3", "ANC ≥ 1200 /mm3"),
    ("BMI＜18.5 kg/m2", "BMI < 18.5 kg/m2"),
    ("BMI ＞＝ 25 kg/m2", "BMI ≥ 25 kg/m2"),
    ("SBP 90~150mmHg", "SBP 90 to 150 mmHg"),
    ("Hemoglobin below 10 g / dl", "Hemoglobin < 10 g/dl"),
    ("Creatinine less than 1.5 times the upper limits of normal", "Creatinine < 1.5 x ULN"),
    ("SGOT ≤ 2 x IULN", "SGOT ≤ 2 x ULN"),
    ("The patient is less than 28 days old", "age < 28 days"),
    # the words before the name of what is measured
    ("Patients with a Karnofsky Performance Score less than 70", "Karnofsky Performance Score < 70"),
    ("Participants must have an ECOG performance status of less than or equal to 1", "ECOG performance status ≤ 1"),
    ("A body mass index (BMI) >30 kg/m2", "body mass index > 30 kg/m2 (BMI)"),
    ("Have a body weight of <150 kilograms (kg)", "body weight < 150 kilograms"),
    ("Women with a hemoglobin < 12 g/dL", "female and hemoglobin < 12 g/dL"),
    ("Aged <18 years old", "age < 18 years"),
    ("Be at least 21 years of age", "age ≥ 21 years"),
])
def test_sponsor_phrasings_print_canonically_and_round_trip(text, printed):
    node = parser.parse_rule(text)
    assert canonical.rule(node) == printed
    again = parser.parse_rule(printed)
    assert again == node and canonical.rule(again) == printed


def test_keywords_inside_words_stay_names():
    # 'or' in 'orally', 'and' in 'Andersen', lookaheads that stop at the end of the line.
    assert parser.parse_rule("Nothing orally").name.text == "Nothing orally"
    node = parser.parse_protocol('protocol P\ninclusion\n  I1\n    pregnant or lactating\n  I2\n    ANC ≥ 1.5 x 10^9/L\n')
    assert isinstance(node.criteria[0].rule, t.Or)


def test_words_for_comparators_are_comparators_only_before_a_number():
    assert parser.parse_rule("history of cancer above the knee").name.text == "cancer above the knee"
    assert parser.parse_rule("patients under anaesthesia").name.text == "patients under anaesthesia"


def test_only_an_age_in_years_may_be_written_without_its_name():
    with pytest.raises(elig.diagnostics.ProtocolError) as info:
        parser.parse_rule("> 6 months")
    (d,) = info.value.diagnostics
    assert d.code == "E001" and "without a name" in d.message and "age ≥ 18 years" in d.hint
    protocol = parser.parse_protocol("protocol P\n  define adult: ≥ 18 years\ninclusion\n  I1\n    adult\n")
    assert canonical.rule(protocol.definitions[0].rule) == "age ≥ 18 years"
    with pytest.raises(elig.diagnostics.ProtocolError):
        parser.parse_rule("any of pregnant,")  # after a list, a trailing comma means an item is missing


def test_words_for_people_before_a_time_threshold_are_an_age_and_nothing_else():
    assert [d.code for d in _warnings("Patients > 50 kg")] == ["E101"]  # not a time: no age is made up
    assert [d.code for d in _warnings("Men and women ≥ 18 years")] == ["E101", "E101"]  # two sexes: refused
    assert canonical.rule(parser.parse_rule("Age ≥ 18 years")) == "Age ≥ 18 years"  # the concept's own name stays


def test_words_before_a_name_are_taken_off_only_when_a_name_is_left():
    # the sponsor's sex is never dropped with them
    assert canonical.rule(parser.parse_rule("Men with BMI ≥ 30 kg/m2")) == "male and BMI ≥ 30 kg/m2"
    assert _verdict("Men with BMI ≥ 30 kg/m2", [{"concept": "BMI", "value": 35, "unit": "kg/m2"}]) == "not met"
    # a name that begins with a word for people, and no connecting verb, stays as written
    assert parser.parse_rule("Patient Health Questionnaire > 10").subject.name.text == "Patient Health Questionnaire"
    # a method in parentheses stays a method; only the threshold's own unit is a gloss
    assert canonical.rule(parser.parse_rule("LVEF ≥ 50% (MUGA)")) == "LVEF ≥ 50% (MUGA)"
    assert canonical.rule(parser.parse_rule("weight < 150 kg (lb)")) == "weight < 150 kg (lb)"


def test_an_abbreviation_then_a_method_is_the_name_and_its_assessment():
    node = parser.parse_rule("left ventricular ejection fraction (LVEF) ≥ 50% by MUGA or echocardiography")
    assert canonical.rule(node) == \
        "left ventricular ejection fraction ≥ 50% (LVEF) assessed by MUGA or echocardiography"
    assert not [d for d in _warnings("left ventricular ejection fraction (LVEF) ≥ 50% by MUGA") if d.severity == "error"]
    # a method in parentheses that abbreviates nothing is still a second method
    with pytest.raises(elig.ProtocolError):
        parser.parse_rule("creatinine clearance (Cockcroft-Gault) ≥ 60 mL/min by MDRD")


def test_an_assessment_that_names_a_derivation_is_the_derivation():
    def subject(rule):
        text = f'protocol T\ninclusion\n  I1 "s"\n    {rule} within 7 days\n'
        return checker.check(parser.parse_protocol(text)).criteria[0].plan.subject
    assert subject("eGFR ≥ 60 mL/min/1.73 m2 calculated using CKD-EPI 2021").concept.name == "CKD-EPI eGFR"
    assert subject("eGFR ≥ 60 mL/min/1.73 m2 (CKD-EPI 2021)").concept.name == "CKD-EPI eGFR"
    assert subject("eGFR ≥ 60 mL/min/1.73 m2 assessed by laboratory report").concept.name == \
        "estimated glomerular filtration rate"  # not a derivation: kept, not checked


@pytest.mark.parametrize("short, full, yes", [
    ("MUGA", "multi-gated acquisition", True), ("LVEF", "left ventricular ejection fraction", True),
    ("ANC", "absolute neutrophil count", True), ("CKD-EPI", "Cockcroft-Gault", False),
    ("CG", "creatinine clearance", False), ("X", "x-ray", False)])
def test_what_counts_as_an_abbreviation(short, full, yes):
    assert parser.is_abbreviation(short, full) is yes


def test_a_specimen_word_before_a_measurement_names_the_measurement():
    assert not [d for d in _warnings("serum hemoglobin < 10 g/dL") if d.severity == "error"]
    assert [d.code for d in _warnings("blood pressure > 140 mmHg")] == ["E101"]  # 'pressure' is no concept


def _warnings(text, section="inclusion"):
    return [d for d in checker.diagnose_rule(parser.parse_rule(text), section=section)]


def test_the_vocabulary_decides_ratio_or_two_names():
    assert _warnings("PaO2/FiO2 ≤ 300 mmHg") == []  # a ratio: the quotient is compared
    (w,) = _warnings("AST/ALT ≤ 2.5 x ULN")
    assert w.code == "W210" and "each of AST and ALT" in w.message
    (w,) = _warnings("AST/ALT > 3 x ULN", section="exclusion")
    assert w.code == "W210" and "any of AST or ALT" in w.message


def test_and_between_names_is_each_and_warns_only_in_exclusions():
    assert _warnings("AST and ALT ≤ 3 x ULN") == []
    (w,) = _warnings("AST and ALT > 3 x ULN", section="exclusion")
    assert w.code == "W210" and "read as written" in w.message


def test_lost_superscript_is_read_with_a_warning():
    (w,) = _warnings("Platelets ≥ 100x109/L")
    assert w.code == "W211" and "100 x 10^9/L" in w.message


def test_abbreviation_of_another_concept_is_an_error():
    (e,) = _warnings("Absolute neutrophil count (PLT) ≥ 1.5 x 10^9/L")
    assert e.code == "E114" and "platelet count" in e.message


def test_second_threshold_without_condition_is_an_error():
    with pytest.raises(elig.ProtocolError) as exc:
        parser.parse_rule("ALT ≤ 2.5 x ULN, ≤ 5 x ULN")
    assert exc.value.diagnostics[0].code == "E007"


def _verdict(rule: str, observations=(), conditions=(), sex="female", section="inclusion"):
    text = f'protocol T\n{section}\n  C1 "s"\n    {rule}\n'
    checked = checker.check(parser.parse_protocol(text))
    patient = patient_from_data({
        "id": "p", "sex": sex, "birth_date": "1970-01-01",
        "observations": [dict(o, date="2024-03-10") for o in observations],
        "conditions": [{"concept": c, "onset": "2020-01-01", "status": "active"} for c in conditions],
    })
    return str(evaluate(checked, patient, AS_OF).criteria[0].outcome)


ALT = {"concept": "ALT", "unit": "U/L", "reference_range": {"high": 40, "low": 7}}


def test_shared_threshold_means_each_value():
    obs = [dict(ALT, value=30), {"concept": "AST", "value": 200, "unit": "U/L", "reference_range": {"high": 40}}]
    assert _verdict("AST and ALT ≤ 3 x ULN", obs) == "not met"
    assert _verdict("ALT or AST ≤ 3 x ULN", obs) == "not met"  # inclusion: each
    assert _verdict("ALT or AST > 3 x ULN", obs, section="exclusion") == "met"  # exclusion: either


def test_conditional_threshold_applies_to_the_patients_named():
    obs = [{"concept": "total bilirubin", "value": 2.0, "unit": "mg/dL", "reference_range": {"high": 1.0}}]
    rule = "total bilirubin ≤ 1.5 x ULN (≤ 3 x ULN for hepatitis B)"
    assert _verdict(rule, obs) == "not met"
    assert _verdict(rule, obs, conditions=["hepatitis B"]) == "met"
    low = [dict(obs[0], value=1.2)]
    assert _verdict(rule, low) == "met"


def test_normal_limits_use_the_reference_range():
    obs = [dict(ALT, value=5)]
    assert _verdict("ALT within normal limits", obs) == "not met"
    assert _verdict("ALT within normal limits", [dict(ALT, value=20)]) == "met"
    assert _verdict("ALT ≥ LLN", [{"concept": "ALT", "value": 20, "unit": "U/L"}]) == "unknown"


def test_score_lists():
    ecog = [{"concept": "ECOG performance status", "value": 2}]
    assert _verdict("ECOG performance status of 0 or 1", ecog) == "not met"
    assert _verdict("ECOG performance status of 0, 1 or 2", ecog) == "met"
    assert _verdict("ECOG performance status 0 or 2", [{"concept": "ECOG performance status", "value": 1}]) == "not met"


def test_derivation_named_after_a_measured_concept_selects_the_calculation():
    checked = checker.check(parser.parse_protocol(
        'protocol T\ninclusion\n  I1 "s"\n    eGFR ≥ 45 mL/min/1.73 m2 (CKD-EPI 2021)\n'))
    plan = checked.criteria[0].plan
    assert plan.subject.concept.name == "CKD-EPI eGFR"


def test_elig_parse_prints_the_reading_and_the_warning():
    res = CliRunner().invoke(main, ["parse", "SGOT and/or SGPT no greater than 3 times ULN"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0] == "SGOT and/or SGPT ≤ 3 x ULN"
    assert "W210" in res.output


_NAMES = st.sampled_from(["AST", "ALT", "serum creatinine", "total bilirubin", "ANC"])
_CMP = st.sampled_from(["≤", "<", "≥", ">"])
_FACTOR = st.sampled_from(["1.5", "2", "2.5", "3", "5"])


@settings(max_examples=60, deadline=None)
@given(_NAMES, _NAMES, st.sampled_from(["and", "or", "and/or"]), _CMP, _FACTOR, _FACTOR,
       st.sampled_from(["if", "for", "in patients with"]))
def test_property_shared_and_conditional_thresholds_round_trip(a, b, joiner, cmp, f1, f2, cond_word):
    text = f"{a} {joiner} {b} {cmp} {f1} x ULN ({cmp} {f2} x ULN {cond_word} hepatitis B)"
    node = parser.parse_rule(text)
    printed = canonical.rule(node)
    assert parser.parse_rule(printed) == node
    assert canonical.rule(parser.parse_rule(printed)) == printed


_WRAPPERS = st.sampled_from(["Patients with a", "Subjects must have an", "Participants who have", "Have a", "A",
                             "Patients who must have", "The"])
_MEASURES = st.sampled_from([("serum creatinine", "mg/dL"), ("haemoglobin", "g/dL"), ("BMI", "kg/m2"),
                             ("platelet count", "10^9/L")])


@settings(max_examples=60, deadline=None)
@given(_WRAPPERS, _MEASURES, _CMP, st.decimals(min_value=1, max_value=500, places=1).map(str))
def test_property_words_before_a_name_read_as_the_name_alone(wrapper, measure, cmp, number):
    name, unit = measure
    bare = parser.parse_rule(f"{name} {cmp} {number} {unit}")
    wrapped = parser.parse_rule(f"{wrapper} {name} {cmp} {number} {unit}")
    assert canonical.rule(wrapped) == canonical.rule(bare)
    assert checker.diagnose_rule(wrapped) == checker.diagnose_rule(bare) or not any(
        d.severity == "error" for d in checker.diagnose_rule(wrapped))


@settings(max_examples=60, deadline=None)
@given(_MEASURES, st.integers(min_value=1, max_value=400), st.integers(min_value=1, max_value=400),
       st.sampled_from([("＜", "<"), ("＞", ">"), ("＜＝", "≤"), ("＞＝", "≥"), ("greater than and equal to", "≥"),
                        ("less than/equal to", "≤")]))
def test_property_typed_comparators_ranges_and_units_read_as_the_canonical_ones(measure, a, b, cmp):
    name, unit = measure
    typed, symbol = cmp
    assert parser.parse_rule(f"{name} {typed} {a} {unit}") == parser.parse_rule(f"{name} {symbol} {a} {unit}")
    low, high = min(a, b), max(a, b) + 1
    assert parser.parse_rule(f"{name} {low}~{high} {unit}") == parser.parse_rule(f"{name} {low}-{high} {unit}")
    if "/" in unit:
        spaced = unit.replace("/", " / ")
        assert canonical.rule(parser.parse_rule(f"{name} {symbol} {a} {spaced}")) == f"{name} {symbol} {a} {unit}"
