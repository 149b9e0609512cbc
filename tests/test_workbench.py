"""``elig serve`` in a real browser: Playwright drives Debian's chromium against the real command.

An author's session: type a protocol with a misspelt concept and see the message
at the right line and column, underlined at the name; correct it; choose a bundled
patient and see the verdict, the derived creatinine clearance and what would change;
edit the threshold and see the verdict and the margin change; change the method and
see the derived value change; upload a FHIR file, and one too large; download the
.elig and the HTML report (the same bytes as ``elig explain --format html``).
No request may leave 127.0.0.1.

Screenshots go to tests/output/; with ELIG_UPDATE_GOLDEN=1 (or when missing) they
also replace the ones in docs/images/ that the documentation shows.
Skipped, with the reason, when chromium or playwright is not installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = Path(__file__).parent / "output"
DOC_IMAGES = ROOT / "docs" / "images"
CHROMIUM = next((c for c in ("/usr/bin/chromium", shutil.which("chromium")) if c and Path(c).is_file()), None)
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (/usr/bin/chromium); "
                                "'apt-get install -y chromium' (make test does this)")
AS_OF = "2024-03-15"

WITH_MISTAKE = """protocol WB-1
  title "Workbench test"
  lookback 14 days

inclusion
  I1 "Aged 18 to 75 years"
    age 18 to 75 years
  I2 "Creatinine clearance ≥ 60 mL/min (Cockcroft-Gault)"
    Creatinin clearance ≥ 60 mL/min (Cockcroft-Gault) within 7 days

exclusion
  E1 "Pregnant or lactating"
    pregnant or lactating
