"""Markdown explanation report, for people reading in a repository, a wiki or an e-mail.

Same content and order as the text and HTML reports: trial, patient, evaluation
date, elig version and protocol checksum; the verdict; data to collect; each
inclusion and exclusion criterion (the sponsor's sentence, the rule, the verdict,
the values used, the threshold and ULN, derivations with the numbers
substituted, notes and attestations); what would change the outcome; data issues.

Everything that comes from the protocol or the patient record is escaped, both
for Markdown (``*``, ``_``, ``|`` ...) and for the HTML a Markdown renderer lets
through (``<script>`` shows as text). The output is deterministic: no clock is
read, the only date is the result's ``as_of``.

The helpers ``format_value``, ``outcome_changes``, ``value_row`` and ``counts``
are shared with the text and HTML renderers.
"""

from __future__ import annotations

import re

import attrs

from elig.report.safe import neutralised
from elig.engine.results import CriterionResult, EvaluationResult, Explanation, Outcome, ValueUsed
from elig.terminology.units import NO_UNIT, format_number, with_unit

MARK = {Outcome.MET: "✔", Outcome.NOT_MET: "✘", Outcome.UNKNOWN: "?"}
VERDICT_MARK = {"eligible": "✔", "ineligible": "✘", "undetermined": "?"}
LOGIC_KINDS = ("and", "or", "all", "any", "none", "not", "unless", "whichever", "definition")
_NEGATED = {"≥": "<", ">": "≤", "≤": ">", "<": "≥"}


# ---------------------------------------------------------------- shared helpers
@attrs.frozen
class Change:
    """One line of "what would change the outcome": a criterion, the (sub)rule, how far it is."""

    criterion: str
    section: str
    outcome: Outcome
    rule: str
    distance: str




def format_value(value: object, unit: str | None) -> str:
    """A value and its unit for people: ``1.2 10^9/L``, ``60%``, and a unitless ``2`` without a stray unit.

    A number is written as :func:`recorded` writes it; any other value (already
    formatted text) is used as it is. The unit rules are ``elig.terminology.units.with_unit``'s,
    the ones the evaluator's summaries use.
    """
    text = recorded(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
    return with_unit(text, unit)


def display_unit(unit: str | None) -> str:
    """A unit as shown: ``""`` for no unit (None, empty or ``"1"``), else the unit as written."""
    unit = (unit or "").strip()
    return "" if unit in NO_UNIT else unit


def counts(result: EvaluationResult) -> dict[str, int]:
    out = {str(o): 0 for o in Outcome}
    for c in result.criteria:
        out[str(c.outcome)] += 1
    return out


def recorded(x: float | None) -> str:
    """A number as recorded (no rounding beyond 6 significant digits)."""
    return "" if x is None else f"{x:g}"


def value_row(v: ValueUsed) -> dict[str, str]:
    """The columns of a value used: what, value, unit as recorded, converted, date, source."""
    if v.value is None:
        value, unit = (v.text or "—"), ""
    else:
        value, unit = recorded(v.value), display_unit(v.unit)
    converted = ""
    if v.conversion:
        converted = v.conversion
    elif v.canonical_value is not None and v.canonical_unit and v.canonical_value != v.value:
        converted = format_value(format_number(v.canonical_value), v.canonical_unit)
    if v.value is not None and v.text and v.text not in (format_value(v.value, v.unit),
                                                         f"{recorded(v.value)} {v.unit or ''}".strip()):
        converted = converted or v.text
    return {"concept": v.concept, "value": value, "unit": unit, "converted": converted,
            "date": v.date or "", "source": v.source or ""}


def outcome_changes(result: EvaluationResult) -> list[Change]:
    """For each criterion that excludes the patient, the distance of each numeric test to its threshold.

    Not-met inclusions use the evaluator's ``distance`` strings. A met exclusion
    has none (nothing failed), so its distance is the gap to the other side of
    the threshold: ``1.8 mg/dL; needs ≤ 1.5 mg/dL not to exclude (0.3 mg/dL away)``.
    """
    out: list[Change] = []
    for c in result.criteria:
        if not c.excludes:
            continue
        if c.section == "inclusion":
            leaves = _not_met_distances(c.explanation)
        else:
            leaves = _met_distances(c.explanation)
        seen = set()
        for rule, distance in leaves:
            if (rule, distance) not in seen:
                seen.add((rule, distance))
                out.append(Change(c.id, c.section, c.outcome, rule, distance))
    return out


def _not_met_distances(e: Explanation) -> list[tuple[str, str]]:
    out = [(e.rule, e.distance)] if e.distance else []
    for child in e.children:
        if child.outcome is e.outcome or e.kind in ("and", "all", "or", "any"):
            out.extend(_not_met_distances(child))
    return out


def _met_distances(e: Explanation) -> list[tuple[str, str]]:
    if e.outcome is not Outcome.MET:
        return []
    if e.kind in ("not", "none", "unless"):
        return []  # met because something is absent: no numeric gap to report
    out: list[tuple[str, str]] = []
    if e.distance:
        out.append((e.rule, e.distance))
    elif e.kind == "comparison" and e.threshold is not None and e.threshold.value is not None:
        d = _gap_to_other_side(e)
        if d:
            out.append((e.rule, d))
    for child in e.children:
        out.extend(_met_distances(child))
    return out


def compared_value(e: Explanation) -> float | None:
    """The one number a comparison compared with its threshold (a derived value, or the single
    value used, in the threshold's unit), or None when the test did not rest on one number."""
    if e.derived is not None:
        return e.derived.value
    numbers = [v.canonical_value if v.canonical_value is not None else v.value for v in e.values
               if v.value is not None]
    return numbers[0] if len(numbers) == 1 else None


def _gap_to_other_side(e: Explanation) -> str | None:
    t = e.threshold
    op = t.text[:1] if t and t.text else ""
    if op not in _NEGATED:
        return None
    value = compared_value(e)
    if value is None:
        return None
    gap = abs(value - t.value)
    return (f"{format_value(format_number(value), t.unit)}; needs {_NEGATED[op]} "
            f"{format_value(format_number(t.value), t.unit)} not to exclude "
            f"({format_value(format_number(gap), t.unit)} away)")


def uln_text(e: Explanation) -> str | None:
    t = e.threshold
    if t is None or t.uln is None:
        return None
    return f"{t.limit} {format_value(format_number(t.uln), t.unit)}" + (f", from {t.uln_source}" if t.uln_source else "")


# ---------------------------------------------------------------- Markdown
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|])")


