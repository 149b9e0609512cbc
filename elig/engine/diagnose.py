"""Every diagnostic of one protocol text: parse errors, vocabulary-file errors, or checker errors and lint warnings.

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
from elig.terminology.vocabulary import Vocabulary, VocabularyError, default_vocabulary


@attrs.frozen
class Diagnosed:
    """What diagnosing a text found.

    ``tree`` is None when the text does not parse; ``vocabulary`` is the one the protocol
    is checked with (the given or bundled vocabulary, extended with the files its header
    names), None when those files have errors.
    """

    tree: t.Protocol | None
    diagnostics: tuple[Diagnostic, ...]
    vocabulary: Vocabulary | None = attrs.field(default=None, repr=False)


def diagnose_text(text: str, file: str = "<protocol>", vocabulary: Vocabulary | None = None) -> Diagnosed:
    """Parse errors, vocabulary-file errors, or checker errors and lint warnings, for one protocol text."""
    try:
        tree = parser.parse_protocol(text, file=file)
    except ProtocolError as exc:
        return Diagnosed(None, tuple(exc.diagnostics))
    try:
        vocabulary = checker.protocol_vocabulary(tree, vocabulary or default_vocabulary())
    except VocabularyError as exc:
        return Diagnosed(tree, tuple(exc.diagnostics))
    return Diagnosed(tree, tuple(checker.diagnose(tree, vocabulary)) + tuple(lint(tree, vocabulary)), vocabulary)
