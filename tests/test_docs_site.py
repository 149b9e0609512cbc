"""The documentation site builds strictly, offline, with the elig language highlighted."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    if not mkdocs.exists() and shutil.which("mkdocs") is None:
        pytest.skip("mkdocs is not installed (pip install -e '.[docs]')")
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    run = subprocess.run([str(mkdocs if mkdocs.exists() else "mkdocs"), "build", "--strict", "--quiet",
                          "--site-dir", str(out)], cwd=ROOT, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr
    return out


def test_language_reference_is_highlighted_with_the_elig_lexer(site):
    html = (site / "language" / "index.html").read_text(encoding="utf-8")
    assert '<span class="k">within</span>' in html  # keywords
    assert '<span class="o">≥</span>' in html  # comparators


def test_generated_reference_pages_are_complete(site):
    from elig.terminology.derivations import CATALOGUE
    from elig.terminology.vocabulary import default_vocabulary

    vocab = (site / "vocabulary" / "index.html").read_text(encoding="utf-8")
    for concept in default_vocabulary().concepts:
        assert concept.name.replace("&", "&amp;") in vocab, concept.name
    derived = (site / "derived" / "index.html").read_text(encoding="utf-8")
    for d in CATALOGUE.by_key.values():
        assert d.key in derived


def test_site_needs_no_network(site):
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "fonts.googleapis.com" not in index and "fonts.gstatic.com" not in index


def test_report_gallery_is_rendered_from_the_bundled_examples(site):
    html = (site / "reports" / "index.html").read_text(encoding="utf-8")
    for verdict, patient in (("ELIGIBLE", "demo-001"), ("INELIGIBLE", "organ-failure-002"),
                             ("UNDETERMINED", "organ-unknown-003")):
        assert verdict in html and patient in html
    assert "(140 − 63) × 72 kg / (72 × 1.0995 mg/dL)" in html
