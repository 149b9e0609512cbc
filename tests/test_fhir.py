"""The FHIR R4 reader (elig.records.fhir): Synthea bundles and small hand-made bundles."""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
from pathlib import Path

import pint
import pytest

from elig.records.dates import PartialDate
from elig.diagnostics import DataError
from elig.records.fhir import patient_from_fhir, read_fhir
from elig.records.loader import load_patient, patient_from_data
from elig.records.patient import Patient
from elig.terminology.codes import Coding
from elig.terminology.ucum import parse_ucum
from elig.terminology.units import conversion_factor_q

DATA = Path(__file__).parent / "data" / "fhir"
from conftest import SYNTHEA_DIR as SYNTHEA  # noqa: E402
SYNTHEA_FILES = sorted(SYNTHEA.glob("*.json")) if SYNTHEA.is_dir() else []
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"

needs_synthea = pytest.mark.skipif(not SYNTHEA_FILES, reason=f"Synthea bundles not found in {SYNTHEA}")


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def read(name: str) -> Patient:
    return patient_from_fhir(load(name), name)


def with_code(observations, code: str):
    return [o for o in observations if any(c.code == code for c in o.codes)]


def issue_texts(patient: Patient) -> list[str]:
    return [f"{i.location}: {i.message}" for i in patient.issues]


def instant(text: str) -> PartialDate:
    return PartialDate.parse(text)


# ---------------------------------------------------------------- Synthea
@needs_synthea
@pytest.mark.parametrize("path", SYNTHEA_FILES, ids=lambda p: p.name.split("_")[0] + "_" + p.name.split("_")[1])
def test_synthea_bundles_load_cleanly(path):
    data = json.loads(path.read_text(encoding="utf-8"))
    reading = read_fhir(data, str(path))
    p = reading.patient
    assert p.format == "fhir"
    assert p.sex in ("male", "female")
    assert p.birth_date is not None and p.birth_date.is_complete
    assert p.observations and p.conditions
    # Real Synthea output is well formed; the only issues are results that contradict each other.
    assert all("at the same time" in i.message for i in p.issues), [str(i) for i in p.issues]
    assert all(o.source.file == str(path) for o in p.observations)
    assert all(o.source.record.startswith("Observation/") for o in p.observations)
    # Every entry is either read or counted as skipped.
    assert sum(reading.read.values()) + sum(reading.skipped.values()) == reading.entries == len(data["entry"])
    assert reading.skipped.get("Encounter", 0) > 0 and "Observation" not in reading.skipped
    # Every unit Synthea sends is UCUM elig can read.
    for o in p.observations:
        if o.unit is not None:
            parse_ucum(o.unit)


@needs_synthea
def test_synthea_dispatch_through_load_patient():
    path = next(p for p in SYNTHEA_FILES if p.name.startswith("Tom_Goodwin"))
    p = load_patient(path)
    assert p.format == "fhir" and p.name == "Tom Goodwin"


