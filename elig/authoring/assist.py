"""Editor assistance for protocol authors: what the language server and the workbench show.

One :class:`Analysis` of a protocol text answers an editor's questions: its
diagnostics (the same :func:`elig.engine.diagnose.diagnose_text` that ``elig lint``
calls), hover (a concept's vocabulary entry, a derived value's formulas, a
threshold in canonical units from the checker's own plan), completion, where a
concept is declared, the criteria as an outline, the formatted text
(``elig fmt``'s formatter) and quick fixes. Nothing here checks or evaluates on
its own: it reads the tree, the plan and the vocabulary that the CLI uses.

Positions are those of :class:`elig.diagnostics.Span`: 1-based lines and
columns in code points; the language server converts them.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import attrs
import pint

from elig.diagnostics import Diagnostic, ProtocolError, Span
from elig.engine import checker, plan as p
from elig.engine.diagnose import diagnose_text
from elig.language import tree as t
from elig.language.formatter import format_text
from elig.language.lint import natural_key
from elig.language.parser import get_parser, is_plain_name
from elig.terminology.codes import short_system
from elig.terminology.derivations import CATALOGUE
from elig.terminology.units import conversion_factor_q, format_number, parse_unit
from elig.terminology.vocabulary import Concept, Vocabulary, bundled_files, default_vocabulary, normalise_name

# Units offered after a number, kept when they convert to the concept's canonical unit.
UNIT_CHOICES = (
    "mg/dL", "mg/L", "g/L", "g/dL", "µg/L", "ng/mL", "µmol/L", "mmol/L", "nmol/L",
    "x 10^9/L", "x 10^12/L", "x 10^6/L", "/mm3", "/µL",
    "mL/min", "mL/min/1.73 m2", "L/min", "mmHg", "kPa", "%", "U/L", "IU/L",
    "s", "ms", "kg", "g", "cm", "m", "kg/m2", "m2", "breaths/min", "beats/min", "bpm",
)
DURATION_UNITS = ("days", "weeks", "months", "years", "hours")
KINDS_WITH_UNITS = ("measurement", "derived", "demographic")


# ---------------------------------------------------------------- the language's words
@functools.cache
def keywords() -> tuple[str, ...]:
    """The keywords of the language, read from the grammar's terminals (never a hand-kept list).

    A keyword terminal is a case-insensitive literal (``"within"i``), an alternation of
    words (``SECTION: "inclusion"i | "exclusion"i``), or one of the words the WORD
    terminal refuses; comparators written in words (``at least``) come from COMPARATOR.
    """
    found: list[str] = []

    def add(word: str) -> None:
        word = " ".join(word.split())
        if word and word not in found:
            found.append(word)

    for term in get_parser().terminals:
        value = term.pattern.value
        if type(term.pattern).__name__ == "PatternStr":
            if value.isalpha():
                add(value.lower())
            continue
        if term.name == "WORD":
            refused = re.match(r"\(\?!\(\?i:([A-Za-z|]+)\)", value)
            for w in (refused.group(1).split("|") if refused else ()):
                add(w.lower())
            continue
        for group in re.findall(r"\(\?i:([^()]*)\)", value):
            for alternative in group.split("|"):
                if re.fullmatch(r"[A-Za-z]+(?:\\s\+[A-Za-z]+)*", alternative):
                    word = alternative.replace("\\s+", " ")
                    add(word if any(ch.isupper() for ch in word) else word.lower())
    return tuple(found)


# ---------------------------------------------------------------- vocabulary files
_NAME_LINE = re.compile(r"^(\s*-\s*name:\s*)(['\"]?)(.+?)\2\s*(?:#.*)?$")


@functools.lru_cache(maxsize=32)
def _declarations(path: str, mtime: float) -> dict[str, Span]:
    """Each concept name of a vocabulary file → the span of its ``- name:`` line."""
    out: dict[str, Span] = {}
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        m = _NAME_LINE.match(line)
        if m:
            start = len(m.group(1)) + len(m.group(2)) + 1
            out.setdefault(normalise_name(m.group(3)), Span(path, i, start, i, start + len(m.group(3))))
    return out


def declaration(concept: Concept, files: tuple[Path, ...] = ()) -> Span | None:
    """Where a concept is declared: its ``- name:`` line in the vocabulary file it was read from
    (an author's file named in the protocol header or given with ``--vocabulary``, or a shipped one).

    A concept read before declarations were recorded is looked up in ``files`` by name.
    """
    if concept.origin is not None:
        return concept.origin
    for f in files:
        try:
            found = _declarations(str(f), f.stat().st_mtime).get(normalise_name(concept.name))
        except OSError:
            continue
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------- results
@attrs.frozen
class Hover:
    markdown: str
    span: Span


@attrs.frozen
class Completion:
    label: str
    kind: str  # concept | keyword | unit | method | criterion
    detail: str = ""
    documentation: str = ""
    insert_text: str | None = None


@attrs.frozen
class Symbol:
    name: str
    detail: str
    kind: str  # section | criterion
    span: Span
    selection: Span
    children: tuple["Symbol", ...] = ()


@attrs.frozen
class Edit:
    span: Span  # the text replaced (empty span: an insertion)
    new_text: str


@attrs.frozen
class Action:
    title: str
    edits: tuple[Edit, ...]
    diagnostic: Diagnostic | None = None
    preferred: bool = False


# ---------------------------------------------------------------- analysis
@attrs.frozen
class Analysis:
    """A protocol text and everything the checker and linter said about it."""

    text: str
    file: str
    tree: t.Protocol | None
    diagnostics: tuple[Diagnostic, ...]
    vocabulary: Vocabulary = attrs.field(repr=False)
    vocabulary_files: tuple[Path, ...] = ()

    # -------------------------------------------------------- positions
    def line_text(self, line: int) -> str:
        lines = self.text.split("\n")
        return lines[line - 1].rstrip("\r") if 1 <= line <= len(lines) else ""

    def nodes_at(self, line: int, column: int) -> list:
        """Tree nodes whose span holds the position, outermost first."""
        if self.tree is None:
            return []
        return [n for n in _nodes(self.tree) if _holds(getattr(n, "span", None), line, column)]

    def criterion_at(self, line: int, column: int) -> t.Criterion | None:
        return next((n for n in self.nodes_at(line, column) if isinstance(n, t.Criterion)), None)

    def concept_at(self, line: int, column: int) -> tuple[Concept, Span, t.Measure | None] | None:
        """The concept named at a position, the span of its name, and the measure it belongs to."""
        nodes = self.nodes_at(line, column)
        name = next((n for n in reversed(nodes) if isinstance(n, t.Name)), None)
        if name is not None:
            concept = self.vocabulary.lookup(name.text)
            if concept is None:
                return None
            measure = next((n for n in reversed(nodes) if isinstance(n, t.Measure) and n.name is name), None)
            return concept, name.span, measure
        if self.tree is not None and nodes:
            return None  # the tree says there is no name here
        return self._concept_in_line(line, column)

    def _concept_in_line(self, line: int, column: int):
        """For text that does not parse: the longest vocabulary name around the position."""
        text = self.line_text(line)
        best = None
        for concept in self.vocabulary.concepts:
            for n in concept.all_names:
                for m in re.finditer(rf"(?<![\w`]){re.escape(n)}(?![\w`])", text, flags=re.I):
                    if m.start() + 1 <= column <= m.end() + 1 and (best is None or len(n) > best[2]):
                        best = (concept, Span(self.file, line, m.start() + 1, line, m.end() + 1), len(n))
        return (best[0], best[1], None) if best else None

    # -------------------------------------------------------- hover
    def hover(self, line: int, column: int) -> Hover | None:
        nodes = self.nodes_at(line, column)
        threshold = next((n for n in reversed(nodes) if isinstance(n, (t.Quantity, t.UlnMultiple))), None)
        if threshold is not None and threshold.span is not None:
            text = self._threshold_hover(nodes, threshold)
            if text:
                return Hover(text, threshold.span)
        found = self.concept_at(line, column)
        if found is None:
            return None
        concept, span, measure = found
        return Hover(concept_markdown(concept, self.vocabulary_files, measure), span)

    def _threshold_hover(self, nodes: list, q) -> str | None:
        criterion = next((n for n in nodes if isinstance(n, t.Criterion)), None)
        rule = next((n for n in reversed(nodes) if isinstance(n, (t.Comparison, t.Rate, t.Event))), None)
        if criterion is None or rule is None:
            return None
        if isinstance(rule, t.Event) or (isinstance(rule, (t.Comparison, t.Rate)) and q is rule.window):
            if isinstance(q, t.Quantity) and q.has_unit and q.value.dimensionality == parse_unit("day").dimensionality:
                days = float(q.value.to("day").magnitude)
                return (f"**{q.number} {q.unit}**: a time window, {format_number(days)} days "
                        f"before the evaluation date")
            return None
        plan = _criterion_plan(self.tree, criterion, self.vocabulary)
        if plan is None:
            return f"**{_written(q)}**: the criterion has errors, so its threshold is not yet resolved"
        for node_plan in _plans(plan.plan):
            if getattr(node_plan, "node", None) is not rule:
                continue
            bound, unit = _bound_for(node_plan, rule, q)
            if bound is None:
                return None
            shown = "" if unit in ("1", "", None) else f" {unit}"
            if bound.uln_factor is not None:
                concept = node_plan.subject.concept if hasattr(node_plan, "subject") else node_plan.concept
                return (f"**{bound.text}**: {format_number(bound.uln_factor)} times the upper limit of normal "
                        f"of the observation's reference range; without one, the vocabulary default "
                        f"({_uln_text(concept)}), so {_uln_limit(concept, bound.uln_factor)}")
            if bound.value is None:
                return None
            return (f"**{bound.text}** = {format_number(bound.value)}{shown} in the canonical unit "
                    f"(the value elig compares with)")
        return None

    # -------------------------------------------------------- definition
    def definition(self, line: int, column: int) -> Span | None:
        found = self.concept_at(line, column)
        if found is None:
            return None
        return declaration(found[0], self.vocabulary_files)

    # -------------------------------------------------------- completion
    def completions(self, line: int, column: int) -> list[Completion]:
        text = self.line_text(line)
        before = text[: column - 1]
        code = before.split("#", 1)[0]
        if code != before or code.count('"') % 2 == 1:
            return []  # in a comment or a quoted sentence
        stripped = code.strip()
        if self._at_criterion_level(line, code) and (not stripped or re.fullmatch(r"[A-Za-z][A-Za-z0-9.\-]*", stripped)):
            ids = self._next_ids(line)
            if ids:
                return ids
        paren = _open_paren(code)
        by = re.search(r"\bby\s+[\w\- ]*$", code, flags=re.I)
        if paren is not None or by:
            concept = self._concept_ending(code[:paren] if paren is not None else code[:by.start()])
            if concept is not None and concept.kind == "derived":
                return _methods(concept)
        number = re.search(r"(?<![\w.])\d[\d,]*(?:\.\d+)?[ \t]*(?:[x×][ \t]*)?[^\s(),]*$", code)
        if number:
            head = code[: number.start()]
            if re.search(r"(?i)\b(?:within|lasting\s*\S*|lookback)\s*$", head):
                return [Completion(u, "unit", "a duration") for u in DURATION_UNITS]
            concept = self._concept_ending(head)
            if concept is not None:
                return _units(concept)
            return [Completion(u, "unit", "a duration") for u in DURATION_UNITS]
        return self._names() + [Completion(k, "keyword", "keyword") for k in keywords()]

    def _concept_ending(self, text: str) -> Concept | None:
        """The concept whose name ends last in ``text`` (the one just typed), preferring longer names."""
        text = text.rstrip(" ≥≤<>=!⩾⩽")
        best = None
        for concept in self.vocabulary.concepts:
            for n in concept.all_names:
                for m in re.finditer(rf"(?<![\w`]){re.escape(n)}(?![\w`])", text, flags=re.I):
                    key = (m.end(), len(n))
                    if best is None or key > best[0]:
                        best = (key, concept)
        return best[1] if best else None

    def _names(self) -> list[Completion]:
        out = []
        for c in self.vocabulary.concepts:
            doc = c.description or ""
            for n in c.all_names:
                insert = n if is_plain_name(n) else f"`{n}`"
                detail = c.kind if n == c.name else f"{c.kind}: alias of {c.name}"
                out.append(Completion(n, "concept", detail, doc, insert))
        return out

    def _section_lines(self, line: int) -> tuple[str | None, list[str]]:
        lines = self.text.split("\n")
        section, start = None, 0
        for i in range(min(line, len(lines)) - 1, -1, -1):
            word = lines[i].split("#", 1)[0].strip().lower()
            if not lines[i][:1].isspace() and word in ("inclusion", "exclusion"):
                section, start = word, i
                break
        end = len(lines)
        for j in range(start + 1, len(lines)):
            word = lines[j].split("#", 1)[0].strip().lower()
            if lines[j][:1].strip() and word:
                end = j
                break
        return section, lines[start + 1:end] if section else []

    def _criterion_indent(self, line: int) -> str:
        _, body = self._section_lines(line)
        heads = [m.group(1) for m in (_HEAD.match(ln) for ln in body) if m]
        return min(heads, key=len) if heads else "  "

    def _at_criterion_level(self, line: int, code: str) -> bool:
        section, _ = self._section_lines(line)
        return section is not None and code[: len(code) - len(code.lstrip())] == self._criterion_indent(line)

    def _next_ids(self, line: int) -> list[Completion]:
        section, body = self._section_lines(line)
        if section is None:
            return []
        indent = self._criterion_indent(line)
        ids = [m.group(2) for m in (_HEAD.match(ln) for ln in body) if m and m.group(1) == indent]
        prefix = "I" if section == "inclusion" else "E"
        if not ids:
            return [Completion(f"{prefix}1", "criterion", f"first {section} criterion")]
        last = max(ids, key=natural_key)
        out = []
        for candidate in _successors(last):
            if candidate not in ids:
                out.append(Completion(candidate, "criterion", f"next {section} criterion after {last}",
                                      insert_text=f'{candidate} ""'))
        return out

    # -------------------------------------------------------- outline
    def symbols(self) -> list[Symbol]:
        if self.tree is None:
            return []
        out = []
        for section in ("inclusion", "exclusion"):
            crits = [c for c in self.tree.criteria if c.section == section and c.span is not None]
            if not crits:
                continue
            children = tuple(
                Symbol(c.id, c.sentence or "", "criterion", c.span,
                       Span(c.span.file, c.span.line, c.span.column, c.span.line, c.span.column + len(c.id)))
                for c in crits)
            first, last = crits[0].span, crits[-1].span
            head = _section_line(self.text, first.line, section)
            start = Span(first.file, head, 1, head, 1 + len(section))
            out.append(Symbol(section, f"{len(crits)} criteria", "section",
                              Span(first.file, head, 1, last.end_line, last.end_column), start, children))
        return out

    # -------------------------------------------------------- formatting and fixes
    def formatted(self) -> str | None:
        """The text as ``elig fmt`` writes it, or None when it does not parse."""
        try:
            return format_text(self.text, self.file)
        except ProtocolError:
            return None

    def actions(self, diagnostics: tuple[Diagnostic, ...] | None = None) -> list[Action]:
        """Quick fixes: did-you-mean replacements, and adding the sponsor's sentence."""
        out = []
        for d in (self.diagnostics if diagnostics is None else diagnostics):
            if d.span is None:
                continue
            fix = self._fix(d)
            if fix is not None:
                out.append(fix)
        return out

    def _fix(self, d: Diagnostic) -> Action | None:
        span = d.span
        if d.code == "W201":
            at = Span(span.file, span.line, span.end_column, span.line, span.end_column)
            return Action("Add the sponsor's sentence (paste it between the quotes)", (Edit(at, ' ""'),), d)
        if d.code == "E101" and d.hint:
            m = re.search(r"did you mean '([^']+)'\?", d.hint)
            if m:
                word = m.group(1)
                new = word if is_plain_name(word) else f"`{word}`"
                return Action(f"Replace with '{word}'", (Edit(span, new),), d, preferred=True)
        if d.code == "E001":
            m = re.search(r"did you mean '([^']+)'(?: instead of '([^']+)')?\?$", d.message)
            if m:
                keyword, word = m.group(1), m.group(2)
                target = span
                if word:
                    line = self.line_text(span.line)
                    at = line.rfind(word, 0, span.column - 1)
                    if at < 0:
                        return None
                    target = Span(span.file, span.line, at + 1, span.line, at + 1 + len(word))
                return Action(f"Replace with '{keyword}'", (Edit(target, keyword),), d, preferred=True)
        if d.code == "W205" and d.hint:
            m = re.search(r"Did you mean (.+)\?$", d.hint)
            if m:
                return Action(f"Replace with '{m.group(1)}'", (Edit(span, m.group(1)),), d)
        return None


def analyse(text: str, file: str = "<protocol>", vocabulary: Vocabulary | None = None) -> Analysis:
    """Diagnose a protocol text (as ``elig lint`` does) and keep what an editor needs to answer questions.

    Names are looked up in the vocabulary the protocol is checked with: ``vocabulary`` (the
    bundled one by default) with the files the protocol's header names.
    """
    base = vocabulary or default_vocabulary()
    diagnosed = diagnose_text(text, file, base)
    return Analysis(text, file, diagnosed.tree, diagnosed.diagnostics, diagnosed.vocabulary or base,
                    bundled_files())


# ---------------------------------------------------------------- concept text
def concept_markdown(concept: Concept, files: tuple[Path, ...] = (), measure: t.Measure | None = None) -> str:
    """A concept's vocabulary entry as Markdown: what hover shows."""
    lines = [f"**{concept.name}** ({concept.kind})"]
    if concept.description:
        lines.append(concept.description)
    if concept.aliases:
        lines.append("Also written: " + ", ".join(concept.aliases))
    if concept.codes:
        codes = []
        for spec in concept.codes[:8]:
            star = "*" if spec.match == "prefix" else ""
            codes.append(f"{short_system(spec.system)} {spec.code}{star}" + (f" ({spec.display})" if spec.display else ""))
        more = f" and {len(concept.codes) - 8} more" if len(concept.codes) > 8 else ""
        lines.append("Codes: " + "; ".join(codes) + more)
    if concept.unit:
        unit = "no unit (a number)" if concept.unit == "1" else concept.unit
        lines.append(f"Canonical unit: {unit}" + (f"; molar mass {format_number(concept.molar_mass)} g/mol"
                                                  if concept.molar_mass else ""))
    if concept.plausible:
        unit = "" if concept.unit in (None, "1") else f" {concept.unit}"
        lines.append(f"Plausible range: {format_number(concept.plausible[0])} to "
                     f"{format_number(concept.plausible[1])}{unit}")
    if concept.uln:
        lines.append(f"Default ULN: {_uln_text(concept)}")
    if concept.kind == "derived":
        chosen = None
        if measure is not None:
            names = measure.method.names if measure.method else ()
            found = CATALOGUE.resolve(concept.name, concept.methods[0] if concept.methods else None, names)
            chosen = None if isinstance(found, str) else found
        for d in CATALOGUE.for_concept(concept.name):
            mark = " (this rule)" if chosen is not None and d.key == chosen.key else (
                " (default)" if concept.methods and d.key == concept.methods[0] else "")
            lines.append(f"- *{d.title}*{mark}: `{d.formula}`. {d.reference}")
    where = declaration(concept, files)
    if where is not None:
        lines.append(f"Vocabulary: {_display_path(where.file)}, line {where.line}")
    return "\n\n".join(lines)


def _uln_text(concept: Concept) -> str:
    u = concept.uln
    if u is None:
        return "none"
    unit = "" if u.unit in (None, "1") else f" {u.unit}"
    if u.male is not None or u.female is not None:
        parts = [f"{format_number(v)}{unit} ({s})" for s, v in (("male", u.male), ("female", u.female)) if v is not None]
        text = ", ".join(parts)
    else:
        text = f"{format_number(u.value)}{unit}"
    return f"{text}, {u.source}"


def _uln_limit(concept: Concept, factor: float) -> str:
    u = concept.uln
    unit = "" if u.unit in (None, "1") else f" {u.unit}"
    parts = [f"{format_number(factor * v)}{unit}{f' if {s}' if s else ''}"
             for s, v in (("", u.value), ("male", u.male), ("female", u.female)) if v is not None]
    return " or ".join(parts)


def _display_path(path: str) -> str:
    p = Path(path)
    parts = p.parts
    if "elig" in parts and "data" in parts:
        i = len(parts) - 1 - parts[::-1].index("elig")
        return "/".join(parts[i:])
    return str(p)


# ---------------------------------------------------------------- helpers
_HEAD = re.compile(r'^(\s+)([A-Za-z][A-Za-z0-9]*(?:[.\-][A-Za-z0-9]+)*)(?:\s+"|\s*(?:#.*)?$)')


def _nodes(node):
    if not attrs.has(type(node)) or isinstance(node, Span):
        return
    yield node
    for f in attrs.fields(type(node)):
        if f.name == "span":
            continue
        value = getattr(node, f.name)
        if isinstance(value, tuple):
            for item in value:
                yield from _nodes(item)
        elif attrs.has(type(value)):
            yield from _nodes(value)


def _holds(span: Span | None, line: int, column: int) -> bool:
    if span is None:
        return False
    return (span.line, span.column) <= (line, column) <= (span.end_line, span.end_column)


def _criterion_plan(tree: t.Protocol, criterion: t.Criterion, vocabulary: Vocabulary) -> p.CriterionPlan | None:
    """The checker's plan of one criterion (checked alone, so an error elsewhere does not hide it)."""
    try:
        checked = checker.check(attrs.evolve(tree, criteria=(criterion,)), vocabulary)
    except ProtocolError:
        return None
    return checked.criteria[0]


def _plans(node):
    yield node
    for child in getattr(node, "children", ()) or ():
        if child is not None:
            yield from _plans(child)


def _bound_for(node_plan, rule, q) -> tuple[p.Bound | None, str | None]:
    """The checker's bound for the threshold node ``q`` of ``rule``, and the unit it is in."""
    if isinstance(node_plan, p.RatePlan):
        return (node_plan.bound if q is rule.threshold else None), f"{node_plan.concept.unit} per day"
    subject = node_plan.subject
    unit = subject.unit if isinstance(subject, p.RatioRef) else subject.concept.unit
    test, plan_test = rule.test, node_plan.test
    if isinstance(test, t.Compare) and isinstance(plan_test, p.CompareTest) and q is test.threshold:
        return plan_test.bound, unit
    if isinstance(test, t.Between) and isinstance(plan_test, p.RangeTest):
        if q is test.low:
            return plan_test.low, unit
        if q is test.high:
            return plan_test.high, unit
    if isinstance(test, t.BySex) and isinstance(plan_test, p.SexTest):
        for branch, (_, compare) in zip(test.branches, plan_test.branches):
            if q is branch.test.threshold:
                return compare.bound, unit
    return None, unit


def _written(q) -> str:
    if isinstance(q, t.UlnMultiple):
        return f"{q.number} x ULN"
    return f"{q.number} {q.unit}" if q.unit else q.number


def _open_paren(code: str) -> int | None:
    depth, at = 0, None
    for i, ch in enumerate(code):
        if ch == "(":
            depth, at = depth + 1, i
        elif ch == ")" and depth:
            depth -= 1
            at = None if depth == 0 else at
    return at if depth else None


def _methods(concept: Concept) -> list[Completion]:
    out, seen = [], set()
    for d in CATALOGUE.for_concept(concept.name):
        default = concept.methods and d.key == concept.methods[0]
        label = d.method_names[0] + (f", {d.variant_names[0]}" if d.variant_names else "")
        if label in seen:
            continue
        seen.add(label)
        out.append(Completion(label, "method", d.title + (" (default)" if default else ""),
                              f"{d.formula}\n\n{d.reference}"))
        for param in d.params:
            name = f"{param.names[0]}: "
            if name not in seen:
                seen.add(name)
                unit = "" if param.unit == "1" else f" {param.unit}"
                out.append(Completion(name, "method", f"parameter of {d.title}: {param.meaning}",
                                      f"default {format_number(param.default)}{unit}"))
    return out


def _units(concept: Concept) -> list[Completion]:
    if concept.kind not in KINDS_WITH_UNITS or not concept.unit:
        return []
    target = parse_unit(concept.unit)
    out = []
    if concept.unit != "1":
        out.append(Completion(concept.unit, "unit", f"canonical unit of {concept.name}"))
    for u in UNIT_CHOICES:
        if u == concept.unit or ("U/" in u and "U" not in concept.unit):
            continue  # enzyme units are counts per volume to pint: offer them only for activities
        try:
            conversion_factor_q(parse_unit(u.removeprefix("x ")), target, concept.molar_mass)
        except (pint.DimensionalityError, ValueError, Exception):  # noqa: B014 - any unit elig cannot convert
            continue
        out.append(Completion(u, "unit", f"converts to {concept.unit}"))
    if concept.kind == "demographic" and concept.unit == "year":
        out = [Completion(u, "unit", "age") for u in ("years", "months")]
    if concept.uln is not None:
        out.append(Completion("x ULN", "unit", f"a multiple of the upper limit of normal ({_uln_text(concept)})"))
    return out


def _successors(last: str) -> list[str]:
    """Candidate ids after ``last``: the next number at its own level, then one level up (I4.9 → I4.10, I5)."""
    parts = re.split(r"([.\-])", last)
    out = []
    m = re.match(r"^(.*?)(\d+)$", parts[-1])
    if m:
        out.append("".join(parts[:-1]) + m.group(1) + str(int(m.group(2)) + 1))
    if len(parts) >= 3:
        out.extend(_successors("".join(parts[:-2])))
    return out


def _section_line(text: str, first_criterion_line: int, section: str) -> int:
    lines = text.split("\n")
    for i in range(first_criterion_line - 2, -1, -1):
        if lines[i].split("#", 1)[0].strip().lower() == section:
            return i + 1
    return first_criterion_line
