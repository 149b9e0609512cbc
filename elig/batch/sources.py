"""Reading a population: native files, FHIR bundles, NDJSON, FHIR Bulk Data exports, and view output.

Inputs are files and folders (searched recursively for ``*.json``, ``*.yaml``,
``*.yml``, ``*.ndjson``, ``*.jsonl``). An NDJSON line holds one native record or one
FHIR Bundle (or Patient). A FHIR Bulk Data export writes one resource type per file
(``Patient.ndjson``, ``Observation.ndjson``, ...), each line a bare resource: such
files are recognised by their first line and read together, each resource going to
the patient its ``subject`` (or ``patient``) references.

FHIR is read through elig's SQL-on-FHIR ViewDefinitions (``elig.batch.assemble``):
the views flatten each resource into rows, and the step after the views makes the
patient from those rows. A folder of view output (``patient.parquet``,
``observation.parquet``, ..., as another SQL-on-FHIR implementation such as Pathling
writes them from the same views) is read the same way (``is_view_folder``).
The tests check that this gives, record by record, the patient that ``elig explain``
reads with the FHIR reader.

A record that cannot be read yields a ``Record`` with ``error`` set (file, line and
reason); the population goes on.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Iterator

import attrs

from elig.batch import assemble
from elig.diagnostics import DataError, EligError, one_line
from elig.records.loader import load_patient, patient_from_data
from elig.records.patient import Patient

VIEWS = assemble.patient_from_fhir  # how the batch route reads a FHIR bundle

SUFFIXES = (".json", ".yaml", ".yml", ".ndjson", ".jsonl")
NDJSON = (".ndjson", ".jsonl")


@attrs.frozen
class Record:
    source: str
    line: int | None = None
    patient: Patient | None = None
    error: str | None = None
    origin: str = "file"  # file | ndjson | bulk | views: how to read the record again

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
    """Every record of the inputs, in order: files as given, folders sorted, NDJSON line by line.

    A folder of view output (``is_view_folder``) is read as one population of its own."""
    inputs = list(inputs)
    for raw in inputs:
        if is_view_folder(raw):
            yield from read_view_folder(raw)
    inputs = [raw for raw in inputs if not is_view_folder(raw)]
    if not inputs:
        return
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
                yield Record(str(path), patient=load_patient(path, VIEWS))
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
                    yield Record(str(path), number, patient=patient_from_data(data, f"{path}:{number}", VIEWS),
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


def _bulk_lines(files: list[Path]) -> Iterator[tuple[str, int, dict | None, str | None]]:
    """(file, line, resource, problem) for every line of the export's files."""
    for path in sorted(files):
        with path.open(encoding="utf-8") as fh:
            for number, text in enumerate(fh, 1):
                if not text.strip():
                    continue
                try:
                    resource = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield str(path), number, None, f"line {number}: not valid JSON: {exc.msg}"
                    continue
                if not isinstance(resource, dict):
                    yield str(path), number, None, f"line {number}: not a FHIR resource"
                    continue
                if resource.get("resourceType") == "Patient" and not (isinstance(resource.get("id"), str)
                                                                        and resource.get("id")):
                    yield str(path), number, None, (f"line {number}: a Patient without an id cannot be linked "
                                                    f"to its resources")
                    continue
                yield str(path), number, resource, None


def read_bulk(files: list[Path]) -> Iterator[Record]:
    """A Bulk Data export, through the views: each resource is flattened as it is read, and the rows
    go to the patient their ``patient_key`` names (Medication rows to every patient, so references
    resolve). The rows are held in memory (a bulk export is not ordered by patient)."""
    rows = assemble.ViewRows()
    where: dict[str, tuple[str, int]] = {}
    problems: list[Record] = []
    for file, number, resource, problem in _bulk_lines(files):
        if problem is not None:
            problems.append(Record(file, number, error=problem))
            continue
        if resource.get("resourceType") == "Patient":
            where.setdefault(resource["id"], (file, number))
        rows.add(resource)
    yield from problems
    files = {key: f"{file}:{number}" for key, (file, number) in where.items()}
    for key, patient, reason in assemble.grouped_patients(rows.rows, order=rows.order, files=files):
        if patient is None:
            yield Record(f"Patient/{key}", error=reason.replace("not among the patients",
                                                                "not in the export's Patient file"))
        else:
            file, number = where[key]
            yield Record(file, number, patient=patient, origin="bulk")


def bulk_bundles(files: list[Path]) -> Iterator[tuple[str, int, dict]]:
    """A Bulk Data export as one bundle per patient (file, line of the Patient, bundle), for the
    interpreter to read one record again with the FHIR reader."""
    patients: dict[str, tuple[str, int, dict]] = {}
    by_patient: dict[str, list[dict]] = defaultdict(list)
    shared: list[dict] = []
    for file, number, resource, problem in _bulk_lines(files):
        if resource is None:
            continue
        rtype = resource.get("resourceType")
        if rtype == "Patient":
            patients[f"Patient/{resource['id']}"] = (file, number, resource)
        elif rtype == "Medication":
            shared.append(resource)
        else:
            ref = _patient_ref(resource)
            if ref is not None:
                by_patient[ref.split("/_history")[0]].append(resource)
    for ref, (file, number, resource) in patients.items():
        entries = [{"fullUrl": ref, "resource": resource}]
        entries += [{"resource": r} for r in by_patient.pop(ref, [])]
        entries += [{"resource": r} for r in shared]
        yield file, number, {"resourceType": "Bundle", "type": "collection", "entry": entries}


