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
E114 a name and its abbreviation name different concepts

and warnings, which do not stop a protocol but say which reading was taken:

W210 ambiguous sponsor phrasing (the reading is named)
W211 a unit read with a restored superscript (100x109/L as 100 x 10^9/L)
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

_NOT_SHARED = object()  # shared_subjects: the comparison has one subject

# Words sponsors add after a concept's name that do not change what is measured.
_PADDING_AFTER = frozenset({"level", "levels", "value", "values", "result", "results", "concentration",
                            "concentrations", "score"})

# Specimen words sponsors put before a laboratory value's name (only a measurement is found through them).
_SPECIMEN_BEFORE = frozenset({"serum", "plasma", "blood"})

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
                             checksum=protocol_checksum(protocol.source or canonical.protocol(protocol)),
                             warnings=tuple(checker.warnings))


def diagnose(protocol: t.Protocol, vocabulary: Vocabulary | None = None) -> list[Diagnostic]:
    """All diagnostics of a protocol (errors, then the readings it warns about), without raising.

    Problems of its vocabulary files are included."""
    try:
        vocabulary = protocol_vocabulary(protocol, vocabulary)
    except VocabularyError as exc:
        return list(exc.diagnostics)
    checker = _Checker(vocabulary, CATALOGUE, protocol)
    checker.run()
    return checker.errors + checker.warnings


def diagnose_rule(rule, vocabulary: Vocabulary | None = None, file: str = "<rule>",
                  section: str = "inclusion") -> list[Diagnostic]:
    """The diagnostics of one rule (``elig parse`` checks names and units, not only syntax).

    Errors come first; warnings (W210, W211) say which reading an ambiguous phrase was given,
    as in an inclusion unless ``section`` says otherwise.
    """
    checker = _Checker(vocabulary or default_vocabulary(), CATALOGUE, t.Protocol(id="rule", title=None, criteria=(),
                                                                                file=file))
    checker.section = section
    checker.rule(rule)
    return checker.errors + checker.warnings


