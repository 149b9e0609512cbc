"""The vocabulary of concepts that protocol names resolve to.

Concepts are declared in data, never in Python: the bundled files
(``elig/data/vocabulary*.yaml``) and the files a protocol author declares (named
in a protocol's header or passed with ``--vocabulary``), all in one schema. Each
concept has a canonical name, aliases, codes (LOINC, SNOMED CT, ICD-10-CM,
RxNorm, ATC, ICD-10-PCS), a kind, and for measurements the canonical unit, molar
mass, plausible range and default upper limit of normal. This module reads those
files into immutable objects, checks every entry the same way wherever it comes
from (each problem a diagnostic with the file, line and column), and answers
lookups by name (with did-you-mean) and by code.
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

from elig.diagnostics import Diagnostic, ProtocolError, Span
from elig.terminology.codes import Coding, canonical_system
from elig.terminology.units import UnitSyntaxError, parse_unit, suggest_unit

KINDS = ("measurement", "derived", "demographic", "condition", "procedure", "medication", "test", "fact")
# Kinds whose records are judged closed-world (no matching record = not present).
EVENT_KINDS = ("condition", "procedure", "medication", "test")


class VocabularyError(ProtocolError):
    """A vocabulary file is wrong: carries every problem found, each at its file, line and column."""


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
    molar_mass_source: str | None = None  # the citation of the molar mass (the conversion factor)
    # Units that would convert by dimension but mean something else for this analyte (HbA1c in
    # IFCC mmol/mol is not a tenth of a per cent; mEq/L of a divalent ion is not mmol/L): (unit, reason).
    refused_units: tuple[tuple[str, str], ...] = ()
    # A dimensionless concept (a score, a ratio, a fraction) reads a recorded value only without a
    # unit, in a unit of the same scale as its own ({score}, {INR}), or in one listed here (FiO2: %).
    # Any other dimensionless unit (%, ‰, %%) would silently rescale the value.
    also_units: tuple[str, ...] = ()
    # procedure/condition: codes (of the record's code or category) that count only where the
    # record names one of ``body_sites`` (SNOMED CT body structures, children listed too):
    # radiotherapy (mCODE 1217123003, category 108290001) to the thorax is chest radiotherapy.
    site_codes: tuple[CodeSpec, ...] = ()
    body_sites: tuple[CodeSpec, ...] = ()
    # fact: a rule in the elig language that decides it (childbearing potential); a protocol
    # may replace it with its own 'define NAME: RULE'.
    definition: str | None = None
    # fact: the concepts whose records decide it (pregnancy status, hCG tests, pregnancy
    # diagnoses), read within ``evidence_days`` of the evaluation date. A condition counts
    # while active and, with ``evidence_condition_days``, only when it began within that many
    # days (an open pregnancy record from a year ago is not evidence).
    evidence: tuple[str, ...] = ()
    evidence_days: int | None = None
    evidence_condition_days: int | None = None
    # measurement used as evidence: at or above ``positive_at`` is positive, below
    # ``negative_below`` negative, in between equivocal (quantitative hCG). The cut-offs
    # decide a fact, so ``cutoffs_source`` cites where they come from.
    positive_at: float | None = None
    negative_below: float | None = None
    cutoffs_source: str | None = None
    # Where the concept is declared (its `- name:` line), for messages and go-to-definition.
    origin: Span | None = attrs.field(default=None, eq=False, repr=False)

    @functools.cached_property
    def unit_quantity(self) -> pint.Quantity | None:
        return parse_unit(self.unit) if self.unit else None

    @property
    def all_names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)

    def refused(self, unit: str | None) -> str | None:
        """Why a value or threshold in ``unit`` is not converted for this concept (None: it may be)."""
        if not unit or not self.refused_units:
            return None
        key = _unit_key(unit)
        for refused, reason in self.refused_units:
            if _unit_key(refused) == key:
                return reason
        return None

    def matches_coding(self, coding: Coding) -> bool:
        return any(spec.matches(coding) for spec in self.codes)

    def site_reading(self, codes: Iterable[Coding], sites: Iterable[tuple[Coding, ...]]) -> bool | None:
        """For a record coded with one of ``site_codes``: True when one of its body sites is
        listed, False when every site it names is elsewhere, None when it names no site."""
        sites = [s for s in sites if s]
        if not sites:
            return None
        return any(spec.matches(c) for site in sites for c in site for spec in self.body_sites)

    def has_site_code(self, codes: Iterable[Coding]) -> bool:
        return any(spec.matches(c) for c in codes for spec in self.site_codes)


def _unit_key(unit: str) -> str:
    return "".join(unit.split()).replace("μ", "µ").lower()


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
    # The author-declared files read into this vocabulary (resolved paths), so that a worker
    # process or a second protocol can rebuild it, and a file named twice is read once.
    files: tuple[str, ...] = attrs.field(default=(), kw_only=True)

    @classmethod
    def from_concepts(cls, concepts: Iterable[Concept], files: Iterable[str] = ()) -> "Vocabulary":
        """Index concepts by name and code; raise ``VocabularyError`` when two concepts share a name."""
        concepts = tuple(concepts)
        by_name, clashes = _index_names(concepts)
        for concept in concepts:
            for name in concept.evidence:
                if normalise_name(name) not in by_name:
                    clashes.append(Diagnostic("V303", f"concept {concept.name!r}: evidence {name!r} is not a concept",
                                              span=concept.origin, hint="name concepts of this vocabulary"))
        if clashes:
            raise VocabularyError(clashes)
        by_code: dict[tuple[str, str], list[Concept]] = {}
        by_prefix: dict[tuple[str, str], list[Concept]] = {}
        for concept in concepts:
            for spec in concept.codes:
                target = by_prefix if spec.match == "prefix" else by_code
                target.setdefault((spec.system, spec.code), []).append(concept)
        frozen_codes = {k: tuple(v) for k, v in by_code.items()}
        frozen_prefixes = {k: tuple(v) for k, v in by_prefix.items()}
        files = tuple(files)
        codes_only = cls(concepts, by_name, frozen_codes, frozen_prefixes, files=files)
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
        return cls(concepts, by_name, frozen_codes, frozen_prefixes, broader, files=files)

    def extended(self, paths: Iterable[str | Path]) -> "Vocabulary":
        """This vocabulary with the concepts of more vocabulary files (a file already read is not read again).

        Raises ``VocabularyError`` with every problem of every file, and every name that a
        declared concept shares with another concept (naming both).
        """
        concepts = list(self.concepts)
        files = list(self.files)
        problems: list[Diagnostic] = []
        sources: dict[str, str] = {}
        for raw in paths:
            key = str(Path(raw).resolve())
            if key in files:
                continue
            files.append(key)
            found, diagnostics, source = read_vocabulary_file(raw)
            sources[str(raw)] = source
            concepts.extend(found)
            problems.extend(diagnostics)
        if problems:
            raise VocabularyError(problems, sources)
        try:
            return Vocabulary.from_concepts(concepts, files)
        except VocabularyError as exc:
            raise VocabularyError(exc.diagnostics, sources) from None

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



def _index_names(concepts: tuple[Concept, ...]) -> tuple[dict[str, Concept], list[Diagnostic]]:
    """Every name and alias → its concept; a name two concepts share is a problem naming both."""
    by_name: dict[str, Concept] = {}
    clashes: list[Diagnostic] = []
    for concept in concepts:
        for name in concept.all_names:
            key = normalise_name(name)
            other = by_name.get(key)
            if other is not None and other is not concept:
                where = f" (declared at {_shown(other.origin)})" if other.origin else ""
                if other.name == concept.name == name:
                    clashes.append(Diagnostic(
                        "V310", f"concept {name!r} is declared twice{where}", span=concept.origin,
                        hint="keep one declaration; a concept the bundled vocabulary already has needs no "
                             "declaring (docs/vocabulary.md lists them)"))
                    continue
                clashes.append(Diagnostic(
                    "V310", f"name {name!r} of concept {concept.name!r} is already a name of concept "
                            f"{other.name!r}{where}", span=concept.origin,
                    hint=f"a name means one concept: remove {name!r} from one of the two, or, if they are the "
                         f"same thing, use {other.name!r} instead of declaring it again"))
                continue
            by_name[key] = concept
    return by_name, clashes


def _shown(span: Span) -> str:
    """A declaration's place as a user reads it: bundled files as elig/data/..., others as given."""
    path = Path(span.file)
    if path.parent.name == "data" and path.parent.parent.name == "elig":
        return f"elig/data/{path.name}:{span.line}:{span.column}"
    return str(span)


