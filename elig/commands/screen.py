"""Batch screening: many patients against one protocol, one row per patient.

Inputs are files, folders (searched recursively for ``*.json``, ``*.yaml``,
``*.yml``, ``*.ndjson``, ``*.jsonl``) and newline-delimited JSON (one native
record or FHIR Bundle per line). FHIR is detected per record by
``elig.records.loader.patient_from_data``.

Rows stream out in input order as they are decided: nothing accumulates, so
memory stays constant in the number of patients (the HTML summary keeps only
per-criterion counts; its patient table is spooled to a temporary file). A
record that cannot be read (missing file, malformed JSON line, not a patient
record) becomes an error row naming its file, line and reason, and the batch
goes on; ``Summary.failed`` tells the caller whether any record failed.

With ``jobs > 1`` a process pool evaluates records; each worker rebuilds the
``CheckedProtocol`` once, in its initializer, from the protocol's path (or its
text, for a protocol built in memory) -- the object itself is never pickled.

Command line (registered as ``elig screen``)::

    elig screen PROTOCOL PATIENTS... [--as-of DATE] [--jobs N] [--csv FILE]
                [--jsonl FILE] [--html-dir DIR] [--quiet]
"""

from __future__ import annotations

import csv
import html as _html
import json
import multiprocessing
import re
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterable, Iterator

import attrs
import click

from elig.diagnostics import DataError, EligError, one_line, visible
from elig.engine.collector import batch_gc, set_for_worker
from elig.engine.plan import CheckedProtocol
from elig.commands.files import add_sources, base_vocabulary, vocabulary_option
from elig.report.json import json_safe
from elig.report.safe import csv_cell

PATIENT_SUFFIXES = (".json", ".yaml", ".yml", ".ndjson", ".jsonl")
NDJSON_SUFFIXES = (".ndjson", ".jsonl")
VERDICTS = ("eligible", "ineligible", "undetermined")


# ---------------------------------------------------------------- rows
@attrs.frozen
class Row:
    """One patient's screening outcome, or one record that could not be read (``error`` set)."""

    index: int  # position in the input order, from 0
    source: str  # the file
    line: int | None = None  # the line, for newline-delimited JSON
    patient_id: str | None = None
    verdict: str | None = None  # eligible | ineligible | undetermined; None when the record failed
    outcomes: tuple[tuple[str, str], ...] = ()  # (criterion id, met | not met | unknown), protocol order
    excluded_by: tuple[str, ...] = ()
    data_issues: int = 0
    report: str | None = None  # file name of the per-patient HTML report, relative to the HTML folder
    error: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}" if self.line is not None else self.source

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "patient_id": self.patient_id, "source": self.source, "line": self.line,
            "verdict": self.verdict, "criteria": dict(self.outcomes), "excluded_by": list(self.excluded_by),
            "data_issues": self.data_issues, "report": self.report, "error": self.error,
        }


@attrs.frozen
class _Task:
    index: int
    file: str
    line: int | None = None
    text: str | None = None  # the line's text, for NDJSON; None: read the file in the worker
    error: str | None = None  # a problem found while listing the inputs


# ---------------------------------------------------------------- listing the inputs
def iter_tasks(inputs: Iterable[str | Path]) -> Iterator[_Task]:
    """Each record of the inputs, lazily: files in the order given, folders sorted, NDJSON line by line."""
    index = 0
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in PATIENT_SUFFIXES)
            if not files:
                yield _Task(index, str(path), error="no patient files (*.json, *.yaml, *.yml, *.ndjson, *.jsonl) "
                                                    "in this folder")
                index += 1
        elif path.exists():
            files = [path]
        else:
            yield _Task(index, str(path), error="no such file or directory")
            index += 1
            continue
        for f in files:
            if f.suffix.lower() in NDJSON_SUFFIXES:
                for task in _ndjson_tasks(f, index):
                    yield task
                    index += 1
            else:
                yield _Task(index, str(f))
                index += 1


