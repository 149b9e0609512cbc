"""Editor assistance (elig.authoring.assist) on its own, and ``elig serve``'s command-line errors.

The language server and the workbench are driven end to end in tests/test_lsp.py and
tests/test_workbench.py; these tests pin the answers they are built from.
"""

from __future__ import annotations

import socket

from click.testing import CliRunner

from elig.authoring.assist import analyse
from elig.commands.cli import main

TEXT = """protocol A-1
  title "Assist"

inclusion
  I4.9 "LVEF ≥ 50%"
    LVEF ≥ 50% within 30 days
  I4.10 "ANC"
    ANC ≥ 1.5 x 10^9/L witin 7 days

exclusion
  E1 "Creatinine"
    serum creatinine > 1.5 mg/dl if male, > 120 µmol/L if female within 7 days
  E2 "Haemoglobin under 80 g/L"
    HGB < 80 g/dL within 7 days
"""


def _at(text: str, needle: str, delta: int = 0) -> tuple[int, int]:
    for i, line in enumerate(text.split("\n"), start=1):
        if needle in line and line.startswith("    "):
            return i, line.index(needle) + 1 + delta
    raise AssertionError(needle)


def test_a_misspelt_keyword_is_fixed_by_its_quick_fix():
    a = analyse(TEXT, "a.elig")
    (d,) = a.diagnostics
    assert d.code == "E001" and d.message.endswith("; did you mean 'within'?")
    (fix,) = a.actions()
    (edit,) = fix.edits
    assert fix.title == "Replace with 'within'"
    assert (edit.span.line, edit.span.column, edit.span.end_column) == (_at(TEXT, "witin")[0], 24, 29)


def test_hover_threshold_of_a_sex_branch_and_the_plausibility_fix():
    text = TEXT.replace("witin", "within")
    a = analyse(text, "a.elig")
    assert [d.code for d in a.diagnostics] == ["W205"]
    hover = a.hover(*_at(text, "120 µmol/L", 1))
    assert hover.markdown == "**120 µmol/L** = 1.36 mg/dL in the canonical unit (the value elig compares with)"
    (fix,) = a.actions()
    assert fix.title == "Replace with '80 g/L'" and fix.edits[0].new_text == "80 g/L"


def test_next_criterion_ids_follow_the_sponsors_numbering():
    text = TEXT.replace("witin", "within").replace("\nexclusion", "  \nexclusion")
    a = analyse(text, "a.elig")
    line = text.split("\n").index("  ") + 1
    assert [c.label for c in a.completions(line, 3)] == ["I4.11", "I5"]


def test_serve_refuses_a_port_in_use_and_a_bad_date():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = CliRunner().invoke(main, ["serve", "--port", str(port)])
    assert r.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}" in r.output
    r = CliRunner().invoke(main, ["serve", "--as-of", "2024-02-30"])
    assert r.exit_code == 2 and "--as-of" in r.output
