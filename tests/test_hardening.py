"""Regression tests for issue 11: hostile and broken input, one test per finding.

Each test names the finding it keeps fixed. The reproducers are the small records and
protocols of the fuzzing campaign; their twins without the garbage give the verdict
the garbage must not improve on.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import elig
from elig.api import parse_protocol_text
from elig.commands.cli import main
from elig.diagnostics import DataError, ProtocolError, render_all
from elig.engine.evaluator import evaluate
from elig.records.loader import load_patient, patient_from_data
from elig.report.markdown import render_markdown
from elig.report.html import render_html
from elig.report.text import render_text

from conftest import ROOT, SYNTHEA_DIR

AS_OF = "2024-03-15"


def protocol(*rules: str, exclusion: tuple[str, ...] = ()):
    text = "protocol T\ninclusion\n" + "".join(f'  I{i} "s"\n    {r}\n' for i, r in enumerate(rules, 1))
    if exclusion:
        text += "exclusion\n" + "".join(f'  E{i} "s"\n    {r}\n' for i, r in enumerate(exclusion, 1))
    return parse_protocol_text(text)


def record(*observations, **fields):
    return {"id": "p1", "birth_date": "1960-01-01", "sex": "male", **fields, "observations": list(observations)}


def verdict(proto, data) -> str:
    return str(evaluate(proto, patient_from_data(data, "rec.yaml"), AS_OF).verdict)


def result(proto, data):
    return evaluate(proto, patient_from_data(data, "rec.yaml"), AS_OF)


def obs(concept, value, unit=None, date="2024-03-10", **more):
    out = {"concept": concept, "value": value, "date": date, **more}
    if unit is not None:
        out["unit"] = unit
    return out


# ====================================================================== garbage → ELIGIBLE
def test_thousands_separator_in_a_record_value_is_refused_not_read_as_a_decimal():
    proto = protocol("ALT ≤ 100 U/L")
    assert verdict(proto, record(obs("ALT", 1200, "U/L"))) == "ineligible"
    r = result(proto, record(obs("ALT", "1,200", "U/L")))
    assert str(r.verdict) == "undetermined"
    assert "ambiguous" in r.criteria[0].explanation.reason
    assert any("1,200" in i and "ambiguous" in i for i in r.data_issues)


def test_thousands_separator_with_decimals_reads_like_the_protocol_parser():
    proto = protocol("PLT ≥ 1,000 x 10^9/L")
    assert verdict(proto, record(obs("PLT", "1,200.5", "10^9/L"))) == "eligible"
    # a decimal comma that cannot be a thousands separator stays a decimal comma
    assert verdict(protocol("ANC ≥ 1.5 x 10^9/L"), record(obs("ANC", "1,25", "10^9/L"))) == "ineligible"


@pytest.mark.parametrize("value", ["nan", "inf", "-Infinity", "1_000", "0x10", "١٢"])
def test_number_spellings_python_accepts_but_labs_do_not_are_refused(value):
    r = result(protocol("ALT ≤ 100 U/L"), record(obs("ALT", value, "U/L")))
    assert str(r.verdict) == "undetermined"


def test_nonsense_unit_percent_squared_does_not_rescale_a_score():
    proto = protocol("ECOG 0 to 3")
    assert verdict(proto, record(obs("ECOG", 4))) == "ineligible"
    for unit in ("%%", "%.%", "%^2"):
        r = result(proto, record(obs("ECOG", 4, unit)))
        assert str(r.verdict) == "undetermined", unit
        assert "unit" in r.criteria[0].explanation.reason


def test_invalid_utc_offsets_are_refused_not_shifted():
    proto = protocol("ALT ≤ 100 U/L within 7 days")
    for stamp in ("2024-03-10T10:00+25:00", "2024-03-10T10:00+99:99", "2024-03-10T10:00-13:00"):
        r = result(proto, record(obs("ALT", 30, "U/L", date=stamp)))
        assert str(r.verdict) == "undetermined", stamp
        assert any("UTC offset" in i for i in r.data_issues)
    assert verdict(proto, record(obs("ALT", 30, "U/L", date="2024-03-10T10:00+14:00"))) == "eligible"


# ====================================================================== records lost, DoS
def test_ndjson_line_of_invalid_utf8_gives_an_error_row_and_the_rest_is_screened(tmp_path):
    good = json.dumps(record(obs("ALT", 30, "U/L")))
    batch = tmp_path / "batch.ndjson"
    batch.write_bytes((good + "\n").encode() + b'{"id": "bad\xff"}\n' + ((good + "\n") * 5).encode())
    proto_file = tmp_path / "p.elig"
    proto_file.write_text('protocol T\ninclusion\n  I1 "s"\n    ALT ≤ 100 U/L\n', encoding="utf-8")
    out = tmp_path / "rows.csv"
    r = CliRunner().invoke(main, ["screen", str(proto_file), str(batch), "--as-of", AS_OF, "--csv", str(out), "-q"])
    assert r.exit_code == 1
    rows = out.read_text(encoding="utf-8").splitlines()
    assert len(rows) == 1 + 7
    assert rows[2].split(",")[3] == "2" and "not UTF-8" in rows[2]
    assert sum(",eligible," in row for row in rows) == 6
    assert "batch.ndjson:2: not UTF-8" in r.output


def test_unit_exponent_tower_is_refused_before_any_work():
    from elig.terminology.units import parse_unit, UnitSyntaxError

    for unit in ("10^9^9", "10**9**9", "10^99999999/L", "10*99999999/L", "m^999", "x" * 500):
        with pytest.raises(UnitSyntaxError):
            parse_unit(unit)
    r = result(protocol("ANC ≥ 1.5 x 10^9/L"), record(obs("ANC", 2, "10^9^9")))
    assert str(r.verdict) == "undetermined"


def test_yaml_alias_bomb_is_refused_with_a_data_error(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}, *a{i-1}]"
              for i in range(1, 9)]
    lines += ["id: p", "name: *a8"]
    bomb.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as exc:
        load_patient(bomb)
    assert "aliases" in str(exc.value) and str(bomb) in str(exc.value)


def test_explicit_yaml_timestamp_tag_is_read_as_text_and_a_bad_date_is_an_issue(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("id: p\nbirth_date: !!timestamp 2024-02-30\n", encoding="utf-8")
    patient = load_patient(f)
    assert patient.birth_date is None
    assert any("2024-02-30" in i.message for i in patient.issues)


def test_json_nested_100000_deep_is_a_data_error_naming_the_file(tmp_path):
    f = tmp_path / "deep.json"
    f.write_text('{"id": "p", "name": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    with pytest.raises(DataError) as exc:
        load_patient(f)
    assert "nested too deeply" in str(exc.value) and "deep.json" in str(exc.value)


def test_junk_nested_3000_deep_is_quoted_briefly_in_the_issue():
    junk = []
    inner = junk
    for _ in range(3000):
        inner.append([])
        inner = inner[0]
    patient = patient_from_data(record(obs("ALT", junk, "U/L"), name=junk), "rec.json")
    assert all(len(i.message) < 300 for i in patient.issues)
    assert patient.name is None and patient.observations[0].value is None


def test_bare_fhir_resource_that_is_not_bundle_or_patient_is_a_data_error():
    with pytest.raises(DataError) as exc:
        patient_from_data({"resourceType": "Observation", "id": "o1", "status": "final"}, "obs.json")
    assert "Observation" in str(exc.value) and "obs.json" in str(exc.value)


# ====================================================================== crashes → diagnostics
@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_weight_or_height_is_a_data_issue_not_a_crash(blank):
    p = patient_from_data({"id": "x", "weight": blank, "height": "170 cm"}, "x.json")
    weight = next(o for o in p.observations if o.concept == "body weight")
    assert weight.value is None and weight.problem
    assert [str(i) for i in p.issues] == [f"x.json: weight.value: value {blank!r} is not a number "
                                          "(write the number alone (1200 or 1.2) and the unit in 'unit')"]


def test_non_string_concept_is_a_data_issue():
    r = result(protocol("ALT ≤ 100 U/L"), record({"concept": ["ALT"], "value": 30, "unit": "U/L", "date": "2024-03-10"}))
    assert str(r.verdict) == "undetermined"
    assert any("concept" in i for i in r.data_issues)


@pytest.mark.parametrize("stamp", ["9999-12-31T23:30-01:00", "2024-01-01T25:00", "2024-01-01T23:59:60",
                                   "2024-02-30", "2024-00", "2024-03-00", "2024-03-00T10:00"])
def test_dates_at_the_edges_are_data_issues(stamp):
    # Month 00 and day 00 name no month and no day: they were read as January and the 1st (and
    # '2024-03-00T10:00' raised), never now.
    r = result(protocol("ALT ≤ 100 U/L within 7 days"), record(obs("ALT", 30, "U/L", date=stamp), birth_date=stamp))
    assert str(r.verdict) == "undetermined"
    assert any("cannot read date" in i for i in r.data_issues)


@pytest.mark.parametrize("stamp", ["2024-01-01T25:00", "1970-01-01T23:59:60", "9999-12-31T23:30-01:00"])
def test_fhir_birth_date_at_the_edges_is_a_data_issue(stamp):
    patient = patient_from_data({"resourceType": "Patient", "id": "x", "birthDate": stamp}, "p.json")
    assert patient.birth_date is None and any("birthDate" in i.location for i in patient.issues)


def test_non_string_condition_status_is_a_data_issue():
    proto = protocol("age ≥ 18 years", exclusion=("active radiation pneumonitis",))
    data = {**record(), "conditions": [{"concept": "radiation pneumonitis", "status": {"x": 1}, "onset": "2024-01-01"}]}
    r = result(proto, data)
    assert any("status" in i for i in r.data_issues)
    assert str(r.verdict) != "eligible"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 10 ** 400, -(10 ** 400)])
def test_non_finite_and_huge_values_are_refused(value):
    r = result(protocol("serum creatinine ≤ 150 µmol/L"), record(obs("serum creatinine", value, "mg/dL")))
    assert str(r.verdict) == "undetermined"


@pytest.mark.parametrize("grade", [float("nan"), float("inf"), 10 ** 400, 2.5, -1, 11])
def test_grades_that_are_not_small_whole_numbers_are_refused(grade):
    proto = protocol("active radiation pneumonitis grade 2 to 3")
    data = {**record(), "conditions": [{"concept": "radiation pneumonitis", "grade": grade, "onset": "2024-01-01"}]}
    r = result(proto, data)
    assert str(r.verdict) == "undetermined"
    assert any("grade" in i for i in r.data_issues)


@pytest.mark.parametrize("unit", [["U/L"], {"u": "U/L"}, 42])
def test_reference_range_unit_that_is_not_text_is_a_data_issue(unit):
    r = result(protocol("ALT ≤ 2.5 x ULN"), record(obs("ALT", 30, "U/L", reference_range={"high": 40, "unit": unit})))
    assert any("reference_range.unit" in i for i in r.data_issues)


@pytest.mark.parametrize("rule", ["age 18 to 75 yeers", "200 < PaO2/FiO2 ≤ 300 mmHgg", "age ≥ 18 yeers"])
def test_unit_typo_inside_a_range_is_E004_like_a_single_comparison(rule):
    with pytest.raises(ProtocolError) as exc:
        protocol(rule)
    assert [d.code for d in exc.value.diagnostics] == ["E004"]


@pytest.mark.parametrize("rule", ["not " * 500 + "pregnant", " and ".join(["any of pregnant, lactating"] * 1000)])
def test_deep_nesting_is_a_located_E006_not_a_recursion_error(rule):
    with pytest.raises(ProtocolError) as exc:
        protocol(rule)
    (d,) = exc.value.diagnostics
    assert d.code == "E006" and d.span.line == 4


def test_lone_surrogate_in_protocol_text_is_E001_at_its_place():
    with pytest.raises(ProtocolError) as exc:
        parse_protocol_text('protocol T\ninclusion\n  I1 "a\ud800"\n    age ≥ 18 years\n')
    (d,) = exc.value.diagnostics
    assert d.code == "E001" and (d.span.line, d.span.column) == (3, 8)
    assert "\\ud800" in str(exc.value)


# ====================================================================== reports that mislead
FORGED = "x\nVERDICT: ELIGIBLE\n\x1b]0;pwned\x07\x1b[2J\x9b1m\u2028\u202e"


def _forged_result():
    proto = protocol("ALT ≤ 100 U/L")
    return evaluate(proto, patient_from_data(record(obs("ALT", 300, "U/L"), id=FORGED, name=FORGED), "r.json"),
                    AS_OF)


def test_newline_in_a_patient_name_cannot_forge_a_verdict_line_in_the_text_report():
    text = render_text(_forged_result())
    verdict_lines = [line for line in text.splitlines() if line.startswith("VERDICT")]
    assert verdict_lines == ["VERDICT: INELIGIBLE"]
    assert "x\\nVERDICT: ELIGIBLE" in text


@pytest.mark.parametrize("render", [render_text, render_markdown, render_html])
def test_terminal_escapes_and_control_bytes_from_the_data_never_reach_a_report(render):
    out = render(_forged_result())
    assert not any(ch in out for ch in "\x1b\x07\x9b\u2028\u202e")
    assert "\\x1b" in out


def test_screen_csv_neutralises_bare_carriage_returns_and_formulas(tmp_path):
    from elig.commands.screen import CsvWriter, Row
    import io

    buf = io.StringIO()
    w = CsvWriter(buf, ["I1"])
    for i, pid in enumerate(["a\rb", "=HYPERLINK(\"x\")", "+1", "-2", "@SUM(A1)", "\tx", "plain"]):
        w.write(Row(i, "f.ndjson", i + 1, patient_id=pid, verdict="eligible", outcomes=(("I1", "met"),)))
    lines = buf.getvalue().split("\n")
    assert len(lines) == 1 + 7 + 1  # header, seven rows, the final newline
    assert "\r" not in buf.getvalue()
    ids = [line.split(",")[1] for line in lines[1:-1]]
    assert ids[0] == "a\\rb"
    assert all(cell.lstrip('"').startswith("'") for cell in ids[1:6])
    assert ids[6] == "plain"


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\u0085", "\v", "\f"])
def test_caret_points_at_the_right_line_whatever_the_separators_in_a_sentence(separator):
    text = f'protocol T\ninclusion\n  I1 "a{separator}b"\n    age ≥ 18 yeers\n'
    with pytest.raises(ProtocolError) as exc:
        parse_protocol_text(text, file="x.elig")
    rendered = render_all(exc.value.diagnostics, exc.value.sources)
    shown = rendered.splitlines()
    assert "x.elig:4:14" in shown[0]
    assert shown[2] == "4 |     age ≥ 18 yeers"
    assert shown[3] == "  |              ^^^^^"


def test_diagnosing_many_erroneous_criteria_is_linear(monkeypatch):
    """Structural, not timed: the recovery parses pieces whose total size is linear in the file."""
    from elig.language import parser

    parsed: list[int] = []
    real = parser.get_parser()

    class Counting:
        def parse(self, text, start, **options):
            parsed.append(len(text))
            return real.parse(text, start=start, **options)

    monkeypatch.setattr(parser, "get_parser", lambda: Counting())
    n = 400
    text = "protocol T\ninclusion\n" + "".join(f'  I{i} "x"\n    age ≥ ≥ 18 years\n' for i in range(n))
    with pytest.raises(ProtocolError) as exc:
        parser.parse_protocol(text)
    assert len(exc.value.diagnostics) == n
    assert sum(parsed) <= 4 * len(text)
    str(exc.value)  # rendering all of them splits the source once


def test_cli_docs_describe_the_real_screen_options():
    from elig.commands.screen import command

    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = doc.split("## elig screen", 1)[1]
    for option in command.params:
        for name in option.opts:
            if name.startswith("--"):
                assert name in section, name
    assert "--format" not in section and "-o FILE" not in section


# ====================================================================== garbage → ELIGIBLE (evaluator)
def test_nonsense_dimensionless_unit_on_a_score_is_unusable():
    proto = protocol("ECOG 0 to 3")
    for unit in ("%", "µ", "U", "‰", "ppm"):
        r = result(proto, record(obs("ECOG", 4, unit)))
        assert str(r.verdict) == "undetermined", unit
    assert verdict(proto, record(obs("ECOG", 2, "{score}"))) == "eligible"


def test_a_fraction_still_reads_its_declared_percent():
    proto = protocol("FiO2 ≤ 0.5")
    assert verdict(proto, record(obs("FiO2", 40, "%"))) == "eligible"
    assert verdict(proto, record(obs("FiO2", 60, "%"))) == "ineligible"


def test_enzyme_units_never_convert_to_a_count():
    r = result(protocol("ANC ≥ 1.5 x 10^9/L"), record(obs("ANC", 2, "U/L")))
    assert str(r.verdict) == "undetermined"


def test_unreadable_date_on_the_newest_entry_never_lets_an_older_value_decide():
    proto = protocol("ANC ≥ 1.5 x 10^9/L")
    older = obs("ANC", 2.0, "10^9/L", date="2024-02-01")
    assert verdict(proto, record(older)) == "eligible"
    for newest in (obs("ANC", 0.5, "10^9/L", date="2024-02-30"), {"concept": "ANC", "value": 0.5, "unit": "10^9/L"}):
        r = result(proto, record(newest, older))
        assert str(r.verdict) == "undetermined"
        assert "no readable date" in r.criteria[0].explanation.reason


def test_garbage_on_the_newest_value_never_lets_an_older_value_decide():
    proto = protocol("ANC ≥ 1.5 x 10^9/L")
    older = obs("ANC", 2.0, "10^9/L", date="2024-02-01")
    for newest in (obs("ANC", "0,5.", "10^9/L"), obs("ANC", 0.5, "10^9/Lx"), obs("ANC", 0.5, "%%")):
        assert verdict(proto, record(newest, older)) == "undetermined"


def test_garbage_code_on_the_newest_fhir_value_never_lets_an_older_value_decide():
    def observation(oid, code, value, when):
        return {"resource": {"resourceType": "Observation", "id": oid, "status": "final",
                             "code": {"coding": [{"system": "http://loinc.org", "code": code,
                                                  "display": "Neutrophils"}]},
                             "effectiveDateTime": when,
                             "valueQuantity": {"value": value, "system": "http://unitsofmeasure.org",
                                               "code": "10*9/L"}}}
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p", "birthDate": "1960-01-01", "gender": "male"}},
        observation("old", "751-8", 2.0, "2024-02-01"), observation("new", "751-8", 0.5, "2024-03-10")]}
    proto = protocol("ANC ≥ 1.5 x 10^9/L")
    assert verdict(proto, bundle) == "ineligible"
    bundle["entry"][2]["resource"]["code"]["coding"][0]["code"] = "75l-8"
    r = result(proto, bundle)
    assert str(r.verdict) == "undetermined"
    assert "display" in r.criteria[0].explanation.reason


def test_same_time_conflict_is_not_hidden_by_a_garbage_twin():
    proto = protocol("serum creatinine ≤ 150 µmol/L")
    first = obs("serum creatinine", 97.2, "µmol/L", date="2024-03-10T10:00Z")
    assert verdict(proto, record(first, obs("serum creatinine", 300, "µmol/L", date="2024-03-10T10:00Z"))) \
        == "undetermined"
    for twin in (obs("serum creatinine", "abc", "µmol/L", date="2024-03-10T10:00Z"),
                 obs("serum creatinine", 300, "µmol/LL", date="2024-03-10T10:00Z"),
                 obs("serum creatinine", 300, "%", date="2024-03-10T10:00Z")):
        r = result(proto, record(first, twin))
        assert str(r.verdict) == "undetermined"
        assert "same time" in r.criteria[0].explanation.reason


SYNTHEA_TOM = SYNTHEA_DIR / "Tom_Goodwin_e20de9eb-6f2d-4871-a43f-bbede53293ed.json"


@pytest.mark.skipif(not SYNTHEA_TOM.exists(), reason="the shared Synthea bundles are not available")
@pytest.mark.parametrize("garbage", ["value", "unit", "code", "date"])
def test_same_time_conflict_on_a_synthea_bundle_is_not_hidden_by_garbage(garbage):
    """Tom Goodwin's panels of 2020-05-12 give creatinine 1.06 and 3.42 mg/dL at the same second."""
    bundle = json.loads(SYNTHEA_TOM.read_text(encoding="utf-8"))
    proto = protocol("serum creatinine ≤ 1.5 mg/dL")
    as_of = "2020-05-20"
    assert str(evaluate(proto, patient_from_data(bundle, "tom.json"), as_of).verdict) == "undetermined"
    twin = next(e["resource"] for e in bundle["entry"] if e["resource"].get("id") == "433b061e-2ee6-42f7-a596-ed1c7948068c")
    if garbage == "value":
        twin["valueQuantity"]["value"] = "abc"
    elif garbage == "unit":
        twin["valueQuantity"]["code"] = twin["valueQuantity"]["unit"] = "mg/dLL"
    elif garbage == "code":
        twin["code"]["coding"][0]["code"] = "38483-X"
    else:
        twin["effectiveDateTime"] = "2020-05-12T25:55:41+00:00"
    r = evaluate(proto, patient_from_data(bundle, "tom.json"), as_of)
    assert str(r.verdict) == "undetermined", r.criteria[0].explanation.summary


