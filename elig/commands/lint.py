"""``elig lint``: checker errors and reviewer warnings for protocol files (the rules are elig.language.lint)."""

from __future__ import annotations

import json
import sys

import click

from elig.commands.files import add_sources, base_vocabulary, protocol_files, vocabulary_option
from elig.diagnostics import DataError, Diagnostic, ProtocolError, render_all
from elig.engine.diagnose import diagnose_text
from elig.terminology.vocabulary import Vocabulary


def lint_text(text: str, file: str = "<protocol>", vocabulary: Vocabulary | None = None) -> list[Diagnostic]:
    """Parse errors, vocabulary-file errors, or checker errors and lint warnings, for one protocol text.

    The composition lives in :func:`elig.engine.diagnose.diagnose_text`, which the language
    server and the workbench call too.
    """
    return list(diagnose_text(text, file, vocabulary).diagnostics)


@click.command("lint")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--ignore", "ignore", metavar="CODES", default="",
              help="Comma-separated warning codes to leave out, e.g. W206,W208.")
@vocabulary_option
def command(paths, fmt, ignore, vocabulary_files):
    """Ask a reviewer's questions of protocols (files or folders of *.elig).

    Reports checker errors and lint warnings (W201-W209, see docs/diagnostics.md).
    Exit 0 when there is nothing to report, 1 when there is any warning or error.
    """

    try:
        files = protocol_files(paths)
        vocabulary = base_vocabulary(vocabulary_files)
    except DataError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except ProtocolError as exc:
        click.echo(render_all(exc.diagnostics, exc.sources), err=True)
        sys.exit(1)
    skip = {c.strip().upper() for c in ignore.split(",") if c.strip()}
    problems: list[Diagnostic] = []
    sources: dict[str, str] = {}
    for f in files:
        text = f.read_text(encoding="utf-8")
        sources[str(f)] = text
        problems.extend(d for d in lint_text(text, str(f), vocabulary) if d.code not in skip)
    sources = add_sources(problems, sources)
    if fmt == "json":
        click.echo(json.dumps({"files": [str(f) for f in files], "diagnostics": [d.as_dict() for d in problems]},
                              ensure_ascii=False, indent=2))
    elif problems:
        click.echo(render_all(problems, sources), err=True)
        n_err = sum(d.severity == "error" for d in problems)
        n_warn = len(problems) - n_err
        click.echo(f"\n{n_warn} warning{'s' if n_warn != 1 else ''}, {n_err} error{'s' if n_err != 1 else ''} "
                   f"in {len(files)} file(s)", err=True)
    else:
        click.echo(f"{len(files)} protocol file{'s' if len(files) != 1 else ''} linted: no warnings")
    sys.exit(1 if problems else 0)
