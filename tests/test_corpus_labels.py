"""Real registry lines, labelled by hand (tests/data/corpus_labels.yaml): elig reads each one as
recorded there, and never with a meaning other than the clinician's reading.

A line whose status changes (a new concept makes a refused line readable) fails here until
its label is looked at again: a reading that turns out right is recorded as right, and a
wrong one is a bug.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from elig.commands.draft import read_sentence
from elig.diagnostics import ProtocolError
from elig.engine import checker
from elig.language import canonical, parser

LABELS = yaml.safe_load((Path(__file__).parent / "data" / "corpus_labels.yaml").read_text(encoding="utf-8"))


def test_enough_lines_are_labelled_and_none_is_read_wrongly():
    assert len(LABELS) >= 300
    assert all(x["reading"] is None or x["decidable"] for x in LABELS)
    assert [x["line"] for x in LABELS if "wrong" in (x["parse"], x["draft"])] == []


def _parse(line: str, section: str) -> str:
    try:
        node = parser.parse_rule(line, file="<line>")
    except ProtocolError as exc:
        return exc.diagnostics[0].code
    errors = [d for d in checker.diagnose_rule(node, file="<line>", section=section) if d.severity == "error"]
    return errors[0].code if errors else canonical.rule(node)


@pytest.mark.parametrize("label", LABELS, ids=[f"{i}" for i in range(len(LABELS))])
def test_line_is_read_as_labelled(label):
    got = _parse(label["line"], label["kind"])
    if label["parse"] == "right":
        assert got == label["reading"]
    else:
        assert got == label["parse"], f"elig parse now gives {got!r}: look at this label again"
    drafted = read_sentence(label["line"], label["kind"]).rule
    if label["draft"] == "right":
        assert drafted == label["reading"]
    else:
        assert drafted is None, f"the draft now reads {drafted!r}: look at this label again"