@needs_synthea
def test_tom_goodwin_pinned_values():
    path = next(p for p in SYNTHEA_FILES if p.name.startswith("Tom_Goodwin"))
    p = patient_from_fhir(json.loads(path.read_text(encoding="utf-8")), str(path))
    assert p.id == "da2c7b0a-791a-4b8f-9a30-dc3d8cf1ec75"
    assert p.sex == "male"
    assert p.birth_date == PartialDate(1968, 4, 30)

    # Creatinine is coded 38483-4 (blood), never 2160-0, in Synthea.
    creatinine = with_code(p.observations, "38483-4")
    assert len(creatinine) == 4 and not with_code(p.observations, "2160-0")
    newest_date = max(o.date.sort_key() for o in creatinine)
    newest = [o for o in creatinine if o.date.sort_key() == newest_date]
    # The file holds two creatinine results at the same instant (basic and comprehensive panels):
    # both are kept, in file order, for the evaluator to judge.
    assert [o.date for o in newest] == [instant("2020-05-12T23:55:41+00:00")] * 2
    assert [(o.value, o.unit) for o in newest] == [(1.0606523555763823, "mg/dL"), (3.416782423247231, "mg/dL")]
    assert [o.source.record for o in newest] == ["Observation/0f0b6911-a799-4afa-b4fd-ed1a24d69fb3",
                                                 "Observation/433b061e-2ee6-42f7-a596-ed1c7948068c"]
    assert newest[0].codes == (Coding(LOINC, "38483-4", "Creatinine"),)
    conflict = [i for i in p.issues if "LOINC 38483-4" in i.message]
    assert [(i.location, i.message) for i in conflict] == [(
        "entry[163].resource",
        "Observation/0f0b6911-a799-4afa-b4fd-ed1a24d69fb3 and Observation/433b061e-2ee6-42f7-a596-ed1c7948068c "
        "give LOINC 38483-4 at the same time (2020-05-12T23:55) with different values (1.06065 mg/dL and "
        "3.41678 mg/dL)")]
    assert len(p.issues) == 8  # eight analytes of the two metabolic panels of 2020-05-12 disagree

    weights = with_code(p.observations, "29463-7")
    last = max(weights, key=lambda o: o.date.sort_key())
    assert (last.value, last.unit, last.date) == (86.78064727443127, "kg", instant("2020-05-12T23:55:41+00:00"))
    heights = with_code(p.observations, "8302-2")
    assert {(o.value, o.unit) for o in heights} == {(177.02079933771049, "cm")}

    # Blood pressure panels become one observation per component.
    systolic = with_code(p.observations, "8480-6")
    assert systolic and all(".component[" in o.source.record and o.unit == "mm[Hg]" for o in systolic)
    assert not with_code(p.observations, "55284-4")  # the panel itself carries no value

    # eGFR here is sent in mL/min (not mL/min/{1.73_m2}): kept exactly as sent.
    egfr = with_code(p.observations, "33914-3")
    assert [(o.value, o.unit) for o in egfr] == [(72.82881062364004, "mL/min")]

    hyperlipidemia = [c for c in p.conditions if Coding(SNOMED, "55822004", "Hyperlipidemia") in c.codes]
    assert len(hyperlipidemia) == 1
    h = hyperlipidemia[0]
    assert (h.clinical_status, h.verification_status, h.onset) == (
        "active", "confirmed", instant("2020-05-12T23:55:41+00:00"))
    (med,) = p.medications
    assert med.codes == (Coding(RXNORM, "316672", "Simvistatin 10 MG"),)
    assert (med.status, med.start, med.end) == ("active", instant("2020-06-02T23:55:41+00:00"), None)
    assert med.source.record == "MedicationRequest/7f131723-791a-4faa-9286-22c51e332610"


@needs_synthea
def test_egfr_units_in_synthea_differ_and_are_not_interchangeable():
    path = next(p for p in SYNTHEA_FILES if p.name.startswith("Alfreda_Wyman"))
    p = patient_from_fhir(json.loads(path.read_text(encoding="utf-8")), str(path))
    egfr = with_code(p.observations, "33914-3")
    assert egfr and {o.unit for o in egfr} == {"mL/min/{1.73_m2}"}
    with pytest.raises(pint.DimensionalityError):
        conversion_factor_q(parse_ucum(egfr[0].unit), parse_ucum("mL/min"))


@needs_synthea
def test_adolescent_without_creatinine():
    path = next(p for p in SYNTHEA_FILES if p.name.startswith("Tyrell_Kuphal"))
    p = patient_from_fhir(json.loads(path.read_text(encoding="utf-8")), str(path))
    assert not with_code(p.observations, "38483-4") and not with_code(p.observations, "2160-0")
    assert p.birth_date == PartialDate(2006, 2, 13)
    temperatures = [o for o in p.observations if o.unit == "Cel"]
    assert temperatures  # body temperature in UCUM Cel