class _Checker:
    def __init__(self, vocabulary: Vocabulary, catalogue: Catalogue, protocol: t.Protocol):
        self.vocabulary = vocabulary
        self.catalogue = catalogue
        self.protocol = protocol
        self.errors: list[Diagnostic] = []
        self.warnings: list[Diagnostic] = []
        self.lookback: p.Duration | None = None
        self.section = "inclusion"
        self.definitions: dict[str, t.Definition] = {}  # the protocol's own readings, by concept name
        self._defined: dict[str, p.DefinitionPlan | None] = {}  # compiled once per concept
        self._defining: list[str] = []

    def error(self, code: str, message: str, span: Span | None, hint: str | None = None) -> None:
        self.errors.append(Diagnostic(code, message, span=span, hint=hint))

    def warn(self, code: str, message: str, span: Span | None, hint: str) -> None:
        self.warnings.append(Diagnostic(code, message, span=span, hint=hint, severity="warning"))

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
            self.section = c.section
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
    def lookup(self, text: str) -> Concept | None:
        """A concept by name, also as sponsors pad it: `serum creatinine level`, `platelet count value`."""
        concept = self.vocabulary.lookup(text)
        if concept is not None:
            return concept
        words = text.split()
        while len(words) > 1 and words[-1].lower() in _PADDING_AFTER:
            words = words[:-1]
            concept = self.vocabulary.lookup(" ".join(words))
            if concept is not None:
                return concept
        # `serum hemoglobin`, `plasma sodium`: the specimen named before a measurement it is measured in
        if len(words) > 1 and words[0].lower() in _SPECIMEN_BEFORE:
            concept = self.vocabulary.lookup(" ".join(words[1:]))
            if concept is not None and concept.kind == "measurement":
                return concept
        return None

    def concept(self, name: t.Name, kinds: tuple[str, ...], what: str) -> Concept | None:
        concept = self.lookup(name.text)
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
        subject = self.abbreviation(subject)
        concept = self.concept(subject.name, ("measurement", "derived", "demographic"), "a measured or derived value")
        if concept is None:
            return None, None, None
        if concept.kind == "measurement" and subject.method is not None and not subject.method.params:
            concept = self.derived_instead(concept, subject.method) or concept
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
        if subject.method is not None and (subject.method.params or self._derivation_method(subject.method)):
            self.error("E102", f"'{subject.name.text}' is measured, not derived: it takes no method",
                       subject.method.span, "remove the parenthesised method")
        # Any other name after a measured value says how it is assessed (`by echocardiogram or MUGA`):
        # kept in the tree, not checked against the record.
        return p.MeasureRef(concept, subject.name.text), unit_q, concept.unit

    def derivation_assessed(self, node: t.Comparison) -> t.Comparison:
        """`eGFR ≥ 60 mL/min/1.73 m² calculated by MDRD`, `LVEF (LVEF) ... by MUGA`: an assessment that names
        a derivation is the derivation, as `(MDRD)` after the name would be; never a note left unchecked."""
        a, subject = node.assessment, node.subject
        if a is None or not any(self.catalogue.is_method_name(n) for n in a.names):
            return node
        own = subject.method if isinstance(subject, t.Measure) else None
        if own is not None and not (len(own.names) == 1 and not own.params and self.lookup(own.names[0])):
            self.error("E002", "a derivation method is given twice", a.span,
                       "write the method once, after the name or after the threshold")
            return node
        if not isinstance(subject, t.Measure):
            self.error("E102", f"'{' or '.join(a.names)}' is a derivation method, but it cannot say which of several "
                               f"names it belongs to", a.span, "put the method in parentheses after its name")
            return node
        method = t.Method(names=a.names, params=(), by=True, span=a.span)
        return attrs.evolve(node, subject=attrs.evolve(subject, method=method), assessment=None)

    def derived_instead(self, measured: Concept, method: t.Method) -> Concept | None:
        """`eGFR ≥ 60 mL/min/1.73 m² (CKD-EPI 2021)`: the method names the calculation of a derived concept.

        The measured value named, with a method that computes a value of the same kind, selects
        the derived concept (the sponsor asks for the calculation, not a reported value).
        """
        if measured.unit is None:
            return None
        for derivation in self.catalogue.by_key.values():
            derived = self.vocabulary.lookup(derivation.concept)
            if derived is None or derived.kind != "derived" or derived.unit is None:
                continue
            if not isinstance(self.catalogue.resolve(derived.name, None, method.names), str):
                try:
                    same = parse_unit(derived.unit).dimensionality == parse_unit(measured.unit).dimensionality
                except Exception:  # a vocabulary unit pint cannot read: not this one
                    same = False
                if same:
                    return derived
        return None

    def _derivation_method(self, method: t.Method) -> bool:
        return any(self.catalogue.is_method_name(n) for n in method.names)

    def abbreviation(self, measure: t.Measure) -> t.Measure:
        """`Absolute neutrophil count (ANC)`: a parenthesised name that names a concept is an abbreviation.

        The vocabulary decides: when the parenthesised word is a concept's name it is the
        sponsor's abbreviation (it must name the same concept as the words before it, E114);
        otherwise it is a derivation or assessment method.
        """
        m = measure.method
        if m is None or m.by or m.params or len(m.names) != 1:
            return measure
        short = self.lookup(m.names[0])
        if short is None:
            return measure
        full = self.lookup(measure.name.text)
        if full is None:  # the sponsor's long name is not in the vocabulary; its abbreviation is
            return t.Measure(name=t.Name(m.names[0], span=m.span), method=None, span=measure.span)
        if full.name != short.name:
            self.error("E114", f"'{measure.name.text}' is {full.name}, but its abbreviation '{m.names[0]}' is "
                               f"{short.name}", m.span,
                       "correct the name or the abbreviation; a method in parentheses must not be a concept's name")
            return t.Measure(name=measure.name, method=None, span=measure.span)
        return t.Measure(name=measure.name, method=None, span=measure.span)

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
        if isinstance(th, t.LlnMultiple):
            text = canonical.threshold(th)
            if not allow_uln:
                self.error("E108", f"'{subject_label}' has no lower limit of normal", th.span,
                           "x LLN applies to laboratory measurements; give a value with a unit instead")
                return None
            return p.Bound(text=text, lln_factor=th.factor)
        if isinstance(th, t.UlnMultiple):
            text = canonical.threshold(th)
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
        if th.restored_from is not None:
            self.warn("W211", f"'{th.number}{th.restored_from}' is read as {text}: the superscript of the power "
                              f"of ten was lost in the registry text", th.span,
                      f"write '{text}' if that is what the protocol says (then the warning goes)")
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
        node = self.derivation_assessed(node)
        shared = self.shared_subjects(node)
        if shared is not _NOT_SHARED:
            return shared  # a plan, or None when a name had an error (reported)
        if isinstance(node.test, t.Conditional):
            return self.conditional(node)
        if isinstance(node.test, t.OneOf):
            return self.one_of(node)
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
        if isinstance(test, t.NormalRange):
            if not allow_uln:
                self.error("E108", f"'{label}' has no normal range", test.span,
                           "'within normal limits' applies to laboratory measurements; give a range instead")
                return None
            test = t.Between(low=t.LlnMultiple(1.0, "1", span=test.span), high=t.UlnMultiple(1.0, "1", span=test.span),
                             span=test.span)
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

    def shared_subjects(self, node: t.Comparison) -> p.RulePlan | None:
        """`AST and ALT ≤ 3 x ULN`, `SGOT and/or SGPT ...`, `AST/ALT ≤ 2.5 x ULN`: one test for each name.

        `and` means each; `or`, `and/or` and a slash that is not a ratio are ambiguous: read as
        each in an inclusion and as either in an exclusion (the reading that excludes the patient
        when one value is out of range), with a W210 naming it. When the vocabulary says the first
        names are conditions or facts (`pregnant and ANC ≥ 1.5 x 10^9/L`) they are rules of their own.
        """
        subject = node.subject
        if isinstance(subject, t.Ratio):
            if not self._shared_ratio(subject, node.test):
                return _NOT_SHARED
            items, joiner = (subject.numerator, subject.denominator), "/"
        elif isinstance(subject, t.Subjects):
            items, joiner = subject.items, subject.joiner
        else:
            return _NOT_SHARED
        events = []
        for m in items[:-1]:
            concept = self.lookup(m.name.text)
            if concept is not None and concept.kind not in ("measurement", "derived", "demographic"):
                events.append(m)
            else:
                break
        if events:  # `pregnant and ANC ≥ ...`: the vocabulary reads the first names as rules
            rules = [self.rule(t.Event(name=m.name, abbreviation=m.method.names[0] if m.method and len(m.method.names) == 1
                                       else None, span=m.span)) for m in events]
            rest = items[len(events):]
            last = rest[0] if len(rest) == 1 else t.Subjects(items=tuple(rest), joiner=joiner, span=subject.span)
            rules.append(self.rule(attrs.evolve(node, subject=last)))
            if any(r is None for r in rules):
                return None
            op = "or" if joiner in ("or", "and/or") else "and"
            return p.LogicPlan(op, tuple(rules), node)
        names = " and ".join(m.name.text for m in items)
        if joiner == "and":
            op = "and"
            if self.section == "exclusion":
                self.warn("W210", f"'{canonical.subject(subject)}' in an exclusion is read as written: the patient is "
                                  f"excluded only when each of {names} meets the test", subject.span,
                          "if one value out of range excludes the patient, write 'or' and the warning names that "
                          "reading; or write one comparison per name")
        else:
            op = "and" if self.section != "exclusion" else "or"
            reading = (f"each of {names} must meet the test" if op == "and" else
                       f"the patient is excluded when any of " + " or ".join(m.name.text for m in items) +
                       " meets the test")
            what = f"'{subject.numerator.name.text}/{subject.denominator.name.text}' is not a ratio the vocabulary knows, " \
                   if joiner == "/" else f"'{joiner}' between names is ambiguous, "
            self.warn("W210", f"{what}read as two values sharing the test: {reading}", subject.span,
                      "write one comparison per name joined by 'and' or 'or' to say it outright")
        plans = []
        for m in items:
            plans.append(self.rule(attrs.evolve(node, subject=m)))
        if any(x is None for x in plans):
            return None
        return p.LogicPlan(op, tuple(plans), node)

    def _shared_ratio(self, ratio: t.Ratio, test) -> bool:
        """`AST/ALT ≤ 2.5 x ULN` shares the test; `PaO2/FiO2 ≤ 300 mmHg` divides."""
        whole = f"{ratio.numerator.name.text}/{ratio.denominator.name.text}"
        if self.lookup(whole) is not None or self.lookup(whole + " ratio") is not None:
            return False
        num, den = self.lookup(ratio.numerator.name.text), self.lookup(ratio.denominator.name.text)
        if num is None or den is None or num.kind != "measurement" or den.kind != "measurement":
            return False
        thresholds = t.thresholds(test)
        if any(isinstance(th, (t.UlnMultiple, t.LlnMultiple)) for th in thresholds) or isinstance(test, t.NormalRange):
            return True
        if not thresholds or num.unit is None:
            return False
        if den.unit is None:
            return False
        try:  # two values of one kind, and a threshold of that kind: not their quotient
            a, b = parse_unit(num.unit), parse_unit(den.unit)
            units = [th.value for th in thresholds if isinstance(th, t.Quantity) and th.has_unit]
            return (a.dimensionality == b.dimensionality and bool(a.dimensionality) and bool(units)
                    and all(u.dimensionality == a.dimensionality for u in units))
        except Exception:  # an unparseable unit: leave the ratio to the usual checks
            return False

    def conditional(self, node: t.Comparison) -> p.RulePlan | None:
        """`≤ 1.5 x ULN (≤ 3 x ULN for Gilbert's syndrome)`: the alternative applies to the patients named.

        Met when the main test holds, or when the condition holds and its own test does. When an
        alternative is stricter than the main test, the main test applies only without the condition.
        """
        test = node.test
        main_plan = None
        if test.main is not None:
            main_plan = self.rule(attrs.evolve(node, test=test.main))
        branches = []
        negated = []
        for alt in test.alternatives:
            cond = self.rule(alt.condition)
            alt_plan = self.rule(attrs.evolve(node, test=alt.test))
            if cond is None or alt_plan is None:
                return None
            branches.append(p.LogicPlan("and", (cond, alt_plan), alt, text=canonical.condition(alt.condition) +
                                        f" and {canonical.rule(attrs.evolve(node, test=alt.test))}"))
            if test.main is None or not _looser(alt.test, test.main):
                negated.append(p.LogicPlan("not", (cond,), alt.condition, text="not " + canonical.condition(alt.condition)))
        if test.main is None:
            if main_plan is None and len(branches) == 1:
                # `AST ≤ 5 x ULN if liver metastases`: a test for those patients; the others pass it.
                cond = branches[0].children[0]
                return p.LogicPlan("or", (negated[0], branches[0].children[1]), node)
            return p.LogicPlan("or", tuple([p.LogicPlan("and", tuple(negated), node, text="none of the conditions")]
                                           + branches), node)
        if main_plan is None:
            return None
        first = main_plan if not negated else p.LogicPlan(
            "and", tuple(negated) + (main_plan,), test.main, text=" and ".join(n.text for n in negated) +
            f" and {main_plan.text}")
        return p.LogicPlan("or", (first, *branches), node)

    def one_of(self, node: t.Comparison) -> p.RulePlan | None:
        """`ECOG performance status of 0 or 1`: a range when the values follow one another, else any of them."""
        values = sorted(float(v.value.magnitude) for v in node.test.values)
        if all(v.is_integer() for v in values) and values == [values[0] + i for i in range(len(values))]:
            low = min(node.test.values, key=lambda v: float(v.value.magnitude))
            high = max(node.test.values, key=lambda v: float(v.value.magnitude))
            return self.comparison(attrs.evolve(node, test=t.Between(low=low, high=high, span=node.test.span)))
        plans = [self.rule(attrs.evolve(node, test=t.Compare("==", v, span=v.span))) for v in node.test.values]
        if any(x is None for x in plans):
            return None
        return p.LogicPlan("or", tuple(plans), node)

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




def _looser(alt: t.Compare, main: t.Compare) -> bool:
    """Whether every value meeting ``main`` meets ``alt`` (same direction, a wider threshold)."""
    up = {">": 1, ">=": 1, "<": -1, "<=": -1}
    if up.get(alt.comparator) is None or up.get(alt.comparator) != up.get(main.comparator):
        return False
    a, m = alt.threshold, main.threshold
    if type(a) is not type(m):
        return False
    if isinstance(a, t.Quantity):
        try:
            av, mv = float(a.value.to(m.value.units).magnitude), float(m.value.magnitude)
        except Exception:  # units of different kinds: the checker reports them
            return False
    else:
        av, mv = a.factor, m.factor
    return av <= mv if up[alt.comparator] > 0 else av >= mv


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
