"""``elig draft``: from a registry's eligibility text to a draft protocol.

The text is read as registries publish it (``../shared/seeds/``): an ``Inclusion
Criteria`` heading and an ``Exclusion Criteria`` heading, each followed by
bullets (``*``, ``•``, ``-``), numbered items (``1.``, ``2)``) or one paragraph
of items separated by numbers or semicolons. Every item becomes a criterion with
the sponsor's sentence. An item elig can read becomes its rule; any other item
becomes ``attested "<sentence>"`` with a ``note "TODO: <why>"`` that ``elig lint``
lists (W212), so nothing the sponsor wrote is lost or silently dropped.

An item is read as written first; then with the words sponsors put around a
rule taken off (``Patients must have ...``, a final full stop, ``at screening``)
and with age phrasings written as a rule (``≥ 18 years of age`` is
``age ≥ 18 years``). The reading that checks without errors is kept.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import attrs
import click

from elig.diagnostics import ProtocolError
from elig.engine import checker
from elig.language import canonical, parser
from elig.terminology.vocabulary import default_vocabulary

_HEADING = re.compile(r"(?i)\b(inclusion|exclusion)\s+criteria\s*:?")
_BULLET = re.compile(r"^\s*(?:[*•·▪◦\-–]|\d{1,2}[.)](?!\d)|\(\d{1,2}\)|[a-z][.)](?=\s))\s*")
_NUMBERED = re.compile(r"(?:(?<=^)|(?<=[\s;.]))(\d{1,2})[.)]\s+(?=\D)")


@attrs.frozen
class Item:
    section: str  # inclusion | exclusion
    id: str
    sentence: str


@attrs.frozen
class Reading:
    """How one sponsor's sentence was encoded: a rule's text, or why not."""

    rule: str | None
    why: str | None = None
    warnings: tuple[str, ...] = ()


# ---------------------------------------------------------------- splitting the registry text
def _clean(text: str) -> str:
    text = text.replace("\\^", "^").replace("\\", "")
    return " ".join(text.split()).strip(" ;")


def _sections(text: str) -> list[tuple[str, str]]:
    """(section, body) for each criteria heading, in order; the body runs to the next heading."""
    marks = list(_HEADING.finditer(text))
    out = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        out.append((m.group(1).lower(), text[m.end():end]))
    return out


def _end_of_list(lines: list[str]) -> list[str]:
    """The lines of a criteria list: they stop at the first unbulleted paragraph after a blank line."""
    kept: list[str] = []
    seen_item = blank = False
    for line in lines:
        if not line.strip():
            blank = True
            continue
        bulleted = bool(_BULLET.match(line))
        if seen_item and blank and not bulleted:
            break
        kept.append(line)
        seen_item = seen_item or bulleted
        blank = False
    return kept


def _items_of(body: str) -> list[str]:
    lines = body.split("\n")
    first = next((ln for ln in lines if ln.strip()), "")
    if _BULLET.match(first) and not _NUMBERED.search(first[_BULLET.match(first).end():]):
        items: list[str] = []
        for line in _end_of_list(lines):
            if _BULLET.match(line):
                items.append(_BULLET.sub("", line, count=1))
            elif items:
                items[-1] += " " + line.strip()
            else:
                items.append(line.strip())
        return [_clean(i) for i in items if _clean(i)]
    # One paragraph: numbered items (1. ... 2. ...), else items separated by semicolons.
    para = _clean(body.split("\n\n")[0] if "\n\n" in body.strip("\n") else body)
    numbered = list(_NUMBERED.finditer(para))
    if len(numbered) >= 2 and numbered[0].group(1) == "1":
        parts = []
        for i, m in enumerate(numbered):
            end = numbered[i + 1].start() if i + 1 < len(numbered) else len(para)
            parts.append(para[m.end():end])
        return [_clean(p) for p in parts if _clean(p)]
    return [_clean(p) for p in para.split(";") if _clean(p)]


def split_criteria(text: str) -> list[Item]:
    """The criteria of a registry text; an item with several `;`-separated parts is numbered n.1, n.2, ..."""
    out: list[Item] = []
    for section, body in _sections(text):
        prefix = "I" if section == "inclusion" else "E"
        n = sum(1 for i in out if i.section == section)
        numbers = {}
        for k, item in enumerate(_items_of(body), start=1):
            parts = [_clean(p) for p in re.split(r";\s*", item) if _clean(p)]
            base = f"{prefix}{k + n}" if section not in numbers else f"{prefix}{k}"
            if len(parts) > 1:
                out.extend(Item(section, f"{base}.{j}", p) for j, p in enumerate(parts, start=1))
            else:
                out.append(Item(section, base, item))
        numbers[section] = True
    return out


# ---------------------------------------------------------------- reading one sentence
_LEADING = re.compile(
    r"(?i)^(?:all\s+)?(?:(?:male\s+or\s+female|men\s+and\s+women|both\s+sexes|adults?|female|male)\s+)?(?:patients?|subjects?|participants?|"
    r"individuals?|women|men|volunteers?|people|those)?\s*(?:who\s+)?(?:must\s+|should\s+)?(?:have|has|had|with|be|are|is)?"
    r"\s*(?:an?\s+|the\s+)?(?:documented\s+)?")
_TRAILING = re.compile(
    r"(?i)[\s,;]*(?:\(?\s*(?:at|during|on)\s+(?:the\s+)?(?:time\s+of\s+)?(?:screening|baseline|enrol+ment|"
    r"registration|study\s+entry|randomi[sz]ation|inclusion|discharge|admission|hospitali[sz]ation|signing\s+(?:the\s+|of\s+)?(?:informed\s+)?consent|"
    r"(?:informed\s+)?consent)\b[^()]*\)?|\.)\s*$")
_PRIOR = re.compile(r"(?i)(?:,?\s*(?:obtained|measured|performed|done|assessed|drawn)\s+)?\b(within\s+(?:the\s+)?"
                    r"(?:last\s+|past\s+|previous\s+)?\d+\s+(?:days?|weeks?|months?|years?))"
                    r"\s+(?:prior\s+to|before|of|from)\s+.*$")
_AGE = [
    # ≥ 18 years of age, > 18 years old, aged ≥ 18 years, age ≥ 18 years, is equal to or greater than 18 years
    (re.compile(r"(?i)^(?:age[ds]?\s*(?:of\s+)?(?:is\s+)?)?(?P<cmp>[^\d()]{1,32}?)\s*(?P<n>\d+)"
                r"\s*(?:years?|yrs?|y)\b(?:\s+(?:of\s+age|old))?(?:\s+(?:or\s+older|and\s+older))?$"),
     lambda m: _age_rule(m['cmp'], m['n'])),
    # 18 years or older, 18 years of age or older, aged 18 years and above
    (re.compile(r"(?i)^(?:age[d]?\s*)?(?P<n>\d+)\s*(?:years?|yrs?)\s*(?:of\s+age\s+|old\s+)?(?:or|and)\s+"
                r"(?:older|over|above|greater)$"), lambda m: f"age ≥ {m['n']} years"),
    # between 18 and 75 years (of age), aged 18-75 years, age 18 to 75 years
    (re.compile(r"(?i)^(?:age[ds]?\s*(?:of\s+|range\s+)?)?(?:between\s+)?(?P<a>\d+)\s*(?:years?\s*)?(?:-|–|to|and)\s*"
                r"(?P<b>\d+)\s*(?:years?|yrs?|y)\b(?:\s+(?:of\s+age|old))?(?:,?\s+inclusive)?$"),
     lambda m: f"age {m['a']} to {m['b']} years"),
]
def _with_sex(sentence: str, rule: str) -> str:
    """`Women at least 18 years of age` is female and aged ≥ 18: the sex is never dropped."""
    words = set(re.findall(r"[a-z]+", sentence.lower().split("year")[0]))
    female = bool(words & {"female", "females", "women", "woman", "girls", "girl"})
    male = bool(words & {"male", "males", "men", "man", "boys", "boy"})
    if female and not male:
        return f"female and {rule}"
    if male and not female:
        return f"male and {rule}"
    return rule


def _age_rule(cmp: str, n: str) -> str | None:
    words = " ".join(cmp.lower().split())
    op = _AGE_CMP.get(words)
    if op is None:
        try:
            op = canonical.SYMBOLS[parser.normalise_comparator(words)]
        except KeyError:
            return None
    return f"age {op} {n} years"


_AGE_CMP = {"equal or above": "≥", "equal or superior to": "≥", "above": ">", "below": "<",
            "older": ">", ">/=": "≥", "</=": "≤", "at least": "≥", "greater than": ">", "greater than or equal to": "≥", "older than": ">",
            "younger than": "<", "less than": "<", "under": "<", "over": ">"}
_SUBJECT_AGE = re.compile(r"(?i)^(?:(?:male|female|men|women|patients?|subjects?|participants?|adults?|older|"
                          r"patients?\s+is|the\s+patient\s+is|must\s+be|be)"
                          r"(?:\s+(?:or|and)\s+(?:male|female|men|women))?\s*,?\s*)+(?:aged?\s*|who\s+are\s+)?")


_LABEL = re.compile(r"^[A-Za-z][A-Za-z ()/\-]{2,60}:\s*(?=\S)")  # `Biochemical examination: TBil ≤ ...`


# 4.1.13, 2), a., •: the sponsor's numbering or bullet before the sentence
_NUMBERING = re.compile(r"^\s*(?:[•·▪◦*\-–]\s*|\d{1,2}(?:\.\d{1,2})+\.?\s+(?=[A-Za-z])|\d{1,2}[.)]\s+(?=[A-Za-z])|"
                        r"\(?[a-z]\)\s+|[a-z]\.\s+(?=[A-Z]))")


def _prepare(sentence: str) -> str:
    """What the sponsor typed around the sentence, taken off before any reading."""
    text = _NUMBERING.sub("", sentence.strip(), count=1)
    text = re.sub(r"([<>])\s+=(?=\s*\d)", r"\1=", text)  # > = 4 is ≥ 4, not a lost comparator
    if text.count(")") > text.count("(") and text.rstrip(" .;,").endswith(")"):
        text = text.rstrip(" .;,")[:-1]  # serum creatinine ≥ 1.5 mg/dL): an unbalanced parenthesis
    return text.strip().strip(",;")


def _tidy(text: str) -> str:
    text = re.sub(r"(?i)\b([a-z]+)\s+\1\b(?!\s*\d)", r"\1", text)  # greater greater than: a doubled word
    text = re.sub(r"(?i)\b(greater|less|more)\s+(?=\d)", r"\1 than ", text)  # Platelet count greater 100,000/mm3
    text = re.sub(r"(?i)\bof\s+(greater|less|more)\s+than\b", r"\1 than", text)  # of greater than 60
    text = re.sub(r"(?i)\s*\((?:see|refer\s+to|as\s+defined)\b[^()]*\)", "", text)  # (See "Definitions" below)
    text = re.sub(r"\s+&\s+", " and ", text)
    text = re.sub(r"(?i),?\s+with\s+or\s+without\b.*$", "", text)  # with or without medication: no condition
    # 7.0% or more, 18 years or older: the bound written after the number
    text = re.sub(r"(?i)\b(?:of\s+)?(\d[\d,.]*\s*(?:%|[A-Za-zµ/^0-9²³]+)?)\s+or\s+(?:more|greater|higher|above|over|older)\b"
                  r"(?!\s*(?:than|\d))", r"≥ \1", text)
    text = re.sub(r"(?i)\b(?:of\s+)?(\d[\d,.]*\s*(?:%|[A-Za-zµ/^0-9²³]+)?)\s+or\s+(?:less|lower|below|fewer|under|younger)\b"
                  r"(?!\s*(?:than|\d))", r"≤ \1", text)
    text = re.sub(r"(?i)\bwithin\s+(?:the\s+)?(?:last|past|previous|preceding)\s+(?=\d)", "within ", text)
    # serum hemoglobin level < 10 g/dL, Bicarbonate - Concentration ≥ 27: words that do not change what is measured
    text = re.sub(r"(?i)\s*-?\s*\b(?:levels?|concentrations?|values?)\b(?=\s*(?:of\s+)?(?:[≥≤<>]|(?:greater|less|more)\s+than|"
                  r"(?:below|above|under|over|between|exceeding)\s+\d))",
                  "", text)
    # 10 Gm/dL, 10 gm%, 10 g%: grams per decilitre as older reports write them
    text = re.sub(r"(?<=\d)\s*(?:[Gg]m\s*/\s*dl|[Gg]m\s*/\s*dL|g(?:m)?\s*%)(?![A-Za-z])", " g/dL", text)
    # Karnofsky Performance Status must be > 60: the verb between the name and its threshold
    text = re.sub(r"(?i)\s+(?:must|should|shall|will)\s+be\s+(?=[≥≤<>]|(?:greater|less|more|at\s+least|at\s+most|no\s+more)\b)",
                  " ", text)
    # kg/meter square, kg per square metre: BMI's unit in words
    text = re.sub(r"(?i)\bkg\s*(?:/|per)\s*(?:square\s+met(?:er|re)s?|met(?:er|re)s?\s+squared?|m\s+squared?)\b", "kg/m2", text)
    # kg∙m-2, kg.m-2, kg m-2: per square metre written as a negative power
    text = re.sub(r"(?i)\b(kg)\s*[∙·.]?\s*m\s*(?:-2|⁻²|\^-2)(?![0-9])", r"\1/m2", text)
    text = re.sub(r"(\d)\s*points?\b", r"\1", text)  # ECOG 0 to 3 points: a score has no unit
    text = re.sub(r"(?<=\w) - (?=\w)", "-", text)  # Cockcroft - Gault
    text = re.sub(r"\(\s*[≥≤<>]=?\s*\)", "", text)  # at least 18 years old (≥): the sponsor's gloss
    text = re.sub(r">\s+=", "≥", re.sub(r"<\s+=", "≤", text))  # > = 4
    text = re.sub(r"(?i)\b(than|least|most)(\d)", r"\1 \2", text)  # greater than100 g/L
    text = re.sub(r"(?<=[A-Za-zµ0-9]) / (?=[A-Za-zµ0-9])", "/", text)  # kg / m2
    text = re.sub(r"(?<=[a-z])\((?=[A-Z])", " (", text)  # index(BMI)
    # Eastern Cooperative Oncology Group (ECOG) performance status ≥ 3: the abbreviation stands for the words before it
    text = re.sub(r"^[A-Za-z][A-Za-z'\- ]*?\s*\(([A-Z][A-Za-z0-9\-]{1,8})\)\s+(?=[a-z][a-z ]*?\s*(?:[≥≤<>=]|of\b|[a-z]+\s+than\b|at\s+least\b))",
                  r"\1 ", text)
    text = re.sub(r"(?i)\s+(?:will|would|are|is)\s+be\s+(?:recruited|included|eligible|excluded|enrolled)\s*$", "", text)
    text = re.sub(r"(?i)\bmm\s*/?\s*Hg\b", "mmHg", text)  # mm Hg, mm/Hg: millimetres of mercury
    # by multi-gated acquisition (MUGA) or echocardiography: a method's abbreviation names nothing more
    text = _method_abbreviations(text)
    # resting heart rate, resting ejection fraction: the value at rest is the one a record holds
    text = re.sub(r"(?i)\bresting\s+(?=(?:heart\s+rate|pulse(?:\s+rate)?|(?:left\s+ventricular\s+)?ejection\s+fraction|"
                  r"LVEF|EF|(?:systolic\s+|diastolic\s+)?blood\s+pressure|BP|SBP|DBP|respiratory\s+rate)\b)", "", text)
    # blood pressure > 150/100 mmHg: either value above its own threshold (the way hypertension is defined)
    text = re.sub(r"(?i)\b(?:blood\s+pressure|BP)\s+(?:of\s+)?(?:persistently\s+)?(>|≥)\s*(\d+)\s*/\s*(\d+)\s*mmHg",
                  r"systolic blood pressure \1 \2 mmHg or diastolic blood pressure \1 \3 mmHg", text)
    return text


def _method_abbreviations(text: str) -> str:
    """`... by multi-gated acquisition (MUGA) or echocardiography`: after `by`, an abbreviation in
    parentheses that abbreviates the method before it is dropped (it names nothing more)."""
    m = re.search(r"(?i)\bby\s+(?!.*\bby\s)", text)
    if not m:
        return text
    head, tail = text[:m.end()], text[m.end():]
    tail = re.sub(r"([A-Za-z][A-Za-z\-]*(?: [A-Za-z][A-Za-z\-]*){0,4})\s*\(([A-Z][A-Za-z0-9\-]{1,11})\)",
                  lambda k: k.group(1) if parser.is_abbreviation(k.group(2), k.group(1).split(" or ")[-1])
                  else k.group(0), tail)
    return head + tail


# ---------------------------------------------------------------- age phrasings
# Words sponsors use for comparators in age lines (and, via _words_to_symbols, elsewhere).
_WORD_CMP = [
    (r"(?:equal\s+(?:to\s+)?or\s+(?:superior|greater|more|above|older)\s+(?:to|than)?|equal\s+or\s+above)", "≥"),
    (r"(?:equal\s+(?:to\s+)?or\s+(?:inferior|less|below|younger)\s+(?:to|than)?)", "≤"),
    (r"(?:greater|more|older|higher)\s+than\s+or\s+equal\s+(?:to)?", "≥"),
    (r"(?:less|younger|lower)\s+than\s+or\s+equal\s+(?:to)?", "≤"),
    (r"(?:of\s+)?(?:greater|more|older|higher)\s+than|superior\s+to|above|over|exceeding", ">"),
    (r"(?:of\s+)?(?:less|younger|lower)\s+than|inferior\s+to|below|under", "<"),
    (r"at\s+least|no\s+(?:less|younger)\s+than|not\s+(?:less|younger)\s+than|minimum(?:\s+of)?", "≥"),
    (r"at\s+most|no\s+(?:more|older)\s+than|not\s+(?:more|older)\s+than|up\s+to|maximum(?:\s+of)?", "≤"),
    (r">\s*/?\s*=|=\s*>", "≥"),
    (r"<\s*/?\s*=|=\s*<", "≤"),
]
_AGE_UNIT = r"(?:years?|yrs?|y|months?|mos?|weeks?|wks?|days?)"
_AGE_UNITS = {"y": "years", "yr": "years", "yrs": "years", "year": "years", "years": "years", "mo": "months",
              "mos": "months", "month": "months", "months": "months", "wk": "weeks", "wks": "weeks",
              "week": "weeks", "weeks": "weeks", "day": "days", "days": "days"}
_AGE_SUBJECT = re.compile(
    r"(?i)^(?:(?:(?:the\s+)?(?:male|female|men|women|girls?|boys?|patients?|subjects?|participants?|adults?|adult|children|child|"
    r"infants?|neonates?|individuals?|volunteers?|persons?|people|those|older|both\s+sexes|all|and|or)\b\s*,?\s*)*"
    r"(?:(?:who\s+(?:is|are|must\s+be)|whose\s+age|is|are|(?:must|should|will|shall)\s+be|being|be|has|have|aged?|"
    r"at\s+the\s+age\s+of|"
    r"age\s+(?:range|group)|of)\b\s*)*)*")


def _symbols(text: str) -> str:
    for words, symbol in _WORD_CMP:
        text = re.sub(r"(?i)(?<![A-Za-z])(?:" + words + r")(?![A-Za-z])", f" {symbol} ", text)
    return " ".join(text.split())


def _age_reading(sentence: str) -> str | None:
    """`Patients below 18 and above 45years`, `≥ 12 to < 18 years of age`: an age line as a rule.

    Only a sentence that, once the subject words (patients, male or female, aged ...) are taken
    off, holds nothing but comparators, numbers and one age unit is read; anything else is left
    to the other readings (or a TODO).
    """
    s = _tidy(_TRAILING.sub("", sentence.strip()).strip())
    s = re.sub(r"(?i),?\s*(?:including\b.*|with\s+no\s+(?:upper\s+)?age\s+limit.*)$", "", s)
    s = re.sub(r"\(\s*[A-Za-z][A-Za-z ]{0,30}\)\s*$", "", s).strip(" ,;.")  # (neonate), (adults)
    s = re.sub(r"\(\s*([≥≤<>][^()]*)\)", r"\1", s)  # Adult patients (≥ 18 years)
    word = re.search(r"(?i)\bage\b", s)
    age_word = word.group(0) if word else "age"
    rest = _AGE_SUBJECT.sub("", s, count=1)
    rest = re.sub(r"(?i)\b(?:old|of\s+age|in\s+age|inclusive)\b", " ", rest)
    rest = re.sub(r"(?i)(\d)\s*(" + _AGE_UNIT + r")\b", r"\1 \2", rest)
    if not re.search(r"(?i)\d\s+" + _AGE_UNIT + r"\b", rest):
        return None
    # 18 years and above, 18 years or older, 65 or over: the bound after the number.
    rest = re.sub(r"(?i)(\d+(?:\.\d+)?\s*(?:" + _AGE_UNIT + r")?)\s*(?:and|or)\s+(?:above|older|over|more|greater|higher)\b"
                  r"(?!\s*(?:than\s*)?\d)", r"≥ \1", rest)
    rest = re.sub(r"(?i)(\d+(?:\.\d+)?\s*(?:" + _AGE_UNIT + r")?)\s*(?:and|or)\s+(?:below|younger|under|less|lower)\b"
                  r"(?!\s*(?:than\s*)?\d)", r"≤ \1", rest)
    rest = re.sub(r"(?i)^between\s+", "", rest.strip())
    rest = _symbols(rest)
    units = {_AGE_UNITS[u.lower()] for u in re.findall(r"(?i)(?<=\d )(" + _AGE_UNIT + r")\b", rest)}
    if len(units) != 1:
        return None
    unit = units.pop()
    body = re.sub(r"(?i)\s*\b" + _AGE_UNIT + r"\b", "", rest).strip()
    num = r"\d+(?:\.\d+)?"
    cmp_ = r"[≥≤<>]"
    if m := re.fullmatch(rf"({cmp_})?\s*({num})", body):
        if not m.group(1):
            return None  # a bare age: the comparator is not guessed
        return f"{age_word} {m.group(1)} {m.group(2)} {unit}"
    if m := re.fullmatch(rf"({num})\s*(?:-|–|to|and)\s*({num})", body):
        return f"{age_word} {m.group(1)} to {m.group(2)} {unit}"
    if m := re.fullmatch(rf"({cmp_})\s*({num})\s*(?:,|to|and)?\s*({cmp_})\s*({num})", body):
        (c1, a, c2, b) = m.groups()
        lower, upper = {"≥", ">"}, {"≤", "<"}
        if c1 in lower and c2 in upper and float(a) <= float(b):
            if c1 == "≥" and c2 == "≤":
                return f"{age_word} {a} to {b} {unit}"
            return f"{age_word} {c1} {a} {unit} and {c2} {b} {unit}"
        if c1 in upper and c2 in lower and float(a) < float(b):
            # below 18 and above 45: no age is both, so either bound
            return f"{age_word} {c1} {a} {unit} or {age_word} {c2} {b} {unit}"
        return None
    return None


def _parenthesised_rule(text: str) -> str | None:
    """`Hyperkalemia (serum potassium >5.5 mEq/L)`: the threshold that defines the condition."""
    # Only when the words outside are the name of what the threshold defines, and nothing follows.
    m = re.fullmatch(r"\s*[A-Za-z][A-Za-z'\- ]{0,40}\(([^()]*?[≥≤<>][^()]*)\)\s*", text)
    if m and not re.match(r"\s*[≥≤<>]?=?\s*$", m.group(1)):
        inner = re.sub(r"(?i)^\s*(?:defined\s+as|i\.?e\.?,?|e\.g\.?,?|any\s+reading\s+of)\s*", "", m.group(1))
        return inner.strip()
    return None


_DEFINED_AS = re.compile(r"(?i)^.{2,80}?\b(?:defined\s+as|as\s+evidenced\s+by|as\s+defined\s+by|evidenced\s+by|"
                         r"as\s+shown\s+by|(?:as\s+)?indicated\s+by|defined\s+by|as\s+demonstrated\s+by|i\.e\.,?)\s+"
                         r"(?:an?\s+|the\s+)?(?P<rule>.*\S)\s*$")
# Adequate renal function: ..., Cardiac left ventricular function with ...: an organ's function, then the rule
# that says what the sponsor means by it.
_FUNCTION = re.compile(r"(?i)^(?:(?:adequate|normal|abnormal|impaired|sufficient|good|poor)\s+)?(?:[A-Za-z\-]+\s+){0,3}"
                       r"functions?\s*(?:,|:|with)\s*(?:an?\s+|the\s+)?(?P<rule>[A-Za-z].*\S)\s*$")
_WITH = re.compile(r"(?i)^(?P<cond>[A-Za-z][A-Za-z'\- ]{2,60}?)\s+with\s+(?:an?\s+|the\s+)?(?P<rule>[^,()]*[≥≤<>].*)$")


def _variants(t1: str) -> list[str]:
    """Readings of a tidied sentence that say the same thing in elig's words."""
    out = []
    # Child-Pugh: <=7, BMI: >18 and < 30 kg/m2: a label's colon before the threshold
    colon = re.sub(r"^([A-Za-z][A-Za-z0-9'\- ]{0,40}?)\s*:\s*(?=[≥≤<>=⩾⩽≧≦]|(?i:greater|less|more|at\s+least|at\s+most)\b)",
                   r"\1 ", t1)
    if colon != t1:
        out.append(colon)
    # Baseline ECOG, Screening hemoglobin: when the value is measured is the protocol's window
    plain = re.sub(r"(?i)^(?:baseline|screening|pre-?treatment)\s+(?=[A-Za-z])", "", t1)
    # ECOG (Eastern Cooperative Oncology Group) ≥ 4: the spelled-out words after an abbreviation
    plain = re.sub(r"^([A-Z][A-Za-z0-9\-]{1,8})\s*\([A-Za-z][A-Za-z' \-]{3,60}\)\s*(?=[≥≤<>=])", r"\1 ", plain)
    if plain != t1:
        out.append(plain)
    # Transaminase (AST/ALT) < 3 x ULN: the two names the sponsor put in parentheses are the subjects
    pair = re.sub(r"^[A-Za-z][A-Za-z ]{2,30}\(\s*([A-Za-z0-9]{2,8}\s*/\s*[A-Za-z0-9]{2,8})\s*\)\s*(?=[≥≤<>])", r"\1 ", t1)
    if pair != t1:
        out.append(pair)
    # uremia, serum creatinine (> 2.0 mg/dl): a condition named, then the measurement that defines it
    m = re.fullmatch(r"[A-Za-z][A-Za-z'\- ]{2,40},\s*([A-Za-z][A-Za-z0-9'\- ]{1,40}?)\s*\(\s*([≥≤<>][^()]*)\)", t1)
    if m:
        out.append(f"{m.group(1)} {m.group(2)}")
    # Anemia (serum hemoglobin level < 10 g/dL), serum creatinine (> 2.0 mg/dl): a threshold in parentheses
    unwrapped = re.sub(r"^([A-Za-z][A-Za-z0-9'\- ]{1,60}?)\s*\(\s*([≥≤<>][^()]*)\)\s*$", r"\1 \2", t1)
    if unwrapped != t1:
        out.append(unwrapped)
    # Renal failure as evidenced by a GFR of less than 60 ...: the threshold is the condition's definition
    m = _DEFINED_AS.match(t1)
    if m:
        out.append(m.group("rule").strip(" .,;()"))
    m = _FUNCTION.match(t1)
    if m:
        out.append(m.group("rule").strip(" .,;"))
    # Heart failure with LVEF < 50%: the condition and the threshold (the checker reads the first as a condition)
    m = _WITH.match(t1)
    cond = default_vocabulary().lookup(m.group("cond")) if m else None
    if cond is not None and cond.kind in ("condition", "fact"):  # never two values sharing one threshold
        out.append(f"{m.group('cond')} and {m.group('rule')}")
    # FEV1 < 50% predicted: the per cent of predicted, as the vocabulary names it
    more = []
    for text in [t1, *out]:
        p = re.sub(r"(?i)^(FEV1|FVC|DLCO|TLCO)\s+(.*?\d\s*%)\s*(?:of\s+)?predicted\b", r"\1 percent predicted \2", text)
        if p != text:
            more.append(p)
    return out + more


