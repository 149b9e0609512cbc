"""A FHIR result coded with one of the LOINC codes checked for issue 9 reaches its concept, in
the unit it was sent, and is compared after conversion by the declared molar mass."""

from __future__ import annotations

import pytest

import elig
from elig.records.fhir import patient_from_fhir

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"


def _bundle(*observations):
    entries = [{"fullUrl": "urn:uuid:p1", "resource": {"resourceType": "Patient", "id": "p1", "gender": "female",
                                                        "birthDate": "1960-05-01"}}]
    for i, (code, display, value, unit) in enumerate(observations):
        entries.append({"fullUrl": f"urn:uuid:o{i}", "resource": {
            "resourceType": "Observation", "id": f"o{i}", "status": "final",
            "code": {"coding": [{"system": LOINC, "code": code, "display": display}]},
            "subject": {"reference": "urn:uuid:p1"}, "effectiveDateTime": "2024-03-10T08:00:00Z",
            "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit}}})
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}


PROTOCOL = """protocol X
inclusion
  I1
    magnesium ≥ 1.8 mg/dL within 30 days
  I2
    troponin ≤ 1 x ULN within 30 days
"""


@pytest.mark.parametrize(("mmol", "outcome"), [(0.85, elig.Outcome.MET), (0.6, elig.Outcome.NOT_MET)])
def test_a_magnesium_sent_in_mmol_per_litre_is_compared_in_mg_per_dl(mmol, outcome):
    patient = patient_from_fhir(_bundle(("2601-3", "Magnesium [Moles/volume] in Serum or Plasma", mmol, "mmol/L")),
                                "bundle")
    result = elig.evaluate(elig.parse_protocol_text(PROTOCOL), patient, "2024-03-15")
    assert result.criterion("I1").outcome == outcome  # 0.85 mmol/L = 2.07 mg/dL; 0.6 mmol/L = 1.46 mg/dL


def test_a_troponin_t_result_answers_troponin_and_an_uncoded_one_is_not_found():
    protocol = elig.parse_protocol_text(PROTOCOL)
    coded = patient_from_fhir(_bundle(("67151-1", "Troponin T.cardiac [Mass/volume] in Serum or Plasma by High "
                                                  "sensitivity method", 9, "ng/L")), "bundle")
    found = elig.evaluate(protocol, coded, "2024-03-15").criterion("I2")
    # Found through the code; still unknown: 'troponin' has no default ULN (assays differ) and the
    # result carries no reference range of its own.
    assert found.outcome == elig.Outcome.UNKNOWN
    assert "no reference range" in found.explanation.summary
    other = patient_from_fhir(_bundle(("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum "
                                                 "or Plasma", 9, "U/L")), "bundle")
    missing = elig.evaluate(protocol, other, "2024-03-15").criterion("I2")
    assert missing.explanation.summary == "unknown: no troponin recorded"
