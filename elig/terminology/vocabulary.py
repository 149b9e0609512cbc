"""The vocabulary of concepts that protocol names resolve to.

Concepts are declared in data (``elig/data/vocabulary.yaml``), never in Python:
each has a canonical name, aliases, codes (LOINC, SNOMED CT, ICD-10-CM, RxNorm,
ATC), a kind, and for measurements the canonical unit, molar mass, plausible
range and default upper limit of normal. This module reads that file into
immutable objects and answers lookups by name (with did-you-mean) and by code.
"""

from __future__ import annotations

import difflib
import functools
import importlib.resources
from pathlib import Path
from typing import Iterable

import attrs
import pint
import yaml

from elig.terminology.codes import Coding, canonical_system
from elig.terminology.units import UnitSyntaxError, parse_unit

KINDS = ("measurement", "derived", "demographic", "condition", "procedure", "medication", "test", "fact")
# Kinds whose records are judged closed-world (no matching record = not present).
EVENT_KINDS = ("condition", "procedure", "medication", "test")


class VocabularyError(ValueError):
    """The vocabulary file itself is wrong (a developer error, reported with the concept name)."""


@attrs.frozen
class CodeSpec:
    system: str
    code: str
    display: str | None = None
    match: str = "exact"  # "exact" | "prefix" (ICD-10 chapters, ATC classes)

    def matches(self, coding: Coding) -> bool:
        if coding.system != self.system:
            return False
        if self.match == "prefix":
            return coding.code.startswith(self.code)
        return coding.code == self.code

    def __str__(self) -> str:
        star = "*" if self.match == "prefix" else ""
        return f"{Coding(self.system, self.code)}{star}"


@attrs.frozen
class UlnDefault:
    """The upper limit of normal used when an observation carries no reference range."""

    unit: str
    value: float | None = None
    male: float | None = None
    female: float | None = None
    source: str = "elig vocabulary default"

    def for_sex(self, sex: str | None) -> float | None:
        if sex == "male" and self.male is not None:
            return self.male
        if sex == "female" and self.female is not None:
            return self.female
        if self.male is not None and self.female is not None and self.male != self.female and self.value is None:
            return None  # sex-specific and sex unknown: no default
        return self.value if self.value is not None else (self.male if self.male == self.female else None)


@attrs.frozen
class Concept:
    name: str
    kind: str
    aliases: tuple[str, ...] = ()
    codes: tuple[CodeSpec, ...] = ()
    unit: str | None = None  # canonical unit, as written in the vocabulary
    molar_mass: float | None = None  # g/mol, where mass and molar units meet
    plausible: tuple[float, float] | None = None  # in the canonical unit
    uln: UlnDefault | None = None
    unitless: str | None = None  # how to read a value recorded without a unit: "canonical" or None
    methods: tuple[str, ...] = ()  # derived: derivation methods, the first is the default
    field: str | None = None  # fact: the Patient attribute
    description: str | None = None
    qualitative: bool = False  # test: judged by a positive/negative result
    # condition: an acute event (infarction, stroke): "within 6 months" means it happened in
    # the window, however its record's status was left.
    acute: bool = False
    # fact: the sex for which the fact cannot hold (pregnancy, lactation: male), so an
    # unrecorded value is "no" rather than unknown for that sex.
    not_for_sex: str | None = None
    # procedure/condition: codes (of the record's code or category) that count only where the
    # record names one of ``body_sites`` (SNOMED CT body structures, children listed too):
    # radiotherapy (mCODE 1217123003, category 108290001) to the thorax is chest radiotherapy.
    site_codes: tuple[CodeSpec, ...] = ()
    body_sites: tuple[CodeSpec, ...] = ()
    # fact: a rule in the elig language that decides it (childbearing potential); a protocol
    # may replace it with its own 'define NAME: RULE'.
    definition: str | None = None
    # fact: the concepts whose records decide it (pregnancy status, hCG tests, pregnancy
    # diagnoses), read within ``evidence_days`` of the evaluation date.
    # A condition counts while active and, with ``evidence_condition_days``, only when it
    # began within that many days (an open pregnancy record from a year ago is not evidence).
    evidence: tuple[str, ...] = ()
    evidence_days: int | None = None
    evidence_condition_days: int | None = None
    # measurement used as evidence: at or above ``positive_at`` is positive, below
    # ``negative_below`` negative, in between equivocal (quantitative hCG).
    positive_at: float | None = None
    negative_below: float | None = None

    @functools.cached_property
    def unit_quantity(self) -> pint.Quantity | None:
        return parse_unit(self.unit) if self.unit else None

    @property
    def all_names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def matches_coding(self, coding: Coding) -> bool:
        return any(spec.matches(coding) for spec in self.codes)

    def site_reading(self, codes: Iterable[Coding], sites: Iterable[tuple[Coding, ...]]) -> bool | None:
        """For a record coded with one of ``site_codes``: True when one of its body sites is
        listed, False when every site it names is elsewhere, None when it names no site (or
        when the record's codes are not site codes at all, see ``has_site_code``)."""
        sites = [s for s in sites if s]
        if not sites:
            return None
        return any(spec.matches(c) for site in sites for c in site for spec in self.body_sites)

    def has_site_code(self, codes: Iterable[Coding]) -> bool:
        return any(spec.matches(c) for c in codes for spec in self.site_codes)


