"""Every protocol test case under protocols/cases/ runs as one pytest test (id: protocol/case)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import elig
from elig.commands import casefile

ROOT = Path(__file__).resolve().parent.parent
PROTOCOLS = ROOT / "protocols"


def _collect():
    params = []
    for pf in sorted(PROTOCOLS.glob("*.elig")):
        pid = pf.stem
        for cf in casefile.case_files(casefile.case_dir_for(pf, pid)):
            for case in casefile.load_cases(cf):
                marks = [pytest.mark.xfail(reason=case.xfail, strict=True)] if case.xfail else []
                params.append(pytest.param(pf, case, id=f"{pid}/{cf.stem}/{case.name}", marks=marks))
    return params


_PROTOCOLS: dict[Path, object] = {}


def _checked(pf: Path):
    if pf not in _PROTOCOLS:
        _PROTOCOLS[pf] = elig.load_protocol(pf)
    return _PROTOCOLS[pf]


@pytest.mark.parametrize("protocol_file,case", _collect())
def test_case(protocol_file, case):
    result = casefile.run_case(_checked(protocol_file), case)
    assert result.error is None, result.error
    assert not result.mismatches, "\n".join(
        f"{m.field}: expected {m.expected}, got {m.actual}\n{m.explanation}" for m in result.mismatches)


@pytest.fixture(scope="module")
def report():
    """Every case of every seed trial, run once for the tests of the whole report (each run takes
    seconds; the cases one by one are the parametrised test above)."""
    return casefile.run_cases(PROTOCOLS)


def test_every_seed_trial_has_cases(report):
    assert {t.protocol_id for t in report.trials} >= {"NCT06021067", "NCT06416709", "NCT02444455"}
    for t in report.trials:
        assert t.cases, t.protocol_id
        assert not t.errors, t.errors


def test_every_criterion_is_asserted_met_and_not_met(report):
    for t in report.trials:
        cov = t.coverage()
        for c in t.computable:
            assert {casefile.Outcome.MET, casefile.Outcome.NOT_MET} <= cov[c.id], (t.protocol_id, c.id, cov[c.id])
        for c in t.attested:
            assert cov[c.id], (t.protocol_id, c.id)


# ---------------------------------------------------------------- the command and the format
def test_command_summarises_every_trial():
    result = CliRunner().invoke(casefile.command, [str(PROTOCOLS)])
    assert result.exit_code == 0, result.output
    for pid in ("NCT06021067", "NCT06416709", "NCT02444455"):
        assert pid in result.output
    assert "computable" in result.output and "attested" in result.output


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "cases" / "NCT02444455").mkdir(parents=True)
    proto = tmp_path / "NCT02444455.elig"
    proto.write_text((PROTOCOLS / "NCT02444455.elig").read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "cases" / "NCT02444455" / "c.yaml").write_text(text, encoding="utf-8")
    return proto


def test_command_reports_a_failure_with_its_explanation(tmp_path):
    proto = _write(tmp_path, """
- name: wrong expectation
  as_of: 2024-03-15
  patient: {id: p, birth_date: 1980-01-01, sex: male}
  expect: {overall: eligible, criteria: {I2: not met}}
""")
    result = CliRunner().invoke(casefile.command, [str(proto)])
    assert result.exit_code == 1
    assert "FAIL" in result.output and "wrong expectation" in result.output
    assert "criteria.I2: expected not met, got met" in result.output
    assert "overall: expected eligible, got ineligible" in result.output
    assert "why:" in result.output


@pytest.mark.parametrize("text,field", [
    ("- name: a\n  patient: {id: p}\n  expect: {overall: eligible}\n", "as_of"),
    ("- name: a\n  as_of: 2024-03-15\n  patient: {id: p}\n  expect: {overall: maybe}\n", "expect.overall"),
    ("- name: a\n  as_of: 2024-03-15\n  patient: {id: p}\n  expect: {criteria: {I1: perhaps}}\n", "expect.criteria.I1"),
    ("- name: a\n  as_of: 2024-03-15\n  patient_file: nowhere.yaml\n  expect: {overall: eligible}\n", "patient_file"),
    ("- name: a\n  as_of: 2024-03-15\n  patient: {id: p}\n  expectt: {overall: eligible}\n", "expectt"),
])
def test_errors_name_file_case_and_field(tmp_path, text, field):
    f = tmp_path / "bad.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(casefile.CaseError) as err:
        casefile.load_cases(f)
    assert err.value.field == field
    assert err.value.case == "a"
    assert str(f) in str(err.value) and "case 'a'" in str(err.value)


def test_unknown_criterion_in_expectations_is_an_error(tmp_path):
    proto = _write(tmp_path, """
- name: typo
  as_of: 2024-03-15
  patient: {id: p}
  expect: {criteria: {I99: met}}
""")
    result = CliRunner().invoke(casefile.command, [str(proto)])
    assert result.exit_code == 1
    assert "no criterion I99" in result.output and "expect.criteria.I99" in result.output


def test_changes_replace_entries_of_the_same_concept():
    base = {"observations": [{"concept": "ANC", "value": 2}, {"concept": "PLT", "value": 100}],
            "attestations": {"a": True, "b": False}, "sex": "male"}
    out = casefile.apply_changes(base, {"observations": [{"concept": "absolute neutrophil count", "value": 1}],
                                        "attestations": {"a": None}, "sex": None})
    assert out["observations"] == [{"concept": "PLT", "value": 100}, {"concept": "absolute neutrophil count", "value": 1}]
    assert out["attestations"] == {"b": False}
    assert "sex" not in out
    assert base["sex"] == "male"  # the shared record is untouched
