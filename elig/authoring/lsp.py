"""``elig lsp``: a language server for protocol files, over stdio, on pygls.

What an editor gets (the answers come from :mod:`elig.authoring.assist`, which
calls the same checker, linter, formatter and vocabulary as the CLI):

- diagnostics as the author types: every code of ``elig check`` and ``elig lint``
  with the same ranges and hints, published on open and save at once and after
  changes once typing pauses (:data:`DEBOUNCE_SECONDS`);
- hover on a concept, a derived value or a threshold; completion of concept
  names, units, methods, keywords and criterion ids; go to definition of a
  concept in its vocabulary file; the criteria as document symbols; formatting
  (``elig fmt``); quick fixes (did-you-mean, add the sponsor's sentence).

Positions: elig counts columns in code points, editors in UTF-16 units by
default; pygls's position codec converts between them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import unquote, urlparse

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer

from elig import __version__
from elig.authoring import assist
from elig.diagnostics import Diagnostic, Span
from elig.terminology.vocabulary import Vocabulary

DEBOUNCE_SECONDS = 0.3
SOURCE = "elig"

_COMPLETION_KIND = {
    "concept": lsp.CompletionItemKind.Class,
    "keyword": lsp.CompletionItemKind.Keyword,
    "unit": lsp.CompletionItemKind.Unit,
    "method": lsp.CompletionItemKind.Function,
    "criterion": lsp.CompletionItemKind.Reference,
}


def _file_of(uri: str) -> str:
    parsed = urlparse(uri)
    return unquote(parsed.path) if parsed.scheme == "file" else uri


def _uri_of(path: str) -> str:
    return Path(path).resolve().as_uri()


def _plain_range(span: Span) -> lsp.Range:
    """A span of a file that is not open in the editor (code points; the same as UTF-16 units
    for the text of vocabulary files, which is in the Basic Multilingual Plane)."""
    return lsp.Range(lsp.Position(span.line - 1, span.column - 1),
                     lsp.Position(max(span.end_line, span.line) - 1, max(span.end_column, span.column) - 1))


class EligServer(LanguageServer):
    """The server and its per-document state (analyses and pending diagnostics), owned by one process."""

    def __init__(self, debounce: float = DEBOUNCE_SECONDS, vocabulary: Vocabulary | None = None):
        super().__init__("elig", __version__, text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self.debounce = debounce
        self.vocabulary = vocabulary
        self.analyses: dict[str, tuple[int | None, str, assist.Analysis]] = {}
        self.pending: dict[str, asyncio.TimerHandle] = {}

    # ------------------------------------------------------------ analysis
    def analysis(self, uri: str) -> assist.Analysis:
        doc = self.workspace.get_text_document(uri)
        cached = self.analyses.get(uri)
        if cached is not None and cached[0] == doc.version and cached[1] == doc.source:
            return cached[2]
        result = assist.analyse(doc.source, _file_of(uri), self.vocabulary)
        self.analyses[uri] = (doc.version, doc.source, result)
        return result

    def to_range(self, uri: str, span: Span | None) -> lsp.Range:
        if span is None:
            return lsp.Range(lsp.Position(0, 0), lsp.Position(0, 1))
        doc = self.workspace.get_text_document(uri)
        rng = lsp.Range(lsp.Position(max(0, span.line - 1), max(0, span.column - 1)),
                        lsp.Position(max(0, span.end_line - 1), max(0, span.end_column - 1)))
        return doc.range_to_client_units(rng)

    def position(self, uri: str, pos: lsp.Position) -> tuple[int, int]:
        doc = self.workspace.get_text_document(uri)
        server = doc.position_from_client_units(pos)
        return server.line + 1, server.character + 1

    def lsp_diagnostic(self, uri: str, d: Diagnostic) -> lsp.Diagnostic:
        message = d.message + (f"\nhelp: {d.hint}" if d.hint else "")
        if d.location:
            message += f"\n(at {d.location})"
        span, related = d.span, None
        if span is not None and span.file != _file_of(uri):
            # A problem inside a vocabulary file the protocol names: shown on the protocol's
            # first line, with the place in the other file.
            message = f"{span}: {message}"
            related = [lsp.DiagnosticRelatedInformation(location=lsp.Location(
                uri=_uri_of(span.file), range=_plain_range(span)), message=d.message)]
            span = None
        return lsp.Diagnostic(
            range=self.to_range(uri, span), message=message, code=d.code, source=SOURCE,
            related_information=related,
            severity=lsp.DiagnosticSeverity.Error if d.severity == "error" else lsp.DiagnosticSeverity.Warning,
            data={"hint": d.hint} if d.hint else None)

    def publish(self, uri: str) -> None:
        self.pending.pop(uri, None)
        try:
            doc = self.workspace.get_text_document(uri)
        except KeyError:
            return
        result = self.analysis(uri)
        self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(
            uri=uri, version=doc.version, diagnostics=[self.lsp_diagnostic(uri, d) for d in result.diagnostics]))

    def schedule(self, uri: str) -> None:
        """Publish once the author pauses: each change restarts the wait."""
        handle = self.pending.pop(uri, None)
        if handle is not None:
            handle.cancel()
        self.pending[uri] = asyncio.get_running_loop().call_later(self.debounce, self.publish, uri)


def make_server(debounce: float = DEBOUNCE_SECONDS, vocabulary: Vocabulary | None = None) -> EligServer:
    """A language server with every feature registered (a new one each call: no module state).

    ``vocabulary``: the bundled vocabulary with ``--vocabulary`` files; each protocol's own
    header files are added to it per document.
    """
    server = EligServer(debounce, vocabulary)

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: EligServer, params: lsp.DidOpenTextDocumentParams):
        ls.publish(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    async def did_change(ls: EligServer, params: lsp.DidChangeTextDocumentParams):
        ls.schedule(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: EligServer, params: lsp.DidSaveTextDocumentParams):
        ls.publish(params.text_document.uri)

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: EligServer, params: lsp.DidCloseTextDocumentParams):
        uri = params.text_document.uri
        handle = ls.pending.pop(uri, None)
        if handle is not None:
            handle.cancel()
        ls.analyses.pop(uri, None)
        ls.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def hover(ls: EligServer, params: lsp.HoverParams):
        uri = params.text_document.uri
        found = ls.analysis(uri).hover(*ls.position(uri, params.position))
        if found is None:
            return None
        return lsp.Hover(contents=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=found.markdown),
                         range=ls.to_range(uri, found.span))

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION,
                    lsp.CompletionOptions(trigger_characters=[" ", "(", ","]))
    def completion(ls: EligServer, params: lsp.CompletionParams):
        uri = params.text_document.uri
        found = ls.analysis(uri).completions(*ls.position(uri, params.position))
        ctx = params.context
        if ctx is not None and ctx.trigger_kind == lsp.CompletionTriggerKind.TriggerCharacter and \
                ctx.trigger_character == " ":
            # After a space, offer only what the place calls for (units after a number), not every name.
            found = [c for c in found if c.kind in ("unit", "method", "criterion")]
        items = []
        for c in found:
            items.append(lsp.CompletionItem(
                label=c.label, kind=_COMPLETION_KIND.get(c.kind), detail=c.detail or None,
                documentation=lsp.MarkupContent(kind=lsp.MarkupKind.Markdown, value=c.documentation)
                if c.documentation else None,
                insert_text=c.insert_text))
        return lsp.CompletionList(is_incomplete=False, items=items)

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def definition(ls: EligServer, params: lsp.DefinitionParams):
        uri = params.text_document.uri
        span = ls.analysis(uri).definition(*ls.position(uri, params.position))
        if span is None:
            return None
        # The vocabulary file is not open in the editor: its positions are code points,
        # the same as UTF-16 units for the names it holds.
        return lsp.Location(uri=_uri_of(span.file), range=_plain_range(span))

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def symbols(ls: EligServer, params: lsp.DocumentSymbolParams):
        uri = params.text_document.uri

        def convert(s: assist.Symbol) -> lsp.DocumentSymbol:
            return lsp.DocumentSymbol(
                name=s.name, detail=s.detail or None,
                kind=lsp.SymbolKind.Namespace if s.kind == "section" else lsp.SymbolKind.Field,
                range=ls.to_range(uri, s.span), selection_range=ls.to_range(uri, s.selection),
                children=[convert(c) for c in s.children])

        return [convert(s) for s in ls.analysis(uri).symbols()]

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    def formatting(ls: EligServer, params: lsp.DocumentFormattingParams):
        uri = params.text_document.uri
        analysis = ls.analysis(uri)
        formatted = analysis.formatted()
        if formatted is None or formatted == analysis.text:
            return []
        lines = analysis.text.split("\n")
        end = ls.workspace.get_text_document(uri).position_to_client_units(lsp.Position(len(lines) - 1, len(lines[-1])))
        return [lsp.TextEdit(range=lsp.Range(lsp.Position(0, 0), end), new_text=formatted)]

    @server.feature(lsp.TEXT_DOCUMENT_CODE_ACTION,
                    lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix]))
    def code_actions(ls: EligServer, params: lsp.CodeActionParams):
        uri = params.text_document.uri
        analysis = ls.analysis(uri)
        wanted = {(d.code, d.range.start.line, d.range.start.character) for d in params.context.diagnostics}
        out = []
        for action in analysis.actions():
            d = action.diagnostic
            rng = ls.to_range(uri, d.span)
            if wanted and (d.code, rng.start.line, rng.start.character) not in wanted:
                continue
            if not wanted and not (rng.start.line <= params.range.end.line and rng.end.line >= params.range.start.line):
                continue
            edits = [lsp.TextEdit(range=ls.to_range(uri, e.span), new_text=e.new_text) for e in action.edits]
            out.append(lsp.CodeAction(title=action.title, kind=lsp.CodeActionKind.QuickFix,
                                      diagnostics=[ls.lsp_diagnostic(uri, d)], is_preferred=action.preferred or None,
                                      edit=lsp.WorkspaceEdit(changes={uri: edits})))
        return out

    return server


def serve_stdio(vocabulary: Vocabulary | None = None, debounce: float = DEBOUNCE_SECONDS) -> None:
    """Run the server on standard input and output until the client says exit."""
    make_server(debounce, vocabulary).start_io()
