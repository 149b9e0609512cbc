"""FHIR bundles made awkward on purpose, for the differential tests of the SQL-on-FHIR route.

Each mutation does to one resource what real records do: statuses that void a record, dates
partial, impossible or given as text, values of every type (censored, without a unit, with a
unit elig cannot read, coded, absent), codings without a system, components, reference ranges
without a number, refuted or resolved conditions, onsets given as an age, body sites with and
without laterality, procedures not done, medications not to be given or not in the bundle,
consents and questionnaire answers of every status; and to the bundle: two results at one
instant, a second patient, a contained medication, a deletion entry, no bundle type.
JSON types that FHIR does not allow where the views read an object (a Period given as text)
are left out: no ViewDefinition can tell them apart (docs/views.md).
"""

from __future__ import annotations

import copy
import random

MUTATIONS = []


def mut(types):
    def deco(f):
        MUTATIONS.append((types, f)); return f
    return deco

@mut({"Observation", "Procedure", "MedicationStatement", "MedicationRequest"})
def bad_status(r, rng):
    r["status"] = rng.choice(["entered-in-error", "cancelled", "not-done", "not-taken", "final", "amended", 7])

@mut({"Observation"})
def obs_date(r, rng):
    for k in [k for k in r if k.startswith("effective")]: r.pop(k)
    c = rng.randrange(7)
    if c == 0: r["effectiveDateTime"] = rng.choice(["2023-02", "2021", "2023-02-30", "yesterday", "2022-05-04T10:00:00Z", 2022])
    elif c == 1: r["effectivePeriod"] = rng.choice([{"start": "2022-01-01"}, {"end": "2022-03"}, {}])
    elif c == 2: r["effectiveInstant"] = "2022-05-04T10:00:00.000Z"
    elif c == 3: r["issued"] = rng.choice(["2022-05-04T10:00:00Z", "bad"])

@mut({"Observation"})
def obs_value(r, rng):
    for k in [k for k in r if k.startswith("value") or k == "dataAbsentReason"]: r.pop(k)
    c = rng.randrange(12)
    q = {"value": rng.choice([1.5, 0, 120, "7", None, True]), "unit": rng.choice(["mg/dL", "mmol/L", None, "bogus"]),
         "system": rng.choice(["http://unitsofmeasure.org", None, "http://example.org"]), "code": rng.choice(["mg/dL", "umol/L", "%", None, "xx"])}
    q = {k: v for k, v in q.items() if v is not None or rng.random() < 0.2}
    if c < 4: r["valueQuantity"] = q
    elif c == 4: r["valueQuantity"] = {**q, "comparator": rng.choice(["<", ">="]), "value": 5}
    elif c == 5: r["valueString"] = rng.choice(["positive", "negative", "  ", "n/a", 5])
    elif c == 6: r["valueInteger"] = rng.choice([3, 0, "4"])
    elif c == 7: r["valueBoolean"] = rng.choice([True, False, "yes"])
    elif c == 8: r["valueCodeableConcept"] = rng.choice([{"coding": [{"system": "http://snomed.info/sct", "code": "10828004"}]},
                                                        {"text": "Detected"}, {"coding": [{"system": "http://loinc.org", "code": "LA15173-0"}]}, {"text": "blue"}])
    elif c == 9: r["dataAbsentReason"] = rng.choice([{"text": "not asked"}, {"coding": [{"code": "unknown"}]}, {}])
    elif c == 10: r["valueRange"] = {"low": {"value": 1}}
    if rng.random() < 0.3:
        r["referenceRange"] = [rng.choice([{"low": {"value": 1, "unit": "mg/dL"}, "high": {"value": 2, "code": "mg/dL"}},
                                           {"high": {"value": "x"}}, {"low": {}}, {"text": "normal"}])]

@mut({"Observation"})
def obs_component(r, rng):
    r["component"] = [{"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}, "valueQuantity": {"value": 120, "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}},
                      {"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}},
                      {"code": {"text": "no code"}, "valueString": "x"}][: rng.randint(1, 3)]

@mut({"Observation", "Condition", "Procedure"})
def codes(r, rng):
    c = rng.randrange(4)
    if c == 0: r["code"] = {"text": "only text"}
    elif c == 1: r["code"] = {"coding": [{"code": "123"}, *(r.get("code") or {}).get("coding", [])]}
    elif c == 2: r.pop("code", None)
    else: r["code"] = {"coding": [{"system": "http://snomed.info/sct", "code": "254637007", "display": "NSCLC"}]}

