"""Batch screening in SQL (DuckDB): the same outcome as the interpreter for every patient and criterion.

Three populations: every protocol case under protocols/cases/ (boundaries and unknowns
included), 10,000 generated patients of NCT06021067, and records of all three protocols
made awkward on purpose (partial and future dates, twins at one instant, missing or wrong
units, unreadable values, missing sex, refuted conditions: tests/batch_support.py).
"""

from __future__ import annotations

import collections
import random
import sys
from pathlib import Path

import pytest

import elig
from elig.batch import compiler as cc, runners, tables
from elig.commands import casefile
from elig.engine.evaluator import as_date

from batch_support import awkward, differences

ROOT = Path(__file__).resolve().parent.parent
PROTOCOLS = sorted((ROOT / "protocols").glob("*.elig"))
sys.path.insert(0, str(ROOT / "bench"))


def _cases(pf: Path):
    return [case for cf in casefile.case_files(casefile.case_dir_for(pf, pf.stem)) for case in casefile.load_cases(cf)]


def _duckdb(checked, patients, as_of):
    compiled, result = runners.DuckDBEngine(tables.arrow_tables(patients)).run(checked, as_of)
    return list(runners.rows(compiled, result))


@pytest.mark.parametrize("pf", PROTOCOLS, ids=lambda p: p.stem)
def test_every_protocol_case_agrees_with_the_interpreter(pf):
    checked = elig.load_protocol(pf)
    by_date = collections.defaultdict(list)
    for case in _cases(pf):
        by_date[case.as_of].append(case)
    checked_cases = 0
    for as_of, cases in by_date.items():
        patients = [c.patient() for c in cases]
        rows = _duckdb(checked, patients, as_of)
        assert len(rows) == len(patients)
        assert differences(checked, patients, as_of, rows) == []
        checked_cases += len(cases)
    assert checked_cases >= 30


@pytest.mark.parametrize("pf", PROTOCOLS, ids=lambda p: p.stem)
def test_awkward_records_agree_with_the_interpreter(pf):
    checked = elig.load_protocol(pf)
    cases = _cases(pf)
    rng = random.Random(20240315)
    as_of = cases[0].as_of
    patients = []
    for i in range(700):
        record = awkward(rng.choice(cases).record, rng, as_of)
        record["id"] = f"awkward-{i}"
        patients.append(elig.patient_from_data(record, "awkward"))
    rows = _duckdb(checked, patients, as_of)
    assert differences(checked, patients, as_of, rows) == []
    # The population reaches every outcome, so agreement is not agreement on one answer.
    seen = collections.Counter(o for row in rows for _, o in row.outcomes)
    assert {"met", "not met", "unknown"} <= set(seen)
    assert {"eligible", "ineligible", "undetermined"} & {r.verdict for r in rows}


def test_ten_thousand_generated_patients_agree_with_the_interpreter(tmp_path):
    try:
        from population import AS_OF, generate
    except ImportError:  # before bench/population.py exists
        from bench_screen import AS_OF, generate

    checked = elig.load_protocol(ROOT / "protocols" / "NCT06021067.elig")
    patients = [elig.patient_from_data(p, "generated") for p in generate(10_000, 7)]
    folder = tmp_path / "tables"
    assert tables.write_tables(patients, folder, batch=4_000) == 10_000  # through Parquet, several row groups
    # In chunks of 3,000 patients (the query runs four times, as it does on a large population).
    engine = runners.DuckDBEngine(folder, chunk=3_000)
    assert engine.chunks() == [(0, 3_000), (3_000, 6_000), (6_000, 9_000), (9_000, 10_000)]
    compiled, result = engine.run(checked, AS_OF)
    rows = list(runners.rows(compiled, result))
    assert [r.patient_id for r in rows] == [p.id for p in patients]
    assert differences(checked, patients, AS_OF, rows) == []
    verdicts = collections.Counter(r.verdict for r in rows)
    assert set(verdicts) == {"eligible", "ineligible", "undetermined"}


