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


def test_workbench_answers_only_its_own_page(tmp_path):
    """``elig serve`` on 127.0.0.1: other host names, cross-site forms and oversized uploads are refused."""
    import http.client
    import json
    import subprocess
    import sys
    from pathlib import Path

    from conftest import ROOT

    script = Path(sys.executable).with_name("elig")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "elig"]
    proc = subprocess.Popen([*cmd, "serve", "--as-of", "2024-03-15"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        port = int(line.split()[2].rsplit(":", 1)[1].strip("/"))

        def ask(method, path, body=None, headers=None):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            conn.close()
            return r.status, dict(r.getheaders()), data

        status, headers, _ = ask("GET", "/")
        assert status == 200 and "default-src 'self'" in headers["content-security-policy"]
        assert ask("GET", "/", headers={"Host": "attacker.example"})[0] == 400  # DNS rebinding
        status, _, data = ask("POST", "/api/evaluate", body="text=x",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert status == 400 and b"application/json" in data
        assert ask("POST", "/api/upload", body=b"{}")[0] == 400  # no X-Filename: not the page's script
        status, _, data = ask("POST", "/api/upload", body=b" " * (3 * 1024 * 1024), headers={"X-Filename": "big.json"})
        assert status == 413 and b"larger than 2 MB" in data
        status, _, data = ask("POST", "/api/upload", body=b"- just\n- a list\n", headers={"X-Filename": "p.yaml"})
        assert status == 400 and json.loads(data)["error"].startswith("p.yaml: a patient record must be a mapping")
        status, _, data = ask("POST", "/api/evaluate", body=json.dumps(
            {"text": (ROOT / "protocols" / "NCT06021067.elig").read_text(encoding="utf-8"),
             "patient": "example:patients/organ_unknown.yaml", "as_of": "2024-03-15"}),
            headers={"Content-Type": "application/json"})
        explanation = json.loads(data)["explanation"]
        assert status == 200 and explanation["verdict"] == "undetermined"
        assert any(c["kind"] == "collect" and c["criteria"] == ["I4.5", "E8"] for c in explanation["changes"])
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_hover_and_definition_still_answer_while_the_text_does_not_parse():
    text = TEXT.replace("    LVEF ≥ 50% within 30 days", "    LVEF ≥ 50% within 30 days and (")
    a = analyse(text, "a.elig")
    assert a.tree is None and a.diagnostics[0].code == "E001"
    line, column = _at(text, "serum creatinine", 3)
    assert a.hover(line, column).markdown.startswith("**serum creatinine** (measurement)")
    assert a.definition(line, column).file.endswith("vocabulary.yaml")
