"""The FHIR R4 reader: a Bundle (or a bare Patient resource) to elig's ``Patient``.

What is read, what is ignored and why is documented in ``docs/fhir.md``. In short:

* Patient → id, name, birth date, sex; Observation → ``Observation`` (each
  ``component`` with a value becomes an observation of its own); Condition →
  ``Condition``; Procedure → ``Procedure``; MedicationStatement and
  MedicationRequest → ``Medication`` (a ``medicationReference`` is resolved to a
  Medication resource in the bundle, by ``urn:uuid:`` full URL, relative
  ``Medication/id``, absolute URL or ``#contained`` id).
* Procedure and Condition keep their ``bodySite`` with its laterality, and a Procedure its
  ``category``; an mCODE Radiotherapy Course Summary adds the site of each Radiotherapy
  Volume (BodyStructure) it names. A research Consent and the answers of a
  QuestionnaireResponse become attestations (``docs/fhir.md``, "Attestations").
* Codes are kept as they are (system, code, display); the evaluator maps them to
  concepts through the vocabulary, by code. Display text never decides.
* Units are kept as recorded: the UCUM ``valueQuantity.code`` when present, else
  ``valueQuantity.unit``. The evaluator converts them (``elig.terminology.ucum``).
* Records that say they are wrong or did not happen (entered-in-error,
  cancelled, refuted, not-done, not-taken) are not returned; each leaves a
  ``DataIssue`` saying it was ignored and why, so the explanation lists it.
* Other resources (Encounter, Claim, ExplanationOfBenefit, Immunization,
  DiagnosticReport, CarePlan, Goal, Organization, Practitioner, ...) are not
  patient facts elig uses: they are skipped without an issue, and counted
  (``read_fhir(...).skipped``).
* A malformed entry or field becomes a ``DataIssue`` whose location names the
  place (``entry[12].resource.effectiveDateTime``); nothing raises except a top
  level that is not a Bundle or a Patient (``DataError``).

The reader is linear in the size of the bundle: one pass over the entries
indexes resources by full URL and ``Type/id`` and sorts them by type; the
clinical resources are then read once each, resolving references by dict lookup.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import attrs

from elig.records.dates import PartialDate
from elig.diagnostics import DataError, shown
from elig.terminology.units import unit_problem
from elig.terminology.answers import answers
from elig.terminology.codes import Coding, canonical_system
from elig.records.patient import (
    _DATE,
    Attestation,
    BodySite,
    Condition,
    DataIssue,
    Medication,
    Observation,
    Patient,
    Procedure,
    Source,
    grade_number,
    normalise_key,
    _Memo,
    _new_condition,
    _new_medication,
    _new_observation,
    _new_procedure,
    _source,
    qualitative_result,
)

__all__ = ["patient_from_fhir", "read_fhir", "FhirReading", "READ_TYPES"]

UCUM = "http://unitsofmeasure.org"
SNOMED = "http://snomed.info/sct"

# Resource types turned into patient facts. Medication is read only through references.
READ_TYPES = ("Patient", "Observation", "Condition", "Procedure", "MedicationStatement", "MedicationRequest",
              "Consent", "QuestionnaireResponse")
_BUNDLE_TYPES = {
    "collection", "transaction", "batch", "searchset", "document", "message", "history",
    "transaction-response", "batch-response",
}

# Statuses that mean "this record is wrong or did not happen": the record is ignored.
_IGNORED_STATUS = {
    "Observation": {"entered-in-error": "it was entered in error", "cancelled": "it was cancelled"},
    "Procedure": {"entered-in-error": "it was entered in error", "not-done": "it was not done"},
    "MedicationStatement": {"entered-in-error": "it was entered in error",
                            "not-taken": "it records that the medication was not taken"},
    "MedicationRequest": {"entered-in-error": "it was entered in error"},
}
_IGNORED_VERIFICATION = {
    "refuted": "its verification status is refuted (the diagnosis was ruled out)",
    "entered-in-error": "its verification status is entered-in-error",
}

# Qualitative results (SNOMED CT Positive, Negative, ...) and the answers of status
# observations (pregnancy status 82810-3, breastfeeding status 63895-7) are data:
# elig/data/answers.yaml, read by elig.terminology.answers; then the text decides.
LOINC = "http://loinc.org"
_SEX = {"male": "male", "female": "female", "other": None, "unknown": None}
# Laterality qualifiers (mCODE LateralityQualifierVS) are in elig/data/answers.yaml too.
_RT_VOLUME = "http://hl7.org/fhir/us/mcode/StructureDefinition/mcode-radiotherapy-dose-delivered-to-volume"
_CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
# Consent.status: what each says about the answer (None: no answer yet / no longer in force).
_CONSENT_STATUS = {"active": True, "rejected": False, "draft": None, "proposed": None, "inactive": None}
_QR_READ = ("completed", "amended", "in-progress")
_YES_NO = {"y": True, "yes": True, "true": True, "la33-6": True, "n": False, "no": False, "false": False,
           "la32-8": False}




@attrs.frozen
class FhirReading:
    """A read bundle: the patient, and counts of what was read and skipped, by resource type."""

    patient: Patient
    entries: int
    read: dict[str, int]
    skipped: dict[str, int]


def patient_from_fhir(data: dict, file: str = "") -> Patient:
    """Read a FHIR R4 Bundle (collection, transaction, batch, searchset, ...) or a bare Patient."""
    return read_fhir(data, file).patient


def read_fhir(data: Any, file: str = "") -> FhirReading:
    """Like ``patient_from_fhir``, and also say how many resources of each type were read or skipped."""
    if not isinstance(data, dict) or data.get("resourceType") not in ("Bundle", "Patient"):
        found = data.get("resourceType") if isinstance(data, dict) else type(data).__name__
        raise DataError(f"not a FHIR Bundle or Patient (resourceType is {shown(found)})", file=file or None,
                        hint="elig reads FHIR R4 Bundles and Patient resources, or its own patient format")
    return _Reader(file).read(data)


# ---------------------------------------------------------------- small helpers
def _obj(value) -> dict:
    return value if isinstance(value, dict) else {}


def _list(value) -> list:
    return value if isinstance(value, list) else []


def _text(value) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return None


def _read_coding(key: tuple[str, str, str | None]) -> Coding:
    system, code, display = key
    return Coding(canonical_system(system), code, display)


# (system, code, display) -> Coding: each distinct coding is made once (Coding is frozen: sharing is safe).
_CODING = _Memo(_read_coding, 65536)


def _number(value) -> float | None:
    """A JSON number as a float; None for anything else (bool, text, NaN, infinity)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, int) and not -1e300 < value < 1e300:  # 10^400 is no measurement (and no float)
        return None
    x = float(value)
    return x if math.isfinite(x) else None


