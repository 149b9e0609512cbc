"""The step after the views: from the rows of elig's ViewDefinitions to the patients the tables hold.

The batch route reads FHIR only through the SQL-on-FHIR views (``elig/data/views``): a
bundle, a Bulk Data export or the view output of another implementation (Pathling, as
Parquet) all arrive here as rows, one list per view. What a view cannot say is decided
here, the same way for every source of rows:

* the data-quality reasons: a date that is not a date, a quantity without a value or
  with a unit elig cannot read, a censored value, a record entered in error, a coding
  without a system, an answer that is not yes or no, two results at one instant that
  disagree;
* qualitative results (positive, negative) from coded or text values, grades from stage
  and severity text, laterality from body-site qualifiers;
* which entries are about the patient (a bundle's own patient, or the subject key).

It does so with elig's FHIR reader (``elig.records.fhir``): each resource is rebuilt from
its view rows, holding only what the views carried, and read. So the batch route and the
interpreter give every element one meaning, and what a view leaves out is not read by
the batch route at all. Unit conversion to canonical units and code-to-concept matching
come later, in the compiled SQL (``elig.batch.compiler``), for every source alike.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections import defaultdict
from typing import Any, Iterable, Iterator

from elig.batch import views as v
from elig.records.fhir import read_fhir
from elig.records.patient import Patient

#: The views of the batch route, by name (``elig/data/views/<name>.json``).
VIEW_NAMES = (
    "patient", "observation", "observation_code", "condition", "condition_code", "procedure", "procedure_code",
    "body_structure_code", "medication_statement", "medication_statement_code", "medication_request",
    "medication_request_code", "medication_code", "consent", "consent_code", "questionnaire_response",
    "questionnaire_response_item",
)
# Views whose rows are about a patient (they have patient_key); the others hang off those by key.
MAIN = {"observation": "Observation", "condition": "Condition", "procedure": "Procedure",
        "medication_statement": "MedicationStatement", "medication_request": "MedicationRequest",
        "consent": "Consent", "questionnaire_response": "QuestionnaireResponse"}
RT_VOLUME = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-radiotherapy-dose-delivered-to-volume"
# Contained resources that elig reads through a reference (``#id``): lifted out before the views run.
_LIFTED = ("Medication", "BodyStructure")


def views() -> dict[str, dict]:
    return {name: v.load_view(name) for name in VIEW_NAMES}


def _plain(x: Any) -> Any:
    """A value as the FHIR reader expects it, whatever the producer's types (Parquet dates, decimals)."""
    if isinstance(x, dt.datetime):
        return x.isoformat().replace("+00:00", "Z")
    if isinstance(x, dt.date):
        return x.isoformat()
    if isinstance(x, decimal.Decimal):
        return int(x) if x == x.to_integral_value() and "." not in str(x) else float(x)
    if hasattr(x, "tolist"):  # numpy arrays from Parquet lists
        return x.tolist()
    return x


def _clean(d: dict) -> dict:
    return {k: x for k, x in d.items() if x is not None and x != {} and x != []}


# ---------------------------------------------------------------- running the views
def lift_contained(resource: dict) -> list[dict]:
    """The resource, and its contained Medication and BodyStructure resources as resources of their own.

    A view reads top-level resources only; a ``#id`` reference to a contained resource becomes a
    reference to the lifted one (``Medication/<parent id>.<id>``).
    """
    contained = [c for c in resource.get("contained") or [] if isinstance(c, dict)
                 and c.get("resourceType") in _LIFTED and isinstance(c.get("id"), str)]
    if not contained:
        return [resource]
    parent = resource.get("id") if isinstance(resource.get("id"), str) else "contained"
    names = {f"#{c['id']}": f"{c['resourceType']}/{parent}.{c['id']}" for c in contained}

    lifted = [{**c, "id": f"{parent}.{c['id']}"} for c in contained]
    return [v.rewrite_references(resource, names, drop="contained")] + lifted


class ViewRows:
    """The rows of every view, for one bundle or a whole population, gathered view by view."""

    def __init__(self, definitions: dict[str, dict] | None = None):
        self.definitions = definitions or views()
        by_type: dict[str, list[str]] = defaultdict(list)
        for name, view in self.definitions.items():
            by_type[view["resource"]].append(name)
        self.by_type = dict(by_type)
        self.rows: dict[str, list[dict]] = {name: [] for name in self.definitions}
        self.prepared = {name: v.prepare(view) for name, view in self.definitions.items()}
        self.order: dict[tuple[str, Any], int] = {}  # (resource type, key): position in the input

    def add(self, resource: dict) -> None:
        self.order.setdefault((resource.get("resourceType"), resource.get("id")), len(self.order))
        for r in lift_contained(resource):
            for name in self.by_type.get(r.get("resourceType"), ()):
                self.rows[name].extend(v.run_view(self.definitions[name], [r], self.prepared[name]))


