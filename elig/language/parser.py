"""Parse protocol text into the typed tree of ``elig.language.tree``.

The Lark grammar lives in ``grammar/elig.lark`` (shipped inside the wheel as
``elig/grammar/elig.lark``). The LALR parser is built once per process by
``get_parser`` (a cached, read-only object; building it costs ~100 ms) and
Lark's parse errors are turned into elig diagnostics with file, line, column,
what was expected and a suggestion.
"""

from __future__ import annotations

import bisect
import difflib
import functools
import importlib.resources
import re
from pathlib import Path

import attrs
import lark
from lark.indenter import Indenter

from elig.language import tree as t
from elig.diagnostics import Diagnostic, ProtocolError, Span
from elig.terminology.units import UnitSyntaxError, quantity as make_quantity, suggest_unit


class _ProtocolIndenter(Indenter):
    NL_type = "_NL"
    OPEN_PAREN_types = ["LPAR"]
    CLOSE_PAREN_types = ["RPAR"]
    INDENT_type = "_INDENT"
    DEDENT_type = "_DEDENT"
    tab_len = 4

    _resuming = False

    def process(self, stream):
        """As Lark's, but a parse resumed after ``_soften`` keeps the indentation levels read so far."""
        if self._resuming:
            self._resuming = False
            return self._process(stream)
        return super().process(stream)

    def handle_NL(self, token: lark.Token):
        """As Lark's, but a tab or a dedent to no outer level is an E005 at its own line."""
        if self.paren_level > 0:
            return
        yield token
        indent_str = token.rsplit("\n", 1)[1]
        line = (token.end_line or token.line) if "\n" in token else token.line
        if "\t" in indent_str:
            raise _IndentationError(
                "a tab is used for indentation", line, len(indent_str) + 1,
                "indent with spaces only: two spaces for a criterion, four for its rule")
        indent = len(indent_str)
        if indent > self.indent_level[-1]:
            self.indent_level.append(indent)
            yield lark.Token.new_borrow_pos(self.INDENT_type, indent_str, token)
            return
        while indent < self.indent_level[-1]:
            self.indent_level.pop()
            yield lark.Token.new_borrow_pos(self.DEDENT_type, indent_str, token)
        if indent != self.indent_level[-1]:
            outer = " or ".join(str(n) for n in sorted(set(self.indent_level)))
            raise _IndentationError(
                f"indentation does not match any outer level: this line is indented {indent} "
                f"spaces, the lines it could belong to are indented {outer}",
                line, indent + 1,
                "indent every criterion of a section the same amount, and its rule one step further")


def grammar_text() -> str:
    """The grammar, from the installed package or, in a checkout, from grammar/."""
    try:
        packaged = importlib.resources.files("elig").joinpath("grammar/elig.lark")
        if packaged.is_file():
            return packaged.read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError):
        pass
    return (Path(__file__).resolve().parents[2] / "grammar" / "elig.lark").read_text(encoding="utf-8")


@functools.cache
def get_parser() -> lark.Lark:
    """The LALR parser, built once and shared: Lark parsers are safe to reuse."""
    return lark.Lark(
        grammar_text(),
        parser="lalr",
        start=["start", "single_rule"],
        postlex=_ProtocolIndenter(),
        propagate_positions=True,
        maybe_placeholders=False,
    )


COMPARATORS = {
    "≥": ">=", ">=": ">=", "=>": ">=", "⩾": ">=", "≧": ">=", ">/=": ">=",
    "≤": "<=", "<=": "<=", "=<": "<=", "⩽": "<=", "≦": "<=", "</=": "<=",
    ">": ">", "<": "<", "=": "==", "≠": "!=", "!=": "!=",
    "greater than or equal to": ">=", "less than or equal to": "<=",
    "greater than": ">", "more than": ">", "less than": "<", "fewer than": "<",
    "at least": ">=", "at most": "<=", "no more than": "<=", "no greater than": "<=",
    "no less than": ">=", "not exceeding": "<=", "not more than": "<=", "not less than": ">=",
    "equal to": "==", "up to": "<=",
    "equal to or greater than": ">=", "equal to or more than": ">=", "equal to or less than": "<=",
    "greater than or equal": ">=", "more than or equal to": ">=", "more than or equal": ">=",
    "less than or equal": "<=", "equal or greater than": ">=", "equal or more than": ">=",
    "equal or less than": "<=",
    "below": "<", "above": ">", "under": "<", "over": ">", "exceeding": ">", "superior to": ">", "inferior to": "<",
    "equal or superior to": ">=", "equal to or superior to": ">=", "equal or greater than": ">=",
    "equal to or greater than": ">=", "equal or inferior to": "<=", "equal to or inferior to": "<=",
    "equal or less than": "<=", "equal to or less than": "<=", "equal or above": ">=", "equal or below": "<=",
    # ＞ ＜ ＞＝ ＜＝: full-width signs, as typed with East Asian input methods
    "＞": ">", "＜": "<", "＞＝": ">=", "＜＝": "<=",
    # greater than and equal to, greater than/equal to: the sponsor's ≥ typed another way
    "greater than and equal to": ">=", "more than and equal to": ">=", "greater than/equal to": ">=",
    "more than/equal to": ">=", "less than and equal to": "<=", "fewer than and equal to": "<=",
    "less than/equal to": "<=", "fewer than/equal to": "<=",
}

# 100x109/L, 4.0 x 103/µL: a scaled unit whose superscript was lost in the registry text.
_LOST_SUPERSCRIPT = re.compile(r"[x×*]\s*10(3|6|9|12)\s*/\s*([A-Za-zµμ][A-Za-z0-9µμ^³²]*)")

ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5}  # the grammar's ROMAN terminal


def _number(text: str) -> float:
    """A number as written: 1.5, or 100,000 with thousands separators."""
    return float(text.replace(",", ""))


def _without_either(names: tuple) -> tuple:
    """`by either echocardiogram or MUGA`: `either` only announces the alternatives."""
    if len(names) > 1 and isinstance(names[0], str) and names[0].lower().startswith("either "):
        return (names[0][7:].lstrip(),) + tuple(names[1:])
    return tuple(names)


def is_abbreviation(short: str, full: str) -> bool:
    """`MUGA` for multi-gated acquisition, `LVEF` for left ventricular ejection fraction: the letters of the
    short form begin the long one and appear in it in order (the way abbreviations are defined in text)."""
    letters = [c for c in short.lower() if c.isalnum()]
    text = full.lower()
    if len(letters) < 2 or not text or letters[0] != text[0]:
        return False
    at = 0
    for c in letters:
        at = text.find(c, at)
        if at < 0:
            return False
        at += 1
    return True


def normalise_comparator(text: str) -> str:
    words = " ".join(text.lower().split())
    return COMPARATORS[re.sub(r"(?<=[a-z]) ?/ ?(?=[a-z])", "/", words)]