def _ndjson_tasks(path: Path, start: int) -> Iterator[_Task]:
    """One task per line. Each line is decoded on its own: a line that is not UTF-8, or longer
    than the record limit, is an error row with its line number, and the lines after it are
    still read."""
    from elig.records.loader import MAX_RECORD_BYTES

    index = start
    try:
        with path.open("rb") as fh:
            number = 0
            while True:
                raw = fh.readline(MAX_RECORD_BYTES + 1)
                if not raw:
                    break
                number += 1
                if len(raw) > MAX_RECORD_BYTES and not raw.endswith(b"\n"):
                    while raw and not raw.endswith(b"\n"):  # skip the rest of the line, in bounded pieces
                        raw = fh.readline(MAX_RECORD_BYTES)
                    yield _Task(index, str(path), number,
                                error=f"the line is longer than {MAX_RECORD_BYTES // (1024 * 1024)} MiB, the "
                                      f"limit for one record")
                    index += 1
                    continue
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    yield _Task(index, str(path), number,
                                error=f"not UTF-8: byte {raw[exc.start]:#04x} at column {exc.start + 1} cannot "
                                      f"be read (save the file as UTF-8)")
                    index += 1
                    continue
                if not text.strip():
                    continue
                yield _Task(index, str(path), number, text)
                index += 1
    except OSError as exc:
        yield _Task(index, str(path), error=f"cannot read the file: {exc.strerror or exc}")


# ---------------------------------------------------------------- evaluating one record
class _Screener:
    """Evaluates tasks into rows; one per process (built by the pool initializer in workers)."""

    def __init__(self, protocol: CheckedProtocol, as_of, explain: bool, html_dir: str | None,
                 attestations: str | None = None, site_codes: str | None = None):
        from elig.engine.evaluator import as_date
        from elig.records.attestations import load_answers, load_site_mapping

        from elig.api import check_answers

        self.answers = check_answers(protocol, load_answers(attestations)) if attestations else None
        self.mapping = load_site_mapping(site_codes) if site_codes else None
        self.protocol = protocol
        self.as_of = as_date(as_of) if as_of is not None else None
        self.explain = explain
        self.html_dir = Path(html_dir) if html_dir else None
        # Without reports, only verdicts and outcomes are written: the compiled evaluator gives
        # the same outcomes and never builds an explanation (docs/performance.md).
        self.compiled = None
        if not explain:
            from elig.engine.compiled import compile_protocol

            self.compiled = compile_protocol(protocol)

    def __call__(self, task: _Task) -> Row:
        if task.error is not None:
            return Row(task.index, task.file, task.line, error=task.error)
        try:
            record = self._read(task)
            from elig.api import with_attestations
            from elig.engine.evaluator import evaluate

            record = with_attestations(record, self.answers, self.mapping)
            if self.compiled is not None:
                screened = self.compiled.outcomes(record, self.as_of)
                return Row(task.index, task.file, task.line, patient_id=screened.patient_id,
                           verdict=str(screened.verdict), outcomes=tuple((c, str(o)) for c, o in screened.outcomes),
                           excluded_by=screened.excluded_by, data_issues=screened.data_issues)
            result = evaluate(self.protocol, record, self.as_of)
        except EligError as exc:
            return Row(task.index, task.file, task.line, error=one_line(exc))
        except Exception as exc:  # a bug must not stop the batch; the row says what happened
            return Row(task.index, task.file, task.line,
                       error=visible(f"internal error: {type(exc).__name__}: {exc} (a bug in elig; please report it)"))
        report = None
        if self.explain:
            from elig.report.html import render_html

            page = render_html(result)
            if self.html_dir is not None:
                report = report_name(task.index, result.patient_id)
                (self.html_dir / report).write_text(page, encoding="utf-8")
        return Row(
            task.index, task.file, task.line, patient_id=result.patient_id, verdict=str(result.verdict),
            outcomes=tuple((c.id, str(c.outcome)) for c in result.criteria),
            excluded_by=tuple(c.id for c in result.criteria if c.excludes),
            data_issues=len(result.data_issues), report=report,
        )

    def _read(self, task: _Task, fhir_reader=None):
        """The task's record; ``fhir_reader`` reads FHIR in place of the FHIR reader (the SQL route's views)."""
        from elig.records.loader import load_patient, patient_from_data

        if task.text is None:
            return load_patient(task.file, fhir_reader)
        try:
            data = json.loads(task.text)
        except json.JSONDecodeError as exc:
            raise DataError(f"not valid JSON: {exc.msg} (column {exc.colno})", file=task.file,
                            location=f"line {task.line}",
                            hint="each line must hold one complete JSON record") from None
        except RecursionError:
            raise DataError("the record is nested too deeply to read (about 1,000 levels is the limit)",
                            file=task.file, location=f"line {task.line}") from None
        except ValueError as exc:  # an integer beyond Python's 4,300-digit limit
            raise DataError(f"not a readable number in the JSON: {exc}", file=task.file,
                            location=f"line {task.line}") from None
        try:
            return patient_from_data(data, f"{task.file}:{task.line}", fhir_reader)
        except DataError as exc:
            raise DataError(exc.message, file=task.file, location=f"line {task.line}", hint=exc.hint) from None