@pytest.mark.parametrize("high", [float("inf"), 1e308, 2 ** 63, -40, 0, 15000])
def test_implausible_reference_range_upper_limit_falls_back_to_the_default_and_says_so(high):
    proto = protocol("ALT ≤ 5 x ULN")
    r = result(proto, record(obs("ALT", 300, "U/L", reference_range={"high": high, "unit": "U/L"})))
    e = r.criteria[0].explanation
    assert str(r.verdict) == "ineligible"  # 300 > 5 × 40, the default ULN for a man
    assert e.threshold.uln == 40
    if high not in (float("inf"),):  # inf is refused by the reader already, with a data issue
        assert "because the reference range" in e.threshold.uln_source


def test_implausible_fhir_reference_range_upper_limit_falls_back_to_the_default():
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p", "birthDate": "1960-01-01", "gender": "male"}},
        {"resource": {"resourceType": "Observation", "id": "alt", "status": "final",
                      "code": {"coding": [{"system": "http://loinc.org", "code": "1742-6"}]},
                      "effectiveDateTime": "2024-03-10",
                      "valueQuantity": {"value": 300, "system": "http://unitsofmeasure.org", "code": "U/L"},
                      "referenceRange": [{"high": {"value": 1e308, "code": "U/L"}}]}}]}
    r = result(protocol("ALT ≤ 5 x ULN"), bundle)
    assert str(r.verdict) == "ineligible" and r.criteria[0].explanation.threshold.uln == 40