def md(text: object) -> str:
    """Escape text from data or protocol for Markdown, and for the HTML Markdown lets through."""
    s = str(text).replace("&", "&amp;").replace("<", "&lt;")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return " ".join(s.split())  # no line breaks inside a table cell or list item


def code(text: object) -> str:
    """Inline code span: escaping is not needed inside, but a backtick must not end it early."""
    s = " ".join(str(text).split())
    fence = "``" if "`" in s else "`"
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def render_markdown(result: EvaluationResult) -> str:
    result = neutralised(result)  # no control character from the data reaches the reader
    out: list[str] = []
    title = md(result.protocol_id) + (f" — {md(result.protocol_title)}" if result.protocol_title else "")
    out.append(f"# Eligibility report: {title}")
    out.append("")
    out.append("| | |")
    out.append("|---|---|")
    out.append(f"| Trial | {md(result.protocol_id)}" + (f" — {md(result.protocol_title)}" if result.protocol_title else "")
               + " |")
    out.append(f"| Patient | {md(result.patient_id)}" + (f" ({md(result.patient_name)})" if result.patient_name else "")
               + " |")
    out.append(f"| Source | {md(result.patient_source) if result.patient_source else '—'} |")
    out.append(f"| Evaluated as of | {md(result.as_of)} |")
    out.append(f"| elig version | {md(result.elig_version)} |")
    out.append(f"| Protocol checksum | {code(result.protocol_checksum)} |")
    out.append("")
    verdict = str(result.verdict)
    n = counts(result)
    out.append(f"## {VERDICT_MARK[verdict]} Verdict: **{verdict.upper()}**")
    out.append("")
    out.append(f"{len(result.criteria)} criteria: {n['met']} met, {n['not met']} not met, {n['unknown']} unknown.")
    deciding = [c for c in result.criteria if c.excludes]
    if deciding:
        out.append("")
        out.append("Excluded by: " + ", ".join(f"**{md(c.id)}** ({c.section} {c.outcome})" for c in deciding) + ".")
    if result.to_collect and verdict == "undetermined":  # an ineligible patient needs no more data
        out.append("")
        out.append("## Data to collect to decide")
        out.append("")
        for item in result.to_collect:
            out.append(f"- {md(item.item)} — decides {', '.join(md(c) for c in item.criteria)}")
    for heading, crits in (("Inclusion criteria", result.inclusions), ("Exclusion criteria", result.exclusions)):
        if not crits:
            continue
        out.append("")
        out.append(f"## {heading}")
        for c in crits:
            out.append("")
            out.extend(_criterion(c))
    changes = outcome_changes(result)
    if changes:
        out.append("")
        out.append("## What would change the outcome")
        out.append("")
        for ch in changes:
            out.append(f"- **{md(ch.criterion)}** ({ch.section} {ch.outcome}) {code(ch.rule)}: {md(ch.distance)}")
    if result.data_issues:
        out.append("")
        out.append("## Data issues")
        out.append("")
        out.append("Entries skipped, or kept without the unusable field:")
        out.append("")
        for issue in result.data_issues:
            out.append(f"- {md(issue)}")
    out.append("")
    out.append("---")
    out.append("")
    out.append(f"*elig {md(result.elig_version)} · protocol {code(result.protocol_checksum)} · "
               f"evaluated as of {md(result.as_of)}*")
    return "\n".join(out) + "\n"


