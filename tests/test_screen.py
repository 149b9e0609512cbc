"""Batch screening: folders, NDJSON, bad records, CSV / JSON Lines / HTML outputs, jobs."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

import elig
from elig.commands import screen as screening
from test_reports import AS_OF, CASES, CRITERIA, PROTOCOL

ROOT = Path(__file__).parent.parent


@pytest.fixture()
def protocol_file(tmp_path) -> Path:
    p = tmp_path / "organ.elig"
    p.write_text(PROTOCOL, encoding="utf-8")
    return p


def _variant(name: str, i: int) -> dict:
    data = copy.deepcopy(CASES[name])
    data["id"] = f"{data['id']}-{i}"
    return data


@pytest.fixture()
def folder(tmp_path) -> Path:
    """Good native records (JSON and YAML, in a subfolder too) and one malformed file."""
    d = tmp_path / "patients"
    (d / "sub").mkdir(parents=True)
    (d / "a_eligible.json").write_text(json.dumps(_variant("eligible", 1)), encoding="utf-8")
    (d / "b_ineligible.yaml").write_text(yaml.safe_dump(_variant("ineligible", 2), allow_unicode=True),
                                         encoding="utf-8")
    (d / "c_broken.json").write_text('{"id": "X", "observations": [', encoding="utf-8")
    (d / "sub" / "d_undetermined.yml").write_text(yaml.safe_dump(_variant("undetermined", 3), allow_unicode=True),
                                                  encoding="utf-8")
    (d / "notes.txt").write_text("not a patient", encoding="utf-8")  # ignored: not a patient suffix
    return d


@pytest.fixture()
def ndjson(tmp_path) -> Path:
    lines = [json.dumps(_variant(name, i)) for i, name in enumerate(["eligible", "ineligible", "undetermined"] * 4)]
    lines.insert(5, '{"id": "broken", ')  # malformed line 6
    lines.insert(8, "")  # blank lines are skipped
    lines.insert(9, '["not", "a", "record"]')  # JSON, but not a patient record: line 10
    p = tmp_path / "many.ndjson"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return p


def test_screen_folder_rows_and_errors(protocol_file, folder):
    rows = list(screening.screen(protocol_file, [folder], as_of=AS_OF))
    assert [r.index for r in rows] == [0, 1, 2, 3]
    good = [r for r in rows if not r.failed]
    bad = [r for r in rows if r.failed]
    assert [(r.patient_id, r.verdict) for r in good] == [
        ("PT-ELIG-1", "eligible"), ("PT-INEL-2", "ineligible"), ("PT-UND-3", "undetermined")]
    assert [c for c, _ in good[0].outcomes] == CRITERIA
    assert len(bad) == 1 and bad[0].source.endswith("c_broken.json")
    assert "not valid JSON" in bad[0].error
    assert "I1" in good[1].excluded_by


def test_screen_ndjson_reports_line(protocol_file, ndjson):
    rows = list(screening.screen(protocol_file, [ndjson], as_of=AS_OF))
    assert len(rows) == 14
    bad = [r for r in rows if r.failed]
    assert [(r.line, r.where) for r in bad] == [(6, f"{ndjson}:6"), (10, f"{ndjson}:10")]
    assert "not valid JSON" in bad[0].error
    assert "mapping" in bad[1].error
    good = [r for r in rows if not r.failed]
    assert [r.verdict for r in good] == ["eligible", "ineligible", "undetermined"] * 4
    assert all(r.line is not None for r in rows)


def test_missing_input_is_a_row(protocol_file, tmp_path):
    rows = list(screening.screen(protocol_file, [tmp_path / "nope.json"], as_of=AS_OF))
    assert len(rows) == 1 and rows[0].failed and "no such file" in rows[0].error


def test_screen_accepts_checked_protocol_and_explain(protocol_file, folder, tmp_path):
    checked = elig.load_protocol(protocol_file)
    out = tmp_path / "html"
    rows = list(screening.screen(checked, [folder], as_of=AS_OF, explain=True, html_dir=out))
    good = [r for r in rows if not r.failed]
    for r in good:
        assert r.report and (out / r.report).is_file()
        assert "<!DOCTYPE html>" in (out / r.report).read_text(encoding="utf-8")


def test_jobs_2_same_rows_as_jobs_1(protocol_file, folder, ndjson):
    one = list(screening.screen(protocol_file, [folder, ndjson], as_of=AS_OF, jobs=1))
    two = list(screening.screen(protocol_file, [folder, ndjson], as_of=AS_OF, jobs=2, chunksize=2))
    assert [r.index for r in two] == list(range(len(two)))
    assert one == two


def test_jobs_2_with_in_memory_protocol(folder):
    checked = elig.parse_protocol_text(PROTOCOL, file="<in memory>")
    one = list(screening.screen(checked, [folder], as_of=AS_OF, jobs=1))
    two = list(screening.screen(checked, [folder], as_of=AS_OF, jobs=2))
    assert one == two


# ---------------------------------------------------------------- the command
def test_command_writes_outputs_and_exit_1_on_bad_record(protocol_file, folder, ndjson, tmp_path):
    out_csv, out_jsonl, out_html = tmp_path / "rows.csv", tmp_path / "rows.jsonl", tmp_path / "html"
    result = CliRunner().invoke(screening.command, [
        str(protocol_file), str(folder), str(ndjson), "--as-of", AS_OF, "--csv", str(out_csv),
        "--jsonl", str(out_jsonl), "--html-dir", str(out_html)])
    assert result.exit_code == 1, result.output
    assert "c_broken.json" in result.stderr and "not valid JSON" in result.stderr
    assert f"{ndjson}:6" in result.stderr
    assert "failed" in result.stderr

    with out_csv.open(encoding="utf-8") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 4 + 14
    assert list(table[0])[-len(CRITERIA):] == CRITERIA
    assert table[0]["verdict"] == "eligible" and table[0]["I1"] == "met"
    assert table[2]["verdict"] == "error" and table[2]["error"]

    rows = [json.loads(line) for line in out_jsonl.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 18
    assert rows[1]["verdict"] == "ineligible" and rows[1]["criteria"]["I1"] == "not met"
    assert rows[2]["error"] and rows[2]["verdict"] is None

    index = (out_html / "index.html").read_text(encoding="utf-8")
    assert "Criteria that exclude most patients" in index
    assert "<script" not in index.lower() and "http" not in index
    for r in rows:
        if r["report"]:
            assert f'href="{r["report"]}"' in index
            assert (out_html / r["report"]).is_file()
    assert sum(1 for r in rows if r["report"]) == 15


def test_command_exit_0_when_all_read(protocol_file, folder, tmp_path):
    (folder / "c_broken.json").unlink()
    result = CliRunner().invoke(screening.command, [str(protocol_file), str(folder), "--as-of", AS_OF,
                                                    "--jsonl", str(tmp_path / "r.jsonl"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""  # quiet and no progress bar when not a terminal
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 3


def test_command_csv_to_stdout(protocol_file, folder):
    result = CliRunner().invoke(screening.command, [str(protocol_file), str(folder), "--as-of", AS_OF])
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("index,patient_id,source")
    assert len(lines) == 5


def test_command_jobs_2(protocol_file, folder, ndjson, tmp_path):
    outs = []
    for jobs in ("1", "2"):
        path = tmp_path / f"rows{jobs}.csv"
        result = CliRunner().invoke(screening.command, [str(protocol_file), str(folder), str(ndjson),
                                                        "--as-of", AS_OF, "--jobs", jobs, "--csv", str(path), "-q"])
        assert result.exit_code == 1
        outs.append(path.read_text(encoding="utf-8"))
    assert outs[0] == outs[1]


def test_command_bad_protocol_and_date(tmp_path, folder):
    bad = tmp_path / "bad.elig"
    bad.write_text("protocol X\ninclusion\n  I1 \"x\"\n    flux capacitor ≥ 1 mL\n", encoding="utf-8")
    result = CliRunner().invoke(screening.command, [str(bad), str(folder)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    good = tmp_path / "good.elig"
    good.write_text(PROTOCOL, encoding="utf-8")
    result = CliRunner().invoke(screening.command, [str(good), str(folder), "--as-of", "2024-13-45"])
    assert result.exit_code == 2


def test_bundled_examples_screen(tmp_path):
    """The bundled protocol over the bundled example patients: every file gives a row."""
    examples = ROOT / "examples" / "patients"
    if not any(examples.glob("*")):
        pytest.skip("no bundled example patients yet")
    rows = list(screening.screen(ROOT / "protocols" / "NCT06021067.elig", [examples], as_of=AS_OF))
    assert rows
    assert all(r.failed or r.verdict in screening.VERDICTS for r in rows)