@mut({"Condition"})
def cond(r, rng):
    c = rng.randrange(8)
    if c == 0: r["verificationStatus"] = {"coding": [{"code": rng.choice(["refuted", "entered-in-error", "confirmed"])}]}
    elif c == 1: r["clinicalStatus"] = {"coding": [{"code": rng.choice(["active", "resolved", "remission"])}]}
    elif c == 2:
        for k in [k for k in r if k.startswith("onset")]: r.pop(k)
        r[rng.choice(["onsetAge", "onsetRange"])] = {"value": 40}
    elif c == 3:
        for k in [k for k in r if k.startswith("onset")]: r.pop(k)
        r["onsetString"] = rng.choice(["2019", "childhood", 4])
    elif c == 4: r["abatementDateTime"] = rng.choice(["2020-01-01", "2020-13-01"])
    elif c == 5: r["abatementPeriod"] = rng.choice([{"start": "2020"}, {"end": "2021-02-03"}])
    elif c == 6: r["stage"] = [{"summary": {"text": rng.choice(["Grade 3", "stage II", "severe"])}}]
    else: r["severity"] = {"coding": [{"system": "http://snomed.info/sct", "code": "24484000", "display": rng.choice(["Severe", "Grade 2"])}]}

@mut({"Condition", "Procedure"})
def site(r, rng):
    r["bodySite"] = [rng.choice([{"coding": [{"system": "http://snomed.info/sct", "code": "51185008", "display": "Thorax"}],
                                  "extension": [{"url": "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-laterality-qualifier",
                                                 "valueCodeableConcept": {"coding": [{"system": "http://snomed.info/sct", "code": rng.choice(["7771000", "24028007"])}]}}]},
                                 {"text": "left lung"}, {"coding": [{"system": "http://snomed.info/sct", "code": "39607008"}]}])]

@mut({"Procedure"})
def proc(r, rng):
    for k in [k for k in r if k.startswith("performed")]: r.pop(k)
    c = rng.randrange(5)
    if c == 0: r["performedPeriod"] = rng.choice([{"start": "2021-01-01", "end": "2021-02"}, {"end": "2022"}])
    elif c == 1: r["performedString"] = rng.choice(["2020-05", "last year"])
    elif c == 2: r["performedAge"] = {"value": 3}
    elif c == 3: r["performedDateTime"] = rng.choice(["2022-02-29", "2020-02-29T10:00:00+02:00"])
    if rng.random() < 0.3: r["category"] = {"coding": [{"system": "http://snomed.info/sct", "code": "387713003"}]}

@mut({"MedicationRequest", "MedicationStatement"})
def med(r, rng):
    c = rng.randrange(5)
    if c == 0 and r["resourceType"] == "MedicationRequest": r["doNotPerform"] = True
    elif c == 1:
        r.pop("medicationCodeableConcept", None); r["medicationReference"] = rng.choice([{"display": "heparin"}, {"reference": "Medication/none"}])
    elif c == 2: r.pop("medicationCodeableConcept", None); r.pop("medicationReference", None)
    elif c == 3: r["authoredOn"] = rng.choice(["2024", "bad"]); r["dispenseRequest"] = {"validityPeriod": {"start": "2024-01-01", "end": "2024-06"}}
    else: r["medicationCodeableConcept"] = {"text": "aspirin"}

@mut({"Patient"})
def pat(r, rng):
    c = rng.randrange(4)
    if c == 0: r["gender"] = rng.choice(["F", "unknown", "other", 3])
    elif c == 1: r["birthDate"] = rng.choice(["1960", "1960-02", "1960-02-30", None])
    elif c == 2: r.pop("birthDate", None)
    else: r.pop("gender", None)

