"""The Pygments lexer for elig."""

from __future__ import annotations

from pathlib import Path

import pytest

pygments = pytest.importorskip("pygments")
from pygments.token import Comment, Error, Keyword, Name, Number, Operator, String  # noqa: E402

from elig.language.highlight import EligLexer  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def tokens(text: str):
    return [(tok, value) for tok, value in EligLexer().get_tokens(text) if value.strip()]


@pytest.mark.parametrize("path", sorted((ROOT / "protocols").glob("*.elig")), ids=lambda p: p.name)
def test_protocols_lex_without_errors(path):
    text = path.read_text(encoding="utf-8")
    assert [v for tok, v in EligLexer().get_tokens(text) if tok in Error] == []
    assert "".join(v for _, v in EligLexer().get_tokens(text)) == text if text.endswith("\n") else True


def test_lint_fixtures_lex_without_errors():
    for path in sorted((ROOT / "tests" / "data" / "lint").glob("*.elig")):
        assert [v for tok, v in EligLexer().get_tokens(path.read_text(encoding="utf-8")) if tok in Error] == []


def test_token_classes():
    toks = tokens('inclusion\n  I4.1 "ANC ≥ 1.5"  # c\n    ANC ≥ 1.5 x 10^9/L within 7 days and ALT ≤ 2.5 x ULN\n')
    assert (Keyword.Declaration, "inclusion") in toks
    assert (Name.Label, "I4.1") in toks
    assert (String.Double, '"ANC ≥ 1.5"') in toks
    assert (Comment.Single, "# c") in toks
    assert (Operator, "≥") in toks
    assert (Number, "1.5") in toks
    assert (Keyword.Type, "x 10^9/L") in toks
    assert (Keyword.Type, "days") in toks
    assert (Name.Builtin, "x ULN") in toks
    assert (Keyword, "within") in toks and (Keyword, "and") in toks


def test_keywords_are_not_units():
    toks = tokens("age 18 to 75 years\n")
    assert (Keyword, "to") in toks and (Keyword.Type, "years") in toks


def test_lost_comparator_is_an_error_token():
    assert any(tok in Error for tok, _ in EligLexer().get_tokens("ANC ? 1.5 x 10^9/L\n"))


def test_registered_name():
    from pygments.lexers import get_lexer_by_name

    try:
        lexer = get_lexer_by_name("elig")
    except pygments.util.ClassNotFound:
        pytest.skip("the pygments.lexers entry point is not installed yet")
    assert type(lexer).__name__ == "EligLexer"
