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


# Limits on what one record may cost (docs/fhir.md, "Limits"). Crossing one is a DataError
# naming the record; the limits on single fields (units, dates) are in the readers.
MAX_RECORD_BYTES = 64 * 1024 * 1024  # one patient file, or one line of newline-delimited JSON
_TOO_DEEP = ("the record is nested too deeply to read (JSON and YAML are read to about 1,000 levels; "
             "a patient record needs about 10)")


def load_patient(path: str | Path, fhir_reader=None) -> Patient:
    """Read a patient from a file: native JSON/YAML or a FHIR R4 Bundle (detected).

    ``fhir_reader`` (data, file) -> Patient reads FHIR in place of ``fhir.patient_from_fhir``
    (the batch route reads it through SQL-on-FHIR views: ``elig.batch.assemble``)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_RECORD_BYTES:
            raise DataError(f"the file is larger than {MAX_RECORD_BYTES // (1024 * 1024)} MiB, the limit for "
                            f"one patient record", file=str(path),
                            hint="split the data into one file per patient, or NDJSON with one record a line")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError("no such file", file=str(path), hint="check the path") from None
    except UnicodeDecodeError as exc:
        line = exc.object[:exc.start].count(b"\n") + 1
        raise DataError(f"not UTF-8 text: byte {exc.object[exc.start]:#04x} cannot be read", file=str(path),
                        location=f"line {line}", hint="save the file as UTF-8") from None
    except OSError as exc:
        raise DataError(f"cannot read the file: {exc.strerror or exc}", file=str(path)) from None
    data = parse_record_text(text, str(path))
    return patient_from_data(data, str(path), fhir_reader)


class _YamlLoader(yaml.SafeLoader):
    """Safe YAML that leaves dates as text, so elig's own date reader reports a bad one
    (2024-02-30) at its record and field instead of PyYAML raising for the whole file.

    Aliases (``*name``) are refused: an alias shares a node, and a few hundred bytes of
    aliases of aliases expand to gigabytes when the value is used (the "billion laughs").
    """

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"YAML aliases (*{event.anchor}) are not read by elig; write the value out",
                event.start_mark)
        return super().compose_node(parent, index)


_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# An explicit !!timestamp is kept as text too (PyYAML would raise on 2024-02-30).
_YamlLoader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)


def load_yaml(text: str) -> Any:
    """Parse YAML as elig reads every YAML input: safe, dates kept as text, no aliases."""
    return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass


def parse_record_text(text: str, file: str) -> Any:
    """Parse one record's JSON or YAML text; every failure is a DataError naming the file and place."""
    try:
        return _parse_text(text, file)
    except RecursionError:
        raise DataError(_TOO_DEEP, file=file, hint="flatten the record") from None


def _parse_text(text: str, file: str) -> Any:
    if file.endswith((".yaml", ".yml")):
        try:
            return load_yaml(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
            problem = str(getattr(exc, "problem", exc))
            raise DataError(f"not valid YAML: {problem}", file=file, location=where,
                            hint="write the value out where the alias stands" if "aliases" in problem
                            else "check indentation and quoting") from None
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
    except ValueError as exc:  # an integer too long to convert (Python's 4,300-digit limit)
        raise DataError(f"not a readable number in the JSON: {exc}", file=file) from None


def patient_from_data(data: Any, file: str = "", fhir_reader=None) -> Patient:
    """Build a Patient from parsed JSON/YAML, native or FHIR (detected by resourceType)."""
    if isinstance(data, dict) and "resourceType" in data:
        # FHIR: a Bundle or a Patient is read; any other resource (a bare Observation) is not
        # a patient record, and reading it as an empty native record would hide that.
        return (fhir_reader or fhir.patient_from_fhir)(data, file)
    if not isinstance(data, dict):
        raise DataError("a patient record must be a mapping (JSON object) at the top level", file=file,
                        hint="start the file with fields such as 'id:', 'birth_date:', 'sex:'")
    return _NativeReader(file).read(data)


def patient_from_text(text: str, file: str) -> Patient:
    """Read a patient from text already in memory (an upload), as ``load_patient`` reads a file.

    ``file`` names it in messages and chooses YAML (``.yaml``/``.yml``) or JSON, as for a path.
    """
    return patient_from_data(_parse_text(text, file), file)