def test_reference_ranges_of_many_patients_convert_each_unit_once(monkeypatch):
    """A screen of many patients whose ALT comes with a reference range converts "U/L" (and the
    vocabulary's ULN unit) through pint a fixed number of times, not once per patient."""
    from elig.terminology import units

    calls = []
    real = units.conversion_factor_q
    monkeypatch.setattr(units, "conversion_factor_q", lambda *a, **k: calls.append(a) or real(*a, **k))
    proto = protocol("ALT ≤ 5 x ULN")
    verdicts = [verdict(proto, record(obs("ALT", 30 + 100 * (i % 3), "U/L",
                                          reference_range={"high": 40 + i % 5, "unit": "U/L"})))
                for i in range(60)]
    assert verdicts[:3] == ["eligible", "eligible", "ineligible"]
    assert len(calls) <= 3


def test_number_beside_a_threshold_has_enough_digits_to_read_true():
    proto = protocol("Creatinine clearance ≥ 60 mL/min (Cockcroft-Gault) within 7 days")
    data = record(obs("serum creatinine", 112, "µmol/L"), obs("body weight", 72, "kg"))
    e = result(proto, data).criteria[0].explanation
    assert e.outcome.value == "not met"
    assert e.summary.startswith("Creatinine clearance 59.99 mL/min does not meet ≥ 60 mL/min")
    assert e.distance.startswith("59.99 mL/min; needs ≥ 60 mL/min")