def _candidates(sentence: str) -> list[str]:
    s = sentence.strip()
    out = [s]
    t1 = _tidy(_TRAILING.sub("", s).strip())
    t1 = _PRIOR.sub(r" \1", t1).strip(" ,;:")
    out.append(t1)
    out.extend(_variants(t1))
    if _LABEL.match(t1):
        t1 = _LABEL.sub("", t1, count=1)
        out.append(t1)
    t2 = _LEADING.sub("", t1, count=1).strip(" ,;:")
    out.append(t2)
    inner = _parenthesised_rule(t1)
    if inner:
        out.append(inner)
    for text in (t1, t2):
        out.extend(_variants(text))
    for text in (t1, t2, _SUBJECT_AGE.sub("", t1, count=1).strip(" ,;:"), inner or ""):
        for pattern, build in _AGE:
            m = pattern.match(text)
            if m and build(m):
                out.append(_with_sex(t1, build(m)))
    age = _age_reading(s)
    if age:
        out.append(_with_sex(s, age))
    seen, unique = set(), []
    for c in out:
        if c and c not in seen:
            seen.add(c)
            unique.append(c)
    return unique


def _why(diagnostic) -> str:
    if diagnostic.code == "E001":
        return "elig cannot read this sentence as a rule yet (" + diagnostic.message.split(";")[0] + ")"
    return f"{diagnostic.message} [{diagnostic.code}]"


