"""The syntax tree as JSON (``elig parse --format json``): node type, fields, and spans."""

from __future__ import annotations

from typing import Any

import attrs
import pint

from elig.language import tree as t


def tree_to_json(node: Any) -> Any:
    if isinstance(node, tuple):
        return [tree_to_json(n) for n in node]
    if isinstance(node, pint.Quantity):
        return {"magnitude": float(node.magnitude), "units": str(node.units)}
    if attrs.has(type(node)):
        out: dict[str, Any] = {"node": type(node).__name__}
        for field in attrs.fields(type(node)):
            value = getattr(node, field.name)
            if field.name == "span":
                if value is not None:
                    out["span"] = {"line": value.line, "column": value.column,
                                   "end_line": value.end_line, "end_column": value.end_column}
                continue
            if field.name == "source":
                continue
            out[field.name] = tree_to_json(value)
        return out
    return node
