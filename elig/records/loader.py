"""Reading a patient file: JSON or YAML, native or FHIR, detected from the content.

The native reader (``elig.records.patient``) and the FHIR reader
(``elig.records.fhir``) each build the same ``Patient``; this module chooses
between them, so neither reader imports the other.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from elig.diagnostics import DataError
from elig.records import fhir
from elig.records.patient import Patient, _NativeReader


def load_patient(path: str | Path) -> Patient:
    """Read a patient from a file: native JSON/YAML or a FHIR R4 Bundle (detected)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError("no such file", file=str(path), hint="check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the file: {exc}", file=str(path)) from None
    data = _parse_text(text, str(path))
    return patient_from_data(data, str(path))


class _YamlLoader(yaml.SafeLoader):
    """Safe YAML that leaves dates as text, so elig's own date reader reports a bad one
    (2024-02-30) at its record and field instead of PyYAML raising for the whole file."""


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str) -> Any:
    """Parse YAML as elig reads every YAML input: safe, with dates kept as text."""
    return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass


def _parse_text(text: str, file: str) -> Any:
    if file.endswith((".yaml", ".yml")):
        try:
            return load_yaml(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
            raise DataError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=file, location=where,
                            hint="check indentation and quoting") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        try:  # a .json that is really YAML, or a file without extension
            data = load_yaml(text)
            if isinstance(data, dict):
                return data
        except yaml.YAMLError:
            pass
        raise DataError(f"not valid JSON: {exc.msg}", file=file, location=f"line {exc.lineno}, column {exc.colno}",
                        hint="check for a missing comma or quote") from None


def patient_from_data(data: Any, file: str = "") -> Patient:
    """Build a Patient from parsed JSON/YAML, native or FHIR (detected by resourceType)."""
    if isinstance(data, dict) and data.get("resourceType") in ("Bundle", "Patient"):
        return fhir.patient_from_fhir(data, file)
    if not isinstance(data, dict):
        raise DataError("a patient record must be a mapping (JSON object) at the top level", file=file,
                        hint="start the file with fields such as 'id:', 'birth_date:', 'sex:'")
    return _NativeReader(file).read(data)


def patient_from_text(text: str, file: str) -> Patient:
    """Read a patient from text already in memory (an upload), as ``load_patient`` reads a file.

    ``file`` names it in messages and chooses YAML (``.yaml``/``.yml``) or JSON, as for a path.
    """
    return patient_from_data(_parse_text(text, file), file)
