"""Flat tables of a population, kept as Parquet: what the compiled SQL reads.

Six tables, one row per patient or per entry, keyed by ``pk`` (the patient's position
in the input, from 0):

=============  ==================================================================
patients       pk, patient_id, source, birth_lo, birth_hi, sex, pregnant, lactating, issues
observations   pk, seq, mkey, concept, codes, value, unit, problem, result,
               d_lo, d_hi, d_sec, d_key, ref_low, ref_high, ref_unit
conditions     pk, seq, mkey, concept, codes, s_lo, s_hi, s_sec, e_lo, e_hi, status, verification, grade
procedures     pk, seq, mkey, concept, codes, s_lo, s_hi, s_sec, e_lo, e_hi, status
medications    pk, seq, mkey, concept, codes, s_lo, s_hi, s_sec, e_lo, e_hi, status
attestations   pk, seq, key, value, study
=============  ==================================================================

Values stay as recorded (``value`` in ``unit``); the query converts them to the
concept's canonical unit through a table of factors (``elig.batch.compiler``), so
the same Parquet serves every protocol and vocabulary. A date known only to the
month or year keeps both ends (``d_lo``/``d_hi``: earliest and latest day), the
time of day as seconds (``d_sec``, when recorded) and an exact key (``d_key``) that
tells two stamps apart. ``mkey`` names the entry's concept and codes in one string,
so the query matches entries to vocabulary concepts with one join on a small table.
``seq`` keeps the order of the record, which breaks ties as the interpreter does.
``mkey`` also keeps the codes' display text, a procedure's category and the body sites,
which the matching reads too.

The rows are made from a ``Patient``: elig's native reader builds it from JSON or YAML,
and the SQL-on-FHIR views with the step after them (``elig.batch.assemble``) build it
from FHIR bundles, Bulk Data and view output. The tests hold those rows to the rows of
the interpreter's own reading, data issues included.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from elig.records.dates import PartialDate
from elig.records.patient import Patient

TABLES = ("patients", "observations", "conditions", "procedures", "medications", "attestations")

_CODES = pa.list_(pa.string())
SCHEMAS: dict[str, pa.Schema] = {
    "patients": pa.schema([
        ("pk", pa.int64()), ("patient_id", pa.string()), ("source", pa.string()), ("line", pa.int32()),
        ("origin", pa.string()), ("birth_lo", pa.date32()),
        ("birth_hi", pa.date32()), ("sex", pa.string()), ("pregnant", pa.bool_()), ("lactating", pa.bool_()),
        ("unstated", pa.list_(pa.string())), ("issues", pa.int32()),
    ]),
    "observations": pa.schema([
        ("pk", pa.int64()), ("seq", pa.int32()), ("mkey", pa.string()), ("concept", pa.string()), ("codes", _CODES),
        ("value", pa.float64()), ("unit", pa.string()), ("problem", pa.string()), ("result", pa.string()),
        ("d_lo", pa.date32()), ("d_hi", pa.date32()), ("d_sec", pa.int32()), ("d_key", pa.string()),
        ("ref_low", pa.float64()), ("ref_high", pa.float64()), ("ref_unit", pa.string()), ("unread", pa.bool_()),
    ]),
    "conditions": pa.schema([
        ("pk", pa.int64()), ("seq", pa.int32()), ("mkey", pa.string()), ("concept", pa.string()), ("codes", _CODES),
        ("s_lo", pa.date32()), ("s_hi", pa.date32()), ("s_sec", pa.int32()), ("e_lo", pa.date32()),
        ("e_hi", pa.date32()), ("status", pa.string()), ("verification", pa.string()), ("grade", pa.int32()),
        ("unread", pa.bool_()), ("bad_start", pa.bool_()), ("bad_any", pa.bool_()),
    ]),
    "procedures": pa.schema([
        ("pk", pa.int64()), ("seq", pa.int32()), ("mkey", pa.string()), ("concept", pa.string()), ("codes", _CODES),
        ("s_lo", pa.date32()), ("s_hi", pa.date32()), ("s_sec", pa.int32()), ("e_lo", pa.date32()),
        ("e_hi", pa.date32()), ("status", pa.string()),
        ("unread", pa.bool_()), ("bad_start", pa.bool_()), ("bad_any", pa.bool_()),
    ]),
    "attestations": pa.schema([
        ("pk", pa.int64()), ("seq", pa.int32()), ("key", pa.string()), ("value", pa.bool_()),
        ("study", pa.string()),
    ]),
}
SCHEMAS["medications"] = SCHEMAS["procedures"]


def match_key(entry) -> str:
    """The string that names everything an entry is matched to concepts by: its concept name, its
    codes (with their display, which may name a concept the code is not in), its category and its
    body sites. The query joins it to a small table that elig builds from the vocabulary
    (``elig.batch.compiler.concept_maps``)."""
    sig = {"n": entry.concept or "", "c": [[c.system, c.code, c.display or ""] for c in entry.codes]}
    category = getattr(entry, "category", ())
    if category:
        sig["k"] = [[c.system, c.code] for c in category]
    sites = getattr(entry, "body_sites", ())
    if sites:
        sig["b"] = [[[c.system, c.code] for c in site.codes] for site in sites]
    return json.dumps(sig, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def entry_of(kind: str, key: str):
    """A record entry with only what ``match_key`` kept: enough to match it as the interpreter does."""
    from elig.records.patient import BodySite, Condition, Medication, Observation, Procedure, Source
    from elig.terminology.codes import Coding

    sig = json.loads(key)
    codes = tuple(Coding(s, c, d or None) for s, c, d in sig.get("c", []))
    common = {"source": Source("", ""), "concept": sig.get("n") or None, "codes": codes}
    sites = tuple(BodySite(codes=tuple(Coding(s, c) for s, c in site)) for site in sig.get("b", []))
    if kind == "observation":
        return Observation(**common)
    if kind == "condition":
        return Condition(**common, body_sites=sites)
    if kind == "procedure":
        return Procedure(**common, category=tuple(Coding(s, c) for s, c in sig.get("k", [])), body_sites=sites)
    return Medication(**common)


def date_key(d: PartialDate) -> str:
    t = d.time.isoformat() if d.time is not None else ""
    return f"{d.year:04d}-{d.month or 0:02d}-{d.day or 0:02d}T{t}"


def _lo(d: PartialDate | None) -> dt.date | None:
    return d.earliest() if d is not None else None


def _hi(d: PartialDate | None) -> dt.date | None:
    return d.latest() if d is not None else None


def _sec(d: PartialDate | None) -> int | None:
    t = d.time if d is not None else None
    return t.hour * 3600 + t.minute * 60 + t.second if t is not None else None


def _flags(entry) -> dict:
    """Entries the interpreter cannot place: no concept and no code (``unread``); a date given but
    unreadable, a start (``bad_start``) or any (``bad_any``)."""
    bad = getattr(entry, "unreadable_dates", ())
    return {"unread": not entry.concept and not entry.codes,
            "bad_start": any("end" not in b.lower() and "abatement" not in b.lower() for b in bad),
            "bad_any": bool(bad)}


def _codes(entry) -> list[str]:
    return [f"{c.system}|{c.code}" for c in entry.codes]


def rows_of(patient: Patient, pk: int, source: str | None = None, line: int | None = None,
            origin: str = "file") -> dict[str, list[dict]]:
    """The rows of one patient, table by table.

    ``source``, ``line`` and ``origin`` (file, ndjson or bulk) say where to read the record
    again, to explain one patient of a batch with the interpreter.
    """
    out: dict[str, list[dict]] = {name: [] for name in TABLES}
    out["patients"].append({
        "pk": pk, "patient_id": patient.id, "source": source if source is not None else patient.source_file,
        "line": line, "origin": origin, "birth_lo": _lo(patient.birth_date),
        "birth_hi": _hi(patient.birth_date), "sex": patient.sex, "pregnant": patient.pregnant,
        "lactating": patient.lactating, "unstated": list(patient.unstated_facts), "issues": len(patient.issues),
    })
    for seq, o in enumerate(patient.observations):
        codes = _codes(o)
        d = o.date
        t = d.time if d is not None else None
        out["observations"].append({
            "pk": pk, "seq": seq, "mkey": match_key(o), "concept": o.concept, "codes": codes,
            "value": o.value, "unit": o.unit, "problem": o.problem, "result": o.result,
            "d_lo": _lo(d), "d_hi": _hi(d), "d_sec": (t.hour * 3600 + t.minute * 60 + t.second) if t else None,
            "d_key": date_key(d) if d is not None else None, "ref_low": o.reference_low,
            "ref_high": o.reference_high, "unread": not o.concept and not o.codes,
            "ref_unit": o.reference_unit,
        })
    for seq, c in enumerate(patient.conditions):
        codes = _codes(c)
        out["conditions"].append({
            "pk": pk, "seq": seq, "mkey": match_key(c), "concept": c.concept, "codes": codes,
            "s_lo": _lo(c.onset), "s_hi": _hi(c.onset), "s_sec": _sec(c.onset), "e_lo": _lo(c.abatement),
            "e_hi": _hi(c.abatement), **_flags(c),
            "status": c.clinical_status, "verification": c.verification_status, "grade": c.grade,
        })
    for table, entries in (("procedures", patient.procedures), ("medications", patient.medications)):
        for seq, e in enumerate(entries):
            codes = _codes(e)
            out[table].append({
                "pk": pk, "seq": seq, "mkey": match_key(e), "concept": e.concept, "codes": codes,
                "s_lo": _lo(e.start), "s_hi": _hi(e.start), "s_sec": _sec(e.start), "e_lo": _lo(e.end),
                "e_hi": _hi(e.end), **_flags(e),
                "status": e.status,
            })
    for seq, a in enumerate(patient.attestations):
        out["attestations"].append({"pk": pk, "seq": seq, "key": a.key, "value": a.value, "study": a.study})
    return out


class ParquetTables:
    """Writes the six tables into a folder, one Parquet file each, a row group every ``batch`` patients.

    Memory stays flat in the number of patients: rows are buffered, column by column, for one
    batch only.
    """

    def __init__(self, folder: str | Path, batch: int = 50_000):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.batch = batch
        self._cols = self._empty()
        self._writers: dict[str, pq.ParquetWriter] = {}
        self._pending = 0
        self.patients = 0

    @staticmethod
    def _empty() -> dict[str, dict[str, list]]:
        return {name: {f.name: [] for f in SCHEMAS[name]} for name in TABLES}

    def add(self, patient: Patient, source: str | None = None, line: int | None = None, origin: str = "file") -> int:
        pk = self.patients
        for name, rows in rows_of(patient, pk, source, line, origin).items():
            cols = self._cols[name]
            for row in rows:
                for key, column in cols.items():
                    column.append(row[key])
        self.patients += 1
        self._pending += 1
        if self._pending >= self.batch:
            self.flush()
        return pk

    def flush(self) -> None:
        for name in TABLES:
            if name not in self._writers:
                self._writers[name] = pq.ParquetWriter(self.folder / f"{name}.parquet", SCHEMAS[name])
            cols = self._cols[name]
            if cols["pk"]:
                self._writers[name].write_table(pa.Table.from_pydict(cols, schema=SCHEMAS[name]))
        self._cols = self._empty()
        self._pending = 0

    def close(self) -> None:
        self.flush()
        for w in self._writers.values():
            w.close()
        self._writers = {}

    def __enter__(self) -> "ParquetTables":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_tables(patients: Iterable[Patient], folder: str | Path, batch: int = 50_000) -> int:
    """Write a population's tables into ``folder``; return the number of patients."""
    with ParquetTables(folder, batch) as out:
        for patient in patients:
            out.add(patient)
        return out.patients


def arrow_tables(patients: Iterable[Patient]) -> dict[str, pa.Table]:
    """The six tables in memory (for small populations, tests and ``elig explain --from-batch``)."""
    rows: dict[str, list[dict]] = {name: [] for name in TABLES}
    for pk, patient in enumerate(patients):
        for name, part in rows_of(patient, pk).items():
            rows[name].extend(part)
    return {name: pa.Table.from_pylist(rows[name], schema=SCHEMAS[name]) for name in TABLES}


def is_table_folder(path: str | Path) -> bool:
    """Whether ``path`` is a folder of elig's Parquet tables (as ``elig tables`` writes them)."""
    p = Path(path)
    return p.is_dir() and all((p / f"{name}.parquet").is_file() for name in TABLES)


def table_files(folder: str | Path) -> dict[str, Path]:
    return {name: Path(folder) / f"{name}.parquet" for name in TABLES}


def iter_arrow(folder: str | Path, name: str) -> Iterator[pa.RecordBatch]:
    yield from pq.ParquetFile(Path(folder) / f"{name}.parquet").iter_batches()