# A bare `=` or `?` before a number: registry text that lost its ≥ or ≤ (`Age =18 years`, `PTA? 40%`).
_LOST_COMPARATOR = re.compile(r"(?:(?<![<>≤≥!=/])=(?![<>=])|\?)\s*\d")


# A bare number for a value that has one unit in clinical use: the draft writes the unit, and says so.
_CONVENTIONAL_UNIT = {"body mass index": "kg/m2", "estimated glomerular filtration rate": "mL/min/1.73 m2"}


def _with_unit(text: str, node, vocabulary) -> tuple[str, str] | None:
    """`BMI > 35`, `eGFR < 30`, `eGFR below 20 ml/min`: (text with the conventional unit, why), or None."""
    subject = getattr(node, "subject", None)
    name = getattr(getattr(subject, "name", None), "text", None)
    if name is None:
        return None
    vocabulary = vocabulary or default_vocabulary()
    concept = vocabulary.lookup(name) or vocabulary.lookup(re.sub(r"(?i)\s+(?:level|value|score)s?$", "", name))
    unit = _CONVENTIONAL_UNIT.get(concept.name) if concept is not None else None
    if unit is None:
        return None
    if re.search(r"\d\s*$", text):
        return re.sub(r"(\d)\s*$", rf"\1 {unit}", text), f"no unit is written: read in {unit}, the unit {name} is given in"
    if unit.startswith("mL/min/") and re.search(r"(?i)\d\s*ml\s*/\s*min\s*$", text):
        return (re.sub(r"(?i)ml\s*/\s*min\s*$", unit, text),
                f"{name} in mL/min is read as {unit}: an eGFR is given per 1.73 m² of body surface area")
    return None


