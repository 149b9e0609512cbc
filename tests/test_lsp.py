"""``elig lsp`` driven as an editor drives it: the real server in a subprocess, JSON-RPC over stdio.

One editing session: open a protocol with a misspelt concept, see the E101
diagnostic at the name with its did-you-mean fix, apply the fix through a code
action, type more (debounced: the diagnostics that arrive are those of the last
version), hover on a concept and on a threshold, complete units, methods, names
and criterion ids, jump to the vocabulary, list the outline, and format.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from lsprotocol import types as lsp
from pygls.lsp.client import LanguageClient

from elig.language.formatter import format_text

ROOT = Path(__file__).resolve().parent.parent

PROTOCOL = """protocol LSP-1
  title "An editing session"

inclusion
  I1 "Creatinine clearance ≥ 60 mL/min"
    Creatinin clearance ≥ 60 mL/min within 7 days
  I2 "ANC ≥ 1.5 x 10^9/L"
    ANC ≥ 1.5 x 10^9/L within 7 days

exclusion
  E1
    serum creatinine > 100 µmol/L within 7 days
"""


FERRITIN = """\
concepts:
  - name: serum ferritin
    kind: measurement
    aliases: [ferritin, s-ferritin]
    codes:
      - {system: LOINC, code: 2276-4, display: "Ferritin [Mass/volume] in Serum or Plasma"}
    unit: ng/mL
    plausible: [0, 100000]
    uln: {value: 300, unit: ng/mL, source: "site laboratory"}
"""

SITE = """protocol SITE-1
  title "A site trial"
  vocabulary "site.yaml"

inclusion
  I1 "Ferritin below 2 x ULN"
    ferritin < 2 x ULN within 30 days

