"""Parser diagnostics: keyword case, recovery after a syntax error, messages that help."""

from __future__ import annotations

import re
import textwrap

import pytest

from elig.language import canonical
from elig.diagnostics import ProtocolError
from elig.language.parser import _TOKEN_DESCRIPTIONS, get_parser, parse_protocol, parse_rule


def errors_of(text: str, *, rule: bool = False):
    with pytest.raises(ProtocolError) as info:
        (parse_rule if rule else parse_protocol)(textwrap.dedent(text).lstrip("\n") if not rule else text)
    return info.value.diagnostics


# ---------------------------------------------------------------- keyword case
@pytest.mark.parametrize("written, lower", [
    ("Not pregnant", "not pregnant"),
    ("NOT pregnant", "not pregnant"),
    ("History of myocardial infarction", "history of myocardial infarction"),
    ("HISTORY OF myocardial infarction", "history of myocardial infarction"),
    ("ANC >= 1500 /mm^3 AND PLT >= 100 x 10^9/L", "ANC >= 1500 /mm^3 and PLT >= 100 x 10^9/L"),
    ("ANC >= 1500 /mm^3 Or PLT >= 100 x 10^9/L", "ANC >= 1500 /mm^3 or PLT >= 100 x 10^9/L"),
    ("Any of pregnant, breastfeeding", "any of pregnant, breastfeeding"),
    ("All Of pregnant, breastfeeding", "all of pregnant, breastfeeding"),
    ("None of pregnant, breastfeeding", "none of pregnant, breastfeeding"),
    ("Active tuberculosis", "active tuberculosis"),
    ("Current tuberculosis", "current tuberculosis"),
    ("Taking anticoagulant", "taking anticoagulant"),
    ("Positive SARS-CoV-2 test Within 14 days", "positive SARS-CoV-2 test within 14 days"),
    ("Age 18 To 75 years", "Age 18 to 75 years"),
    ("age Between 18 years And 75 years", "age between 18 years and 75 years"),
    ("Male", "male"),
    ("FEMALE", "female"),
    ("hemoglobin ≥ 130 g/L If Male, ≥ 120 g/L if Female", "hemoglobin ≥ 130 g/L if male, ≥ 120 g/L if female"),
    ("heart failure NYHA Class III To IV", "heart failure NYHA class III to IV"),
    ("cancer Stage II", "cancer stage II"),
    ("cancer Grade 3", "cancer grade 3"),
    ("diarrhoea Lasting ≥ 3 days", "diarrhoea lasting ≥ 3 days"),
    ("stroke Onset Within 6 months", "stroke onset within 6 months"),
    ("Daily Increase In serum creatinine ≥ 44.2 µmol/L", "daily increase in serum creatinine ≥ 44.2 µmol/L"),
    ("Attested informed consent", "attested informed consent"),
    ("ANC ≥ 1500 /mm^3 Unless Taking G-CSF", "ANC ≥ 1500 /mm^3 unless taking G-CSF"),
])
def test_capitalised_keywords_parse_as_lower_case(written, lower):
    assert parse_rule(written) == parse_rule(lower)


@pytest.mark.parametrize("text", [
    "Any of pregnant, Male", "Not History of myocardial infarction", "heart failure NYHA Class III To IV",
    "Positive SARS-CoV-2 test Within 14 days", "hemoglobin ≥ 130 g/L If Male, ≥ 120 g/L if Female",
])
def test_capitalised_keywords_round_trip_through_canonical_text(text):
    node = parse_rule(text)
    assert parse_rule(canonical.rule(node)) == node


@pytest.mark.parametrize("text", [
    "Nothing orally", "Notable weight loss", "Anyone", "Inclusion body myositis", "Ischaemic stroke",
    "Iron deficiency", "Gleason Grade Group", "Class I antiarrhythmic", "Internal bleeding", "Toxicity",
    "Orthopnoea", "Android", "Ifosfamide", "Malena",
])
def test_words_that_begin_with_a_keyword_stay_names(text):
    node = parse_rule(text)
    assert node.name.text == text