def test_a_chunked_run_written_to_parquet_is_the_whole_population_run(tmp_path):
    """DuckDBEngine.write streams chunk by chunk into one file: the same rows, in patient order,
    as one run over every patient; and the engine reads every patient again afterwards."""
    import pyarrow.parquet as pq

    try:
        from population import AS_OF, generate
    except ImportError:
        from bench_screen import AS_OF, generate

    checked = elig.load_protocol(ROOT / "protocols" / "NCT06021067.elig")
    patients = [elig.patient_from_data(p, "generated") for p in generate(250, 11)]
    folder = tmp_path / "tables"
    tables.write_tables(patients, folder, batch=100)
    whole = runners.DuckDBEngine(folder, chunk=0).run(checked, AS_OF)[1]
    chunked = runners.DuckDBEngine(folder, chunk=60)
    assert len(chunked.chunks()) == 5
    chunked.write(checked, AS_OF, tmp_path / "out.parquet")
    written = pq.read_table(tmp_path / "out.parquet")
    assert written.num_rows == 250 and written.to_pylist() == whole.to_pylist()
    assert chunked.con.execute("SELECT count(*) FROM patients").fetchone()[0] == 250


def test_any_query_runs_chunk_by_chunk_as_it_runs_over_every_patient(tmp_path):
    """A query over the tables (comments first, with or without a WITH clause) is prepared once and
    run on each chunk's patients: the rows are those of one run over every patient."""
    try:
        from population import generate
    except ImportError:
        from bench_screen import generate

    patients = [elig.patient_from_data(p, "generated") for p in generate(120, 5)]
    folder = tmp_path / "tables"
    tables.write_tables(patients, folder, batch=50)
    queries = [
        "SELECT pk, patient_id FROM patients ORDER BY pk",
        "-- a comment, then a WITH clause\n-- that names no table\nWITH n AS (SELECT pk, count(*) AS k FROM "
        "observations GROUP BY pk)\nSELECT p.pk, coalesce(n.k, 0) AS k FROM patients p LEFT JOIN n ON n.pk = p.pk "
        "ORDER BY p.pk",
    ]
    whole = runners.DuckDBEngine(folder, chunk=0)
    chunked = runners.DuckDBEngine(folder, chunk=25)
    assert len(chunked.chunks()) == 5
    for sql in queries:
        expected = whole.con.sql(sql).to_arrow_table().to_pylist()
        got = [r for batch in chunked.batches(sql) for r in batch.to_pylist()]
        assert got == expected and len(got) == 120
    assert sum(r["k"] for r in got) == sum(len(p.observations) for p in patients) > 0


def test_the_newest_value_is_never_skipped_for_an_older_one():
    """An unusable newest creatinine (no unit) leaves E8 unknown; arg_max would take the older one."""
    checked = elig.load_protocol(ROOT / "protocols" / "NCT06021067.elig")
    record = {"id": "p", "birth_date": "1960-01-01", "sex": "male", "observations": [
        {"concept": "serum creatinine", "value": 1.0, "unit": "mg/dL", "date": "2024-03-10"},
        {"concept": "serum creatinine", "value": 2.0, "date": "2024-03-14"}]}
    patient = elig.patient_from_data(record, "p")
    (row,) = _duckdb(checked, [patient], "2024-03-15")
    assert dict(row.outcomes)["E8"] == "unknown"
    assert differences(checked, [patient], "2024-03-15", [row]) == []


def test_a_construct_the_compiler_cannot_express_is_an_error_naming_the_criterion(monkeypatch):
    checked = elig.load_protocol(ROOT / "protocols" / "NCT06021067.elig")
    monkeypatch.delitem(cc.DERIVED_SQL, "cockcroft-gault")
    with pytest.raises(cc.CompileError) as info:
        cc.compile_protocol(checked, as_date("2024-03-15"))
    message = str(info.value)
    assert "criterion I4.6" in message and "Cockcroft-Gault" in message and "--engine python" in message


# ---------------------------------------------------------------- the command line
def _population_file(tmp_path, n=60):
    import json

    try:
        from population import generate
    except ImportError:
        from bench_screen import generate
    path = tmp_path / "population.ndjson"
    with path.open("w", encoding="utf-8") as fh:
        for record in generate(n, 3):
            fh.write(json.dumps(record) + "\n")
        fh.write("{not json\n")
    return path