class _Builder(lark.Transformer):
    """Turns Lark's parse tree into elig.language.tree nodes, attaching spans."""

    def __init__(self, file: str):
        super().__init__(visit_tokens=False)
        self.file = file
        self.errors: list[Diagnostic] = []

    # -- helpers
    def _span(self, meta_or_token) -> Span | None:
        m = meta_or_token
        if isinstance(m, lark.Token):
            return Span(self.file, m.line, m.column, m.end_line, m.end_column)
        if getattr(m, "empty", True):
            return None
        return Span(self.file, m.line, m.column, m.end_line, m.end_column)

    @staticmethod
    def _string(tok: lark.Token) -> str:
        body = tok.value[1:-1]
        return body.replace('\\"', '"').replace("\\\\", "\\")

    # -- protocol structure
    @lark.v_args(meta=True)
    def start(self, meta, items):
        return items[0]

    @lark.v_args(meta=True)
    def single_rule(self, meta, items):
        return items[0]

    @lark.v_args(meta=True)
    def protocol(self, meta, items):
        header, *sections = items
        criteria = tuple(c for section in sections for c in section)
        return t.Protocol(
            id=header["id"], title=header.get("title"), version=header.get("version"),
            lookback=header.get("lookback"), vocabularies=tuple(header["vocabularies"]),
            definitions=tuple(header.get("definitions", ())), criteria=criteria, file=self.file,
            span=self._span(meta),
        )

    def header(self, items):
        out = {"id": str(items[0]), "vocabularies": []}
        for key, value in items[1:]:
            if key == "vocabulary":
                out["vocabularies"].append(value)
            elif key == "definitions":
                out.setdefault(key, []).append(value)
            else:
                out[key] = value
        return out

    @lark.v_args(meta=True)
    def definition(self, meta, items):
        return ("definitions", t.Definition(name=items[0], rule=items[1], span=self._span(meta)))

    def title(self, items):
        return ("title", self._string(items[0]))

    def version(self, items):
        return ("version", self._string(items[0]))

    def lookback(self, items):
        return ("lookback", items[0])

    def vocabulary(self, items):
        return ("vocabulary", t.VocabularyFile(self._string(items[0]), span=self._span(items[0])))

    def section(self, items):
        kind = str(items[0]).lower()
        return [c(kind) for c in items[1:]]

    @lark.v_args(meta=True)
    def criterion(self, meta, items):
        cid = str(items[0])
        rest = items[1:]
        sentence = None
        if rest and isinstance(rest[0], lark.Token):
            sentence = self._string(rest[0])
            rest = rest[1:]
        rule, *notes = rest
        span = self._span(meta)
        return lambda section: t.Criterion(section=section, id=cid, sentence=sentence, rule=rule,
                                           notes=tuple(notes), span=span)

    def note(self, items):
        return self._string(items[0])

    # -- logic
    @lark.v_args(meta=True)
    def block_list(self, meta, items):
        return t.ListOf(kind=str(items[0]).lower(), items=tuple(items[1:]), block=True, span=self._span(meta))

    @lark.v_args(meta=True)
    def inline_list(self, meta, items):
        return t.ListOf(kind=str(items[0]).lower(), items=tuple(items[1:]), span=self._span(meta))

    @lark.v_args(meta=True)
    def unless(self, meta, items):
        return t.Unless(rule=items[0], exception=items[1], span=self._span(meta))

    @lark.v_args(meta=True)
    def or_(self, meta, items):
        return t.Or(operands=tuple(items), span=self._span(meta))

    @lark.v_args(meta=True)
    def whichever(self, meta, items):
        return t.Whichever(operands=tuple(i for i in items if not isinstance(i, lark.Token)), span=self._span(meta))

    @lark.v_args(meta=True)
    def and_(self, meta, items):
        return t.And(operands=tuple(items), span=self._span(meta))

    @lark.v_args(meta=True)
    def not_(self, meta, items):
        return t.Not(operand=items[0], span=self._span(meta))

    def sex_fact(self, items):
        return t.SexFact(sex=str(items[0]).lower(), span=self._span(items[0]))

    # -- comparisons
    @lark.v_args(meta=True)
    def comparison(self, meta, items):
        subject, test, *rest = items
        span = self._span(meta)
        method = assessment = None
        alternatives = []
        window = None
        for x in rest:
            if isinstance(x, t.Method):
                if method is not None:
                    self.errors.append(Diagnostic(
                        "E002", "a derivation method is given twice", span=x.span,
                        hint="write the method once, after the name or after the threshold"))
                method = method or x
            elif isinstance(x, t.Assessment):
                assessment = x
            elif isinstance(x, tuple) and x and x[0] == "alt":
                alternatives.append(x)
            elif isinstance(x, t.Quantity):
                window = x
        if (method is not None and assessment is None and isinstance(subject, t.Measure) and subject.method is not None
                and method.by and not method.params and not subject.method.params and len(subject.method.names) == 1
                and is_abbreviation(subject.method.names[0], self._unwrapped_name(subject.name)[0].text)):
            # left ventricular ejection fraction (LVEF) ≥ 50% by MUGA or echocardiography: the name's own
            # abbreviation, then how the value is assessed
            assessment, method = t.Assessment(names=method.names, span=method.span), None
        if method is not None:
            subject = self._with_method(subject, method)
            if self._unit_gloss(subject, test):  # 150 kilograms (kg): the unit's symbol, not a method
                subject = attrs.evolve(subject, method=None)
        subject, wrapped_sex = self._unwrapped(subject)
        if wrapped_sex is not None:  # `Women with a haemoglobin < 12 g/dL`: the sex is never dropped
            rest = self.comparison(meta, [subject, test, *rest])
            return t.And(operands=(t.SexFact(sex=wrapped_sex, span=subject.span), rest), span=span)
        person = self._person(subject, test)
        if person is not None:  # `Patients ≥ 19 years old`, `Women ≥ 18 years`: the age of whom the words name
            subject, sex = person
            if sex is not None:
                rest = self.comparison(meta, [subject, test, *rest])
                return t.And(operands=(t.SexFact(sex=sex, span=subject.span), rest), span=span)
        if isinstance(test, tuple) and test[0] == "either":
            return t.Or(operands=tuple(t.Comparison(subject=subject, test=c, window=window, assessment=assessment,
                                                    span=span) for c in test[1:]), span=span)
        if alternatives:
            test = self._with_alternatives(test, alternatives, span)
        return t.Comparison(subject=subject, test=test, window=window, assessment=assessment, span=span)

    _PERSONS = {"patient": None, "patients": None, "subject": None, "subjects": None, "participant": None,
                "participants": None, "children": None, "child": None, "adults": None, "adult": None,
                "infants": None, "infant": None, "individuals": None, "volunteers": None,
                "women": "female", "woman": "female", "girls": "female", "men": "male", "man": "male", "boys": "male"}

    # Words around the people a line is about: `Patients must be`, `All subjects who are`, `Be`, `Aged`.
    _PERSON_FILLERS = frozenset({"aged", "age", "all", "the", "who", "whose", "must", "should", "will", "shall",
                                 "be", "being", "is", "are"})
    # `Patients with a`, `Subjects must have an`, `Have a`, `A`: the words before the name of what is measured.
    _WRAPPER = re.compile(
        r"(?i)^(?:(?:all\s+)?(?:(?:the|adult|female|male)\s+)?(?P<who>patients?|subjects?|participants?|individuals?|"
        r"volunteers?|adults?|children|child|women|woman|men|man|girls?|boys?)\s+(?:(?:who|that)\s+)?"
        r"(?:(?:must|should|will|shall)\s+)?(?:have|has|had|with|are|is)\s+|(?:(?:must|should)\s+)?(?:have|has)\s+|with\s+)?"
        r"(?P<article>(?:a|an|the)\s+)?(?=\S)")

    def _unwrapped(self, subject):
        """(subject, sex or None) without the sponsor's words before the name: `Patients with a Karnofsky
        Performance Score`, `Have a body weight`, `A body mass index` are the name that follows them.

        A name that is left empty, or that the words are all of, is kept as written."""
        if isinstance(subject, t.Subjects):
            first, sex = self._unwrapped(subject.items[0])
            return attrs.evolve(subject, items=(first, *subject.items[1:])), sex
        if isinstance(subject, t.Ratio):
            first, sex = self._unwrapped(subject.numerator)
            return attrs.evolve(subject, numerator=first), sex
        if not isinstance(subject, t.Measure):
            return subject, None
        name, sex = self._unwrapped_name(subject.name)
        return (attrs.evolve(subject, name=name) if name is not subject.name else subject), sex

    def _unwrapped_name(self, name: t.Name) -> tuple[t.Name, str | None]:
        m = self._WRAPPER.match(name.text)
        if not m or m.end() == 0 or len(name.text[m.end():].split()) < 1:
            return name, None
        rest = name.text[m.end():]
        if rest.split()[0].lower() in self._PERSON_FILLERS | set(self._PERSONS) - {"age"} and not m.group("who"):
            return name, None
        who = (m.group("who") or "").lower()
        return t.Name(rest, span=name.span), self._PERSONS.get(who)

    def _unit_gloss(self, subject, test) -> bool:
        """`< 150 kilograms (kg)`: a single name in parentheses that is the threshold's own unit."""
        method = subject.method if isinstance(subject, t.Measure) else None
        if method is None or method.by or method.params or len(method.names) != 1:
            return False
        units = {th.unit for th in t.thresholds(test) if isinstance(th, t.Quantity) and th.has_unit and th.unit}
        if len(units) != 1:
            return False
        try:
            gloss, unit = make_quantity(1.0, method.names[0]), make_quantity(1.0, units.pop())
            return gloss.dimensionality == unit.dimensionality and abs(gloss.to(unit.units).magnitude - 1) < 1e-9
        except Exception:  # not a unit: a method
            return False

    def _person(self, subject, test):
        """(age subject, sex or None) when the name is only words for people and the test is in time units."""
        if not isinstance(subject, t.Measure) or subject.method is not None:
            return None
        words = subject.name.text.lower().split()
        if any(w not in self._PERSONS and w not in self._PERSON_FILLERS for w in words):
            return None
        if not any(w in self._PERSONS or w in ("aged", "be", "being", "age") for w in words) or words == ["age"]:
            return None
        sexes = {self._PERSONS.get(w) for w in words} - {None}
        if len(sexes) > 1:
            return None
        tests = test[1:] if isinstance(test, tuple) else [test]
        thresholds = [th for x in tests for th in t.thresholds(x)] if all(not isinstance(x, tuple) for x in tests) else []
        if not thresholds or not all(isinstance(th, t.Quantity) and th.has_unit
                                     and str(th.value.dimensionality) == "[time]" for th in thresholds):
            return None
        said = next((w for w in subject.name.text.split() if w.lower() == "age"), "age")  # `must be Age > 18`
        age = t.Measure(name=t.Name(said, span=subject.name.span), method=None, span=subject.span)
        return age, (sexes.pop() if sexes else None)

    def _with_alternatives(self, test, alternatives, span):
        """``≤ 1.5 x ULN (≤ 3 x ULN for Gilbert's syndrome)``: the parenthesised threshold for some patients."""
        if isinstance(test, t.Compare):
            main, alts = test, []
        elif isinstance(test, t.Conditional) and test.main is not None:
            main, alts = test.main, list(test.alternatives)
        else:
            self.errors.append(Diagnostic(
                "E007", "a conditional threshold in parentheses must follow one threshold", span=span,
                hint="write one threshold, then the alternative: 'bilirubin ≤ 1.5 x ULN (≤ 3 x ULN if Gilbert's "
                     "syndrome)'"))
            return test
        for _, cmp_tok, threshold, condition, alt_span in alternatives:
            op = normalise_comparator(cmp_tok) if cmp_tok is not None else main.comparator
            alts.append(t.Alternative(test=t.Compare(op, threshold, span=alt_span), condition=condition,
                                      span=alt_span))
        return t.Conditional(main=main, alternatives=tuple(alts), span=span)

    def _with_method(self, subject, method):
        if isinstance(subject, t.Subjects):
            self.errors.append(Diagnostic(
                "E002", "a method after the threshold cannot say which of several names it belongs to",
                span=method.span, hint="put the method or abbreviation right after the name it belongs to"))
            return subject
        measure = subject.denominator if isinstance(subject, t.Ratio) else subject
        if measure.method is not None:
            self.errors.append(Diagnostic(
                "E002", "a derivation method is given twice", span=method.span,
                hint="write the method once, after the name or after the threshold"))
            return subject
        if isinstance(subject, t.Ratio):
            self.errors.append(Diagnostic(
                "E002", "a derivation method cannot apply to a ratio", span=method.span,
                hint="put the method after the name it applies to"))
            return subject
        return t.Measure(name=subject.name, method=method, span=subject.span)

    @lark.v_args(meta=True)
    def age_comparison(self, meta, items):
        """`≥ 18 years of age`, `At least 18 years old`: a threshold in years with no name is an age."""
        cmp_tok, q = items
        span = self._span(meta)
        if not q.has_unit or str(q.unit).lower() not in ("year", "years", "yr", "yrs", "y"):
            self.errors.append(Diagnostic(
                "E001", f"a threshold without a name: '{cmp_tok} {q.number}{' ' + q.unit if q.unit else ''}'",
                span=span, hint="name what is compared, e.g. 'ECOG ≤ 2'; only an age in years may be written "
                                "without its name ('≥ 18 years' is 'age ≥ 18 years')"))
        if q.has_unit and q.unit != "years" and str(q.unit).lower() in ("year", "yr", "yrs", "y"):
            q = attrs.evolve(q, unit="years", value=make_quantity(_number(q.number), "years"))
        subject = t.Measure(name=t.Name("age", span=self._span(cmp_tok)), method=None, span=self._span(cmp_tok))
        return t.Comparison(subject=subject, test=t.Compare(normalise_comparator(cmp_tok), q, span=span),
                            span=span)

    @lark.v_args(meta=True)
    def chain(self, meta, items):
        low, cmp1, subject, cmp2, high, *rest = items
        op1, op2 = normalise_comparator(cmp1), normalise_comparator(cmp2)
        method = next((x for x in rest if isinstance(x, t.Method)), None)
        window = next((x for x in rest if isinstance(x, t.Quantity)), None)
        if method is not None:
            subject = self._with_method(subject, method)
        span = self._span(meta)
        if op1 in ("<", "<=") and op2 in ("<", "<="):
            low, high = self._borrow_unit(low, high)
            test = t.Between(low=low, high=high, low_inclusive=op1 == "<=", high_inclusive=op2 == "<=",
                             span=span)
        elif op1 in (">", ">=") and op2 in (">", ">="):
            high, low = self._borrow_unit(high, low)
            test = t.Between(low=low, high=high, low_inclusive=op2 == ">=", high_inclusive=op1 == ">=",
                             span=span)
        else:
            self.errors.append(Diagnostic(
                "E003", f"a range must point one way: found '{cmp1}' then '{cmp2}'", span=span,
                hint="write low < value ≤ high, or high > value ≥ low"))
            test = t.Compare(comparator=op2, threshold=high, span=span)
        return t.Comparison(subject=subject, test=test, window=window, span=span)

    @staticmethod
    def _borrow_unit(a, b):
        """In ``200 < PaO2/FiO2 ≤ 300 mmHg`` the bare 200 takes the unit mmHg."""
        if isinstance(a, t.Quantity) and isinstance(b, t.Quantity) and not a.has_unit and b.has_unit:
            try:
                value = make_quantity(_number(a.number), b.unit)
            except UnitSyntaxError:
                return a, b  # the unit itself is wrong: E004 was reported where it is written
            a = t.Quantity(value=value, number=a.number, unit=b.unit, has_unit=True, borrowed=True, span=a.span)
        return a, b

    @lark.v_args(meta=True)
    def single_test(self, meta, items):
        return self._tests([items[0]], self._span(meta))

    @lark.v_args(meta=True)
    def clauses(self, meta, items):
        joins = [" ".join(str(i).replace(",", " , ").split()).lower() for i in items if isinstance(i, lark.Token)]
        clauses = [i for i in items if not isinstance(i, lark.Token)]
        if len(clauses) == 2 and all(c[2] is None for c in clauses) and joins and joins[0].strip(" ,") == "or":
            # `age < 20 or > 70 years`: either bound (the bare one borrows the other's unit)
            (op1, th1, _, s1), (op2, th2, _, s2) = clauses
            th1, th2 = self._borrow_unit(th1, th2)
            th2, th1 = self._borrow_unit(th2, th1)
            # Each bound stands alone in `age < 20 years or age > 70 years`: it keeps the unit it borrowed.
            th1, th2 = (attrs.evolve(x, borrowed=False) if isinstance(x, t.Quantity) else x for x in (th1, th2))
            return ("either", t.Compare(op1, th1, span=s1), t.Compare(op2, th2, span=s2))
        return self._tests(clauses, self._span(meta))

    @lark.v_args(meta=True)
    def two_bounds(self, meta, items):
        """`≥ 18 and < 65 years`: the two bounds of one range, in either order."""
        op1, th1, op2, th2 = normalise_comparator(items[0]), items[1], normalise_comparator(items[2]), items[3]
        span = self._span(meta)
        up = {">": True, ">=": True, "<": False, "<=": False}
        if op1 not in up or op2 not in up or up[op1] == up[op2]:
            self.errors.append(Diagnostic(
                "E003", f"a range needs a lower and an upper bound: found '{items[0]}' and '{items[2]}'", span=span,
                hint="write '≥ 18 and < 65 years', or join two conditions with 'or'"))
            return t.Compare(op1, th1, span=span)
        (lo_op, lo), (hi_op, hi) = ((op1, th1), (op2, th2)) if up[op1] else ((op2, th2), (op1, th1))
        lo, hi = self._borrow_unit(lo, hi)
        hi, lo = self._borrow_unit(hi, lo)
        return t.Between(low=lo, high=hi, low_inclusive=lo_op == ">=", high_inclusive=hi_op == "<=", span=span)

    @lark.v_args(meta=True)
    def clause(self, meta, items):
        cmp_tok, threshold, *cond = items
        return (normalise_comparator(cmp_tok), threshold, cond[0] if cond else None, self._span(meta))

    def _tests(self, clauses, span):
        """One threshold; thresholds by sex; or a threshold with conditional alternatives."""
        if len(clauses) == 1 and clauses[0][2] is None:
            op, threshold, _, cspan = clauses[0]
            return t.Compare(comparator=op, threshold=threshold, span=cspan)
        if len(clauses) > 1 and all(isinstance(c[2], t.SexFact) for c in clauses):
            return t.BySex(branches=tuple(
                t.SexBranch(sex=c[2].sex, test=t.Compare(c[0], c[1], span=c[3]), span=c[3]) for c in clauses),
                span=span)
        first, *others = clauses
        main = None
        if first[2] is None:
            main = t.Compare(first[0], first[1], span=first[3])
        else:
            others = clauses
        if any(c[2] is None for c in others):
            self.errors.append(Diagnostic(
                "E007", "several thresholds, and it is not said whom each applies to", span=span,
                hint="give the first threshold for everyone and the others with their condition: "
                     "'≤ 1.5 x ULN, ≤ 3 x ULN if Gilbert's syndrome'"))
            return main or t.Compare(first[0], first[1], span=first[3])
        alts = tuple(t.Alternative(test=t.Compare(c[0], c[1], span=c[3]), condition=c[2], span=c[3]) for c in others)
        return t.Conditional(main=main, alternatives=alts, span=span)

    _SEX_WORDS = {"male": "male", "males": "male", "men": "male", "man": "male", "female": "female",
                  "females": "female", "women": "female", "woman": "female"}

    @lark.v_args(meta=True)
    def condition(self, meta, items):
        what = items[-1]
        if isinstance(what, lark.Token):  # SEX
            return t.SexFact(sex=str(what).lower(), span=self._span(what))
        if isinstance(what, t.Event) and what.prefix is None and what.grade is None:
            sex = self._SEX_WORDS.get(what.name.text.lower())
            if sex:
                return t.SexFact(sex=sex, span=what.span)
        return what

    @lark.v_args(meta=True)
    def cond_event(self, meta, items):
        return self.event(meta, items)

    @lark.v_args(meta=True)
    def paren_alt(self, meta, items):
        cmp_tok = next((i for i in items if isinstance(i, lark.Token) and i.type == "COMPARATOR"), None)
        rest = [i for i in items if not (isinstance(i, lark.Token) and i.type == "COMPARATOR")]
        threshold, condition = rest[0], rest[1]
        return ("alt", cmp_tok, threshold, condition, self._span(meta))

    @lark.v_args(meta=True)
    def one_of(self, meta, items):
        values = []
        for tok in items:
            values.append(t.Quantity(value=make_quantity(_number(str(tok)), None), number=str(tok), unit=None,
                                     has_unit=False, span=self._span(tok)))
        return t.OneOf(values=tuple(values), span=self._span(meta))

    @lark.v_args(meta=True)
    def normal_range(self, meta, items):
        return t.NormalRange(span=self._span(meta))

    @lark.v_args(meta=True)
    def range_to(self, meta, items):
        low, high = self._borrow_unit(items[0], items[1])
        return t.Between(low=low, high=high, span=self._span(meta))

    @lark.v_args(meta=True)
    def range_between(self, meta, items):
        low, high = self._borrow_unit(items[0], items[1])
        return t.Between(low=low, high=high, span=self._span(meta))

    @lark.v_args(meta=True)
    def subject(self, meta, items):
        if len(items) == 1:
            return items[0]
        return t.Ratio(numerator=items[0], denominator=items[1], span=self._span(meta))

    @lark.v_args(meta=True)
    def subjects(self, meta, items):
        measures = tuple(i for i in items if isinstance(i, t.Measure))
        joins = [" ".join(str(i).lower().split()) for i in items if isinstance(i, lark.Token)]
        words = [j for j in joins if j not in (",", "&")]
        joiner = words[-1] if words else "and"
        return t.Subjects(items=measures, joiner=joiner, span=self._span(meta))

    @lark.v_args(meta=True)
    def measure(self, meta, items):
        return t.Measure(name=items[0], method=items[1] if len(items) > 1 else None, span=self._span(meta))

    @lark.v_args(meta=True)
    def method(self, meta, items):
        names = tuple(i for i in items if isinstance(i, str))
        params = tuple(i for i in items if isinstance(i, t.MethodParam))
        return t.Method(names=names, params=params, span=self._span(meta))

    @lark.v_args(meta=True)
    def method_by(self, meta, items):
        m = self.method(meta, items)
        return attrs.evolve(m, by=True, names=_without_either(m.names))

    @lark.v_args(meta=True)
    def assessment(self, meta, items):
        names = tuple(i for i in items if isinstance(i, str) and not isinstance(i, lark.Token))
        return t.Assessment(names=_without_either(names), span=self._span(meta))

    def method_name(self, items):
        return " ".join(i.text if isinstance(i, t.Name) else str(i) for i in items)

    @lark.v_args(meta=True)
    def method_param(self, meta, items):
        return t.MethodParam(name=items[0].text, value=items[1], span=self._span(meta))

    @lark.v_args(meta=True)
    def quantity(self, meta, items):
        number = str(items[0])
        unit = str(items[1]) if len(items) > 1 else None
        span = self._span(meta)
        restored = None
        if unit is not None:
            unit = re.sub(r"(?i)^(years?|yrs?|months?|weeks?|days?)\s+(?:old|of\s+age)$", r"\1", unit)  # 18 years old: years
            unit = re.sub(r"\s*/\s*", "/", unit)  # g / dL: g/dL
            lost = _LOST_SUPERSCRIPT.fullmatch(unit)
            if lost:  # 100x109/L: the registry text lost the superscript of 10⁹
                restored, unit = unit, f"x 10^{lost.group(1)}/{lost.group(2)}"
        try:
            value = make_quantity(_number(number), unit)
        except UnitSyntaxError:
            near = suggest_unit(unit)
            self.errors.append(Diagnostic(
                "E004", f"unknown unit '{unit}'", span=self._span(items[1]),
                hint=(f"did you mean '{near}'? " if near else "")
                + "write units as clinicians do: mg/dL, µmol/L, 10^9/L, g/L, mL/min, mmHg, %, "
                  "breaths/min, days, months, years"))
            value = make_quantity(_number(number), None)
        return t.Quantity(value=value, number=number, unit=unit, has_unit=unit is not None, restored_from=restored,
                          span=span)

    @lark.v_args(meta=True)
    def uln_multiple(self, meta, items):
        number = str(items[0]) if len(items) > 1 else "1"
        return t.UlnMultiple(factor=_number(number), number=number, span=self._span(meta))

    @lark.v_args(meta=True)
    def lln_multiple(self, meta, items):
        number = str(items[0]) if len(items) > 1 else "1"
        return t.LlnMultiple(factor=_number(number), number=number, span=self._span(meta))

    def window(self, items):
        return items[0]

    # -- events
    @lark.v_args(meta=True)
    def event(self, meta, items):
        prefix = grade = timing = abbreviation = only_if = None
        name = None
        for item in items:
            if isinstance(item, tuple) and item and item[0] == "only_if":
                only_if = item[1]
            elif isinstance(item, t.Method):
                if item.params or len(item.names) != 1:
                    self.errors.append(Diagnostic(
                        "E002", "only a measured or derived value takes a method", span=item.span,
                        hint="in parentheses after a condition, write only its abbreviation: 'Hypertension (HTN)'"))
                else:
                    abbreviation = item.names[0]
            elif isinstance(item, str) and not isinstance(item, t.Name):
                prefix = item
            elif isinstance(item, t.Name):
                name = item
            elif isinstance(item, t.GradeRange):
                grade = item
            elif isinstance(item, t.Timing):
                timing = item
        name, sex = self._unwrapped_name(name) if prefix is None else (name, None)
        event = t.Event(name=name, prefix=prefix, grade=grade, timing=timing, abbreviation=abbreviation,
                        only_if=only_if, span=self._span(meta))
        if sex is not None:  # `Women with breast cancer`: the sex is never dropped
            return t.And(operands=(t.SexFact(sex=sex, span=name.span), event), span=self._span(meta))
        return event

    def only_if(self, items):
        return ("only_if", items[0])

    def event_prefix(self, items):
        word = str(items[0]).split()[0].lower()
        return {"history": "history", "active": "active", "current": "active",
                "taking": "taking", "positive": "positive"}[word]

    @lark.v_args(meta=True)
    def grade(self, meta, items):
        word = " ".join(str(items[0]).split()).lower()
        if word.startswith("nyha"):
            word = "NYHA class"
        values = [self._grade_value(v) for v in items[1:]]
        low = values[0]
        high = values[-1]
        roman = str(items[1]) in ROMAN
        return t.GradeRange(word=word, low=low, high=high, roman=roman, span=self._span(meta))

    @staticmethod
    def _grade_value(tok) -> int:
        s = str(tok)
        return ROMAN[s] if s in ROMAN else int(_number(s))

    @lark.v_args(meta=True)
    def within(self, meta, items):
        return t.Timing(kind="within", duration=items[0], span=self._span(meta))

    @lark.v_args(meta=True)
    def onset_within(self, meta, items):
        return t.Timing(kind="onset_within", duration=items[0], span=self._span(meta))

    @lark.v_args(meta=True)
    def lasting(self, meta, items):
        return t.Timing(kind="lasting", duration=items[1], comparator=normalise_comparator(items[0]),
                        span=self._span(meta))

    @lark.v_args(meta=True)
    def rate(self, meta, items):
        name, cmp_tok, threshold, *rest = items
        return t.Rate(name=name, comparator=normalise_comparator(cmp_tok), threshold=threshold,
                      window=rest[0] if rest else None, span=self._span(meta))

    @lark.v_args(meta=True)
    def attestation(self, meta, items):
        item = items[0]
        if isinstance(item, t.Name):
            return t.Attestation(text=item.text, quoted=False, span=self._span(meta))
        return t.Attestation(text=self._string(item), quoted=True, span=self._span(meta))

    @lark.v_args(meta=True)
    def name(self, meta, items):
        words = [str(w)[1:-1] if str(w).startswith("`") else str(w) for w in items]
        return t.Name(text=" ".join(words), span=self._span(meta))


