"""Renderers of evaluation results. They only read ``elig.engine.results`` objects."""

from elig.report.json import render_json
from elig.report.text import render_text

__all__ = ["render_json", "render_text"]
