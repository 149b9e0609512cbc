"""The protocol files a command is given: files as named, folders expanded to their *.elig files."""

from __future__ import annotations

from pathlib import Path

from elig.diagnostics import DataError


def protocol_files(paths) -> list[Path]:
    """Expand directories to their *.elig files, sorted."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            out.extend(sorted(p.rglob("*.elig")))
        elif p.exists():
            out.append(p)
        else:
            raise DataError("no such file or directory", file=str(p), hint="check the path")
    return out


def vocabulary_option(fn):
    """``--vocabulary FILE`` (repeatable), the same on every command that loads protocols."""
    import click

    return click.option(
        "--vocabulary", "vocabulary_files", multiple=True, type=click.Path(dir_okay=False), metavar="FILE",
        help="A vocabulary file declaring concepts elig does not ship (repeatable); protocols may also "
             "name their own in their header.")(fn)


def base_vocabulary(files):
    """The bundled vocabulary with the ``--vocabulary`` files (raises ``VocabularyError``)."""
    from elig.api import load_vocabulary

    return load_vocabulary(list(files) if files else None)


def add_sources(diagnostics, sources: dict[str, str]) -> dict[str, str]:
    """``sources`` with the text of every other file a diagnostic points into (vocabulary files)."""
    out = dict(sources)
    for d in diagnostics:
        if d.span is not None and d.span.file not in out:
            try:
                out[d.span.file] = Path(d.span.file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                out[d.span.file] = ""
    return out
