"""Check a parsed protocol against the vocabulary and build its evaluation plan.

Every problem is found in one pass and reported together, each with its span,
what was expected and a suggestion (codes are documented in
docs/diagnostics.md):

E101 unknown concept (with did-you-mean)        E102 unknown derivation method
E103 incompatible dimensions                    E104 bare number where a unit is needed
E105 percentage compared with a bare number     E106 concept of the wrong kind here
E107 not a duration                             E108 x ULN on a value without a ULN
E109 misplaced 'unless'                         E110 grade on a non-condition
E112 duplicate criterion id                     E113 unknown method parameter
E120 a definition that cannot be used           E121 '(whichever is recorded)' on a non-measurement
E122 '(if of ...)' on something other than a fact
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import attrs

import pint

from elig.language import canonical, tree as t
from elig.language.parser import parse_rule
from elig.engine import plan as p
from elig.terminology.derivations import CATALOGUE, Catalogue
from elig.diagnostics import Diagnostic, ProtocolError, Span
from elig.terminology.units import Q_, conversion_factor_q, describe_dimension, format_number, parse_unit, ureg
from elig.terminology.vocabulary import EVENT_KINDS, Concept, Vocabulary, VocabularyError, default_vocabulary

_TIME_UNITS = (("year", ureg.year), ("month", ureg.month), ("week", ureg.week),
               ("day", ureg.day), ("hour", ureg.hour))
DEFAULT_RATE_WINDOW = p.Duration(7, "day", "7 days")


def protocol_checksum(source: str) -> str:
    normalised = source.replace("\r\n", "\n").encode("utf-8")
    return "sha256:" + hashlib.sha256(normalised).hexdigest()[:16]


def vocabulary_paths(protocol: t.Protocol) -> list[tuple[t.VocabularyFile, Path]]:
    """The vocabulary files a protocol's header names, each resolved against the protocol's folder."""
    folder = Path(protocol.file).parent if protocol.file and not protocol.file.startswith("<") else Path(".")
    return [(v, folder / v.path) for v in protocol.vocabularies]


def protocol_vocabulary(protocol: t.Protocol, vocabulary: Vocabulary | None = None) -> Vocabulary:
    """``vocabulary`` (the bundled one by default) with the files the protocol's header names.

    Raises ``VocabularyError`` with every problem: a named file that does not exist (at the
    header line), and each problem inside the files (at their own file, line and column).
    """
    base = vocabulary or default_vocabulary()
    named = vocabulary_paths(protocol)
    if not named:
        return base
    missing = [Diagnostic("V300", f"no such vocabulary file {v.path!r}", span=v.span,
                          hint=f"the path is relative to the protocol's folder; looked for {path}")
               for v, path in named if not path.is_file()]
    if missing:
        raise VocabularyError(missing, {protocol.file: protocol.source})
    return base.extended(path for _, path in named)


def check(protocol: t.Protocol, vocabulary: Vocabulary | None = None,
          catalogue: Catalogue = CATALOGUE) -> p.CheckedProtocol:
    """Check a protocol; return its plan or raise ``ProtocolError`` with every diagnostic.

    ``vocabulary`` (the bundled one by default) is extended with the files the protocol's
    header names; a problem in those files is raised as ``VocabularyError``.
    """
    vocabulary = protocol_vocabulary(protocol, vocabulary)
    checker = _Checker(vocabulary, catalogue, protocol)
    criteria = checker.run()
    if checker.errors:
        raise ProtocolError(checker.errors, {protocol.file: protocol.source})
    return p.CheckedProtocol(tree=protocol, criteria=criteria, vocabulary=checker.vocabulary,
                             checksum=protocol_checksum(protocol.source or canonical.protocol(protocol)))


def diagnose(protocol: t.Protocol, vocabulary: Vocabulary | None = None) -> list[Diagnostic]:
    """All diagnostics of a protocol, without raising (problems of its vocabulary files included)."""
    try:
        vocabulary = protocol_vocabulary(protocol, vocabulary)
    except VocabularyError as exc:
        return list(exc.diagnostics)
    checker = _Checker(vocabulary, CATALOGUE, protocol)
    checker.run()
    return checker.errors


def diagnose_rule(rule, vocabulary: Vocabulary | None = None, file: str = "<rule>") -> list[Diagnostic]:
    """The diagnostics of one rule (``elig parse`` checks names and units, not only syntax)."""
    checker = _Checker(vocabulary or default_vocabulary(), CATALOGUE, t.Protocol(id="rule", title=None, criteria=(),
                                                                                file=file))
    checker.rule(rule)
    return checker.errors


class _Checker:
    def __init__(self, vocabulary: Vocabulary, catalogue: Catalogue, protocol: t.Protocol):
        self.vocabulary = vocabulary
        self.catalogue = catalogue
        self.protocol = protocol
        self.errors: list[Diagnostic] = []
        self.lookback: p.Duration | None = None
        self.definitions: dict[str, t.Definition] = {}  # the protocol's own readings, by concept name
        self._defined: dict[str, p.DefinitionPlan | None] = {}  # compiled once per concept
        self._defining: list[str] = []

    def error(self, code: str, message: str, span: Span | None, hint: str | None = None) -> None:
        self.errors.append(Diagnostic(code, message, span=span, hint=hint))

    # ------------------------------------------------------------ protocol
    def run(self) -> tuple[p.CriterionPlan, ...]:
        if self.protocol.lookback is not None:
            self.lookback = self.duration(self.protocol.lookback)
        for d in self.protocol.definitions:
            concept = self.vocabulary.lookup(d.name.text)
            if concept is None or concept.definition is None:
                definable = ", ".join(c.name for c in self.vocabulary.concepts if c.definition) or "none"
                self.error("E120", f"'{d.name.text}' is not a declared concept that a protocol can define",
                           d.name.span, f"concepts with a default reading to replace: {definable}")
            elif concept.name in self.definitions:
                self.error("E120", f"'{concept.name}' is defined twice", d.span, "keep one definition")
            else:
                self.definitions[concept.name] = d
        for name in self.definitions:  # check every definition, used or not
            self.defined(self.vocabulary.lookup(name), self.definitions[name].name)
        seen: dict[str, t.Criterion] = {}
        out = []
        for c in self.protocol.criteria:
            if c.id in seen:
                first = seen[c.id].span
                self.error("E112", f"criterion id '{c.id}' is used twice", c.span,
                           f"ids name criteria in reports; rename one (the first is at line {first.line})"
                           if first else "rename one of them")
            seen[c.id] = c
            rule = c.rule
            if isinstance(rule, t.Unless):
                plan = p.LogicPlan("unless", (self.rule(rule.rule), self.rule(rule.exception)), rule,
                                   text=canonical.rule(rule))
            else:
                plan = self.rule(rule)
            out.append(p.CriterionPlan(id=c.id, section=c.section, sentence=c.sentence, notes=c.notes,
                                       rule_text=canonical.rule(rule), plan=plan, node=c))
        return tuple(out)

    # ------------------------------------------------------------ rules
    def rule(self, node) -> p.RulePlan:
        plan = self._rule(node)
        return attrs.evolve(plan, text=canonical.rule(node)) if plan is not None else None

    def _rule(self, node) -> p.RulePlan:
        if isinstance(node, t.Comparison):
            return self.comparison(node)
        if isinstance(node, t.Event):
            return self.event(node)
        if isinstance(node, t.SexFact):
            return p.FactPlan(concept=None, sex=node.sex, node=node)
        if isinstance(node, t.Rate):
            return self.rate(node)
        if isinstance(node, t.Attestation):
            from elig.records.patient import normalise_key

            return p.AttestationPlan(key=normalise_key(node.text), statement=node.text, node=node)
        if isinstance(node, t.Not):
            return p.LogicPlan("not", (self.rule(node.operand),), node)
        if isinstance(node, t.And):
            return p.LogicPlan("and", tuple(self.rule(o) for o in node.operands), node)
        if isinstance(node, t.Or):
            return p.LogicPlan("or", tuple(self.rule(o) for o in node.operands), node)
        if isinstance(node, t.Whichever):
            for o in node.operands:
                if not isinstance(o, t.Comparison):
                    self.error("E121", "'(whichever is recorded)' joins alternative measurements, but this is not "
                                       "a comparison of a measured value", o.span,
                               "write each alternative as a comparison (PTA ≤ 40% or INR ≥ 1.5), or use plain 'or'")
            return p.LogicPlan("whichever", tuple(self.rule(o) for o in node.operands), node)
        if isinstance(node, t.ListOf):
            return p.LogicPlan(node.kind, tuple(self.rule(i) for i in node.items), node)
        if isinstance(node, t.Unless):
            self.error("E109", "'unless' must apply to a whole criterion", node.span,
                       "move the exception to the end of the criterion's rule, or write 'or'/'and not' here")
            return p.LogicPlan("unless", (self.rule(node.rule), self.rule(node.exception)), node)
        raise TypeError(type(node).__name__)

    # ------------------------------------------------------------ names
    def concept(self, name: t.Name, kinds: tuple[str, ...], what: str) -> Concept | None:
        concept = self.vocabulary.lookup(name.text)
        if concept is None:
            suggestion = self.vocabulary.suggest(name.text, kinds) or self.vocabulary.suggest(name.text)
            if suggestion and name.text[:1].isupper():
                suggestion = suggestion[:1].upper() + suggestion[1:]
            hint = (f"did you mean '{suggestion}'?" if suggestion else
                    "use a known name (docs/vocabulary.md), or declare the concept in a vocabulary file "
                    "named in the protocol's header")
            words = name.text.split(None, 1)
            if len(words) == 2 and words[0].lower() in ("no", "non", "without") and self.vocabulary.lookup(words[1]):
                # "No myocardial infarction": the negation belongs to the rule, not the name.
                hint = f"write the negation as a keyword: 'not {words[1]}'"
            self.error("E101", f"unknown concept '{name.text}'", name.span, hint)
            return None
        if concept.kind not in kinds:
            self.error("E106", f"'{name.text}' is a {concept.kind}, but {what} is expected here", name.span,
                       _kind_hint(concept))
            return None
        return concept

    def subject(self, subject) -> tuple[p.SubjectRef | None, pint.Quantity | None, str | None]:
        """The subject's plan, its canonical unit as a quantity, and its unit text."""
        if isinstance(subject, t.Ratio):
            num = self.subject(subject.numerator)
            den = self.subject(subject.denominator)
            if not (num[0] and den[0]):
                return None, None, None
            if not isinstance(num[0], p.MeasureRef) or not isinstance(den[0], p.MeasureRef):
                self.error("E106", "a ratio divides two measurements", subject.span,
                           "use measured values on both sides of '/', e.g. PaO2/FiO2")
                return None, None, None
            unit_q = num[1] / den[1]
            unit_text = f"{num[2]}" if den[2] in ("1", None) else f"{num[2]}/({den[2]})"
            label = f"{num[0].label}/{den[0].label}"
            return p.RatioRef(num[0], den[0], label, unit_text), unit_q, unit_text
        concept = self.concept(subject.name, ("measurement", "derived", "demographic"), "a measured or derived value")
        if concept is None:
            return None, None, None
        unit_q = parse_unit(concept.unit) if concept.unit else Q_(1, "dimensionless")
        if concept.kind == "derived":
            names = subject.method.names if subject.method else ()
            default = concept.methods[0] if concept.methods else None
            found = self.catalogue.resolve(concept.name, default, names, concept.methods)
            if isinstance(found, str):
                self.error("E102", found, subject.method.span if subject.method else subject.name.span,
                           "name a known method in parentheses, e.g. (Cockcroft-Gault); see docs/derived.md")
                return None, None, None
            params = self.params(found, subject.method)
            return p.DerivedRef(concept, found, subject.name.text, params), unit_q, concept.unit
        if subject.method is not None:
            self.error("E102", f"'{subject.name.text}' is measured, not derived: it takes no method",
                       subject.method.span, "remove the parenthesised method")
        return p.MeasureRef(concept, subject.name.text), unit_q, concept.unit

    def params(self, derivation, method: t.Method | None) -> tuple[tuple[str, float], ...]:
        if method is None or not method.params:
            return ()
        out = []
        for given in method.params:
            match = next((prm for prm in derivation.params
                          if given.name.lower() in {n.lower() for n in (prm.key, *prm.names)}), None)
            if match is None:
                known = ", ".join(prm.names[0] for prm in derivation.params) or "none"
                self.error("E113", f"'{given.name}' is not a parameter of {derivation.title}", given.span,
                           f"parameters of this method: {known}")
                continue
            try:
                value = conversion_factor_q(given.value.value, parse_unit(match.unit))
            except pint.DimensionalityError:
                self.error("E103", f"{match.key} is a {describe_dimension(parse_unit(match.unit))}, "
                                   f"not {describe_dimension(given.value.value)}", given.value.span,
                           f"give it in {match.unit}")
                continue
            if (match.low is not None and value < match.low) or (match.high is not None and value > match.high):
                unit = "" if match.unit == "1" else f" {match.unit}"
                self.error("E113", f"{match.names[0]} = {format_number(value)}{unit} is outside the range "
                                   f"{derivation.title} accepts", given.value.span,
                           f"give {match.names[0]} from {format_number(match.low)} to {format_number(match.high)}{unit}")
                continue
            out.append((match.key, value))
        return tuple(out)

    # ------------------------------------------------------------ thresholds
    def bound(self, th, concept: Concept | None, unit_q: pint.Quantity, unit_text: str | None,
              subject_label: str, allow_uln: bool) -> p.Bound | None:
        if isinstance(th, t.UlnMultiple):
            text = f"{th.number} x ULN"
            if not allow_uln:
                hint = "x ULN applies to laboratory measurements; give a value with a unit instead"
                if "/" in subject_label:
                    a, b = subject_label.split("/", 1)
                    hint = (f"'{subject_label}' divides {a} by {b}; for both enzymes write "
                            f"'{a} ≤ {th.number} x ULN and {b} ≤ {th.number} x ULN'")
                self.error("E108", f"'{subject_label}' has no upper limit of normal", th.span, hint)
                return None
            return p.Bound(text=text, uln_factor=th.factor)
        text = canonical.quantity(th)
        q = th.value
        dimensionless_subject = not unit_q.dimensionality
        if not th.has_unit:
            if dimensionless_subject and (unit_text or "1") not in ("%", "percent"):
                return p.Bound(text=text, value=float(q.magnitude) / float(unit_q.to("dimensionless").magnitude),
                               quantity=q)
            if unit_text in ("%", "percent"):
                self.error("E105", f"'{subject_label}' is a percentage, compared here with the bare number {th.number}",
                           th.span, f"write {th.number}% (a bare number is ambiguous: 0.5 or 50%?)")
                return None
            example = unit_text or "a unit"
            if example.startswith("10^"):
                example = "x " + example
            self.error("E104", f"a bare number where a unit is needed: '{subject_label}' is a "
                               f"{describe_dimension(unit_q)}", th.span,
                       f"write the unit, e.g. '{th.number} {example}'")
            return None
        if (dimensionless_subject and (unit_text or "1") not in ("%", "percent") and str(q.units) == "percent"
                and concept is not None and concept.plausible and concept.plausible[1] > 1):
            # '%' makes 1 % = 0.01: right for a fraction such as FiO2, a mistake for a score or ratio.
            self.error("E105", f"'{subject_label}' is a score or ratio, not a percentage: {text} would mean "
                               f"{float(q.to('dimensionless').magnitude):g}", th.span,
                       f"write the bare number, e.g. '{th.number}'")
            return None
        refused = concept.refused(th.unit) if concept is not None else None
        if refused:
            self.error("E103", f"'{subject_label}' is not compared in {th.unit}: {refused}", th.span,
                       f"give the threshold in {unit_text}")
            return None
        try:
            value = conversion_factor_q(q, unit_q, concept.molar_mass if concept else None)
        except pint.DimensionalityError:
            self.error("E103", f"'{subject_label}' is a {describe_dimension(unit_q)} and cannot be compared "
                               f"with {text}, a {describe_dimension(q)}", th.span,
                       f"give the threshold in a unit of the same kind, e.g. {unit_text}")
            return None
        return p.Bound(text=text, value=value, quantity=q)

    def duration(self, q: t.Quantity | None) -> p.Duration | None:
        if q is None:
            return None
        text = canonical.quantity(q)
        if q.has_unit and q.value.dimensionality == ureg.day.dimensionality:
            for name, unit in _TIME_UNITS:
                if q.value.units == unit:
                    return p.Duration(float(q.value.magnitude), name, text)
            return p.Duration(float(q.value.to("day").magnitude), "day", text)
        self.error("E107", f"'{text}' is not a duration", q.span,
                   "write a duration such as '7 days', '6 months', '2 weeks' or '1 year'")
        return None

    # ------------------------------------------------------------ comparisons
    def comparison(self, node: t.Comparison) -> p.RulePlan | None:
        subject, unit_q, unit_text = self.subject(node.subject)
        window = self.duration(node.window) if node.window is not None else None
        if subject is None:
            return None
        concept = subject.concept if not isinstance(subject, p.RatioRef) else None
        label = subject.label
        allow_uln = isinstance(subject, p.MeasureRef) and subject.concept.kind == "measurement"

        def b(th):
            return self.bound(th, concept, unit_q, unit_text, label, allow_uln)

        test = node.test
        if isinstance(test, t.Compare):
            bound = b(test.threshold)
            plan_test = p.CompareTest(test.comparator, bound) if bound else None
        elif isinstance(test, t.Between):
            lo, hi = b(test.low), b(test.high)
            plan_test = p.RangeTest(lo, hi, test.low_inclusive, test.high_inclusive) if lo and hi else None
            if lo and hi and lo.value is not None and hi.value is not None and lo.value > hi.value:
                self.error("E103", f"the range {lo.text} to {hi.text} is empty", test.span,
                           "write the lower bound first")
        else:
            branches = []
            for br in test.branches:
                bound = b(br.test.threshold)
                if bound:
                    branches.append((br.sex, p.CompareTest(br.test.comparator, bound)))
            sexes = [s for s, _ in branches]
            if len(set(sexes)) != len(sexes):
                self.error("E103", "a sex is given two thresholds", test.span, "give one threshold per sex")
            plan_test = p.SexTest(tuple(branches)) if len(branches) == len(test.branches) else None
        if plan_test is None:
            return None
        demographic = isinstance(subject, p.MeasureRef) and subject.concept.kind == "demographic"
        if window is None and not demographic:
            window = self.lookback  # the protocol's default look-back, for measured and derived values
        return p.ComparisonPlan(subject=subject, test=plan_test, window=window, node=node)

    # ------------------------------------------------------------ events
    def event(self, node: t.Event) -> p.RulePlan | None:
        allowed = {None: EVENT_KINDS + ("fact",), "history": ("condition", "procedure", "medication"),
                   "active": ("condition", "procedure", "medication"), "taking": ("medication",),
                   "positive": ("test",)}[node.prefix]
        what = {None: "a condition, procedure, medication, test or patient fact",
                "history": "a condition, procedure or medication", "active": "a condition, procedure or medication",
                "taking": "a medication", "positive": "a test"}[node.prefix]
        concept = self.concept(node.name, allowed, what)
        if concept is None:
            return None
        if node.only_if is not None and concept.kind != "fact":
            self.error("E122", f"'(if of {node.only_if.text})' says who is asked about a patient fact, but "
                               f"'{node.name.text}' is a {concept.kind}", node.only_if.span,
                       "use it on a fact, e.g. 'pregnant (if of childbearing potential)'")
        if concept.kind == "fact":
            if node.grade or node.timing:
                self.error("E106", f"'{node.name.text}' is a patient fact: it takes no grade or time", node.span,
                           "write it alone, e.g. 'pregnant or lactating'")
            if concept.definition is not None:
                if node.only_if is not None:
                    self.error("E122", f"'{node.name.text}' is decided by its definition; "
                                       f"'(if of ...)' does not apply to it", node.only_if.span, "remove it")
                defined = self.defined(concept, node.name)
                return defined if defined is not None else None
            only_if = None
            if node.only_if is not None:
                target = self.concept(node.only_if, ("fact",), "a patient fact with a definition")
                if target is not None and target.definition is None:
                    definable = ", ".join(c.name for c in self.vocabulary.concepts if c.definition)
                    self.error("E122", f"'{node.only_if.text}' has no definition to say who is asked",
                               node.only_if.span, f"name a defined concept: {definable}")
                elif target is not None:
                    only_if = self.defined(target, node.only_if)
            return p.FactPlan(concept=concept, sex=None, node=node, only_if=only_if)
        grade = None
        if node.grade is not None:
            if concept.kind != "condition":
                self.error("E110", f"'{node.name.text}' is a {concept.kind}: only conditions have a grade",
                           node.grade.span, "remove the grade, or name a condition")
            elif node.grade.low > node.grade.high:
                self.error("E103", f"the grade range {node.grade.low} to {node.grade.high} is empty", node.grade.span,
                           "write the lower grade first")
            grade = (node.grade.low, node.grade.high, node.grade.word)
        timing_kind = duration = op = None
        if node.timing is not None:
            timing_kind = node.timing.kind
            duration = self.duration(node.timing.duration)
            op = node.timing.comparator
            if timing_kind in ("onset_within", "lasting") and concept.kind != "condition":
                self.error("E106", f"'{node.name.text}' is a {concept.kind}: onset and duration apply to conditions",
                           node.timing.span, "use 'within' for procedures, medications and tests")
        return p.EventPlan(concept=concept, prefix=node.prefix, grade=grade, timing_kind=timing_kind,
                           duration=duration, timing_op=op, node=node,
                           searched=tuple(str(c) for c in concept.codes) + (f"name '{concept.name}'",))

    def defined(self, concept: Concept, name: t.Name) -> p.DefinitionPlan | None:
        """The plan of a defined concept: the protocol's definition, else the vocabulary's."""
        if concept.name in self._defined:
            return self._defined[concept.name]
        if concept.name in self._defining:
            self.error("E120", f"the definition of '{concept.name}' uses itself", name.span,
                       "define it from other concepts")
            return None
        own = self.definitions.get(concept.name)
        if own is not None:
            rule_node, source, text = own.rule, "protocol", canonical.rule(own.rule)
        else:
            try:
                rule_node = parse_rule(" ".join(concept.definition.split()), file=f"<definition of {concept.name}>")
            except ProtocolError as exc:  # a vocabulary bug, reported where the concept is used
                self.error("E120", f"the vocabulary's definition of '{concept.name}' does not parse: "
                                   f"{exc.diagnostics[0].message}", name.span, "fix the vocabulary")
                self._defined[concept.name] = None
                return None
            source, text = "vocabulary default", canonical.rule(rule_node)
        self._defining.append(concept.name)
        errors_before = len(self.errors)
        plan = self.rule(rule_node)
        self._defining.pop()
        if source == "vocabulary default" and len(self.errors) > errors_before:
            # Errors inside the vocabulary's text have no place in the protocol: point at the use.
            for i in range(errors_before, len(self.errors)):
                e = self.errors[i]
                self.errors[i] = Diagnostic(e.code, f"in the definition of '{concept.name}': {e.message}",
                                            span=name.span, hint=e.hint)
        result = None if plan is None else p.DefinitionPlan(name=concept.name, source=source, definition=text,
                                                              plan=plan, node=rule_node,
                                                              text=f"{concept.name} ({source}: {text})")
        self._defined[concept.name] = result
        return result

    def rate(self, node: t.Rate) -> p.RulePlan | None:
        concept = self.concept(node.name, ("measurement",), "a measurement")
        window = self.duration(node.window) if node.window is not None else DEFAULT_RATE_WINDOW
        if concept is None:
            return None
        unit_q = parse_unit(concept.unit) if concept.unit else Q_(1, "dimensionless")
        bound = self.bound(node.threshold, concept, unit_q, concept.unit, node.name.text, False)
        if bound is None or window is None:
            return None
        return p.RatePlan(concept=concept, op=node.comparator, bound=bound, window=window, node=node)


def _kind_hint(concept: Concept) -> str:
    return {
        "measurement": f"compare it with a threshold, e.g. '{concept.name} ≥ ...'",
        "derived": f"compare it with a threshold, e.g. '{concept.name} ≥ ...'",
        "demographic": f"compare it with a threshold, e.g. '{concept.name} 18 to 75 years'",
        "condition": f"name it alone, e.g. 'active {concept.name}' or '{concept.name} within 6 months'",
        "procedure": f"name it alone, e.g. 'history of {concept.name}'",
        "medication": f"name it alone, e.g. 'taking {concept.name}'",
        "test": f"write 'positive {concept.name} within 14 days'",
        "fact": f"name it alone, e.g. '{concept.name}'",
    }[concept.kind]
