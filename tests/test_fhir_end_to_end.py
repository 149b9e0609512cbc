"""FHIR bundles through the whole pipeline: Synthea data against the seed trials, and format twins."""

from __future__ import annotations

import os
from pathlib import Path

import attrs
import pytest

import elig

from conftest import ROOT

from conftest import SYNTHEA_DIR as SYNTHEA  # noqa: E402
BUNDLES = sorted(SYNTHEA.glob("*.json")) if SYNTHEA.is_dir() else []
PROTOCOLS = sorted((ROOT / "protocols").glob("*.elig"))


@pytest.fixture(scope="module")
def protocols():
    return {p.stem: elig.load_protocol(p) for p in PROTOCOLS}


def _sources(e):
    out = [v.source for v in e.values if v.source]
    if e.derived:
        out += [v.source for v in e.derived.inputs if v.source]
    for c in e.children:
        out += _sources(c)
    return out


@pytest.mark.skipif(not BUNDLES, reason=f"Synthea bundles not found in {SYNTHEA}")
@pytest.mark.parametrize("bundle", BUNDLES, ids=lambda p: p.name.split("_")[0])
def test_synthea_bundles_evaluate_against_every_seed_trial(protocols, bundle):
    patient = elig.load_patient(bundle)
    assert patient.format == "fhir"
    # Evaluate the day after the newest observation, so look-back windows find the data.
    newest = max(o.date.earliest() for o in patient.observations if o.date)
    as_of = newest.fromordinal(newest.toordinal() + 1)
    for name, protocol in protocols.items():
        result = elig.evaluate(protocol, patient, as_of=as_of)
        assert result.verdict in set(elig.Verdict), name
        assert len(result.criteria) == len(protocol.criteria)
        if name == "NCT06021067":
            cited = [s for c in result.criteria for s in _sources(c.explanation)]
            assert any(s.startswith("Observation/") for s in cited)
            assert all(s.startswith(("Observation/", "Condition/", "Procedure/", "Medication", "birth date",
                                     "patient record")) for s in cited), cited


@pytest.mark.skipif(not BUNDLES, reason=f"Synthea bundles not found in {SYNTHEA}")
def test_alfreda_wyman_clearance_is_pinned(protocols):
    bundle = next(b for b in BUNDLES if b.name.startswith("Alfreda_Wyman"))
    result = elig.evaluate(protocols["NCT06021067"], bundle, as_of="2020-12-03")
    crcl = result.criterion("I4.6").explanation.derived
    values = {v.concept: v for v in crcl.inputs}
    assert values["serum creatinine"].value == 0.9396542541203411
    assert values["serum creatinine"].unit == "mg/dL"
    assert values["serum creatinine"].date == "2020-12-01T20:43"
    assert values["serum creatinine"].source.startswith("Observation/")
    assert values["body weight"].value == 79.62835971208244
    assert values["age"].value == 40  # born 1980-10-28
    assert values["sex"].text == "female"
    expected = (140 - 40) * 79.62835971208244 / (72 * 0.9396542541203411) * 0.85
    assert crcl.value == pytest.approx(expected, rel=1e-12)
    assert crcl.value == pytest.approx(100.04, abs=0.01)
    assert result.criterion("I4.6").outcome is elig.Outcome.MET


def test_fhir_twins_match_the_native_record(protocols):
    native = elig.load_patient(ROOT / "examples" / "patients" / "demo_patient.yaml")
    native = attrs.evolve(native, attestations=())  # a FHIR bundle carries no attestations
    protocol = protocols["NCT06021067"]
    expected = [(c.id, c.outcome) for c in elig.evaluate(protocol, native, "2024-03-15").criteria]
    for kind in ("umol", "mgdl"):
        twin = ROOT / "examples" / "fhir" / f"demo_patient_creatinine_{kind}.json"
        result = elig.evaluate(protocol, twin, "2024-03-15")
        assert [(c.id, c.outcome) for c in result.criteria] == expected, kind
        crcl = result.criterion("I4.6").explanation.derived
        assert crcl.value == pytest.approx(70.03, abs=0.1)


def test_fhir_observation_with_an_unreadable_unit_is_flagged_and_the_rest_used():
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "id": "p", "gender": "female"}},
        {"fullUrl": "urn:uuid:o1", "resource": {
            "resourceType": "Observation", "id": "o1", "status": "final", "effectiveDateTime": "2024-03-14",
            "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]},
            "valueQuantity": {"value": 12, "system": "http://unitsofmeasure.org", "code": "g/dL/zz[z]"}}},
        {"fullUrl": "urn:uuid:o2", "resource": {
            "resourceType": "Observation", "id": "o2", "status": "final", "effectiveDateTime": "2024-03-14",
            "code": {"coding": [{"system": "http://loinc.org", "code": "751-8"}]},
            "valueQuantity": {"value": 2.0, "system": "http://unitsofmeasure.org", "code": "10*9/L"}}},
    ]}
    patient = elig.patient_from_data(bundle, "b.json")
    assert any("unreadable unit" in i.message and i.location.endswith("valueQuantity.code") for i in patient.issues)
    protocol = elig.parse_protocol_text("protocol U\ninclusion\n  I1\n    HGB ≥ 80 g/L\n  I2\n    ANC ≥ 1.5 x 10^9/L\n")
    r = elig.evaluate(protocol, patient, "2024-03-15")
    assert r.criterion("I1").outcome is elig.Outcome.UNKNOWN
    assert r.criterion("I2").outcome is elig.Outcome.MET
    assert any("Observation/o1" in i for i in r.data_issues)


def test_a_local_code_whose_display_names_a_concept_is_reported_not_matched():
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:p", "resource": {"resourceType": "Patient", "id": "p", "gender": "male"}},
        {"fullUrl": "urn:uuid:c", "resource": {
            "resourceType": "Condition", "id": "c", "onsetDateTime": "2024-02-01",
            "code": {"coding": [{"system": "http://example.org/local", "code": "X1",
                                 "display": "Myocardial infarction (disorder)"}]}}},
    ]}
    protocol = elig.parse_protocol_text("protocol L\nexclusion\n  E1\n    myocardial infarction within 6 months\n")
    r = elig.evaluate(protocol, elig.patient_from_data(bundle, "b.json"), "2024-03-15")
    assert r.criterion("E1").outcome is elig.Outcome.NOT_MET  # display text never decides
    (note,) = [i for i in r.data_issues if "Condition/c" in i]
    assert "names the concept 'myocardial infarction'" in note and "not counted" in note
