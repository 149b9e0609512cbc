"""Self-contained HTML explanation report: one file, inline CSS, nothing fetched.

The page opens offline from an e-mail attachment: no script, no external font,
image or link to the network; it prints cleanly. Met, not met and unknown each
have a colour and a symbol (✔ ✘ ?), so the report reads without colour too.
Jinja2 autoescaping is on: anything from the patient record or the protocol
(a name or note containing ``<script>``) shows as text. Deterministic: no clock
is read, the only date is the result's ``as_of``.

Rules are syntax-highlighted with the elig Pygments lexer
(:class:`elig.language.highlight.EligLexer`): Pygments escapes the text and emits
``<span class="…">`` tokens whose colours come from a small CSS block embedded
in the page's inline ``<style>`` (:data:`HIGHLIGHT_CSS`). The palette avoids the
green, red and amber that mean met, excluding and undecided.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.style import Style
from pygments.token import Comment, Keyword, Name, Number, Operator, String

from elig.language.highlight import EligLexer
from elig.report.markdown import LOGIC_KINDS, MARK, VERDICT_MARK, counts, outcome_changes, uln_text, value_row
from elig.report.safe import neutralised
from elig.engine.results import EvaluationResult, Outcome

TEMPLATES = Path(__file__).parent / "templates"


class RuleStyle(Style):
    """Colours of highlighted rules: purple words of the language, blue quantities, plain concepts."""

    background_color = "#f3f5f7"  # the page's code background (--code-bg)
    styles = {
        Keyword: "bold #6a3d9a",
        Operator.Word: "bold #6a3d9a",
        Keyword.Constant: "nobold #6a3d9a",  # male, female
        Operator: "bold #1d232b",
        Number: "#0550ae",
        Keyword.Type: "nobold #0550ae",  # units, grade, class
        Name.Builtin: "#0550ae",  # x ULN
        String: "italic #3f4a56",  # an attestation's wording
        Comment: "italic #5b6570",
    }


_FORMATTER = HtmlFormatter(style=RuleStyle, nowrap=True)
HIGHLIGHT_CSS = Markup("\n".join(_FORMATTER.get_token_style_defs(".hl")))  # generated here, never from data


@lru_cache(maxsize=4096)
def highlight_rule(rule: str) -> Markup:
    """A rule as escaped HTML with Pygments token spans, for ``<code class="hl">``.

    Cached: a protocol's rules are the same for every patient screened.
    """
    html = highlight(rule, EligLexer(stripnl=False, ensurenl=False), _FORMATTER)
    return Markup(html.rstrip("\n"))


def effect(c) -> str:
    """CSS class of a criterion's effect on eligibility: favourable, excluding or undecided."""
    if c.outcome is Outcome.UNKNOWN:
        return "unk"
    return "excl" if c.excludes else "fav"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The template environment (autoescape on for every template); built once, never mutated."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
        keep_trailing_newline=True,
    )


def render_html(result: EvaluationResult) -> str:
    result = neutralised(result)  # no control character from the data reaches the reader
    verdict = str(result.verdict)
    return environment().get_template("report.html.j2").render(
        r=result,
        verdict=verdict,
        verdict_mark=VERDICT_MARK[verdict],
        n=counts(result),
        deciding=[c for c in result.criteria if c.excludes],
        sections=(("Inclusion criteria", result.inclusions), ("Exclusion criteria", result.exclusions)),
        changes=outcome_changes(result),
        logic_kinds=LOGIC_KINDS,
        mark=MARK.__getitem__,
        effect=effect,
        value_rows=lambda values: [value_row(v) for v in values],
        uln_text=uln_text,
        hl=highlight_rule,
        highlight_css=HIGHLIGHT_CSS,
    )