def test_creatinine_conversion_convention_is_shown_within_rounding_of_a_threshold():
    proto = protocol("Creatinine clearance ≥ 60 mL/min (Cockcroft-Gault) within 7 days")
    near = result(proto, record(obs("serum creatinine", 112, "µmol/L"), obs("body weight", 72, "kg")))
    assert "88.40 µmol/L per mg/dL" in near.criteria[0].explanation.summary
    assert "113.12 g/mol" in near.criteria[0].explanation.summary
    far = result(proto, record(obs("serum creatinine", 80, "µmol/L"), obs("body weight", 72, "kg")))
    assert "µmol/L per mg/dL" not in far.criteria[0].explanation.summary
    same_unit = result(proto, record(obs("serum creatinine", 1.2669, "mg/dL"), obs("body weight", 72, "kg")))
    assert "µmol/L per mg/dL" not in same_unit.criteria[0].explanation.summary


def test_creatinine_convention_is_stated_in_the_vocabulary_and_semantics():
    vocab = (ROOT / "elig" / "data" / "vocabulary.yaml").read_text(encoding="utf-8")
    semantics = (ROOT / "docs" / "semantics.md").read_text(encoding="utf-8")
    for text in (vocab, semantics):
        assert "88.40" in text and "88.42" in text and "PubChem CID 588" in text
    from elig.terminology.units import conversion_factor

    assert round(conversion_factor("mg/dL", "umol/L", 113.12), 2) == 88.40


