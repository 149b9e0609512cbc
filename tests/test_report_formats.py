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