# ---------------------------------------------------------------- rebuilding resources from rows
class _Index:
    """The rows of the views, by resource key."""

    def __init__(self, rows: dict[str, Iterable[dict]]):
        self.main: dict[str, list[dict]] = {}
        self.by_key: dict[tuple[str, Any], list[dict]] = defaultdict(list)
        for name in VIEW_NAMES:
            for row in rows.get(name, ()):
                row = {k: _plain(x) for k, x in row.items()}
                self.by_key[(name, row.get("key"))].append(row)
                self.main.setdefault(name, []).append(row)

    def keys(self, name: str) -> list:
        seen, out = set(), []
        for row in self.main.get(name, ()):
            if row["key"] not in seen:
                seen.add(row["key"])
                out.append(row["key"])
        return out

    def rows(self, name: str, key) -> list[dict]:
        return self.by_key.get((name, key), [])


def _codings(code_rows: list[dict], element: str, part=None, part_index: int | None = 0,
             sub_index: int | None = 0) -> list[dict]:
    found = [r for r in code_rows if r["element"] == element
             and (part is None or r.get("part") == part)
             and (part_index is None or (r.get("part_index") or 0) == part_index)
             and (sub_index is None or (r.get("sub_index") or 0) == sub_index)]
    found.sort(key=lambda r: (r.get("part_index") or 0, r.get("sub_index") or 0, r.get("idx") or 0))
    return [_clean({"system": r.get("system"), "code": r.get("code"), "display": r.get("display")}) for r in found]


def _concept(code_rows, element, text=None, **kw) -> dict:
    return _clean({"coding": _codings(code_rows, element, **kw), "text": text})


def _ref(kind: str, key) -> dict | None:
    return {"reference": f"{kind}/{key}"} if key is not None else None


def _quantity(row: dict, value: str, prefix: str, comparator: bool = False) -> dict:
    """A Quantity from the columns ``value`` and ``<prefix>_unit``, ``_system``, ``_code`` (and ``_comparator``)."""
    return _clean({"value": row.get(value), "comparator": row.get(f"{prefix}_comparator") if comparator else None,
                   "unit": row.get(f"{prefix}_unit"), "system": row.get(f"{prefix}_system"),
                   "code": row.get(f"{prefix}_code")})


_OTHER_VALUES = ("Range", "Ratio", "SampledData", "Time", "DateTime", "Period")


def _value(row: dict, code_rows: list[dict], part: str, part_index: int) -> dict:
    """The value[x], dataAbsentReason and referenceRange of an observation or component row."""
    out: dict = {}
    if row.get("quantity"):
        out["valueQuantity"] = _quantity(row, "q_value", "q", comparator=True)
    elif row.get("concept"):
        out["valueCodeableConcept"] = _concept(code_rows, "value", row.get("concept_text"), part=part,
                                               part_index=part_index)
    elif row.get("value_string") is not None:
        out["valueString"] = row["value_string"]
    elif row.get("value_integer") is not None:
        out["valueInteger"] = row["value_integer"]
    elif row.get("value_boolean") is not None:
        out["valueBoolean"] = row["value_boolean"]
    else:  # a value of a type elig does not read
        other = next((t for t in _OTHER_VALUES if row.get(f"value_{t.lower()}" if t != "SampledData"
                                                          else "value_sampled_data")), None)
        if other:
            out[f"value{other}"] = {}
    if row.get("absent") and not out:
        out["dataAbsentReason"] = _clean({"text": row.get("absent_text"), "coding": [_clean(
            {"code": row.get("absent_code"), "display": row.get("absent_display")})]})
    if row.get("ref_range"):
        rng = {}
        for end in ("low", "high"):  # a limit given without a value stays (as {}), so the reader says so
            if row.get(f"ref_{end}_given"):
                rng[end] = _quantity(row, f"ref_{end}", f"ref_{end}")
        out["referenceRange"] = [rng]
    return out


