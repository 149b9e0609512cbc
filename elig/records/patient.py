"""The patient record elig evaluates, and the reader of its native JSON/YAML form.

Every reader (native here, FHIR in ``elig.records.fhir``) produces the same immutable
``Patient``. Each entry remembers its ``Source`` (file and record, or FHIR
resource type/id) so the explanation can cite where a value came from.

A malformed entry never stops the whole record: it is kept with what could be
read, and a ``DataIssue`` names the record and field (``observations[2].date``)
and what was expected. Only a file that is not a patient record at all raises
``DataError``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import attrs

from elig.records.builder import slot_builder as _builder
from elig.records.dates import DateSyntaxError, PartialDate, parse_date
from elig.diagnostics import DataError, shown
from elig.terminology.codes import Coding, canonical_system
from elig.terminology.units import MAX_UNIT_CHARS, unit_problem


@attrs.frozen(weakref_slot=False)  # no weak references: see _builder
class Source:
    """Where an entry came from: the file and the record within it."""

    file: str
    record: str  # "observations[2]" or "Observation/abc-123"

    def __str__(self) -> str:
        return f"{self.record} in {self.file}" if self.file else self.record


@attrs.frozen(weakref_slot=False)  # no weak references: see _builder
class Observation:
    """A measurement or test result, as recorded."""

    source: Source
    concept: str | None = None  # the name the record gives (native format)
    codes: tuple[Coding, ...] = ()
    value: float | None = None
    value_text: str | None = None  # as recorded, when not a plain number
    unit: str | None = None
    date: PartialDate | None = None
    reference_low: float | None = None
    reference_high: float | None = None
    reference_unit: str | None = None
    result: str | None = None  # qualitative: "positive" | "negative" | other text
    status: str | None = None
    problem: str | None = None  # why the value cannot be used, when read already broken


@attrs.frozen
class BodySite:
    """Where a procedure was done or a condition is: body-structure codes and laterality.

    ``laterality`` is a word (left, right, bilateral, midline) read from the record's
    laterality qualifier, so the explanation can say "thorax, left".
    """

    codes: tuple[Coding, ...] = ()
    laterality: str | None = None
    text: str | None = None  # the record's own words for the site, when it gives them

    def __str__(self) -> str:
        name = (self.text or next((c.display for c in self.codes if c.display), None)
                or ", ".join(str(c) for c in self.codes) or "unnamed site").replace(" (body structure)", "")
        return f"{name}, {self.laterality}" if self.laterality else name


@attrs.frozen(weakref_slot=False)  # no weak references: see _builder
class Condition:
    source: Source
    concept: str | None = None
    codes: tuple[Coding, ...] = ()
    onset: PartialDate | None = None
    abatement: PartialDate | None = None
    clinical_status: str | None = None  # active | recurrence | relapse | inactive | remission | resolved
    verification_status: str | None = None  # confirmed | provisional | refuted | entered-in-error ...
    grade: int | None = None  # grade, stage or class as a number (CTCAE grade, NYHA class)
    body_sites: tuple[BodySite, ...] = ()
    unreadable_dates: tuple[str, ...] = ()  # date fields given but unreadable: dates that decide nothing


@attrs.frozen(weakref_slot=False)  # no weak references: see _builder
class Procedure:
    source: Source
    concept: str | None = None
    codes: tuple[Coding, ...] = ()
    start: PartialDate | None = None
    end: PartialDate | None = None
    status: str | None = None
    # Procedure.category (mCODE: SNOMED 108290001 radiotherapy) and where it was done.
    category: tuple[Coding, ...] = ()
    body_sites: tuple[BodySite, ...] = ()
    unreadable_dates: tuple[str, ...] = ()  # date fields given but unreadable: dates that decide nothing


@attrs.frozen(weakref_slot=False)  # no weak references: see _builder
class Medication:
    source: Source
    concept: str | None = None
    codes: tuple[Coding, ...] = ()
    start: PartialDate | None = None
    end: PartialDate | None = None
    status: str | None = None  # active | completed | stopped | on-hold | intended | entered-in-error
    unreadable_dates: tuple[str, ...] = ()  # date fields given but unreadable: dates that decide nothing


@attrs.frozen(weakref_slot=False)  # no weak references: see _builder
class Attestation:
    """An answer only a person can give, with who gave it, when, and where it was read.

    ``study`` is the study a research Consent names (its policy or source), or the elig
    Questionnaire a response answers, when there is one: an answer given for another
    study is not an answer for this one.
    """

    key: str
    value: bool | None
    source: Source
    by: str | None = None
    date: PartialDate | None = None
    study: str | None = None


@attrs.frozen
class DataIssue:
    """A problem with one entry of a record: the entry is kept or skipped, never silently."""

    location: str  # "observations[2].date" or "Observation/abc.valueQuantity.unit"
    message: str
    hint: str | None = None
    file: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}: {self.location}" if self.file else self.location
        return f"{where}: {self.message}" + (f" ({self.hint})" if self.hint else "")


def _yes_no(value) -> bool | None:
    """What the native reader takes as yes or no; None for anything else (unknown, blank, garbage)."""
    if isinstance(value, bool):
        return value
    if not _scalar(value):
        return None
    return {"yes": True, "true": True, "y": True, "1": True,
            "no": False, "false": False, "n": False, "0": False}.get(str(value).strip().lower())


@attrs.frozen(weakref_slot=False)  # no weak references: see _builder
class Patient:
    id: str
    source_file: str = ""
    format: str = "native"  # "native" | "fhir"
    name: str | None = None
    birth_date: PartialDate | None = None
    sex: str | None = None  # "male" | "female" | None
    pregnant: bool | None = None
    lactating: bool | None = None
    # Facts the record states but that cannot be read as yes or no ('unknown', '', garbage): the
    # record said something, so a gate such as '(if of childbearing potential)' cannot pass them by.
    unstated_facts: tuple[str, ...] = ()
    observations: tuple[Observation, ...] = ()
    conditions: tuple[Condition, ...] = ()
    procedures: tuple[Procedure, ...] = ()
    medications: tuple[Medication, ...] = ()
    attestations: tuple[Attestation, ...] = ()
    issues: tuple[DataIssue, ...] = ()


# ---------------------------------------------------------------- native reader
_TOP_KEYS = {
    "id", "name", "birth_date", "birthDate", "sex", "gender", "pregnant", "lactating", "weight", "height",
    "observations", "conditions", "procedures", "medications", "attestations", "notes", "description",
}
_SEX = {"male": "male", "m": "male", "man": "male", "female": "female", "f": "female", "woman": "female"}


class _NativeReader:
    def __init__(self, file: str):
        self.file = file
        self.issues: list[DataIssue] = []
        self.bad_dates: list[str] = []  # the date fields of the entry being read that could not be read

    def issue(self, location: str, message: str, hint: str | None = None) -> None:
        self.issues.append(DataIssue(location, message, hint, self.file))

    def text(self, value, location: str, what: str) -> str | None:
        """A field that must be text (a number is taken as its text); anything else is an issue."""
        if value is None or isinstance(value, str):
            return value
        if _scalar(value):
            return f"{value:g}" if isinstance(value, float) else str(value)
        self.issue(location, f"cannot read {what} {shown(value)}: expected text")
        return None

    def date(self, value, location: str) -> PartialDate | None:
        """A date, or None; a date given but unreadable is also noted in ``bad_dates``."""
        if value is None:
            return None
        if value.__class__ is str:
            d = _DATE[value]  # entries share their dates, and so do patients: each is parsed once
            if d.__class__ is PartialDate:
                return d
            why = d
        elif not isinstance(value, (str, int)) or isinstance(value, bool):
            self.bad_dates.append(location.rsplit(".", 1)[-1])
            self.issue(location, f"cannot read date {shown(value)}: expected text such as 2024-03-15",
                       "write dates as YYYY-MM-DD (or YYYY-MM, YYYY when that is all that is known)")
            return None
        else:
            try:
                return parse_date(value)
            except DateSyntaxError as exc:
                why = str(exc)
        self.bad_dates.append(location.rsplit(".", 1)[-1])
        self.issue(location, why, "write dates as YYYY-MM-DD (or YYYY-MM, YYYY when that is all that is known)")
        return None

    def codes(self, entry: dict, location: str, key: str | None = None) -> tuple[Coding, ...]:
        raw = entry.get(key) if key else entry.get("codes", entry.get("code"))
        if raw is None:
            return ()
        items = raw if isinstance(raw, list) else [raw]
        out = []
        for i, item in enumerate(items):
            if item.__class__ is str:
                coding = _CODING[item]
                if coding is not None:
                    out.append(coding)
                    continue
            if isinstance(item, dict) and _scalar(item.get("code")) and isinstance(item.get("system"), str):
                display = item.get("display") if isinstance(item.get("display"), str) else None
                out.append(Coding(canonical_system(item["system"]), str(item["code"]).strip(), display))
            elif isinstance(item, str) and ":" in item and "|" in item or \
                    isinstance(item, str) and ":" in item and not item.startswith("http"):
                system, code = item.split(":", 1) if not item.startswith("http") else item.rsplit("|", 1)
                out.append(Coding(canonical_system(system.strip()), code.strip()))
            else:
                self.issue(f"{location}.code[{i}]", f"cannot read code {shown(item)}",
                           "write a code as {system: LOINC, code: 2160-0} or 'LOINC:2160-0'")
        return tuple(out)

    def read(self, data: dict) -> Patient:
        # Written for speed (a screening run reads millions of records): the fields most records
        # give are read inline when they are of the usual type, and everything else goes through
        # the general reading, with its issue. Issues are noted in the order the general reading
        # notes them: unknown fields, id, sex, birth date, entries, attestations, name, facts.
        get = data.get
        if not _TOP_KEYS.issuperset(data):
            for key in sorted(set(data) - _TOP_KEYS):
                self.issue(key, f"unknown field '{key}' is ignored",
                           "known fields: " + ", ".join(sorted(_TOP_KEYS - {'birthDate', 'gender', 'description'})))
        pid = get("id")
        if pid.__class__ is not str:
            pid = self.text(pid, "id", "the id")
        pid = pid or Path(self.file).stem or "patient"
        sex_raw = get("sex", get("gender"))
        sex = None
        if sex_raw is not None:
            sex = _SEX.get(sex_raw.strip().lower()) if isinstance(sex_raw, str) else None
            if sex is None:
                self.issue("sex", f"cannot read sex {shown(sex_raw)}", "write 'male' or 'female'; leave it out when unknown")
        birth = self.date(get("birth_date", get("birthDate")), "birth_date")
        observations = []
        if get("weight") is not None or get("height") is not None:
            for key, concept in (("weight", "body weight"), ("height", "body height")):
                if data.get(key) is not None:
                    observations.append(self.observation(self._shorthand(data[key], concept), key))
        general, plain, file = self.general_observation, _plain_observation, self.file
        observations += [plain(e, file, loc) or general(e, loc) for loc, e in self.located(data, "observations")]
        conditions = [self.dated(self.condition, e, loc)
                      for loc, e in self.located(data, "conditions")] if get("conditions") else ()
        procedures = [self.dated(self.procedure, e, loc)
                      for loc, e in self.located(data, "procedures")] if get("procedures") else ()
        medications = [self.dated(self.medication, e, loc)
                       for loc, e in self.located(data, "medications")] if get("medications") else ()
        attestations = self.attestations(get("attestations"))
        name = get("name")
        if name.__class__ is not str:
            name = self.text(name, "name", "the name")
        pregnant, lactating = get("pregnant"), get("lactating")
        if pregnant is None and lactating is None:
            unstated = ()
        else:
            pregnant, lactating = self.boolean(pregnant, "pregnant"), self.boolean(lactating, "lactating")
            unstated = _unstated_facts(data)
        # positionally, in the order of _new_patient's fields
        return _new_patient(pid, self.file, "native", name, birth, sex, pregnant, lactating, unstated,
                            _present(observations), _present(conditions), _present(procedures),
                            _present(medications), attestations, tuple(self.issues))

    def dated(self, read, e: dict, loc: str):
        """An entry read by ``read``, with the date fields it gave but that could not be read."""
        self.bad_dates = []
        entry = read(e, loc)
        if self.bad_dates:
            entry = attrs.evolve(entry, unreadable_dates=tuple(self.bad_dates))
        return entry

    def _shorthand(self, value, concept: str) -> dict:
        if isinstance(value, dict):
            return {"concept": concept, **value}
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            return {"concept": concept, "value": value}
        parts = str(value).split(None, 1)
        if not parts:  # blank text: read as the value it is (not a number, with its issue)
            return {"concept": concept, "value": value}
        return {"concept": concept, "value": parts[0], "unit": parts[1] if len(parts) > 1 else None}

    def located(self, data: dict, key: str):
        """(location, entry) for each entry of the list ``key`` (see ``entries``)."""
        entries = self.entries(data, key)
        return zip(_locations(key, len(entries)), entries)

    def entries(self, data: dict, key: str) -> list[dict]:
        raw = data.get(key) or []
        if not isinstance(raw, list):
            self.issue(key, f"'{key}' must be a list", f"write each entry on a line starting with '- '")
            return []
        if _ONLY_DICTS.issuperset(map(type, raw)):  # every entry a mapping (the usual case): read as given
            return raw
        out = []
        for i, entry in enumerate(raw):
            if isinstance(entry, dict):
                out.append(entry)
            else:
                self.issue(f"{key}[{i}]", "an entry must be a mapping with fields such as concept, value, unit, date")
                out.append({})
        return out

    def boolean(self, value, location: str | None) -> bool | None:
        """Yes, no or None; an unreadable value is a data issue at ``location`` (None: only read)."""
        if location is None:
            return _yes_no(value)
        if value is None or isinstance(value, bool):
            return value
        if not _scalar(value):
            self.issue(location, f"cannot read {shown(value)} as yes/no", "write true, false, or leave it out when unknown")
            return None
        text = str(value).strip().lower()
        if text in ("yes", "true", "y", "1"):
            return True
        if text in ("no", "false", "n", "0"):
            return False
        if text in ("unknown", ""):
            return None
        self.issue(location, f"cannot read {shown(value)} as yes/no", "write true, false, or leave it out when unknown")
        return None

    def source(self, entry: dict, location: str) -> Source:
        rid = entry.get("id")
        if rid is None:
            return _source(self.file, location)
        rid = rid if isinstance(rid, str) else (str(rid) if _scalar(rid) else None)
        return _source(self.file, f"{location} ({rid})" if rid else location)

    def concept(self, e: dict, loc: str) -> str | None:
        raw = e.get("concept") or e.get("name")
        if raw is None or isinstance(raw, str):
            return raw
        self.issue(f"{loc}.concept", f"cannot read concept {shown(raw)}: a concept is a name such as 'ANC'")
        return None

    def named(self, e: dict, loc: str) -> tuple[str | None, tuple]:
        """An event entry's concept name and codes, in that order (the order of their issues).

        The common case, a plain string, is read inline; anything else goes through ``concept``."""
        concept = e.get("concept") or e.get("name")
        if concept is not None and concept.__class__ is not str:
            concept = self.concept(e, loc)
        return concept, (self.codes(e, loc) if "codes" in e or "code" in e else ())

    def observation(self, e: dict, loc: str) -> Observation | None:
        return _plain_observation(e, self.file, loc) or self.general_observation(e, loc)

    def general_observation(self, e: dict, loc: str) -> Observation | None:
        """Any observation entry, with an issue for each field that cannot be read (``observation``
        reads the plain ones faster, alike)."""
        # Written for speed too (a screening run reads millions of these): the common fields are
        # read inline, and each unusual one goes through the general reading, with its issue.
        get = e.get
        codes = self.codes(e, loc) if "codes" in e or "code" in e else ()
        concept = get("concept") or get("name")
        if concept is not None and concept.__class__ is not str:
            concept = self.concept(e, loc)
        if not concept and not codes:
            self.issue(loc, "an observation needs a concept name or a code", "add 'concept: serum creatinine' or a LOINC code")
        value = value_text = problem = None
        raw = get("value")
        result = get("result")
        if result is not None and not _scalar(result):
            self.issue(f"{loc}.result", f"cannot read result {shown(result)}: expected text such as 'negative'")
            result, problem = None, f"result {shown(result)} is not readable"
        if raw is not None:
            value = _plain_number(raw)
            if value is None:
                value, problem_v = read_number(raw)
                if value is None:
                    value_text = raw if isinstance(raw, str) else shown(raw)
                    if isinstance(raw, str) and raw.strip().lower() in ("positive", "negative", "detected", "not detected"):
                        result = result or raw
                    else:
                        problem = problem_v
                        self.issue(f"{loc}.value", problem, "write the number alone (1200 or 1.2) and the unit in 'unit'")
                elif isinstance(raw, str):
                    value_text = raw
        unit = get("unit")
        if unit is not None and not isinstance(unit, str):
            problem = problem or f"unit {shown(unit)} is not text"
            self.issue(f"{loc}.unit", f"cannot read unit {shown(unit)}: a unit is text such as mg/dL")
            unit = shown(unit)
        elif unit not in (None, "") and problem is None and value is not None:
            reason = _UNIT_PROBLEM[unit]
            if reason:
                problem = reason
                self.issue(f"{loc}.unit", f"{reason}; the observation cannot be used",
                           "write units as labs do: mg/dL, µmol/L, 10^9/L, g/L, U/L, %")
        if get("reference_range") or get("reference"):
            ref_low, ref_high, ref_unit = self.reference_range(e, loc, unit)
        else:
            ref_low = ref_high = ref_unit = None
        when = get("date")
        date = _DATE[when] if when.__class__ is str and get("effective") is None else None
        if date.__class__ is not PartialDate:
            date = self.observed_on(e, loc)
        if result is not None:
            result = qualitative_result(str(result))
        status = get("status")
        return Observation(
            source=_source(self.file, loc) if get("id") is None else self.source(e, loc), concept=concept,
            codes=codes, value=value, value_text=value_text, unit=unit if unit not in (None, "") else None,
            date=date, reference_low=ref_low, reference_high=ref_high, reference_unit=ref_unit,
            result=result, status=None if status is None else self.text(status, f"{loc}.status", "status"),
            problem=problem,
        )

    def observed_on(self, e: dict, loc: str) -> PartialDate | None:
        """When an observation was taken: 'date', or its synonym 'effective'. Both given and not the
        same date: which one the record means cannot be told, and reading either silently would let a
        garbled field decide whether the result is recent, so the date is unreadable, with an issue."""
        given = {k: e[k] for k in ("date", "effective") if e.get(k) is not None}
        if len(given) < 2:
            key, value = next(iter(given.items()), ("date", None))
            return self.date(value, f"{loc}.{key}")
        date, effective = self.date(given["date"], f"{loc}.date"), self.date(given["effective"], f"{loc}.effective")
        if date is not None and effective is not None:
            for wide, narrow in ((date, effective), (effective, date)):
                # the same date, or one the other makes more precise (2024-03-10 and 2024-03-10T08:00)
                if (wide.earliest() <= narrow.earliest() and narrow.latest() <= wide.latest()
                        and (wide.time is None or wide.time == narrow.time)):
                    return narrow
        if date is not None and effective is not None:  # two readable dates that differ (an unreadable one has its issue)
            self.issue(f"{loc}.date", f"both 'date' ({date}) and 'effective' ({effective}) are given, so when the "
                       "observation was taken cannot be told", "give one of them")
        return None  # an observation without a readable date decides nothing (it may be the newest)

    def reference_range(self, e: dict, loc: str, unit) -> tuple[float | None, float | None, str | None]:
        """low, high and unit of a reference range; a bound that is not a finite number is left out."""
        ref = e.get("reference_range") or e.get("reference") or {}
        if not isinstance(ref, dict):
            self.issue(f"{loc}.reference_range", "must be a mapping with low, high and unit")
            return None, None, None
        if not ref:
            return None, None, None
        ref_unit = ref.get("unit", unit)
        if ref_unit is not None and not isinstance(ref_unit, str):
            self.issue(f"{loc}.reference_range.unit", f"cannot read unit {shown(ref_unit)}: a unit is text; "
                                                      "the range is not used")
            return None, None, None
        bounds = []
        for key in ("low", "high"):
            raw = ref.get(key)
            number = None
            if raw is not None:
                number = _plain_number(raw)
                if number is None:
                    number, why = read_number(raw)
                    if number is None:
                        self.issue(f"{loc}.reference_range.{key}", f"{why}; the range's {key} is not used")
            bounds.append(number)
        return bounds[0], bounds[1], ref_unit or None

    def condition(self, e: dict, loc: str) -> Condition:
        get = e.get
        grade = get("grade", get("stage", get("class")))
        grade_value = None
        if grade is not None:
            grade_value = grade_number(grade)
            if grade_value is None:
                self.issue(f"{loc}.grade", f"cannot read grade {shown(grade)}",
                           f"write a whole number from 0 to {MAX_GRADE} (2) or a Roman numeral (III)")
        status = e["status"] if "status" in e else get("clinical_status")
        source = self.source(e, loc)
        concept, codes = self.named(e, loc)
        onset = self.date_at(get("onset"), loc, "onset")
        abatement = self.date_at(get("abatement", get("resolved")), loc, "abatement")
        clinical_status = self.status_at(status, loc, "status")
        verification = self.status_at(get("verification"), loc, "verification")
        body_sites = self.body_sites(e, loc) if get("body_site") is not None or get("laterality") is not None else ()
        # positionally, in the order of _new_condition's fields (unreadable dates: see dated)
        return _new_condition(source, concept, codes, onset, abatement, clinical_status, verification, grade_value,
                              body_sites, ())

    def date_at(self, value, loc: str, field: str) -> PartialDate | None:
        """``date(value, f"{loc}.{field}")``, the location written only when it is needed."""
        if value is None:
            return None
        if value.__class__ is str:
            d = _DATE[value]
            if d.__class__ is PartialDate:
                return d
        return self.date(value, f"{loc}.{field}")

    def status_at(self, value, loc: str, field: str) -> str | None:
        """``status(value, f"{loc}.{field}")``, the location written only when it is needed."""
        if value is None:
            return None
        if value.__class__ is str and value.strip():
            return value
        return self.status(value, f"{loc}.{field}")

    def status(self, value, location: str) -> str | None:
        """A status word; one that is not text is an issue and reads as an unreadable status."""
        text = self.text(value, location, "status")
        if value is not None and not (text or "").strip():
            if text is not None:
                self.issue(location, "the status is empty", "write the status (active, resolved, ...) or leave it out")
            return UNREADABLE_STATUS
        return text

    def body_sites(self, e: dict, loc: str) -> tuple[BodySite, ...]:
        """``body_site: SNOMED:51185008`` (or a list, or {system, code, display}) and ``laterality: left``."""
        if e.get("body_site") is None:
            if e.get("laterality") is not None:
                self.issue(f"{loc}.laterality", "a laterality without a body site is ignored",
                           "add 'body_site: SNOMED:51185008' (thorax) beside it")
            return ()
        codes = self.codes(e, f"{loc}.body_site", key="body_site")
        laterality = e.get("laterality")
        if laterality is not None and str(laterality).strip().lower() not in LATERALITY_WORDS:
            self.issue(f"{loc}.laterality", f"cannot read laterality {shown(laterality)}",
                       "write left, right, bilateral or midline")
            laterality = None
        return (BodySite(codes, str(laterality).strip().lower() if laterality else None),) if codes else ()

    def procedure(self, e: dict, loc: str) -> Procedure:
        get = e.get
        date = get("date")
        if date is not None and ("start" in e or "end" in e):
            # A one-off date beside a period: which one the record means cannot be told, and reading
            # either silently would let a garbled field change whether the procedure is current.
            self.issue(f"{loc}.date", "both 'date' and 'start'/'end' are given, so the procedure's period "
                       "cannot be told", "give 'date' for a one-off procedure, or 'start' (and 'end') for one "
                       "that lasts")
            self.bad_dates.append("date")
            start = self.date_at(get("start"), loc, "start")
            end = self.date_at(get("end"), loc, "end")
        elif date is not None:
            start = end = self.date_at(date, loc, "date")  # a one-off procedure: it began and ended that day
        else:
            start = self.date_at(get("start"), loc, "start")
            end = self.date_at(get("end"), loc, "end")
        source = self.source(e, loc)
        concept, codes = self.named(e, loc)
        status = self.status_at(get("status"), loc, "status")
        category = self.codes(e, f"{loc}.category", key="category") if get("category") else ()
        body_sites = self.body_sites(e, loc) if get("body_site") is not None or get("laterality") is not None else ()
        # positionally, in the order of _new_procedure's fields (unreadable dates: see dated)
        return _new_procedure(source, concept, codes, start, end, status, category, body_sites, ())

    def medication(self, e: dict, loc: str) -> Medication:
        get = e.get
        source = self.source(e, loc)
        concept, codes = self.named(e, loc)
        start = self.date_at(get("start"), loc, "start")
        end = self.date_at(get("end"), loc, "end")
        # positionally, in the order of _new_medication's fields (unreadable dates: see dated)
        return _new_medication(source, concept, codes, start, end, self.status_at(get("status"), loc, "status"), ())

    def attestations(self, raw) -> tuple[Attestation, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, dict):
            self.issue("attestations", "must be a mapping from what is attested to true/false",
                       "write e.g.  informed consent: true")
            return ()
        out = []
        file, new_attestation = self.file, _new_attestation
        for key, value in raw.items():
            if key.__class__ is str:
                normal, loc = _ATTESTATION_KEY[key]
                if value is None or value.__class__ is bool:
                    out.append(new_attestation(normal, value, _source(file, loc), None, None, None))
                    continue
            else:
                normal, loc = normalise_key(str(key)), f"attestations.{key}"
            by = date = None
            if isinstance(value, dict):
                by = self.text(value.get("by"), f"{loc}.by", "who attested")
                date = self.date(value.get("date"), f"{loc}.date")
                value = value.get("value")
            out.append(Attestation(key=normal,
                                   value=value if value is None or value.__class__ is bool else self.boolean(value, loc),
                                   source=_source(self.file, loc), by=by, date=date))
        return tuple(out)


LATERALITY_WORDS = ("left", "right", "bilateral", "midline")


class _Memo(dict):
    """A memo of a pure reading of text that records repeat (dates, codes, units): ``memo[text]`` is
    ``read(text)``, each distinct text read once, not once per entry and per patient.

    A dict whose ``__missing__`` reads what it lacks: a hit is one dict look-up, cheaper than a
    call of a ``functools.lru_cache``. It holds only immutable results, and it is bounded: when
    full, it is emptied and fills again with the texts in use.
    """

    __slots__ = ("read", "size")

    def __init__(self, read, size: int):
        super().__init__()
        self.read, self.size = read, size

    def __missing__(self, text):
        if len(self) >= self.size:
            self.clear()
        value = self[text] = self.read(text)
        return value


def _read_date(text: str) -> PartialDate | str:
    """The date a text gives, or why it gives none (the message of ``DateSyntaxError``)."""
    try:
        return parse_date(text)
    except DateSyntaxError as exc:
        return str(exc)


def _read_coding(item: str) -> Coding | None:
    """A code written as text ('LOINC:2160-0', 'http://loinc.org|2160-0'), or None when it is not one."""
    if ":" in item and "|" in item or ":" in item and not item.startswith("http"):
        system, code = item.split(":", 1) if not item.startswith("http") else item.rsplit("|", 1)
        return Coding(canonical_system(system.strip()), code.strip())
    return None


def _read_codings(items: tuple) -> tuple[Coding, ...] | None:
    """The codes of a list of code texts; None when one is not a code text (the general reading notes it)."""
    out = []
    for item in items:
        if item.__class__ is not str:
            return None
        coding = _CODING[item]
        if coding is None:
            return None
        out.append(coding)
    return tuple(out)


def _read_attestation_key(text: str) -> tuple[str, str]:
    """An attestation's key as it is matched, and its location in the record."""
    return normalise_key(text), f"attestations.{text}"