# ---------------------------------------------------------------- hand-made bundles
def test_blood_pressure_panel_components():
    p = read("bp_panel.json")
    assert (p.id, p.name, p.sex, p.birth_date) == ("bp-patient", "Ada May Lovelace", "female",
                                                    PartialDate(1961, 7, 4))
    assert p.issues == ()
    systolic, diastolic = p.observations  # the panel has no value; the component without one is left out
    assert systolic.codes == (Coding(LOINC, "8480-6", "Systolic blood pressure"),)
    assert (systolic.value, systolic.unit) == (142.0, "mm[Hg]")
    assert systolic.source.record == "Observation/bp-1.component[0]"
    assert systolic.source.file == "bp_panel.json"
    # The parent's effectivePeriod.start, converted to UTC
    assert systolic.date == diastolic.date == PartialDate(2024, 2, 10, dt.time(8, 30))
    assert diastolic.source.record == "Observation/bp-1.component[1]"
    assert (diastolic.value, diastolic.reference_low, diastolic.reference_high, diastolic.reference_unit) == (
        91.0, 60.0, 80.0, "mm[Hg]")
    assert systolic.status == "final"


def test_refuted_and_entered_in_error_are_ignored_with_issues():
    reading = read_fhir(load("ignored.json"), "ignored.json")
    p = reading.patient
    assert [o.source.record for o in p.observations] == ["Observation/crea-ok"]
    assert [c.source.record for c in p.conditions] == ["Condition/copd"]
    assert p.conditions[0].onset == PartialDate(2015, 3)
    assert p.procedures == () and p.medications == ()
    texts = issue_texts(p)
    assert texts == [
        "entry[1].resource.verificationStatus: Condition/mi-refuted was ignored: "
        "its verification status is refuted (the diagnosis was ruled out)",
        "entry[2].resource.verificationStatus: Condition/stroke-error was ignored: "
        "its verification status is entered-in-error",
        "entry[4].resource.status: Observation/crea-error was ignored: it was entered in error (status entered-in-error)",
        "entry[5].resource.status: Observation/crea-cancelled was ignored: it was cancelled (status cancelled)",
        "entry[7].resource.status: Procedure/bronch-not-done was ignored: it was not done (status not-done)",
        "entry[8].resource.status: MedicationStatement/warfarin-error was ignored: "
        "it was entered in error (status entered-in-error)",
        "entry[9].resource.status: MedicationStatement/apixaban-not-taken was ignored: "
        "it records that the medication was not taken (status not-taken)",
    ]
    assert all(i.file == "ignored.json" for i in p.issues)
    assert reading.skipped == {"DELETE entry without resource": 1}


def test_observation_missing_its_unit_and_other_value_problems():
    p = read("missing_unit.json")
    assert p.sex is None  # gender "unknown"
    assert p.birth_date == PartialDate(1970)
    by_record = {o.source.record: o for o in p.observations}

    anc = by_record["Observation/anc-no-unit"]
    assert (anc.value, anc.unit, anc.problem) == (2.4, None, None)  # the evaluator says "unit-less"

    inr = by_record["Observation/inr-unit-only"]
    assert (inr.value, inr.unit) == (1.1, "{INR}")  # no code: the human-readable unit is kept

    plt = by_record["Observation/plt-text-value"]
    assert plt.value is None and plt.value_text == "180 x10^9/L"
    assert plt.problem == "value '180 x10^9/L' is not a number"

    wbc = by_record["Observation/wbc-bad-date"]
    assert (wbc.value, wbc.unit, wbc.date) == (6.1, "10*3/uL", None)

    bili = by_record["Observation/bili-censored"]
    assert bili.value is None and bili.value_text == "<0.2" and "censored" in bili.problem

    # No id: the fullUrl uuid names it. Only text, no code; date from "issued".
    hb = by_record["Observation/22222222-0000-4000-8000-000000000007"]
    assert hb.codes == () and hb.value == 13.2 and hb.date == PartialDate(2024, 3, 2, dt.time(8, 0))

    locations = [i.location for i in p.issues]
    assert locations == [
        "entry[2].resource.valueQuantity.value",
        "entry[4].resource.effectiveDateTime",
        "entry[6].resource.code",
        "entry[7]",
        "entry[8].resource",
        "entry[9]",
    ]
    texts = issue_texts(p)
    assert "cannot read date '2024-02-30'" in texts[1]
    assert "has no code (only the text 'Hemoglobin')" in texts[2]
    assert "an entry must be an object" in texts[3]
    assert "no resourceType" in texts[4]


