"""Record indexing: the entries of a patient record by the concepts their codes (or names) mean.

Display text never decides a match; a coded entry whose display alone names a
concept is reported in a note instead (see ``display_only_concept``).
"""

from __future__ import annotations

import datetime as dt
import re

from elig.engine.memo import Memo
from elig.records.dates import PartialDate
from elig.records.patient import Condition, Medication, Patient, Procedure
from elig.terminology.vocabulary import Concept, Vocabulary

KINDS = ("observation", "condition", "procedure", "medication")


def index_record(patient: Patient, vocabulary: Vocabulary, cache: dict | None = None,
                 display_cache: dict | None = None) -> tuple[dict[str, dict[str, list]], list[str]]:
    """Entries by kind and concept name, newest first; and the notes on display-only entries.

    With ``cache`` (a dict owned by a checked or compiled protocol), the names of the concepts
    of each distinct (kind, codes, name, category) are looked up once, not once per entry; with
    ``display_cache``, the display-only reading of each distinct tuple of codes."""
    unmatched: dict[str, list] = {}  # observations whose display alone names a concept, by that concept
    unreadable: dict[str, list] = {}  # entries with neither a concept name nor a code, by kind: they may be anything
    idx: dict[str, dict[str, list]] = {"observation": {}, "condition": {}, "procedure": {}, "medication": {},
                                       "unmatched": unmatched, "unreadable": unreadable}
    notes: list[str] = []
    if cache is None:
        cache = {}  # the concepts of an entry depend only on its key: a dict for this record alone
    site_concepts = None
    for kind, entries in (("observation", patient.observations), ("condition", patient.conditions),
                          ("procedure", patient.procedures), ("medication", patient.medications)):
        if not entries:
            continue
        by_concept = idx[kind]
        observations = kind == "observation"  # an Observation has no category
        for entry in entries:
            codes = entry.codes
            key = (kind, codes, entry.concept, () if observations else getattr(entry, "category", ()))
            names = cache.get(key)
            if names is None:
                if site_concepts is None:
                    site_concepts = tuple(c for c in vocabulary.concepts if c.site_codes)
                names = Memo.put(cache, key, tuple([c.name for c in concepts_of(vocabulary, entry, site_concepts)]))
            for name in names:
                found = by_concept.get(name)
                if found is None:
                    by_concept[name] = [entry]
                else:
                    found.append(entry)
            if not codes:
                if not entry.concept:
                    unreadable.setdefault(kind, []).append(entry)
            elif not names:
                if display_cache is None:
                    named = display_only_concept(vocabulary, entry)
                else:
                    named = display_cache.get(codes, False)
                    if named is False:
                        named = Memo.put(display_cache, codes, display_only_concept(vocabulary, entry))
                if named is not None:
                    coding, concept = named
                    notes.append(display_only_note(entry, coding, concept))
                    if kind == "observation":
                        unmatched.setdefault(concept.name, []).append(entry)
    for kind, entries_by in idx.items():
        key = _observation_key if kind == "observation" or kind == "unmatched" else newest_first_key
        for entries in entries_by.values():
            if len(entries) > 1:
                entries.sort(key=key, reverse=True)
    return idx, notes


_OLDEST = (dt.date.min, dt.time(0, 0))


def _observation_key(obs):
    """``newest_first_key`` of an observation (it has a date and no onset or start)."""
    d = obs.date
    return _OLDEST if d is None else d.bounds[2]  # d.sort_key()


def display_only_note(entry, coding, concept: Concept) -> str:
    """The record note for an entry whose display names a concept its code is not in: both evaluators write it."""
    return (f"{entry.source}: '{coding.display}' names the concept '{concept.name}', but its "
            f"code {coding} is not in that concept's value set, so it is not counted (add the "
            f"code to the vocabulary if it means the same)")


