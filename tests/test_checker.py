"""The checker: every problem at once, at its line and column, with a suggestion."""

from __future__ import annotations

import pytest

from elig.engine import checker
from elig.language import parser
from elig.diagnostics import ProtocolError, render_all

from conftest import ROOT, assert_golden

BAD = """protocol BAD1
  title "A protocol with mistakes"

inclusion
  I1 "Creatinine"
    serum creatinine > 1.5 mL/min
  I2 "ANC"
    ANC ≥ 1.5
  I3 "Clearance"
    Creatinin clearance ≥ 60 mL/min
  I4 "LVEF"
    LVEF ≥ 50
  I5 "Method"
    Creatinine clearance ≥ 60 mL/min (MDRD)
  I6 "Window"
    ANC ≥ 1.5 x 10^9/L within 7 mg
"""


def diagnostics(text):
    with pytest.raises(ProtocolError) as err:
        checker.check(parser.parse_protocol(text, file="bad.elig"))
    return err.value


def test_all_problems_reported_together_at_their_places():
    err = diagnostics(BAD)
    found = [(d.code, d.span.line, d.span.column) for d in err.diagnostics]
    assert found == [("E103", 6, 24), ("E104", 8, 11), ("E101", 10, 5), ("E105", 12, 12), ("E102", 14, 38),
                     ("E107", 16, 31)]


def test_did_you_mean():
    err = diagnostics(BAD)
    e101 = next(d for d in err.diagnostics if d.code == "E101")
    assert e101.hint == "did you mean 'Creatinine clearance'?"


def test_rendered_diagnostics_golden():
    err = diagnostics(BAD)
    assert_golden(ROOT / "tests" / "golden" / "checker_bad.txt", render_all(err.diagnostics, err.sources) + "\n")


def test_wrong_kind_and_grade():
    err = diagnostics("protocol K\ninclusion\n  I1\n    ANC grade 2\n  I2\n    taking heart failure\n")
    assert [d.code for d in err.diagnostics] == ["E106", "E106"]


def test_seed_protocols_check_clean():
    for path in sorted((ROOT / "protocols").glob("*.elig")):
        assert checker.diagnose(parser.parse_file(path)) == [], path


def test_thresholds_become_canonical_floats(nct06021067):
    i41 = next(c for c in nct06021067.criteria if c.id == "I4.1")
    assert i41.plan.test.bound.value == pytest.approx(1.5)  # 10^9/L is ANC's canonical unit
    i43 = next(c for c in nct06021067.criteria if c.id == "I4.3")
    assert i43.plan.test.bound.value == pytest.approx(80)


def _rule_problems(text):
    return checker.diagnose_rule(parser.parse_rule(text))


def test_percent_on_a_score_is_rejected_but_allowed_on_a_fraction():
    (d,) = _rule_problems("ECOG ≤ 1 %")
    assert d.code == "E105" and "would mean 0.01" in d.message
    assert _rule_problems("FiO2 ≥ 50%") == []


def test_sponsor_negation_inside_a_name_gets_a_keyword_hint():
    (d,) = _rule_problems("No myocardial infarction within 6 months")
    assert d.code == "E101" and d.hint == "write the negation as a keyword: 'not myocardial infarction'"


def test_enzyme_pair_written_as_a_ratio_shares_the_threshold():
    # ALT/AST is not a concept of the vocabulary: two enzymes sharing the test, and the checker says so.
    (d,) = _rule_problems("AST/ALT ≤ 3 x ULN")
    assert d.code == "W210" and d.severity == "warning" and "each of AST and ALT" in d.message


def test_identical_inclusion_and_exclusion_is_a_contradiction():
    from elig.language.lint import lint
    from elig.terminology.vocabulary import default_vocabulary

    tree = parser.parse_protocol('protocol C\ninclusion\n  I1 "Hb"\n    HGB ≥ 80 g/L within 7 days\n'
                                 'exclusion\n  E1 "Hb"\n    HGB ≥ 80 g/L within 7 days\n')
    (w,) = [d for d in lint(tree, default_vocabulary()) if d.code == "W207"]
    assert "no patient can be eligible" in w.message