def _observation(ix: _Index, key) -> dict:
    rows = ix.rows("observation", key)
    codes = ix.rows("observation_code", key)
    head = rows[0]
    r = _clean({"resourceType": "Observation", "id": key, "status": head.get("status"),
                "subject": _ref("Patient", head.get("patient_key"))})
    r["code"] = _concept(codes, "code", head.get("code_text"), part="resource")
    if head.get("effective_datetime") is not None:
        r["effectiveDateTime"] = head["effective_datetime"]
    elif head.get("effective_period"):
        r["effectivePeriod"] = _clean({"start": head.get("effective_start"), "end": head.get("effective_end")})
    elif head.get("effective_instant") is not None:
        r["effectiveInstant"] = head["effective_instant"]
    if head.get("issued") is not None:
        r["issued"] = head["issued"]
    components = []
    for row in sorted(rows, key=lambda x: (x["part"] != "resource", x.get("part_index") or 0)):
        if row["part"] == "resource":
            r.update(_value(row, codes, "resource", 0))
        else:
            i = row.get("part_index") or 0
            components.append({"code": _concept(codes, "code", row.get("part_code_text"), part="component",
                                                part_index=i), **_value(row, codes, "component", i)})
    if components:
        r["component"] = components
    return r


def _body_sites(codes: list[dict]) -> list[dict]:
    sites = sorted({r.get("part_index") or 0 for r in codes if r["element"].startswith("bodySite")})
    out = []
    for k in sites:
        text = next((r.get("display") for r in codes if r["element"] == "bodySite.text"
                     and (r.get("part_index") or 0) == k), None)
        exts = []
        for j in sorted({r.get("sub_index") or 0 for r in codes if r["element"] == "bodySite.extension"
                         and (r.get("part_index") or 0) == k}):
            rows = [r for r in codes if r["element"] == "bodySite.extension" and (r.get("part_index") or 0) == k
                    and (r.get("sub_index") or 0) == j]
            exts.append({"url": rows[0].get("part"), "valueCodeableConcept": {
                "coding": _codings(codes, "bodySite.extension", part_index=k, sub_index=j)}})
        out.append(_clean({"coding": _codings(codes, "bodySite", part_index=k), "text": text, "extension": exts}))
    return out


def _condition(ix: _Index, key) -> dict:
    row = ix.rows("condition", key)[0]
    codes = ix.rows("condition_code", key)
    r = _clean({"resourceType": "Condition", "id": key, "subject": _ref("Patient", row.get("patient_key")),
                "clinicalStatus": {"coding": [{"code": row["clinical_status"]}]}
                if row.get("clinical_status") is not None else None,
                "verificationStatus": {"coding": [{"code": row["verification_status"]}]}
                if row.get("verification_status") is not None else None,
                "bodySite": _body_sites(codes)})
    r["code"] = _concept(codes, "code", row.get("code_text"))
    for what in ("onset", "abatement"):
        if row.get(f"{what}_datetime") is not None:
            r[f"{what}DateTime"] = row[f"{what}_datetime"]
        elif row.get(f"{what}_period"):
            r[f"{what}Period"] = _clean({"start": row.get(f"{what}_start"), "end": row.get(f"{what}_end")})
        elif row.get(f"{what}_string") is not None:
            r[f"{what}String"] = row[f"{what}_string"]
        elif row.get(f"{what}_age"):
            r[f"{what}Age"] = {}
        elif row.get(f"{what}_range"):
            r[f"{what}Range"] = {}
    stage = _concept(codes, "stage", row.get("stage_text"))
    if stage:
        r["stage"] = [{"summary": stage}]
    severity = _concept(codes, "severity", row.get("severity_text"))
    if severity:
        r["severity"] = severity
    return r


def _procedure(ix: _Index, key) -> dict:
    row = ix.rows("procedure", key)[0]
    codes = ix.rows("procedure_code", key)
    r = _clean({"resourceType": "Procedure", "id": key, "status": row.get("status"),
                "subject": _ref("Patient", row.get("patient_key")), "bodySite": _body_sites(codes)})
    r["code"] = _concept(codes, "code", row.get("code_text"))
    if row.get("performed_datetime") is not None:
        r["performedDateTime"] = row["performed_datetime"]
    elif row.get("performed_period"):
        r["performedPeriod"] = _clean({"start": row.get("performed_start"), "end": row.get("performed_end")})
    elif row.get("performed_string") is not None:
        r["performedString"] = row["performed_string"]
    elif row.get("performed_age"):
        r["performedAge"] = {}
    elif row.get("performed_range"):
        r["performedRange"] = {}
    if row.get("category"):
        r["category"] = _concept(codes, "category")
    volumes = [k for k in row.get("volumes") or [] if k is not None]
    if volumes:
        r["extension"] = [{"url": RT_VOLUME, "extension": [
            {"url": "volume", "valueReference": {"reference": f"BodyStructure/{k}"}} for k in volumes]}]
    return r


