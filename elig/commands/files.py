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