# ---------------------------------------------------------------- errors
# Every terminal of the grammar, in words: a message never shows a terminal's name.
_TOKEN_DESCRIPTIONS = {
    "COMPARATOR": "a comparator (≥ ≤ > < = ≠, or words such as 'at least')",
    "NUMBER": "a number",
    "BY": "'by' (a derivation method)",
    "_RANGE_DASH": "'-' (a range such as 0-1)",
    "UNIT": "a unit (mg/dL, 10^9/L, %, ...)",
    "ULN_FACTOR": "'x ULN'", "LLN_FACTOR": "'x LLN'",
    "COND_WORD": "'if', 'for' or 'in' (a condition)", "ALT_JOIN": "',' (another threshold)", "_BOUND_AND": "'and' (another bound)",
    "_ALT_OR": "'or'", "SUBJECT_JOIN": "'and', 'or' or ',' between names", "_METHOD_OR": "'or'",
    "ASSESSED_BY": "'assessed by'", "_OF_SCORE": "'of'", "_LABEL_COLON": "':' (before a threshold)", "NORMAL_RANGE": "'within normal limits'", "_AND_OR": "'and/or'",
    "WORD": "a concept name",
    "QUOTED_NAME": "a concept name",
    "GAS_NAME": "a concept name",
    "STRING": 'a quoted sentence "..."',
    "CRITERION_ID": "a criterion id such as I1 or E4.2",
    "_NL": "the end of the line",
    "_INDENT": "an indented line",
    "_DEDENT": "the end of the indented block",
    "LPAR": "'('", "RPAR": "')'", "COMMA": "','", "SLASH": "'/'", "COLON": "':'",
    "SECTION": "'inclusion' or 'exclusion'",
    "LIST_KIND": "'any of', 'all of' or 'none of'",
    "SEX": "'male' or 'female'",
    "GRADE_WORD": "'grade', 'stage' or 'class'",
    "ROMAN": "a roman numeral (I to V)",
    "HISTORY": "'history of'",
    "ACTIVE": "'active'", "CURRENT": "'current'", "TAKING": "'taking'", "POSITIVE": "'positive'",
    "AND": "'and'", "OR": "'or'", "NOT": "'not'", "OF": "'of'", "TO": "'to'", "IF": "'if'", "IN": "'in'",
    "WITHIN": "'within'", "UNLESS": "'unless'", "BETWEEN": "'between'", "ONSET": "'onset within'",
    "LASTING": "'lasting'", "DAILY": "'daily increase'", "INCREASE": "'increase'",
    "ATTESTED": "'attested'", "NOTE": "'note'",
    "PROTOCOL": "'protocol'", "TITLE": "'title'", "VERSION": "'version'", "LOOKBACK": "'lookback'",
    "VOCABULARY": "'vocabulary'", "DEFINE": "'define'", "WHICHEVER": "'(whichever is recorded)'",
    "COMMENT": "a comment",
    "__IGNORE_0": "spaces", "__IGNORE_1": "a line continuation",
    "$END": "the end of the text",
}