def _body_structure(ix: _Index, key) -> dict:
    codes = ix.rows("body_structure_code", key)
    qualifiers = sorted({r.get("part_index") or 0 for r in codes if r["element"] == "locationQualifier"})
    return _clean({"resourceType": "BodyStructure", "id": key, "location": _concept(codes, "location"),
                   "locationQualifier": [_concept(codes, "locationQualifier", part_index=q) for q in qualifiers],
                   "description": next((r.get("display") for r in codes if r["element"] == "description"), None)})


def _medication_use(ix: _Index, name: str, key) -> dict:
    row = ix.rows(name, key)[0]
    codes = ix.rows(f"{name}_code", key)
    r = _clean({"resourceType": MAIN[name], "id": key, "status": row.get("status"),
                "subject": _ref("Patient", row.get("patient_key")), "doNotPerform": row.get("do_not_perform")})
    if row.get("medication_concept"):
        r["medicationCodeableConcept"] = _concept(codes, "medication", row.get("medication_text"))
    elif row.get("medication_reference"):
        r["medicationReference"] = _clean({"reference": f"Medication/{row['medication_key']}"
                                           if row.get("medication_key") is not None else None,
                                           "display": row.get("medication_display")})
    if name == "medication_statement":
        if row.get("effective_datetime") is not None:
            r["effectiveDateTime"] = row["effective_datetime"]
        elif row.get("effective_period"):
            r["effectivePeriod"] = _clean({"start": row.get("effective_start"), "end": row.get("effective_end")})
    else:
        if row.get("authored_on") is not None:
            r["authoredOn"] = row["authored_on"]
        if row.get("validity"):
            r["dispenseRequest"] = {"validityPeriod": _clean({"start": row.get("validity_start"),
                                                              "end": row.get("validity_end")})}
    return r


def _medication(ix: _Index, key) -> dict:
    codes = ix.rows("medication_code", key)
    text = next((r.get("display") for r in codes if r["element"] == "code.text"), None)
    return {"resourceType": "Medication", "id": key, "code": _concept(codes, "code", text)}


def _parties(codes: list[dict], element: str) -> list[dict]:
    rows = sorted((r for r in codes if r["element"] == element), key=lambda r: r.get("idx") or 0)
    return [_clean({"reference": r.get("code"), "display": r.get("display")}) for r in rows]


def _consent(ix: _Index, key) -> dict:
    row = ix.rows("consent", key)[0]
    codes = ix.rows("consent_code", key)
    categories = sorted({r.get("part_index") or 0 for r in codes if r["element"] == "category"})
    policies = sorted((r for r in codes if r["element"] == "policy"), key=lambda r: r.get("idx") or 0)
    return _clean({
        "resourceType": "Consent", "id": key, "status": row.get("status"), "patient": _ref("Patient", row.get("patient_key")),
        "scope": _concept(codes, "scope"),
        "category": [_concept(codes, "category", part_index=c) for c in categories],
        "provision": _clean({"type": row.get("provision_type")}),
        "policy": [_clean({"uri": p.get("system"), "authority": p.get("code")}) for p in policies],
        "policyRule": _clean({"text": row.get("policy_rule_text")}),
        "sourceReference": _clean({"display": row.get("source_display")}),
        "performer": _parties(codes, "performer"), "organization": _parties(codes, "organization"),
        "dateTime": row.get("date_time"),
    })


def _answer(item: dict) -> dict:
    if item.get("answer_boolean") is not None:
        return {"valueBoolean": item["answer_boolean"]}
    if item.get("answer_code") is not None:
        return {"valueCoding": {"code": item["answer_code"]}}
    if item.get("answer_string") is not None:
        return {"valueString": item["answer_string"]}
    return {"valueOther": {}}  # an answer of another type: not yes or no


def _questionnaire_response(ix: _Index, key) -> dict:
    row = ix.rows("questionnaire_response", key)[0]
    items = sorted(ix.rows("questionnaire_response_item", key), key=lambda r: r.get("idx") or 0)
    # The items come depth first, as the reader walks them; a flat list reads the same.
    flat = [_clean({"linkId": i.get("link_id"),
                    "answer": ([_answer(i)] + ([{}] if i.get("more_answers") else [])) if i.get("answered") else None})
            for i in items]
    return _clean({"resourceType": "QuestionnaireResponse", "id": key, "status": row.get("status"),
                   "subject": _ref("Patient", row.get("patient_key")), "questionnaire": row.get("questionnaire"),
                   "authored": row.get("authored"),
                   "author": _clean({"display": row.get("author_display"), "reference": row.get("author_reference")}),
                   "item": flat})


