"""Validation against the official HL7 FHIR R4 (4.0.1) JSON schema, for the tests.

The schema is tests/data/fhir_r4/fhir.schema.json.gz (its README says where it comes from).
It is JSON Schema draft-06, checked here with the ``jsonschema`` library. A resource is
checked against the definition its ``resourceType`` names (the schema's discriminator), so
an error says what is wrong where, not "is not valid under any of 146 resource types";
a resource nested in another (a Bundle entry, a contained resource) is checked the same way.

The JSON schema checks structure: element names, types, cardinality of arrays, required
elements, code values of required bindings and the primitive types' patterns. It does not
check invariants (FHIRPath constraints) or terminology bindings that are not required.
"""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path

SCHEMA_FILE = Path(__file__).parent / "data" / "fhir_r4" / "fhir.schema.json.gz"


@functools.cache
def schema() -> dict:
    with gzip.open(SCHEMA_FILE, "rt", encoding="utf-8") as f:
        return json.load(f)


def resource_types() -> frozenset[str]:
    return frozenset(schema()["discriminator"]["mapping"])


@functools.cache
def _validator(resource_type: str):
    from jsonschema import Draft6Validator

    whole = schema()
    return Draft6Validator({"$schema": whole["$schema"], "definitions": whole["definitions"],
                            "$ref": f"#/definitions/{resource_type}"})


def json_rule_problems(value, where: str = "") -> list[str]:
    """The rules of FHIR's JSON format that the schema does not encode (hl7.org/fhir/R4/json.html):
    no empty object or array, and no null but in an array of primitives beside its '_' twin."""
    at = where or "(root)"
    if value is None:
        return [f"{at}: null is not a FHIR value (leave the element out)"]
    if isinstance(value, list):
        if not value:
            return [f"{at}: an empty array is not a FHIR value (leave the element out)"]
        return [p for i, x in enumerate(value) for p in json_rule_problems(x, f"{where}/{i}" if where else str(i))]
    if not isinstance(value, dict):
        return []
    out = [] if value else [f"{at}: an empty object is not a FHIR value (leave the element out)"]
    for key, item in value.items():
        path = f"{where}/{key}" if where else key
        twin = key[1:] if key.startswith("_") else f"_{key}"
        if isinstance(item, list) and item and twin in value:
            # nulls keep an array of primitives in step with its extensions ('given' and '_given')
            out.extend(p for i, x in enumerate(item) if x is not None for p in json_rule_problems(x, f"{path}/{i}"))
        else:
            out.extend(json_rule_problems(item, path))
    return out


def r4_problems(resource, where: str = "") -> list[str]:
    """Every way ``resource`` is not valid FHIR R4, each as 'path: message'; [] when it is valid:
    the R4 JSON schema, and the rules of the JSON format it does not encode."""
    if where == "":
        return _schema_problems(resource) + json_rule_problems(resource)
    return _schema_problems(resource, where)


def _schema_problems(resource, where: str = "") -> list[str]:
    if not isinstance(resource, dict):
        return [f"{where or '(root)'}: a resource is a JSON object, not {type(resource).__name__}"]
    rtype = resource.get("resourceType")
    if rtype not in resource_types():
        return [f"{where or '(root)'}: {rtype!r} is not a FHIR R4 resource type"]
    out = []
    for err in sorted(_validator(rtype).iter_errors(resource), key=lambda e: list(map(str, e.absolute_path))):
        path = "/".join(str(p) for p in err.absolute_path)
        at = "/".join(p for p in (where, path) if p) or "(root)"
        nested = err.instance
        if err.validator == "oneOf" and isinstance(nested, dict) and "resourceType" in nested:
            out.extend(_schema_problems(nested, at))  # a nested resource: say what is wrong inside it
        else:
            out.append(f"{at}: {err.message}")
    return out