def _criterion(c: CriterionResult) -> list[str]:
    lines = [f"### {MARK[c.outcome]} {md(c.id)} — {c.outcome}", ""]
    if c.sentence:
        lines.append(f"> {md(c.sentence)}")
        lines.append("")
    lines.append(f"Rule: {code(c.rule)}")
    lines.append("")
    lines.append(f"Verdict: **{MARK[c.outcome]} {c.outcome}**" + (" (excludes the patient)" if c.excludes else ""))
    if c.attested:
        lines.append("")
        lines.append("*An attestation: decided by the investigator, not by data.*")
    for note in c.notes:
        lines.append("")
        lines.append(f"*Note:* {md(note)}")
    lines.append("")
    lines.extend(_explanation(c.explanation, 0))
    return lines


def _explanation(e: Explanation, depth: int) -> list[str]:
    ind = "  " * depth
    lines: list[str] = []
    if depth:
        lines.append(f"{ind}- {MARK[e.outcome]} {code(e.rule)} — {e.outcome}")
        ind += "  "
        bullet = f"{ind}- "
    else:
        bullet = "- "
    lines.append(f"{bullet}{md(e.summary)}")
    if e.kind in LOGIC_KINDS:
        for child in e.children:
            lines.extend(_explanation(child, depth + 1))
        return lines
    if e.derived is not None:
        d = e.derived
        lines.append(f"{bullet}Derivation: {md(d.method)}")
        lines.append(f"{ind}  - formula: {code(d.formula)}")
        lines.append(f"{ind}  - substituted: {code(d.substituted)}")
        if d.pairing:
            lines.append(f"{ind}  - pairing: {md(d.pairing)}")
        for prm in d.parameters:
            lines.append(f"{ind}  - parameter: {md(prm)}")
        if d.reference:
            lines.append(f"{ind}  - reference: {md(d.reference)}")
    for v in e.values:
        r = value_row(v)
        text = f"{md(r['concept'])}: **{md(r['value'])}**" + ("%" if r["unit"] == "%" else
                                                              f" {md(r['unit'])}" if r["unit"] else "")
        if r["converted"]:
            text += f" (converted: {md(r['converted'])})"
        if r["date"]:
            text += f", dated {md(r['date'])}"
        if r["source"]:
            text += f", from {md(r['source'])}"
        lines.append(f"{bullet}Value: {text}")
    if e.threshold is not None:
        lines.append(f"{bullet}Threshold: {md(e.threshold.text)}")
        uln = uln_text(e)
        if uln:
            lines.append(f"{bullet}{md(uln)}")
    if e.searched and not e.values:
        lines.append(f"{bullet}Searched: {md(', '.join(e.searched))}")
    if e.reason and e.outcome is Outcome.UNKNOWN and e.reason not in e.summary:
        lines.append(f"{bullet}Reason: {md(e.reason)}")
    if e.missing and e.outcome is Outcome.UNKNOWN:
        lines.append(f"{bullet}To collect: {md('; '.join(e.missing))}")
    for child in e.children:  # a fact's reading of who is asked (childbearing potential)
        lines.extend(_explanation(child, depth + 1))
    return lines