# ====================================================================== found by the fuzz suite
def test_condition_whose_concept_cannot_be_read_makes_not_present_unknown():
    proto = protocol("age ≥ 18 years", exclusion=("history of chronic bronchitis",))
    assert verdict(proto, record()) == "eligible"
    data = {**record(), "conditions": [{"concept": ["chronic bronchitis"], "onset": "2020-01-01"}]}
    r = result(proto, data)
    assert str(r.verdict) == "undetermined"
    assert "names no concept" in r.criteria[1].explanation.reason


def test_observation_whose_concept_cannot_be_read_may_be_the_newest_value():
    proto = protocol("ANC ≥ 1.5 x 10^9/L")
    data = record({"concept": {"x": "ANC"}, "value": 0.5, "unit": "10^9/L", "date": "2024-03-10"},
                  obs("ANC", 2.0, "10^9/L", date="2024-02-01"))
    assert verdict(proto, data) == "undetermined"


@pytest.mark.parametrize("status", ["abc", "", ["resolved"], {"x": 1}])
def test_condition_status_elig_cannot_read_is_unknown_not_active(status):
    proto = protocol("active radiation pneumonitis")
    data = {**record(), "conditions": [{"concept": "radiation pneumonitis", "onset": "2024-01-01", "status": status}]}
    assert verdict(proto, data) == "undetermined"
    resolved = {**record(), "conditions": [{"concept": "radiation pneumonitis", "onset": "2024-01-01",
                                            "status": "resolved"}]}
    assert verdict(proto, resolved) == "ineligible"