def display_only_concept(vocabulary: Vocabulary, entry):
    """(coding, concept) of a coded entry whose display names a concept its code is not in.

    Display text never decides a match; but silently dropping a 'Myocardial infarction'
    coded in a local system could make a patient look eligible, so the report shows it,
    and a measurement it may be the newest of is unknown (``measure.measurement``).
    """
    for coding in entry.codes:
        if not coding.display:
            continue
        text = re.sub(r"\s*\([^)]*\)\s*$", "", coding.display)  # SNOMED semantic tags: "(disorder)"
        concept = vocabulary.lookup(text)
        if concept is not None:
            return coding, concept
    return None


def concepts_of(vocabulary: Vocabulary, entry, site_concepts: tuple[Concept, ...] = ()) -> list[Concept]:
    found: list[Concept] = []
    for coding in entry.codes:
        for concept in vocabulary.by_code(coding):
            if concept not in found:
                found.append(concept)
    if site_concepts and isinstance(entry, (Procedure, Condition)):
        # A general code (radiotherapy, mCODE 1217123003 or category 108290001) is a candidate
        # for every concept that takes it with a body site; the event rule reads the site.
        codes = entry.codes + getattr(entry, "category", ())
        found.extend(c for c in site_concepts if c not in found and c.has_site_code(codes))
    if entry.concept:
        # The native format names concepts directly; FHIR entries are matched by code only.
        concept = vocabulary.lookup(entry.concept)
        if concept is not None and concept not in found:
            found.append(concept)
            # A named entry carries its concept's codes, so broader value sets that hold them
            # match too: a record of 'dialysis' is also 'organ support'.
            found.extend(c for c in vocabulary.broader(concept) if c not in found)
    return found


def site_check(concept: Concept, r) -> tuple[bool | None, str] | None:
    """For a record matched through a concept's site codes only: whether its body site is one the
    concept lists (True), elsewhere (False) or not recorded (None), with a phrase; None when the
    record matched by its own code or name and the site does not decide."""
    answer, case = site_answer(concept, r)
    return None if case == "own" else (answer, site_phrase(concept, r, answer, case))


def site_answer(concept: Concept, r) -> tuple[bool | None, str]:
    """``site_check``'s answer and case, without its phrase: case "own" when the record matched by its
    own code or name (the site does not decide), "no site" when it has none, else "site"."""
    if not concept.site_codes or any(concept.matches_coding(c) for c in r.codes) or \
            (r.concept and concept.name.lower() == str(r.concept).lower()):
        return None, "own"
    reading = concept.site_reading(r.codes, [s.codes for s in getattr(r, "body_sites", ())])
    return reading, ("no site" if reading is None else "site")


def site_phrase(concept: Concept, r, answer: bool | None, case: str) -> str:
    """The phrase of ``site_answer``'s answer (not "own")."""
    if case == "no site":
        return "recorded without a body site, so it may or may not be " + concept.name
    named = "; ".join(str(s) for s in getattr(r, "body_sites", ()))
    if answer:
        return f"site: {named}"
    listed = ", ".join((b.display or str(b)).replace(" (body structure)", "") for b in concept.body_sites)
    return f"site: {named}, not one of {listed}"


def sites_text(r) -> str:
    """The body sites and laterality of a record, for the explanation ('' when none)."""
    sites = getattr(r, "body_sites", ())
    return ("; site: " + "; ".join(str(s) for s in sites)) if sites else ""


def newest_first_key(entry):
    d = getattr(entry, "date", None) or getattr(entry, "onset", None) or getattr(entry, "start", None)
    if d is None:
        return (dt.date.min, dt.time(0, 0))
    return d.sort_key()


def period(r) -> tuple[PartialDate | None, PartialDate | None]:
    """When an entry began and ended (conditions: onset and abatement; observations: their date)."""
    if isinstance(r, Condition):
        return r.onset, r.abatement
    if isinstance(r, (Procedure, Medication)):
        return r.start, r.end
    return getattr(r, "date", None), None