def test_screen_gives_the_same_table_on_duckdb_and_the_interpreter(tmp_path):
    from click.testing import CliRunner

    from elig.commands.cli import main

    population = _population_file(tmp_path)
    protocol = str(ROOT / "protocols" / "NCT06021067.elig")
    out = {}
    for engine in ("duckdb", "python"):
        result = CliRunner().invoke(main, ["screen", protocol, str(population), "--as-of", "2024-03-15",
                                           "--engine", engine, "--csv", str(tmp_path / f"{engine}.csv")])
        assert result.exit_code == 1, result.output  # the broken line fails; the batch goes on
        assert "line 61" in result.output
        out[engine] = (tmp_path / f"{engine}.csv").read_text(encoding="utf-8")
    assert out["duckdb"] == out["python"]
    assert out["duckdb"].count("\n") == 62  # header, 60 patients, the error row


def test_tables_then_screen_then_explain_one_patient_from_the_batch(tmp_path):
    from click.testing import CliRunner

    from elig.commands.cli import main

    population = _population_file(tmp_path, 20)
    runner = CliRunner()
    made = runner.invoke(main, ["tables", str(population), "--out", str(tmp_path / "tables")])
    assert made.exit_code == 1 and "wrote 20 patients" in made.output and "line 21" in made.output
    protocol = str(ROOT / "protocols" / "NCT06021067.elig")
    screened = runner.invoke(main, ["screen", protocol, str(tmp_path / "tables"), "--as-of", "2024-03-15",
                                    "--jsonl", str(tmp_path / "rows.jsonl")])
    assert screened.exit_code == 0, screened.output
    import json

    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text(encoding="utf-8").splitlines()]
    row = rows[7]
    explained = runner.invoke(main, ["explain", protocol, row["patient_id"], "--from-batch", str(tmp_path / "tables"),
                                     "--as-of", "2024-03-15", "--format", "json"])
    assert explained.exit_code == 0, explained.output
    report = json.loads(explained.output)
    assert report["verdict"] == row["verdict"]
    assert {c["id"]: c["outcome"] for c in report["criteria"]} == row["criteria"]
    by_number = runner.invoke(main, ["explain", protocol, "#8", "--from-batch", str(tmp_path / "tables"),
                                     "--as-of", "2024-03-15", "--format", "json"])
    assert json.loads(by_number.output)["patient_id"] == row["patient_id"] == report["patient_id"]
    missing = runner.invoke(main, ["explain", protocol, "nobody", "--from-batch", str(tmp_path / "tables")])
    assert missing.exit_code == 1 and "no patient 'nobody'" in missing.output


