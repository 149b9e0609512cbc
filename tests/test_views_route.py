"""The batch route reads FHIR only through elig's SQL-on-FHIR views, and reads it as the interpreter does.

Differential tests: for every FHIR bundle of the repository, the Synthea bundles of the
shared data, and bundles made awkward on purpose (tests/fhir_awkward.py), the tables built
through the views equal, row for row, the tables built from the FHIR reader's patient
(``elig.records.fhir``), data issues and unknown reasons included; so the SQL decides every
criterion as the interpreter does. Then the same through view output written as plain
Parquet (what Pathling writes from the same views), and through a Bulk Data export.
"""

from __future__ import annotations

import collections
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import elig
from elig.batch import assemble, runners, sources, tables
from elig.batch.views import arrow_schema, bundle_resources, columns, holds_resource, load_view
from elig.commands.cli import main
from elig.engine.evaluator import as_date
from elig.records.fhir import patient_from_fhir

from fhir_awkward import awkward_bundle

ROOT = Path(__file__).resolve().parent.parent
SYNTHEA = Path("/work/shared/data/fhir")
AS_OF = "2024-03-15"


def _bundles() -> dict[str, dict]:
    files = sorted((ROOT / "tests" / "data" / "records").glob("*.json")) + sorted(
        (ROOT / "tests" / "data" / "fhir").glob("*.json")) + sorted(SYNTHEA.glob("*.json"))
    found = {f.name: json.loads(f.read_text(encoding="utf-8")) for f in files}
    return {name: d for name, d in found.items() if d.get("resourceType") in ("Bundle", "Patient")}


def _table_rows(patient) -> dict[str, list[dict]]:
    return tables.rows_of(patient, 0)


def _differences(bundle: dict, name: str, messages: bool = True) -> list[str]:
    """Where the two routes differ. The tables carry the number of issues; ``messages`` compares
    their text too (the views name a bundle's urn:uuid references as Type/id, and a rebuilt bundle
    may list the issues of a second patient in another order)."""
    direct = patient_from_fhir(bundle, name)
    viewed = assemble.patient_from_fhir(bundle, name)
    out = []
    a, b = _table_rows(direct), _table_rows(viewed)
    for table in tables.TABLES:
        if a[table] != b[table]:
            first = next(((x, y) for x, y in zip(a[table], b[table]) if x != y), (len(a[table]), len(b[table])))
            out.append(f"{name}: {table}: {first}")
    if messages and [i.message for i in direct.issues] != [i.message for i in viewed.issues]:
        out.append(f"{name}: issues {[i.message for i in direct.issues]} != {[i.message for i in viewed.issues]}")
    return out


def test_every_bundle_gives_the_same_tables_and_issues_through_the_views():
    bundles = _bundles()
    assert len(bundles) >= 18
    assert [d for name, bundle in bundles.items() for d in _differences(bundle, name)] == []


def test_awkward_bundles_give_the_same_tables_through_the_views():
    small = {n: b for n, b in _bundles().items() if b.get("resourceType") == "Bundle" and len(b.get("entry", [])) < 60}
    rng = random.Random(20240315)
    seen = collections.Counter()
    problems = []
    for i in range(250):
        name = rng.choice(sorted(small))
        bundle = awkward_bundle(small[name], rng, rng.randint(1, 8))
        problems += _differences(bundle, f"{name}#{i}", messages=False)
        patient = patient_from_fhir(bundle, name)
        seen["issues"] += bool(patient.issues)
        seen["problem"] += any(o.problem for o in patient.observations)
        seen["unread dates"] += any(e.unreadable_dates for e in patient.conditions + patient.procedures)
        seen["attestations"] += bool(patient.attestations)
    assert problems == []
    # The mutations reach what they are for, so agreement is not agreement on clean records.
    assert min(seen.values()) >= 10, seen


@pytest.fixture(scope="module")
def records_protocol():
    return elig.load_protocol(ROOT / "tests" / "data" / "records" / "records.elig")


def _interpreter(checked, patients):
    return [(p.id, str(r.verdict), tuple((c.id, str(c.outcome)) for c in r.criteria), len(p.issues))
            for p in patients for r in [elig.evaluate(checked, p, AS_OF)]]


def _screened(checked, folder):
    engine = runners.DuckDBEngine(folder)
    try:
        return [(row.patient_id, row.verdict, row.outcomes, row.data_issues)
                for row in runners.rows(*engine.run(checked, as_date(AS_OF)))]
    finally:
        engine.close()


def _linked(bundles: dict[str, dict]) -> dict[str, dict]:
    """The bundles whose resources all name their patient (as a Bulk Data export or a view output needs),
    and whose envelope is sound (a type, every entry a resource): outside a bundle there is no envelope."""
    out = {}
    for name, b in bundles.items():
        if b.get("resourceType") != "Bundle" or "type" not in b or not all(holds_resource(e) for e in b["entry"]):
            continue
        rs = bundle_resources(b)
        pid = [r for r in rs if r["resourceType"] == "Patient"]
        if len(pid) == 1 and all("subject" in r or "patient" in r for r in rs
                                 if r["resourceType"] in assemble.MAIN.values()):
            out[name] = b
    return out


