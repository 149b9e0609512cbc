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


def r4_problems(resource, where: str = "") -> list[str]:
    """Every way ``resource`` is not valid FHIR R4, each as 'path: message'; [] when it is valid."""
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
            out.extend(r4_problems(nested, at))  # a nested resource: say what is wrong inside it
        else:
            out.append(f"{at}: {err.message}")
    return out