def test_medication_request_referencing_medication_by_urn_uuid():
    p = read("medication_reference.json")
    meds = {m.source.record: m for m in p.medications}
    warfarin = meds["MedicationRequest/rx-warfarin"]
    assert warfarin.codes == (Coding(RXNORM, "855332", "Warfarin Sodium 5 MG Oral Tablet"),
                              Coding("http://www.whocc.no/atc", "B01AA03", "warfarin"))
    assert (warfarin.start, warfarin.end, warfarin.status) == (PartialDate(2024, 1, 10), PartialDate(2024, 7, 10),
                                                               "active")


def test_relative_and_contained_medication_references():
    reading = read_fhir(load("medication_reference.json"), "medication_reference.json")
    p = reading.patient
    meds = {m.source.record: m for m in p.medications}
    apixaban = meds["MedicationStatement/ms-1"]
    assert apixaban.codes == (Coding(RXNORM, "1364430", "apixaban"),)
    assert (apixaban.start, apixaban.end) == (PartialDate(2023, 6, 1), PartialDate(2024, 6, 1))
    pred = meds["MedicationStatement/ms-contained"]
    assert [c.code for c in pred.codes] == ["H02AB06"]
    assert (pred.start, pred.end, pred.status) == (PartialDate(2023, 12, 1), None, "completed")
    missing = meds["MedicationRequest/rx-missing"]
    assert missing.codes == ()
    (issue,) = p.issues
    assert issue.location == "entry[6].resource.medicationReference"
    assert "'Medication/not-here' is not in the bundle" in issue.message
    assert reading.skipped == {"Medication": 2}  # read through references, not as facts of their own


def test_searchset_bundle():
    reading = read_fhir(load("searchset.json"), "searchset.json")
    p = reading.patient
    # The Patient comes last (search mode "include"); it is found wherever it is.
    assert (p.id, p.name, p.sex, p.birth_date) == ("ss-1", "Sam Search", None, PartialDate(1990, 5))
    weight, height, covid, flu = p.observations
    assert (weight.value, weight.unit, weight.date) == (165.0, "[lb_av]", PartialDate(2024, 1, 5, dt.time(15, 0)))
    assert conversion_factor_q(parse_ucum(weight.unit), parse_ucum("kg")) * 165 == pytest.approx(74.8427, rel=1e-5)
    assert (height.value, height.unit, height.status) == (68.0, "[in_i]", "amended")
    assert (covid.result, covid.value_text, covid.value) == ("positive", "Detected", None)
    assert (flu.result, flu.value_text) == ("negative", "Not detected")
    assert p.issues == ()
    assert reading.skipped == {"OperationOutcome": 1}


def test_creatinine_molar_and_mass_twins():
    p = read("creatinine_units.json")
    molar, mass, egfr = p.observations
    assert molar.codes == (Coding(LOINC, "14682-9", "Creatinine [Moles/volume] in Serum or Plasma"),)
    assert (molar.value, molar.unit) == (88.4, "umol/L")  # the UCUM code, not the display "µmol/L"
    assert (molar.reference_low, molar.reference_high, molar.reference_unit) == (62.0, 106.0, "umol/L")
    assert (mass.value, mass.unit) == (1.0, "mg/dL")
    assert molar.date == mass.date == PartialDate(2024, 3, 10, dt.time(7, 45))
    factor = conversion_factor_q(parse_ucum(molar.unit), parse_ucum(mass.unit), 113.12)
    assert molar.value * factor == pytest.approx(mass.value, rel=1e-4)
    assert egfr.unit == "mL/min/{1.73_m2}"
    with pytest.raises(pint.DimensionalityError):
        conversion_factor_q(parse_ucum(egfr.unit), parse_ucum("mL/min"))