def _without_percent(text: str, node, vocabulary) -> tuple[str, str] | None:
    """`Karnofsky performance score of at least 70 %`: a 0-100 score written with a per cent sign."""
    name = getattr(getattr(getattr(node, "subject", None), "name", None), "text", None)
    concept = (vocabulary or default_vocabulary()).lookup(name) if name else None
    if concept is None or concept.unit not in ("1", None) or not concept.plausible or concept.plausible[1] != 100:
        return None
    plain = re.sub(r"(\d)\s*%", r"\1", text)
    return (plain, f"{name} is a score from 0 to 100: the % sign is read as its points") if plain != text else None


def _read_one(sentence: str, section: str, vocabulary) -> tuple[Reading | None, object]:
    first_problem = None
    for text in _candidates(sentence):
        try:
            node = parser.parse_rule(text, file="<draft>")
        except ProtocolError as exc:
            first_problem = first_problem or exc.diagnostics[0]
            continue
        problems = checker.diagnose_rule(node, vocabulary, file="<draft>", section=section)
        errors = [d for d in problems if d.severity == "error"]
        noted = ()
        if errors and all(d.code in ("E104", "E103") for d in errors):
            fixed = _with_unit(text, node, vocabulary)
        elif errors and all(d.code == "E105" for d in errors):
            fixed = _without_percent(text, node, vocabulary)
        else:
            fixed = None
        if fixed is not None:
            try:
                node = parser.parse_rule(fixed[0], file="<draft>")
                problems = checker.diagnose_rule(node, vocabulary, file="<draft>", section=section)
                errors, noted = [d for d in problems if d.severity == "error"], (f"draft: {fixed[1]}",)
            except ProtocolError:
                pass
        if errors:
            first_problem = first_problem if first_problem and first_problem.code != "E001" else errors[0]
            continue
        rule = canonical.rule(node)
        sexed = _sex_kept(sentence, text, rule)
        if sexed != rule:
            try:
                node = parser.parse_rule(sexed, file="<draft>")
            except ProtocolError:
                continue
            problems = checker.diagnose_rule(node, vocabulary, file="<draft>", section=section)
            if any(d.severity == "error" for d in problems):
                continue
            rule = canonical.rule(node)
        return Reading(rule=rule, warnings=noted + tuple(f"{d.code}: {d.message}" for d in problems)), None
    return None, first_problem