def _mutate_resources(bundle, rng, n):
    b = copy.deepcopy(bundle)
    entries = [e for e in b.get("entry", []) if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    for _ in range(n):
        e = rng.choice(entries)
        r = e["resource"]
        options = [f for types, f in MUTATIONS if r.get("resourceType") in types]
        if options:
            rng.choice(options)(r, rng)
    if rng.random() < 0.1:
        b["entry"].append({"request": {"method": "DELETE"}})
    if rng.random() < 0.1:
        b.pop("type", None)
    return b

@mut({"Consent"})
def consent(r, rng):
    c = rng.randrange(5)
    if c == 0: r["status"] = rng.choice(["active", "rejected", "draft", "inactive", "entered-in-error", "odd"])
    elif c == 1: r["provision"] = {"type": rng.choice(["deny", "permit"])}
    elif c == 2: r["policy"] = [{"uri": "urn:study:A"}, {"authority": "https://irb.example.org"}]
    elif c == 3: r["performer"] = [{"display": "Dr X"}, {"reference": "Practitioner/1"}]
    else: r["dateTime"] = rng.choice(["2024-01-02", "bad"])

@mut({"QuestionnaireResponse"})
def qr(r, rng):
    c = rng.randrange(4)
    if c == 0: r["status"] = rng.choice(["completed", "in-progress", "stopped", "amended"])
    elif c == 1:
        r.setdefault("item", []).append({"linkId": "nested group", "item": [
            {"linkId": "life expectancy of at least 6 months", "answer": [{"valueCoding": {"code": rng.choice(["Y", "N", "maybe"])}}]},
            {"linkId": "able to swallow", "answer": [{"valueString": "yes", "item": [{"linkId": "follow", "answer": [{"valueBoolean": False}]}]}, {"valueBoolean": True}]}]})
    elif c == 2: r.setdefault("item", []).append({"linkId": "q", "answer": [{"valueInteger": 3}]})
    else: r["authored"] = "2024-02"

def twin(b, rng):
    obs = [e for e in b["entry"] if isinstance(e, dict) and isinstance(e.get("resource"), dict) and e["resource"].get("resourceType") == "Observation"
           and "valueQuantity" in e["resource"]]
    if obs:
        e = copy.deepcopy(rng.choice(obs))
        r = e["resource"]
        r["id"] = r.get("id", "x") + "-twin"
        e["fullUrl"] = "urn:uuid:" + r["id"]
        r["effectiveDateTime"] = "2023-05-05T08:00:00Z"
        orig = copy.deepcopy(r); orig["id"] += "-2"; e2 = {"fullUrl": "urn:uuid:" + orig["id"], "resource": orig}
        if isinstance(orig["valueQuantity"].get("value"), (int, float)): orig["valueQuantity"]["value"] = orig["valueQuantity"]["value"] + rng.choice([0, 1])
        b["entry"] += [e, e2]

def other_patient(b, rng):
    p = {"resourceType": "Patient", "id": "someone-else", "gender": "male"}
    b["entry"].append({"fullUrl": "urn:uuid:someone-else", "resource": p})
    b["entry"].append({"fullUrl": "urn:uuid:else-obs", "resource": {"resourceType": "Condition", "id": "else-c",
        "subject": {"reference": "urn:uuid:someone-else"}, "code": {"coding": [{"system": "http://snomed.info/sct", "code": "254637007"}]}}})

def same_id(b, rng):
    """A second resource with the id of one already in the bundle (it happens when bundles are merged)."""
    entries = [e for e in b["entry"] if isinstance(e, dict) and isinstance(e.get("resource"), dict)
               and e["resource"].get("resourceType") in ("Observation", "Condition") and e["resource"].get("id")]
    if entries:
        copy_ = copy.deepcopy(rng.choice(entries))
        copy_.pop("fullUrl", None)
        if copy_["resource"].get("resourceType") == "Observation":
            copy_["resource"]["effectiveDateTime"] = "2024-03-01"
        b["entry"].append(copy_)


def contained_med(b, rng):
    b["entry"].append({"resource": {"resourceType": "MedicationStatement", "id": "ms-c", "status": "active",
        "contained": [{"resourceType": "Medication", "id": "m1", "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "1364430"}]}}],
        "medicationReference": {"reference": "#m1"}, "effectiveDateTime": "2024-01-01"}})


def awkward_bundle(bundle: dict, rng: random.Random, n: int = 6) -> dict:
    """A copy of the bundle with n mutations of its resources, and sometimes of the bundle itself."""
    b = _mutate_resources(bundle, rng, n)
    for f in (twin, other_patient, contained_med, same_id):
        if rng.random() < 0.15: f(b, rng)
    return b
