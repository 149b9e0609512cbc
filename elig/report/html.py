"""Self-contained HTML explanation report: one file, inline CSS, nothing fetched.

The page opens offline from an e-mail attachment: no script, no external font,
image or link to the network; it prints cleanly. Met, not met and unknown each
have a colour and a symbol (✔ ✘ ?), so the report reads without colour too.
Jinja2 autoescaping is on: anything from the patient record or the protocol
(a name or note containing ``<script>``) shows as text. Deterministic: no clock
is read, the only date is the result's ``as_of``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

from elig.report.markdown import LOGIC_KINDS, MARK, VERDICT_MARK, counts, outcome_changes, uln_text, value_row
from elig.results import EvaluationResult, Outcome

TEMPLATES = Path(__file__).parent / "templates"


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
    )