def _sexes(text: str) -> set[str]:
    words = set(re.findall(r"[a-z]+", text.lower().split("year")[0]))
    return ({"female"} if words & {"female", "females", "women", "woman", "girls", "girl"} else set()) | \
           ({"male"} if words & {"male", "males", "men", "man", "boys", "boy"} else set())


def _sex_kept(sentence: str, text: str, rule: str) -> str:
    """A reading that took the words off `Women with ...` or `female patients, ≥ 18 years` keeps the sex."""
    said = _sexes(sentence)
    if len(said) != 1 or _sexes(text) or _sexes(rule):
        return rule
    return f"{said.pop()} and " + (f"({rule})" if re.search(r"\b(?:or|unless)\b", rule) else rule)


# Sentences, `;` parts and comma-separated thresholds of one inclusion line: each must hold.
_PARTS = re.compile(r"(?<=[A-Za-z%)\d])\.\s+(?=[A-Z])|\s*;\s*|,\s*(?=[A-Za-z][^,]*?(?:[≥≤<>]|\bthan\b|within|"
                    r"\d\s*(?:-|–|~|to)\s*\d))|\s+and\s+(?=[A-Za-z][^,]*?[≥≤<>])")


def _bodies(sentence: str) -> list[str]:
    """The sentence, and what follows a heading before its rules (`Adequate bone marrow function as
    evidenced by ...`, `Hepatic: ...`): the text whose parts are the rules of an inclusion."""
    text = _TRAILING.sub("", sentence.strip())
    out = [text]
    for pattern in (_DEFINED_AS, _FUNCTION):
        m = pattern.match(text)
        if m:
            out.append(m.group("rule"))
    if _LABEL.match(text):
        out.append(_LABEL.sub("", text, count=1))
    return out