# ---------------------------------------------------------------- reading files
def bundled_files() -> tuple[Path, ...]:
    """The vocabulary files shipped with elig: vocabulary.yaml, then vocabulary-<domain>.yaml."""
    data = Path(str(importlib.resources.files("elig").joinpath("data")))
    return (data / "vocabulary.yaml", *sorted(data.glob("vocabulary-*.yaml")))


def load_vocabulary(*paths: str | Path) -> Vocabulary:
    """Read and check vocabulary files (the bundled ones by default) into one vocabulary.

    Raises ``VocabularyError`` listing every problem, each at its file, line and column.
    """
    concepts: list[Concept] = []
    problems: list[Diagnostic] = []
    sources: dict[str, str] = {}
    for path in paths or bundled_files():
        found, diagnostics, source = read_vocabulary_file(path)
        concepts.extend(found)
        problems.extend(diagnostics)
        sources[str(path)] = source
    if problems:
        raise VocabularyError(problems, sources)
    try:
        return Vocabulary.from_concepts(concepts)
    except VocabularyError as exc:
        raise VocabularyError(exc.diagnostics, sources) from None


@functools.cache
def default_vocabulary() -> Vocabulary:
    """The bundled vocabulary, read once (immutable, so sharing it is safe)."""
    return load_vocabulary()