_DATE = _Memo(_read_date, 65536)  # text -> PartialDate, or why the text is not a date
_CODING = _Memo(_read_coding, 16384)  # 'LOINC:2160-0' -> Coding, or None
_CODINGS = _Memo(_read_codings, 16384)  # ('LOINC:2160-0', ...) -> (Coding, ...), or None
_UNIT_PROBLEM = _Memo(lambda unit: unit_problem(unit), 4096)  # a unit's text -> why it cannot be read, or None
_ATTESTATION_KEY = _Memo(_read_attestation_key, 4096)  # 'Informed consent' -> ('informed consent', location)

_SMALL_INT = 10 ** 15
# The first 64 locations of each list of a record, written once.
_LOCATIONS = {key: tuple(f"{key}[{i}]" for i in range(64))
              for key in ("observations", "conditions", "procedures", "medications")}


def _plain_observation(e: dict, file: str, loc: str) -> Observation | None:
    """The observation most records hold, read as ``_NativeReader.observation`` reads it; None for
    anything that reading would note an issue on, or read otherwise (the general path then reads it).

    Plain means: only the fields concept (text), codes (a list of 'SYSTEM:code' texts), value (a
    finite number), unit (readable text), date (readable text) and reference_range (finite numbers
    and a text unit) are given. Written for speed (a screening run reads millions of these): each
    field is looked up only if present, and the fields found are counted, so that a record with any
    other field goes to the general reading.
    """
    if "value" not in e or "date" not in e:
        return None
    value = e["value"]
    cls = value.__class__
    if cls is float:
        if value - value != 0.0:  # NaN or infinity (x - x is NaN for both)
            return None
    elif cls is int and -_SMALL_INT < value < _SMALL_INT:
        value = float(value)
    else:
        return None
    when = e["date"]
    if when.__class__ is not str:
        return None
    date = _DATE[when]
    if date.__class__ is not PartialDate:
        return None
    found = 2
    if "concept" in e:
        found = 3
        concept = e["concept"] or None
        if concept is not None and concept.__class__ is not str:
            return None
    else:
        concept = None
    if "codes" in e:
        found += 1
        raw = e["codes"]
        if raw is None:
            codes = ()
        else:
            try:
                codes = _CODINGS[tuple(raw)] if raw.__class__ is list else None
            except TypeError:  # an unhashable item (a mapping): not a code text
                return None
            if not codes:
                return None  # not a list of code texts, or an empty one: the general reading decides
    else:
        codes = ()
    if not concept and not codes:
        return None
    if "unit" in e:
        found += 1
        unit = e["unit"] or None
        if unit is not None and (unit.__class__ is not str or _UNIT_PROBLEM[unit] is not None):
            return None
    else:
        unit = None
    low = high = ref_unit = None
    if "reference_range" in e:
        found += 1
        ref = e["reference_range"]
        if ref:
            if ref.__class__ is not dict:
                return None
            bounds = 0
            if "unit" in ref:
                bounds = 1
                ref_unit = ref["unit"]
                if ref_unit is not None and ref_unit.__class__ is not str:
                    return None
                ref_unit = ref_unit or None
            else:
                ref_unit = unit
            if "low" in ref:
                bounds += 1
                low = ref["low"]
                if low is not None and (low := _plain_number(low)) is None:  # not a finite number
                    return None
            if "high" in ref:
                bounds += 1
                high = ref["high"]
                if high is not None and (high := _plain_number(high)) is None:
                    return None
            if bounds != len(ref):  # a field other than low, high and unit
                return None
    if found != len(e):  # a field other than those above
        return None
    return _new_observation(_source(file, loc), concept, codes, value, None, unit, date, low, high, ref_unit,
                            None, None, None)


