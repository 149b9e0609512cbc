"""The readers build records through fast builders (elig.records.patient._builder): the objects
must be exactly the ones the classes' own constructors give, and as immutable."""

from __future__ import annotations

import datetime as dt
import pickle

import attrs
import pytest

from elig.records import patient as p
from elig.records.dates import PartialDate, _new_date
from elig.records.loader import patient_from_data
from elig.terminology.codes import Coding
from builder_support import assert_built_as_constructed

SOURCE = p.Source("f.json", "observations[3]")
DAY = PartialDate(2024, 3, 8, dt.time(10, 30))
SITE = p.BodySite((Coding("http://snomed.info/sct", "51185008"),), "left")

BUILT = [
    (p._new_observation, p.Observation,
     (SOURCE, "ANC", (Coding("http://loinc.org", "751-8"),), 1.5, "1,5", "10^9/L", DAY, 1.8, 7.5, "10^9/L",
      "positive", "final", None)),
    (p._new_attestation, p.Attestation, ("informed consent", True, SOURCE, "Dr Lee", DAY, "urn:study")),
    (p._new_condition, p.Condition,
     (SOURCE, "radiation pneumonitis", (), DAY, None, "active", "confirmed", 2, (SITE,), ("abatement",))),
    (p._new_procedure, p.Procedure, (SOURCE, "chest radiotherapy", (), DAY, DAY, "completed", (), (SITE,), ())),
    (p._new_medication, p.Medication, (SOURCE, "warfarin", (), DAY, None, "active", ("end",))),
    (p._source, p.Source, ("f.json", "conditions[0]")),
]


@pytest.mark.parametrize("build,cls,values", BUILT, ids=[c.__name__ for _, c, _ in BUILT])
def test_a_built_record_is_the_record_its_constructor_gives(build, cls, values):
    assert_built_as_constructed(build, cls, values)


def test_a_patient_read_from_a_record_is_immutable_and_equal_to_one_built_field_by_field():
    data = {"id": "p1", "sex": "female", "birth_date": "1970-05-02", "pregnant": "unknown",
            "observations": [{"concept": "ANC", "value": 2.1, "unit": "10^9/L", "date": "2024-03-08"}],
            "conditions": [{"concept": "radiation pneumonitis", "onset": "2024-02-01", "grade": 2}],
            "attestations": {"informed consent": True}}
    patient = patient_from_data(data, "p1.json")
    same = p.Patient(**{f.name: getattr(patient, f.name) for f in attrs.fields(p.Patient)})
    assert type(patient) is p.Patient and patient == same and repr(patient) == repr(same)
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        patient.observations[0].value = 0.5
    assert patient.unstated_facts == ("pregnant",)


@pytest.mark.parametrize("values", [(2024, 3, 8, dt.time(10, 30)), (2024, 3, None, None), (1999, None, None, None)])
def test_a_built_date_is_the_date_its_constructor_gives(values):
    built, made = _new_date(*values), PartialDate(*values)
    assert type(built) is PartialDate and built == made and hash(built) == hash(made) and repr(built) == repr(made)
    assert str(built) == str(made) and built.sort_key() == made.sort_key() and built.latest() == made.latest()
    assert pickle.loads(pickle.dumps(built)) == made
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        built.year = 2000


def test_every_entry_and_issue_of_a_record_named_by_file_and_line_carries_that_name():
    data = {"id": "p1", "observations": [{"concept": "ANC", "value": 2.1, "unit": "10^9/L", "date": "2024-03-08"},
                                         {"concept": "ANC", "value": 1.9, "unit": "10^9/L", "date": "2024-02-30"}],
            "medications": [{"concept": "warfarin", "start": "2024-01-01"}], "attestations": {"informed consent": True}}
    for name in ("screen.ndjson:7", "screen.ndjson:8"):
        patient = patient_from_data(data, name)
        entries = (*patient.observations, *patient.medications, *patient.attestations)
        assert [e.source for e in entries] == [p.Source(name, "observations[0]"), p.Source(name, "observations[1]"),
                                               p.Source(name, "medications[0]"),
                                               p.Source(name, "attestations.informed consent")]
        assert str(entries[1].source) == f"observations[1] in {name}"
        [issue] = patient.issues
        assert (issue.file, issue.location) == (name, "observations[1].date")
        assert str(issue).startswith(f"{name}: observations[1].date: cannot read date '2024-02-30'")