# The words of the language, for "did you mean ...?" on a misspelt keyword.
KEYWORDS = (
    "and", "or", "not", "any", "all", "none", "of", "within", "if", "unless", "to", "between",
    "history", "active", "current", "taking", "positive", "onset", "lasting", "daily", "increase",
    "in", "attested", "note", "male", "female", "inclusion", "exclusion", "protocol", "title",
    "version", "lookback", "vocabulary", "define", "grade", "stage", "class",
)

_NAME_TOKENS = {"WORD", "CRITERION_ID", "UNIT", "QUOTED_NAME"}


_FIRST = ("NUMBER", "COMPARATOR", "WORD")


def _describe_expected(expected: set[str]) -> str:
    words = []
    for name in sorted(expected, key=lambda n: (_FIRST.index(n) if n in _FIRST else len(_FIRST), n)):
        desc = _TOKEN_DESCRIPTIONS.get(name)
        if desc is None:  # an anonymous keyword of a future grammar: show the word, never the name
            desc = f"'{name.lower()}'" if name.isupper() and name.isalpha() else "another token"
        if desc not in words:
            words.append(desc)
    if len(words) > 6:
        words = words[:6] + ["..."]
    return ", ".join(words)


def _close_keyword(word: str, *, after_factor: bool = False) -> str | None:
    """The keyword ``word`` is probably a misspelling of, if any."""
    w = word.strip("`").lower()
    if after_factor and w != "uln" and len(w) == 3 and difflib.get_close_matches(w, ["uln"], 1, 0.6):
        return "ULN"
    if len(w) < 4 or w in KEYWORDS or not w.isalpha():
        return None
    found = difflib.get_close_matches(w, KEYWORDS, 1, 0.8)
    return found[0] if found else None


