"""Text from records and protocols made safe to show: no control character reaches a reader.

A patient's name or id is data, and data can hold a newline (which would let a name
forge a ``VERDICT: ELIGIBLE`` line above the real one), a terminal escape sequence
(which retitles the window or clears the screen), a bare carriage return (which
splits a CSV row), or a bidirectional override (which reorders what is shown).
The text, Markdown and HTML reports, the ``screen`` CSV and the messages the
command line prints pass every string through :func:`visible`, which writes each
such character as a visible escape (``\\n``, ``\\x1b``, ``\\u2028``). The JSON report
keeps the data exactly: JSON escapes control characters itself.

Spreadsheet formulas: a CSV cell from the data that begins with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return is prefixed with ``'`` (OWASP, "CSV Injection"),
so a spreadsheet shows it as text instead of evaluating it.
"""

from __future__ import annotations

import attrs

from elig.diagnostics import visible

__all__ = ["visible", "csv_cell", "neutralised"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(text: str) -> str:
    """A cell from the data for a CSV a spreadsheet will open: escaped, and never a formula."""
    if text.startswith(_FORMULA_START):
        text = "'" + text
    return visible(text)


def neutralised(obj):
    """A copy of a result (or any attrs tree of strings, tuples and numbers) with every string
    passed through :func:`visible`. Objects without an unsafe character are returned as they are."""
    if isinstance(obj, str):
        return visible(obj)
    if isinstance(obj, tuple):
        items = tuple(neutralised(x) for x in obj)
        return obj if all(a is b for a, b in zip(items, obj)) else items
    if attrs.has(type(obj)):
        changes = {}
        for field in attrs.fields(type(obj)):
            if not field.init:
                continue
            value = getattr(obj, field.name)
            new = neutralised(value)
            if new is not value:
                changes[field.alias or field.name.lstrip("_")] = new
        return attrs.evolve(obj, **changes) if changes else obj
    return obj
