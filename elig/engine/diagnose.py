"""Every diagnostic of one protocol text: parse errors, or checker errors and lint warnings.

``elig lint``, the language server (``elig lsp``) and the workbench (``elig serve``)
all call :func:`diagnose_text`, so an author sees the same codes, ranges and hints
in a terminal, an editor and the browser.
"""

from __future__ import annotations

import attrs

from elig.diagnostics import Diagnostic, ProtocolError
from elig.engine import checker
from elig.language import parser, tree as t
from elig.language.lint import lint
from elig.terminology.vocabulary import Vocabulary, default_vocabulary


@attrs.frozen
class Diagnosed:
    """The tree (None when the text does not parse) and every diagnostic, in the order lint gives them."""

    tree: t.Protocol | None
    diagnostics: tuple[Diagnostic, ...]


def diagnose_text(text: str, file: str = "<protocol>", vocabulary: Vocabulary | None = None) -> Diagnosed:
    """Parse errors, or checker errors and lint warnings, for one protocol text."""
    try:
        tree = parser.parse_protocol(text, file=file)
    except ProtocolError as exc:
        return Diagnosed(None, tuple(exc.diagnostics))
    vocabulary = vocabulary or default_vocabulary()
    return Diagnosed(tree, tuple(checker.diagnose(tree, vocabulary)) + tuple(lint(tree, vocabulary)))
