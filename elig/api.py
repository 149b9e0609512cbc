"""The library API: load a protocol once, evaluate many patients.

Nothing here keeps global state: a ``CheckedProtocol`` owns its unit cache,
and the parser and vocabulary are immutable once built.
"""

from __future__ import annotations

from pathlib import Path

from elig.engine import checker
from elig.language import parser
from elig.engine.evaluator import evaluate as _evaluate
from elig.records.loader import load_patient
from elig.records.patient import Patient
from elig.engine.plan import CheckedProtocol
from elig.engine.results import EvaluationResult
from elig.terminology.vocabulary import Vocabulary


def parse_protocol_text(text: str, file: str = "<protocol>", vocabulary: Vocabulary | None = None) -> CheckedProtocol:
    """Parse and check protocol text; raise ``ProtocolError`` listing every problem."""
    return checker.check(parser.parse_protocol(text, file=file), vocabulary)


def load_protocol(path: str | Path, vocabulary: Vocabulary | None = None) -> CheckedProtocol:
    """Read, parse and check a protocol file, ready to evaluate many patients."""
    path = Path(path)
    return parse_protocol_text(path.read_text(encoding="utf-8"), file=str(path), vocabulary=vocabulary)


def evaluate(protocol: CheckedProtocol, patient: Patient | str | Path, as_of=None) -> EvaluationResult:
    """Evaluate one patient (a Patient, or a path to a native or FHIR file) at ``as_of`` (default: today)."""
    if not isinstance(patient, Patient):
        patient = load_patient(patient)
    return _evaluate(protocol, patient, as_of)