# ---------------------------------------------------------------- view output (Pathling, elig views)
def view_files(folder: str | Path) -> dict[str, Path]:
    """The view outputs in a folder: ``<view>.parquet`` files or ``<view>/`` folders of Parquet parts."""
    p = Path(folder)
    found = {}
    for name in assemble.VIEW_NAMES:
        for candidate in (p / f"{name}.parquet", p / name):
            if candidate.is_file() or (candidate.is_dir() and any(candidate.glob("*.parquet"))):
                found[name] = candidate
                break
    return found


def is_view_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder of SQL-on-FHIR view output (it has at least ``patient``)."""
    p = Path(path)
    return p.is_dir() and "patient" in view_files(p)


def read_view_folder(folder: str | Path) -> Iterator[Record]:
    """The patients of a folder of view output, in the order of the patient rows.

    A view the folder lacks counts as empty; a file whose columns are not the view's is an error
    naming the file and the missing columns."""
    import pyarrow.parquet as pq

    from elig.batch.views import columns, load_view

    rows: dict[str, list[dict]] = {}
    for name, path in view_files(folder).items():
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow's errors: a file that is not Parquet
            raise DataError(f"cannot read the view output: {exc}", file=str(path),
                            hint="write each view's rows as Parquet (<view>.parquet or a folder <view>/)") from None
        missing = [c for c in columns(load_view(name)) if c not in table.column_names]
        if missing:
            raise DataError(f"the {name} view output lacks the column(s) {', '.join(missing)}", file=str(path),
                            hint=f"run the ViewDefinition elig/data/views/{name}.json unchanged")
        rows[name] = table.to_pylist()
    for key, patient, reason in assemble.grouped_patients(rows, f"{folder}"):
        if patient is None:
            yield Record(str(folder), error=reason + " (the patient view)")
        else:
            yield Record(str(folder), None, patient=patient, origin="views")


def write_view_output(inputs: Iterable[str | Path], folder: str | Path) -> tuple[int, list[Record]]:
    """Run elig's views over FHIR inputs (bundles, NDJSON of bundles, Bulk Data files) and write each
    view's rows to ``folder/<view>.parquet``: what another SQL-on-FHIR implementation writes from the
    same views. Returns the number of resources read and the records that could not be read.

    Resources are linked to their patient by reference, as in a Bulk Data export, so a resource
    of a bundle must name its subject (the FHIR reader gives a bundle's unlinked resources to
    the bundle's patient)."""
    import pyarrow.parquet as pq

    from elig.batch.views import arrow_rows, bundle_resources
    from elig.records.loader import parse_record_text

    rows = assemble.ViewRows()
    problems: list[Record] = []
    count = 0

    def add(data, where: Record) -> None:
        nonlocal count
        if not isinstance(data, dict) or data.get("resourceType") not in ("Bundle", "Patient"):
            problems.append(attrs.evolve(where, error="not a FHIR Bundle or Patient"))
            return
        for resource in bundle_resources(data, rows.by_type) if data["resourceType"] == "Bundle" else [data]:
            rows.add(resource)
            count += 1

    for path, err in _files(inputs):
        if err is not None:
            problems.append(Record(str(path), error=err))
        elif is_bulk_file(path):
            for file, number, resource, problem in _bulk_lines([path]):
                if problem is not None:
                    problems.append(Record(file, number, error=problem))
                else:
                    rows.add(resource)
                    count += 1
        elif path.suffix.lower() in NDJSON:
            with path.open(encoding="utf-8") as fh:
                for number, text in enumerate(fh, 1):
                    if text.strip():
                        try:
                            add(json.loads(text), Record(str(path), number))
                        except json.JSONDecodeError as exc:
                            problems.append(Record(str(path), number, error=f"line {number}: not valid JSON: {exc.msg}"))
        else:
            try:
                add(parse_record_text(path.read_text(encoding="utf-8"), str(path)), Record(str(path)))
            except (EligError, OSError, UnicodeDecodeError) as exc:
                problems.append(Record(str(path), error=one_line(exc) if isinstance(exc, EligError) else str(exc)))
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    for name in assemble.VIEW_NAMES:
        pq.write_table(arrow_rows(rows.definitions[name], rows.rows[name]), out / f"{name}.parquet")
    return count, problems


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
        for file, number, bundle in bulk_bundles(files):
            if file == source and number == line:
                return patient_from_data(bundle, f"{file}:{number}")
    if origin == "views":
        raise DataError(f"patient {patient_id!r} came from view output, not from a FHIR record elig can read "
                        f"again", file=source,
                        hint="explain the patient from its FHIR record: elig explain PROTOCOL RECORD")
    raise DataError(f"patient {patient_id!r} is no longer at line {line}" if line else
                    f"patient {patient_id!r} cannot be found again", file=source,
                    hint="the source changed since the tables were written: write them again")