def test_a_protocol_the_compiler_cannot_express_stops_the_duckdb_screen(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from elig.commands.cli import main

    monkeypatch.delitem(cc.DERIVED_SQL, "cockcroft-gault")
    population = _population_file(tmp_path, 5)
    result = CliRunner().invoke(main, ["screen", str(ROOT / "protocols" / "NCT06021067.elig"), str(population),
                                       "--as-of", "2024-03-15"])
    assert result.exit_code == 1
    assert "error: criterion I4.6" in result.output and "--engine python" in result.output
    assert "Traceback" not in result.output


def test_fhir_bulk_data_is_read_by_patient(tmp_path):
    """A bulk export (one resource type per file) gives the same outcomes as the same bundles."""
    import json

    bundle = json.loads((ROOT / "tests" / "data" / "fhir" / "creatinine_units.json").read_text(encoding="utf-8"))
    resources = [e["resource"] for e in bundle["entry"]]
    patient = next(r for r in resources if r["resourceType"] == "Patient")
    export = tmp_path / "export"
    export.mkdir()
    by_type = collections.defaultdict(list)
    for r in resources:
        if r["resourceType"] != "Patient":
            r = dict(r, subject={"reference": f"Patient/{patient['id']}"})
        by_type[r["resourceType"]].append(r)
    for rtype, items in by_type.items():
        (export / f"{rtype}.ndjson").write_text("".join(json.dumps(r) + "\n" for r in items), encoding="utf-8")
    from elig.batch import api as batch_api

    loaded = batch_api.load([export], tmp_path / "tables")
    assert loaded.patients == 1 and not loaded.failures
    checked = elig.load_protocol(ROOT / "protocols" / "NCT06021067.elig")
    (row,) = list(batch_api.screen(checked, tmp_path / "tables", "2024-03-15"))
    direct = elig.evaluate(checked, elig.patient_from_data(bundle, "bundle"), "2024-03-15")
    assert dict(row.outcomes) == {c.id: str(c.outcome) for c in direct.criteria}


def test_a_pregnancy_result_without_a_readable_date_may_be_the_newest():
    """A positive test whose date cannot be read is never passed over for an older negative one,
    nor for the 'not asked' reading of a woman past childbearing age; alike in SQL and the interpreter."""
    checked = elig.parse_protocol_text('protocol P\nexclusion\n  E1 "Pregnant women"\n'
                                       '    pregnant (if of childbearing potential)\n')

    def woman(born, *tests):
        return elig.patient_from_data({"id": f"w{born}{len(tests)}", "birth_date": born, "sex": "female",
                                       "observations": [{"concept": "pregnancy test", "result": r, "date": d}
                                                        for r, d in tests]}, "w.yaml")

    cases = [
        (woman("1994-01-01", ("negative", "2024-03-10"), ("positive", "2024-02-30")), "unknown"),  # was not met
        (woman("1964-01-01", ("positive", "garbage")), "unknown"),  # was 'not asked'
        (woman("1964-01-01", ("negative", "garbage")), "not met"),  # a 'no' cannot make her pregnant
        (woman("1994-01-01", ("positive", "2024-03-10"), ("positive", "garbage")), "met"),  # says the same
        (woman("1994-01-01", ("negative", "2024-03-10")), "not met"),
    ]
    patients = [p for p, _ in cases]
    rows = _duckdb(checked, patients, "2024-03-15")
    assert [dict(r.outcomes)["E1"] for r in rows] == [want for _, want in cases]
    assert differences(checked, patients, "2024-03-15", rows) == []
    why = elig.evaluate(checked, patients[0], "2024-03-15").criteria[0].explanation.summary
    assert "a result without a readable date may be the newest: pregnancy test positive on an unknown date" in why



def test_attestations_beyond_one_mask_of_answers_agree_with_the_interpreter():
    """Each attestation takes two bits of a 64-bit number per patient (a yes, a no), 31 to a number:
    a protocol that asks 40 questions needs two, and every answer (yes, no, both, none) reads as in
    the interpreter."""
    questions = [f"question number {n}" for n in range(40)]
    text = "protocol TEST-ATT\n  title \"forty questions\"\n\ninclusion\n" + "".join(
        f"  A{n} \"{q}\"\n    attested \"{q}\"\n" for n, q in enumerate(questions))
    checked = elig.parse_protocol_text(text)
    rng = random.Random(40)
    patients = []
    for i in range(60):
        answers = {}
        for q in questions:
            kind = rng.randrange(4)
            if kind == 0:
                answers[q] = True
            elif kind == 1:
                answers[q] = False
            elif kind == 2:  # answered twice, differently: unknown
                answers[q] = True
                answers[q.upper()] = False
        record = {"id": f"att-{i}", "birth_date": "1970-01-01", "sex": "female", "attestations": answers}
        patients.append(elig.patient_from_data(record, "att"))
    rows = _duckdb(checked, patients, "2024-03-15")
    assert differences(checked, patients, "2024-03-15", rows) == []
    by_criterion = collections.defaultdict(set)
    for row in rows:
        for cid, outcome in row.outcomes:
            by_criterion[cid].add(outcome)
    # The questions of the second number (A31 to A39) reach every outcome too.
    assert all(by_criterion[f"A{n}"] == {"met", "not met", "unknown"} for n in (0, 30, 31, 39))
