"""``elig serve``: a local workbench page for writing a protocol and trying it on a patient.

A Starlette application served by uvicorn on 127.0.0.1 only. Every answer comes
from the functions the CLI uses: diagnostics from
:func:`elig.engine.diagnose.diagnose_text` (``elig lint``) and their quick fixes from
:mod:`elig.authoring.assist` (the language server's code actions), the checked protocol
from :func:`elig.api.parse_protocol_text`, the verdict from :func:`elig.api.evaluate`,
the report from :func:`elig.report.html.render_html` (``elig explain --format html``),
"what would change" from :func:`elig.report.changes.what_would_change`, and the
highlighting from the elig Pygments lexer. The page, its script and its style are
package data (``elig/authoring/workbench/static``): nothing is fetched from the network.

Uploaded patient files are limited to :data:`MAX_UPLOAD_BYTES`, read in memory,
kept only in this application object (at most :data:`MAX_UPLOADS`), and never
written to disk: nothing is left when the process ends.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections import OrderedDict
from pathlib import Path

from pygments.token import STANDARD_TYPES
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from elig import api
from elig.diagnostics import DataError, Diagnostic, EligError, ProtocolError
from elig.authoring.assist import Action, analyse
from elig.engine.evaluator import as_date
from elig.language.highlight import EligLexer
from elig.records.loader import load_patient, patient_from_text
from elig.records.patient import Patient
from elig.report.changes import derived_values, what_would_change
from elig.report.html import HIGHLIGHT_CSS, render_html
from elig.terminology.vocabulary import Vocabulary

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 2 * 1024 * 1024
MAX_UPLOADS = 20
MAX_PROTOCOL_CHARS = 200_000
PATIENT_SUFFIXES = (".yaml", ".yml", ".json")
# The page may load only its own files and talk only to its own server; the report frame
# (srcdoc, sandboxed without scripts) inherits this policy.
CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                           "img-src 'self' data: blob:; connect-src 'self'; frame-src 'self' about:; "
                           "object-src 'none'; base-uri 'none'; form-action 'none'")


def default_examples() -> Path | None:
    """The bundled example patients of a checkout (``examples/`` beside the package), if there."""
    candidate = Path(__file__).resolve().parents[3] / "examples"
    return candidate if candidate.is_dir() else None


def _shown(path: Path) -> Path:
    """A path as reports show it: relative to the working folder when it lies inside it
    (``examples/patients/demo_patient.yaml``, as ``elig explain`` run there shows it)."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        return path


def _utf16(text: str, index: int) -> int:
    """A code-point index as the browser counts (UTF-16 units)."""
    return len(text[:index].encode("utf-16-le")) // 2


def _offsets(text: str) -> list[int]:
    starts, at = [], 0
    for line in text.split("\n"):
        starts.append(at)
        at += len(line) + 1
    return starts


def _offset(text: str, starts: list[int], line: int, column: int) -> int:
    """A 1-based line and column as a UTF-16 offset into the text (clamped to it)."""
    line = min(max(line, 1), len(starts))
    return _utf16(text, min(starts[line - 1] + column - 1, len(text)))


def diagnostics_json(text: str, file: str, diagnostics: tuple[Diagnostic, ...],
                     actions: tuple[Action, ...] = ()) -> list[dict]:
    """Diagnostics as the page shows them: the fields of ``elig lint --format json``, offsets in
    the text, and each quick fix (the language server's code actions) as edits of the text."""
    starts = _offsets(text)
    out = []
    for d in diagnostics:
        item = d.as_dict()
        if d.span is not None and d.span.file == file and 1 <= d.span.line <= len(starts):
            item["start"] = _offset(text, starts, d.span.line, d.span.column)
            item["end"] = max(_offset(text, starts, d.span.end_line, d.span.end_column), item["start"] + 1)
            item["fixes"] = [
                {"title": a.title,
                 "edits": [{"start": _offset(text, starts, e.span.line, e.span.column),
                            "end": _offset(text, starts, e.span.end_line, e.span.end_column),
                            "text": e.new_text} for e in a.edits]}
                for a in actions if a.diagnostic is d]
        out.append(item)
    return out


