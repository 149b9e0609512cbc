"""Markdown and HTML explanation reports: golden files, escaping, determinism, the JSON schema.

Goldens live in tests/golden/reports/. To regenerate them on purpose after a
deliberate change to a report::

    ELIG_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_reports.py

and review the diff before committing.
"""

from __future__ import annotations

import copy
import html.parser
import json
import os
import re
from pathlib import Path

import jsonschema
import pytest

import elig
from elig.report.html import render_html
from elig.report.json import render_json
from elig.report.markdown import outcome_changes, render_markdown

GOLDEN = Path(__file__).parent / "golden" / "reports"
UPDATE = os.environ.get("ELIG_UPDATE_GOLDEN") == "1"
SCHEMA_PATH = Path(elig.__file__).parent / "data" / "result.schema.json"
AS_OF = "2024-03-15"

# A small organ-function protocol: comparisons with units, a ULN threshold, a
# derived value (Cockcroft-Gault), an attestation, a range, logic and a
# sex-specific threshold.
PROTOCOL = '''\
protocol TEST-ORGAN
  title "Organ function screening (test protocol)"

inclusion
  I1 "ANC ≥ 1.5 x 10^9 / L"
    ANC ≥ 1.5 x 10^9/L within 7 days
  I2 "Creatinine clearance ≥ 60 mL/min (Cockcroft - Gault formula)"
    Creatinine clearance ≥ 60 mL/min (Cockcroft-Gault) within 7 days
    note "actual body weight; creatinine and weight from the last 7 days"
  I3 "TBil ≤ 1.5 x ULN (upper limit of normal)"
    TBil ≤ 1.5 x ULN within 7 days
  I4 "Signed and dated written informed consent"
    attested informed consent
  I5 "Ages 18 Years to 75 Years"
    age 18 to 75 years

exclusion
  E1 "Pregnant or lactating women"
    pregnant or lactating
  E2 "Serum creatinine is greater than 1.5 mg/dl in men and 1.4 mg/dl in women"
    serum creatinine > 1.5 mg/dl if male, > 1.4 mg/dl if female within 7 days
'''

CRITERIA = ["I1", "I2", "I3", "I4", "I5", "E1", "E2"]


def _obs(concept, value, unit, date="2024-03-12", **extra):
    return {"concept": concept, "value": value, "unit": unit, "date": date, **extra}


ELIGIBLE = {
    "id": "PT-ELIG",
    "name": "Ada Example",
    "birth_date": "1966-07-02",
    "sex": "female",
    "pregnant": False,
    "lactating": False,
    "observations": [
        _obs("ANC", 3.1, "10^9/L"),
        _obs("serum creatinine", 62, "µmol/L"),
        _obs("body weight", 68, "kg"),
        _obs("TBil", 1.8, "mg/dL", reference_range={"high": 1.2, "unit": "mg/dL"}),
    ],
    "attestations": {"informed consent": {"value": True, "by": "Dr Li", "date": "2024-03-14"}},
}

INELIGIBLE = {
    "id": "PT-INEL",
    "name": "Bob Example",
    "birth_date": "1950-01-20",
    "sex": "male",
    "observations": [
        _obs("ANC", 1.2, "10^9/L"),
        _obs("serum creatinine", 168, "umol/L"),
        _obs("body weight", 74, "kg", date="2024-03-13"),
        _obs("TBil", 14, "µmol/L", reference_range={"high": 21, "unit": "µmol/L"}),
    ],
    "attestations": {"informed consent": True},
}

UNDETERMINED = {
    "id": "PT-UND",
    "name": "Cleo Example",
    "birth_date": "1980-11-05",
    "sex": "female",
    "pregnant": False,
    "observations": [
        _obs("ANC", 2.0, "10^9/L", date="2024-02-01"),  # stale: outside the 7-day window
        _obs("serum creatinine", 0.8, "mg/dL"),
        _obs("TBil", "high", "mg/dL"),  # not a number: a data issue
    ],
    "smoking": "never",  # unknown field: a data issue
}

CASES = {"eligible": ELIGIBLE, "ineligible": INELIGIBLE, "undetermined": UNDETERMINED}


@pytest.fixture(scope="module")
def protocol():
    return elig.parse_protocol_text(PROTOCOL, file="test-organ.elig")