def _parts_read(body: str, section: str, vocabulary) -> Reading | None:
    """`ANC > 1,500/mm3. Platelets > 100,000/mm3`: in an inclusion every rule of the line must hold."""
    parts = [p.strip() for p in _PARTS.split(body) if p and p.strip(" .,;")]
    if len(parts) < 2 or any(re.match(r"(?i)(?:or|and/or)\b", p) for p in parts):
        return None  # `A, B, or C` is one of them: never read as all
    parts = [re.sub(r"(?i)^and\s+", "", p) for p in parts]
    read = [read_sentence(p, section, vocabulary, split=False) for p in parts]
    return _joined(read, "and", r"\b(?:or|unless)\b", section, vocabulary,
                   f"draft: the sentence holds {len(read)} rules, read as all of them (an inclusion)")


def _joined(read: list[Reading], word: str, brackets: str, section: str, vocabulary, note: str) -> Reading | None:
    """Rules read from the pieces of one sentence, joined by `word` into one rule that must check clean.

    A piece whose rule matches `brackets` is put in parentheses, so that the join keeps its meaning.
    """
    if not all(r.rule is not None for r in read):
        return None
    joined = f" {word} ".join(f"({r.rule})" if re.search(brackets, r.rule) else r.rule for r in read)
    try:
        node = parser.parse_rule(joined, file="<draft>")
        problems = checker.diagnose_rule(node, vocabulary, file="<draft>", section=section)
    except ProtocolError:
        return None
    if any(d.severity == "error" for d in problems):
        return None
    notes = tuple(w for r in read for w in r.warnings) + (note,)
    return Reading(rule=canonical.rule(node), warnings=notes)


