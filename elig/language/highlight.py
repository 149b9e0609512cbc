"""Syntax highlighting for the elig language: a Pygments lexer.

Registered as the Pygments lexer ``elig`` (entry point ``pygments.lexers``),
so Markdown fences marked ```` ```elig ```` are highlighted by the docs site,
and used by the HTML reports. The token classes follow the grammar
(``grammar/elig.lark``): section and header keywords, logic keywords,
comparators in symbols and words, numbers with their units, ``x ULN``,
sponsor's sentences and notes (strings), comments, criterion ids and concept
names. A character the language does not allow (such as a ``?`` left by a
registry text) is an Error token, as in the parser.
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Text, Whitespace

__all__ = ["EligLexer"]

_LOGIC = ("and", "or", "not", "any", "all", "none", "of", "within", "if", "unless", "to", "between",
          "history", "active", "current", "taking", "positive", "onset", "lasting", "daily", "increase",
          "in", "attested")
_KEYWORD_WORDS = "|".join(_LOGIC + ("male", "female", "note"))
_WORD_COMPARATORS = (
    r"greater\s+than\s+or\s+equal\s+to|less\s+than\s+or\s+equal\s+to|greater\s+than|more\s+than|less\s+than|"
    r"fewer\s+than|at\s+least|at\s+most|no\s+more\s+than|no\s+greater\s+than|no\s+less\s+than|not\s+exceeding|"
    r"not\s+more\s+than|not\s+less\s+than|equal\s+to"
)
_ULN = r"(?:[x×]|\*|times)\s*(?:ULN\b|the\s+upper\s+limit\s+of\s+normal(?:\s*\(\s*ULN\s*\))?)"
_SCALED_UNIT = r"(?:[x×]\s*)?10(?:\^|\*\*|\*)?-?(?:\d+|[⁰¹²³⁴⁵⁶⁷⁸⁹]+)(?:\s*/\s*[A-Za-zµμ][A-Za-z0-9µμ^³²]*)?"
_PLAIN_UNIT = (r"(?!(?:" + _KEYWORD_WORDS + r")(?![A-Za-z0-9µμ_'\-]))"
               r"(?:%|[A-Za-zµμ/][A-Za-z0-9µμ/^³²·.\[\]{}_*]*(?<![.]))")
_NOT_KEYWORD = (r"(?!(?:" + _KEYWORD_WORDS + r"|protocol|title|version|lookback|vocabulary|define|inclusion|exclusion)"
                r"(?![A-Za-z0-9µμ_'\-]))")
_ID = r"[A-Za-z][A-Za-z0-9]*(?:[.\-][A-Za-z0-9]+)*"


class EligLexer(RegexLexer):
    """Pygments lexer for elig protocols and rules (``*.elig``)."""

    name = "elig"
    aliases = ["elig"]
    filenames = ["*.elig"]
    mimetypes = ["text/x-elig"]
    url = "https://example.invalid/elig"  # the project's docs site; no network needed

    tokens = {
        "root": [
            # a criterion id opens a line: I4.1 "sentence"  (or alone)
            (r"(?m)^([ \t]*)" + _NOT_KEYWORD + r"(" + _ID + r")(?=[ \t]+\"|[ \t]*(?:#.*)?$)",
             bygroups(Whitespace, Name.Label)),
            (r"\n", Whitespace),
            (r"[ \t\f]+", Whitespace),
            (r"\\[ \t\f]*\n", Text),
            (r"#.*$", Comment.Single),
            # protocol NCT06021067 / inclusion / exclusion
            (r"(protocol)([ \t]+)(" + _ID + r")", bygroups(Keyword.Declaration, Whitespace, Name.Label)),
            (r"(inclusion|exclusion)\b", Keyword.Declaration),
            (r"(title|version|lookback|vocabulary|define)\b", Keyword.Declaration),
            (r"\(\s*whichever\s+is\s+recorded\s*\)", Keyword),
            (r'"(?:[^"\\\n]|\\.)*"', String.Double),
            (r"`[^`\n]+`", Name.Variable),
            (r"P\(A-a\)O2", Name.Variable),
            (r"(?i:" + _WORD_COMPARATORS + r")\b", Operator.Word),
            (r"≥|≤|>=|<=|=<|=>|!=|≠|⩾|⩽|>|<|=", Operator),
            (r"(grade|stage|NYHA\s+class|class)\b", Keyword.Type),
            (r"(III|II|IV|I|V)\b", Number),
            # numbers, then x ULN or a unit
            (r"(\d+(?:\.\d+)?)(\s*)(" + _ULN + ")", bygroups(Number, Whitespace, Name.Builtin)),
            (r"(\d+(?:\.\d+)?)(\s*)(" + _SCALED_UNIT + ")", bygroups(Number, Whitespace, Keyword.Type)),
            (r"(\d+(?:\.\d+)?)(%)", bygroups(Number, Keyword.Type)),
            (r"(\d+(?:\.\d+)?)([ \t]*)(" + _PLAIN_UNIT + ")", bygroups(Number, Whitespace, Keyword.Type)),
            (r"\d+(?:\.\d+)?", Number),
            (words(_LOGIC, suffix=r"(?![A-Za-z0-9µμ_'\-])"), Keyword),
            (r"(male|female)(?![A-Za-z0-9µμ_'\-])", Keyword.Constant),
            (r"note(?![A-Za-z0-9µμ_'\-])", Keyword.Declaration),
            (r"[A-Za-zµμ_][A-Za-z0-9µμ_'\-]*", Name),
            (r"[(),:]", Punctuation),
            (r"/", Operator),
        ],
    }