def test_unreadable_end_date_is_not_an_open_end():
    proto = protocol("age ≥ 18 years", exclusion=("taking anticoagulant",))
    ended = {**record(), "medications": [{"concept": "anticoagulant", "start": "2023-01-01", "end": "2023-06-01"}]}
    assert verdict(proto, ended) == "eligible"
    for end in ("2023-02-30", ["2023-06-01"], "soon"):
        garbled = copy.deepcopy(ended)
        garbled["medications"][0]["end"] = end
        assert verdict(proto, garbled) == "undetermined", end


def test_unreadable_fhir_abatement_is_not_an_open_end():
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p", "birthDate": "1960-01-01", "gender": "male"}},
        {"resource": {"resourceType": "Condition", "id": "c",
                      "code": {"coding": [{"system": "http://snomed.info/sct", "code": "63480004"}]},
                      "onsetDateTime": "2020-01-01", "abatementDateTime": "2021-02-30"}}]}
    r = result(protocol("age ≥ 18 years", exclusion=("active chronic bronchitis",)), bundle)
    assert str(r.verdict) == "undetermined"


def test_json_report_escapes_c1_controls_separators_and_surrogates_and_decodes_to_the_same_data():
    from elig.report.json import render_json

    proto = protocol("ALT ≤ 100 U/L")
    pid = "a\x9b1mb\u2028c\u202ed\ud800e"
    r = evaluate(proto, patient_from_data(record(obs("ALT", 30, "U/L"), id=pid), "r.json"), AS_OF)
    text = render_json(r)
    assert not any(ch in text for ch in "\x9b\u2028\u202e\ud800")
    text.encode("utf-8")
    assert json.loads(text)["patient_id"] == pid