_WORD_BEFORE = re.compile(r"([A-Za-zµμ_×`][A-Za-z0-9µμ_'\-`]*|\*)\s*$")


def _misspelt_keyword(tok: lark.Token, line_text: str) -> tuple[str, str] | None:
    """(word, keyword) when the token, or the word just before it, looks like a misspelt keyword."""
    before = line_text[: max(0, tok.column - 1)]
    prev = _WORD_BEFORE.search(before)
    prev_word = prev.group(1) if prev else ""
    after_factor = prev_word.lower() in ("x", "×", "*", "times")
    value = str(tok.value)
    if tok.type in _NAME_TOKENS and re.fullmatch(r"[A-Za-z]+", value):
        kw = _close_keyword(value, after_factor=after_factor)
        if kw:
            return value, kw
    if prev_word and not after_factor:
        kw = _close_keyword(prev_word)
        if kw:
            return prev_word, kw
    return None


def _previous_content_line(lines: list[str], line: int) -> str:
    for i in range(line - 2, -1, -1):
        stripped = lines[i].split("#", 1)[0].strip()
        if stripped:
            return lines[i]
    return ""


def _indent_of(line_text: str) -> int:
    """Columns of indentation, a tab counting as the indenter counts it."""
    lead = line_text[: len(line_text) - len(line_text.lstrip(" \t"))]
    return lead.count(" ") + lead.count("\t") * _ProtocolIndenter.tab_len


