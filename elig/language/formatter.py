"""Format protocol text in the canonical layout, keeping comments.

The layout is ``elig.language.canonical``'s: two spaces per level, the header items
under ``protocol``, one criterion per block (id and sponsor's sentence, the
rule one level deeper, then its notes), one blank line before each section.
``parse(format_text(x)) == parse(x)`` and ``format_text`` is idempotent.

The tree holds no comments, so they are recovered from the source lines. The
source is cut into *logical lines* (a physical line, joined with the lines
that follow while a parenthesis is open or a line ends with a backslash), and
each logical line is matched, in order, with the line the printer writes for
it: the protocol line, header items by keyword, section keywords, criterion
heads, rule lines and notes. A whole-line comment goes before the printed line
of the next logical line, at its indentation; a trailing comment stays at the
end of its line. A line that would collect two trailing comments (a rule
spread over several lines in the source) gets them as whole-line comments
above it instead, so nothing is lost and the result is stable.
"""

from __future__ import annotations


import attrs

from elig.language import canonical, tree as t
from elig.diagnostics import ProtocolError
from elig.language.parser import parse_protocol

STEP = "  "


@attrs.define
class _Logical:
    text: str  # the code, comments removed, continuation lines joined
    line: int  # first physical line, 1-based
    comments: list = attrs.field(factory=list)  # (kind, text): kind "lead" | "trail" | "inner"


@attrs.define
class _Slot:
    """One printed line and the comments that belong to it."""

    indent: str
    text: str
    lead: list = attrs.field(factory=list)
    trail: list = attrs.field(factory=list)
    blank_before: bool = False


def split_comment(line: str) -> tuple[str, str | None]:
    """Split a physical line into code and comment (``#`` outside strings and backticks)."""
    in_string = in_tick = False
    i = 0
    while i < len(line):
        ch = line[i]
        if in_string:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_string = False
        elif in_tick:
            if ch == "`":
                in_tick = False
        elif ch == '"':
            in_string = True
        elif ch == "`":
            in_tick = True
        elif ch == "#":
            return line[:i], line[i:].rstrip()
        i += 1
    return line, None


def _paren_delta(code: str) -> int:
    depth = 0
    in_string = in_tick = False
    i = 0
    while i < len(code):
        ch = code[i]
        if in_string:
            if ch == "\\":
                i += 2
                continue
            in_string = ch != '"'
        elif in_tick:
            in_tick = ch != "`"
        elif ch == '"':
            in_string = True
        elif ch == "`":
            in_tick = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        i += 1
    return depth


def logical_lines(text: str) -> tuple[list[_Logical], list[str]]:
    """The source's logical lines, and the whole-line comments after the last one."""
    out: list[_Logical] = []
    pending: list[str] = []  # whole-line comments waiting for the next logical line
    current: _Logical | None = None
    depth = 0
    continued = False
    for number, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), start=1):
        code, comment = split_comment(raw)
        stripped = code.strip()
        if current is not None and (depth > 0 or continued):
            if comment is not None:
                current.comments.append(("inner", comment))
            if stripped:
                current.text += " " + stripped
            depth += _paren_delta(code)
            continued = stripped.endswith("\\")
            if continued:
                current.text = current.text[:-1].rstrip()
            if depth <= 0 and not continued:
                current = None
            continue
        if not stripped:
            if comment is not None:
                pending.append(comment)
            continue
        current = _Logical(stripped, number, [("lead", c) for c in pending])
        pending = []
        if comment is not None:
            current.comments.append(("trail", comment))
        out.append(current)
        depth = _paren_delta(code)
        continued = stripped.endswith("\\")
        if continued:
            current.text = current.text[:-1].rstrip()
        if depth <= 0 and not continued:
            current = None
    return out, pending


def _first_word(text: str) -> str:
    return text.split(None, 1)[0] if text.split() else ""


