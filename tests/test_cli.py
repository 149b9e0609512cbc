"""The command line as a user meets it: exit codes, output, and never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from elig.commands.cli import main

from conftest import ROOT

PROTOCOL = str(ROOT / "protocols" / "NCT06021067.elig")
DEMO = str(ROOT / "examples" / "patients" / "demo_patient.yaml")


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_check_clean_protocols():
    r = invoke("check", str(ROOT / "protocols"))
    assert r.exit_code == 0
    assert "no problems" in r.output


def test_check_reports_every_problem(tmp_path):
    bad = tmp_path / "bad.elig"
    bad.write_text("protocol B\ninclusion\n  I1\n    serum creatinine > 1.5 mL/min\n  I2\n    ANC ≥ 1.5\n"
                   "  I3\n    Creatinin clearance ≥ 60 mL/min\n", encoding="utf-8")
    r = invoke("check", str(bad))
    assert r.exit_code == 1
    assert f"{bad}:4:24: error[E103]" in r.output
    assert f"{bad}:6:11: error[E104]" in r.output
    assert f"{bad}:8:5: error[E101]" in r.output
    assert "did you mean 'Creatinine clearance'?" in r.output
    j = invoke("check", str(bad), "--format", "json")
    assert [d["code"] for d in json.loads(j.output)["diagnostics"]] == ["E103", "E104", "E101"]


def test_explain_text_shows_cockcroft_gault():
    r = invoke("explain", PROTOCOL, DEMO, "--as-of", "2024-03-15")
    assert r.exit_code == 0
    assert "VERDICT: ELIGIBLE" in r.output
    assert "(140 − 63) × 72 kg / (72 × 1.0995 mg/dL)" in r.output
    assert "97.2 µmol/L = 1.10 mg/dL" in r.output


def test_explain_json():
    r = invoke("explain", PROTOCOL, DEMO, "--as-of", "2024-03-15", "--format", "json")
    data = json.loads(r.output)
    assert data["verdict"] == "eligible" and data["as_of"] == "2024-03-15"


@pytest.mark.parametrize("args, message", [
    (("explain", PROTOCOL, "nope.yaml", "--as-of", "2024-03-15"), "nope.yaml: no such file"),
    (("explain", PROTOCOL, DEMO, "--as-of", "2024-13-01"), "Invalid value for --as-of: cannot read date '2024-13-01'"),
    (("check", "missing.elig"), "missing.elig: no such file"),
])
def test_bad_input_is_a_message_not_a_traceback(args, message):
    r = CliRunner().invoke(main, list(args))
    assert r.exit_code in (1, 2)
    assert message in r.output
    assert "Traceback" not in r.output


def test_bad_patient_file(tmp_path):
    f = tmp_path / "p.json"
    f.write_text("{not json", encoding="utf-8")
    r = CliRunner().invoke(main, ["explain", PROTOCOL, str(f), "--as-of", "2024-03-15"])
    assert r.exit_code == 1 and "not valid JSON" in r.output and "line 1" in r.output


def test_parse_round_trips():
    r = invoke("parse", "ALT =< 2.5xULN and AST no more than 2.5 times ULN")
    assert r.output.strip() == "ALT ≤ 2.5 x ULN and AST ≤ 2.5 x ULN"
    again = invoke("parse", r.output.strip())
    assert again.output == r.output


def test_parse_error_has_a_caret():
    r = invoke("parse", "ANC ≥ ≥ 1")
    assert r.exit_code == 1 and "^" in r.output and "expected a number" in r.output


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "elig.commands.cli", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and "elig" in out.stdout


def test_explain_writes_reports_to_a_file(tmp_path):
    for fmt, marker in (("markdown", "# Eligibility report"), ("html", "<!DOCTYPE html"), ("json", '"verdict"')):
        out = tmp_path / f"report.{fmt}"
        r = invoke("explain", PROTOCOL, DEMO, "--as-of", "2024-03-15", "--format", fmt, "-o", str(out))
        assert r.exit_code == 0 and f"wrote {out}" in r.output
        assert marker in out.read_text(encoding="utf-8")


def test_explain_to_a_folder_that_does_not_exist_is_a_message(tmp_path):
    r = CliRunner().invoke(main, ["explain", PROTOCOL, DEMO, "--as-of", "2024-03-15", "-o",
                                  str(tmp_path / "missing" / "r.txt")])
    assert r.exit_code == 1 and "No such file or directory" in r.output and "Traceback" not in r.output
    assert f"the folder {tmp_path / 'missing'} does not exist" in r.output


@pytest.mark.parametrize("protocol_arg, hint", [
    ("missing.elig", "help: check the path"),
    ("protocols", "help: give a file, not a folder"),
])
def test_an_unreadable_protocol_gets_a_hint_about_reading_not_writing(protocol_arg, hint):
    r = CliRunner().invoke(main, ["explain", str(ROOT / protocol_arg), DEMO, "--as-of", "2024-03-15"])
    assert r.exit_code == 1 and hint in r.output
    assert "writable" not in r.output and "to write" not in r.output and "Traceback" not in r.output


def test_screen_with_a_missing_protocol_says_so_with_a_hint():
    r = CliRunner().invoke(main, ["screen", str(ROOT / "missing.elig"), DEMO])
    assert r.exit_code == 1 and "missing.elig: No such file or directory" in r.output
    assert "help: check the path" in r.output and "Traceback" not in r.output


def test_explain_defaults_to_today():
    r = invoke("explain", PROTOCOL, DEMO, "--format", "json")
    import datetime as dt
    assert json.loads(r.output)["as_of"] == dt.date.today().isoformat()


@pytest.mark.parametrize("args", [
    ("lint", str(ROOT / "protocols")),
    ("fmt", "--check", str(ROOT / "protocols")),
    ("test", str(ROOT / "protocols" / "NCT02444455.elig")),
    ("screen", PROTOCOL, str(ROOT / "examples" / "patients"), "--as-of", "2024-03-15", "--quiet"),
])
def test_every_command_is_registered_on_the_elig_group(args):
    r = CliRunner().invoke(main, list(args))
    assert r.exit_code == 0, r.output


def test_readme_python_example_runs(monkeypatch, capsys):
    import re

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (code,) = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README.md", "exec"), {})
    assert "eligible" in capsys.readouterr().out