# (source, concept, codes, value, value_text, unit, date, reference_low, reference_high, reference_unit,
#  result, status, problem)
_new_observation = _builder(Observation, (
    "source", "concept", "codes", "value", "value_text", "unit", "date", "reference_low", "reference_high",
    "reference_unit", "result", "status", "problem"))
# (key, value, source, by, date, study)
_new_attestation = _builder(Attestation, ("key", "value", "source", "by", "date", "study"))
_new_patient = _builder(Patient, (
    "id", "source_file", "format", "name", "birth_date", "sex", "pregnant", "lactating", "unstated_facts",
    "observations", "conditions", "procedures", "medications", "attestations", "issues"))
_new_condition = _builder(Condition, (
    "source", "concept", "codes", "onset", "abatement", "clinical_status", "verification_status", "grade",
    "body_sites", "unreadable_dates"))
_new_procedure = _builder(Procedure, (
    "source", "concept", "codes", "start", "end", "status", "category", "body_sites", "unreadable_dates"))
_new_medication = _builder(Medication, ("source", "concept", "codes", "start", "end", "status", "unreadable_dates"))
_ONLY_DICTS = frozenset({dict})
# The Source of an entry: (file, record). Built anew for each entry, never looked up: a memo of
# (file, record) pairs pays only when every record has the same file name, and then it costs what
# building one does; when each record is named by its file and line (as ``elig screen`` names
# them) every look-up misses and costs four times a build.
_source = _builder(Source, ("file", "record"))


