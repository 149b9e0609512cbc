"""Plain-text explanation for the terminal, readable at a glance.

The verdict comes first, then what to collect (when undetermined), then each criterion with the
sponsor's sentence, the rule, the verdict, the values used (as recorded, the
conversion, source and date), the threshold and ULN, derivations with the
numbers substituted, notes, and what would change the outcome.
"""

from __future__ import annotations

import textwrap

from elig.report.markdown import format_value
from elig.report.safe import neutralised
from elig.engine.results import CriterionResult, EvaluationResult, Explanation, Outcome, ValueUsed
from elig.terminology.units import format_number

MARK = {Outcome.MET: "✔", Outcome.NOT_MET: "✘", Outcome.UNKNOWN: "?"}


def render_text(result: EvaluationResult, *, width: int = 100, style=None) -> str:
    """Render a result; ``style(text, outcome_or_verdict)`` may add colour (the CLI does on a terminal)."""
    result = neutralised(result)  # no control character from the data reaches the reader
    paint = style or (lambda text, _kind: text)
    out: list[str] = []
    title = f"{result.protocol_id}" + (f" — {result.protocol_title}" if result.protocol_title else "")
    out.append(title)
    who = result.patient_id + (f" ({result.patient_name})" if result.patient_name else "")
    out.append(f"Patient {who} · {result.patient_source}")
    out.append(f"Evaluated as of {result.as_of} · elig {result.elig_version} · protocol {result.protocol_checksum}")
    out.append("")
    out.append(paint(f"VERDICT: {str(result.verdict).upper()}", result.verdict))
    counts = {o: sum(1 for c in result.criteria if c.outcome is o) for o in Outcome}
    out.append(f"  {len(result.criteria)} criteria: {counts[Outcome.MET]} met, {counts[Outcome.NOT_MET]} not met, "
               f"{counts[Outcome.UNKNOWN]} unknown")
    deciding = [c for c in result.criteria if c.excludes]
    if deciding:
        out.extend(textwrap.wrap("excluded by: " + ", ".join(f"{c.id} ({c.section} {c.outcome})" for c in deciding),
                                 width, initial_indent="  ", subsequent_indent="    "))
    if result.to_collect and str(result.verdict) == "undetermined":  # an ineligible patient needs no more data
        out.append("")
        out.append("Data to collect to decide:")
        for item in result.to_collect:
            out.extend(textwrap.wrap(f"{item.item} — decides {', '.join(item.criteria)}", width,
                                     initial_indent="  • ", subsequent_indent="    "))
    for section, crits in (("Inclusion criteria", result.inclusions), ("Exclusion criteria", result.exclusions)):
        if not crits:
            continue
        out.append("")
        out.append(section)
        for c in crits:
            out.extend(_criterion(c, width, paint))
    if result.data_issues:
        out.append("")
        out.append("Data issues (entries skipped or kept without the unusable field):")
        for issue in result.data_issues:
            out.extend(textwrap.wrap(issue, width, initial_indent="  • ", subsequent_indent="    "))
    return "\n".join(out) + "\n"


def _criterion(c: CriterionResult, width: int, paint) -> list[str]:
    head = f"  {MARK[c.outcome]} {c.id:<6} {str(c.outcome):<8} {c.rule}"
    lines = [paint(head, c.outcome)]
    ind = "      "
    if c.sentence:
        lines.extend(textwrap.wrap(f'sponsor: "{c.sentence}"', width, initial_indent=ind,
                                   subsequent_indent=ind + "  "))
    for note in c.notes:
        lines.extend(textwrap.wrap(f"note: {note}", width, initial_indent=ind, subsequent_indent=ind + "  "))
    if c.attested and c.outcome is Outcome.UNKNOWN:
        lines.append(f"{ind}(an attestation: decided by the investigator, not by data)")
    lines.extend(_explanation(c.explanation, ind, width, top=True))
    if c.outcome is Outcome.NOT_MET and c.section == "inclusion":
        for d in _distances(c.explanation):
            lines.append(f"{ind}to change the outcome: {d}")
    return lines


def _distances(e: Explanation) -> list[str]:
    out = [e.distance] if e.distance else []
    for child in e.children:
        if child.outcome is e.outcome or e.kind in ("and", "all", "or", "any"):
            out.extend(_distances(child))
    return out


def _explanation(e: Explanation, ind: str, width: int, top: bool = False) -> list[str]:
    lines: list[str] = []
    if e.kind in ("and", "or", "all", "any", "none", "not", "unless", "whichever", "definition"):
        lines.extend(textwrap.wrap(e.summary, width, initial_indent=ind, subsequent_indent=ind + "  "))
        for child in e.children:
            lines.append(f"{ind}  {MARK[child.outcome]} {child.rule}")
            lines.extend(_explanation(child, ind + "    ", width))
        return lines
    lines.extend(textwrap.wrap(e.summary, width, initial_indent=ind, subsequent_indent=ind + "  "))
    if e.derived is not None:
        d = e.derived
        lines.append(f"{ind}derivation: {d.method}")
        lines.extend(textwrap.wrap(d.formula, width, initial_indent=ind + "  ", subsequent_indent=ind + "    "))
        lines.extend(textwrap.wrap("= " + d.substituted, width, initial_indent=ind + "  ",
                                   subsequent_indent=ind + "    "))
        if d.pairing:
            lines.append(f"{ind}  pairing: {d.pairing}")
        for prm in d.parameters:
            lines.append(f"{ind}  parameter: {prm}")
    for v in e.values:
        lines.extend(textwrap.wrap("value: " + describe_value(v), width, initial_indent=ind,
                                   subsequent_indent=ind + "  "))
    if e.threshold is not None:
        t = e.threshold
        text = f"threshold: {t.text}"
        if t.uln is not None:
            text += f" ({t.limit} {format_value(format_number(t.uln), t.unit)}" + (f" from {t.uln_source})" if t.uln_source else ")")
        lines.extend(textwrap.wrap(text, width, initial_indent=ind, subsequent_indent=ind + "  "))
    if e.outcome is Outcome.NOT_MET and e.searched and not e.values:
        lines.extend(textwrap.wrap("searched: " + ", ".join(e.searched), width, initial_indent=ind,
                                   subsequent_indent=ind + "  "))
    if e.missing and e.outcome is Outcome.UNKNOWN:
        lines.extend(textwrap.wrap("to collect: " + "; ".join(e.missing), width, initial_indent=ind,
                                   subsequent_indent=ind + "  "))
    for child in e.children:  # a fact's reading of who is asked (childbearing potential)
        lines.append(f"{ind}  {MARK[child.outcome]} {child.rule}")
        lines.extend(_explanation(child, ind + "    ", width))
    return lines


def describe_value(v: ValueUsed) -> str:
    if v.value is None:
        main = f"{v.concept}: {v.text}" if v.text else v.concept
    else:
        main = f"{v.concept} {format_value(v.value, v.unit)}"
        if v.conversion:
            main += f" ({v.conversion})"
    parts = [main]
    if v.date and v.value is not None:
        parts.append(f"on {v.date}")
    if v.source:
        parts.append(f"from {v.source}")
    return " ".join(parts)