def report_name(index: int, patient_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", patient_id).strip("._")[:60] or "patient"
    return f"{index + 1:06d}-{safe}.html"


_WORKER: _Screener | None = None  # set once per worker process by the pool initializer


def _init_worker(protocol_path: str | None, protocol_text: str | None, protocol_file: str, as_of, explain: bool,
                 html_dir: str | None, vocabulary_files: tuple[str, ...] = (), attestations: str | None = None,
                 site_codes: str | None = None) -> None:
    global _WORKER
    from elig import api

    vocabulary = list(vocabulary_files) or None  # the author-declared files the parent read
    if protocol_path is not None:
        checked = api.load_protocol(protocol_path, vocabulary=vocabulary)
    else:
        checked = api.parse_protocol_text(protocol_text or "", file=protocol_file, vocabulary=vocabulary)
    _WORKER = _Screener(checked, as_of, explain, html_dir, attestations, site_codes)
    set_for_worker()  # a worker only evaluates: the collector is set for a batch for its whole life


def _work(task: _Task) -> Row:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER(task)


def _protocol_origin(protocol: CheckedProtocol) -> tuple[str | None, str | None, str]:
    """How a worker rebuilds the protocol: from its path when the file still holds the same text."""
    file, text = protocol.tree.file, protocol.tree.source
    try:
        if file and Path(file).is_file() and Path(file).read_text(encoding="utf-8") == text:
            return file, None, file
    except (OSError, UnicodeDecodeError):
        pass
    return None, text, file


# ---------------------------------------------------------------- the batch
def screen(protocol: CheckedProtocol | str | Path, inputs: Iterable[str | Path], as_of=None, jobs: int = 1,
           explain: bool = False, html_dir: str | Path | None = None, chunksize: int = 16,
           attestations: str | Path | None = None, site_codes: str | Path | None = None) -> Iterator[Row]:
    """Screen every record of ``inputs``; yield one ``Row`` per record, in input order.

    ``protocol`` is a ``CheckedProtocol`` or a path to a protocol file. With
    ``explain`` each patient's HTML report is rendered (and written into
    ``html_dir`` when given, the file name kept in ``Row.report``). Records that
    cannot be read give rows with ``error`` set; the batch goes on. ``attestations`` (a form
    for every patient, or ``patients:`` forms by patient id) and ``site_codes`` (a site's
    code system mapped to attestations) are merged with each record.
    """
    from elig import api

    if not isinstance(protocol, CheckedProtocol):
        protocol = api.load_protocol(protocol)
    if html_dir is not None:
        Path(html_dir).mkdir(parents=True, exist_ok=True)
        explain = True
    html_dir = str(html_dir) if html_dir is not None else None
    attestations = str(attestations) if attestations is not None else None
    site_codes = str(site_codes) if site_codes is not None else None
    tasks = iter_tasks(inputs)
    if jobs <= 1:
        screener = _Screener(protocol, as_of, explain, html_dir, attestations, site_codes)
        # The cycle collector set for a batch (elig.engine.collector): what was loaded is frozen,
        # young collections are rarer; the settings are put back when the batch ends or is closed.
        with batch_gc():
            for task in tasks:
                yield screener(task)
        return
    path, text, file = _protocol_origin(protocol)
    # The pool's feeder thread would read the whole input ahead; a semaphore bounds
    # the records in flight, so memory stays constant however many patients there are.
    window = threading.BoundedSemaphore(max(jobs * chunksize * 4, 64))

    def bounded(it: Iterator[_Task]) -> Iterator[_Task]:
        for task in it:
            window.acquire()
            yield task

    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(path, text, file, as_of, explain, html_dir,
                                                                   protocol.vocabulary.files, attestations,
                                                                   site_codes)) as pool:
        for row in pool.imap(_work, bounded(tasks), chunksize=chunksize):
            window.release()
            yield row


