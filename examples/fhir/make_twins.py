"""Write FHIR R4 twins of examples/patients/demo_patient.yaml (run from the repository root).

Two transaction Bundles that say what the native record says, coded as real
systems code it (LOINC, UCUM, SNOMED CT, ICD-10-PCS): one sends creatinine in
µmol/L (LOINC 14682-9), the other in mg/dL (LOINC 2160-0). Attestations have no
place in these bundles, so tests compare them with the native record minus its
attestations. The output is committed; rerun this script only to change it.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"

OBS = [  # code, display, value, UCUM unit, reference high
    ("29463-7", "Body weight", 72, "kg", None),
    ("8302-2", "Body height", 175, "cm", None),
    ("89247-1", "ECOG Performance Status score", 1, "{score}", None),
    ("751-8", "Neutrophils [#/volume] in Blood by Automated count", 2.1, "10*9/L", None),
    ("777-3", "Platelets [#/volume] in Blood by Automated count", 182, "10*3/uL", None),
    ("718-7", "Hemoglobin [Mass/volume] in Blood", 12.4, "g/dL", None),
    ("14631-6", "Bilirubin.total [Moles/volume] in Serum or Plasma", 14, "umol/L", 21),
    ("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", 35, "U/L", 40),
    ("1920-8", "Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma", 28, "U/L", 40),
    ("6301-6", "INR in Platelet poor plasma by Coagulation assay", 1.0, "{INR}", None),
    ("5902-2", "Prothrombin time (PT)", 12.1, "s", 13.5),
]
CREATININE = {
    "umol": ("14682-9", "Creatinine [Moles/volume] in Serum or Plasma", 97.2, "umol/L"),
    "mgdl": ("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", 1.1, "mg/dL"),
}


def _uuid(seed: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"elig-demo/{seed}"))


def observation(pid, code, display, value, unit, ref_high, when):
    oid = _uuid(code)
    res = {
        "resourceType": "Observation", "id": oid, "status": "final",
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "subject": {"reference": f"urn:uuid:{pid}"}, "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }
    if ref_high is not None:
        res["referenceRange"] = [{"high": {"value": ref_high, "unit": unit, "system": UCUM, "code": unit}}]
    return {"fullUrl": f"urn:uuid:{oid}", "resource": res, "request": {"method": "POST", "url": "Observation"}}


def bundle(creatinine: str) -> dict:
    pid = _uuid("patient")
    entries = [{"fullUrl": f"urn:uuid:{pid}", "resource": {
        "resourceType": "Patient", "id": pid, "gender": "male", "birthDate": "1960-05-01",
        "name": [{"given": ["Demo"], "family": "Patient"}]}, "request": {"method": "POST", "url": "Patient"}}]
    for code, display, value, unit, ref in OBS + [CREATININE[creatinine] + (None,)]:
        entries.append(observation(pid, code, display, value, unit, ref, "2024-03-12T08:00:00Z"))
    lvef = observation(pid, "10230-1", "Left ventricular Ejection fraction", 60, "%", None, "2024-03-01T10:00:00Z")
    entries.append(lvef)
    cid = _uuid("pneumonitis")
    entries.append({"fullUrl": f"urn:uuid:{cid}", "resource": {
        "resourceType": "Condition", "id": cid,
        "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                       "code": "active"}]},
        "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                           "code": "confirmed"}]},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "84004001",
                             "display": "Radiation pneumonitis"}]},
        "stage": [{"summary": {"text": "CTCAE grade 2"}}],
        "subject": {"reference": f"urn:uuid:{pid}"}, "onsetDateTime": "2024-02-10"},
        "request": {"method": "POST", "url": "Condition"}})
    rid = _uuid("radiotherapy")
    entries.append({"fullUrl": f"urn:uuid:{rid}", "resource": {
        "resourceType": "Procedure", "id": rid, "status": "completed",
        "code": {"coding": [{"system": "http://www.cms.gov/Medicare/Coding/ICD10", "code": "DB021ZZ",
                             "display": "Beam Radiation of Lung using Photons 1 - 10 MeV"}]},
        "subject": {"reference": f"urn:uuid:{pid}"},
        "performedPeriod": {"start": "2023-10-02", "end": "2023-11-10"}},
        "request": {"method": "POST", "url": "Procedure"}})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    for kind in CREATININE:
        (here / f"demo_patient_creatinine_{kind}.json").write_text(json.dumps(bundle(kind), indent=1) + "\n")