def test_garbage_never_makes_an_alternative_not_recorded_and_hands_the_decision_to_another():
    proto = protocol("age ≥ 18 years", exclusion=(
        "PTA ≤ 40% within 3 days or INR ≥ 1.5 within 3 days (whichever is recorded)",))
    inr = obs("INR", 1.05, date="2024-03-14")
    assert verdict(proto, record(obs("PTA", 30, "%", date="2024-03-14"), inr)) == "ineligible"
    for pta in (obs("PTA", 30, "%", date="2024-02-30"), {"concept": [1], "value": 30, "unit": "%",
                                                          "date": "2024-03-14"}):
        assert verdict(proto, record(pta, inr)) == "undetermined"


def test_a_procedure_with_both_a_date_and_a_start_is_not_read_as_ended():
    """Found by `make fuzz`: a garbled `date` beside `start` used to end the procedure on its start
    date, so 'not active invasive mechanical ventilation' was met for a ventilated patient."""
    proto = protocol("not active invasive mechanical ventilation")
    ventilated = record(procedures=[{"concept": "invasive mechanical ventilation", "start": "2024-03-14"}])
    assert result(proto, ventilated).criteria[0].outcome is elig.Outcome.NOT_MET
    for garbage in ("", "garbage", "2024-03-14"):
        garbled = copy.deepcopy(ventilated)
        garbled["procedures"][0]["date"] = garbage
        r = result(proto, garbled)
        assert r.criteria[0].outcome is elig.Outcome.UNKNOWN, garbage
        assert any("both 'date' and 'start'/'end'" in issue for issue in r.data_issues)
    one_off = record(procedures=[{"concept": "invasive mechanical ventilation", "date": "2024-03-01"}])
    assert result(proto, one_off).criteria[0].outcome is elig.Outcome.MET  # began and ended that day


