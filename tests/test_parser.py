"""The parser: the constructs protocols need, canonical round-trips, and errors that point."""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from elig.language import canonical, tree as t
from elig.diagnostics import ProtocolError
from elig.language.parser import parse_protocol, parse_rule
from elig.terminology.units import Q_


def q(node):
    return node.test.threshold.value


@pytest.mark.parametrize("text, magnitude, unit", [
    ("ANC ≥ 1.5 x 10^9/L", 1.5e9, "1/L"),
    ("ANC ≥ 1.5 × 10⁹/L", 1.5e9, "1/L"),
    ("ANC ≥ 1.5 x10^9/L", 1.5e9, "1/L"),
    ("HGB ≥ 80 g/L", 80, "g/L"),
    ("Creatinine clearance ≥ 60 mL/min", 60, "mL/min"),
    ("serum creatinine ≤ 1.5 mg/dL", 1.5, "mg/dL"),
    ("serum creatinine ≤ 1.5 mg/dl", 1.5, "mg/dL"),
    ("serum creatinine ≤ 442 µmol/L", 442, "umol/L"),
    ("serum creatinine ≤ 442 μmol/L", 442, "umol/L"),
    ("LVEF ≥ 50%", 50, "percent"),
    ("PaO2 ≤ 300 mmHg", 300, "mmHg"),
    ("respiratory rate ≥ 30 breaths/min", 30, "breath/min"),
    ("PLT ≥ 100000 /mm^3", 100000, "1/mm**3"),
    ("PLT ≥ 100000 /mm3", 100000, "1/mm**3"),
    ("ANC ≥ 1500 cells/µL", 1500, "cell/uL"),
])
def test_quantities_as_clinicians_write_them(text, magnitude, unit):
    node = parse_rule(text)
    assert isinstance(node, t.Comparison)
    assert q(node) == Q_(magnitude, unit)


@pytest.mark.parametrize("op_text, op", [
    ("≥", ">="), (">=", ">="), ("≤", "<="), ("<=", "<="), ("=<", "<="), (">", ">"), ("<", "<"),
    ("=", "=="), ("≠", "!="), ("!=", "!="), ("at least", ">="), ("no more than", "<="),
    ("greater than", ">"), ("less than", "<"), ("not exceeding", "<="), ("more than", ">"),
    ("no greater than", "<="),
])
def test_comparators(op_text, op):
    assert parse_rule(f"ANC {op_text} 1.5 x 10^9/L").test.comparator == op


@pytest.mark.parametrize("text", ["ALT ≤ 2.5 x ULN", "ALT ≤ 2.5xULN", "ALT ≤ 2.5 × ULN", "ALT ≤ 2.5 times ULN",
                                  "ALT ≤ 2.5 times the upper limit of normal (ULN)"])
def test_uln_multiples(text):
    th = parse_rule(text).test.threshold
    assert isinstance(th, t.UlnMultiple) and th.factor == 2.5


def test_multiword_names_do_not_swallow_keywords():
    node = parse_rule("ALT ≤ 2.5 x ULN or AST ≤ 2.5 x ULN")
    assert isinstance(node, t.Or)
    assert [o.subject.name.text for o in node.operands] == ["ALT", "AST"]
    node = parse_rule("serum creatinine > 1.5 mg/dL and Creatinine clearance ≥ 60 mL/min (Cockcroft-Gault)")
    assert [o.subject.name.text for o in node.operands] == ["serum creatinine", "Creatinine clearance"]
    assert node.operands[1].subject.method.names == ("Cockcroft-Gault",)


def test_ranges_and_chains():
    age = parse_rule("age 18 to 75 years")
    assert age.test == t.Between(Q_ok(18, "year"), Q_ok(75, "year"))
    pf = parse_rule("200 < PaO2/FiO2 ≤ 300 mmHg")
    assert isinstance(pf.subject, t.Ratio)
    assert (pf.test.low_inclusive, pf.test.high_inclusive) == (False, True)
    assert pf.test.low.value == Q_(200, "mmHg")


def Q_ok(n, unit):
    return t.Quantity(Q_(n, unit), str(n), unit)