# Overweight (BMI≥25) or malnourished (BMI<18.5) patients: conditions, each named with the threshold that defines it
_DEFINED_PIECE = re.compile(r"(?i)(?<![A-Za-z'\-])(?!(?:or|and)\s)[A-Za-z][A-Za-z'\- ]{0,40}?\s*\(([^()]*[≥≤<>＜＞][^()]*)\)")


def _defined_conditions(sentence: str, section: str, vocabulary) -> Reading | None:
    text = _TRAILING.sub("", sentence.strip()).strip(" .,;")
    pieces = list(_DEFINED_PIECE.finditer(text))
    if len(pieces) < 2 or text[:pieces[0].start()].strip():
        return None
    joins = {text[a.end():b.start()].strip().lower() for a, b in zip(pieces, pieces[1:])}
    tail = text[pieces[-1].end():].strip().lower()
    if len(joins) != 1 or not joins <= {"or", "and"} or tail not in ("", "patients", "subjects", "participants"):
        return None
    read = [read_sentence(m.group(1), section, vocabulary, split=False) for m in pieces]
    word = joins.pop()
    return _joined(read, word, r"\b(?:or|and|unless)\b", section, vocabulary,
                   f"draft: each condition is read as the threshold that defines it, joined by '{word}' as written")


def read_sentence(sentence: str, section: str = "inclusion", vocabulary=None, split: bool = True) -> Reading:
    """The rule a sponsor's sentence encodes, or why it cannot be encoded yet."""
    sentence = _prepare(sentence)
    if _LOST_COMPARATOR.search(sentence):  # `Age =18 years`: the ≥ was lost; never guessed
        return Reading(rule=None, why="the comparator was lost in the registry text ('?' or '='); restore it "
                                      "from the protocol")
    if re.search(r"(?i)\s(?:or|and/or)\s*$", sentence):  # the rule goes on in the next line
        return Reading(rule=None, why="the line ends with 'or': it is one alternative of a rule that goes on in the "
                                      "next line; encode the two lines as one criterion")
    if re.search(r"(?i)\sand\s*$", sentence):
        if section != "inclusion":
            return Reading(rule=None, why="the line ends with 'and': in an exclusion it holds only together with the "
                                          "next line; encode the two lines as one criterion")
        sentence = re.sub(r"(?i)\s+and\s*$", "", sentence)  # an inclusion's lines must all hold anyway
    reading, first_problem = _read_one(sentence, section, vocabulary)
    if reading is not None:
        return reading
    if split:
        reading = _defined_conditions(sentence, section, vocabulary)
        if reading is not None:
            return reading
    if split and section == "inclusion":
        for body in _bodies(sentence):
            reading = _parts_read(body, section, vocabulary)
            if reading is not None:
                return reading
    why = _why(first_problem) if first_problem else "nothing to encode"
    return Reading(rule=None, why=why)