"""


def _server_command() -> list[str]:
    script = Path(sys.executable).with_name("elig")
    return [str(script), "lsp"] if script.is_file() else [sys.executable, "-m", "elig", "lsp"]


def _apply(text: str, edits: list[lsp.TextEdit]) -> str:
    """Apply text edits (positions in UTF-16 units, as the server sends them) the way an editor does."""
    lines = text.split("\n")

    def offset(pos: lsp.Position) -> int:
        line = lines[pos.line] if pos.line < len(lines) else ""
        units, chars = 0, 0
        while units < pos.character and chars < len(line):
            units += 2 if ord(line[chars]) > 0xFFFF else 1
            chars += 1
        return sum(len(x) + 1 for x in lines[: pos.line]) + chars

    for e in sorted(edits, key=lambda e: (e.range.start.line, e.range.start.character), reverse=True):
        text = text[: offset(e.range.start)] + e.new_text + text[offset(e.range.end):]
    return text


def _pos(text: str, needle: str, delta: int = 0) -> lsp.Position:
    for i, line in enumerate(text.split("\n")):
        if needle in line and not line.lstrip().startswith(("I", "E")) or needle in line and '"' not in line:
            return lsp.Position(line=i, character=line.index(needle) + delta)
    raise AssertionError(f"{needle!r} not in the text")


async def _session(tmp_path: Path) -> None:
    client = LanguageClient("elig-test", "1")
    published: asyncio.Queue = asyncio.Queue()

    @client.feature(lsp.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: lsp.PublishDiagnosticsParams):
        published.put_nowait(params)

    await client.start_io(*_server_command())
    try:
        init = await client.initialize_async(lsp.InitializeParams(
            capabilities=lsp.ClientCapabilities(), process_id=None,
            root_uri=tmp_path.as_uri()))
        caps = init.capabilities
        assert caps.hover_provider and caps.definition_provider and caps.document_formatting_provider
        assert caps.completion_provider is not None and caps.code_action_provider
        client.initialized(lsp.InitializedParams())

        path = tmp_path / "lsp.elig"
        path.write_text(PROTOCOL, encoding="utf-8")
        uri = path.as_uri()
        doc = lsp.TextDocumentIdentifier(uri=uri)
        text = PROTOCOL

        # open: the diagnostics elig lint gives, at the misspelt name, with the hint
        client.text_document_did_open(lsp.DidOpenTextDocumentParams(
            text_document=lsp.TextDocumentItem(uri=uri, language_id="elig", version=1, text=text)))
        params = await asyncio.wait_for(published.get(), 30)
        by_code = {d.code: d for d in params.diagnostics}
        assert set(by_code) == {"E101", "W201"}, [d.message for d in params.diagnostics]
        e101 = by_code["E101"]
        assert e101.range.start == lsp.Position(5, 4) and e101.range.end == lsp.Position(5, 23)
        assert "unknown concept 'Creatinin clearance'" in e101.message
        assert "did you mean 'Creatinine clearance'?" in e101.message
        assert e101.severity == lsp.DiagnosticSeverity.Error

        # the quick fix replaces the name
        actions = await client.text_document_code_action_async(lsp.CodeActionParams(
            text_document=doc, range=e101.range, context=lsp.CodeActionContext(diagnostics=[e101])))
        (fix,) = [a for a in actions if "Creatinine clearance" in a.title]
        text = _apply(text, fix.edit.changes[uri])
        assert "    Creatinine clearance ≥ 60 mL/min within 7 days" in text
        (edit,) = fix.edit.changes[uri]  # the editor sends it back as an incremental change
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[lsp.TextDocumentContentChangePartial(range=edit.range, text=edit.new_text)]))
        params = await asyncio.wait_for(published.get(), 30)
        assert params.version == 2 and [d.code for d in params.diagnostics] == ["W201"]  # the E101 is gone

        # three more quick changes: one publication, for the last version only (debounced)
        versions = [(3, text.replace("ANC ≥ 1.5", "ANC ≥ 1.")), (4, text.replace("ANC ≥ 1.5", "ANC ≥")),
                    (5, text)]
        for version, body in versions:
            client.text_document_did_change(lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=body)]))
        params = await asyncio.wait_for(published.get(), 30)
        assert params.version == 5, "diagnostics of an intermediate version were published"
        codes = sorted(d.code for d in params.diagnostics)
        assert codes == ["W201"], codes  # E1 has no sponsor's sentence: the same warning elig lint gives

        # "add sponsor sentence"
        (w201,) = params.diagnostics
        actions = await client.text_document_code_action_async(lsp.CodeActionParams(
            text_document=doc, range=w201.range, context=lsp.CodeActionContext(diagnostics=[w201])))
        assert any(a.title.startswith("Add the sponsor's sentence") and
                   _apply(text, a.edit.changes[uri]).count('  E1 ""\n') == 1 for a in actions)

        # hover: a concept, a derived concept and a threshold in canonical units
        h = await client.text_document_hover_async(lsp.HoverParams(text_document=doc, position=_pos(text, "ANC ≥", 1)))
        value = h.contents.value
        assert "**absolute neutrophil count** (measurement)" in value
        assert "LOINC 751-8" in value and "Canonical unit: 10^9/L" in value and "Plausible range: 0 to 100" in value
        assert "Vocabulary: elig/data/vocabulary.yaml, line" in value
        h = await client.text_document_hover_async(lsp.HoverParams(
            text_document=doc, position=_pos(text, "Creatinine clearance ≥", 3)))
        assert "Cockcroft-Gault (actual body weight)" in h.contents.value and "Nephron 1976" in h.contents.value
        h = await client.text_document_hover_async(lsp.HoverParams(
            text_document=doc, position=_pos(text, "100 µmol/L", 1)))
        assert "**100 µmol/L** = 1.13 mg/dL in the canonical unit" in h.contents.value
        h = await client.text_document_hover_async(lsp.HoverParams(
            text_document=doc, position=_pos(text, "serum creatinine >", 2)))
        assert "Default ULN: 1.3 mg/dL (male), 1.1 mg/dL (female)" in h.contents.value

        # completion: units for the concept just typed, methods, names and keywords, the next id
        async def complete(line_text: str) -> list[str]:
            nonlocal text
            body = text.replace("\nexclusion\n", f"\n{line_text}\nexclusion\n")
            client.text_document_did_change(lsp.DidChangeTextDocumentParams(
                text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=10),
                content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=body)]))
            line = body.split("\n").index(line_text)
            got = await client.text_document_completion_async(lsp.CompletionParams(
                text_document=doc, position=lsp.Position(line, len(line_text))))
            return [i.label for i in got.items]

        units = await complete("    ANC ≥ 1.5 ")
        assert "x 10^9/L" in units and "/mm3" in units and "mg/dL" not in units
        line_text = "    platelet count ≥ "  # a space typed where no unit is due: no list pops up
        body = text.replace("\nexclusion\n", f"\n{line_text}\nexclusion\n")
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=9),
            content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=body)]))
        got = await client.text_document_completion_async(lsp.CompletionParams(
            text_document=doc, position=lsp.Position(body.split("\n").index(line_text), len(line_text)),
            context=lsp.CompletionContext(trigger_kind=lsp.CompletionTriggerKind.TriggerCharacter,
                                          trigger_character=" ")))
        assert list(got.items) == []
        units = await complete("    serum creatinine ≤ 1.5 ")
        assert {"mg/dL", "µmol/L", "x ULN"} <= set(units) and "mmHg" not in units
        methods = await complete("    creatinine clearance ≥ 60 mL/min (")
        assert "Cockcroft-Gault" in methods and "Cockcroft-Gault, ideal body weight" in methods
        words = await complete("    ")
        assert {"platelet count", "ANC", "within", "history", "at least"} <= set(words)
        ids = await complete("  ")
        assert ids == ["I3"]

        # go to definition: the concept's declaration in the vocabulary file
        loc = await client.text_document_definition_async(lsp.DefinitionParams(
            text_document=doc, position=_pos(text, "ANC ≥", 1)))
        assert loc.uri.endswith("/elig/data/vocabulary.yaml")
        line = Path(loc.uri.removeprefix("file://")).read_text(encoding="utf-8").split("\n")[loc.range.start.line]
        assert line.strip() == "- name: absolute neutrophil count"

        # outline
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=11),
            content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=text)]))
        symbols = await client.text_document_document_symbol_async(lsp.DocumentSymbolParams(text_document=doc))
        assert [(s.name, [c.name for c in s.children]) for s in symbols] == [
            ("inclusion", ["I1", "I2"]), ("exclusion", ["E1"])]
        assert symbols[0].children[1].detail == "ANC ≥ 1.5 x 10^9/L"

        # formatting: elig fmt's layout
        messy = text.replace("    ANC ≥ 1.5 x 10^9/L within 7 days", "    ANC   >=  1.5 x 10^9/L   within 7 days")
        client.text_document_did_change(lsp.DidChangeTextDocumentParams(
            text_document=lsp.VersionedTextDocumentIdentifier(uri=uri, version=12),
            content_changes=[lsp.TextDocumentContentChangeWholeDocument(text=messy)]))
        edits = await client.text_document_formatting_async(lsp.DocumentFormattingParams(
            text_document=doc, options=lsp.FormattingOptions(tab_size=2, insert_spaces=True)))
        formatted = _apply(messy, edits)
        assert formatted == format_text(messy) and "    ANC ≥ 1.5 x 10^9/L within 7 days" in formatted

        # an author's vocabulary file, named in the protocol header: completion, hover, definition
        (tmp_path / "site.yaml").write_text(FERRITIN, encoding="utf-8")
        site_uri = (tmp_path / "site.elig").as_uri()
        client.text_document_did_open(lsp.DidOpenTextDocumentParams(
            text_document=lsp.TextDocumentItem(uri=site_uri, language_id="elig", version=1, text=SITE)))
        site_doc = lsp.TextDocumentIdentifier(uri=site_uri)
        params = await asyncio.wait_for(published.get(), 30)
        while params.uri != site_uri:  # the first document's last (debounced) publication
            params = await asyncio.wait_for(published.get(), 30)
        assert list(params.diagnostics) == []
        got = await client.text_document_completion_async(lsp.CompletionParams(
            text_document=site_doc, position=lsp.Position(7, 4)))
        assert {"serum ferritin", "s-ferritin", "ANC"} <= {i.label for i in got.items}
        at = _pos(SITE, "ferritin <", 2)
        h = await client.text_document_hover_async(lsp.HoverParams(text_document=site_doc, position=at))
        assert "Default ULN: 300 ng/mL, site laboratory" in h.contents.value
        assert f"Vocabulary: {tmp_path / 'site.yaml'}, line 2" in h.contents.value
        loc = await client.text_document_definition_async(lsp.DefinitionParams(text_document=site_doc, position=at))
        assert loc.uri == (tmp_path / "site.yaml").as_uri() and loc.range.start.line == 1

        await client.shutdown_async(None)
        client.exit(None)
        await asyncio.wait_for(client.stop(), 30)
        assert client.stopped
    finally:
        server = client._server  # a failed assertion must not leave the server running
        if server is not None and server.returncode is None:
            server.kill()
            await server.wait()


def test_editing_session_over_stdio(tmp_path):
    asyncio.run(_session(tmp_path))
