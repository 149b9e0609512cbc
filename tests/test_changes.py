"""What would change the verdict (elig.report.changes), through ``elig explain --what-would-change``."""

from __future__ import annotations

import json

from click.testing import CliRunner

from elig.authoring.assist import keywords
from elig.commands.cli import main
from elig.language.parser import KEYWORDS
from conftest import ROOT

PROTOCOL = str(ROOT / "protocols" / "NCT06021067.elig")


def _changes(patient: str, *extra: str):
    result = CliRunner().invoke(main, ["explain", PROTOCOL, str(ROOT / "examples" / "patients" / patient),
                                       "--as-of", "2024-03-15", "--what-would-change", *extra])
    assert result.exit_code == 0, result.output
    return result.output


def test_eligible_patient_shows_the_margin_of_each_numeric_test():
    out = _changes("demo_patient.yaml")
    assert out.startswith("ELIGIBLE\nWhat would change the verdict:\n")
    assert ("  I4.6     Creatinine clearance ≥ 60 mL/min (Cockcroft-Gault) within 7 days: "
            "70.03 mL/min now; it would fail at < 60 mL/min (10.03 mL/min away)") in out
    # a met exclusion's test under a negation has no margin to give; a not-met one has
    assert "E8       ALT > 2.5 x ULN within 7 days: 35 U/L now; it would exclude at > 100 U/L (65 U/L away)" in out


def test_ineligible_patient_shows_what_each_excluding_criterion_needs():
    out = _changes("organ_failure.yaml")
    assert out.startswith("INELIGIBLE\n")
    assert "I4.6     Creatinine clearance ≥ 60 mL/min (Cockcroft-Gault) within 7 days: 34.24 mL/min; " \
           "needs ≥ 60 mL/min (25.76 mL/min away)" in out


def test_undetermined_patient_lists_the_data_to_collect_as_json():
    data = json.loads(_changes("organ_unknown.yaml", "--format", "json"))
    assert data["verdict"] == "undetermined"
    collect = [c for c in data["changes"] if c["kind"] == "collect"]
    assert {"kind": "collect", "criteria": ["I4.5", "E8"], "rule": "ALT within 7 days before 2024-03-15",
            "text": "ALT within 7 days before 2024-03-15 (would decide I4.5, E8)", "excludes": False} in collect


def test_keyword_completion_comes_from_the_grammar():
    words = set(keywords())
    assert set(KEYWORDS) <= words, set(KEYWORDS) - words
    assert {"at least", "no more than", "NYHA class"} <= words  # comparators and grade words too