def _layout(p: t.Protocol) -> tuple[list[_Slot], dict]:
    """The printed lines of a protocol and, per source role, the slot each role maps to."""
    slots: list[_Slot] = [_Slot("", f"protocol {p.id}")]
    roles: dict = {("protocol",): 0}
    header = []
    if p.title is not None:
        header.append(("title", f"title {canonical._string(p.title)}"))
    if p.version is not None:
        header.append(("version", f"version {canonical._string(p.version)}"))
    if p.lookback is not None:
        header.append(("lookback", f"lookback {canonical.quantity(p.lookback)}"))
    for i, v in enumerate(p.vocabularies):
        header.append((f"vocabulary{i}", f"vocabulary {canonical._string(v.path)}"))
    for k, d in enumerate(p.definitions):
        header.append((("define", k), canonical.definition(d)))
    for key, text in header:
        roles[("header", key)] = len(slots)
        slots.append(_Slot(STEP, text))
    current = None
    for i, c in enumerate(p.criteria):
        if c.section != current:
            current = c.section
            roles[("section", i)] = len(slots)
            slots.append(_Slot("", current, blank_before=True))
        roles[("crit", i)] = len(slots)
        head = c.id + (f" {canonical._string(c.sentence)}" if c.sentence is not None else "")
        slots.append(_Slot(STEP, head))
        for j, line in enumerate(canonical.rule_lines(c.rule, STEP * 2, STEP)):
            roles[("rule", i, j)] = len(slots)
            stripped = line.lstrip(" ")
            slots.append(_Slot(line[: len(line) - len(stripped)], stripped))
        for k, n in enumerate(c.notes):
            roles[("note", i, k)] = len(slots)
            slots.append(_Slot(STEP * 2, f"note {canonical._string(n)}"))
    return slots, roles


def _assign(p: t.Protocol, lines: list[_Logical]) -> list[tuple]:
    """The role of each source logical line, read in order against the tree."""
    rule_counts = [len(canonical.rule_lines(c.rule, "", STEP)) for c in p.criteria]
    roles = []
    crit = -1
    vocabularies = 0
    defines = 0
    remaining_rules = remaining_notes = 0
    for n, ln in enumerate(lines):
        word = _first_word(ln.text)
        if n == 0:
            roles.append(("protocol",))
        elif crit < 0 and word.lower() in ("title", "version", "lookback"):
            roles.append(("header", word.lower()))
        elif crit < 0 and word.lower() == "vocabulary":
            roles.append(("header", f"vocabulary{vocabularies}"))
            vocabularies += 1
        elif crit < 0 and word.lower() == "define":
            roles.append(("header", ("define", defines)))
            defines += 1
        elif remaining_rules > 0:
            roles.append(("rule", crit, rule_counts[crit] - remaining_rules))
            remaining_rules -= 1
        elif remaining_notes > 0 and word == "note":
            roles.append(("note", crit, len(p.criteria[crit].notes) - remaining_notes))
            remaining_notes -= 1
        elif ln.text in ("inclusion", "exclusion"):
            roles.append(("section", crit + 1))
        else:
            crit += 1
            if crit >= len(p.criteria):
                raise _LayoutMismatch(ln.line)
            roles.append(("crit", crit))
            remaining_rules = rule_counts[crit]
            remaining_notes = len(p.criteria[crit].notes)
    return roles


class _LayoutMismatch(Exception):
    """The source's lines could not be matched with the tree (a bug, reported as such)."""


def format_tree(p: t.Protocol, source: str) -> str:
    slots, where = _layout(p)
    lines, tail = logical_lines(source)
    try:
        roles = _assign(p, lines)
    except _LayoutMismatch:
        roles = [("crit", len(p.criteria))] * len(lines)  # keep every comment, at the end
    header_comments: list[str] = []
    end_comments: list[str] = []
    for ln, role in zip(lines, roles):
        index = where.get(role)
        if index is None and role[0] == "section":  # a repeated section keyword merged away
            index = where.get(("crit", role[1]))
        leads = [c for kind, c in ln.comments if kind == "lead"]
        rest = [c for kind, c in ln.comments if kind != "lead"]
        if index is None:
            end_comments.extend(leads + rest)
            continue
        slot = slots[index]
        if role == ("protocol",):
            header_comments.extend(leads)  # comments above `protocol` stay at the top of the file
        else:
            slot.lead.extend(leads)
        if role[0] == "section" and where.get(role) is None:
            slot.lead.extend(rest)
        else:
            slot.trail.extend(rest)
    end_comments.extend(tail)
    out: list[str] = [c for c in header_comments]
    for slot in slots:
        if len(slot.trail) > 1:
            slot.lead.extend(slot.trail)
            slot.trail = []
        if slot.blank_before:
            out.append("")
        out.extend(slot.indent + c for c in slot.lead)
        line = slot.indent + slot.text
        if slot.trail:
            line += "  " + slot.trail[0]
        out.append(line)
    if end_comments:
        out.append("")
        out.extend(end_comments)
    return "\n".join(out) + "\n"


def format_text(text: str, file: str = "<protocol>") -> str:
    """The protocol text in canonical layout, comments kept; raise ``ProtocolError`` if it does not parse."""
    tree = parse_protocol(text, file=file)
    return format_tree(tree, text)