def evaluate_case(protocol, name: str, data: dict | None = None):
    record = elig.patient_from_data(copy.deepcopy(data or CASES[name]), f"examples/{name}.yaml")
    return elig.evaluate(protocol, record, AS_OF)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE or not path.exists():
        if not UPDATE and os.environ.get("CI"):
            pytest.fail(f"golden file {path} is missing; run with ELIG_UPDATE_GOLDEN=1 to create it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    expected = path.read_text(encoding="utf-8")
    assert text == expected, (f"{name} differs from its golden file; if the change is intended, "
                              f"rerun with ELIG_UPDATE_GOLDEN=1 and review the diff")


# ---------------------------------------------------------------- the cases are what they claim
@pytest.mark.parametrize("name", list(CASES))
def test_case_verdicts(protocol, name):
    result = evaluate_case(protocol, name)
    assert str(result.verdict) == name
    assert [c.id for c in result.criteria] == CRITERIA


# ---------------------------------------------------------------- goldens
@pytest.mark.parametrize("name", list(CASES))
def test_markdown_golden(protocol, name):
    check_golden(f"{name}.md", render_markdown(evaluate_case(protocol, name)))


@pytest.mark.parametrize("name", list(CASES))
def test_html_golden(protocol, name):
    check_golden(f"{name}.html", render_html(evaluate_case(protocol, name)))


@pytest.mark.parametrize("name", list(CASES))
def test_json_golden(protocol, name):
    check_golden(f"{name}.json", render_json(evaluate_case(protocol, name)))


# ---------------------------------------------------------------- content and order
def _order(text: str, needles: list[str]) -> None:
    positions = []
    for n in needles:
        assert n in text, f"{n!r} missing"
        positions.append(text.index(n))
    assert positions == sorted(positions), f"out of order: {needles}"


def test_markdown_content_order(protocol):
    text = render_markdown(evaluate_case(protocol, "undetermined"))
    _order(text, ["TEST-ORGAN", "Organ function screening", "PT-UND", "examples/undetermined.yaml", AS_OF,
                  "0.1.0", "sha256:", "UNDETERMINED", "Data to collect", "Inclusion criteria", "### ? I1",
                  "Exclusion criteria", " E1 — ", "Data issues"])
    # each item to collect names the criteria it decides
    assert re.search(r"^- .+ — decides I1", text, re.M)


def test_ineligible_has_what_would_change(protocol):
    result = evaluate_case(protocol, "ineligible")
    changes = outcome_changes(result)
    ids = [c.criterion for c in changes]
    assert "I1" in ids and "I2" in ids and "E2" in ids
    i1 = next(c for c in changes if c.criterion == "I1")
    assert "needs ≥ 1.5" in i1.distance
    e2 = next(c for c in changes if c.criterion == "E2")
    assert "needs ≤ 1.5 mg/dl" in e2.distance.replace("mg/dL", "mg/dl") and "not to exclude" in e2.distance
    for text in (render_markdown(result), render_html(result)):
        assert "What would change the outcome" in text
        assert i1.distance in text


def test_derivation_and_uln_shown(protocol):
    result = evaluate_case(protocol, "eligible")
    for text in (render_markdown(result), render_html(result)):
        assert "Cockcroft-Gault" in text
        assert "(140 − " in text  # numbers substituted
        assert "ULN 1.2 mg/dL" in text and "reference range" in text
        assert "µmol/L" in text  # unit as recorded
        assert "informed consent" in text


def test_verdict_is_prominent_in_html(protocol):
    for name in CASES:
        page = render_html(evaluate_case(protocol, name))
        assert f'<section class="verdict {name}" id="verdict">' in page
        assert name.upper() in page


# ---------------------------------------------------------------- HTML is self-contained and escaped
EVIL = "<script>alert('x')</script>"


def _evil_case():
    data = copy.deepcopy(ELIGIBLE)
    data["name"] = f"Eve {EVIL} & <b>bold</b>"
    data["id"] = "PT-<img src=x onerror=alert(1)>"
    data["attestations"] = {f"informed consent": {"value": True, "by": EVIL}}
    data["observations"][0]["id"] = EVIL  # the source of a value names the record id
    return data


def test_html_escapes_data(protocol):
    evil_protocol = elig.parse_protocol_text(PROTOCOL.replace(
        '"actual body weight;', f'"{EVIL} actual body weight;').replace(
        '"Pregnant or lactating women"', f'"Pregnant {EVIL} or lactating"'), file="evil.elig")
    result = evaluate_case(evil_protocol, "eligible", _evil_case())
    page = render_html(result)
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert "<b>bold</b>" not in page
    assert "&lt;script&gt;" in page
    # the text a reader sees contains the original characters
    text = _page_text(page)
    assert EVIL in text and "Eve" in text and "& <b>bold</b>" in text


def test_markdown_escapes_data(protocol):
    result = evaluate_case(protocol, "eligible", _evil_case())
    text = render_markdown(result)
    assert "<script" not in text and "<img" not in text and "<b>" not in text
    assert "&lt;script" in text


def test_html_is_self_contained(protocol):
    for name in CASES:
        page = render_html(evaluate_case(protocol, name))
        low = page.lower()
        assert "<script" not in low
        assert "<link" not in low
        assert "<img" not in low
        assert "@import" not in low and "@font-face" not in low
        assert "url(" not in low
        assert "http://" not in low and "https://" not in low
        for href in re.findall(r'href="([^"]*)"', page):
            assert href.startswith("#"), href
        for sym in ("✔", "✘"):
            assert sym in page
        assert "@media print" in page


def test_html_is_well_formed(protocol):
    class Checker(html.parser.HTMLParser):
        VOID = {"meta", "br", "hr", "img", "link", "input"}

        def __init__(self):
            super().__init__()
            self.stack: list[str] = []

        def handle_starttag(self, tag, attrs):
            if tag not in self.VOID:
                self.stack.append(tag)

        def handle_endtag(self, tag):
            assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
            self.stack.pop()

    for name in CASES:
        c = Checker()
        c.feed(render_html(evaluate_case(protocol, name)))
        c.close()
        assert c.stack == ["html"] or c.stack == [], c.stack


def _page_text(page: str) -> str:
    class Text(html.parser.HTMLParser):
        def __init__(self):
            super().__init__(convert_charrefs=True)
            self.parts: list[str] = []
            self.skip = 0

        def handle_starttag(self, tag, attrs):
            self.skip += tag in ("style", "title")

        def handle_endtag(self, tag):
            self.skip -= tag in ("style", "title")

        def handle_data(self, data):
            if not self.skip:
                self.parts.append(data)

    t = Text()
    t.feed(page)
    return "".join(t.parts)


# ---------------------------------------------------------------- determinism
@pytest.mark.parametrize("render", [render_markdown, render_html, render_json])
def test_deterministic(protocol, render):
    for name in CASES:
        a = render(evaluate_case(protocol, name)).encode("utf-8")
        b = render(evaluate_case(protocol, name)).encode("utf-8")
        assert a == b


def test_no_clock_in_reports(protocol):
    import datetime as dt

    today = dt.date.today().isoformat()
    for name in CASES:
        result = evaluate_case(protocol, name)
        for text in (render_markdown(result), render_html(result)):
            assert today not in text or today == AS_OF


# ---------------------------------------------------------------- JSON schema
@pytest.fixture(scope="module")
def schema():
    data = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(data)
    return data


@pytest.mark.parametrize("name", list(CASES))
def test_json_validates(protocol, schema, name):
    doc = json.loads(render_json(evaluate_case(protocol, name)))
    jsonschema.Draft202012Validator(schema).validate(doc)
    assert doc["schema_version"] == "1.0"


def test_json_schema_rejects_bad_documents(protocol, schema):
    validator = jsonschema.Draft202012Validator(schema)
    doc = json.loads(render_json(evaluate_case(protocol, "ineligible")))
    for mutate in (
        lambda d: d.update(verdict="maybe"),
        lambda d: d.update(schema_version="2.0"),
        lambda d: d["criteria"][0].update(outcome="true"),
        lambda d: d["criteria"][0]["explanation"].pop("summary"),
        lambda d: d.update(extra_field=1),
        lambda d: d.pop("protocol_checksum"),
    ):
        bad = copy.deepcopy(doc)
        mutate(bad)
        assert not validator.is_valid(bad)


def test_json_validates_for_the_bundled_protocol(schema):
    """The real protocol, with its events, logic and attestations, gives schema-valid JSON."""
    root = Path(__file__).parent.parent
    proto = root / "protocols" / "NCT06021067.elig"
    patients = sorted((root / "examples" / "patients").glob("*.*"))
    checked = elig.load_protocol(proto)
    records = []
    for p in patients:
        if p.suffix in (".json", ".yaml", ".yml"):
            try:
                records.append(elig.load_patient(p))
            except elig.DataError:
                continue  # a deliberately malformed example: screening tests cover it
    records.append(elig.patient_from_data(copy.deepcopy(ELIGIBLE), "eligible.yaml"))
    validator = jsonschema.Draft202012Validator(schema)
    for record in records:
        result = elig.evaluate(checked, record, AS_OF)
        validator.validate(json.loads(render_json(result)))
        render_html(result)
        render_markdown(result)
