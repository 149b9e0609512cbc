"""The protocol's memo (elig.engine.memo) never changes an explanation: a protocol that has
evaluated other patients explains each patient exactly as a protocol that has evaluated none."""

from __future__ import annotations

import attrs
import pytest

import elig
from elig.engine.memo import Memo
from population import AS_OF, generate

from conftest import ROOT

PATIENTS = [
    # The same code in two systems: only the SNOMED CT one is a myocardial infarction (E7).
    {"id": "mi-snomed", "sex": "male", "birth_date": "1960-01-01",
     "conditions": [{"codes": [{"system": "SNOMED CT", "code": "22298006"}], "onset": "2024-02-01"}]},
    {"id": "mi-other-system", "sex": "male", "birth_date": "1960-01-01",
     "conditions": [{"codes": [{"system": "ICD-10-CM", "code": "22298006"}], "onset": "2024-02-01"}]},
    # One unit string for two concepts: % reads for LVEF, not for ECOG (a score).
    {"id": "percent", "sex": "female", "birth_date": "1970-01-01",
     "observations": [{"concept": "LVEF", "value": 55, "unit": "%", "date": "2024-03-10"},
                      {"concept": "ECOG", "value": 1, "unit": "%", "date": "2024-03-10"}]},
    {"id": "no-unit", "sex": "female", "birth_date": "1970-01-01",
     "observations": [{"concept": "ECOG", "value": 1, "date": "2024-03-10"},
                      {"concept": "LVEF", "value": 55, "date": "2024-03-10"}]},
    # Creatinine in both units, the same code with and without a display naming another concept.
    {"id": "creatinine-umol", "sex": "male", "birth_date": "1950-01-01",
     "observations": [{"codes": ["LOINC:2160-0"], "value": 132.6, "unit": "µmol/L", "date": "2024-03-12"},
                      {"concept": "body weight", "value": 70, "unit": "kg", "date": "2024-03-12"}]},
    {"id": "creatinine-mgdl", "sex": "male", "birth_date": "1950-01-01",
     "observations": [{"codes": ["LOINC:2160-0"], "value": 1.5, "unit": "mg/dL", "date": "2024-03-12"},
                      {"concept": "body weight", "value": 154, "unit": "lb", "date": "2024-03-12"}]},
    {"id": "display-only", "sex": "male", "birth_date": "1950-01-01",
     "conditions": [{"codes": [{"system": "http://example.org/local", "code": "MI",
                                "display": "Myocardial infarction"}], "onset": "2024-02-01"}]},
    {"id": "display-none", "sex": "male", "birth_date": "1950-01-01",
     "conditions": [{"codes": [{"system": "http://example.org/local", "code": "MI"}], "onset": "2024-02-01"}]},
]


@pytest.fixture(scope="module")
def protocol():
    return elig.load_protocol(ROOT / "protocols" / "NCT06021067.elig")


def fresh(checked):
    """The same protocol with an empty memo."""
    return attrs.evolve(checked, memo=Memo())


def test_a_warm_memo_explains_every_patient_as_an_empty_one(protocol):
    patients = [elig.patient_from_data(d, "memo") for d in PATIENTS]
    patients += [elig.patient_from_data(d, "bench") for d in generate(150, 11)]
    # in order, then in reverse, so that every patient meets a memo warmed by the others
    for patient in patients + patients[::-1]:
        warm = elig.evaluate(protocol, patient, AS_OF).to_json_dict()
        cold = elig.evaluate(fresh(protocol), patient, AS_OF).to_json_dict()
        assert warm == cold, patient.id


def test_the_same_code_in_another_system_is_another_concept(protocol):
    outcomes = {}
    for d in PATIENTS[:2] * 2:
        r = elig.evaluate(protocol, elig.patient_from_data(d, "memo"), AS_OF)
        outcomes.setdefault(d["id"], set()).add(r.criterion("E7").outcome)
    assert outcomes == {"mi-snomed": {elig.Outcome.MET}, "mi-other-system": {elig.Outcome.NOT_MET}}


def test_one_unit_reads_differently_for_two_concepts(protocol):
    r = elig.evaluate(protocol, elig.patient_from_data(PATIENTS[2], "memo"), AS_OF)
    assert r.criterion("I4.9").outcome is elig.Outcome.MET  # LVEF 55 %
    assert r.criterion("I2").outcome is elig.Outcome.UNKNOWN  # ECOG in %
    assert "does not fit ECOG" in r.criterion("I2").explanation.reason


def test_the_memo_is_bounded(monkeypatch):
    from elig.engine import memo

    monkeypatch.setattr(memo, "LIMIT", 3)
    table: dict = {}
    for i in range(10):
        Memo.put(table, i, i)
    assert len(table) <= 3 and table[9] == 9
