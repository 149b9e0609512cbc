"""Lint a parsed protocol: the questions a careful reviewer asks.

The checker (``elig.engine.checker``) rejects protocols that cannot be evaluated;
the linter looks at protocols that can, and warns where the encoding is
probably not what the author meant. Every warning has a stable code
(documented with a wrong and a right example in docs/diagnostics.md), a span
and a hint:

W201 criterion without the sponsor's sentence   W202 criterion ids out of order
W203 threshold made redundant by another        W204 thresholds that cannot all hold
W205 threshold outside the plausible range      W206 measurement without a look-back window
W207 exclusion that repeats an inclusion        W208 attestation of something in the data
W209 restored comparator without a note        W212 draft criterion still to encode (TODO note)

``lint`` is pure: it reads a tree and a vocabulary and returns diagnostics.
"""

from __future__ import annotations

import re

import pint

from elig.language import canonical, tree as t
from elig.diagnostics import Diagnostic, ProtocolError, Span
from elig.terminology.units import conversion_factor_q, parse_unit
from elig.terminology.vocabulary import Concept, Vocabulary, default_vocabulary

CODES = {
    "W201": "criterion without the sponsor's sentence",
    "W202": "criterion ids out of order",
    "W203": "threshold made redundant by another",
    "W204": "thresholds that cannot all hold",
    "W205": "threshold outside the concept's plausible range",
    "W206": "measurement without a look-back window",
    "W207": "exclusion that repeats an inclusion",
    "W208": "attestation of something the record could decide",
    "W209": "restored comparator without a note",
    "W212": "draft criterion still to encode (TODO note)",
}

_NEGATE = {">": "<=", ">=": "<", "<": ">=", "<=": ">", "==": "!=", "!=": "=="}
_SYMBOL = canonical.SYMBOLS

# Units tried, in this order, when a threshold is implausible in the unit written.
_CANDIDATE_UNITS = (
    "g/L", "g/dL", "mg/dL", "mg/L", "µg/L", "ng/mL", "µmol/L", "mmol/L",
    "10^9/L", "10^12/L", "10^6/L", "10^3/µL", "/µL",
    "mL/min", "L/min", "mmHg", "kPa", "%", "U/L", "s", "ms", "kg", "g", "cm", "m",
    "days", "months", "years",
)


def lint(tree: t.Protocol, vocabulary: Vocabulary | None = None) -> list[Diagnostic]:
    """Every warning for a protocol, in source order within each code family."""
    return _Linter(tree, vocabulary or default_vocabulary()).run()


# ---------------------------------------------------------------- helpers
def natural_key(cid: str) -> tuple:
    """``I4.10`` sorts after ``I4.9``: digits compare as numbers, letters as text."""
    parts = re.findall(r"\d+|[A-Za-z]+", cid)
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts)


def _id_span(c: t.Criterion) -> Span | None:
    if c.span is None:
        return None
    return Span(c.span.file, c.span.line, c.span.column, c.span.line, c.span.column + len(c.id))


def _walk(node):
    yield node
    if isinstance(node, t.Comparison):
        return
    for child in t.children(node):
        yield from _walk(child)


def _split(o: t.Comparison) -> list[t.Comparison]:
    """`AST and ALT ≤ 3 x ULN` as one comparison per name (the checker's reading, for these questions)."""
    if isinstance(o.subject, t.Subjects):
        return [t.Comparison(subject=m, test=o.test, window=o.window, assessment=o.assessment, span=o.span)
                for m in o.subject.items]
    return [o]


def _comparisons(node):
    return [c for n in _walk(node) if isinstance(n, t.Comparison) for c in _split(n)]


def _thresholds(test) -> list:
    """The thresholds of a test, and the values of a score list ('of 0 or 1'), which lint reads too."""
    return list(test.values) if isinstance(test, t.OneOf) else t.thresholds(test)