# ---------------------------------------------------------------- the draft
def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def draft(text: str, protocol_id: str, title: str | None = None, vocabulary=None) -> tuple[str, list]:
    """The draft protocol text and, for each criterion, (item, reading)."""
    items = split_criteria(text)
    lines = [f"protocol {protocol_id}"]
    lines.append(f"  title {_string(title or 'Draft from the registry text: review every criterion')}")
    current = None
    readings = []
    for item in items:
        if item.section != current:
            current = item.section
            lines += ["", current]
        reading = read_sentence(item.sentence, item.section, vocabulary)
        readings.append((item, reading))
        lines.append(f"  {item.id} {_string(item.sentence)}")
        if reading.rule is not None:
            lines.append(f"    {reading.rule}")
            for w in reading.warnings:  # the reading taken for an ambiguous phrase, for the reviewer
                lines.append(f"    note {_string('reading: ' + w)}")
        else:
            lines.append(f"    attested {_string(item.sentence)}")
            lines.append(f"    note {_string('TODO: ' + reading.why)}")
    return "\n".join(lines) + "\n", readings


def _protocol_id(text: str, path: Path) -> str:
    m = re.search(r"\bNCT\d{8}\b", text)
    if m:
        return m.group(0)
    stem = re.sub(r"[^A-Za-z0-9]+", "-", path.stem).strip("-") or "DRAFT"
    return stem if stem[0].isalpha() else f"D{stem}"


@click.command("draft")
@click.argument("criteria", type=click.Path())
@click.option("-o", "--output", type=click.Path(), help="Write the draft to a file instead of standard output.")
def command(criteria, output):
    """Draft a protocol from a registry's eligibility text (CRITERIA.txt).

    Every criterion keeps the sponsor's sentence; those elig can read are
    encoded, the others are attested with a note "TODO: why" that 'elig lint'
    lists (W212). A summary goes to standard error.
    """
    path = Path(criteria)
    text = path.read_text(encoding="utf-8")
    if not _HEADING.search(text):
        click.echo(f"error: {path}: no 'Inclusion Criteria' or 'Exclusion Criteria' heading found", err=True)
        click.echo("  = help: draft reads registry eligibility text with those headings, then bullets, "
                   "numbered items or one paragraph per section", err=True)
        sys.exit(1)
    protocol_text, readings = draft(text, _protocol_id(text, path))
    parser.parse_protocol(protocol_text, file=output or "<draft>")  # the draft itself must parse
    if output:
        Path(output).write_text(protocol_text, encoding="utf-8")
    else:
        click.echo(protocol_text, nl=False)
    encoded = sum(1 for _, r in readings if r.rule is not None)
    click.echo(f"{len(readings)} criteria: {encoded} encoded, {len(readings) - encoded} to do (TODO notes, "
               f"listed by 'elig lint' as W212)" + (f"; wrote {output}" if output else ""), err=True)