def test_logic_precedence_and_grouping():
    node = parse_rule("not pregnant and (ANC ≥ 1 x 10^9/L or PLT ≥ 80 x 10^9/L)")
    assert isinstance(node, t.And)
    assert isinstance(node.operands[0], t.Not)
    assert isinstance(node.operands[1], t.Or)


def test_protocol_structure_and_comments():
    p = parse_protocol('''# comment
protocol X1
  title "T"
inclusion
  I1 "sentence"   # trailing comment
    ANC ≥ 1.5 x 10^9/L within 7 days
    note "a note"
exclusion
  E1
    any of
      pregnant
      lactating
''')
    assert p.id == "X1" and p.title == "T"
    assert [c.id for c in p.criteria] == ["I1", "E1"]
    assert p.criteria[0].notes == ("a note",)
    assert p.criteria[1].sentence is None
    assert isinstance(p.criteria[1].rule, t.ListOf) and len(p.criteria[1].rule.items) == 2


def test_spans_are_kept_and_ignored_by_equality():
    a = parse_rule("ANC ≥ 1.5 x 10^9/L")
    b = parse_rule("   ANC   >=   1.5 x 10^9/L")
    assert a == b
    assert a.subject.name.span.column == 1 and b.subject.name.span.column == 4


def test_seed_protocol_round_trips(root):
    text = (root / "protocols" / "NCT06021067.elig").read_text(encoding="utf-8")
    tree = parse_protocol(text)
    assert parse_protocol(canonical.protocol(tree)) == tree


def test_syntax_error_points_at_the_token():
    with pytest.raises(ProtocolError) as err:
        parse_protocol("protocol X\ninclusion\n  I1 \"s\"\n    ANC ≥ ≥ 1.5 x 10^9/L\n", file="x.elig")
    d = err.value.diagnostics[0]
    assert (d.span.file, d.span.line, d.span.column) == ("x.elig", 4, 11)
    assert "expected a number" in d.message
    assert d.hint


# ---------------------------------------------------------------- properties
numbers = st.decimals(min_value=0, max_value=100000, places=3, allow_nan=False, allow_infinity=False).map(
    lambda d: format(d.normalize(), "f") if d != d.to_integral() else str(int(d)))
units = st.sampled_from(["mg/dL", "mg/dl", "µmol/L", "μmol/L", "g/L", "g/dL", "10^9/L", "x 10^9/L", "× 10⁹/L",
                         "10^3/µL", "/mm^3", "cells/µL", "mL/min", "mmHg", "%", "breaths/min", "U/L", "s"])
comparators = st.sampled_from(["≥", "≤", ">", "<", "=", "≠", ">=", "<=", "=<", "!=", "at least", "less than"])


@settings(max_examples=150, deadline=None)
@given(numbers, units, comparators)
def test_any_number_unit_and_comparator_parses_and_round_trips(number, unit, comparator):
    node = parse_rule(f"serum creatinine {comparator} {number} {unit}")
    assert float(node.test.threshold.number) == float(number)
    assert parse_rule(canonical.rule(node)) == node


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ANC≥≤<>=()x10^9/L .,andorntyfm%µ\"\n-")), max_size=40))
def test_parser_raises_only_its_own_errors(text):
    try:
        parse_rule(text)
    except ProtocolError as exc:
        assert exc.diagnostics and all(d.code.startswith("E") for d in exc.diagnostics)


@pytest.mark.parametrize("text, canonical_text", [
    ("PLT ≥ 100,000 /mm3", "PLT ≥ 100,000 /mm3"),
    ("ECOG 0-1", "ECOG 0 to 1"),
    ("age 18–75 years", "age 18 to 75 years"),
    ("creatinine clearance > 60 mL/min by Cockcroft-Gault", "creatinine clearance > 60 mL/min (Cockcroft-Gault)"),
])
def test_sponsor_spellings_of_numbers_ranges_and_methods(text, canonical_text):
    node = parse_rule(text)
    assert canonical.rule(node) == canonical_text
    assert parse_rule(canonical_text) == node


def test_thousands_separator_is_a_number_not_a_list():
    node = parse_rule("PLT ≥ 100,000 /mm3")
    assert node.test.threshold.value.magnitude == 100000
    lst = parse_rule("any of pregnant, lactating")
    assert isinstance(lst, t.ListOf) and len(lst.items) == 2