def normalise_name(text: str) -> str:
    """Names match ignoring case, spacing, hyphen-vs-space and the two micro signs."""
    t = text.replace("μ", "µ").replace("`", "").lower()
    t = t.replace("-", " ").replace("_", " ")
    return " ".join(t.split())


@attrs.frozen
class Vocabulary:
    concepts: tuple[Concept, ...]
    _by_name: dict = attrs.field(repr=False, eq=False)
    _by_code: dict = attrs.field(repr=False, eq=False, factory=dict)
    _by_prefix: dict = attrs.field(repr=False, eq=False, factory=dict)
    _broader: dict = attrs.field(repr=False, eq=False, factory=dict)

    @classmethod
    def from_concepts(cls, concepts: Iterable[Concept]) -> "Vocabulary":
        concepts = tuple(concepts)
        by_name: dict[str, Concept] = {}
        for concept in concepts:
            for name in concept.all_names:
                key = normalise_name(name)
                other = by_name.get(key)
                if other is not None and other is not concept:
                    raise VocabularyError(f"name {name!r} is used by both {other.name!r} and {concept.name!r}")
                by_name[key] = concept
        by_code: dict[tuple[str, str], list[Concept]] = {}
        by_prefix: dict[tuple[str, str], list[Concept]] = {}
        for concept in concepts:
            for spec in concept.codes:
                target = by_prefix if spec.match == "prefix" else by_code
                target.setdefault((spec.system, spec.code), []).append(concept)
        frozen_codes = {k: tuple(v) for k, v in by_code.items()}
        frozen_prefixes = {k: tuple(v) for k, v in by_prefix.items()}
        codes_only = cls(concepts, by_name, frozen_codes, frozen_prefixes)
        # For each concept, the other concepts whose value sets hold one of its codes
        # (dialysis → organ support), derived once here rather than for every record.
        broader = {}
        for concept in concepts:
            found: list[Concept] = []
            for spec in concept.codes:
                if spec.match == "exact":
                    for other in codes_only.by_code(Coding(spec.system, spec.code)):
                        if other is not concept and other not in found:
                            found.append(other)
            broader[concept.name] = tuple(found)
        return cls(concepts, by_name, frozen_codes, frozen_prefixes, broader)

    def broader(self, concept: Concept) -> tuple[Concept, ...]:
        """Concepts whose value sets hold one of this concept's exact codes."""
        return self._broader.get(concept.name, ())

    def lookup(self, name: str) -> Concept | None:
        return self._by_name.get(normalise_name(name))

    def suggest(self, name: str, kinds: tuple[str, ...] | None = None) -> str | None:
        """The closest known name, for did-you-mean."""
        candidates = {}
        for concept in self.concepts:
            if kinds and concept.kind not in kinds:
                continue
            for n in concept.all_names:
                candidates[normalise_name(n)] = n
        match = difflib.get_close_matches(normalise_name(name), list(candidates), n=1, cutoff=0.75)
        return candidates[match[0]] if match else None

    def by_code(self, coding: Coding) -> tuple[Concept, ...]:
        """Concepts whose value set holds this code: exact codes, then every prefix of the code
        (ICD-10 categories, ATC classes), each a dictionary look-up, so the cost does not grow
        with the size of the vocabulary."""
        found = self._by_code.get((coding.system, coding.code), ())
        code = coding.code
        for end in range(len(code), 0, -1):
            for concept in self._by_prefix.get((coding.system, code[:end]), ()):
                if concept not in found:
                    found = found + (concept,)
        return found