_BUILD = {"observation": _observation, "condition": _condition, "procedure": _procedure,
          "consent": _consent, "questionnaire_response": _questionnaire_response}


def _resource(ix: _Index, name: str, key) -> dict:
    if name in ("medication_statement", "medication_request"):
        return _medication_use(ix, name, key)
    return _BUILD[name](ix, key)


def _patient(row: dict) -> dict:
    return _clean({"resourceType": "Patient", "id": row["key"], "birthDate": row.get("birth_date"),
                   "gender": row.get("gender")})


def _entries(resources: Iterable[dict]) -> list[dict]:
    return [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in resources]


def _shared(ix: _Index) -> list[dict]:
    return ([_medication(ix, k) for k in ix.keys("medication_code")]
            + [_body_structure(ix, k) for k in ix.keys("body_structure_code")])


# ---------------------------------------------------------------- patients from rows
def _in_order(resources: list[dict], order: dict | None) -> list[dict]:
    """Resources in the order of the input when it is known (a view's rows keep the order within one
    resource type only; the order across types decides the order of medications and attestations)."""
    if not order:
        return resources
    return sorted(resources, key=lambda r: order.get((r["resourceType"], r["id"]), len(order)))


def bundle_patient(rows: dict[str, Iterable[dict]], file: str = "", bundle: dict | None = None,
                   order: dict | None = None) -> Patient:
    """The patient of one bundle's view rows, as elig's FHIR reader reads the bundle.

    ``bundle`` gives the envelope (type, id, and entries that hold no resource), which the
    views do not see; every resource comes from the rows.
    """
    ix = _Index(rows)
    patients = [_patient(r) for r in ix.main.get("patient", [])]
    resources = _in_order([_resource(ix, name, k) for name in MAIN for k in ix.keys(name)], order)
    if bundle is not None and bundle.get("resourceType") == "Patient":  # a bare Patient: read as the reader reads it
        return read_fhir(patients[0] if patients else {"resourceType": "Patient"}, file).patient
    envelope = bundle or {"type": "collection"}
    entries = _entries(patients + resources + _shared(ix))
    raw = envelope.get("entry")
    if isinstance(raw, list):  # what the views cannot see: entries without a resource, deletions, ...
        entries += [e for e in raw if not v.holds_resource(e)]
    elif raw is not None:
        entries = raw  # not a list: the reader says so
    data = {"resourceType": "Bundle", "entry": entries}
    for key in ("type", "id"):
        if key in envelope:
            data[key] = envelope[key]
    return read_fhir(data, file).patient


def grouped_patients(rows: dict[str, Iterable[dict]], file: str = "", order: dict | None = None,
                     files: dict | None = None) -> Iterator[tuple[str, Patient | None, str | None]]:
    """Patients of view rows from a whole population (a Bulk Data export, another implementation's output):
    each resource goes to the patient its ``patient_key`` names. Yields (patient key, patient, None), in
    the order of the patient rows, then (key, None, reason) for keys no patient row has.
    ``files`` names where each patient came from (by key), for the patient's sources."""
    ix = _Index(rows)
    by_patient: dict[Any, list[dict]] = defaultdict(list)
    for name in MAIN:
        for k in ix.keys(name):
            pk = ix.rows(name, k)[0].get("patient_key")
            if pk is not None:
                by_patient[pk].append(_resource(ix, name, k))
    shared = _shared(ix)
    for prow in ix.main.get("patient", []):
        key = prow["key"]
        data = {"resourceType": "Bundle", "type": "collection",
                "entry": _entries([_patient(prow)] + _in_order(by_patient.pop(key, []), order) + shared)}
        yield key, read_fhir(data, (files or {}).get(key, file)).patient, None
    for key, resources in by_patient.items():
        yield key, None, f"{len(resources)} resource(s) reference Patient/{key}, which is not among the patients"


def patient_from_fhir(data: dict, file: str = "") -> Patient:
    """A FHIR Bundle or Patient read through the views: what ``elig.records.fhir.patient_from_fhir``
    gives, built only from the views' rows."""
    if not isinstance(data, dict) or data.get("resourceType") not in ("Bundle", "Patient"):
        return read_fhir(data, file).patient  # raises the reader's error for what is not a bundle
    out = ViewRows()
    resources = v.bundle_resources(data, out.by_type) if data.get("resourceType") == "Bundle" else [data]
    for r in resources:
        out.add(r)
    return bundle_patient(out.rows, file, data, out.order)
