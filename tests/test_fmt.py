"""``elig fmt``: canonical layout, idempotent, comments kept, the tree unchanged."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings, strategies as st

from elig.commands import fmt as fmt_cmd
from elig.language.formatter import format_text, split_comment
from elig.language.parser import parse_protocol

ROOT = Path(__file__).resolve().parent.parent
PROTOCOLS = sorted((ROOT / "protocols").glob("*.elig")) + sorted((ROOT / "tests" / "data" / "lint").glob("*.elig"))


def comments(text: str) -> Counter:
    return Counter(c.strip() for c in (split_comment(line)[1] for line in text.splitlines()) if c)


def assert_formats(text: str) -> str:
    out = format_text(text, "<t>")
    assert parse_protocol(out) == parse_protocol(text)
    assert format_text(out, "<t>") == out
    assert comments(out) == comments(text)
    return out


@pytest.mark.parametrize("path", PROTOCOLS, ids=lambda p: p.name)
def test_protocol_files(path):
    assert_formats(path.read_text(encoding="utf-8"))


def test_layout_and_comments():
    text = (
        "# top\n"
        "protocol   X   # p\n"
        "    lookback 7 days\n"
        '    title "t"  # title\n'
        "\n\n# before inclusion\n"
        "inclusion   # incl\n"
        "      # before I1\n"
        '      I1 "a # not a comment"   # head\n'
        "          (ANC > 1 x 10^9/L  # inner 1\n"
        "             or ANC > 2 x 10^9/L)  # inner 2\n"
        '          note "n"  # note\n'
        '      I2 "b"\n'
        "          any of\n"
        "               # before item\n"
        "               history of `chest radiotherapy`\n"
        "               age 18 to 75 years # item\n"
        "exclusion\n"
        "   E1\n"
        "     attested pregnant\n"
        "# the end\n"
    )
    expected = (
        "# top\n"
        "protocol X  # p\n"
        '  title "t"  # title\n'
        "  lookback 7 days\n"
        "\n"
        "# before inclusion\n"
        "inclusion  # incl\n"
        "  # before I1\n"
        '  I1 "a # not a comment"  # head\n'
        "    # inner 1\n"
        "    # inner 2\n"
        "    ANC > 1 x 10^9/L or ANC > 2 x 10^9/L\n"
        '    note "n"  # note\n'
        '  I2 "b"\n'
        "    any of\n"
        "      # before item\n"
        "      history of chest radiotherapy\n"
        "      age 18 to 75 years  # item\n"
        "\n"
        "exclusion\n"
        "  E1\n"
        "    attested pregnant\n"
        "\n"
        "# the end\n"
    )
    assert assert_formats(text) == expected


def test_repeated_section_keeps_its_comments():
    text = ("protocol X\ninclusion\n  I1\n    age ≥ 18 years\n"
            "inclusion  # again\n  # c\n  I2\n    age ≤ 75 years\n")
    out = assert_formats(text)
    assert out.count("inclusion") == 1
    assert "  # again\n  # c\n  I2\n" in out


def test_backslash_continuation_and_crlf():
    text = "protocol X\r\ninclusion\r\n  I1\r\n    age \\\r\n      ≥ 18 years  # c\r\n"
    assert assert_formats(text) == "protocol X\n\ninclusion\n  I1\n    age ≥ 18 years  # c\n"


def test_parse_error_is_a_protocol_error():
    from elig.diagnostics import ProtocolError

    with pytest.raises(ProtocolError):
        format_text("protocol X\ninclusion\n  I1\n    ANC ? 3\n")


# ---------------------------------------------------------------- command
def test_fmt_command(tmp_path):
    messy = tmp_path / "a.elig"
    messy.write_text("protocol X\ninclusion\n    I1   # c\n        age>=18 years\n", encoding="utf-8")
    runner = CliRunner()
    res = runner.invoke(fmt_cmd.command, ["--check", str(tmp_path)])
    assert res.exit_code == 1 and "would reformat" in res.output
    assert messy.read_text(encoding="utf-8").startswith("protocol X\ninclusion")  # --check writes nothing
    res = runner.invoke(fmt_cmd.command, [str(messy)])
    assert res.exit_code == 0 and "reformatted" in res.output
    assert messy.read_text(encoding="utf-8") == "protocol X\n\ninclusion\n  I1  # c\n    age ≥ 18 years\n"
    res = runner.invoke(fmt_cmd.command, ["--check", str(messy)])
    assert res.exit_code == 0 and "already formatted" in res.output


def test_fmt_command_parse_error(tmp_path):
    bad = tmp_path / "bad.elig"
    bad.write_text("protocol X\ninclusion\n  I1\n    ANC ? 3\n", encoding="utf-8")
    res = CliRunner().invoke(fmt_cmd.command, [str(bad)])
    assert res.exit_code == 1 and "E001" in res.output
    assert bad.read_text(encoding="utf-8").endswith("ANC ? 3\n")


# ---------------------------------------------------------------- property test
RULES = [
    "ANC ≥ 1.5 x 10^9/L within 7 days", "ANC>=1.5 x10^9/L   within 7 days", "PLT at least 80 x 10^9/L",
    "HGB ≥ 80 g/L within 7 days", "TBil ≤ 1.5 x ULN", "TBil <= 1.5xULN within 7 days",
    "Creatinine clearance ≥ 60 mL/min (Cockcroft-Gault) within 7 days",
    "serum creatinine > 1.5 mg/dl if male, > 1.4 mg/dl if female",
    "200 < PaO2/FiO2 ≤ 300 mmHg", "age 18 to 75 years", "age between 18 years and 75 years",
    "LVEF ≥ 50%", "history of chest radiotherapy", "active radiation pneumonitis grade 2 to 3",
    "heart failure NYHA class III to IV within 6 months", "radiation pneumonitis lasting < 2 months",
    "daily increase in serum creatinine ≥ 44.2 µmol/L", "attested informed consent",
    'attested "life expectancy of at least 6 months"', "pregnant or lactating",
    "not blood transfusion within 7 days and not hematopoietic growth factor within 7 days",
    "(INR ≤ 1.5 x ULN) or (PT ≤ 1.5 x ULN) unless taking anticoagulant",
    "any of myocardial infarction within 6 months, unstable angina within 6 months",
    "positive SARS-CoV-2 test within 14 days", "male", "not (pregnant or lactating)",
    "`chest radiotherapy` within 1 year",
]
MULTILINE = "(ALT ≤ 2.5 x ULN{c1}\n{ind}and AST ≤ 2.5 x ULN){c2}"
SENTENCES = ['"ANC ≥ 1.5 x 10^9 / L"', '"a # hash inside"', '"quote \\" inside"', '"LVEF ? 50%"']
COMMENT = st.sampled_from(["# c", "#", "# note: keep", "#  two  spaces", "# ≥ µmol/L"])


@st.composite
def protocols(draw):
    lines: list[str] = []

    def comment_lines(indent: str):
        for c in draw(st.lists(COMMENT, max_size=2)):
            lines.append(" " * draw(st.integers(0, 6)) + c)
        if draw(st.booleans()):
            lines.append(" " * draw(st.integers(0, 3)))

    def trail() -> str:
        return (" " * draw(st.integers(1, 3)) + draw(COMMENT)) if draw(st.booleans()) else ""

    comment_lines("")
    lines.append("protocol" + " " * draw(st.integers(1, 3)) + "P1" + trail())
    header_step = " " * draw(st.integers(1, 4))
    items = draw(st.permutations(['title "T"', 'version "v1"', "lookback 14 days"]))
    for item in items[: draw(st.integers(0, 3))]:
        comment_lines(header_step)
        lines.append(header_step + item + trail())
    counter = 0
    for section in draw(st.lists(st.sampled_from(["inclusion", "exclusion"]), min_size=1, max_size=3)):
        comment_lines("")
        lines.append(section + trail())
        crit = " " * draw(st.integers(1, 4))
        for _ in range(draw(st.integers(1, 4))):
            counter += 1
            comment_lines(crit)
            sentence = (" " + draw(st.sampled_from(SENTENCES))) if draw(st.booleans()) else ""
            lines.append(f"{crit}{section[0].upper()}{counter}{sentence}{trail()}")
            rule_ind = crit + " " * draw(st.integers(1, 4))
            shape = draw(st.sampled_from(["line", "multi", "block"]))
            if shape == "line":
                lines.append(rule_ind + draw(st.sampled_from(RULES)) + trail())
            elif shape == "multi":
                text = MULTILINE.format(c1=trail(), ind=" " * draw(st.integers(0, 8)), c2=trail())
                lines.extend((rule_ind + text).split("\n"))
            else:
                lines.append(rule_ind + draw(st.sampled_from(["any of", "all of", "none of"])) + trail())
                item_ind = rule_ind + " " * draw(st.integers(1, 4))
                for rule in draw(st.lists(st.sampled_from(RULES), min_size=1, max_size=3)):
                    comment_lines(item_ind)
                    lines.append(item_ind + rule + trail())
            for note in draw(st.lists(st.sampled_from(['"n1"', '"read as ≥"']), max_size=2)):
                lines.append(rule_ind + "note " + note + trail())
    comment_lines("")
    return "\n".join(lines) + draw(st.sampled_from(["\n", "\n\n", ""]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(protocols())
def test_property_idempotent_and_same_tree(text):
    assert_formats(text)