def _present(entries: list) -> tuple:
    """The entries read (a reader may give None for an entry it cannot keep)."""
    for entry in entries:
        if entry is None:
            return tuple(e for e in entries if e is not None)
    return tuple(entries)


def _unstated_facts(data: dict) -> tuple[str, ...]:
    """Facts the record gives but not as yes or no ('unknown', '', garbage)."""
    return tuple(f for f in ("pregnant", "lactating") if data.get(f) is not None and _yes_no(data.get(f)) is None)


def _locations(key: str, n: int):
    """'observations[0]', 'observations[1]', ...: the location of each of the ``n`` entries of a list."""
    first = _LOCATIONS[key]
    if n <= len(first):
        return first
    return _more_locations(first, key)


def _more_locations(first: tuple, key: str):
    yield from first
    i = len(first)
    while True:
        yield f"{key}[{i}]"
        i += 1


def _plain_number(raw) -> float | None:
    """A finite float or a small int as ``read_number`` reads it; None for anything else (which
    ``read_number`` then reads, with its reason)."""
    cls = raw.__class__
    if cls is float:
        return raw if math.isfinite(raw) else None
    if cls is int and -_SMALL_INT < raw < _SMALL_INT:
        return float(raw)
    return None


def normalise_key(text: str) -> str:
    """Attestation keys match case- and space-insensitively."""
    return " ".join(text.lower().replace("_", " ").split())


