"""The language of issue 10: '(if of ...)', '(whichever is recorded)' and 'define', parsed,
printed back, formatted and checked as an author would see them."""

from __future__ import annotations

from click.testing import CliRunner

from elig.commands.cli import main
from elig.engine import checker, plan as p
from elig.language import canonical, parser, tree as t
from elig.language.formatter import format_text

PROTOCOL = '''protocol READINGS
  title "Readings"
  DEFINE childbearing potential: female and age 15 to 49 years   # the protocol's own reading

exclusion
  E1 "Pregnant women"
    pregnant (IF OF childbearing potential)
  E2 "PTA ≤ 40% (or INR ≥ 1.5)"
    PTA ≤ 40% within 3 days or INR ≥ 1.5 within 3 days ( Whichever  is recorded )
'''


def test_the_constructs_parse_into_their_nodes():
    tree = parser.parse_protocol(PROTOCOL, file="r.elig")
    assert tree.definitions[0].name.text == "childbearing potential"
    e1, e2 = (c.rule for c in tree.criteria)
    assert isinstance(e1, t.Event) and e1.only_if.text == "childbearing potential"
    assert isinstance(e2, t.Whichever) and len(e2.operands) == 2


def test_canonical_text_and_fmt_round_trip():
    tree = parser.parse_protocol(PROTOCOL, file="r.elig")
    text = canonical.protocol(tree)
    assert "  define childbearing potential: female and age 15 to 49 years\n" in text
    assert "pregnant (if of childbearing potential)\n" in text
    assert "INR ≥ 1.5 within 3 days (whichever is recorded)\n" in text
    assert parser.parse_protocol(text, file="r.elig") == tree
    formatted = format_text(PROTOCOL, file="r.elig")
    assert "# the protocol's own reading" in formatted
    assert format_text(formatted, file="r.elig") == formatted
    assert parser.parse_protocol(formatted, file="r.elig") == tree


def test_the_plan_names_the_reading_and_the_alternatives():
    checked = checker.check(parser.parse_protocol(PROTOCOL, file="r.elig"))
    e1, e2 = (c.plan for c in checked.criteria)
    assert isinstance(e1, p.FactPlan) and e1.only_if.source == "protocol"
    assert e1.only_if.definition == "female and age 15 to 49 years"
    assert isinstance(e2, p.LogicPlan) and e2.op == "whichever"
    default = checker.check(parser.parse_protocol(PROTOCOL.replace(
        "  DEFINE childbearing potential: female and age 15 to 49 years   # the protocol's own reading\n", ""),
        file="r.elig"))
    assert default.criteria[0].plan.only_if.source == "vocabulary default"


def test_misuse_is_reported_at_its_place(tmp_path):
    bad = tmp_path / "bad.elig"
    bad.write_text(PROTOCOL.replace("DEFINE childbearing potential", "define fertile woman")
                   .replace("INR ≥ 1.5 within 3 days (", "attested \"coagulopathy\" (")
                   .replace("pregnant (IF OF childbearing potential)", "history of dialysis (if of childbearing potential)"))
    out = CliRunner().invoke(main, ["check", str(bad)])
    assert out.exit_code == 1
    for code, line in (("E120", 3), ("E121", 9), ("E122", 7)):
        assert f"bad.elig:{line}:" in out.output and f"error[{code}]" in out.output, (code, out.output)
    assert "Traceback" not in out.output


def test_a_definition_cannot_use_itself(tmp_path):
    text = PROTOCOL.replace("female and age 15 to 49 years", "female and childbearing potential")
    problems = checker.diagnose(parser.parse_protocol(text, file="r.elig"))
    assert any(d.code == "E120" and "uses itself" in d.message for d in problems)
