"""``elig fmt``: rewrite protocol files in the canonical layout (the formatting itself is elig.language.formatter)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from elig.commands.files import protocol_files
from elig.diagnostics import DataError, ProtocolError, render_all
from elig.language.formatter import format_text

# ---------------------------------------------------------------- command
@click.command("fmt")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--check", "check_only", is_flag=True,
              help="Rewrite nothing; list the files that would change and exit 1 if there are any (for CI).")
def command(paths, check_only):
    """Rewrite protocols (files or folders of *.elig) in the canonical layout, keeping comments.

    Exit 0 when every file is (or now is) formatted; 1 with --check when a
    file would change, or when a file does not parse.
    """

    try:
        files = protocol_files(paths)
    except DataError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    changed: list[Path] = []
    failed = 0
    for f in files:
        text = f.read_text(encoding="utf-8")
        try:
            formatted = format_text(text, str(f))
        except ProtocolError as exc:
            click.echo(render_all(exc.diagnostics, exc.sources), err=True)
            failed += 1
            continue
        if formatted != text:
            changed.append(f)
            if check_only:
                click.echo(f"would reformat {f}")
            else:
                f.write_text(formatted, encoding="utf-8")
                click.echo(f"reformatted {f}")
    n = len(files)
    if check_only:
        if changed:
            click.echo(f"{len(changed)} of {n} file(s) would be reformatted; run 'elig fmt' on them", err=True)
        elif not failed:
            click.echo(f"{n} file(s) already formatted")
    elif not changed and not failed:
        click.echo(f"{n} file(s) already formatted")
    if failed:
        click.echo(f"{failed} file(s) could not be parsed", err=True)
    sys.exit(1 if failed or (check_only and changed) else 0)
