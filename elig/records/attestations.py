"""Attestations that come beside a record: a plain form, and a site's own codes.

* ``load_form(path)`` reads an attestation form (YAML or JSON): a mapping from what is
  attested to yes/no, each answer optionally with who gave it and when::

      informed consent: {value: true, by: Dr Lee, date: 2024-03-14}
      life expectancy of at least 6 months: yes

  A FHIR QuestionnaireResponse (answering the Questionnaire ``elig questionnaire``
  writes) is accepted as a form too.
* ``load_site_mapping(path)`` reads a mapping from a site's code system to attestations::

      system: http://hospital.example.org/fhir/CodeSystem/screening
      codes:
        CONSENT-SIGNED: informed consent
        LIFE-EXP-6M: life expectancy of at least 6 months

  ``apply_site_mapping(patient, mapping)`` turns each Observation of the record coded in
  that system (a yes/no value: valueBoolean, or a coded or text yes/no) into an attestation
  citing the Observation.
* ``merge(patient, attestations)`` adds answers to any record, native or FHIR. Both are
  kept: when two sources answer the same question differently the evaluator reports the
  attestation as unknown and shows both (see docs/semantics.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from elig.diagnostics import DataError
from elig.records.dates import DateSyntaxError, parse_date
from elig.records.fhir import read_fhir
from elig.records.loader import _parse_text  # the loader's YAML/JSON reading, errors with a place
from elig.records.patient import Attestation, DataIssue, Patient, Source, normalise_key

__all__ = ["Answers", "SiteMapping", "load_answers", "load_form", "form_from_data", "load_site_mapping",
           "apply_site_mapping", "merge"]

_YES = {"yes", "true", "y", "1"}
_NO = {"no", "false", "n", "0"}


def _read(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError("no such file", file=str(path), hint="check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the file: {exc}", file=str(path)) from None
    return _parse_text(text, str(path))


def _yes_no(value) -> bool | None | str:
    """True, False, None (unknown), or the text that could not be read."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _YES:
        return True
    if text in _NO:
        return False
    if text in ("unknown", ""):
        return None
    return str(value)


def load_form(path: str | Path) -> tuple[tuple[Attestation, ...], tuple[DataIssue, ...]]:
    """Read an attestation form; return its answers and the problems found (each with its place)."""
    return form_from_data(_read(path), str(path))


def form_from_data(data: Any, file: str = "") -> tuple[tuple[Attestation, ...], tuple[DataIssue, ...]]:
    if isinstance(data, dict) and data.get("resourceType") == "QuestionnaireResponse":
        reading = read_fhir({"resourceType": "Bundle", "type": "collection",
                             "entry": [{"resource": data}]}, file)
        issues = tuple(i for i in reading.patient.issues if "no Patient resource" not in i.message)
        return reading.patient.attestations, issues
    if isinstance(data, dict) and isinstance(data.get("attestations"), dict):
        data = data["attestations"]  # a form may nest its answers under 'attestations:'
    if not isinstance(data, dict):
        raise DataError("an attestation form must be a mapping from what is attested to yes/no", file=file or None,
                        hint="write e.g.  informed consent: yes")
    out: list[Attestation] = []
    issues: list[DataIssue] = []
    for key, raw in data.items():
        loc = f"{key}"
        by = date = None
        if isinstance(raw, dict):
            unknown = sorted(set(raw) - {"value", "by", "date"})
            if unknown:
                issues.append(DataIssue(loc, f"unknown field(s) {', '.join(unknown)} are ignored",
                                        "an answer has value, by and date", file))
            by = str(raw["by"]) if raw.get("by") is not None else None
            if raw.get("date") is not None:
                try:
                    date = parse_date(raw["date"])
                except DateSyntaxError as exc:
                    issues.append(DataIssue(f"{loc}.date", str(exc), "write dates as YYYY-MM-DD", file))
            raw = raw.get("value")
        value = _yes_no(raw)
        if isinstance(value, str):
            issues.append(DataIssue(loc, f"cannot read {value!r} as yes/no; the answer is left unknown",
                                    "answer yes or no (true/false)", file))
            value = None
        out.append(Attestation(key=normalise_key(str(key)), value=value, source=Source(file, f"form answer '{key}'"),
                               by=by, date=date))
    return tuple(out), tuple(issues)