# ---------------------------------------------------------------- loading
def _data_path() -> Path:
    return Path(str(importlib.resources.files("elig").joinpath("data/vocabulary.yaml")))


def load_vocabulary(path: str | Path | None = None) -> Vocabulary:
    """Read and validate a vocabulary file (the bundled one by default)."""
    p = Path(path) if path else _data_path()
    data = yaml.safe_load(p.read_text(encoding="utf-8"))
    concepts = [_concept(entry, p) for entry in data.get("concepts", [])]
    vocabulary = Vocabulary.from_concepts(concepts)
    for concept in concepts:
        for name in concept.evidence:
            if vocabulary.lookup(name) is None:
                raise VocabularyError(f"{p}: concept {concept.name!r}: evidence {name!r} is not a concept")
    return vocabulary


@functools.cache
def default_vocabulary() -> Vocabulary:
    """The bundled vocabulary, read once (immutable, so sharing it is safe)."""
    return load_vocabulary()


def _concept(e: dict, path: Path) -> Concept:
    name = e.get("name")
    where = f"{path}: concept {name!r}"
    if not name:
        raise VocabularyError(f"{path}: a concept without a name: {e!r}")
    kind = e.get("kind")
    if kind not in KINDS:
        raise VocabularyError(f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    codes = [_code_spec(c) for c in e.get("codes", []) or []]
    unit = e.get("unit")
    if unit is not None:
        try:
            parse_unit(str(unit))
        except UnitSyntaxError as exc:
            raise VocabularyError(f"{where}: {exc}") from None
    uln = None
    if e.get("uln"):
        u = e["uln"]
        uln = UlnDefault(unit=str(u.get("unit", unit)), value=u.get("value"), male=u.get("male"),
                         female=u.get("female"), source=u.get("source", "elig vocabulary default"))
    plausible = tuple(float(x) for x in e["plausible"]) if e.get("plausible") else None
    return Concept(
        name=str(name), kind=kind, aliases=tuple(str(a) for a in e.get("aliases", []) or []),
        codes=tuple(codes), unit=str(unit) if unit is not None else None, molar_mass=e.get("molar_mass"),
        plausible=plausible, uln=uln, unitless=e.get("unitless"), methods=tuple(e.get("methods", []) or []),
        field=e.get("field"), description=e.get("description"), qualitative=bool(e.get("qualitative", False)),
        acute=bool(e.get("acute", False)), not_for_sex=e.get("not_for_sex"),
        site_codes=tuple(_code_spec(c) for c in e.get("site_codes", []) or []),
        body_sites=tuple(_code_spec(c) for c in e.get("body_sites", []) or []),
        definition=e.get("definition"), evidence=tuple(e.get("evidence", []) or []),
        evidence_days=e.get("evidence_days"), evidence_condition_days=e.get("evidence_condition_days"),
        positive_at=e.get("positive_at"), negative_below=e.get("negative_below"),
    )


def _code_spec(c: dict) -> CodeSpec:
    code, match = str(c["code"]), c.get("match", "exact")
    if code.endswith("*"):
        code, match = code[:-1], "prefix"
    return CodeSpec(canonical_system(str(c["system"])), code, c.get("display"), match)
