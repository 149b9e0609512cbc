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

import re
import reprlib
from typing import Iterable

import attrs

_SHOWN = reprlib.Repr()
_SHOWN.maxstring = 60
_SHOWN.maxother = 60
_SHOWN.maxlevel = 3
_SHOWN.maxlist = _SHOWN.maxtuple = _SHOWN.maxdict = _SHOWN.maxset = 4


# C0 controls (tab and newline included: inside one value they are never layout), DEL, C1
# controls (\x9b is a one-byte CSI), line and paragraph separators, the bidirectional
# embeddings, overrides and isolates, the BOM and zero-width no-break, and lone surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match) -> str:
    ch = m.group()
    named = _NAMED.get(ch)
    if named:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """The text with every control, separator and bidi character written as an escape."""
    if not isinstance(text, str):
        return text
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def visible_lines(text: str) -> str:
    """Each line of a multi-line message made visible (the line breaks between them kept)."""
    return "\n".join(visible(line) for line in text.split("\n"))


def shown(value: object) -> str:
    """A value from a record, quoted for a message: bounded in length and depth, so junk
    nested thousands deep (or a huge string) costs a few characters, never a crash."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    return _SHOWN.repr(value)


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
        super().__init__()

    def __str__(self) -> str:  # rendered when shown, not when raised (recovery raises thousands)
        return render_all(self.diagnostics, self.sources)


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
        super().__init__(visible_lines(text))


def render(diagnostic: Diagnostic, source: str | None = None, *, source_lines: list[str] | None = None) -> str:
    """Render one diagnostic with the source line and a caret under the span.

    ``source_lines`` (the source already split at "\n") spares splitting it again for each diagnostic.
    """
    d = diagnostic
    where = f"{d.span}: " if d.span else (f"{d.location}: " if d.location else "")
    lines = [visible(f"{where}{d.severity}[{d.code}]: {d.message}")]
    # Lines are counted at "\n" only, as the parser counts them: U+2028, U+0085, \v and
    # \f inside a line are characters of that line (shown escaped), never line breaks.
    if d.span is not None and (source is not None or source_lines is not None):
        src_lines = source_lines if source_lines is not None else source.split("\n")
        if 1 <= d.span.line <= len(src_lines):
            raw = src_lines[d.span.line - 1].removesuffix("\r")
            start = d.span.column - 1
            end = d.span.end_column - 1 if d.span.end_line == d.span.line else len(raw)
            before, under = visible(raw[:start]), visible(raw[start:end])
            gutter = " " * len(str(d.span.line))
            lines.append(f"{gutter} |")
            lines.append(f"{d.span.line} | {visible(raw)}")
            lines.append(f"{gutter} | {' ' * len(before)}{'^' * max(1, len(under))}")
    if d.hint:
        gutter = " " * (len(str(d.span.line)) if d.span else 1)
        lines.append(f"{gutter} = help: {visible(d.hint)}")
    return "\n".join(lines)


def render_all(diagnostics: Iterable[Diagnostic], sources: dict[str, str] | None = None) -> str:
    sources = sources or {}
    split: dict[str, list[str]] = {}

    def lines_of(d: Diagnostic) -> list[str] | None:
        if d.span is None or d.span.file not in sources:
            return None
        if d.span.file not in split:
            split[d.span.file] = sources[d.span.file].split("\n")
        return split[d.span.file]

    return "\n\n".join(render(d, source_lines=lines_of(d)) for d in diagnostics)


def one_line(exc: Exception) -> str:
    """An error as one row of a batch (screen CSV, batch tables): place, message and hint, with the
    data's control characters shown as escapes so a value cannot forge rows or lines."""
    if isinstance(exc, DataError):
        text = exc.message
        if exc.location:
            text = f"{exc.location}: {text}"
        if exc.hint:
            text += f" ({exc.hint})"
        return visible(" ".join(text.split(" ")))
    return visible(" ".join(str(exc).split(" ")))