class _Map(dict):
    """A YAML mapping that remembers where it and each of its values were written."""

    span: Span | None = None
    spans: dict
    key_spans: dict


class _Seq(list):
    span: Span | None = None
    spans: list


def _loader(file: str):
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    def span(node) -> Span:
        s, e = node.start_mark, node.end_mark
        return Span(file, s.line + 1, s.column + 1, e.line + 1, e.column + 1)

    class Loader(base):  # type: ignore[misc, valid-type]
        duplicates: list

    def mapping(loader, node):
        loader.flatten_mapping(node)
        out = _Map()
        out.span, out.spans, out.key_spans = span(node), {}, {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            try:
                hash(key)
            except TypeError:
                key = str(key)
            if key in out:
                loader.duplicates.append((key, span(key_node)))
            out[key] = loader.construct_object(value_node, deep=True)
            out.spans[key] = span(value_node)
            out.key_spans[key] = span(key_node)
        return out

    def sequence(loader, node):
        out = _Seq(loader.construct_object(child, deep=True) for child in node.value)
        out.span, out.spans = span(node), [span(child) for child in node.value]
        return out

    Loader.add_constructor("tag:yaml.org,2002:map", mapping)
    Loader.add_constructor("tag:yaml.org,2002:seq", sequence)
    return Loader


def read_vocabulary_file(path: str | Path) -> tuple[list[Concept], list[Diagnostic], str]:
    """The concepts of one vocabulary file, the problems found in it, and its text."""
    file = str(path)
    try:
        source = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return [], [Diagnostic("V301", f"no such vocabulary file {file!r}", location=file,
                               hint="check the path; a vocabulary named in a protocol is relative to the protocol file")], ""
    except (OSError, UnicodeDecodeError) as exc:
        return [], [Diagnostic("V301", f"cannot read vocabulary file {file!r}: {exc}", location=file,
                               hint="a vocabulary file is UTF-8 YAML text")], ""
    Loader = _loader(file)
    loader = Loader(source)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = Span(file, mark.line + 1, mark.column + 1, mark.line + 1, mark.column + 2) if mark else None
        return [], [Diagnostic("V301", f"not valid YAML: {getattr(exc, 'problem', None) or exc}", span=at,
                               location=None if at else file,
                               hint="check the indentation and quoting near here (quote values holding ': ' or '#')")], source
    finally:
        loader.dispose()
    problems = [Diagnostic("V302", f"field {key!r} is given twice", span=at, hint="keep one of them")
                for key, at in loader.duplicates]
    whole = Span(file, 1, 1, 1, 2)
    if not isinstance(data, dict) or not isinstance(data.get("concepts"), list):
        problems.append(Diagnostic("V301", "a vocabulary file is a mapping with a list under 'concepts:'",
                                   span=getattr(data, "span", None) or whole,
                                   hint="start the file with 'concepts:' and write one '- name: ...' entry per concept "
                                        "(see docs/vocabulary.md)"))
        return [], problems, source
    for key in data:
        if key != "concepts":
            problems.append(Diagnostic("V302", f"unknown top-level field {key!r}", span=data.key_spans[key],
                                       hint="a vocabulary file holds only 'concepts:'"))
    entries = data["concepts"]
    concepts = []
    for i, entry in enumerate(entries):
        at = entries.spans[i] if isinstance(entries, _Seq) else whole
        if not isinstance(entry, dict):
            problems.append(Diagnostic("V303", "a concept is a mapping with at least 'name' and 'kind'", span=at,
                                       hint="write '- name: ...' and 'kind: ...' on the lines below it"))
            continue
        checker = _EntryChecker(entry, at)
        concept = checker.concept()
        problems.extend(checker.problems)
        if concept is not None:
            concepts.append(concept)
    return concepts, problems, source


FIELDS = ("name", "kind", "aliases", "codes", "unit", "molar_mass", "molar_mass_source", "plausible", "uln",
          "unitless", "also_units", "methods", "field", "description", "qualitative", "acute", "not_for_sex",
          "site_codes", "body_sites", "definition", "evidence", "evidence_days", "evidence_condition_days",
          "positive_at", "negative_below", "cutoffs_source", "refused_units")
_CODE_FIELDS = ("system", "code", "display", "match")
_ULN_FIELDS = ("value", "male", "female", "unit", "source")
MEASURED_KINDS = ("measurement", "derived", "demographic")


class _EntryChecker:
    """Checks one concept entry and builds it; every problem is kept, with where it is."""

    def __init__(self, entry: _Map, at: Span):
        self.e = entry
        self.at = at
        self.problems: list[Diagnostic] = []
        self.name = str(entry.get("name") or "?")

    def where(self, key: str, sub: dict | None = None, subkey: str | None = None) -> Span:
        if sub is not None and subkey is not None and isinstance(sub, _Map) and subkey in sub.spans:
            return sub.spans[subkey]
        if isinstance(self.e, _Map) and key in self.e.spans:
            return self.e.spans[key]
        return self.at

    def problem(self, code: str, message: str, span: Span, hint: str) -> None:
        self.problems.append(Diagnostic(code, f"concept {self.name!r}: {message}", span=span, hint=hint))

    def unknown_fields(self, mapping: dict, allowed: tuple[str, ...], what: str) -> None:
        for key in mapping:
            if key in allowed:
                continue
            close = difflib.get_close_matches(str(key), allowed, n=1)
            span = mapping.key_spans.get(key, self.at) if isinstance(mapping, _Map) else self.at
            self.problem("V302", f"unknown field {key!r} in {what}", span,
                         f"did you mean {close[0]!r}?" if close else f"the fields are: {', '.join(allowed)}")

    def unit(self, key: str, text, sub=None, subkey=None) -> pint.Quantity | None:
        try:
            return parse_unit(str(text))
        except UnitSyntaxError:
            near = suggest_unit(str(text))
            self.problem("V306", f"cannot read unit {str(text)!r}", self.where(key, sub, subkey),
                         (f"did you mean {near!r}? " if near else "")
                         + "write the unit as a clinician would (mg/dL, µmol/L, 10^9/L, mmHg, %) or in UCUM; "
                         "use \"1\" for a score or a ratio")
            return None

    def number(self, key: str, value, sub=None, subkey=None) -> float | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problem("V307", f"{subkey or key} must be a number, not {value!r}", self.where(key, sub, subkey),
                         "write a plain number such as 1.2")
            return None
        return float(value)

    def concept(self) -> Concept | None:
        e = self.e
        self.unknown_fields(e, FIELDS, "a concept")
        name = e.get("name")
        if not isinstance(name, str) or not name.strip():
            self.problem("V303", "a concept needs a name", self.where("name"),
                         "write 'name: ...', the canonical name protocols use")
            return None
        kind = e.get("kind")
        if kind not in KINDS:
            self.problem("V303", f"kind must be one of {', '.join(KINDS)}, not {kind!r}", self.where("kind"),
                         "a lab value or score is 'measurement', a disease 'condition', a drug class 'medication'")
            return None
        aliases = e.get("aliases", []) or []
        if not isinstance(aliases, list) or not all(isinstance(a, (str, int, float)) for a in aliases):
            self.problem("V303", "aliases must be a list of names", self.where("aliases"),
                         "write aliases: [ANC, neutrophils]")
            aliases = []
        codes = self.codes(kind)
        site_codes, body_sites = self.codes(kind, "site_codes"), self.codes(kind, "body_sites")
        if bool(site_codes) != bool(body_sites):
            self.problem("V304", "site_codes and body_sites go together", self.at,
                         "list the general codes under site_codes and the body structures under body_sites")
        evidence = e.get("evidence", []) or []
        if not isinstance(evidence, list) or not all(isinstance(x, str) for x in evidence):
            self.problem("V303", "evidence must be a list of concept names", self.where("evidence"),
                         "write evidence: [pregnancy status, pregnancy test]")
            evidence = []
        numbers = {}
        for key in ("evidence_days", "evidence_condition_days", "positive_at", "negative_below"):
            if e.get(key) is not None:
                numbers[key] = self.number(key, e.get(key))
        self.cutoffs(kind, numbers)
        definition = e.get("definition")
        if definition is not None and (kind != "fact" or not isinstance(definition, str)):
            self.problem("V303", "a definition is the text of a rule, on a fact concept", self.where("definition"),
                         "write definition: female and age 12 to 55 years")
        unit, unit_q = e.get("unit"), None
        if unit is not None:
            unit_q = self.unit("unit", unit)
        elif kind in MEASURED_KINDS:
            self.problem("V306", "a measured concept needs its canonical unit", self.at,
                         "add 'unit: ...' (for example mg/dL, 10^9/L, or \"1\" for a score)")
        plausible = self.plausible(kind)
        molar_mass = self.molar_mass(unit_q)
        uln = self.uln(unit, unit_q, plausible, molar_mass)
        unitless = e.get("unitless")
        if unitless not in (None, "canonical"):
            self.problem("V303", f"unitless must be 'canonical', not {unitless!r}", self.where("unitless"),
                         "leave it out unless a value recorded without a unit is read in the canonical unit")
        elif unitless and unit_q is not None and not unit_q.dimensionless:
            self.problem("V306", "only a dimensionless concept (a score, a ratio) reads values without a unit",
                         self.where("unitless"), "remove 'unitless: canonical'")
        also_units = e.get("also_units", []) or []
        if not isinstance(also_units, list) or not all(isinstance(u, str) for u in also_units):
            self.problem("V303", "also_units must be a list of units", self.where("also_units"),
                         'write also_units: ["%"]')
            also_units = []
        for u in also_units:
            self.unit("also_units", u)
        methods = e.get("methods", []) or []
        if kind == "derived":
            from elig.terminology.derivations import CATALOGUE

            if not methods:
                self.problem("V311", "a derived concept names its derivation methods", self.at,
                             f"add methods: [...], from: {', '.join(CATALOGUE.by_key)}")
            for m in methods:
                if m not in CATALOGUE.by_key:
                    close = difflib.get_close_matches(str(m), list(CATALOGUE.by_key), n=1)
                    self.problem("V311", f"unknown derivation method {m!r}", self.where("methods"),
                                 f"did you mean {close[0]!r}?" if close else
                                 f"the methods are: {', '.join(CATALOGUE.by_key)}")
        refused = self.refused_units()
        if kind in EVENT_KINDS and not codes:
            self.problem("V304", f"a {kind} concept needs codes: they are its value set", self.at,
                         "add codes: [{system: ICD-10-CM, code: ...}] (or SNOMED, LOINC, RxNorm, ATC)")
        if self.problems:
            return None
        return Concept(
            name=name.strip(), kind=kind, aliases=tuple(str(a) for a in aliases), codes=tuple(codes),
            unit=str(unit) if unit is not None else None, molar_mass=molar_mass, plausible=plausible, uln=uln,
            unitless=unitless, methods=tuple(str(m) for m in methods), field=e.get("field"),
            description=e.get("description"), qualitative=bool(e.get("qualitative", False)),
            acute=bool(e.get("acute", False)), not_for_sex=e.get("not_for_sex"),
            molar_mass_source=e.get("molar_mass_source"), refused_units=refused, origin=self.at, also_units=tuple(also_units),
            site_codes=tuple(site_codes), body_sites=tuple(body_sites),
            definition=" ".join(definition.split()) if isinstance(definition, str) else None,
            evidence=tuple(evidence),
            evidence_days=int(numbers["evidence_days"]) if numbers.get("evidence_days") is not None else None,
            evidence_condition_days=(int(numbers["evidence_condition_days"])
                                     if numbers.get("evidence_condition_days") is not None else None),
            positive_at=numbers.get("positive_at"), negative_below=numbers.get("negative_below"),
            cutoffs_source=str(e["cutoffs_source"]) if e.get("cutoffs_source") else None,
        )

    def cutoffs(self, kind: str, numbers: dict) -> None:
        """Cut-offs decide a fact (pregnant from a quantitative hCG), so they are ordered and cited."""
        given = [k for k in ("positive_at", "negative_below") if self.e.get(k) is not None]
        if not given:
            if self.e.get("cutoffs_source") is not None:
                self.problem("V312", "cutoffs_source cites cut-offs, but there are none", self.where("cutoffs_source"),
                             "add positive_at: and negative_below:, or remove cutoffs_source")
            return
        if kind != "measurement":
            self.problem("V312", f"cut-offs belong to a measurement, not a {kind}", self.where(given[0]),
                         "move positive_at and negative_below to the quantitative concept")
            return
        pos, neg = numbers.get("positive_at"), numbers.get("negative_below")
        if pos is not None and neg is not None and neg > pos:
            self.problem("V312", f"negative_below ({neg:g}) is above positive_at ({pos:g})",
                         self.where("negative_below"),
                         "a result is positive at or above positive_at and negative below negative_below; "
                         "in between it is equivocal")
        if not self.e.get("cutoffs_source"):
            self.problem("V312", "cut-offs decide a fact and need their source", self.where(given[0]),
                         "add cutoffs_source: \"...\" citing the laboratory or guideline the figures come from")

    def refused_units(self) -> tuple[tuple[str, str], ...]:
        raw = self.e.get("refused_units") or []
        out = []
        if not isinstance(raw, list):
            raw = [raw]
        for item in raw:
            if not isinstance(item, dict) or not item.get("unit") or not item.get("reason"):
                self.problem("V306", "each refused unit needs a unit and the reason it is refused",
                             self.where("refused_units"), "write refused_units: [{unit: mmol/mol, reason: \"...\"}]")
                continue
            self.unknown_fields(item, ("unit", "reason"), "a refused unit")
            out.append((str(item["unit"]), str(item["reason"])))
        return tuple(out)

    def codes(self, kind: str, key: str = "codes") -> list[CodeSpec]:
        from elig.terminology.codes import KNOWN_SYSTEMS, code_problem, short_system

        raw = self.e.get(key, []) or []
        if not isinstance(raw, list):
            self.problem("V304", f"{key} must be a list", self.where(key),
                         "write codes: [{system: LOINC, code: 2160-0, display: ...}]")
            return []
        out = []
        spans = raw.spans if isinstance(raw, _Seq) else [self.where(key)] * len(raw)
        for c, at in zip(raw, spans):
            if not isinstance(c, dict) or "system" not in c or "code" not in c:
                self.problem("V304", "each code needs a system and a code", at,
                             "write {system: LOINC, code: 2160-0, display: ...}")
                continue
            self.unknown_fields(c, _CODE_FIELDS, "a code")
            system = canonical_system(str(c["system"]))
            if system not in KNOWN_SYSTEMS:
                names = sorted({short_system(s) for s in KNOWN_SYSTEMS})
                close = difflib.get_close_matches(str(c["system"]), names, n=1)
                self.problem("V304", f"unknown code system {str(c['system'])!r}", c.spans.get("system", at)
                             if isinstance(c, _Map) else at,
                             (f"did you mean {close[0]!r}? " if close else "") + f"known systems: {', '.join(names)}")
                continue
            code = str(c["code"]).strip()
            match = c.get("match", "exact")
            if code.endswith("*"):
                code, match = code[:-1], "prefix"
            if match not in ("exact", "prefix"):
                self.problem("V305", f"match must be 'exact' or 'prefix', not {match!r}",
                             c.spans.get("match", at) if isinstance(c, _Map) else at,
                             "a trailing * on the code also means prefix")
                continue
            why = code_problem(system, code, prefix=match == "prefix")
            if why:
                self.problem("V305", why, c.spans.get("code", at) if isinstance(c, _Map) else at,
                             "copy the code from the code system's own browser (loinc.org, the SNOMED CT browser, "
                             "the ICD-10-CM tabular list)")
                continue
            display = c.get("display")
            out.append(CodeSpec(system, code, str(display) if display is not None else None, match))
        return out

    def plausible(self, kind: str) -> tuple[float, float] | None:
        raw = self.e.get("plausible")
        if raw is None:
            if kind in ("measurement", "derived"):
                self.problem("V307", "a measured concept needs a plausible range", self.at,
                             "add plausible: [low, high] in the canonical unit: values outside it are refused "
                             "as recording errors")
            return None
        if not isinstance(raw, list) or len(raw) != 2:
            self.problem("V307", f"plausible must be [low, high], not {raw!r}", self.where("plausible"),
                         "write plausible: [0, 50]")
            return None
        low, high = (self.number("plausible", x) for x in raw)
        if low is None or high is None:
            return None
        if not low < high:
            self.problem("V307", f"plausible range [{low:g}, {high:g}] is empty", self.where("plausible"),
                         "the low end comes first and must be below the high end")
            return None
        return (low, high)

    def molar_mass(self, unit_q) -> float | None:
        raw = self.e.get("molar_mass")
        molar = unit_q is not None and "[substance]" in unit_q.dimensionality
        uln = self.e.get("uln")
        if isinstance(uln, dict) and uln.get("unit") is not None:
            try:
                molar = molar or "[substance]" in parse_unit(str(uln["unit"])).dimensionality
            except UnitSyntaxError:
                pass
        if raw is None:
            if molar:
                self.problem("V309", "a concept in molar units needs its molar mass", self.at,
                             "add molar_mass: (g/mol) and molar_mass_source: (where the figure comes from), so "
                             "that mg/dL and mmol/L values can be compared")
            return None
        value = self.number("molar_mass", raw)
        if value is None:
            return None
        if value <= 0:
            self.problem("V309", f"molar mass must be positive, not {value:g}", self.where("molar_mass"),
                         "write the molar mass in g/mol")
            return None
        if not self.e.get("molar_mass_source"):
            self.problem("V309", "a molar mass is a conversion factor and needs its source", self.where("molar_mass"),
                         "add molar_mass_source: \"...\" citing where the figure comes from (e.g. PubChem CID ...)")
        return value

    def uln(self, unit, unit_q, plausible, molar_mass) -> UlnDefault | None:
        u = self.e.get("uln")
        if not u:
            return None
        if not isinstance(u, dict):
            self.problem("V308", "uln must be a mapping", self.where("uln"),
                         "write uln: {value: 40, unit: U/L, source: \"...\"}")
            return None
        self.unknown_fields(u, _ULN_FIELDS, "a default ULN")
        if all(u.get(k) is None for k in ("value", "male", "female")):
            self.problem("V308", "a default ULN needs a value (or male and female values)", self.where("uln"),
                         "write uln: {value: 40, unit: U/L} or uln: {male: 1.3, female: 1.1, unit: mg/dL}")
            return None
        uln_unit = u.get("unit", unit)
        uln_q = self.unit("uln", uln_unit, u, "unit") if uln_unit is not None else None
        values = {k: self.number("uln", u[k], u, k) for k in ("value", "male", "female") if u.get(k) is not None}
        if uln_q is not None and unit_q is not None:
            from elig.terminology.units import conversion_factor_q

            try:
                factor = conversion_factor_q(uln_q, unit_q, molar_mass)
            except Exception:
                self.problem("V308", f"the ULN unit {str(uln_unit)!r} does not measure what {str(unit)!r} measures",
                             self.where("uln", u, "unit"), f"give the ULN in {unit} or a unit of the same dimension")
                factor = None
            if factor is not None and plausible is not None:
                for k, v in values.items():
                    if v is not None and not plausible[0] <= v * factor <= plausible[1]:
                        self.problem("V308", f"default ULN {v:g} {uln_unit} is outside the plausible range "
                                             f"[{plausible[0]:g}, {plausible[1]:g}] {unit}",
                                     self.where("uln", u, k), "check the value and its unit")
        return UlnDefault(unit=str(uln_unit), value=values.get("value"), male=values.get("male"),
                          female=values.get("female"), source=u.get("source", "elig vocabulary default"))