def tokens_json(text: str) -> list[list]:
    """The elig lexer's tokens as [start, end, css class], offsets in UTF-16 units (the report's colours)."""
    out = []
    for index, token, value in EligLexer(stripnl=False, ensurenl=False).get_tokens_unprocessed(text):
        css = STANDARD_TYPES.get(token) or STANDARD_TYPES.get(token.parent, "")
        if css and value.strip():
            out.append([_utf16(text, index), _utf16(text, index + len(value)), css])
    return out


class Workbench:
    """The state of one running workbench: example patients and the uploads of this process only."""

    def __init__(self, examples: Path | None = None, protocol: Path | None = None, as_of: dt.date | None = None,
                 vocabulary: Vocabulary | None = None):
        self.vocabulary = vocabulary
        self.examples = examples if examples is not None else default_examples()
        self.protocol_path = protocol
        self.as_of = as_of
        self.uploads: OrderedDict[str, tuple[str, Patient]] = OrderedDict()
        self._ids = itertools.count(1)

    # ------------------------------------------------------------ patients
    def example_files(self) -> list[Path]:
        if self.examples is None:
            return []
        found = []
        for folder in ("patients", "fhir"):
            d = self.examples / folder
            if d.is_dir():
                found.extend(sorted(f for f in d.iterdir() if f.suffix in PATIENT_SUFFIXES and f.is_file()))
        return found

    def patient_list(self) -> list[dict]:
        out = []
        for f in self.example_files():
            kind = "FHIR" if f.parent.name == "fhir" else "native"
            out.append({"id": f"example:{f.parent.name}/{f.name}", "label": f"{f.name} ({kind} example)"})
        for key, (name, _) in self.uploads.items():
            out.append({"id": key, "label": f"{name} (uploaded)"})
        return out

    def patient(self, key: str) -> Patient:
        if key in self.uploads:
            return self.uploads[key][1]
        if key.startswith("example:"):
            wanted = key.removeprefix("example:")
            for f in self.example_files():
                if f"{f.parent.name}/{f.name}" == wanted:
                    return load_patient(_shown(f))
        raise DataError(f"no patient '{key}' in this workbench", hint="choose a patient from the list, or upload one")

    def upload(self, name: str, data: bytes) -> dict:
        name = Path(name or "upload.json").name
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise DataError("the file is not UTF-8 text", file=name,
                            hint="upload a native patient (YAML or JSON) or a FHIR R4 JSON Bundle") from None
        patient = patient_from_text(text, name)
        key = f"upload:{next(self._ids)}"
        self.uploads[key] = (name, patient)
        while len(self.uploads) > MAX_UPLOADS:
            self.uploads.popitem(last=False)
        return {"id": key, "label": f"{name} (uploaded)"}

    # ------------------------------------------------------------ protocol
    def starting_text(self) -> tuple[str, str]:
        """The file name the page checks the text as (vocabulary files in its header are relative
        to it), and the text."""
        if self.protocol_path is not None:
            return str(self.protocol_path), self.protocol_path.read_text(encoding="utf-8")
        return "starter.elig", (STATIC / "starter.elig").read_text(encoding="utf-8")

    def evaluate(self, text: str, file: str, patient_key: str | None, as_of: str | None) -> dict:
        diagnosed = analyse(text, file, self.vocabulary)  # elig lint's diagnose_text, and the quick fixes
        out: dict = {"diagnostics": diagnostics_json(text, file, diagnosed.diagnostics, tuple(diagnosed.actions())),
                     "tokens": tokens_json(text),
                     "protocol_id": diagnosed.tree.id if diagnosed.tree else None}
        errors = [d for d in diagnosed.diagnostics if d.severity == "error"]
        if errors:
            n = len(errors)
            out["explanation"] = {"status": "blocked",
                                  "message": f"{n} error{'s' if n != 1 else ''} in the protocol: fix "
                                             f"{'them' if n != 1 else 'it'} to see the explanation"}
            return out
        if not patient_key:
            out["explanation"] = {"status": "no-patient", "message": "choose a patient to see the explanation"}
            return out
        result = self.result(text, file, patient_key, as_of)
        out["explanation"] = {
            "status": "ok", "verdict": str(result.verdict), "as_of": result.as_of,
            "patient": result.patient_name or result.patient_id,
            "report_html": render_html(result),
            "changes": [lever.as_dict() for lever in what_would_change(result)],
            "derived": [d.as_dict() for d in derived_values(result)],
        }
        return out

    def result(self, text: str, file: str, patient_key: str, as_of: str | None):
        checked = api.parse_protocol_text(text, file=file, vocabulary=self.vocabulary)
        date = as_date(as_of or self.as_of)
        return api.evaluate(checked, self.patient(patient_key), date)


