"""Lint warnings (W201-W209), the diagnostics catalogue and the language docs' examples.

The examples in docs/diagnostics.md, docs/language.md and docs/tutorial.md are
executed here, so the documentation cannot drift from the language.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from elig.engine import checker
from elig.language import parser
from elig.language import tree as t
from elig.diagnostics import ProtocolError
from elig.commands import lint as lint_cmd
from elig.commands.lint import lint_text
from elig.language.lint import CODES, lint, natural_key

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data" / "lint"
DOCS = ROOT / "docs"


def codes(text: str) -> list[str]:
    return [d.code for d in lint_text(text, "<test>")]


def protocol(*criteria: str, header: str = "") -> str:
    """A protocol around criteria given as 'inclusion|I1 "s"|rule' strings."""
    out = ["protocol T", '  title "t"'] + ([f"  {header}"] if header else [])
    section = None
    for c in criteria:
        sec, head, *lines = c.split("|")
        if sec != section:
            section = sec
            out += ["", sec]
        out.append(f"  {head}")
        out += [f"    {line}" for line in lines]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------- the flawed protocol
def test_flawed_protocol_triggers_every_warning_once():
    text = (DATA / "flawed.elig").read_text(encoding="utf-8")
    got = [f"{d.span.line}:{d.span.column} {d.code}" for d in lint_text(text, "flawed.elig")]
    expected = (DATA / "expected.txt").read_text(encoding="utf-8").split("\n")
    assert got == [line for line in expected if line]
    assert sorted(code for code in (line.split()[1] for line in got)) == sorted(CODES)


def test_every_warning_is_a_warning_with_a_hint():
    text = (DATA / "flawed.elig").read_text(encoding="utf-8")
    for d in lint_text(text, "flawed.elig"):
        assert d.severity == "warning"
        assert d.hint and d.span is not None


def test_seed_protocols_lint_clean():
    for path in sorted((ROOT / "protocols").glob("*.elig")):
        text = path.read_text(encoding="utf-8")
        diags = lint_text(text, str(path))
        assert [d for d in diags if d.severity == "error"] == [], path
        # Warnings on a seed protocol must be justified in docs/diagnostics.md.
        justified = (DOCS / "diagnostics.md").read_text(encoding="utf-8").split("# Warnings kept on")[-1]
        tree = parser.parse_protocol(text, file=str(path))
        for d in diags:
            crit = next(c.id for c in tree.criteria if c.span.line <= d.span.line <= c.span.end_line)
            assert f"`{path.name}` {crit} {d.code}" in justified, f"unjustified {d.code} in {path}:{d.span.line}"


# ---------------------------------------------------------------- single codes
def test_natural_order_of_ids():
    assert natural_key("I4.10") > natural_key("I4.9")
    assert natural_key("I10") > natural_key("I9")
    assert natural_key("E2") < natural_key("E10")


def test_w202_natural_order_is_not_a_warning():
    text = protocol('inclusion|I4.9 "a"|age ≥ 18 years', 'inclusion|I4.10 "b"|age ≤ 75 years')
    assert codes(text) == []


def test_w202_out_of_order_per_section_only():
    text = protocol('inclusion|I2 "a"|age ≥ 18 years', 'exclusion|E1 "b"|pregnant')
    assert codes(text) == []


def test_w203_and_redundant():
    text = protocol('inclusion|I1 "a"|age > 18 years and age > 21 years')
    assert codes(text) == ["W203"]
    d = lint_text(text)[0]
    assert "'age > 18 years' is redundant" in d.message


def test_w203_across_units():
    text = protocol('inclusion|I1 "a"|serum creatinine < 1.5 mg/dL within 7 days or '
                    'serum creatinine < 200 µmol/L within 7 days')
    assert codes(text) == ["W203"]


def test_w203_not_for_different_windows_or_directions():
    text = protocol('inclusion|I1 "a"|ANC > 1 x 10^9/L within 7 days or ANC > 2 x 10^9/L within 30 days')
    assert codes(text) == []
    text = protocol('inclusion|I1 "a"|ANC > 2 x 10^9/L within 7 days or ANC < 1 x 10^9/L within 7 days')
    assert codes(text) == []


def test_w204_range_and_threshold():
    text = protocol('inclusion|I1 "a"|age 18 to 75 years and age > 80 years')
    assert codes(text) == ["W204"]
    text = protocol('inclusion|I1 "a"|age ≥ 18 years and age ≤ 18 years')
    assert codes(text) == []  # exactly 18 meets both
    text = protocol('inclusion|I1 "a"|age > 18 years and age < 18 years')
    assert codes(text) == ["W204"]


def test_w205_hint_suggests_the_unit():
    text = protocol('inclusion|I1 "a"|HGB ≥ 80 g/dL within 7 days')
    (d,) = lint_text(text)
    assert d.code == "W205"
    assert "Did you mean 80 g/L?" in d.hint


def test_w205_plausible_after_conversion():
    text = protocol('inclusion|I1 "a"|serum creatinine ≤ 133 µmol/L within 7 days')
    assert codes(text) == []


def test_w206_not_with_protocol_lookback_nor_for_age():
    text = protocol('inclusion|I1 "a"|ANC ≥ 1.5 x 10^9/L', header="lookback 14 days")
    assert codes(text) == []
    text = protocol('inclusion|I1 "a"|age ≥ 18 years')
    assert codes(text) == []


def test_w207_same_rule_and_negated_comparator():
    text = protocol('inclusion|I1 "a"|ANC ≥ 1.5 x 10^9/L within 7 days',
                    'exclusion|E1 "b"|ANC < 1.5 x 10^9/L within 7 days')
    assert codes(text) == ["W207"]
    text = protocol('inclusion|I1 "a"|history of chest radiotherapy',
                    'exclusion|E1 "b"|history of chest radiotherapy')
    assert codes(text) == ["W207"]


def test_w207_quiet_when_a_note_names_the_inclusion():
    inc = 'inclusion|I1 "Consent"|attested informed consent'
    text = protocol(inc, 'exclusion|E1 "Declined consent"|not attested informed consent|note "the complement of I1"')
    assert codes(text) == []
    text = protocol(inc, 'exclusion|E1 "Declined consent"|not attested informed consent|note "see I10"')
    assert codes(text) == ["W207"]


def test_w208_only_whole_parts():
    assert codes(protocol('inclusion|I1 "a"|attested informed consent')) == []
    assert codes(protocol('exclusion|E1 "a"|attested "severe lung infection"')) == []
    assert codes(protocol('exclusion|E1 "a"|attested "active psychosis"')) == ["W208"]


def test_w209_quiet_with_a_note():
    text = protocol('inclusion|I1 "LVEF ? 50%"|LVEF ≥ 50% within 30 days|note "≥ restored: the registry lost it"')
    assert codes(text) == []
    text = protocol('inclusion|I1 "LVEF > 50%"|LVEF > 50% within 30 days')
    assert codes(text) == []


def test_lint_is_pure_and_needs_no_checker():
    tree = parser.parse_protocol(protocol('inclusion|I1|unknown thing ≥ 3 mg/dL'))
    result = lint(tree)
    assert [d.code for d in result] == ["W201"]  # an unknown concept is the checker's job (E101)


# ---------------------------------------------------------------- command
def test_lint_command_exit_codes_and_json(tmp_path):
    runner = CliRunner()
    res = runner.invoke(lint_cmd.command, [str(DATA / "flawed.elig"), "--format", "json"])
    assert res.exit_code == 1
    data = json.loads(res.output)
    assert {d["code"] for d in data["diagnostics"]} == set(CODES)
    assert all(d["severity"] == "warning" for d in data["diagnostics"])
    clean = tmp_path / "clean.elig"
    clean.write_text(protocol('inclusion|I1 "Adults"|age ≥ 18 years'), encoding="utf-8")
    res = runner.invoke(lint_cmd.command, [str(clean)])
    assert res.exit_code == 0, res.output
    assert "no warnings" in res.output
    res = runner.invoke(lint_cmd.command, [str(DATA / "flawed.elig"), "--ignore", ",".join(CODES)])
    assert res.exit_code == 0


def test_lint_command_reports_parse_errors(tmp_path):
    bad = tmp_path / "bad.elig"
    bad.write_text("protocol X\n\ninclusion\n  I1 \"a\"\n    ANC ? 3\n", encoding="utf-8")
    res = CliRunner().invoke(lint_cmd.command, [str(bad)])
    assert res.exit_code == 1
    assert "E001" in res.output
    res = CliRunner().invoke(lint_cmd.command, [str(tmp_path / "missing.elig")])
    assert res.exit_code == 1 and "no such file" in res.output


# ---------------------------------------------------------------- docs/diagnostics.md
def _sections(md: str) -> dict[str, str]:
    parts = re.split(r"^## ", md, flags=re.M)
    out = {}
    for part in parts[1:]:
        m = re.match(r"([EW]\d{3})\b", part)
        if m:
            out[m.group(1)] = part
    return out


def _blocks(text: str) -> list[str]:
    return re.findall(r"```elig\n(.*?)```", text, flags=re.S)


def _labelled(section: str) -> tuple[str, str]:
    wrong = re.search(r"\*\*Wrong\*\*.*?```elig\n(.*?)```", section, flags=re.S)
    right = re.search(r"\*\*Right\*\*.*?```elig\n(.*?)```", section, flags=re.S)
    assert wrong and right, "each code needs a **Wrong** and a **Right** example"
    return wrong.group(1), right.group(1)


CATALOGUE = _sections((DOCS / "diagnostics.md").read_text(encoding="utf-8"))


def test_catalogue_documents_every_code():
    source_codes = set()
    for path in (ROOT / "elig").rglob("*.py"):
        source_codes |= set(re.findall(r'"([EW][01-2]\d\d)"', path.read_text(encoding="utf-8")))
    source_codes = {c for c in source_codes if (c[0] == "E" and c[1] in "01") or (c[0] == "W" and c[1] == "2")}
    missing = source_codes - set(CATALOGUE)
    assert not missing, f"codes not in docs/diagnostics.md: {sorted(missing)}"
    assert set(CODES) <= set(CATALOGUE)


@pytest.mark.parametrize("code", sorted(CATALOGUE))
def test_catalogue_examples(code):
    wrong, right = _labelled(CATALOGUE[code])
    assert sorted(set(codes(wrong))) == [code], f"the wrong example of {code} gives {codes(wrong)}"
    assert codes(right) == [], f"the right example of {code} gives {codes(right)}"


# ---------------------------------------------------------------- language and tutorial examples
def _doc_blocks():
    for name in ("language.md", "tutorial.md"):
        text = (DOCS / name).read_text(encoding="utf-8")
        for i, block in enumerate(_blocks(text)):
            yield pytest.param(block, id=f"{name}#{i + 1}")


def _as_protocol(rule_text: str) -> t.Protocol:
    rule = parser.parse_rule(rule_text)
    return t.Protocol(id="DOC", title=None, criteria=(t.Criterion("inclusion", "I1", "s", rule),),
                      lookback=None)


@pytest.mark.parametrize("block", list(_doc_blocks()))
def test_doc_examples_parse_and_check(block):
    stripped = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("#")).strip()
    try:
        if stripped.startswith("protocol "):
            tree = parser.parse_protocol(block, file="<doc>")
        else:
            tree = _as_protocol(block)
    except ProtocolError as exc:
        pytest.fail(f"example does not parse:\n{block}\n{exc}")
    problems = checker.diagnose(tree)
    # Examples may name concepts outside the vocabulary (to show the syntax); everything else must check.
    # Warnings (W210, W211) say which reading an example was given; they are not failures.
    problems = [d for d in problems if d.severity == "error"]
    assert [d for d in problems if d.code != "E101"] == [], "\n".join(d.message for d in problems)
    if not problems:
        # Executed, not only checked: each example runs against the bundled patients and
        # every criterion comes out as one of the three outcomes, with an explanation.
        import elig
        from elig.engine.evaluator import evaluate as run

        checked = checker.check(tree)
        for name in ("demo_patient.yaml", "organ_failure.yaml", "organ_unknown.yaml"):
            patient = elig.load_patient(DOCS.parent / "examples" / "patients" / name)
            result = run(checked, patient, "2024-03-15")
            for c in result.criteria:
                assert c.outcome in set(elig.Outcome) and c.explanation.summary, (name, c.id)


def test_tutorial_mistake_is_shown_as_check_prints_it(tmp_path, monkeypatch):
    """The tutorial's misspelt 'serum creatinin', made in its whole protocol, gives the error it shows."""
    from click.testing import CliRunner

    from elig.commands.cli import main

    text = (DOCS / "tutorial.md").read_text(encoding="utf-8")
    whole = next(b for b in _blocks(text) if b.lstrip().startswith("# DEMO-1"))
    shown = re.search(r"```text\n(demo\.elig:.*?)```", text, re.S).group(1).rstrip()
    (tmp_path / "demo.elig").write_text(whole.replace("serum creatinine >", "serum creatinin >"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, ["check", "demo.elig"])
    assert r.exit_code == 1
    assert shown in r.output
