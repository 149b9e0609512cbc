"""The HTML report in a real browser: Debian's headless Chromium renders it offline.

The page text must hold the verdict and every criterion id; a screenshot of each
rendered report is kept in tests/output/ (gitignored) for people to look at.
Skipped, with the reason, when Chromium is not installed (``make test`` installs it).
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import elig
from elig.report.html import render_html

ROOT = Path(__file__).parent.parent
OUTPUT = Path(__file__).parent / "output"
AS_OF = "2024-03-15"


def _chromium() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (/usr/bin/chromium); install it with "
           "'apt-get install -y chromium' (make test does this) to run the browser tests")


def _run(tmp_path: Path, page: Path, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", *extra, page.resolve().as_uri()]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def _text(dom: str) -> str:
    dom = re.sub(r"<(style|title)[^>]*>.*?</\1>", " ", dom, flags=re.S | re.I)
    return html.unescape(re.sub(r"<[^>]+>", " ", dom))


def _explain_html(tmp_path: Path, patient: Path | None = None, data: dict | None = None, name: str = "report"):
    """The HTML report of a patient, by the real command when it is a bundled file."""
    out = tmp_path / f"{name}.html"
    if patient is not None:
        from elig.commands.cli import main

        result = CliRunner().invoke(main, ["explain", str(ROOT / "protocols" / "NCT06021067.elig"), str(patient),
                                           "--as-of", AS_OF, "--format", "html", "-o", str(out)])
        assert result.exit_code == 0, result.output
        checked = elig.load_protocol(ROOT / "protocols" / "NCT06021067.elig")
        return out, elig.evaluate(checked, elig.load_patient(patient), AS_OF)
    from test_reports import PROTOCOL

    checked = elig.parse_protocol_text(PROTOCOL, file="test-organ.elig")
    res = elig.evaluate(checked, elig.patient_from_data(data, f"examples/{name}.yaml"), AS_OF)
    out.write_text(render_html(res), encoding="utf-8")
    return out, res


def _check_in_browser(tmp_path: Path, page: Path, result, shot: str) -> None:
    dom = _run(tmp_path, page, "--dump-dom").stdout
    text = _text(dom)
    assert str(result.verdict).upper() in text, "verdict not in the rendered page"
    for c in result.criteria:
        assert re.search(rf"(?<![\w.]){re.escape(c.id)}(?![\w.])", text), f"criterion {c.id} not in the page"
    assert "<script" not in dom.lower()
    OUTPUT.mkdir(exist_ok=True)
    png = OUTPUT / shot
    png.unlink(missing_ok=True)
    _run(tmp_path, page, f"--screenshot={png}", "--window-size=1200,2400")
    assert png.is_file() and png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _bundled(name: str) -> Path:
    path = ROOT / "examples" / "patients" / name
    if not path.is_file():
        pytest.skip(f"bundled example {name} not present")
    return path


def test_bundled_example_report_in_chromium(tmp_path):
    page, result = _explain_html(tmp_path, _bundled("demo_patient.yaml"))
    _check_in_browser(tmp_path, page, result, "report_demo_patient.png")


def test_undetermined_bundled_example_in_chromium(tmp_path):
    page, result = _explain_html(tmp_path, _bundled("organ_unknown.yaml"))
    _check_in_browser(tmp_path, page, result, "report_organ_unknown.png")


@pytest.mark.parametrize("name", ["eligible", "ineligible", "undetermined"])
def test_golden_cases_in_chromium(tmp_path, name):
    import copy

    from test_reports import CASES

    page, result = _explain_html(tmp_path, data=copy.deepcopy(CASES[name]), name=name)
    _check_in_browser(tmp_path, page, result, f"report_{name}.png")


def test_escaped_script_does_not_run(tmp_path):
    """A patient name holding a script shows as text in the browser, and the script never runs."""
    import copy

    from test_reports import CASES

    data = copy.deepcopy(CASES["eligible"])
    data["name"] = "<script>document.title='PWNED';document.body.innerHTML='PWNED'</script>Eve"
    page, result = _explain_html(tmp_path, data=data, name="evil")
    dom = _run(tmp_path, page, "--dump-dom").stdout
    assert "PWNED'" in html.unescape(dom)  # the text is there, as text
    assert "<title>PWNED" not in dom
    assert "ELIGIBLE" in _text(dom)


def test_screening_summary_in_chromium(tmp_path):
    from elig.commands import screen

    examples = ROOT / "examples" / "patients"
    if not any(examples.glob("*.y*ml")):
        pytest.skip("no bundled example patients yet")
    out = tmp_path / "screen"
    result = CliRunner().invoke(screen.command, [str(ROOT / "protocols" / "NCT06021067.elig"), str(examples),
                                                 "--as-of", AS_OF, "--html-dir", str(out), "-q"])
    assert result.exit_code in (0, 1), result.output
    page = out / "index.html"
    text = _text(_run(tmp_path, page, "--dump-dom").stdout)
    assert "Criteria that exclude most patients" in text
    OUTPUT.mkdir(exist_ok=True)
    png = OUTPUT / "screening_summary.png"
    png.unlink(missing_ok=True)
    _run(tmp_path, page, f"--screenshot={png}", "--window-size=1200,1600")
    assert png.is_file()
