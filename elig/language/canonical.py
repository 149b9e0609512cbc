"""Print a tree back as protocol text, in canonical form.

``parse(print(tree)) == tree`` for every tree the parser produces (the
round-trip is property-tested). Canonical form uses the symbolic comparators
(≥ ≤ > < = ≠), ``x ULN``, the author's unit spelling, and ``and``/``or`` with
parentheses only where precedence needs them.
"""

from __future__ import annotations

import json

from elig.language import tree as t
from elig.language.parser import ROMAN, is_plain_name

SYMBOLS = {">=": "≥", "<=": "≤", ">": ">", "<": "<", "==": "=", "!=": "≠"}


def quantity(q: t.Quantity) -> str:
    if not q.has_unit or q.unit is None or q.borrowed:
        return q.number
    unit = q.unit.strip()
    if unit.startswith(("x", "×")) and len(unit) > 1 and (unit[1:].lstrip()[:2] == "10"):
        return f"{q.number} x {unit[1:].strip()}"
    if unit == "%":
        return f"{q.number}%"
    return f"{q.number} {unit}"


def threshold(th) -> str:
    if isinstance(th, (t.UlnMultiple, t.LlnMultiple)):
        word = "ULN" if isinstance(th, t.UlnMultiple) else "LLN"
        return word if th.factor == 1 else f"{th.number} x {word}"
    return quantity(th)


def method(m: t.Method) -> str:
    if m.by and not m.params and len(m.names) > 1:
        return "by " + " or ".join(m.names)
    items = list(m.names) + [f"{p.name}: {quantity(p.value)}" for p in m.params]
    return "(" + ", ".join(items) + ")"


def name(n: t.Name) -> str:

    return n.text if is_plain_name(n.text) else "`" + n.text + "`"


def measure(m: t.Measure) -> str:
    return name(m.name)


def subject(s) -> str:
    if isinstance(s, t.Ratio):
        return f"{measure(s.numerator)}/{measure(s.denominator)}"
    if isinstance(s, t.Subjects):  # each name keeps its abbreviation or method right after it
        return f" {s.joiner} ".join(measure(m) + (f" {method(m.method)}" if m.method else "") for m in s.items)
    return measure(s)


def condition(c) -> str:
    return c.sex if isinstance(c, t.SexFact) else event(c)


def _method_of(s) -> t.Method | None:
    return s.method if isinstance(s, t.Measure) else None


def test(ts) -> str:
    if isinstance(ts, t.Compare):
        return f"{SYMBOLS[ts.comparator]} {threshold(ts.threshold)}"
    if isinstance(ts, t.BySex):
        return ", ".join(f"{SYMBOLS[b.test.comparator]} {threshold(b.test.threshold)} if {b.sex}" for b in ts.branches)
    if isinstance(ts, t.Conditional):
        parts = [test(ts.main)] if ts.main is not None else []
        parts += [f"{test(a.test)} if {condition(a.condition)}" for a in ts.alternatives]
        return ", ".join(parts)
    if isinstance(ts, t.OneOf):
        numbers = [v.number for v in ts.values]
        return ", ".join(numbers[:-1]) + f" or {numbers[-1]}"
    if isinstance(ts, t.NormalRange):
        return "within normal limits"
    if isinstance(ts, t.Between):
        raise AssertionError("ranges are printed by comparison()")
    raise TypeError(ts)


def comparison(c: t.Comparison) -> str:
    parts = []
    m = _method_of(c.subject)
    if isinstance(c.test, t.Between):
        b = c.test
        if b.low_inclusive and b.high_inclusive:
            parts.append(f"{subject(c.subject)} {threshold(b.low)} to {threshold(b.high)}")
        else:
            lo = "≤" if b.low_inclusive else "<"
            hi = "≤" if b.high_inclusive else "<"
            parts.append(f"{threshold(b.low)} {lo} {subject(c.subject)} {hi} {threshold(b.high)}")
    else:
        parts.append(f"{subject(c.subject)} {test(c.test)}")
    if m is not None:
        parts.append(method(m))
    if c.assessment is not None:
        parts.append("assessed by " + " or ".join(c.assessment.names))
    if c.window is not None:
        parts.append(f"within {quantity(c.window)}")
    return " ".join(parts)


def _roman(n: int) -> str:

    return next((text for text, value in ROMAN.items() if value == n), str(n))


