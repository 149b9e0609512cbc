"""docs/own-trial.md: a trial that is not a seed, encoded with its own vocabulary file. The outputs
the page quotes are what the commands print; the files it shows are included at build time."""

from __future__ import annotations

import re
import shutil

from click.testing import CliRunner

from elig.commands.cli import main

from conftest import ROOT

PAGE = (ROOT / "docs" / "own-trial.md").read_text(encoding="utf-8")
TRIAL = ROOT / "examples" / "trials"


def _quoted(command: str) -> str:
    """The output the page shows after ``$ command``."""
    for block in re.findall(r"```text\n(.*?)```", PAGE, flags=re.S):
        if block.startswith(f"$ {command}\n"):
            return block.split("\n", 1)[1].rstrip("\n")
    raise AssertionError(f"no quoted output for {command!r}")


def run(*args):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return r.exit_code, r.output.rstrip("\n")


def test_parse_output_is_quoted_verbatim():
    code, out = run("parse", "serum ferritin ≥ 100 ng/mL")
    assert code == 1 and out == _quoted('elig parse "serum ferritin ≥ 100 ng/mL"')


def test_check_and_lint_are_clean(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert run("check", "examples/trials/") == (0, "1 protocol file checked: no problems")
    assert run("lint", "examples/trials/") == (0, "1 protocol file linted: no warnings")
    assert _quoted("elig check examples/trials/ && elig lint examples/trials/") == (
        "1 protocol file checked: no problems\n1 protocol file linted: no warnings")


def test_a_mistyped_code_in_the_vocabulary_is_reported_as_the_page_shows(tmp_path, monkeypatch):
    trial = tmp_path / "examples" / "trials"
    shutil.copytree(TRIAL, trial)
    vocab = trial / "renal-anaemia.yaml"
    vocab.write_text(vocab.read_text(encoding="utf-8").replace("code: 2276-4", "code: 2276-5"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    code, out = run("check", "examples/trials/")
    assert code == 1
    assert _quoted("elig check examples/trials/") in out


def test_without_its_vocabulary_the_protocol_names_unknown_concepts(tmp_path):
    text = (TRIAL / "NCT03861637.elig").read_text(encoding="utf-8").replace('  vocabulary "renal-anaemia.yaml"\n', "")
    bare = tmp_path / "bare.elig"
    bare.write_text(text, encoding="utf-8")
    code, out = run("check", bare)
    assert code == 1 and "unknown concept 'ESA'" in out and "unknown concept 'serum ferritin'" in out
    assert run("check", "--vocabulary", TRIAL / "renal-anaemia.yaml", bare)[0] == 0


def test_the_page_includes_the_real_files_and_runs_the_cases():
    for rel in ("examples/trials/renal-anaemia.yaml", "examples/trials/NCT03861637.elig",
                "examples/trials/cases/NCT03861637/cases.yaml"):
        assert f"<!-- elig:file {rel} -->" in PAGE and (ROOT / rel).is_file()
    assert "<!-- elig:test examples/trials -->" in PAGE