# ---------------------------------------------------------------- writers
class CsvWriter:
    """One line per row: index, patient, source, line, verdict, excluded_by, data issues, report, error, criteria."""

    def __init__(self, fh, criteria: list[str]):
        self.criteria = criteria
        self.writer = csv.writer(fh, lineterminator="\n")
        self.writer.writerow(["index", "patient_id", "source", "line", "verdict", "excluded_by", "data_issues",
                              "report", "error", *criteria])

    def write(self, row: Row) -> None:
        outcomes = dict(row.outcomes)
        # Text from the data (ids, file names, error messages) is escaped and never a formula.
        self.writer.writerow([row.index, csv_cell(row.patient_id or ""), csv_cell(row.source),
                              "" if row.line is None else row.line, row.verdict or "error",
                              " ".join(row.excluded_by), row.data_issues, csv_cell(row.report or ""),
                              csv_cell(row.error or ""), *(outcomes.get(c, "") for c in self.criteria)])


class JsonlWriter:
    def __init__(self, fh):
        self.fh = fh

    def write(self, row: Row) -> None:
        self.fh.write(json_safe(json.dumps(row.as_dict(), ensure_ascii=False)) + "\n")


class Summary:
    """Counts per verdict and per criterion; the HTML summary. Constant memory in the number of patients."""

    def __init__(self, protocol: CheckedProtocol, as_of: str | None = None):
        self.protocol = protocol
        self.as_of = as_of
        self.criteria = [(c.id, c.section, c.sentence or "", c.rule_text) for c in protocol.criteria]
        self.total = 0
        self.failed = 0
        self.verdicts = {v: 0 for v in VERDICTS}
        self.excludes = {c[0]: 0 for c in self.criteria}
        self.unknown = {c[0]: 0 for c in self.criteria}
        self.first = {c[0]: 0 for c in self.criteria}  # excluded first by this criterion, in protocol order
        self._table = None  # spooled HTML rows of the patient table

    def add(self, row: Row, html_rows: bool = False) -> None:
        self.total += 1
        if row.failed:
            self.failed += 1
        else:
            self.verdicts[row.verdict] = self.verdicts.get(row.verdict, 0) + 1
            for cid in row.excluded_by:
                self.excludes[cid] = self.excludes.get(cid, 0) + 1
            if row.excluded_by:
                first = min(row.excluded_by, key=[c[0] for c in self.criteria].index)
                self.first[first] += 1
            for cid, outcome in row.outcomes:
                if outcome == "unknown":
                    self.unknown[cid] = self.unknown.get(cid, 0) + 1
        if html_rows:
            if self._table is None:
                self._table = tempfile.SpooledTemporaryFile(max_size=1 << 20, mode="w+", encoding="utf-8")
            self._table.write(_summary_row(row))

    @property
    def evaluated(self) -> int:
        return self.total - self.failed

    def attrition(self) -> list[dict[str, Any]]:
        """Criteria ordered by how many patients they exclude (most first; protocol order on ties)."""
        out = []
        for pos, (cid, section, sentence, rule) in enumerate(self.criteria):
            out.append({"id": cid, "section": section, "sentence": sentence, "rule": rule,
                        "excludes": self.excludes[cid], "unknown": self.unknown[cid], "pos": pos})
        out.sort(key=lambda r: (-r["excludes"], r["pos"]))
        return out

    def sequential(self) -> list[dict[str, Any]]:
        """Classic attrition: criteria applied in protocol order, patients remaining after each."""
        remaining = self.evaluated
        out = []
        for cid, section, sentence, rule in self.criteria:
            remaining -= self.first[cid]
            out.append({"id": cid, "section": section, "removed": self.first[cid], "remaining": remaining})
        return out

    def render_html(self, title: str = "Screening summary") -> str:
        from elig.report.html import environment

        if self._table is not None:
            self._table.seek(0)
            table = self._table.read()
        else:
            table = ""
        return environment().get_template("summary.html.j2").render(
            s=self, protocol=self.protocol, title=title, attrition=self.attrition(),
            sequential=self.sequential(), table=_Markup(table), pct=_pct,
        )

    def close(self) -> None:
        if self._table is not None:
            self._table.close()
            self._table = None


