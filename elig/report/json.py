"""JSON rendering: the documented, versioned form of a result (deterministic bytes)."""

from __future__ import annotations

import json
import re

from elig.engine.results import EvaluationResult


# json.dumps escapes only C0 controls; C1 controls (\x9b is a one-byte CSI to a terminal), line
# separators and bidi overrides from the data are escaped too. The decoded data is unchanged.
# Lone surrogates (from JSON escapes such as "\ud800" in a record) are escaped as well: they
# cannot be written as UTF-8.
_UNSAFE_IN_JSON = re.compile("[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")


def json_safe(text: str) -> str:
    """JSON text (from ``json.dumps(..., ensure_ascii=False)``) with those characters escaped."""
    return _UNSAFE_IN_JSON.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def render_json(result: EvaluationResult) -> str:
    return json_safe(json.dumps(result.to_json_dict(), ensure_ascii=False, indent=2) + "\n")
