"""SQL on FHIR v2 ViewDefinitions: the behaviours of the specification's test suite that elig's views use.

The cases are the project's own, written after the specification's tests (basic columns,
where, forEach, forEachOrNull, unionAll, nested select, collection, constants, first(),
join(), ofType(), getResourceKey() and getReferenceKey()), and the views elig ships are
run on a FHIR bundle.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from elig.batch.views import ViewError, bundle_resources, columns, run_view, shipped_views

ROOT = Path(__file__).resolve().parent.parent

PATIENTS = [
    {"resourceType": "Patient", "id": "a", "active": True, "gender": "female",
     "name": [{"use": "official", "family": "Ames", "given": ["Ada", "B."]}, {"family": "Old"}],
     "telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "a@x"}],
     "contact": [{"telecom": [{"system": "pager", "value": "c1"}]}],
     "link": [{"other": {"reference": "Patient/a"}}]},
    {"resourceType": "Patient", "id": "b", "active": False, "name": [{"family": "Bell"}],
     "link": [{"other": {"reference": "Patient/zz"}}]},
    {"resourceType": "Patient", "id": "c"},
    {"resourceType": "Observation", "id": "o1", "valueString": "high"},
    {"resourceType": "Observation", "id": "o2", "valueInteger": 7,
     "subject": {"reference": "Patient/a"}},
    {"resourceType": "Observation", "id": "o3", "valueQuantity": {"value": 1.2, "code": "mg/dL"},
     "subject": {"reference": "urn:uuid:1234"}},
]


def view(select, resource="Patient", **extra):
    return {"resourceType": "ViewDefinition", "status": "active", "resource": resource, "select": select, **extra}


def rows(v):
    return list(run_view(v, PATIENTS))


def test_columns_of_one_resource_type_in_order():
    v = view([{"column": [{"name": "id", "path": "id"}, {"name": "gender", "path": "gender"},
                          {"name": "active", "path": "active"}]}])
    assert rows(v) == [{"id": "a", "gender": "female", "active": True}, {"id": "b", "gender": None, "active": False},
                       {"id": "c", "gender": None, "active": None}]
    assert columns(v) == ["id", "gender", "active"]


def test_where_keeps_resources_whose_paths_are_true():
    v = view([{"column": [{"name": "id", "path": "id"}]}],
             where=[{"path": "name.where(use = 'official' or family = 'Bell').exists()"}])
    assert rows(v) == [{"id": "a"}, {"id": "b"}]
    v["where"] = [{"path": "name.exists()"}, {"path": "active = false"}]
    assert rows(v) == [{"id": "b"}]
    v["where"] = [{"path": "name.where(family = 'Bell').empty()"}]
    assert rows(v) == [{"id": "a"}, {"id": "c"}]


def test_for_each_unnests_and_for_each_or_null_keeps_a_row_of_nulls():
    each = view([{"column": [{"name": "id", "path": "id"}]},
                 {"forEach": "name", "column": [{"name": "family", "path": "family"}]}])
    assert rows(each) == [{"id": "a", "family": "Ames"}, {"id": "a", "family": "Old"}, {"id": "b", "family": "Bell"}]
    or_null = view([{"column": [{"name": "id", "path": "id"}]},
                    {"forEachOrNull": "name", "column": [{"name": "family", "path": "family"}]}])
    assert rows(or_null)[-1] == {"id": "c", "family": None}


def test_union_all_concatenates_options_with_the_same_columns():
    v = view([{"column": [{"name": "id", "path": "id"}],
               "unionAll": [{"forEach": "telecom", "column": [{"name": "tel", "path": "value"}]},
                            {"forEach": "contact.telecom", "column": [{"name": "tel", "path": "value"}]}]}])
    assert rows(v) == [{"id": "a", "tel": "1"}, {"id": "a", "tel": "a@x"}, {"id": "a", "tel": "c1"}]
    bad = view([{"unionAll": [{"column": [{"name": "x", "path": "id"}]}, {"column": [{"name": "y", "path": "id"}]}]}])
    with pytest.raises(ViewError, match="same columns"):
        rows(bad)


def test_nested_select_is_a_cross_product_and_collection_keeps_lists():
    v = view([{"column": [{"name": "id", "path": "id"}],
               "select": [{"forEach": "name", "column": [{"name": "given", "path": "given", "collection": True}]}]}])
    assert rows(v) == [{"id": "a", "given": ["Ada", "B."]}, {"id": "a", "given": []}, {"id": "b", "given": []}]
    many = view([{"column": [{"name": "family", "path": "name.family"}]}])
    with pytest.raises(ViewError, match="collection"):
        rows(many)


def test_constants_first_join_and_index():
    v = view([{"column": [{"name": "id", "path": "id"},
                          {"name": "official", "path": "name.where(use = %use).family"},
                          {"name": "first", "path": "name.first().family"},
                          {"name": "given", "path": "name[0].given.join(' ')"}]}],
             constant=[{"name": "use", "valueString": "official"}])
    assert rows(v)[0] == {"id": "a", "official": "Ames", "first": "Ames", "given": "Ada B."}
    assert rows(v)[2] == {"id": "c", "official": None, "first": None, "given": None}
    v["select"][0]["column"][1]["path"] = "name.where(use = %undefined).family"
    with pytest.raises(ViewError, match="not defined"):
        rows(v)


def test_of_type_selects_one_type_of_a_polymorphic_value():
    v = view([{"column": [{"name": "id", "path": "id"}, {"name": "s", "path": "value.ofType(string)"},
                          {"name": "i", "path": "value.ofType(integer)"},
                          {"name": "q", "path": "value.ofType(Quantity).value"}]}], resource="Observation")
    assert rows(v) == [{"id": "o1", "s": "high", "i": None, "q": None}, {"id": "o2", "s": None, "i": 7, "q": None},
                       {"id": "o3", "s": None, "i": None, "q": 1.2}]


def test_resource_and_reference_keys():
    v = view([{"column": [{"name": "same", "path": "getResourceKey() = link.other.getReferenceKey(Patient)"},
                          {"name": "wrong_type", "path": "link.other.getReferenceKey(Observation)"}]}])
    assert [r["same"] for r in rows(v)] == [True, False, None]
    assert {r["wrong_type"] for r in rows(v)} == {None}
    obs = view([{"column": [{"name": "patient", "path": "subject.getReferenceKey()"}]}], resource="Observation")
    assert [r["patient"] for r in rows(obs)] == [None, "a", "1234"]


def test_unsupported_functions_are_errors_not_other_rows():
    with pytest.raises(ViewError, match="repeat"):
        rows(view([{"column": [{"name": "x", "path": "repeat(item)"}]}]))
    with pytest.raises(ViewError, match="resource type"):
        list(run_view({"select": []}, PATIENTS))


@pytest.mark.parametrize("name", ["creatinine_units.json", "bp_panel.json", "conditions_graded.json"])
def test_shipped_views_flatten_fhir_bundles(name):
    bundle = json.loads((ROOT / "tests" / "data" / "fhir" / name).read_text(encoding="utf-8"))
    resources = bundle_resources(bundle)
    views = shipped_views()
    assert {"patient", "observation", "condition", "procedure", "medicationrequest"} <= set(views)
    patients = list(run_view(views["patient"], resources))
    assert len(patients) == 1 and patients[0]["patient_key"]
    for key in ("observation", "condition"):
        for row in run_view(views[key], resources):
            assert list(row) == columns(views[key])
            assert row["patient_key"] in (patients[0]["patient_key"], None)  # no subject: the bundle's patient