def _Markup(text: str):
    from markupsafe import Markup

    return Markup(text)  # rows were escaped one by one by _summary_row


def _pct(n: int, d: int) -> str:
    return f"{100 * n / d:.1f}%" if d else "—"


_MARK = {"met": "✔", "not met": "✘", "unknown": "?"}
_VMARK = {"eligible": "✔", "ineligible": "✘", "undetermined": "?"}


def _summary_row(row: Row) -> str:
    e = _html.escape
    if row.failed:
        return (f'<tr class="error"><td>{row.index + 1}</td><td>—</td><td>{e(row.where)}</td>'
                f'<td class="excl">✘ error</td><td colspan="2">{e(row.error or "")}</td></tr>\n')
    pid = e(row.patient_id or "")
    if row.report:
        pid = f'<a href="{e(row.report)}">{pid}</a>'
    cls = {"eligible": "fav", "ineligible": "excl"}.get(row.verdict or "", "unk")
    return (f'<tr><td>{row.index + 1}</td><td>{pid}</td><td>{e(row.where)}</td>'
            f'<td class="{cls}">{_VMARK.get(row.verdict or "", "")} {e(row.verdict or "")}</td>'
            f'<td>{e(" ".join(row.excluded_by))}</td><td>{row.data_issues or ""}</td></tr>\n')


# ---------------------------------------------------------------- command
@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("protocol", type=click.Path())
@click.argument("patients", nargs=-1, required=True, type=click.Path())
@click.option("--as-of", "as_of", metavar="YYYY-MM-DD", help="Evaluation date (default: today).")
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=1, show_default=True,
              help="Worker processes (use the number of cores).")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write one row per patient as CSV.")
@click.option("--jsonl", "jsonl_path", type=click.Path(dir_okay=False), help="Write one row per patient as JSON Lines.")
@click.option("--html-dir", type=click.Path(file_okay=False),
              help="Write an HTML summary (index.html) and one HTML report per patient into this folder.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar and no per-record table on standard output.")
@click.option("--attestations", "attestations", type=click.Path(), metavar="FILE",
              help="Attestation answers merged with every record: one form, or 'patients:' forms by patient id.")
@click.option("--site-codes", "site_codes", type=click.Path(), metavar="FILE",
              help="Mapping from a site's own code system to attestations, applied to each record's observations.")
@click.option("--engine", type=click.Choice(["duckdb", "spark", "python"]), default=None,
              help="How to evaluate: duckdb (one SQL query, the default), spark (the same query on Apache Spark) "
                   "or python (the interpreter, one patient at a time; the default with --html-dir, whose "
                   "reports are its explanations).")
@click.option("--tables", "tables_dir", type=click.Path(file_okay=False),
              help="SQL engines: keep the population's Parquet tables in this folder (default: a temporary one). "
                   "PATIENTS may also be such a folder, written before by elig tables.")
@click.option("--spark-master", default="local[2]", show_default=True,
              help="With --engine spark: the Spark master URL (local[N], spark://host:7077, yarn, ...).")