def event(e: t.Event) -> str:
    parts = []
    if e.prefix == "history":
        parts.append("history of")
    elif e.prefix:
        parts.append(e.prefix)
    parts.append(name(e.name))
    if e.abbreviation is not None:
        parts.append(f"({e.abbreviation})")
    if e.grade is not None:
        g = e.grade
        show = _roman if g.roman else str
        parts.append(f"{g.word} {show(g.low)}" + (f" to {show(g.high)}" if g.high != g.low else ""))
    if e.timing is not None:
        tm = e.timing
        if tm.kind == "within":
            parts.append(f"within {quantity(tm.duration)}")
        elif tm.kind == "onset_within":
            parts.append(f"onset within {quantity(tm.duration)}")
        else:
            parts.append(f"lasting {SYMBOLS[tm.comparator]} {quantity(tm.duration)}")
    if e.only_if is not None:
        parts.append(f"(if of {name(e.only_if)})")
    return " ".join(parts)


_PRECEDENCE = {t.Unless: 0, t.Or: 1, t.Whichever: 1, t.And: 2, t.Not: 3}


def _prec(node) -> int:
    if isinstance(node, t.ListOf):
        return 0 if not node.block else 4  # an inline list swallows commas: parenthesise inside others
    return _PRECEDENCE.get(type(node), 4)


def _wrap(node, min_prec: int) -> str:
    text = rule(node)
    return f"({text})" if _prec(node) < min_prec else text


def rule(node) -> str:
    """One rule on one line (block lists are printed inline)."""
    if isinstance(node, t.Comparison):
        return comparison(node)
    if isinstance(node, t.Event):
        return event(node)
    if isinstance(node, t.SexFact):
        return node.sex
    if isinstance(node, t.Rate):
        text = f"daily increase in {name(node.name)} {SYMBOLS[node.comparator]} {quantity(node.threshold)}"
        if node.window is not None:
            text += f" within {quantity(node.window)}"
        return text
    if isinstance(node, t.Attestation):
        if node.quoted:
            return "attested " + json.dumps(node.text, ensure_ascii=False)

        return "attested " + (node.text if is_plain_name(node.text) else json.dumps(node.text, ensure_ascii=False))
    if isinstance(node, t.Not):
        return "not " + _wrap(node.operand, 3)
    if isinstance(node, t.And):
        return " and ".join(_wrap(o, 3) for o in node.operands)
    if isinstance(node, t.Or):
        return " or ".join(_wrap(o, 2) for o in node.operands)
    if isinstance(node, t.Whichever):
        return " or ".join(_wrap(o, 2) for o in node.operands) + " (whichever is recorded)"
    if isinstance(node, t.Unless):
        return f"{_wrap(node.rule, 1)} unless {_wrap(node.exception, 1)}"
    if isinstance(node, t.ListOf):
        return f"{node.kind} of " + ", ".join(_wrap(i, 1) for i in node.items)
    raise TypeError(f"cannot print {type(node).__name__}")


def rule_lines(node, indent: str, step: str = "  ") -> list[str]:
    """A rule as statement lines: block lists keep their indented layout."""
    if isinstance(node, t.ListOf) and node.block:
        lines = [f"{indent}{node.kind} of"]
        for item in node.items:
            lines.extend(rule_lines(item, indent + step, step))
        return lines
    return [indent + rule(node)]


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def definition(d: t.Definition) -> str:
    return f"define {name(d.name)}: {rule(d.rule)}"


def protocol(p: t.Protocol) -> str:
    """The whole protocol in canonical layout (comments are not part of the tree)."""
    lines = [f"protocol {p.id}"]
    if p.title is not None:
        lines.append(f"  title {_string(p.title)}")
    if p.version is not None:
        lines.append(f"  version {_string(p.version)}")
    if p.lookback is not None:
        lines.append(f"  lookback {quantity(p.lookback)}")
    for v in p.vocabularies:
        lines.append(f"  vocabulary {_string(v.path)}")
    for d in p.definitions:
        lines.append(f"  {definition(d)}")
    current = None
    for c in p.criteria:
        if c.section != current:  # keep the author's order of sections and criteria
            current = c.section
            lines.append("")
            lines.append(current)
        if True:
            head = f"  {c.id}" + (f" {_string(c.sentence)}" if c.sentence is not None else "")
            lines.append(head)
            lines.extend(rule_lines(c.rule, "    "))
            for n in c.notes:
                lines.append(f"    note {_string(n)}")
    return "\n".join(lines) + "\n"
