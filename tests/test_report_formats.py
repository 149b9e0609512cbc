"""Markdown and HTML reports: content present, data escaped, output deterministic."""

from __future__ import annotations

import elig
from elig.report.html import render_html
from elig.report.markdown import render_markdown

from conftest import ROOT


def _result(nct06021067, name="organ_failure.yaml"):
    return elig.evaluate(nct06021067, ROOT / "examples" / "patients" / name, as_of="2024-03-15")


def test_markdown_has_verdict_and_every_criterion(nct06021067):
    r = _result(nct06021067)
    md = render_markdown(r)
    assert "INELIGIBLE" in md
    for c in r.criteria:
        assert c.id in md
    assert md == render_markdown(_result(nct06021067))


def test_html_is_self_contained_and_escapes_data(nct06021067):
    patient = elig.load_patient(ROOT / "examples" / "patients" / "demo_patient.yaml")
    import attrs
    hostile = attrs.evolve(patient, name="<script>alert(1)</script>")
    html = render_html(elig.evaluate(nct06021067, hostile, "2024-03-15"))
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html
    assert "href=\"http" not in html and "@import" not in html
    assert "<link" not in html and "src=" not in html
    assert "ELIGIBLE" in html


# ---------------------------------------------------------------- values and units, as people read them
def test_format_value_drops_missing_and_dimensionless_units():
    from elig.report.markdown import format_value

    assert format_value(2, None) == "2"
    assert format_value(2, "") == "2"
    assert format_value(1.1, "1") == "1.1"  # UCUM's unit of a pure number (INR)
    assert format_value(60, "%") == "60%"
    assert format_value(1.2, "10^9/L") == "1.2 10^9/L"
    assert format_value("0.35", " mg/dL ") == "0.35 mg/dL"


def test_no_stray_units_or_double_spaces_in_value_lines(nct06021067):
    """INR (no unit; ULN unit "1"), ECOG (no unit) and LVEF (%) as the renderers format them."""
    from elig.report.markdown import uln_text, value_row
    from elig.report.text import describe_value

    r = _result(nct06021067)
    values = {v.concept: v for c in r.criteria for e in _walk(c.explanation) for v in e.values}
    assert describe_value(values["INR"]).startswith("INR 2 on ")
    assert describe_value(values["ECOG performance status"]).startswith("ECOG performance status 2 on ")
    assert describe_value(values["left ventricular ejection fraction"]).startswith(
        "left ventricular ejection fraction 40% on ")
    assert value_row(values["INR"])["unit"] == ""
    inr = next(e for c in r.criteria for e in _walk(c.explanation)
               if e.rule.startswith("INR ≤") and e.threshold is not None)
    assert uln_text(inr).startswith("ULN 1.1, from ")
    text = elig_text(r)
    assert "(ULN 1.1 from " in text
    for line in text.splitlines():
        if line.lstrip().startswith(("value:", "threshold:")):
            assert "  " not in line.strip(), line


def _walk(e):
    yield e
    for child in e.children:
        yield from _walk(child)


def elig_text(result):
    from elig.report.text import render_text

    return render_text(result)


# ---------------------------------------------------------------- data to collect: only when undetermined
def test_data_to_collect_only_when_undetermined(nct06021067):
    from elig.report.text import render_text

    ineligible = _result(nct06021067, "organ_failure.yaml")
    undetermined = _result(nct06021067, "organ_unknown.yaml")
    assert str(ineligible.verdict) == "ineligible" and ineligible.to_collect
    assert str(undetermined.verdict) == "undetermined" and undetermined.to_collect
    for render in (render_text, render_markdown, render_html):
        assert "Data to collect" not in render(ineligible), render.__name__
        assert "Data to collect to decide" in render(undetermined), render.__name__


def test_text_report_wraps_to_collect_lines(nct06021067):
    from elig.report.text import render_text

    for name in ("organ_failure.yaml", "organ_unknown.yaml"):
        for width in (60, 100):
            text = render_text(_result(nct06021067, name), width=width)
            for line in text.splitlines():
                if "to collect:" in line or line.startswith("  • "):
                    assert len(line) <= width, line


# ---------------------------------------------------------------- HTML: rules highlighted with the elig lexer
def test_html_highlights_rules_with_the_elig_lexer(nct06021067):
    import re

    from elig.report.html import HIGHLIGHT_CSS

    html = render_html(_result(nct06021067))
    # I2 "ECOG 0 to 3 within 30 days": keyword, number and unit tokens, styled by the embedded CSS
    assert re.search(r'<code class="hl">[^\n]*<span class="k">within</span>', html)
    assert '<span class="m">30</span>' in html and '<span class="kt">days</span>' in html
    assert ".hl .k {" in html and str(HIGHLIGHT_CSS) in html
    assert "<style>" in html and 'style="' not in html.split("<body>")[1]  # colours in the inline stylesheet


def test_html_highlighted_rule_is_escaped():
    protocol = elig.parse_protocol_text('protocol T\ninclusion\n  I1 "x"\n    attested "consent <b>x</b> & <script>"\n',
                                        file="t.elig")
    record = elig.patient_from_data({"id": "p", "birth_date": "1970-01-01", "sex": "male"}, "p.yaml")
    html = render_html(elig.evaluate(protocol, record, "2024-03-15"))
    assert "<script>" not in html and "<b>x</b>" not in html
    assert '<span class="s2">"consent &lt;b&gt;x&lt;/b&gt; &amp; &lt;script&gt;"</span>' in html