@vocabulary_option
def command(protocol, patients, as_of, jobs, csv_path, jsonl_path, html_dir, quiet, vocabulary_files, attestations,
            site_codes, engine, tables_dir, spark_master):
    """Screen many PATIENTS (files, folders, NDJSON, FHIR bundles) against PROTOCOL.

    One row per patient: the verdict and every criterion's outcome. Without
    --csv or --jsonl the table is printed as CSV on standard output. A record
    that cannot be read is reported on standard error with its file (and
    line) and the batch goes on. Exit status: 0 when every record was read,
    1 when any failed.
    """
    from elig import api
    from elig.diagnostics import ProtocolError, render_all
    from elig.engine.evaluator import as_date

    try:
        as_of_date = as_date(as_of)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--as-of") from None
    try:
        checked = api.load_protocol(protocol, vocabulary=base_vocabulary(vocabulary_files))
    except ProtocolError as exc:
        click.echo(render_all(exc.diagnostics, add_sources(exc.diagnostics, exc.sources)), err=True)
        sys.exit(1)
    except UnicodeDecodeError as exc:
        click.echo(f"error: {protocol}: cannot read the protocol: {exc}", err=True)
        click.echo("  = help: save the protocol as UTF-8 text", err=True)
        sys.exit(1)
    except EligError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)

    try:  # read the attestation files once here, so a bad file is one clear error, not one per record
        from elig.records.attestations import load_answers, load_site_mapping

        if attestations:
            load_answers(attestations)
        if site_codes:
            load_site_mapping(site_codes)
    except EligError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    criteria = [c.id for c in checked.criteria]
    summary = Summary(checked, as_of_date.isoformat() if as_of_date else None)
    handles = []
    writers = []
    stdout_table = not csv_path and not jsonl_path and not html_dir
    for out_path in (csv_path, jsonl_path):
        if out_path:
            Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    if csv_path:
        fh = open(csv_path, "w", encoding="utf-8", newline="")
        handles.append(fh)
        writers.append(CsvWriter(fh, criteria))
    if jsonl_path:
        fh = open(jsonl_path, "w", encoding="utf-8")
        handles.append(fh)
        writers.append(JsonlWriter(fh))
    if stdout_table and not quiet:
        writers.append(CsvWriter(sys.stdout, criteria))

    progress = None
    if not quiet and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        progress = Progress(TextColumn("screening"), BarColumn(), MofNCompleteColumn(), TextColumn("records"),
                            TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    try:
        if progress is not None:
            progress.start()
            bar = progress.add_task("screening", total=None)
        if engine is None:
            engine = "python" if html_dir else "duckdb"
        if engine == "python":
            rows = screen(checked, patients, as_of_date, jobs=jobs, explain=bool(html_dir), html_dir=html_dir,
                          attestations=attestations, site_codes=site_codes)
        else:
            if html_dir:
                raise click.UsageError("--html-dir writes the interpreter's explanations: use --engine python "
                                       "(or leave --engine out)")
            rows = screen_sql(checked, patients, as_of_date, engine, tables_dir, spark_master,
                              attestations=attestations, site_codes=site_codes)
        for row in rows:
            summary.add(row, html_rows=bool(html_dir))
            for w in writers:
                w.write(row)
            if row.failed:
                message = visible(f"error: {row.where}: {row.error}")
                if progress is not None:
                    progress.console.print(message, markup=False, highlight=False)
                else:
                    click.echo(message, err=True)
            if progress is not None:
                progress.advance(bar)
        if html_dir:
            Path(html_dir, "index.html").write_text(summary.render_html(), encoding="utf-8")
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except EligError as exc:  # a construct the SQL compiler cannot express, unreadable tables
        if progress is not None:
            progress.stop()
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    finally:
        if progress is not None:
            progress.stop()
        for fh in handles:
            fh.close()
        summary.close()

    counts = ", ".join(f"{summary.verdicts[v]} {v}" for v in VERDICTS)
    tail = f"; {summary.failed} record{'s' if summary.failed != 1 else ''} failed" if summary.failed else ""
    if not quiet or summary.failed:
        click.echo(f"screened {summary.evaluated} patient{'s' if summary.evaluated != 1 else ''}: {counts}{tail}",
                   err=True)
        for path in (csv_path, jsonl_path, html_dir and str(Path(html_dir, "index.html"))):
            if path and not quiet:
                click.echo(f"wrote {path}", err=True)
    sys.exit(1 if summary.failed else 0)


# ---------------------------------------------------------------- SQL engines
def screen_sql(protocol: CheckedProtocol, inputs, as_of, engine: str = "duckdb", tables_dir=None,
               spark_master: str | None = None, attestations: str | None = None,
               site_codes: str | None = None) -> Iterator[Row]:
    """Screen on an SQL engine: the records are read into Parquet tables, then one query decides them all.

    Records are read as ``screen`` reads them (the same limits, error rows and attestation
    forms), except that FHIR goes through elig's SQL-on-FHIR views (``elig.batch.assemble``),
    which the tests hold to the FHIR reader's reading; FHIR Bulk Data files and folders of
    view output (``elig.batch.sources``) are read by patient.
    Rows come out in input order, records that could not be read as error rows in their place.
    A protocol construct the compiler cannot express raises ``CompileError`` (naming the
    criterion) before any record is read.
    """
    from elig.batch import api as batch_api
    from elig.batch import compiler
    from elig.batch.sources import VIEWS, is_bulk_file, is_view_folder, read_bulk, read_view_folder
    from elig.batch.tables import ParquetTables, is_table_folder

    compiler.compile_protocol(protocol, as_of)  # fail before reading the population
    inputs = [str(i) for i in inputs]
    with tempfile.TemporaryDirectory(prefix="elig-tables-") as tmp:
        failures: list[Row] = []
        if len(inputs) == 1 and is_table_folder(inputs[0]):
            folder = inputs[0]
        else:
            folder = tables_dir or tmp
            reader = _Screener(protocol, as_of, False, None, attestations, site_codes)
            view_folders = [i for i in inputs if is_view_folder(i)]
            inputs = [i for i in inputs if i not in view_folders]
            bulk = [Path(i) for i in inputs if Path(i).is_file() and is_bulk_file(Path(i))]
            bulk += [f for i in inputs if Path(i).is_dir() for f in sorted(Path(i).rglob("*.ndjson"))
                     if is_bulk_file(f)]
            from elig.api import with_attestations

            index = 0
            with ParquetTables(folder) as out:
                for task in iter_tasks(inputs):
                    if task.error is None and task.text is not None and Path(task.file) in bulk:
                        continue
                    try:
                        if task.error is not None:
                            raise DataError(task.error)
                        record = with_attestations(reader._read(task, VIEWS), reader.answers, reader.mapping)
                    except EligError as exc:
                        failures.append(Row(index, task.file, task.line,
                                            error=task.error if task.error is not None else one_line(exc)))
                    else:
                        out.add(record, task.file, task.line, "ndjson" if task.text is not None else "file")
                    index += 1
                read_views = (r for folder in view_folders for r in read_view_folder(folder))
                for origin, records in (("views", read_views), ("bulk", read_bulk(bulk) if bulk else ())):
                    for got in records:
                        if got.patient is None:
                            failures.append(Row(index, got.source, got.line, error=got.error))
                        else:
                            out.add(with_attestations(got.patient, reader.answers, reader.mapping), got.source,
                                    got.line, origin)
                        index += 1
        pending = failures
        index = 0
        for row in batch_api.screen(protocol, folder, as_of, engine, spark_master):
            while pending and pending[0].index == index:
                yield pending.pop(0)
                index += 1
            yield Row(index, row.source or "", row.line, patient_id=row.patient_id, verdict=row.verdict,
                      outcomes=row.outcomes, excluded_by=row.excluded_by, data_issues=row.data_issues)
            index += 1
        yield from pending


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("patients", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Folder for the Parquet tables (patients, observations, conditions, procedures, medications, "
                   "attestations).")
def tables_command(patients, out):
    """Read PATIENTS (files, folders, NDJSON, FHIR bundles, FHIR Bulk Data) into Parquet tables.

    The tables are what elig screen --engine duckdb|spark reads; write them once, screen
    them against every protocol. Records that cannot be read are reported with their file
    and line. Exit status: 0 when every record was read, 1 when any failed.
    """
    from elig.batch import api as batch_api

    loaded = batch_api.load(patients, out)
    for _, record in loaded.failures:
        click.echo(f"error: {record.where}: {record.error}", err=True)
    click.echo(f"wrote {loaded.patients} patient{'s' if loaded.patients != 1 else ''} into {out}"
               + (f"; {len(loaded.failures)} record(s) failed" if loaded.failures else ""), err=True)
    sys.exit(1 if loaded.failures else 0)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("patients", nargs=-1, required=True, type=click.Path())
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="Folder for the view output: one Parquet file per view (patient.parquet, observation.parquet, ...).")
def views_command(patients, out):
    """Flatten FHIR (bundles, NDJSON, Bulk Data) with elig's SQL-on-FHIR views into Parquet.

    This is what another SQL-on-FHIR implementation (Pathling) writes from the views in
    elig/data/views; elig screen --engine duckdb and elig tables read such a folder. Exit
    status: 0 when every record was read, 1 when any failed.
    """
    from elig.batch.sources import write_view_output

    count, problems = write_view_output(patients, out)
    for record in problems:
        click.echo(f"error: {record.where}: {record.error}", err=True)
    click.echo(f"wrote the views of {count} resource{'s' if count != 1 else ''} into {out}"
               + (f"; {len(problems)} record(s) failed" if problems else ""), err=True)
    sys.exit(1 if problems else 0)
