"""The library API: load a protocol once, evaluate many patients.

Nothing here keeps global state: a ``CheckedProtocol`` owns its unit cache,
and the parser and vocabulary are immutable once built.
"""

from __future__ import annotations

from pathlib import Path

import attrs
from typing import Iterable, Union

from elig.engine import checker
from elig.language import parser
from elig.engine.evaluator import evaluate as _evaluate
from elig.records.attestations import Answers, SiteMapping, apply_site_mapping, form_from_data, load_answers, \
    load_site_mapping
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


def evaluate(protocol: CheckedProtocol, patient: Patient | str | Path, as_of=None, *,
             attestations: Answers | dict | str | Path | None = None,
             site_codes: SiteMapping | str | Path | None = None) -> EvaluationResult:
    """Evaluate one patient (a Patient, or a path to a native or FHIR file) at ``as_of`` (default: today).

    ``attestations``: answers merged with the record (an attestation file's path, a mapping
    such as ``{"informed consent": True}``, or ``Answers``). ``site_codes``: a mapping from a
    site's own code system to attestations (a path or ``SiteMapping``), applied to the
    record's observations. Every answer keeps its source for the explanation.
    """
    if not isinstance(patient, Patient):
        patient = load_patient(patient)
    patient = with_attestations(patient, attestations, site_codes, protocol)
    return _evaluate(protocol, patient, as_of)


def with_attestations(patient: Patient, attestations: Answers | dict | str | Path | None = None,
                      site_codes: SiteMapping | str | Path | None = None,
                      protocol: CheckedProtocol | None = None) -> Patient:
    """The record with a site's coded answers and an attestation form merged in.

    With ``protocol``, a form's answer to a question the protocol never asks (a misspelt
    key) is a data issue with the nearest question, as ``check_answers`` gives it.
    """
    if site_codes is not None:
        mapping = site_codes if isinstance(site_codes, SiteMapping) else load_site_mapping(site_codes)
        patient = apply_site_mapping(patient, mapping)
    if attestations is not None:
        if isinstance(attestations, dict):
            answers, issues = form_from_data(attestations, "attestations")
            attestations = Answers(common=answers, issues=issues)
        elif not isinstance(attestations, Answers):
            attestations = load_answers(attestations)
        if protocol is not None:
            attestations = check_answers(protocol, attestations)
        patient = attestations.apply(patient)
    return patient


def check_answers(protocol: CheckedProtocol, answers: Answers) -> Answers:
    """``answers`` with a data issue for each answer to a question ``protocol`` never asks.

    A form's key is matched to the protocol's attestations by its words; a misspelt one
    ('informed consnt: no') would otherwise be dropped in silence and the question stay
    open, or another source's yes decide. Answers given for another study are left alone:
    the evaluation shows them as not counted.
    """
    import difflib

    from elig.records.patient import DataIssue
    from elig.report.questionnaire import attestation_keys

    asked = attestation_keys(protocol)
    given = list(answers.common) + [a for found in answers.by_patient.values() for a in found]
    issues = []
    for a in given:
        if a.key in asked or a.study or any(i.location == a.source.record and i.file == a.source.file
                                            for i in issues):
            continue
        close = difflib.get_close_matches(a.key, sorted(asked), n=1, cutoff=0.75)
        issues.append(DataIssue(a.source.record, f"not a question of {protocol.id}; the answer is not used",
                                f"did you mean '{close[0]}'?" if close else
                                f"the protocol asks: {', '.join(sorted(asked)) or 'nothing'}", a.source.file or None))
    return attrs.evolve(answers, issues=answers.issues + tuple(issues)) if issues else answers