def test_capitalised_protocol_keywords():
    upper = parse_protocol(textwrap.dedent("""\
        Protocol DEMO
          Title "Demo"
          Lookback 12 months
        Inclusion
          I1 "Adults"
            Age ≥ 18 years
            Note "as written"
        EXCLUSION
          E1 "Pregnant"
            Any of
              pregnant
              Male
        """))
    lower = parse_protocol(textwrap.dedent("""\
        protocol DEMO
          title "Demo"
          lookback 12 months
        inclusion
          I1 "Adults"
            Age ≥ 18 years
            note "as written"
        exclusion
          E1 "Pregnant"
            any of
              pregnant
              male
        """))
    assert [c.section for c in upper.criteria] == ["inclusion", "exclusion"]
    assert upper.criteria == lower.criteria
    assert (upper.id, upper.title, upper.lookback) == (lower.id, lower.title, lower.lookback)


# ---------------------------------------------------------------- recovery
THREE_ERRORS = """
protocol DEMO
  title "Demo"

inclusion
  I1 "Adults"
    age ≥ 18 years and
  I2 "Neutrophils"
    ANC ≥ 1500 /mm^3
  I3 "No infarction"
    not histroy of myocardial infarction
exclusion
  E1 "Liver"
    # transaminases
    ALT > 2.5 x ULM
  E2 "Men"
    male
"""


def test_all_syntax_errors_of_a_file_are_reported():
    diags = errors_of(THREE_ERRORS)
    assert [d.code for d in diags] == ["E001", "E001", "E001"]
    assert [(d.span.line, d.span.column) for d in diags] == [(6, 23), (10, 17), (14, 17)]
    assert "did you mean 'history'" in diags[1].message
    assert "did you mean 'ULN'" in diags[2].message


def test_recovered_errors_render_with_the_file_and_source():
    with pytest.raises(ProtocolError) as info:
        parse_protocol(textwrap.dedent(THREE_ERRORS).lstrip("\n"), file="demo.elig")
    text = str(info.value) if str(info.value) else ""
    assert all(d.span.file == "demo.elig" for d in info.value.diagnostics)
    assert info.value.diagnostics[0].span.line == 6
    assert text == "" or "demo.elig:6:23" in text


def test_one_error_is_reported_once():
    diags = errors_of("""
        protocol DEMO
        inclusion
          I1
            age ≥ 18 yaers and
          I2
            male
        """)
    assert len(diags) == 1 and diags[0].span.line == 4


def test_errors_in_the_header_and_a_criterion():
    diags = errors_of("""
        protocol DEMO
          title Demo
        inclusion
          I1
            male
          I2
            age ≥ ≥ 18 years
        """)
    assert [d.span.line for d in diags] == [2, 7]


def test_an_unindented_criterion_and_a_later_error():
    diags = errors_of("""
        protocol DEMO
        inclusion
        I1 "Adults"
          age ≥ 18 years
        exclusion
          E1
            ALT > 2.5 x
        """)
    assert [d.span.line for d in diags] == [3, 7]
    assert "indent the criterion id under 'inclusion'" in diags[0].hint


def test_other_parser_errors_of_other_criteria_are_reported_too():
    diags = errors_of("""
        protocol DEMO
        inclusion
          I1
            200 < PaO2/FiO2 > 300 mmHg
          I2
            age ≥ 18 yaers and
        """)
    assert [(d.code, d.span.line) for d in diags] == [("E003", 4), ("E001", 6)]


def test_recovery_never_crashes(monkeypatch):
    import elig.language.parser as parser

    def boom(*args, **kwargs):
        raise RuntimeError("recovery bug")

    monkeypatch.setattr(parser, "_recover", boom)
    diags = errors_of(THREE_ERRORS)
    assert len(diags) == 1 and diags[0].span.line == 6


# ---------------------------------------------------------------- messages
@pytest.mark.parametrize("text, keyword", [
    ("positive SARS-CoV-2 test withn 14 days", "within"),
    ("histroy of myocardial infarction", "history"),
    ("ALT ≤ 2.5 x ULM", "ULN"),
    ("ANC ≥ 1500 /mm^3 unles taking G-CSF", "unless"),
    ("diarrhoea grade 2 lastng ≥ 3 days", "lasting"),
])
def test_did_you_mean_a_keyword(text, keyword):
    (d,) = errors_of(text, rule=True)
    assert f"did you mean '{keyword}'" in d.message


