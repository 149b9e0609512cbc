"""Coded answers the record readers understand (elig/data/answers.yaml).

What a coded Observation value says (a qualitative result, or the answer of a status
observation such as pregnancy status) and the side a laterality qualifier names. The
codes are data, beside the vocabulary's concepts, so a reviewer reads and checks them in
one file; each is checked when the file is read, and a bad entry is an error naming the
file, the list and the entry.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from pathlib import Path

import attrs
import yaml

from elig.terminology.codes import canonical_system, code_problem, short_system

__all__ = ["Answers", "answers", "read_answers", "READINGS"]

# What each list's entries may mean.
READINGS = {"results": ("positive", "negative", "unknown"),
            "laterality": ("left", "right", "bilateral", "midline")}
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
_LOINC_ANSWER = re.compile(r"LA\d{1,6}-\d")


class AnswersError(ValueError):
    """The answers file is not as described at its top."""


@attrs.frozen
class Answers:
    # (system URI, code) -> reading, per list, in file order
    results: dict = attrs.field(factory=dict)
    laterality: dict = attrs.field(factory=dict)

    def result(self, codings) -> str | None:
        """The reading of the first coding the file knows: SNOMED CT results before LOINC answers."""
        for system in (SNOMED, LOINC):
            for c in codings:
                if c.system == system and (c.system, c.code) in self.results:
                    return self.results[(c.system, c.code)]
        return None

    def side(self, codings) -> str | None:
        return next((self.laterality[(c.system, c.code)] for c in codings
                     if (c.system, c.code) in self.laterality), None)


def read_answers(path: Path) -> Answers:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise AnswersError(f"{path}: cannot read the answers file: {exc}") from None
    if not isinstance(data, dict) or set(data) - set(READINGS):
        raise AnswersError(f"{path}: expected the lists {', '.join(READINGS)}, found {sorted(data or {})}")
    lists = {}
    for name, allowed in READINGS.items():
        entries = data.get(name) or []
        table = {}
        for i, e in enumerate(entries):
            where = f"{path}: {name}[{i}]"
            if not isinstance(e, dict) or set(e) != {"system", "code", "display", "means"}:
                raise AnswersError(f"{where}: an entry has system, code, display and means")
            system, code = canonical_system(str(e["system"])), str(e["code"])
            if system == LOINC and code.startswith("LA"):
                why = None if _LOINC_ANSWER.fullmatch(code) else f"{code!r} is not a LOINC answer code (LA...-n)"
            elif system == SNOMED:
                why = code_problem(system, code)
            else:
                why = f"answers are SNOMED CT codes or LOINC answer codes, not {short_system(system)} {code}"
            if why:
                raise AnswersError(f"{where}: {why}")
            if e["means"] not in allowed:
                raise AnswersError(f"{where}: means must be one of {', '.join(allowed)}, not {e['means']!r}")
            if (system, code) in table:
                raise AnswersError(f"{where}: {short_system(system)} {code} is listed twice")
            table[(system, code)] = e["means"]
        lists[name] = table
    return Answers(**lists)


@functools.cache
def answers() -> Answers:
    """The shipped answers (read once)."""
    return read_answers(Path(str(importlib.resources.files("elig").joinpath("data", "answers.yaml"))))
