"""Positions in source text, and the diagnostics that point at them.

A diagnostic is data (code, severity, span, message, hint); it is rendered
late, in the style compilers use, with the offending line and a caret:

    protocols/x.elig:14:5: error[E101]: unknown concept 'Creatinin clearance'
       |
    14 |     Creatinin clearance ≥ 60 mL/min (Cockcroft-Gault)
       |     ^^^^^^^^^^^^^^^^^^^
       = help: did you mean 'Creatinine clearance'?
"""

from __future__ import annotations

from typing import Iterable

import attrs


@attrs.frozen
class Span:
    """Where a node came from: 1-based line and column, end exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@attrs.frozen
class Diagnostic:
    """One problem in a protocol or a patient record.

    ``code`` is stable (documented in docs/diagnostics.md); ``message`` says
    what was found and what was expected; ``hint`` suggests a fix.
    """

    code: str
    message: str
    span: Span | None = None
    hint: str | None = None
    severity: str = "error"  # "error" | "warning"
    # For data errors: which record and field, e.g. "observations[2].unit".
    location: str | None = None

    def as_dict(self) -> dict:
        out: dict = {"code": self.code, "severity": self.severity, "message": self.message}
        if self.span is not None:
            out.update(file=self.span.file, line=self.span.line, column=self.span.column,
                       end_line=self.span.end_line, end_column=self.span.end_column)
        if self.location is not None:
            out["location"] = self.location
        if self.hint is not None:
            out["hint"] = self.hint
        return out


class EligError(Exception):
    """Base of every error elig raises on purpose; the CLI never shows a traceback for it."""


class ProtocolError(EligError):
    """A protocol failed to parse or check; carries every diagnostic found."""

    def __init__(self, diagnostics: Iterable[Diagnostic], sources: dict[str, str] | None = None):
        self.diagnostics = tuple(diagnostics)
        self.sources = dict(sources or {})
        super().__init__(render_all(self.diagnostics, self.sources))


class DataError(EligError):
    """A patient record (or other input file) could not be read at all."""

    def __init__(self, message: str, *, file: str | None = None, location: str | None = None,
                 hint: str | None = None):
        self.file = file
        self.location = location
        self.hint = hint
        self.message = message
        where = ": ".join(p for p in (file, location) if p)
        text = f"{where}: {message}" if where else message
        if hint:
            text += f"\n  = help: {hint}"
        super().__init__(text)


def render(diagnostic: Diagnostic, source: str | None = None) -> str:
    """Render one diagnostic with the source line and a caret under the span."""
    d = diagnostic
    where = f"{d.span}: " if d.span else (f"{d.location}: " if d.location else "")
    lines = [f"{where}{d.severity}[{d.code}]: {d.message}"]
    if d.span is not None and source is not None:
        src_lines = source.splitlines()
        if 1 <= d.span.line <= len(src_lines):
            text = src_lines[d.span.line - 1]
            gutter = " " * len(str(d.span.line))
            if d.span.end_line == d.span.line:
                width = max(1, d.span.end_column - d.span.column)
            else:
                width = max(1, len(text) - d.span.column + 1)
            lines.append(f"{gutter} |")
            lines.append(f"{d.span.line} | {text}")
            lines.append(f"{gutter} | {' ' * (d.span.column - 1)}{'^' * width}")
    if d.hint:
        gutter = " " * (len(str(d.span.line)) if d.span else 1)
        lines.append(f"{gutter} = help: {d.hint}")
    return "\n".join(lines)


def render_all(diagnostics: Iterable[Diagnostic], sources: dict[str, str] | None = None) -> str:
    sources = sources or {}
    return "\n\n".join(
        render(d, sources.get(d.span.file) if d.span else None) for d in diagnostics
    )