def test_a_misspelt_history_is_not_about_thresholds():
    (d,) = errors_of("histroy of myocardial infarction", rule=True)
    assert "threshold" not in d.hint
    assert "histroy" in d.hint


def test_no_did_you_mean_for_ordinary_errors():
    (d,) = errors_of("ANC ≥ ≥ 1500 /mm^3", rule=True)
    assert "did you mean" not in d.message


def test_every_terminal_has_a_description():
    names = {term.name for term in get_parser().terminals} | {"_INDENT", "_DEDENT", "$END"}
    missing = sorted(n for n in names if n not in _TOKEN_DESCRIPTIONS)
    assert missing == []


TERMINAL_NAME = re.compile(r"\b(?:_?[A-Z]+_[A-Z_]+|GAS_NAME|WORD|UNIT|NUMBER|STRING|SECTION|SEX|ROMAN|LPAR|RPAR|"
                           r"COMMA|COLON|SLASH|COMPARATOR|HISTORY|ACTIVE|TAKING|POSITIVE|CURRENT|__IGNORE_\d)\b")


@pytest.mark.parametrize("text", [
    "LVEF ≥ 50% (P(A-a)O2", "heart failure NYHA class III to", "ANC ≥ (",
    "any of", "any of pregnant,", "ALT ≤ 2.5 x", "age between 18 years", "hemoglobin ≥ 130 g/L if",
    "history of", "not", "cancer grade 2 to", "daily increase", "attested", "(ANC ≥ 5", "ANC ≥ 5 )",
    "positive covid test within", "age ≥ 18 years within", "`unterminated", "ANC: 5",
])
def test_no_terminal_name_leaks_into_a_message(text):
    for d in errors_of(text, rule=True):
        assert not TERMINAL_NAME.search(d.message), d.message
        assert not TERMINAL_NAME.search(d.hint or ""), d.hint


@pytest.mark.parametrize("text", [
    "protocol\n", "protocol X\n  title\n", "protocol X\ninclusion\n  I1 \"a\n", "protocol X\ninclusion\n  I1\n",
    "protocol X\n  version 3\n", "protocol X\ninclusion\n  I1\n    male\n    note\n", "protocol X\nfoo\n",
])
def test_no_terminal_name_leaks_in_protocol_errors(text):
    for d in errors_of(text):
        assert not TERMINAL_NAME.search(d.message), d.message


def test_unindented_criterion_id():
    (d,) = errors_of("""
        protocol DEMO
        exclusion
        E1 "Pregnant"
          pregnant
        """)
    assert d.code == "E001" and (d.span.line, d.span.column) == (3, 1)
    assert "not indented under 'exclusion'" in d.message
    assert "indent the criterion id under 'exclusion'" in d.hint


def test_a_tab_in_indentation():
    (d,) = errors_of('protocol DEMO\ninclusion\n  I1 "Adults"\n\tage ≥ 18 years\n')
    assert d.code == "E005" and d.span.line == 4
    assert "tab" in d.message


def test_inconsistent_indentation_points_at_the_line():
    (d,) = errors_of("""
        protocol DEMO
        inclusion
           I1 "Adults"
               age ≥ 18 years
             I2
               male
        """)
    assert d.code == "E005" and d.span.line == 5
    assert "does not match any outer level" in d.message


def test_a_criterion_indented_as_a_rule():
    (d,) = errors_of("""
        protocol DEMO
        inclusion
           I1 "Adults"
             age ≥ 18 years
             I2
               male
        """)
    assert d.code == "E001" and (d.span.line, d.span.column) == (5, 6)
    assert "indent it exactly as much as the criterion above it" in d.hint


def test_indentation_errors_in_several_criteria():
    diags = errors_of('protocol DEMO\ninclusion\n  I1\n\tmale\n  I2\n    female\n  I3\n    age ≥\n')
    assert [(d.code, d.span.line) for d in diags] == [("E005", 4), ("E001", 8)]