class _Interval:
    """A set of values ``lo (<|≤) x (<|≤) hi``; None is unbounded."""

    def __init__(self, lo=None, lo_inc=True, hi=None, hi_inc=True):
        self.lo, self.lo_inc, self.hi, self.hi_inc = lo, lo_inc, hi, hi_inc

    def intersect(self, other: "_Interval") -> "_Interval":
        lo, lo_inc = self.lo, self.lo_inc
        if other.lo is not None and (lo is None or other.lo > lo or (other.lo == lo and not other.lo_inc)):
            lo, lo_inc = other.lo, other.lo_inc
        hi, hi_inc = self.hi, self.hi_inc
        if other.hi is not None and (hi is None or other.hi < hi or (other.hi == hi and not other.hi_inc)):
            hi, hi_inc = other.hi, other.hi_inc
        return _Interval(lo, lo_inc, hi, hi_inc)

    @property
    def empty(self) -> bool:
        if self.lo is None or self.hi is None:
            return False
        return self.lo > self.hi or (self.lo == self.hi and not (self.lo_inc and self.hi_inc))


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


class _Linter:
    def __init__(self, protocol: t.Protocol, vocabulary: Vocabulary):
        self.protocol = protocol
        self.vocabulary = vocabulary
        self.out: list[Diagnostic] = []

    def warn(self, code: str, message: str, span: Span | None, hint: str) -> None:
        self.out.append(Diagnostic(code, message, span=span, hint=hint, severity="warning"))

    def run(self) -> list[Diagnostic]:
        self.ids()
        for c in self.protocol.criteria:
            self.criterion(c)
        self.repeats()
        return sorted(self.out, key=lambda d: (d.span.line if d.span else 0, d.span.column if d.span else 0, d.code))

    # ------------------------------------------------------------ W201, W202, W209
    def ids(self) -> None:
        last: dict[str, t.Criterion] = {}
        for c in self.protocol.criteria:
            prev = last.get(c.section)
            if prev is not None and c.id != prev.id and natural_key(c.id) < natural_key(prev.id):
                self.warn("W202", f"criterion {c.id} comes after {prev.id} in the {c.section} section", _id_span(c),
                          f"keep the sponsor's numbering in order: move {c.id} before {prev.id}, "
                          f"or renumber (ids compare naturally: I4.10 follows I4.9)")
            if prev is None or natural_key(c.id) >= natural_key(prev.id):
                last[c.section] = c

    def criterion(self, c: t.Criterion) -> None:
        if c.sentence is None:
            self.warn("W201", f"criterion {c.id} has no sponsor's sentence", _id_span(c),
                      f'copy the protocol\'s sentence after the id, typos and all: {c.id} "..."; '
                      f"reviewers compare the rule with it")
        elif not c.notes and _lost_comparator(c.sentence) and _uses_inclusive(c.rule):
            self.warn("W209", f"criterion {c.id}: the sponsor's sentence has '?' or '=' where the rule has ≥ or ≤, "
                              f"and no note says the comparator was restored", _id_span(c),
                      'add a note, e.g. note "the registry text lost the ≥ sign; restored from the protocol"')
        for note in c.notes:
            if note.lstrip().upper().startswith("TODO"):
                self.warn("W212", f"criterion {c.id} is still to encode: {note.strip()}", _id_span(c),
                          "encode the sponsor's sentence as a rule (or keep 'attested' for what only a person "
                          "can record), then remove the TODO note")
        self.rule(c.rule)
        for node in _walk(c.rule):
            if isinstance(node, t.Attestation):
                self.attestation(node)
            if isinstance(node, t.Comparison):
                for one in _split(node):
                    self.comparison(one)

    # ------------------------------------------------------------ W203, W204
    def rule(self, node) -> None:
        for n in _walk(node):
            if isinstance(n, t.Or) or (isinstance(n, t.ListOf) and n.kind == "any"):
                self.redundant(n, t.children(n), "or")
            elif isinstance(n, t.And) or (isinstance(n, t.ListOf) and n.kind == "all"):
                self.redundant(n, t.children(n), "and")
                self.contradiction(t.children(n))

    def _one_sided(self, operands):
        """(operand, key, direction, value, inclusive) for single thresholds on a subject."""
        out = []
        for o in operands:
            if not isinstance(o, t.Comparison) or not isinstance(o.test, t.Compare):
                continue
            op = o.test.comparator
            if op not in (">", ">=", "<", "<="):
                continue
            value = self.value(o, o.test.threshold)
            if value is None:
                continue
            out.append((o, (self.key(o), value[0]), "up" if op in (">", ">=") else "down", value[1],
                        op in (">=", "<=")))
        return out

    def redundant(self, node, operands, joiner: str) -> None:
        items = self._one_sided(operands)
        reported = set()
        for i, (a, ka, da, va, ia) in enumerate(items):
            for b, kb, db, vb, ib in items[i + 1:]:
                if ka != kb or da != db or id(b) in reported:
                    continue
                # a_implies_b: every value meeting a meets b
                a_in_b = (va > vb or _close(va, vb) and (ib or not ia)) if da == "up" else \
                         (va < vb or _close(va, vb) and (ib or not ia))
                if joiner == "or":  # the narrower threshold adds nothing
                    extra, keep = (a, b) if a_in_b else (b, a)
                else:  # and: the wider threshold adds nothing
                    extra, keep = (b, a) if a_in_b else (a, b)
                reported.add(id(extra))
                self.warn("W203", f"'{canonical.rule(extra)}' is redundant: with '{joiner}', "
                                  f"'{canonical.rule(keep)}' already decides it", extra.span or node.span,
                          "keep one threshold; if the sponsor meant a range, write it as one, e.g. 'x 1 to 2 unit' "
                          "or '1 < x ≤ 2 unit'")

    def contradiction(self, operands) -> None:
        groups: dict = {}
        for o in operands:
            if not isinstance(o, t.Comparison) or isinstance(o.subject, t.Subjects):
                continue
            interval = self.interval(o)
            if interval is None:
                continue
            kind, interval = interval
            groups.setdefault((self.key(o), kind), []).append((o, interval))
        for members in groups.values():
            if len(members) < 2:
                continue
            whole = _Interval()
            for _, iv in members:
                whole = whole.intersect(iv)
            if whole.empty:
                texts = " and ".join(f"'{canonical.rule(o)}'" for o, _ in members)
                span = members[-1][0].span
                self.warn("W204", f"no value can meet {texts} at once: the criterion can never be met", span,
                          "check the comparators: a range is written '200 < PaO2/FiO2 ≤ 300 mmHg'; "
                          "if either threshold is meant, join them with 'or'")

    def interval(self, o: t.Comparison) -> tuple[str, _Interval] | None:
        """The values a comparison accepts, with the kind of its numbers ('q' or 'uln')."""
        test = o.test
        if isinstance(test, t.Compare):
            tv = self.value(o, test.threshold)
            if tv is None:
                return None
            op, v = test.comparator, tv[1]
            iv = {">": _Interval(v, False), ">=": _Interval(v, True), "<": _Interval(None, True, v, False),
                  "<=": _Interval(None, True, v, True), "==": _Interval(v, True, v, True)}.get(op)
            return (tv[0], iv) if iv is not None else None
        if isinstance(test, t.Between):
            lo, hi = self.value(o, test.low), self.value(o, test.high)
            if lo is None or hi is None or lo[0] != hi[0]:
                return None
            return lo[0], _Interval(lo[1], test.low_inclusive, hi[1], test.high_inclusive)
        return None

    # ------------------------------------------------------------ subjects and values
    def subject_concept(self, subject) -> Concept | None:
        if isinstance(subject, t.Subjects):
            return None
        if isinstance(subject, t.Measure):
            return self.vocabulary.lookup(subject.name.text)
        text = f"{subject.numerator.name.text}/{subject.denominator.name.text}"
        return self.vocabulary.lookup(text) or self.vocabulary.lookup(text + " ratio")

    def key(self, o: t.Comparison):
        """What a comparison is about: the same subject, method and window."""
        s = o.subject
        measures = ((s,) if isinstance(s, t.Measure) else s.items if isinstance(s, t.Subjects)
                    else (s.numerator, s.denominator))
        names = []
        for m in measures:
            concept = self.vocabulary.lookup(m.name.text)
            names.append((concept.name if concept else m.name.text.lower(), m.method))
        window = None
        if o.window is not None:
            try:
                window = round(float(o.window.value.to("day").magnitude), 6)
            except (pint.DimensionalityError, AttributeError):
                window = canonical.quantity(o.window)
        return tuple(names), window

    def value(self, o: t.Comparison, th) -> tuple | None:
        """A threshold as a comparable number: ('uln', factor) or ('q', value in canonical unit)."""
        if isinstance(th, t.UlnMultiple):
            return ("uln", float(th.factor))
        if isinstance(th, t.LlnMultiple):
            return ("lln", float(th.factor))
        try:
            concept = self.subject_concept(o.subject)
            if concept is not None and concept.unit:
                target = parse_unit(concept.unit)
                if not th.has_unit:
                    return ("q", float(th.value.magnitude)) if not target.dimensionality else None
                return ("q", conversion_factor_q(th.value, target, concept.molar_mass))
            if not th.has_unit:
                return ("q", float(th.value.magnitude))
            return ("q", float(th.value.to_base_units().magnitude))
        except (pint.DimensionalityError, pint.errors.PintError, ValueError, TypeError):
            return None

    # ------------------------------------------------------------ W205, W206
    def comparison(self, o: t.Comparison) -> None:
        concept = self.subject_concept(o.subject)
        if concept is None:
            return
        if concept.plausible and concept.unit:
            for th in _thresholds(o.test):
                self.plausible(o, concept, th)
        if (o.window is None and self.protocol.lookback is None
                and concept.kind in ("measurement", "derived")):
            self.warn("W206", f"'{canonical.subject(o.subject)}' has no look-back window, and the protocol "
                              f"declares no default", o.span,
                      "say how recent the value must be, e.g. 'within 7 days', or declare "
                      "'lookback 14 days' under the protocol header; without one any old value counts")

    def plausible(self, o: t.Comparison, concept: Concept, th) -> None:
        if not isinstance(th, t.Quantity) or not th.has_unit:
            return
        v = self.value(o, th)
        if v is None:
            return
        low, high = concept.plausible
        value = v[1]
        if low <= value <= high or _close(value, low) or _close(value, high):
            return
        written = canonical.quantity(th)
        hint = (f"values of {concept.name} lie between {_fmt(low)} and {_fmt(high)} {concept.unit}; "
                f"{written} is {_fmt(value)} {concept.unit}")
        better = self.better_unit(concept, th)
        if better:
            hint += f". Did you mean {th.number} {better}?"
        else:
            hint += "; check the number and the unit"
        self.warn("W205", f"the threshold {written} is outside the plausible range of {concept.name}",
                  th.span or o.span, hint)

    def better_unit(self, concept: Concept, th: t.Quantity) -> str | None:
        target = parse_unit(concept.unit)
        written = (th.unit or "").strip()
        low, high = concept.plausible
        candidates = [concept.unit] + [u for u in _CANDIDATE_UNITS if u != concept.unit]
        for unit in candidates:
            if unit.replace(" ", "") == written.replace(" ", ""):
                continue
            try:
                value = float(th.number) * conversion_factor_q(parse_unit(unit), target, concept.molar_mass)
            except Exception:  # noqa: BLE001 - an incompatible or unreadable candidate is skipped
                continue
            if low <= value <= high:
                return unit
        return None

    # ------------------------------------------------------------ W207
    def repeats(self) -> None:
        inclusions = [c for c in self.protocol.criteria if c.section == "inclusion"]
        for e in self.protocol.exclusions:
            for i in inclusions:
                how = self.same_or_negated(e.rule, i.rule)
                if how == "repeats":
                    # The same rule to include and to exclude: whoever meets it is excluded, whoever
                    # does not is not included. No patient can ever be eligible.
                    self.warn("W207", f"exclusion {e.id} repeats inclusion {i.id}: no patient can be eligible",
                              _id_span(e), f"an exclusion usually states the opposite of an inclusion; check "
                              f"the sponsor's text and write {e.id} as what excludes (perhaps 'not ...')")
                    break
                if how and not any(re.search(rf"(?<![\w.]){re.escape(i.id)}(?![\w]|\.\d)", n) for n in e.notes):
                    self.warn("W207", f"exclusion {e.id} {how} inclusion {i.id}", _id_span(e),
                              f"one of them is enough: a patient failing {i.id} is already ineligible; "
                              f"delete {e.id}, make it say what the sponsor's exclusion adds, or, to keep both as "
                              f"the sponsor wrote them, say so in a note naming {i.id}")
                    break

    def same_or_negated(self, ex, inc) -> str | None:
        if ex == inc:
            return "repeats"
        if isinstance(ex, t.Not) and ex.operand == inc or isinstance(inc, t.Not) and inc.operand == ex:
            return "is the exact negation of"
        if (isinstance(ex, t.Comparison) and isinstance(inc, t.Comparison) and isinstance(ex.test, t.Compare)
                and isinstance(inc.test, t.Compare) and ex.subject == inc.subject and ex.window == inc.window
                and ex.test.threshold == inc.test.threshold
                and _NEGATE.get(ex.test.comparator) == inc.test.comparator):
            return "is the exact negation of"
        return None

    # ------------------------------------------------------------ W208
    def attestation(self, node: t.Attestation) -> None:
        for part in re.split(r"\s*(?:,|;|\bor\b|\band\b)\s*", node.text):
            words = part.strip().strip(".").split()
            while words and words[0].lower() in ("active", "current", "positive", "taking", "history", "of"):
                words = words[1:]
            if not words:
                continue
            concept = self.vocabulary.lookup(" ".join(words))
            if concept is None:
                continue
            rule = _suggested_rule(concept, part.strip())
            self.warn("W208", f"the attestation names '{part.strip()}', which the patient record can decide "
                              f"({concept.kind} '{concept.name}')", node.span,
                      f"write it as a rule, e.g. '{rule}', so it is evaluated from data; keep 'attested' only for "
                      f"what needs a person's judgment")
            return