def test_an_unreadable_pregnancy_answer_is_not_passed_by_the_childbearing_gate():
    """Found by `make fuzz`: `pregnant: ''` (or 'si', or 'unknown') on a woman outside childbearing
    potential read as 'not asked', so the exclusion was not met although the record spoke of it."""
    proto = protocol("age ≥ 18 years", exclusion=("pregnant (if of childbearing potential)",))
    older_woman = {"id": "w", "birth_date": "1955-06-01", "sex": "female", "observations": []}
    assert result(proto, older_woman).criteria[1].outcome is elig.Outcome.NOT_MET  # not asked
    assert result(proto, {**older_woman, "pregnant": True}).criteria[1].outcome is elig.Outcome.MET
    for said in ("", "unknown", "si"):
        r = result(proto, {**older_woman, "pregnant": said})
        assert r.criteria[1].outcome is elig.Outcome.UNKNOWN, said
        assert r.verdict is not elig.Verdict.ELIGIBLE


def test_an_observation_with_both_a_date_and_an_effective_date_is_not_read_on_either():
    """The same class as a procedure's date beside its start: 'effective' (the FHIR name, accepted as a
    synonym) beside a different 'date' used to be ignored in silence, so an old result could pass for a
    recent one. Both given and different, the result has no readable date and decides nothing."""
    proto = protocol("ANC ≥ 1.5 x 10^9/L within 14 days")
    assert verdict(proto, record(obs("ANC", 2.0, "10^9/L", date="2024-03-10"))) == "eligible"
    stale = obs("ANC", 2.0, "10^9/L", date="2024-03-10", effective="2023-01-05")  # which one is it?
    r = result(proto, record(stale))
    assert r.criteria[0].outcome is elig.Outcome.UNKNOWN
    assert any("both 'date' (2024-03-10) and 'effective' (2023-01-05)" in issue for issue in r.data_issues)
    for same in ({"effective": "2024-03-10"}, {"date": None, "effective": "2024-03-10"},
                 {"effective": "2024-03-10T08:30:00Z"}, {"date": "2024-03", "effective": "2024-03-10"}):
        agreed = {**obs("ANC", 2.0, "10^9/L", date="2024-03-10"), **same}
        assert verdict(proto, record(agreed)) == "eligible", same  # one date, or the same one twice
    garbled = obs("ANC", 2.0, "10^9/L", date="garbage", effective="2024-03-10")
    assert verdict(proto, record(garbled)) == "undetermined"