@attrs.frozen
class Answers:
    """The answers of an attestation file: one form for every patient, or forms by patient id
    (``patients: {ID: {question: yes}}``, for screening many patients)."""

    common: tuple[Attestation, ...] = ()
    by_patient: dict = attrs.field(factory=dict)  # patient id -> tuple of Attestation
    issues: tuple[DataIssue, ...] = ()

    def apply(self, patient: Patient) -> Patient:
        return merge(patient, self.common + tuple(self.by_patient.get(patient.id, ())), self.issues)


def load_answers(path: str | Path) -> Answers:
    """An attestation file: a form, a QuestionnaireResponse, or ``patients:`` forms by patient id."""
    data = _read(path)
    file = str(path)
    if isinstance(data, dict) and isinstance(data.get("patients"), dict):
        by_patient, issues = {}, []
        for pid, form in data["patients"].items():
            answers, found = form_from_data(form, file)
            by_patient[str(pid)] = tuple(attrs.evolve(a, source=Source(file, f"patients.{pid}: {a.source.record}"))
                                         for a in answers)
            issues.extend(attrs.evolve(i, location=f"patients.{pid}.{i.location}") for i in found)
        return Answers(by_patient=by_patient, issues=tuple(issues))
    answers, issues = form_from_data(data, file)
    return Answers(common=answers, issues=issues)


@attrs.frozen
class SiteMapping:
    """A site's code system and, for each of its codes, the attestation it answers."""

    system: str
    codes: dict  # code -> attestation key (normalised)
    file: str = ""


def load_site_mapping(path: str | Path) -> SiteMapping:
    data = _read(path)
    file = str(path)
    if not isinstance(data, dict) or not isinstance(data.get("system"), str) or not isinstance(data.get("codes"), dict):
        raise DataError("a site mapping needs 'system' (the site's code-system URI) and 'codes' (code: attestation)",
                        file=file, hint="see docs/fhir.md, 'Attestations from a site's own codes'")
    codes = {}
    for code, target in data["codes"].items():
        if isinstance(target, dict):
            target = target.get("attestation")
        if not isinstance(target, str) or not target.strip():
            raise DataError(f"code {code!r} maps to {target!r}, not to an attestation", file=file,
                            location=f"codes.{code}", hint="write  CODE: informed consent")
        codes[str(code)] = normalise_key(target)
    return SiteMapping(system=data["system"].strip(), codes=codes, file=file)


def apply_site_mapping(patient: Patient, mapping: SiteMapping) -> Patient:
    """Turn the record's observations in the site's code system into attestations."""
    found: list[Attestation] = []
    issues: list[DataIssue] = []
    for obs in patient.observations:
        for coding in obs.codes:
            if coding.system != mapping.system or coding.code not in mapping.codes:
                continue
            key = mapping.codes[coding.code]
            raw = obs.result if obs.result is not None else (obs.value_text if obs.value_text is not None else obs.value)
            value = {"true": True, "false": False, "positive": True, "negative": False}.get(str(raw).lower(), None) \
                if raw is not None else None
            if value is None and raw is not None:
                value = _yes_no(raw)
                if isinstance(value, str) or value is None:
                    issues.append(DataIssue(obs.source.record, f"the site code {coding.code} ({key}) has the value "
                                                               f"{raw!r}, not yes or no; the attestation stays unknown",
                                            f"the mapping {mapping.file} reads yes/no values", patient.source_file))
                    value = None
            found.append(Attestation(key=key, value=value,
                                     source=Source(obs.source.file, f"{obs.source.record} (site code {coding.code})"),
                                     date=obs.date))
    return merge(patient, tuple(found), tuple(issues))


def merge(patient: Patient, attestations: tuple[Attestation, ...],
          issues: tuple[DataIssue, ...] = ()) -> Patient:
    """The record with these answers added (the record's own answers are kept beside them)."""
    return attrs.evolve(patient, attestations=patient.attestations + tuple(attestations),
                        issues=patient.issues + tuple(issues))