def _has_value(element: dict) -> bool:
    return "valueQuantity" in element or "dataAbsentReason" in element or any(k.startswith("value") for k in element)


_ENTRY_INDEX = re.compile(r"^entry\[(\d+)\]")


def _entry_order(issue: DataIssue) -> int:
    m = _ENTRY_INDEX.match(issue.location)
    return int(m.group(1)) if m else -1


def _uuid_of(full_url: str | None) -> str | None:
    if full_url and full_url.startswith("urn:uuid:"):
        return full_url[len("urn:uuid:"):]
    if full_url and full_url.startswith("urn:oid:"):
        return full_url[len("urn:oid:"):]
    if full_url and "/" in full_url:
        return full_url.rstrip("/").rsplit("/", 1)[-1]
    return full_url


# ---------------------------------------------------------------- the reader
class _Reader:
    def __init__(self, file: str):
        self.file = file
        self.issues: list[DataIssue] = []
        self.unit_reasons: dict[str, str | None] = {}  # each distinct unit string is parsed once
        self.bad_dates: list[str] = []  # date fields of the resource being read that could not be read
        self.by_url: dict[str, dict] = {}
        self.read_counts: Counter = Counter()
        self.skipped: Counter = Counter()

    # ------------------------------------------------------------ plumbing
    def issue(self, location: str, message: str, hint: str | None = None) -> None:
        self.issues.append(DataIssue(location, message, hint, self.file))

    def date(self, value, loc: str, what: str, field: str = "") -> PartialDate | None:
        """The date ``value`` at ``loc + field``, or None; a date given but unreadable is also noted in
        ``bad_dates``. The location is written only when an issue needs it."""
        if value is None:
            return None
        if isinstance(value, str):
            d = _DATE[value]  # each distinct text is read once (PartialDate is frozen: sharing is safe)
            if d.__class__ is PartialDate:
                return d
            self.issue(loc + field, f"{what}: {d}", "write dates as YYYY, YYYY-MM, YYYY-MM-DD or an ISO date-time")
        else:
            self.issue(loc + field, f"{what}: cannot read date {shown(value)}: a FHIR date is text",
                       "write dates as YYYY, YYYY-MM, YYYY-MM-DD or an ISO date-time")
        self.bad_dates.append((loc + field).rsplit(".", 1)[-1])
        return None

    def dated(self, entry):
        """The entry with the date fields it gave but that could not be read (they decide nothing)."""
        return attrs.evolve(entry, unreadable_dates=tuple(self.bad_dates)) if self.bad_dates else entry

    def codes(self, concept, loc: str, what: str, field: str = "") -> tuple[Coding, ...]:
        """The codings of a CodeableConcept at ``loc + field`` (codings without system or code are
        reported and left out). The location is written only when an issue needs it."""
        if concept is None:
            return ()
        if concept.__class__ is not dict:
            if not isinstance(concept, dict):
                self.issue(loc + field, f"{what}: expected a CodeableConcept (an object with 'coding'), "
                                        f"found {shown(concept)}")
                return ()
        raw = concept.get("coding")
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.issue(f"{loc}{field}.coding", f"{what}: 'coding' must be a list")
            return ()
        out = []
        for j, c in enumerate(raw):
            if c.__class__ is dict:
                system, code, display = c.get("system"), c.get("code"), c.get("display")
                # The usual coding: system and code are text without surrounding blanks.
                if system.__class__ is str and code.__class__ is str and system and code \
                        and not system[0].isspace() and not system[-1].isspace() \
                        and not code[0].isspace() and not code[-1].isspace():
                    out.append(_CODING[system, code, display if display.__class__ is str else None])
                    continue
            system = _text(c.get("system")) if isinstance(c, dict) else None
            code = c.get("code") if isinstance(c, dict) else None
            if isinstance(code, (int, float)) and not isinstance(code, bool):
                code = str(code)
            code = _text(code)
            if system is None or code is None:
                self.issue(f"{loc}{field}.coding[{j}]", f"{what}: a coding without both system and code is left out",
                           "each coding needs 'system' (e.g. http://loinc.org) and 'code'")
                continue
            display = c.get("display") if isinstance(c.get("display"), str) else None
            out.append(_CODING[system, code, display])
        return tuple(out)

    def status_code(self, concept) -> str | None:
        """The first coding's code of a status CodeableConcept (clinicalStatus, verificationStatus)."""
        for c in _list(_obj(concept).get("coding")):
            code = _text(_obj(c).get("code"))
            if code:
                return code
        return None

    # ------------------------------------------------------------ top level
    def read(self, data: dict) -> FhirReading:
        if data.get("resourceType") == "Patient":
            self.read_counts["Patient"] += 1
            patient = self.patient(data, "", None)
            return FhirReading(patient, 1, dict(self.read_counts), {})
        return self.bundle(data)

    def bundle(self, data: dict) -> FhirReading:
        btype = data.get("type")
        if btype is None:
            self.issue("type", "the Bundle has no type; its entries are read as a collection")
        elif not isinstance(btype, str) or btype not in _BUNDLE_TYPES:
            self.issue("type", f"unknown Bundle type {shown(btype)}; its entries are read as a collection",
                       "FHIR R4 Bundle types: " + ", ".join(sorted(_BUNDLE_TYPES)))
        entries = data.get("entry")
        if entries is None:
            entries = []
        elif not isinstance(entries, list):
            self.issue("entry", "'entry' must be a list of entries")
            entries = []

        # The one pass over the entries: check each, index it, sort it by type.
        patients: list[tuple[str, dict, str]] = []
        clinical: list[tuple[str, dict, str]] = []
        by_url = self.by_url
        for i, entry in enumerate(entries):
            loc = f"entry[{i}]"
            if not isinstance(entry, dict):
                self.issue(loc, f"an entry must be an object, found {type(entry).__name__}")
                continue
            resource = entry.get("resource")
            if resource is None:
                method = _obj(entry.get("request")).get("method")
                if method == "DELETE" or "response" in entry:
                    self.skipped[f"{method or 'response'} entry without resource"] += 1
                else:
                    self.issue(loc, "the entry has no resource", "each entry needs a 'resource' object")
                continue
            rloc = f"{loc}.resource"
            if not isinstance(resource, dict):
                self.issue(rloc, f"a resource must be an object, found {type(resource).__name__}")
                continue
            rtype = resource.get("resourceType")
            if not isinstance(rtype, str) or not rtype:
                self.issue(rloc, "the resource has no resourceType, so it cannot be read",
                           "add \"resourceType\": \"Observation\" (or Condition, Procedure, ...)")
                continue
            full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
            rid = resource.get("id") if isinstance(resource.get("id"), str) and resource.get("id") else None
            ref = f"{rtype}/{rid or _uuid_of(full_url) or loc}"
            if full_url:
                if full_url in by_url and by_url[full_url] is not resource:
                    self.issue(f"{loc}.fullUrl", f"{ref}: fullUrl {shown(full_url)} is used twice; "
                                                 "references resolve to the first")
                else:
                    by_url[full_url] = resource
            if rid:
                by_url.setdefault(f"{rtype}/{rid}", resource)
            if rtype == "Patient":
                patients.append((rloc, resource, ref))
            elif rtype in READ_TYPES:
                clinical.append((rloc, resource, ref))
            else:
                self.skipped[rtype] += 1  # Encounter, Claim, Medication (read through references), ...

        # The patient: the first Patient resource.
        if patients:
            ploc, presource, pref = patients[0]
            others = patients[1:]
            if others:
                self.issue("entry", f"the bundle holds {len(patients)} Patient resources; elig reads the first "
                                    f"({pref}) and ignores resources about the others",
                           "give elig one patient's bundle at a time")
            other_resources = {id(r) for _, r, _ in others}
        else:
            ploc, presource, pref = "", {}, None
            other_resources = set()
            self.issue("entry", "the bundle has no Patient resource: birth date and sex are unknown",
                       "include the Patient resource in the bundle")

        observations: list[Observation] = []
        conditions: list[Condition] = []
        procedures: list[Procedure] = []
        medications: list[Medication] = []
        attestations: list[Attestation] = []
        about_others = Counter()
        for rloc, resource, ref in clinical:
            rtype = resource["resourceType"]
            if other_resources:
                subject = _obj(resource.get("subject") or resource.get("patient")).get("reference")
                target = by_url.get(subject) if isinstance(subject, str) else None
                if target is not None and id(target) in other_resources:
                    about_others[subject] += 1
                    continue
            self.bad_dates = []
            try:
                if rtype == "Observation":
                    observations.extend(self.observation(resource, rloc, ref))
                elif rtype == "Condition":
                    c = self.condition(resource, rloc, ref)
                    if c is not None:
                        conditions.append(self.dated(c))
                elif rtype == "Procedure":
                    p = self.procedure(resource, rloc, ref)
                    if p is not None:
                        procedures.append(self.dated(p))
                elif rtype == "Consent":
                    attestations.extend(self.consent(resource, rloc, ref))
                elif rtype == "QuestionnaireResponse":
                    attestations.extend(self.questionnaire_response(resource, rloc, ref))
                else:
                    m = self.medication(resource, rloc, ref)
                    if m is not None:
                        medications.append(self.dated(m))
            except (AttributeError, TypeError, ValueError, KeyError) as exc:  # a shape no rule above foresaw
                self.issue(rloc, f"{ref}: could not be read ({type(exc).__name__}: {exc}); it is ignored")
                continue
            self.read_counts[rtype] += 1
        self.simultaneous_conflicts(observations, clinical)
        for subject, n in sorted(about_others.items()):
            self.issue("entry", f"{n} resource(s) about another patient ({subject}) were ignored")

        patient = self.patient(presource, ploc, pref, bundle_id=_text(data.get("id")))
        if presource:
            self.read_counts["Patient"] += 1
        # Issues in the order of the entries they name (bundle-wide issues first); stable within an entry.
        issues = sorted(self.issues, key=_entry_order)
        patient = attrs.evolve(
            patient, observations=tuple(observations), conditions=tuple(conditions),
            procedures=tuple(procedures), medications=tuple(medications), attestations=tuple(attestations),
            issues=tuple(issues),
        )
        return FhirReading(patient, len(entries), dict(self.read_counts), dict(self.skipped))

    def simultaneous_conflicts(self, observations: list[Observation], clinical) -> None:
        """Flag results of one code, at one instant, in one unit, that disagree (the record contradicts itself).

        Both are kept; the issue makes the contradiction visible in the explanation.
        """
        loc_of = {ref: rloc for rloc, _, ref in clinical}
        first: dict[tuple, Observation] = {}
        reported: set[tuple] = set()
        for o in observations:
            if o.value is None or o.date is None or o.date.time is None:
                continue
            for c in o.codes:
                key = (c.system, c.code, o.date, o.unit)
                seen = first.setdefault(key, o)
                if seen is o or seen.value == o.value or key in reported:
                    continue
                reported.add(key)
                unit = f" {o.unit}" if o.unit else ""
                self.issue(loc_of.get(o.source.record.split(".component[")[0], "entry"),
                           f"{seen.source.record} and {o.source.record} give {c} at the same time "
                           f"({o.date}) with different values ({seen.value:g}{unit} and {o.value:g}{unit})",
                           "both are kept; check which result is right")

    # ------------------------------------------------------------ Patient
    def patient(self, r: dict, loc: str, ref: str | None, bundle_id: str | None = None) -> Patient:
        at = (lambda field: f"{loc}.{field}") if loc else (lambda field: field)
        pid = _text(r.get("id")) or (ref.split("/", 1)[1] if ref else None) or bundle_id \
            or (Path(self.file).stem if self.file else "patient")
        gender = r.get("gender")
        sex = None
        if gender is not None:
            key = gender.strip().lower() if isinstance(gender, str) else None
            if key in _SEX:
                sex = _SEX[key]
            else:
                self.issue(at("gender"), f"cannot read gender {shown(gender)}; sex is unknown",
                           "FHIR gender is male, female, other or unknown")
        birth = self.date(r.get("birthDate"), at("birthDate"), f"Patient/{pid}") if r else None
        return Patient(
            id=pid, source_file=self.file, format="fhir", name=self.name(r.get("name")),
            birth_date=birth, sex=sex, issues=tuple(self.issues),
        )

    @staticmethod
    def name(raw) -> str | None:
        names = [n for n in _list(raw) if isinstance(n, dict)]
        if not names:
            return None
        chosen = next((n for n in names if n.get("use") == "official"), names[0])
        text = _text(chosen.get("text"))
        if text:
            return text
        given = [g for g in _list(chosen.get("given")) if isinstance(g, str)]
        family = chosen.get("family") if isinstance(chosen.get("family"), str) else None
        parts = given + ([family] if family else [])
        return " ".join(p.strip() for p in parts if p.strip()) or None

    # ------------------------------------------------------------ Observation
    def ignored_by_status(self, r: dict, loc: str, ref: str) -> bool:
        status = r.get("status")
        reason = _IGNORED_STATUS.get(r["resourceType"], {}).get(status) if isinstance(status, str) else None
        if reason:
            self.issue(f"{loc}.status", f"{ref} was ignored: {reason} (status {status})")
            return True
        return False

    def observation(self, r: dict, loc: str, ref: str) -> list[Observation]:
        if self.ignored_by_status(r, loc, ref):
            return []
        status = _text(r.get("status"))
        codes = self.codes(r.get("code"), loc, ref, ".code")
        date = self.observation_date(r, loc, ref)
        out = []
        components = r.get("component")
        if components is not None and not isinstance(components, list):
            self.issue(f"{loc}.component", f"{ref}: 'component' must be a list")
            components = []
        components = components or []
        if not components or _has_value(r):
            if not codes:
                self.no_code_issue(r.get("code"), f"{loc}.code", ref)
            out.append(self.observation_value(r, loc, ref, _source(self.file, ref), codes, date, status))
        for k, comp in enumerate(components):
            cloc = f"{loc}.component[{k}]"
            cref = f"{ref}.component[{k}]"
            if not isinstance(comp, dict):
                self.issue(cloc, f"{cref}: a component must be an object")
                continue
            if not _has_value(comp):
                continue  # a component without a value carries nothing to read
            ccodes = self.codes(comp.get("code"), cloc, cref, ".code")
            if not ccodes:
                self.no_code_issue(comp.get("code"), f"{cloc}.code", cref)
            out.append(self.observation_value(comp, cloc, cref, _source(self.file, cref), ccodes, date, status))
        return out

    def no_code_issue(self, concept, loc: str, ref: str) -> None:
        text = _text(_obj(concept).get("text"))
        only = f" (only the text {shown(text)})" if text else ""
        self.issue(loc, f"{ref} has no code{only}, so it cannot match any concept",
                   "elig matches records by code (LOINC, SNOMED CT, ...), never by display text")

    def observation_date(self, r: dict, loc: str, ref: str) -> PartialDate | None:
        if "effectiveDateTime" in r:
            return self.date(r["effectiveDateTime"], loc, ref, ".effectiveDateTime")
        if "effectivePeriod" in r:
            period = r["effectivePeriod"]
            if not isinstance(period, dict):
                self.issue(f"{loc}.effectivePeriod", f"{ref}: a Period must be an object with start and end")
                return None
            if period.get("start") is not None:
                return self.date(period["start"], loc, ref, ".effectivePeriod.start")
            if period.get("end") is not None:
                return self.date(period["end"], loc, ref, ".effectivePeriod.end")
        if "effectiveInstant" in r:
            return self.date(r["effectiveInstant"], loc, ref, ".effectiveInstant")
        if "issued" in r:
            return self.date(r["issued"], loc, ref, ".issued")
        return None

    def observation_value(self, r: dict, loc: str, ref: str, source: Source, codes, date, status) -> Observation:
        value = value_text = unit = result = problem = None
        ref_low = ref_high = ref_unit = None
        if "valueQuantity" in r:
            q = r["valueQuantity"]
            if not isinstance(q, dict):
                problem = f"valueQuantity {shown(q)} is not a Quantity"
                self.issue(f"{loc}.valueQuantity", f"{ref}: {problem}")
            else:
                raw = q.get("value")
                value = _number(raw)
                unit = self.unit(q)
                comparator = q.get("comparator")
                if value is None:
                    value_text = str(raw) if raw is not None else None
                    problem = f"value {shown(raw)} is not a number" if raw is not None else "the quantity has no value"
                    self.issue(f"{loc}.valueQuantity.value", f"{ref}: {problem}",
                               "a FHIR Quantity value is a JSON number")
                elif unit and (reason := unit_problem(unit, self.unit_reasons)):
                    problem = reason
                    self.issue(f"{loc}.valueQuantity.code", f"{ref}: {reason}; the observation cannot be used",
                               "send a UCUM unit such as mg/dL, umol/L, 10*9/L, %")
                elif comparator is not None:
                    value_text = f"{comparator}{raw}"
                    problem = (f"the value is censored ({comparator} {raw}{' ' + unit if unit else ''}): "
                               f"the exact value is not known")
                    value = None
        elif "valueCodeableConcept" in r:
            cc = r["valueCodeableConcept"]
            vcodes = self.codes(cc, loc, ref, ".valueCodeableConcept")
            value_text = _text(_obj(cc).get("text")) or next((c.display for c in vcodes if c.display), None)
            result = answers().result(vcodes)
            if result is None and value_text:
                result = qualitative_result(value_text)
            if result is None:
                problem = "the coded value has neither a known code nor text"
        elif "valueString" in r:
            value_text = _text(r["valueString"]) if isinstance(r["valueString"], str) else None
            if value_text is None:
                problem = f"valueString {shown(r['valueString'])} is empty or not text"
                self.issue(f"{loc}.valueString", f"{ref}: {problem}")
            else:
                result = qualitative_result(value_text)
        elif "valueInteger" in r:
            value = _number(r["valueInteger"])
            if value is None:
                problem = f"valueInteger {shown(r['valueInteger'])} is not a number"
                self.issue(f"{loc}.valueInteger", f"{ref}: {problem}")
        elif "valueBoolean" in r:
            raw = r["valueBoolean"]
            if isinstance(raw, bool):
                result = "true" if raw else "false"
            else:
                problem = f"valueBoolean {shown(raw)} is not true or false"
                self.issue(f"{loc}.valueBoolean", f"{ref}: {problem}")
        elif "dataAbsentReason" in r:
            dar = _obj(r["dataAbsentReason"])
            reason = _text(dar.get("text")) or next(
                (_text(_obj(c).get("display")) or _text(_obj(c).get("code")) for c in _list(dar.get("coding"))), None)
            problem = f"no value: {reason}" if reason else "no value (data absent)"
        else:
            other = next((k for k in r if k.startswith("value")), None)
            if other:
                problem = f"a value of type {other} is not read by elig"
                self.issue(f"{loc}.{other}", f"{ref}: {problem}",
                           "elig reads valueQuantity, valueCodeableConcept, valueString, valueInteger, valueBoolean")
            else:
                problem = "no value recorded"
        rr = r.get("referenceRange")
        if rr is not None:
            if not isinstance(rr, list):
                self.issue(f"{loc}.referenceRange", f"{ref}: 'referenceRange' must be a list")
            elif rr:
                ref_low, ref_high, ref_unit = self.reference_range(rr[0], f"{loc}.referenceRange[0]", ref)
        # positionally, in the order of Observation's fields (no concept name: FHIR gives codes)
        return _new_observation(source, None, codes, value, value_text, unit, date, ref_low, ref_high, ref_unit,
                                result, status, problem)

    @staticmethod
    def unit(q: dict) -> str | None:
        """The UCUM code when the quantity has one, else the human-readable unit."""
        system = q.get("system")
        code = _text(q.get("code"))
        if code and (system is None or system == UCUM):
            return code
        return _text(q.get("unit")) or code

    def reference_range(self, rng, loc: str, ref: str) -> tuple[float | None, float | None, str | None]:
        if not isinstance(rng, dict):
            self.issue(loc, f"{ref}: a reference range must be an object with low and high")
            return None, None, None
        out: list[float | None] = []
        unit = None
        for key in ("low", "high"):
            q = rng.get(key)
            if q is None:
                out.append(None)
                continue
            if not isinstance(q, dict) or _number(q.get("value")) is None:
                self.issue(f"{loc}.{key}", f"{ref}: the reference range {key} {shown(q)} is not a number; "
                                           "the range is not used")
                out.append(None)
                continue
            out.append(_number(q.get("value")))
            unit = unit or self.unit(q)
        return out[0], out[1], unit

    # ------------------------------------------------------------ Condition
    def condition(self, r: dict, loc: str, ref: str) -> Condition | None:
        verification = self.status_code(r.get("verificationStatus"))
        if verification in _IGNORED_VERIFICATION:
            self.issue(f"{loc}.verificationStatus", f"{ref} was ignored: {_IGNORED_VERIFICATION[verification]}")
            return None
        codes = self.codes(r.get("code"), loc, ref, ".code")
        if not codes:
            self.no_code_issue(r.get("code"), f"{loc}.code", ref)
        onset = None
        if "onsetDateTime" in r:
            onset = self.date(r["onsetDateTime"], loc, ref, ".onsetDateTime")
        elif "onsetPeriod" in r:
            onset = self.date(_obj(r["onsetPeriod"]).get("start"), loc, ref, ".onsetPeriod.start")
        elif "onsetString" in r:
            onset = self.date_like(r["onsetString"], f"{loc}.onsetString", ref, "onset")
        elif "onsetAge" in r or "onsetRange" in r:
            key = "onsetAge" if "onsetAge" in r else "onsetRange"
            self.issue(f"{loc}.{key}", f"{ref}: an onset given as {key} is not read; onset is unknown",
                       "give onsetDateTime or onsetPeriod")
        abatement = None
        if "abatementDateTime" in r:
            abatement = self.date(r["abatementDateTime"], loc, ref, ".abatementDateTime")
        elif "abatementPeriod" in r:
            period = _obj(r["abatementPeriod"])
            key = "end" if period.get("end") is not None else "start"
            abatement = self.date(period.get(key), f"{loc}.abatementPeriod.{key}", ref)
        elif "abatementString" in r:
            abatement = self.date_like(r["abatementString"], f"{loc}.abatementString", ref, "abatement")
        grade = None
        stages = _list(r.get("stage"))
        texts = []
        if stages:
            summary = _obj(_obj(stages[0]).get("summary"))
            texts += [_text(summary.get("text"))] + [_text(_obj(c).get("display")) for c in _list(summary.get("coding"))]
        severity = _obj(r.get("severity"))
        texts += [_text(severity.get("text"))] + [_text(_obj(c).get("display")) for c in _list(severity.get("coding"))]
        for t in texts:
            grade = grade_number(t)
            if grade is not None:
                break
        # positionally, in the order of Condition's fields (unreadable dates: see dated)
        return _new_condition(_source(self.file, ref), None, codes, onset, abatement,
                              self.status_code(r.get("clinicalStatus")), verification, grade,
                              self.body_sites(r, loc, ref), ())

    def date_like(self, value, loc: str, ref: str, what: str) -> PartialDate | None:
        text = _text(value) if isinstance(value, str) else None
        if text is None:
            self.issue(loc, f"{ref}: the {what} {shown(value)} is not text; {what} is unknown")
            self.bad_dates.append(what)
            return None
        d = _DATE[text]
        if d.__class__ is PartialDate:
            return d
        self.bad_dates.append(what)
        self.issue(loc, f"{ref}: the {what} {shown(text)} is not a date; {what} is unknown",
                   f"give the {what} as a date (YYYY, YYYY-MM or YYYY-MM-DD)")
        return None

    # ------------------------------------------------------------ Procedure
    def procedure(self, r: dict, loc: str, ref: str) -> Procedure | None:
        if self.ignored_by_status(r, loc, ref):
            return None
        codes = self.codes(r.get("code"), loc, ref, ".code")
        if not codes:
            self.no_code_issue(r.get("code"), f"{loc}.code", ref)
        start = end = None
        if "performedDateTime" in r:
            start = end = self.date(r["performedDateTime"], loc, ref, ".performedDateTime")
        elif "performedPeriod" in r:
            start, end = self.period(r["performedPeriod"], f"{loc}.performedPeriod", ref)
        elif "performedString" in r:
            start = end = self.date_like(r["performedString"], f"{loc}.performedString", ref, "date performed")
        elif "performedAge" in r or "performedRange" in r:
            key = "performedAge" if "performedAge" in r else "performedRange"
            self.issue(f"{loc}.{key}", f"{ref}: a date given as {key} is not read; the date is unknown",
                       "give performedDateTime or performedPeriod")
        category = self.codes(r.get("category"), loc, ref, ".category") if r.get("category") is not None else ()
        # positionally, in the order of Procedure's fields (unreadable dates: see dated)
        return _new_procedure(_source(self.file, ref), None, codes, start, end, _text(r.get("status")), category,
                              self.body_sites(r, loc, ref) + self.treatment_volumes(r, loc, ref), ())

    # ------------------------------------------------------------ body sites (US Core, mCODE)
    def body_sites(self, r: dict, loc: str, ref: str) -> tuple[BodySite, ...]:
        """``bodySite`` CodeableConcepts, each with its laterality qualifier extension (mCODE)."""
        raw = r.get("bodySite")
        if raw is None:
            return ()
        if not isinstance(raw, list):
            self.issue(f"{loc}.bodySite", f"{ref}: 'bodySite' must be a list of CodeableConcepts")
            return ()
        out = []
        for k, site in enumerate(raw):
            sloc = f"{loc}.bodySite[{k}]"
            codes = self.codes(site, sloc, ref)
            laterality = None
            for ext in _list(_obj(site).get("extension")):
                url = _text(_obj(ext).get("url")) or ""
                if url.endswith("laterality-qualifier") or url.endswith("laterality"):
                    laterality = self.laterality(_obj(ext).get("valueCodeableConcept"), f"{sloc}.extension", ref)
            text = _text(_obj(site).get("text"))
            if codes or text:
                if not codes:
                    self.issue(sloc, f"{ref}: the body site has no code (only the text {text!r}), so it cannot "
                                     "match a body-site value set", "code body sites in SNOMED CT (body structure)")
                out.append(BodySite(codes, laterality, text))
        return tuple(out)

    def laterality(self, concept, loc: str, ref: str) -> str | None:
        return answers().side(self.codes(concept, loc, ref))

    def treatment_volumes(self, r: dict, loc: str, ref: str) -> tuple[BodySite, ...]:
        """mCODE Radiotherapy Course Summary: each dose-delivered-to-volume names a Radiotherapy
        Volume (BodyStructure) whose ``location`` and ``locationQualifier`` say where and which side."""
        out = []
        for k, ext in enumerate(_list(r.get("extension"))):
            if _obj(ext).get("url") != _RT_VOLUME:
                continue
            for sub in _list(_obj(ext).get("extension")):
                if _obj(sub).get("url") != "volume":
                    continue
                target_ref = _text(_obj(_obj(sub).get("valueReference")).get("reference"))
                vloc = f"{loc}.extension[{k}].volume"
                target = self.resolve(r, target_ref) if target_ref else None
                if target is None or target.get("resourceType") != "BodyStructure":
                    self.issue(vloc, f"{ref}: the treated volume {target_ref!r} is not a BodyStructure in the bundle; "
                                     "its site is not read", "include the Radiotherapy Volume (BodyStructure) resource")
                    continue
                codes = self.codes(target.get("location"), f"{vloc} -> {target_ref}.location", ref)
                laterality = None
                for q, qualifier in enumerate(_list(target.get("locationQualifier"))):
                    laterality = laterality or self.laterality(qualifier, f"{vloc} -> {target_ref}.locationQualifier[{q}]", ref)
                if codes:
                    out.append(BodySite(codes, laterality, _text(target.get("description"))))
        return tuple(out)

    def resolve(self, resource: dict, target_ref: str) -> dict | None:
        """A reference to a resource in the bundle (urn:uuid, Type/id, absolute URL, #contained)."""
        if target_ref.startswith("#"):
            return next((c for c in _list(resource.get("contained"))
                         if isinstance(c, dict) and c.get("id") == target_ref[1:]), None)
        target = self.by_url.get(target_ref)
        if target is None and "/" in target_ref:
            parts = target_ref.split("/_history/")[0].rstrip("/").split("/")
            if len(parts) >= 2:
                target = self.by_url.get(f"{parts[-2]}/{parts[-1]}")
        return target

    # ------------------------------------------------------------ Consent, QuestionnaireResponse
    def who(self, refs) -> str | None:
        names = []
        for x in (refs if isinstance(refs, list) else [refs]):
            x = _obj(x)
            name = _text(x.get("display")) or _text(x.get("reference"))
            if name:
                names.append(name)
        return ", ".join(names) or None

    def consent(self, r: dict, loc: str, ref: str) -> list[Attestation]:
        """A research Consent: active is yes, rejected is no (an active 'deny' provision is no too)."""
        scope = self.codes(r.get("scope"), loc, ref, ".scope")
        categories = [c for cc in _list(r.get("category")) for c in self.codes(cc, loc, ref, ".category")]
        if not any(c.code == "research" for c in scope) and not any("research" in (c.code or "").lower()
                                                                     for c in categories):
            self.skipped["Consent (not a research consent)"] += 1
            return []
        status = _text(r.get("status"))
        if status == "entered-in-error" or status not in _CONSENT_STATUS:
            self.issue(f"{loc}.status", f"{ref} was ignored: its status is {status!r}",
                       "a research Consent is read when active (consent given) or rejected (refused)")
            return []
        value = _CONSENT_STATUS[status]
        provision = _text(_obj(r.get("provision")).get("type"))
        if value is True and provision == "deny":
            value = False
        if value is None:
            self.issue(f"{loc}.status", f"{ref}: the consent is {status}, so it answers nothing yet")
            return []
        study = [_text(_obj(pol).get("uri")) or _text(_obj(pol).get("authority")) for pol in _list(r.get("policy"))]
        study += [_text(_obj(r.get("policyRule")).get("text")), _text(_obj(r.get("sourceReference")).get("display"))]
        study_text = "; ".join(x for x in study if x) or None
        by = self.who(r.get("performer")) or self.who(r.get("organization"))
        when = self.date(r.get("dateTime"), loc, ref, ".dateTime") if r.get("dateTime") is not None else None
        return [Attestation(key="informed consent", value=value, source=Source(self.file, ref), by=by, date=when,
                            study=study_text)]

    def questionnaire_response(self, r: dict, loc: str, ref: str) -> list[Attestation]:
        """Boolean answers of a QuestionnaireResponse, each an attestation keyed by its item's linkId."""
        status = _text(r.get("status"))
        if status not in _QR_READ:
            self.issue(f"{loc}.status", f"{ref} was ignored: its status is {status!r}",
                       "elig reads completed, amended and in-progress responses")
            return []
        by = self.who(r.get("author"))
        when = self.date(r.get("authored"), loc, ref, ".authored") if r.get("authored") is not None else None
        # Answers to the Questionnaire elig wrote for a protocol count for that protocol only.
        questionnaire = _text(r.get("questionnaire")) if isinstance(r.get("questionnaire"), str) else None
        study = questionnaire if questionnaire and questionnaire.startswith("urn:elig:questionnaire:") else None
        out: list[Attestation] = []

        def walk(items, at: str) -> None:
            for k, item in enumerate(_list(items)):
                iloc = f"{at}.item[{k}]"
                link = _text(_obj(item).get("linkId"))
                answers = _list(_obj(item).get("answer"))
                if link and answers:
                    value = self.answer(answers[0], f"{iloc}.answer[0]", ref)
                    if len(answers) > 1:
                        self.issue(f"{iloc}.answer", f"{ref}: item {link!r} has {len(answers)} answers; "
                                                     "the first is read")
                    if value is not None or status != "in-progress":
                        out.append(Attestation(key=normalise_key(link), value=value,
                                               source=Source(self.file, f"{ref} item {link!r}"), by=by, date=when,
                                               study=study))
                walk(_obj(item).get("item"), iloc)
                for a in answers:
                    walk(_obj(a).get("item"), iloc)

        walk(r.get("item"), loc)
        return out

    def answer(self, answer, loc: str, ref: str) -> bool | None:
        a = _obj(answer)
        if isinstance(a.get("valueBoolean"), bool):
            return a["valueBoolean"]
        coding = _obj(a.get("valueCoding"))
        key = (_text(coding.get("code")) or _text(a.get("valueString")) or "").lower()
        if key in _YES_NO:
            return _YES_NO[key]
        self.issue(loc, f"{ref}: the answer {answer!r} is not yes or no; the attestation stays unknown",
                   "answer with valueBoolean (true/false)")
        return None

    def period(self, value, loc: str, ref: str) -> tuple[PartialDate | None, PartialDate | None]:
        if not isinstance(value, dict):
            self.issue(loc, f"{ref}: a Period must be an object with start and end")
            return None, None
        return (self.date(value.get("start"), loc, ref, ".start"),
                self.date(value.get("end"), loc, ref, ".end"))

    # ------------------------------------------------------------ MedicationStatement / MedicationRequest
    def medication(self, r: dict, loc: str, ref: str) -> Medication | None:
        if self.ignored_by_status(r, loc, ref):
            return None
        rtype = r["resourceType"]
        if rtype == "MedicationRequest" and r.get("doNotPerform") is True:
            self.issue(f"{loc}.doNotPerform", f"{ref} was ignored: it is an order NOT to give the medication")
            return None
        if "medicationCodeableConcept" in r:
            codes = self.codes(r["medicationCodeableConcept"], loc, ref, ".medicationCodeableConcept")
            if not codes:
                self.no_code_issue(r["medicationCodeableConcept"], f"{loc}.medicationCodeableConcept", ref)
        elif "medicationReference" in r:
            codes = self.medication_reference(r, r["medicationReference"], f"{loc}.medicationReference", ref)
        else:
            codes = ()
            self.issue(loc, f"{ref} names no medication (no medicationCodeableConcept or medicationReference)")
        start = end = None
        if rtype == "MedicationStatement":
            if "effectiveDateTime" in r:
                # A point in time: the statement says the medication was (or is) taken then. The end is
                # left open; the status (active, completed, stopped) says whether it goes on.
                start = self.date(r["effectiveDateTime"], loc, ref, ".effectiveDateTime")
            elif "effectivePeriod" in r:
                start, end = self.period(r["effectivePeriod"], f"{loc}.effectivePeriod", ref)
        else:
            start = self.date(r.get("authoredOn"), loc, ref, ".authoredOn")
            validity = _obj(r.get("dispenseRequest")).get("validityPeriod")
            if validity is not None:
                vstart, end = self.period(validity, f"{loc}.dispenseRequest.validityPeriod", ref)
                start = start or vstart
        # positionally, in the order of Medication's fields (unreadable dates: see dated)
        return _new_medication(_source(self.file, ref), None, codes, start, end, _text(r.get("status")), ())

    def medication_reference(self, resource: dict, value, loc: str, ref: str) -> tuple[Coding, ...]:
        target_ref = _obj(value).get("reference")
        if not isinstance(target_ref, str) or not target_ref.strip():
            display = _text(_obj(value).get("display"))
            self.issue(loc, f"{ref}: the medicationReference has no reference"
                            + (f" (only the text {shown(display)})" if display else "") + "; the medication has no code")
            return ()
        target_ref = target_ref.strip()
        target = None
        if target_ref.startswith("#"):
            target = next((c for c in _list(resource.get("contained"))
                           if isinstance(c, dict) and c.get("id") == target_ref[1:]), None)
        else:
            target = self.by_url.get(target_ref)
            if target is None and "/" in target_ref:  # absolute URL or versioned: match on Type/id
                parts = target_ref.split("/_history/")[0].rstrip("/").split("/")
                if len(parts) >= 2:
                    target = self.by_url.get(f"{parts[-2]}/{parts[-1]}")
        if target is None:
            self.issue(loc, f"{ref}: the medication {shown(target_ref)} is not in the bundle; the medication has no code",
                       "include the Medication resource in the bundle, or use medicationCodeableConcept")
            return ()
        if target.get("resourceType") != "Medication":
            self.issue(loc, f"{ref}: {target_ref!r} is a {target.get('resourceType')}, not a Medication; "
                            "the medication has no code")
            return ()
        codes = self.codes(target.get("code"), f"{loc} -> {target_ref}.code", ref)
        if not codes:
            self.no_code_issue(target.get("code"), f"{loc} -> {target_ref}.code", ref)
        return codes
