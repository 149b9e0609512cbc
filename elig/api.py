"""The library API: load a protocol once, evaluate many patients.

Nothing here keeps global state: a ``CheckedProtocol`` owns its unit cache,
and the parser and vocabulary are immutable once built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Union

from elig.engine import checker
from elig.language import parser
from elig.engine.evaluator import evaluate as _evaluate
from elig.records.loader import load_patient
from elig.records.patient import Patient
from elig.engine.plan import CheckedProtocol
from elig.engine.results import EvaluationResult
from elig.terminology.vocabulary import Vocabulary, default_vocabulary

VocabularyArg = Union[Vocabulary, str, Path, Iterable[Union[str, Path]], None]


def load_vocabulary(files: VocabularyArg = None) -> Vocabulary:
    """The bundled vocabulary extended with author-declared vocabulary files.

    ``files`` is one path, several paths, a ``Vocabulary`` (returned as it is), or None
    (the bundled vocabulary). Raises ``VocabularyError`` listing every problem in the files.
    """
    if files is None:
        return default_vocabulary()
    if isinstance(files, Vocabulary):
        return files
    if isinstance(files, (str, Path)):
        files = [files]
    return default_vocabulary().extended(list(files))


def parse_protocol_text(text: str, file: str = "<protocol>", vocabulary: VocabularyArg = None) -> CheckedProtocol:
    """Parse and check protocol text; raise ``ProtocolError`` listing every problem.

    ``vocabulary``: extra vocabulary files (or a ``Vocabulary``); the files the protocol's
    header names are read as well, relative to ``file``.
    """
    return checker.check(parser.parse_protocol(text, file=file), load_vocabulary(vocabulary))


def load_protocol(path: str | Path, vocabulary: VocabularyArg = None) -> CheckedProtocol:
    """Read, parse and check a protocol file, ready to evaluate many patients.

    ``vocabulary`` adds concepts that elig does not ship: a vocabulary file, a list of
    them, or a ``Vocabulary``. Files named in the protocol's header (``vocabulary
    "site.yaml"``) are always read, relative to the protocol.
    """
    path = Path(path)
    return parse_protocol_text(path.read_text(encoding="utf-8"), file=str(path), vocabulary=vocabulary)



def evaluate(protocol: CheckedProtocol, patient: Patient | str | Path, as_of=None) -> EvaluationResult:
    """Evaluate one patient (a Patient, or a path to a native or FHIR file) at ``as_of`` (default: today)."""
    if not isinstance(patient, Patient):
        patient = load_patient(patient)
    return _evaluate(protocol, patient, as_of)
