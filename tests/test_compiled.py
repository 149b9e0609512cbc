"""The compiled evaluator gives the explaining evaluator's outcome for every criterion of every patient.

The explaining evaluator (elig.engine.evaluator) is the reference for meaning; the compiled one
(elig.engine.compiled) is what `elig screen` runs when no report is asked for. They are compared
on 10,000 generated patients (bench/population.py: mixed units, histories, boundaries, unknowns),
on every protocol case, on the example patients and on the Synthea FHIR bundles.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

import elig
from elig.commands import casefile, screen
from elig.engine.compiled import compile_protocol
from population import AS_OF, generate

from conftest import ROOT, SYNTHEA_DIR

PROTOCOLS = sorted((ROOT / "protocols").glob("*.elig"))


def same(checked, compiled, patient, as_of, verdicts: set | None = None) -> list[str]:
    """The differences between the two evaluators for one patient (empty when they agree)."""
    reference = elig.evaluate(checked, patient, as_of)
    got = compiled.outcomes(patient, as_of)
    if verdicts is not None:
        verdicts.add(got.verdict)
    diffs = [f"{cid}: explained {c.outcome}, compiled {o}"
             for c, (cid, o) in zip(reference.criteria, got.outcomes) if c.outcome is not o or c.id != cid]
    if reference.verdict is not got.verdict:
        diffs.append(f"verdict: explained {reference.verdict}, compiled {got.verdict}")
    if len(reference.data_issues) != got.data_issues:
        diffs.append(f"data issues: explained {len(reference.data_issues)}, compiled {got.data_issues}")
    if tuple(c.id for c in reference.criteria if c.excludes) != got.excluded_by:
        diffs.append(f"excluded by: {got.excluded_by}")
    return diffs


@pytest.fixture(scope="module")
def population():
    return generate(10_000)


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.stem)
def test_generated_population(protocol, population):
    # The population is written for NCT06021067: all 10,000 there, 500 against the other trials.
    checked = elig.load_protocol(protocol)
    compiled = compile_protocol(checked)
    records = population if protocol.stem == "NCT06021067" else population[:500]
    failures = {}
    verdicts = set()
    for record in records:
        patient = elig.patient_from_data(record, "generated")
        diffs = same(checked, compiled, patient, AS_OF, verdicts)
        if diffs:
            failures[record["id"]] = diffs
    assert not failures, f"{len(failures)} patients differ, e.g. {next(iter(failures.items()))}"
    if protocol.stem == "NCT06021067":
        assert len(verdicts) == 3  # the population reaches every verdict


def test_every_protocol_case():
    checked_cases = 0
    for protocol in PROTOCOLS:
        checked = elig.load_protocol(protocol)
        compiled = compile_protocol(checked)
        for file in casefile.case_files(ROOT / "protocols" / "cases" / checked.id):
            for case in casefile.load_cases(file):
                assert not same(checked, compiled, case.patient(), case.as_of), f"{file.name}: {case.name}"
                checked_cases += 1
    assert checked_cases >= 200


@pytest.mark.skipif(not SYNTHEA_DIR.is_dir(), reason=f"no Synthea bundles in {SYNTHEA_DIR}")
def test_synthea_bundles_and_examples():
    files = sorted(SYNTHEA_DIR.glob("*.json")) + sorted((ROOT / "examples" / "patients").glob("*.yaml"))
    patients = [elig.load_patient(f) for f in files]
    for protocol in PROTOCOLS:
        checked = elig.load_protocol(protocol)
        compiled = compile_protocol(checked)
        for f, patient in zip(files, patients):
            for as_of in (dt.date(2024, 3, 15), dt.date(2019, 6, 1)):
                assert not same(checked, compiled, patient, as_of), f"{protocol.stem} × {f.name} at {as_of}"


def test_screen_without_reports_writes_what_the_explaining_evaluator_decides(tmp_path):
    path = tmp_path / "population.ndjson"
    path.write_text("".join(json.dumps(r) + "\n" for r in generate(100, seed=7)), encoding="utf-8")
    protocol = ROOT / "protocols" / "NCT06021067.elig"
    fast = [r.as_dict() for r in screen.screen(protocol, [path], as_of=AS_OF)]
    explained = [r.as_dict() for r in screen.screen(protocol, [path], as_of=AS_OF, explain=True)]
    assert len(fast) == 100
    assert fast == explained


ALT_ONLY = """protocol T-ALT
  title "ALT alone"
  version "1"

inclusion
  A1 "ALT ≤ 2.5 x ULN"
    ALT ≤ 2.5 x ULN within 7 days
"""
ALT = {"concept": "ALT", "value": 30, "unit": "U/L", "date": "2024-03-12",
       "reference_range": {"high": 40, "unit": "U/L"}}
# Records where the newest ALT cannot decide: both evaluators pick the measurement through one
# function (measure.select); the explaining one says why, the compiled one decides it itself.
DOUBTS = {
    "a newer entry names ALT only in its display": (
        [ALT, {"codes": [{"system": "http://example.org/local", "code": "A1", "display": "ALT"}],
               "value": 300, "unit": "U/L", "date": "2024-03-14"}], "names alanine aminotransferase in its display"),
    "a newer entry names no concept and has no code": (
        [ALT, {"value": 300, "unit": "U/L", "date": "2024-03-14"}], "names no concept and has no code"),
    "an ALT without a date": ([ALT, {"concept": "ALT", "value": 300, "unit": "U/L"}], "has no readable date"),
    "two ALT results of one time that disagree": ([ALT, dict(ALT, value=300)], "conflicting ALT results"),
    "two ALT results of one time, one without a unit": ([ALT, dict(ALT, unit=None)], "cannot be read"),
    "a stale ALT": ([dict(ALT, date="2024-03-01")], "stale"),
}


@pytest.mark.parametrize("case", sorted(DOUBTS))
def test_a_measurement_that_cannot_decide_is_unknown_in_both_evaluators_without_a_fallback(case):
    checked = elig.parse_protocol_text(ALT_ONLY, file="alt.elig")
    compiled = compile_protocol(checked)
    observations, why = DOUBTS[case]
    patient = elig.patient_from_data({"id": "p", "sex": "male", "birth_date": "1960-01-01",
                                      "observations": observations}, "p.json")
    explained = elig.evaluate(checked, patient, AS_OF).criterion("A1")
    assert explained.outcome is elig.Outcome.UNKNOWN and why in explained.explanation.reason
    assert compiled.outcomes(patient, AS_OF).outcomes == (("A1", elig.Outcome.UNKNOWN),)
    assert compiled.fallback_report()["fallbacks"] == 0
    alone = elig.patient_from_data({"id": "q", "sex": "male", "observations": [ALT]}, "q.json")
    assert elig.evaluate(checked, alone, AS_OF).criterion("A1").outcome is elig.Outcome.MET
    assert compiled.outcomes(alone, AS_OF).outcomes == (("A1", elig.Outcome.MET),)
