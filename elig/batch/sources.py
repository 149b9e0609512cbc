"""Reading a population: native files, FHIR bundles, NDJSON, and FHIR Bulk Data exports.

Inputs are files and folders (searched recursively for ``*.json``, ``*.yaml``,
``*.yml``, ``*.ndjson``, ``*.jsonl``). An NDJSON line holds one native record or one
FHIR Bundle (or Patient). A FHIR Bulk Data export writes one resource type per file
(``Patient.ndjson``, ``Observation.ndjson``, ...), each line a bare resource: such
files are recognised by their first line and read together, each resource going to
the patient its ``subject`` (or ``patient``) references, and each patient's resources
read as one bundle by elig's FHIR reader. So every record is read exactly as
``elig explain`` reads it.

A record that cannot be read yields a ``Record`` with ``error`` set (file, line and
reason); the population goes on.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Iterator

import attrs

from elig.diagnostics import DataError, EligError, one_line
from elig.records.loader import load_patient, patient_from_data
from elig.records.patient import Patient

SUFFIXES = (".json", ".yaml", ".yml", ".ndjson", ".jsonl")
NDJSON = (".ndjson", ".jsonl")


@attrs.frozen
class Record:
    source: str
    line: int | None = None
    patient: Patient | None = None
    error: str | None = None
    origin: str = "file"  # file | ndjson | bulk: how to read the record again

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line is not None else self.source


def _files(inputs: Iterable[str | Path]) -> Iterator[tuple[Path, str | None]]:
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            found = sorted(f for f in path.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
            if not found:
                yield path, "no patient files (*.json, *.yaml, *.yml, *.ndjson, *.jsonl) in this folder"
            for f in found:
                yield f, None
        elif path.exists():
            yield path, None
        else:
            yield path, "no such file or directory"


def _first_resource_type(path: Path) -> str | None:
    """The resourceType of the first line of an NDJSON file, when it is a bare FHIR resource."""
    try:
        with path.open(encoding="utf-8") as fh:
            for text in fh:
                if text.strip():
                    data = json.loads(text)
                    return data.get("resourceType") if isinstance(data, dict) else None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return None


def is_bulk_file(path: Path) -> bool:
    """A Bulk Data file: NDJSON of bare resources of one type (not Bundles; Patient only beside others)."""
    if path.suffix.lower() not in NDJSON:
        return False
    rtype = _first_resource_type(path)
    return rtype is not None and rtype != "Bundle"


def read_population(inputs: Iterable[str | Path]) -> Iterator[Record]:
    """Every record of the inputs, in order: files as given, folders sorted, NDJSON line by line."""
    files = list(_files(inputs))
    bulk = [f for f, err in files if err is None and is_bulk_file(f)]
    # Patient.ndjson alone, without other resource files, is a plain list of Patient records.
    if bulk and not any(_first_resource_type(f) != "Patient" for f in bulk):
        bulk = []
    for path, err in files:
        if err is not None:
            yield Record(str(path), error=err)
        elif path in bulk:
            continue
        elif path.suffix.lower() in NDJSON:
            yield from _ndjson(path)
        else:
            try:
                yield Record(str(path), patient=load_patient(path))
            except EligError as exc:
                yield Record(str(path), error=one_line(exc))
    if bulk:
        yield from read_bulk(bulk)


def _ndjson(path: Path) -> Iterator[Record]:
    try:
        with path.open(encoding="utf-8") as fh:
            for number, text in enumerate(fh, 1):
                if not text.strip():
                    continue
                try:
                    data = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield Record(str(path), number, error=f"line {number}: not valid JSON: {exc.msg} "
                                                          f"(column {exc.colno}) (each line must hold one "
                                                          f"complete JSON record)")
                    continue
                try:
                    yield Record(str(path), number, patient=patient_from_data(data, f"{path}:{number}"),
                                 origin="ndjson")
                except EligError as exc:
                    yield Record(str(path), number, error=f"line {number}: {one_line(exc)}")
    except (OSError, UnicodeDecodeError) as exc:
        yield Record(str(path), error=f"cannot read the file: {exc}")


def _patient_ref(resource: dict) -> str | None:
    for key in ("subject", "patient"):
        ref = resource.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("reference"), str):
            return ref["reference"]
    return None


def read_bulk(files: list[Path]) -> Iterator[Record]:
    """A Bulk Data export: resources grouped by the patient they reference, one bundle per patient.

    Resources are held in memory grouped by patient (a bulk export is not ordered by
    patient); Medication resources are given to every bundle, so references resolve.
    """
    patients: dict[str, tuple[str, int, dict]] = {}
    by_patient: dict[str, list[dict]] = defaultdict(list)
    shared: list[dict] = []
    problems: list[Record] = []
    for path in sorted(files):
        with path.open(encoding="utf-8") as fh:
            for number, text in enumerate(fh, 1):
                if not text.strip():
                    continue
                try:
                    resource = json.loads(text)
                except json.JSONDecodeError as exc:
                    problems.append(Record(str(path), number, error=f"line {number}: not valid JSON: {exc.msg}"))
                    continue
                if not isinstance(resource, dict):
                    problems.append(Record(str(path), number, error=f"line {number}: not a FHIR resource"))
                    continue
                rtype = resource.get("resourceType")
                if rtype == "Patient":
                    pid = resource.get("id")
                    if not isinstance(pid, str) or not pid:
                        problems.append(Record(str(path), number, error=f"line {number}: a Patient without an id "
                                                                       f"cannot be linked to its resources"))
                        continue
                    patients[f"Patient/{pid}"] = (str(path), number, resource)
                elif rtype == "Medication":
                    shared.append(resource)
                else:
                    ref = _patient_ref(resource)
                    if ref is None:
                        continue  # not about one patient (Organization, Practitioner, ...)
                    by_patient[ref.split("/_history")[0]].append(resource)
    yield from problems
    for ref, (file, number, resource) in patients.items():
        entries = [{"fullUrl": ref, "resource": resource}]
        entries += [{"resource": r} for r in by_patient.pop(ref, [])]
        entries += [{"resource": r} for r in shared]
        bundle = {"resourceType": "Bundle", "type": "collection", "entry": entries}
        try:
            yield Record(file, number, patient=patient_from_data(bundle, f"{file}:{number}"), origin="bulk")
        except EligError as exc:
            yield Record(file, number, error=f"line {number}: {one_line(exc)}")
    for ref, resources in by_patient.items():
        yield Record(ref, error=f"{len(resources)} resource(s) reference {ref}, which is not in the export's "
                                f"Patient file")



def read_again(source: str, line: int | None, origin: str, patient_id: str) -> Patient:
    """The record of one patient of a batch, read again from where it came from."""
    path = Path(source)
    if origin == "file":
        return load_patient(path)
    if origin == "ndjson":
        for record in _ndjson(path):
            if record.line == line:
                if record.patient is None:
                    raise DataError(record.error or "cannot be read", file=source, location=f"line {line}")
                return record.patient
    if origin == "bulk":
        files = [f for f in sorted(path.parent.glob("*")) if f.is_file() and is_bulk_file(f)]
        for record in read_bulk(files):
            if record.patient is not None and record.patient.id == patient_id:
                return record.patient
    raise DataError(f"patient {patient_id!r} is no longer at line {line}" if line else
                    f"patient {patient_id!r} cannot be found again", file=source,
                    hint="the source changed since the tables were written: write them again")
