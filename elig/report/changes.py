"""What would change the verdict: a pure reading of an evaluation result.

Two kinds of lever, both taken from the explanation the evaluator already built:

- **data to collect**: for an undetermined verdict, each missing datum and the
  criteria it would decide (the result's ``to_collect``);
- **thresholds**: for each numeric test, how far the patient's value is from
  the other side of its threshold. For a criterion that excludes the patient
  this is what would have to change for it to stop excluding (the distances
  the reports print under "What would change the outcome"); for a criterion
  that is decided in the patient's favour, how much margin is left before it
  would exclude.

Nothing is evaluated again here: the function reads ``Explanation`` objects.
``elig explain --what-would-change`` prints it; the workbench (``elig serve``) shows it.
"""

from __future__ import annotations

import attrs

from elig.engine.results import EvaluationResult, Explanation, Outcome
from elig.report.markdown import compared_value, format_value, outcome_changes
from elig.terminology.units import format_number

_SYMBOL_NEGATED = {"≥": "<", ">": "≤", "≤": ">", "<": "≥"}


@attrs.frozen
class Lever:
    """One thing that would change a criterion's outcome, and so perhaps the verdict."""

    kind: str  # "collect" (a datum to record) | "threshold" (a value's distance to a threshold)
    criteria: tuple[str, ...]  # the criteria it concerns
    rule: str  # the (sub)rule, canonical text; the datum for "collect"
    text: str  # what would change, for people
    excludes: bool = False  # the criterion excludes the patient now

    def as_dict(self) -> dict:
        return attrs.asdict(self)


@attrs.frozen
class DerivedValue:
    """A value the evaluator derived (creatinine clearance, P/F ratio...), with its working."""

    criterion: str
    concept: str
    method: str
    value: float
    unit: str
    substituted: str
    reference: str

    @property
    def text(self) -> str:
        return format_value(format_number(self.value), self.unit)

    def as_dict(self) -> dict:
        return {**attrs.asdict(self), "text": self.text}


def what_would_change(result: EvaluationResult) -> tuple[Lever, ...]:
    """The levers on a patient's verdict: data to collect, then distances to thresholds."""
    out: list[Lever] = []
    if str(result.verdict) == "undetermined":
        for item in result.to_collect:
            ids = ", ".join(item.criteria)
            out.append(Lever("collect", item.criteria, item.item,
                             f"{item.item} (would decide {ids})"))
    for ch in outcome_changes(result):
        out.append(Lever("threshold", (ch.criterion,), ch.rule, ch.distance, excludes=True))
    for c in result.criteria:
        if c.excludes or c.outcome is Outcome.UNKNOWN:
            continue
        for e in _comparisons(c.explanation):
            text = _margin(e, c.section)
            if text:
                out.append(Lever("threshold", (c.id,), e.rule, text))
    return tuple(out)


def derived_values(result: EvaluationResult) -> tuple[DerivedValue, ...]:
    """Every derived value in the explanation, in criterion order, each once per criterion."""
    out: list[DerivedValue] = []
    for c in result.criteria:
        seen = set()
        for e in _walk(c.explanation):
            d = e.derived
            if d is None or (d.concept, d.method, d.value) in seen:
                continue
            seen.add((d.concept, d.method, d.value))
            out.append(DerivedValue(c.id, d.concept, d.method, d.value, d.unit, d.substituted, d.reference))
    return tuple(out)


def render_changes_text(levers: tuple[Lever, ...]) -> str:
    """The levers as plain text, one per line (``elig explain --what-would-change``)."""
    if not levers:
        return "Nothing in the data would change the verdict: no numeric test and no missing datum.\n"
    lines = ["What would change the verdict:"]
    for lever in levers:
        where = ", ".join(lever.criteria)
        if lever.kind == "collect":
            lines.append(f"  collect  {lever.text}")
        else:
            lines.append(f"  {where:<8} {lever.rule}: {lever.text}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- helpers
def _walk(e: Explanation):
    yield e
    for child in e.children:
        yield from _walk(child)


def _comparisons(e: Explanation):
    """Numeric comparisons that decided the outcome (not under a negation, where the sense flips)."""
    if e.kind in ("not", "none", "unless"):
        return
    if e.kind == "comparison" and e.threshold is not None and e.threshold.value is not None:
        yield e
    for child in e.children:
        yield from _comparisons(child)


def _margin(e: Explanation, section: str) -> str | None:
    """For a test decided in the patient's favour: the value, the threshold on the other side, the gap."""
    t = e.threshold
    op = (t.text or "")[:1]
    if op not in _SYMBOL_NEGATED:
        return None
    value = compared_value(e)
    if value is None:
        return None
    if e.outcome is Outcome.MET:
        flip = _SYMBOL_NEGATED[op]
    elif e.outcome is Outcome.NOT_MET:
        flip = op
    else:
        return None
    effect = "fail" if section == "inclusion" and e.outcome is Outcome.MET else (
        "be met" if e.outcome is Outcome.NOT_MET else "change")
    if section == "exclusion" and e.outcome is Outcome.NOT_MET:
        effect = "exclude"
    gap = abs(value - t.value)
    return (f"{format_value(format_number(value), t.unit)} now; it would {effect} at {flip} "
            f"{format_value(format_number(t.value), t.unit)} ({format_value(format_number(gap), t.unit)} away)")