def _hint_for(token_value: str, expected: set[str]) -> str:
    v = token_value.strip()
    if "COMPARATOR" in expected and v in ("=>", "≧", "≦"):
        return "use ≥ or >= for 'at least'"
    if v in ("?",):
        return ("a '?' often stands for a lost ≥ or ≤ in registry text: restore the comparator and "
                "add a note saying so")
    if "UNIT" in expected or "NUMBER" in expected:
        return "a threshold is a number with a unit, e.g. '1.5 x 10^9/L', '60 mL/min', '2.5 x ULN'"
    if "_INDENT" in expected:
        return "indent the rule under its criterion id (two or four spaces)"
    if "STRING" in expected:
        return 'put the sponsor\'s sentence in double quotes after the criterion id'
    if v.lower() in ("and", "or", "not", "of", "to", "if", "within", "in"):
        return (f"'{v}' is a keyword and cannot be part of a concept name; "
                f"write such a name in backticks, e.g. `history of present illness`")
    return "check the spelling and the layout against the language reference (docs/language.md)"


_SECTIONS = ("inclusion", "exclusion")


def _unexpected_token(exc: lark.exceptions.UnexpectedToken, file: str, text: str) -> Diagnostic:
    tok = exc.token
    expected = set(exc.expected) | set(getattr(exc, "accepts", ()) or ())
    lines = text.split("\n")  # lines are counted at "\n" only, as Lark counts them (never at U+2028, \f, \v)
    if tok.type == "$END":
        line = text.count("\n") + 1
        col = len(text.rsplit("\n", 1)[-1]) + 1
        span = Span(file, line, col, line, col + 1)
        return Diagnostic("E001", f"unexpected the end of the text; expected {_describe_expected(expected)}",
                          span=span, hint=_hint_for("", expected))
    line, col = tok.line, tok.column
    end_line = getattr(tok, "end_line", None) or line
    end_col = getattr(tok, "end_column", None) or col + max(1, len(tok.value))
    line_text = lines[line - 1] if 0 < line <= len(lines) else ""
    if tok.type in ("_NL", "_INDENT", "_DEDENT"):
        found = {"_NL": "the end of the line", "_INDENT": "an indented line",
                 "_DEDENT": "the end of an indented block"}[tok.type]
        if tok.type == "_NL":
            col = len(line_text.rstrip()) + 1
        end_line, end_col = line, col + 1
    else:
        found = f"'{tok.value}'"
    span = Span(file, line, col, end_line, end_col)
    message = f"unexpected {found}; expected {_describe_expected(expected)}"
    hint = _hint_for(tok.value, expected)

    starts_line = tok.type not in ("_NL", "_INDENT", "_DEDENT") and not line_text[: col - 1].strip()
    previous = _previous_content_line(lines, line) if starts_line else ""
    section = previous.split("#", 1)[0].strip()
    misspelt = _misspelt_keyword(tok, line_text) if tok.type not in ("_NL", "_INDENT", "_DEDENT") else None
    if starts_line and "_INDENT" in expected and section.lower() in _SECTIONS and _indent_of(previous) == 0:
        message = (f"the criterion {found} is not indented under '{section.lower()}'; "
                   f"expected {_describe_expected(expected)}")
        hint = (f"indent the criterion id under '{section.lower()}' (two spaces), "
                f"and its rule one step further")
    elif misspelt is not None:
        word, keyword = misspelt
        if word == str(tok.value):
            message += f"; did you mean '{keyword}'?"
        else:
            message += f"; did you mean '{keyword}' instead of '{word}'?"
        hint = (f"'{word}' looks like the keyword '{keyword}' misspelt; correct the spelling, or write a "
                f"concept name that really contains '{word}' in backticks")
    elif (starts_line and "_DEDENT" in expected and tok.type in ("CRITERION_ID", "WORD")
          and re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(?:[.\-][A-Za-z0-9]+)*", str(tok.value))):
        hint = (f"if '{tok.value}' starts a new criterion, indent it exactly as much as the criterion "
                f"above it; a rule holds one statement (combine several with 'and', or 'all of')")
    return Diagnostic("E001", message, span=span, hint=hint)


class _IndentationError(lark.exceptions.LarkError):
    """Raised by the indenter, with the line it is about."""

    def __init__(self, message: str, line: int, column: int, hint: str):
        super().__init__(message)
        self.message, self.line, self.column, self.hint = message, line, column, hint


def _syntax_diagnostic(exc: lark.exceptions.LarkError, file: str, text: str) -> Diagnostic:
    if isinstance(exc, lark.exceptions.UnexpectedToken):
        return _unexpected_token(exc, file, text)
    if isinstance(exc, lark.exceptions.UnexpectedCharacters):
        span = Span(file, exc.line, exc.column, exc.line, exc.column + 1)
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        hint = "remove the character, or quote the text it belongs to"
        if ch == "?":
            hint = _hint_for("?", set())
        elif ch == '"':
            hint = "a quoted sentence must end on the same line with a closing \""
        return Diagnostic("E001", f"unexpected character {ch!r}", span=span, hint=hint)
    if isinstance(exc, lark.exceptions.UnexpectedEOF):
        line = text.count("\n") + 1
        return Diagnostic("E001", "the text ends too early", span=Span(file, line, 1, line, 2),
                          hint="finish the rule, or close an open parenthesis")
    if isinstance(exc, _IndentationError):
        return Diagnostic("E005", exc.message, span=Span(file, exc.line, 1, exc.line, max(2, exc.column)),
                          hint=exc.hint)
    # DedentError and friends: inconsistent indentation.
    return Diagnostic("E005", f"inconsistent indentation: {exc}", span=None,
                      hint="indent every criterion the same amount, and its rule one step further")


# ---------------------------------------------------------------- recovery
def _blocks(lines: list[str]) -> list[tuple[int, int, int]]:
    """Split a protocol into independently parsable pieces.

    Returns (section_line, first, last) 0-based line indices: the header (section_line -1)
    and every criterion block (a line at the criterion indentation under a section keyword,
    with its more-indented lines). Blank and comment-only lines join the block before them.
    """
    def content(i: int) -> str:
        return lines[i].split("#", 1)[0].strip()

    out: list[tuple[int, int, int]] = []
    section = -1
    first_section = next((i for i, ln in enumerate(lines)
                          if _indent_of(ln) == 0 and content(i).lower() in _SECTIONS), len(lines))
    if first_section > 0:
        out.append((-1, 0, first_section - 1))
    i = first_section
    criterion_indent: int | None = None
    while i < len(lines):
        if not content(i):
            i += 1
            continue
        indent = _indent_of(lines[i])
        if indent == 0 and content(i).lower() in _SECTIONS:
            section, criterion_indent = i, None
            i += 1
            continue
        if criterion_indent is None:
            criterion_indent = indent
        start = i
        i += 1
        while i < len(lines) and (not content(i) or _indent_of(lines[i]) > min(indent, criterion_indent)):
            i += 1
        out.append((section, start, i - 1))
    return out


def _recover(source: str, file: str, original: str) -> list[Diagnostic]:
    """Parse each criterion block on its own and collect its diagnostics.

    Each piece holds only its block (and a stand-in header and its section line), so
    the whole recovery reads every line a bounded number of times: linear in the file.
    """
    lines = source.split("\n")
    found: list[Diagnostic] = []
    for section, first, last in _blocks(lines):
        # origin[i]: the 0-based line of the source that line i of the piece is (None: stand-in).
        origin: list[int | None] = []
        piece: list[str] = []
        if section >= 0:
            piece += ["protocol RECOVERY", lines[section]]
            origin += [None, section]
        piece += lines[first:last + 1]
        origin += list(range(first, last + 1))
        try:
            _parse("\n".join(piece) + "\n", file, "start", original=original, recover=False)
        except ProtocolError as exc:
            for d in exc.diagnostics:
                if d.span is None or not 1 <= d.span.line <= len(origin):
                    continue
                line = origin[d.span.line - 1]
                if line is None or not first <= line <= last:
                    continue
                end = origin[min(d.span.end_line, len(origin)) - 1]
                end = line + 1 if end is None or end < line else end + 1
                span = attrs.evolve(d.span, line=line + 1, end_line=end)
                found.append(attrs.evolve(d, span=span))
    return found


def _all_diagnostics(first: Diagnostic, source: str, file: str, original: str) -> list[Diagnostic]:
    try:
        recovered = _recover(source, file, original)
    except Exception:  # recovery is a courtesy: never let it hide the first error
        return [first]
    if first.span is None:
        return [first]
    blocks = _blocks(source.split("\n"))
    starts = [f for _, f, _ in blocks]

    def block_of(d: Diagnostic):
        line = d.span.line - 1
        k = bisect.bisect_right(starts, line) - 1  # blocks are in order and do not overlap
        if k >= 0 and blocks[k][1] <= line <= blocks[k][2]:
            return blocks[k][1], blocks[k][2]
        return None

    first_block = block_of(first)
    out = [first]
    seen = {(first.span.line, first.span.column)}
    for d in recovered:
        key = (d.span.line, d.span.column)
        if key in seen:
            continue
        b = block_of(d)
        if first_block is not None and b == first_block:
            continue  # the first error already speaks for its criterion
        if first_block is None and b is not None and b[0] <= first.span.line - 1 <= b[1]:
            continue
        seen.add(key)
        out.append(d)
    out.sort(key=lambda d: (d.span.line, d.span.column))
    return out


# Sponsor-phrasing terminals recognised by what follows them (`and` before a name and a
# comparator joins subjects; `or` before a comparator starts an alternative threshold). The
# LALR parser shares states, so the lexer may offer one where the plain word was meant:
# `uncontrolled disease or active psychosis`. When the parser rejects such a token, it is fed
# again as the plain keyword or as words of a name, and parsing goes on.
_PLAIN_KEYWORDS = {"and": "AND", "or": "OR", "and/or": "_AND_OR", ",": "COMMA", "&": None, "by": "BY", "in": "IN",
                   "if": None, "of": "OF", "within": "WITHIN", "to": "TO", ";": None, ":": "COLON"}
_SOFT_TERMINALS = {"_OF_SCORE", "_BOUND_AND", "SUBJECT_JOIN", "_METHOD_OR", "ALT_JOIN", "_ALT_OR", "COND_WORD", "ASSESSED_BY",
                   "NORMAL_RANGE", "ULN_FACTOR", "LLN_FACTOR", "_LABEL_COLON"}


def _soften(exc) -> bool:
    if not isinstance(exc, lark.exceptions.UnexpectedToken) or exc.token.type not in _SOFT_TERMINALS:
        return False
    tok = exc.token
    parser = exc.interactive_parser
    pieces = re.findall(r"and/or|[A-Za-zµμ_'’\-][A-Za-z0-9µμ_'’\-]*|[,;&:]", str(tok))
    if not pieces:
        return False
    choices = parser.choices()
    plan = []
    for piece in pieces:
        kind = _PLAIN_KEYWORDS.get(piece.lower(), "WORD")
        if kind is None:
            return False
        plan.append(lark.Token.new_borrow_pos(kind, piece, tok))
    if plan[0].type not in choices:
        return False
    try:
        for t_ in plan:
            parser.feed_token(t_)
    except lark.exceptions.UnexpectedToken:
        return False
    postlex = getattr(parser.lexer_thread.lexer, "postlexer", None)
    if postlex is not None:
        postlex._resuming = True  # resume_parse asks the post-lexer for a new stream
    return True


def _ensure_newline(text: str) -> str:
    return text if text.endswith("\n") else text + "\n"


def parse_protocol(text: str, file: str = "<protocol>") -> t.Protocol:
    """Parse a whole protocol; raise ``ProtocolError`` with diagnostics on failure."""
    _refuse_surrogates(text, file)
    source = _ensure_newline(text)
    return _parse(source, file, "start", original=text)


def parse_rule(text: str, file: str = "<rule>") -> t.Rule:
    """Parse a single rule, as ``elig parse`` does.

    A sponsor's sentence may end with a full stop, a semicolon or a comma (`Age >75 years.`):
    it is not part of the rule.
    """
    _refuse_surrogates(text, file)
    # A trailing comma ends a sponsor's clause, except after a list (`any of a, b,`: an item is missing).
    end = r"[.;][ \t]*$" if re.search(r"(?i)\b(?:any|all|none)\s+of\b", text) else r"[.;,][ \t]*$"
    source = _ensure_newline(re.sub(end, "", text.strip("\n")))
    return _parse(source, file, "single_rule", original=text)


def _refuse_surrogates(text: str, file: str) -> None:
    """A lone surrogate (half of a UTF-16 pair, possible only in text built in Python) is no
    character: E001 at its place, instead of an encoding error later."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        column = exc.start - (text.rfind("\n", 0, exc.start) + 1) + 1
        safe = text.encode("utf-8", "backslashreplace").decode("utf-8")
        raise ProtocolError([Diagnostic(
            "E001", f"unexpected character '\\u{ord(text[exc.start]):04x}' (a lone surrogate, not a character)",
            span=Span(file, line, column, line, column + 1),
            hint="the text was built from invalid UTF-16; read the file as UTF-8")], {file: safe}) from None


# How deeply rules may nest: not, parentheses, lists (any of ...) and/or/unless, counted
# together. Sponsors' criteria nest 3 or 4 deep; the limit keeps every later stage (checker,
# evaluator, reports), which walk the tree recursively, far from Python's recursion limit.
MAX_NESTING = 64
_NESTING_RULES = frozenset({"not_", "and_", "or_", "unless", "inline_list", "rule"})


def _check_nesting(tree: lark.Tree, file: str) -> None:
    """E006 at the first rule nested deeper than MAX_NESTING (an iterative walk: no recursion)."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if node.data in _NESTING_RULES:
            depth += 1
            if depth > MAX_NESTING:
                meta = node.meta
                line = getattr(meta, "line", 1)
                column = getattr(meta, "column", 1)
                raise ProtocolError([Diagnostic(
                    "E006", f"the rule nests more than {MAX_NESTING} levels deep (not, and, or, parentheses "
                            f"and lists counted together)",
                    span=Span(file, line, column, line, column + 1),
                    hint="split the rule into criteria, or write a long chain as one list: "
                         "'any of a, b, c' instead of 'any of a and any of b and ...'")], {})
        stack.extend((child, depth) for child in node.children if isinstance(child, lark.Tree))


def _parse(source: str, file: str, start: str, original: str, recover: bool = True):
    try:
        lark_tree = get_parser().parse(source, start=start, on_error=_soften)
    except lark.exceptions.LarkError as exc:
        first = _syntax_diagnostic(exc, file, source)
        diagnostics = [first]
        if recover and start == "start":
            diagnostics = _all_diagnostics(first, source, file, original)
        raise ProtocolError(diagnostics, {file: original}) from None
    try:
        _check_nesting(lark_tree, file)
    except ProtocolError as exc:
        raise ProtocolError(exc.diagnostics, {file: original}) from None
    builder = _Builder(file)
    try:
        node = builder.transform(lark_tree)
    except lark.exceptions.VisitError as exc:  # a bug in the builder, not user error
        raise exc.orig_exc from None
    if builder.errors:
        raise ProtocolError(builder.errors, {file: original})
    if isinstance(node, t.Protocol):
        node = _with_source(node, original)
    return node


def _with_source(protocol: t.Protocol, source: str) -> t.Protocol:
    return attrs.evolve(protocol, source=source)


@functools.lru_cache(maxsize=4096)
def is_plain_name(text: str) -> bool:
    """Whether a concept name can be written without backticks (no keyword inside)."""
    try:
        node = get_parser().parse(f"attested {text}\n", start="single_rule", on_error=_soften)
    except lark.exceptions.LarkError:
        return False
    words = [str(tok) for tok in node.scan_values(lambda v: isinstance(v, lark.Token))]
    return " ".join(words) == text and all(not w.startswith("`") for w in words)


def parse_file(path: str | Path) -> t.Protocol:
    path = Path(path)
    return parse_protocol(path.read_text(encoding="utf-8"), file=str(path))