def test_conditions_grades_onsets_and_procedures():
    p = read("conditions_graded.json")
    c = {x.source.record: x for x in p.conditions}
    assert c["Condition/pneumonitis"].grade == 2
    assert c["Condition/pneumonitis"].onset == PartialDate(2024, 1, 20)
    assert c["Condition/heart-failure"].grade == 3  # "NYHA class III"
    assert c["Condition/heart-failure"].onset == PartialDate(2021, 6)  # onsetString that is a date
    asthma = c["Condition/asthma"]
    assert (asthma.grade, asthma.onset, asthma.abatement, asthma.clinical_status) == (
        None, None, PartialDate(2002, 6, 30), "resolved")
    (issue,) = p.issues
    assert issue.location == "entry[3].resource.onsetString" and "'in childhood' is not a date" in issue.message
    rt, ct = p.procedures
    assert (rt.start, rt.end, rt.status) == (PartialDate(2023, 10, 2), PartialDate(2023, 11, 17), "completed")
    assert ct.start == ct.end == PartialDate(2024, 1, 21, dt.time(14, 0))


def test_bare_patient_resource_and_dispatch():
    data = load("patient_only.json")
    p = patient_from_data(data, "patient_only.json")
    assert (p.id, p.name, p.sex, p.birth_date, p.format) == ("solo", "Grace Hopper", "female",
                                                             PartialDate(1984, 2, 29), "fhir")
    assert p.observations == () and p.issues == ()


def test_top_level_that_is_not_a_bundle_or_patient_raises_data_error():
    with pytest.raises(DataError, match="not a FHIR Bundle or Patient"):
        patient_from_fhir({"resourceType": "Observation", "id": "x"}, "obs.json")
    with pytest.raises(DataError):
        patient_from_fhir([], "list.json")  # type: ignore[arg-type]


def test_multiple_patients_first_is_read_and_others_resources_ignored():
    bundle = load("bp_panel.json")
    other = {"fullUrl": "urn:uuid:other", "resource": {"resourceType": "Patient", "id": "other", "gender": "male"}}
    obs = copy.deepcopy(bundle["entry"][1])
    obs["fullUrl"] = "urn:uuid:other-obs"
    obs["resource"]["id"] = "other-obs"
    obs["resource"]["subject"] = {"reference": "Patient/other"}
    bundle["entry"] += [other, obs]
    p = patient_from_fhir(bundle, "two.json")
    assert p.id == "bp-patient"
    assert {o.source.record.split(".")[0] for o in p.observations} == {"Observation/bp-1"}
    messages = [i.message for i in p.issues]
    assert any("2 Patient resources" in m for m in messages)
    assert any("about another patient (Patient/other)" in m for m in messages)


def test_bundle_without_patient_or_type():
    bundle = load("creatinine_units.json")
    del bundle["type"]
    bundle["entry"] = bundle["entry"][1:]
    p = patient_from_fhir(bundle, "nopatient.json")
    assert p.birth_date is None and p.sex is None and len(p.observations) == 3
    assert [i.location for i in p.issues] == ["type", "entry"]


# ---------------------------------------------------------------- robustness
JUNK = [None, 0, -1.5, True, "", "junk", [], {}, [None], {"x": 1}, float("nan")]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _replace(node, path, value):
    node = copy.deepcopy(node)
    target = node
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return node


@pytest.mark.parametrize("name", ["bp_panel.json", "ignored.json", "medication_reference.json", "searchset.json",
                                  "conditions_graded.json", "missing_unit.json", "creatinine_units.json",
                                  "patient_only.json"])
def test_any_field_replaced_by_junk_never_raises(name):
    bundle = load(name)
    checked = 0
    for path in _paths(bundle):
        if path in ((), ("resourceType",)):  # a top level that is not a Bundle/Patient is a DataError by design
            continue
        for junk in JUNK:
            mutated = _replace(bundle, path, junk)
            p = patient_from_fhir(mutated, name)
            assert isinstance(p, Patient)
            checked += 1
    assert checked > 50