# ---------------------------------------------------------------- HTTP
def _error(message: str, status: int = 400, hint: str | None = None) -> JSONResponse:
    return JSONResponse({"error": message, "hint": hint}, status_code=status)


async def _json_body(request: Request) -> dict:
    # Only the page's own script sends JSON: a form on another site cannot, without a
    # CORS preflight this server never grants.
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise ValueError("expected Content-Type: application/json")
    body = await _read_limited(request, MAX_PROTOCOL_CHARS * 4)
    data = json.loads(body.decode("utf-8") or "{}")
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    return data


class _TooLarge(Exception):
    pass


async def _read_limited(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise _TooLarge()
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge()
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(workbench: Workbench | None = None) -> Starlette:
    """The workbench as an ASGI application (tests and ``elig serve`` both use this)."""
    wb = workbench or Workbench()

    async def index(request: Request):
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8",
                            headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})

    async def highlight_css(request: Request):
        return Response(str(HIGHLIGHT_CSS), media_type="text/css; charset=utf-8")

    async def state(request: Request):
        name, text = wb.starting_text()
        as_of = (wb.as_of or dt.date.today()).isoformat()
        return JSONResponse({"file": name, "text": text, "as_of": as_of, "patients": wb.patient_list(),
                             "max_upload_bytes": MAX_UPLOAD_BYTES})

    async def evaluate(request: Request):
        try:
            data = await _json_body(request)
        except _TooLarge:
            return _error("the protocol is too large for the workbench", 413)
        except (ValueError, UnicodeDecodeError) as exc:
            return _error(f"a bad request: {exc}")
        text = str(data.get("text", ""))
        if len(text) > MAX_PROTOCOL_CHARS:
            return _error("the protocol is too large for the workbench", 413)
        try:
            out = wb.evaluate(text, str(data.get("file") or "protocol.elig"), data.get("patient") or None,
                              data.get("as_of") or None)
        except ValueError as exc:  # a bad evaluation date
            return _error(str(exc), hint="give the date as YYYY-MM-DD")
        except DataError as exc:
            return JSONResponse({"diagnostics": [], "tokens": tokens_json(text),
                                 "explanation": {"status": "data-error", "message": str(exc)}})
        return JSONResponse(out)

    async def report(request: Request):
        try:
            data = await _json_body(request)
            text = str(data.get("text", ""))
            result = wb.result(text, str(data.get("file") or "protocol.elig"), str(data.get("patient") or ""),
                               data.get("as_of") or None)
        except _TooLarge:
            return _error("the protocol is too large for the workbench", 413)
        except ProtocolError as exc:
            return _error(f"the protocol has {len(exc.diagnostics)} problem(s)", hint="fix them first")
        except (EligError, ValueError) as exc:
            return _error(str(exc))
        name = f"{result.protocol_id}-{result.patient_id}.html".replace("/", "_").replace('"', "")
        return Response(render_html(result), media_type="text/html; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def upload(request: Request):
        if "x-filename" not in request.headers:  # set by the page's script; a cross-site form cannot
            return _error("an upload names its file in the X-Filename header", 400)
        try:
            body = await _read_limited(request, MAX_UPLOAD_BYTES)
        except _TooLarge:
            return _error(f"the file is larger than {MAX_UPLOAD_BYTES // (1024 * 1024)} MB", 413,
                          hint="upload one patient's record: a native file or a FHIR Bundle")
        try:
            return JSONResponse(wb.upload(request.headers.get("x-filename", "upload.json"), body))
        except DataError as exc:
            return _error(str(exc), hint=exc.hint)

    routes = [
        Route("/", index),
        Route("/highlight.css", highlight_css),
        Route("/api/state", state),
        Route("/api/evaluate", evaluate, methods=["POST"]),
        Route("/api/report", report, methods=["POST"]),
        Route("/api/upload", upload, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ]
    # Only this machine, by its own name: a page elsewhere that rebinds its domain to
    # 127.0.0.1 (DNS rebinding) is refused, and so cannot read what was uploaded.
    app = Starlette(routes=routes, middleware=[
        Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost", "[::1]"])])
    app.state.workbench = wb
    return app