def test_view_output_as_plain_parquet_screens_as_the_interpreter_does(tmp_path, records_protocol):
    """What Pathling writes from elig's views (one Parquet per view, its own column types) is read
    by elig screen --engine duckdb, with the interpreter's outcomes and data issues."""
    bundles = _linked(_bundles())
    assert len(bundles) >= 8
    src = tmp_path / "bundles"
    src.mkdir()
    for name, b in bundles.items():
        (src / name).write_text(json.dumps(b), encoding="utf-8")
    out = tmp_path / "views"
    made = CliRunner().invoke(main, ["views", str(src), "--out", str(out)])
    assert made.exit_code == 0, made.output
    assert sorted(p.stem for p in out.glob("*.parquet")) == sorted(assemble.VIEW_NAMES)
    # Another implementation's types: decimals as DECIMAL(32, 6), integers as int32, a view as a
    # folder of parts, as Spark writes it.
    pathling = tmp_path / "pathling"
    pathling.mkdir()
    for f in out.glob("*.parquet"):
        t = pq.read_table(f)
        fields = [pa.field(x.name, pa.decimal128(32, 6) if x.type == pa.float64() else
                           pa.int32() if x.type == pa.int64() else x.type) for x in t.schema]
        t = t.cast(pa.schema(fields))
        (pathling / f.stem).mkdir()
        pq.write_table(t, pathling / f.stem / "part-00000.parquet")
    checked = records_protocol
    expected = _interpreter(checked, [patient_from_fhir(b, n) for n, b in bundles.items()])
    for folder in (out, pathling):
        assert sources.is_view_folder(folder)
        result = CliRunner().invoke(main, ["screen", str(ROOT / "tests" / "data" / "records" / "records.elig"),
                                           str(folder), "--as-of", AS_OF, "--engine", "duckdb",
                                           "--jsonl", str(tmp_path / "rows.jsonl")])
        assert result.exit_code == 0, result.output
        rows = [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text(encoding="utf-8").splitlines()]
        got = [(r["patient_id"], r["verdict"], tuple(r["criteria"].items()), r["data_issues"]) for r in rows]
        assert sorted(got) == sorted(expected)
    assert {v for _, v, _, _ in expected} >= {"eligible", "ineligible"}


def test_a_view_output_without_the_views_columns_is_an_error_naming_the_file(tmp_path, records_protocol):
    out = tmp_path / "views"
    out.mkdir()
    pq.write_table(pa.table({"key": ["p1"], "birth_date": ["1970-01-01"]}), out / "patient.parquet")
    result = CliRunner().invoke(main, ["screen", str(ROOT / "tests" / "data" / "records" / "records.elig"),
                                       str(out), "--as-of", AS_OF, "--engine", "duckdb"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "patient.parquet" in result.output and "lacks the column(s) gender" in result.output
    assert "elig/data/views/patient.json" in result.output


def test_a_bulk_export_reads_through_the_views_as_its_bundles_read(tmp_path, records_protocol):
    bundles = _linked(_bundles())
    export = tmp_path / "export"
    export.mkdir()
    by_type = collections.defaultdict(list)
    for b in bundles.values():
        for r in bundle_resources(b):
            by_type[r["resourceType"]].append(r)
    for rtype, items in by_type.items():
        (export / f"{rtype}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in items), encoding="utf-8")
    records = list(sources.read_population([export]))
    assert all(r.patient is not None for r in records) and len(records) == len(bundles)
    for record in records:
        again = sources.read_again(record.source, record.line, record.origin, record.patient.id)
        assert _table_rows(record.patient) == _table_rows(again)  # the views, and the FHIR reader
    expected = _interpreter(records_protocol, [patient_from_fhir(b, n) for n, b in bundles.items()])
    tables.write_tables([r.patient for r in records], tmp_path / "tables")
    assert sorted(_screened(records_protocol, tmp_path / "tables")) == sorted(expected)


def test_the_view_contract_is_documented_column_by_column():
    """docs/views.md lists every view's columns with their types, as the ViewDefinitions give them."""
    text = (ROOT / "docs" / "views.md").read_text(encoding="utf-8")
    for name in assemble.VIEW_NAMES:
        view = load_view(name)
        schema = arrow_schema(view)
        assert f"`{name}`" in text, name
        row = next((line for line in text.splitlines() if line.startswith(f"| `{name}`")), "")
        assert [c.strip("` ") for c in row.split("|")[3].split(",")] == columns(view), name
        assert len(schema) == len(columns(view))


def test_bundles_screened_through_the_views_decide_every_criterion_as_the_interpreter(tmp_path, records_protocol):
    """elig screen's SQL route on FHIR bundles (read through the views) against the interpreter (the
    FHIR reader), per patient and criterion, unknowns included, and the record's data issues."""
    files = [f for f in sorted((ROOT / "tests" / "data" / "records").glob("*.json")) + sorted(SYNTHEA.glob("*.json"))
             if json.loads(f.read_text(encoding="utf-8")).get("resourceType") == "Bundle"]
    records = list(sources.read_population(files))
    assert [r.origin for r in records] == ["file"] * len(files)
    tables.write_tables([r.patient for r in records], tmp_path / "tables")
    direct = [elig.load_patient(f) for f in files]
    protocols = [records_protocol] + [elig.load_protocol(p) for p in sorted((ROOT / "protocols").glob("*.elig"))]
    outcomes = collections.Counter()
    for checked in protocols:
        expected = _interpreter(checked, direct)
        assert _screened(checked, tmp_path / "tables") == expected, checked.tree.id
        outcomes.update(o for _, _, crit, _ in expected for _, o in crit)
    assert {"met", "not met", "unknown"} <= set(outcomes)