# Qualitative results as labs write them; both record readers (native, FHIR) use this table.
RESULT_WORDS = {
    "positive": "positive", "pos": "positive", "detected": "positive", "reactive": "positive", "+": "positive",
    "negative": "negative", "neg": "negative", "not detected": "negative", "non-reactive": "negative",
    "nonreactive": "negative", "undetected": "negative", "-": "negative",
}


def qualitative_result(text: str) -> str:
    """'Detected' → 'positive', 'non-reactive' → 'negative'; other text is kept, lower-cased."""
    t = text.strip().lower()
    return RESULT_WORDS.get(t, t)


_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5, "VI": 6, "VII": 7, "VIII": 8, "IX": 9, "X": 10}
_GRADE_AFTER_WORD = re.compile(r"\b(?:grade|class|stage|gr\.?)\s*([0-9]+|[IVX]+)(?:[a-c])?\b", re.IGNORECASE)
_GRADE_ALONE = re.compile(r"^\s*([0-9]+|[IVX]+)(?:[a-cA-C])?\s*$", re.IGNORECASE)


def grade_number(value) -> int | None:
    """A grade, stage or class as a number: 2, '2', 'III', 'Grade 2', 'NYHA class III', 'CTCAE grade 2'."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        # A grade is a small whole number: NaN, infinity, 2.5 or 10^400 are not grades.
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            return None
        return int(value) if 0 <= value <= MAX_GRADE else None
    if not isinstance(value, str) or len(value) > 200:
        return None
    m = _GRADE_AFTER_WORD.search(value) or _GRADE_ALONE.match(value)
    if not m:
        return None
    g = m.group(1)
    number = int(g) if g.isascii() and g.isdigit() else _ROMAN.get(g.upper())
    return number if number is not None and 0 <= number <= MAX_GRADE else None


# The status of an entry whose status field could not be read: the evaluator reads it as unknown.
UNREADABLE_STATUS = "unreadable"

MAX_GRADE = 10  # grades, stages and classes in use run from 0 (ECOG, CTCAE) to 5 (CTCAE), IV (NYHA, stage)

# What a record may give as a number: 1200, -3, 1.25, 1e-3, and a decimal comma (1,25).
# "1,200" is refused: it is a thousand and two hundred to a protocol (docs/language.md)
# and 1.2 to a lab writing decimal commas; a record must not be read either way silently.
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d{1,3})?", re.ASCII)
_DECIMAL_COMMA = re.compile(r"[+-]?\d+,(?:\d{1,2}|\d{4,})", re.ASCII)
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+", re.ASCII)
_THOUSANDS_DECIMAL = re.compile(r"[+-]?\d{1,3}(?:,\d{3})+\.\d+", re.ASCII)
MAX_NUMBER_CHARS = 40


def read_number(raw) -> tuple[float | None, str | None]:
    """A recorded value as a finite float, or (None, why not).

    Numbers read as the protocol reads them: ``1,200.5`` has a thousands separator; a
    lone comma followed by exactly three digits (``1,200``) is ambiguous and refused.
    NaN, infinity and numbers beyond a float (10^400) are refused.
    """
    if isinstance(raw, bool):
        return None, f"value {raw!r} is not a number"
    if isinstance(raw, int):
        if raw.bit_length() > 1000:
            return None, f"value {shown(raw)} is not a plausible number"
        value = float(raw) if abs(raw) < 1e300 else math.inf
    elif isinstance(raw, float):
        value = raw
    elif isinstance(raw, str):
        text = raw.strip()
        if len(text) > MAX_NUMBER_CHARS:
            return None, f"value {shown(raw)} is not a number"
        if _PLAIN_NUMBER.fullmatch(text):
            value = float(text)
        elif _THOUSANDS_DECIMAL.fullmatch(text):
            value = float(text.replace(",", ""))
        elif _DECIMAL_COMMA.fullmatch(text):
            value = float(text.replace(",", "."))
        elif _THOUSANDS.fullmatch(text):
            return None, (f"value {raw!r} is ambiguous: a thousands separator ({text.replace(',', '')}) or a "
                          f"decimal comma ({text.replace(',', '.', 1)})")
        else:
            return None, f"value {shown(raw)} is not a number"
    else:
        return None, f"value {shown(raw)} is not a number"
    if not math.isfinite(value):
        return None, f"value {shown(raw)} is not a finite number"
    return value, None


def _scalar(value) -> bool:
    """Text, or a number small enough to write out (never a list, mapping or 10^400)."""
    if isinstance(value, str):
        return True
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if isinstance(value, int):
        return abs(value) < 10 ** 15
    return math.isfinite(value) and abs(value) < 1e15

