"""JSON rendering: the documented, versioned form of a result (deterministic bytes)."""

from __future__ import annotations

import json

from elig.engine.results import EvaluationResult


def render_json(result: EvaluationResult) -> str:
    return json.dumps(result.to_json_dict(), ensure_ascii=False, indent=2) + "\n"
