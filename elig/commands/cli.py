"""The ``elig`` command line.

Exit codes: 0 success; 1 the input has problems (diagnostics, failing protocol
tests, unreadable records); 2 usage errors. No traceback reaches the user:
elig's own errors are printed as diagnostics, anything else as a one-line
internal error (``ELIG_DEBUG=1`` shows the traceback, for developers).
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

import click

from elig import __version__
from elig.commands.files import add_sources, base_vocabulary, protocol_files, vocabulary_option
from elig.diagnostics import DataError, EligError, ProtocolError, render_all


def _handle_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except OSError as exc:  # cannot read or write a file the user named
            where = getattr(exc, "filename", None)
            click.echo(f"error: {where + ': ' if where else ''}{exc.strerror or exc}", err=True)
            click.echo(f"  = help: {_os_error_hint(exc)}", err=True)
            sys.exit(1)
        except ProtocolError as exc:
            click.echo(render_all(exc.diagnostics, exc.sources), err=True)
            n = len(exc.diagnostics)
            click.echo(f"\n{n} problem{'s' if n != 1 else ''} found", err=True)
            sys.exit(1)
        except DataError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except EligError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        except Exception as exc:  # pragma: no cover - a bug; keep the user's terminal clean
            if os.environ.get("ELIG_DEBUG"):
                raise
            click.echo(f"internal error: {type(exc).__name__}: {exc}\n"
                       f"  = help: this is a bug in elig; rerun with ELIG_DEBUG=1 for the traceback and report it",
                       err=True)
            sys.exit(70)
    return wrapper


def _os_error_hint(exc: OSError) -> str:
    """A hint that fits what went wrong: a missing input is not a folder that is not writable."""
    if isinstance(exc, FileNotFoundError):
        # A missing file in a folder that exists is a wrong name; a missing folder is
        # usually an output path whose folder was never made: say which one it is.
        folder = Path(getattr(exc, "filename", None) or ".").parent
        if not folder.is_dir():
            return f"the folder {folder} does not exist: check the path, or create the folder first"
        return "check the path"
    if isinstance(exc, IsADirectoryError):
        return "give a file, not a folder"
    if isinstance(exc, PermissionError):
        return "check that you may read the file (or write to its folder)"
    return "check the path and that its folder exists and is writable"


def _style(text: str, kind) -> str:
    colour = {"met": "green", "not met": "red", "unknown": "yellow", "eligible": "green",
              "ineligible": "red", "undetermined": "yellow"}.get(str(kind))
    return click.style(text, fg=colour, bold=str(kind) in ("eligible", "ineligible", "undetermined"))


class _Group(click.Group):
    """Every subcommand, including those defined in other modules, reports errors without a traceback."""

    def invoke(self, ctx):
        return _handle_errors(super().invoke)(ctx)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="elig")
def main():
    """elig: clinical-trial eligibility rules as code.

    Write a trial's criteria in the elig language, check them, and explain
    every verdict for a patient (native JSON/YAML or FHIR R4).
    """


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@vocabulary_option
@_handle_errors
def check(paths, fmt, vocabulary_files):
    """Parse and check protocols (files or folders of *.elig); report every problem."""
    from elig.engine import checker
    from elig.language import parser

    vocabulary = base_vocabulary(vocabulary_files)
    files = protocol_files(paths)
    problems = []
    sources = {}
    for f in files:
        text = f.read_text(encoding="utf-8")
        sources[str(f)] = text
        try:
            tree = parser.parse_protocol(text, file=str(f))
        except ProtocolError as exc:
            problems.extend(exc.diagnostics)
            continue
        problems.extend(checker.diagnose(tree, vocabulary))
    sources = add_sources(problems, sources)
    if fmt == "json":
        click.echo(json.dumps({"files": [str(f) for f in files], "diagnostics": [d.as_dict() for d in problems]},
                              ensure_ascii=False, indent=2))
    else:
        if problems:
            click.echo(render_all(problems, sources), err=True)
            click.echo(f"\n{len(problems)} problem{'s' if len(problems) != 1 else ''} in {len(files)} file(s)", err=True)
        else:
            click.echo(f"{len(files)} protocol file{'s' if len(files) != 1 else ''} checked: no problems")
    sys.exit(1 if any(d.severity == "error" for d in problems) else 0)


@main.command()
@click.argument("protocol", type=click.Path())
@click.argument("patient", type=click.Path())
@click.option("--as-of", "as_of", metavar="YYYY-MM-DD", help="Evaluation date (default: today).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "markdown", "html"]), default="text",
              show_default=True)
@click.option("-o", "--output", type=click.Path(), help="Write the report to a file instead of standard output.")
@click.option("--attestations", "attestations", type=click.Path(), metavar="FILE",
              help="Attestation answers (YAML/JSON form or a FHIR QuestionnaireResponse) merged with the record.")
@click.option("--site-codes", "site_codes", type=click.Path(), metavar="FILE",
              help="Mapping from a site's own code system to attestations, applied to the record's observations.")
@click.option("--from-batch", "from_batch", type=click.Path(file_okay=False), metavar="TABLES",
              help="PATIENT is a patient id (or #N, the N-th patient) of the batch whose tables are in this folder "
                   "(elig screen --tables, elig tables); its record is read again and explained.")
@vocabulary_option
@click.option("--what-would-change", "changes", is_flag=True,
              help="Print only what would change the verdict: data to collect and each value's distance "
                   "to its threshold.")
@_handle_errors
def explain(protocol, patient, as_of, fmt, output, attestations, site_codes, from_batch, vocabulary_files,
            changes):
    """Evaluate PATIENT against PROTOCOL and explain every criterion."""
    from elig import api
    from elig.engine.evaluator import as_date
    from elig.records.loader import load_patient

    try:
        as_of_date = as_date(as_of)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--as-of") from None
    checked = api.load_protocol(protocol, vocabulary=base_vocabulary(vocabulary_files))
    if from_batch:
        from elig.batch import api as batch_api

        result = batch_api.explain(checked, from_batch, patient, as_of_date, attestations, site_codes)
    else:
        record = api.with_attestations(load_patient(patient), attestations, site_codes, checked)
        result = api.evaluate(checked, record, as_of_date)
    if changes:
        from elig.report.changes import render_changes_text, what_would_change

        levers = what_would_change(result)
        if fmt == "json":
            text = json.dumps({"verdict": str(result.verdict), "changes": [lever.as_dict() for lever in levers]},
                              ensure_ascii=False, indent=2) + "\n"
        else:
            text = f"{str(result.verdict).upper()}\n" + render_changes_text(levers)
    else:
        text = render(result, fmt, colour=output is None and sys.stdout.isatty())
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


def render(result, fmt: str, colour: bool = False) -> str:
    from elig import report

    if fmt == "json":
        return report.render_json(result)
    if fmt == "markdown":
        from elig.report.markdown import render_markdown

        return render_markdown(result)
    if fmt == "html":
        from elig.report.html import render_html

        return render_html(result)
    return report.render_text(result, style=_style if colour else None)


@main.command()
@click.argument("text")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--no-check", is_flag=True, help="Only parse: do not check names, units and methods.")
@vocabulary_option
@_handle_errors
def parse(text, fmt, no_check, vocabulary_files):
    """Parse one criterion's rule and print it in canonical form (or as JSON).

    The rule is also checked against the vocabulary (unknown concepts, units,
    methods): problems are printed after it and the exit status is 1.
    """
    from elig.language import canonical, parser
    from elig.engine import checker
    from elig.language.treejson import tree_to_json

    vocabulary = base_vocabulary(vocabulary_files) if not no_check else None
    node = parser.parse_rule(text, file="<argument>")
    if fmt == "json":
        click.echo(json.dumps(tree_to_json(node), ensure_ascii=False, indent=2))
    else:
        click.echo(canonical.rule(node))
    if not no_check:
        problems = checker.diagnose_rule(node, vocabulary, file="<argument>")
        if problems:  # warnings (W210, W211) name the reading taken; only errors fail
            click.echo(render_all(problems, {"<argument>": text}), err=True)
            if any(d.severity == "error" for d in problems):
                sys.exit(1)


@main.command()
@click.argument("protocol", type=click.Path())
@click.option("-o", "--output", type=click.Path(), help="Write the Questionnaire to a file instead of standard output.")
@vocabulary_option
@_handle_errors
def questionnaire(protocol, output, vocabulary_files):
    """Write the FHIR R4 Questionnaire of PROTOCOL's attestations (one yes/no item each).

    Each item's linkId is the attestation's key and its text the sponsor's sentence. A
    QuestionnaireResponse answering it can be given to explain and screen with
    --attestations, or included in a FHIR bundle.
    """
    from elig import api
    from elig.report.questionnaire import questionnaire_json

    checked = api.load_protocol(protocol, vocabulary=base_vocabulary(vocabulary_files))
    text = questionnaire_json(checked)
    if '"item"' not in text:
        click.echo(f"note: {checked.id} asks no attestation, so the Questionnaire has no items", err=True)
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}")
    else:
        click.echo(text, nl=False)


# Commands that live with their stage of the pipeline.
from elig.commands.casefile import command as _test_command  # noqa: E402
from elig.commands.fmt import command as _fmt_command  # noqa: E402
from elig.commands.screen import command as _screen_command, tables_command as _tables_command  # noqa: E402
from elig.commands.screen import views_command as _views_command  # noqa: E402
from elig.commands.lint import command as _lint_command  # noqa: E402
from elig.commands.draft import command as _draft_command  # noqa: E402
from elig.commands.author import lsp_command as _lsp_command, serve_command as _serve_command  # noqa: E402

main.add_command(_lint_command, "lint")
main.add_command(_draft_command, "draft")
main.add_command(_fmt_command, "fmt")
main.add_command(_test_command, "test")
main.add_command(_screen_command, "screen")
main.add_command(_tables_command, "tables")
main.add_command(_views_command, "views")
main.add_command(_lsp_command, "lsp")
main.add_command(_serve_command, "serve")

if __name__ == "__main__":  # pragma: no cover
    main()