def _suggested_rule(concept: Concept, written: str) -> str:
    if concept.kind == "fact":
        return concept.name
    if concept.kind == "condition":
        return f"active {concept.name}"
    if concept.kind == "medication":
        return f"taking {concept.name}"
    if concept.kind == "procedure":
        return f"history of {concept.name}"
    if concept.kind == "test":
        return f"positive {concept.name} within 14 days"
    return f"{concept.name} ≥ ... within 7 days"


def _lost_comparator(sentence: str) -> bool:
    """'?' or a bare '=' (not part of >=, <=, ≥...) in the sponsor's text."""
    if "?" in sentence:
        return True
    return re.search(r"(?<![<>=!])=(?![<>=])", sentence) is not None


def _uses_inclusive(node) -> bool:
    for n in _walk(node):
        if isinstance(n, t.Comparison):
            test = n.test
            if isinstance(test, t.Compare) and test.comparator in (">=", "<="):
                return True
            if isinstance(test, t.Between) and (test.low_inclusive or test.high_inclusive):
                return True
            if isinstance(test, t.BySex) and any(b.test.comparator in (">=", "<=") for b in test.branches):
                return True
        if isinstance(n, t.Rate) and n.comparator in (">=", "<="):
            return True
        if isinstance(n, t.Event) and n.timing and n.timing.comparator in (">=", "<="):
            return True
    return False


def _fmt(x: float) -> str:
    return f"{x:g}"