"""


@pytest.fixture
def workbench():
    """The real ``elig serve`` command on a free port; its address as it prints it."""
    script = Path(sys.executable).with_name("elig")
    cmd = [str(script)] if script.is_file() else [sys.executable, "-m", "elig"]
    proc = subprocess.Popen([*cmd, "serve", "--as-of", AS_OF], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert line.startswith("elig workbench: http://127.0.0.1:"), line + proc.stderr.read()
        yield line.split()[2]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _shot(page, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    png = OUTPUT / name
    page.screenshot(path=str(png), full_page=False)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    target = DOC_IMAGES / name
    if os.environ.get("ELIG_UPDATE_GOLDEN") or not target.exists():
        DOC_IMAGES.mkdir(exist_ok=True)
        shutil.copyfile(png, target)


def _select(page, needle: str, occurrence_line_startswith: str = "    ") -> None:
    """Select ``needle`` on the first rule line holding it, as a person would with the mouse."""
    page.evaluate("""([needle, prefix]) => {
        const src = document.getElementById('source');
        let at = 0;
        for (const line of src.value.split('\\n')) {
            const i = line.indexOf(needle);
            if (i >= 0 && line.startsWith(prefix) && !line.trimStart().startsWith('I') ) {
                src.focus(); src.setSelectionRange(at + i, at + i + needle.length); return;
            }
            at += line.length + 1;
        }
        throw new Error('not found: ' + needle);
    }""", [needle, occurrence_line_startswith])


def test_author_session_in_chromium(workbench, tmp_path, monkeypatch):
    from playwright.sync_api import expect, sync_playwright

    outside: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"])
        try:
            context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})

            def guard(route):
                if urlparse(route.request.url).hostname != "127.0.0.1" and not route.request.url.startswith(
                        ("data:", "blob:", "about:")):
                    outside.append(route.request.url)
                    return route.abort()
                return route.continue_()

            context.route("**/*", guard)
            page = context.new_page()
            page.goto(workbench)
            expect(page.locator("#diagnostics-summary")).to_contain_text("No problems")  # the starter protocol

            # a rule with a mistake: the message names the line and column, the name is underlined
            page.fill("#source", WITH_MISTAKE)
            problem = page.locator("#diagnostics li[data-code=E101]")
            expect(problem).to_contain_text("line 9, column 5:")
            expect(problem).to_contain_text("unknown concept 'Creatinin clearance'")
            expect(problem).to_contain_text("help: did you mean 'Creatinine clearance'?")
            expect(problem.locator("button.fix")).to_have_text("Replace with 'Creatinine clearance'")
            underlined = page.eval_on_selector_all("#highlight .diag-error", "els => els.map(e => e.textContent).join('')")
            assert underlined == "Creatinin clearance"
            expect(page.locator("#verdict")).to_contain_text("1 error in the protocol")
            page.select_option("#patient", "example:patients/demo_patient.yaml")
            _shot(page, "workbench-diagnostic.png")

            # correct it by typing over the misspelt name
            _select(page, "Creatinin clearance")
            page.keyboard.type("Creatinine clearance")
            expect(page.locator("#diagnostics-summary")).to_have_text("No problems: elig check and elig lint are satisfied")
            expect(page.locator("#highlight .diag-error")).to_have_count(0)

            # the patient's explanation: verdict, derived value, what would change, the report
            expect(page.locator("#verdict")).to_have_text(f"ELIGIBLE — Demo Patient, on {AS_OF}")
            derived = page.locator("#derived li[data-concept='creatinine clearance'] .derived-value")
            expect(derived).to_have_text("I2: creatinine clearance (Cockcroft-Gault (actual body weight)) = 70.03 mL/min")
            margin = page.locator("#changes li[data-criteria=I2]")
            expect(margin).to_contain_text("70.03 mL/min now; it would fail at < 60 mL/min (10.03 mL/min away)")
            report = page.frame_locator("#report")
            expect(report.locator("body")).to_contain_text("ELIGIBLE")
            expect(report.locator("body")).to_contain_text("(140 − 63) × 72 kg / (72 × 1.0995 mg/dL)")
            _shot(page, "workbench-eligible.png")

            # edit the threshold: the verdict and the distance change
            _select(page, "60 mL/min")
            page.keyboard.type("80 mL/min")
            expect(page.locator("#verdict")).to_have_text(f"INELIGIBLE — Demo Patient, on {AS_OF}")
            expect(margin).to_contain_text("70.03 mL/min; needs ≥ 80 mL/min (9.97 mL/min away)")
            expect(page.locator("#changes li[data-criteria=I2]")).to_have_class("excludes")
            expect(report.locator("body")).to_contain_text("INELIGIBLE")

            # change the method: the derived value changes
            _select(page, "(Cockcroft-Gault)")
            page.keyboard.type("(Cockcroft-Gault, ideal body weight)")
            expect(derived).not_to_contain_text("70.03")
            expect(derived).to_contain_text("creatinine clearance (Cockcroft-Gault (ideal body weight)) = ")
            _shot(page, "workbench-threshold.png")

            # downloads: the protocol as typed, and the same report as elig explain --format html
            with page.expect_download() as info:
                page.click("#download-elig")
            saved = tmp_path / info.value.suggested_filename
            info.value.save_as(saved)
            assert saved.name == "WB-1.elig"
            assert saved.read_text(encoding="utf-8") == page.input_value("#source")
            with page.expect_download() as info:
                page.click("#download-report")
            html_path = tmp_path / "downloaded.html"
            info.value.save_as(html_path)
            from elig.commands.cli import main

            cli_html = tmp_path / "cli.html"
            monkeypatch.chdir(ROOT)  # where the workbench runs: reports name the example as given there
            result = CliRunner().invoke(main, ["explain", str(saved), "examples/patients/demo_patient.yaml",
                                               "--as-of", AS_OF, "--format", "html", "-o", str(cli_html)])
            assert result.exit_code == 0, result.output
            assert html_path.read_text(encoding="utf-8") == cli_html.read_text(encoding="utf-8")

            # an uploaded FHIR bundle is a patient like the examples; a file too large is refused
            page.set_input_files("#upload", str(ROOT / "examples" / "fhir" / "demo_patient_creatinine_umol.json"))
            expect(page.locator("#upload-status")).to_contain_text("kept in memory only")
            expect(page.locator("#patient")).to_have_value("upload:1")
            expect(page.locator("#verdict")).to_contain_text("INELIGIBLE")
            page.set_input_files("#upload", files=[{"name": "huge.json", "mimeType": "application/json",
                                                    "buffer": b" " * (3 * 1024 * 1024)}])
            expect(page.locator("#upload-status")).to_contain_text("larger than 2 MB")

            # a quick fix, as in an editor: a misspelt keyword replaced by a click
            _select(page, "within 7 days")
            page.keyboard.type("witin 7 days")
            fix = page.locator("#diagnostics li[data-code=E001] button.fix")
            expect(fix).to_have_text("Replace with 'within'")
            fix.click()
            expect(page.locator("#diagnostics-summary")).to_have_text("No problems: elig check and elig lint are satisfied")
            assert "(Cockcroft-Gault, ideal body weight) within 7 days" in page.input_value("#source")
        finally:
            browser.close()
    assert outside == [], f"the page asked the network for {outside}"
