"""Protocol test cases: example patients with the outcome a protocol author expects.

A case file is YAML holding a list of cases, in the spirit of OpenFisca's tests.
Case files of a protocol live in ``cases/<PROTOCOL-ID>/*.yaml`` next to the
protocol file (``protocols/cases/NCT06021067/organ_function.yaml``); patient
records they share live in any sub-folder (``patients/``), which is not read
for cases. A case::

    - name: creatinine clearance exactly 60 mL/min meets ≥ 60
      as_of: 2024-03-15
      patient_file: patients/baseline.yaml     # relative to the case file
      changes:                                  # optional: applied to that record
        observations:
          - {concept: serum creatinine, value: 1.2, unit: mg/dL, date: 2024-03-12}
      expect:
        overall: eligible                       # eligible | ineligible | undetermined
        criteria:
          I4.6: met                             # met | not met | unknown
        to_collect: [serum creatinine]          # optional: each text names a datum to collect

``patient`` gives a whole record inline instead (the native format of
``elig.records.patient``). ``changes`` edits the ``patient_file`` record: top-level
fields are replaced (``null`` removes one), ``attestations`` are merged key by
key, and entries of ``observations``, ``conditions``, ``procedures`` and
``medications`` replace every entry of the record that names the same concept
(``{concept: ANC, remove: true}`` only removes them); entries of a concept the
record does not have are added.

``run_cases`` runs the cases of one protocol or a folder of protocols and
returns a ``Report``; ``command`` is the ``elig test`` command. A criterion is
*attested* when its rule is made of attestations only, *computable* otherwise;
a criterion is *covered* by the outcomes (met, not met, unknown) that passing
cases assert for it.
"""

from __future__ import annotations

import copy
import datetime as dt
import sys
from pathlib import Path
from typing import Any

import attrs
import click
import yaml

from elig.records.loader import load_yaml
from elig.commands.files import add_sources, base_vocabulary, vocabulary_option

from elig.engine import plan as p
from elig.diagnostics import DataError
from elig.engine.results import EvaluationResult, Explanation, Outcome, Verdict

OUTCOMES = {"met": Outcome.MET, "not met": Outcome.NOT_MET, "not_met": Outcome.NOT_MET,
            "unmet": Outcome.NOT_MET, "unknown": Outcome.UNKNOWN}
VERDICTS = {v.value: v for v in Verdict}
CASE_KEYS = {"name", "as_of", "patient", "patient_file", "changes", "expect", "description", "note", "xfail"}
EXPECT_KEYS = {"overall", "criteria", "to_collect"}
LIST_FIELDS = ("observations", "conditions", "procedures", "medications")


class CaseError(DataError):
    """A case file that cannot be read: names the file, the case and the field."""

    def __init__(self, message: str, *, file: str, case: str | None = None, field: str | None = None,
                 hint: str | None = None):
        self.case = case
        self.field = field
        location = ", ".join(x for x in (f"case '{case}'" if case else None,
                                         f"field '{field}'" if field else None) if x) or None
        super().__init__(message, file=file, location=location, hint=hint)


@attrs.frozen
class Case:
    name: str
    file: str
    as_of: dt.date
    record: dict = attrs.field(repr=False)  # the native patient record, changes applied
    overall: Verdict | None = None
    criteria: tuple[tuple[str, Outcome], ...] = ()
    to_collect: tuple[str, ...] = ()
    xfail: str | None = None  # a known engine problem: the case is expected to fail, for this reason

    @property
    def id(self) -> str:
        return f"{Path(self.file).stem}::{self.name}"

    def patient(self):
        from elig.records.loader import patient_from_data

        return patient_from_data(copy.deepcopy(self.record), f"{self.file}#{self.name}")


# ---------------------------------------------------------------- loading
def load_cases(path: str | Path) -> list[Case]:
    """Read one case file (a YAML list of cases); raise ``CaseError`` naming file, case and field."""
    path = Path(path)
    file = str(path)
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CaseError("no such case file", file=file, hint="check the path") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise CaseError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}", file=file,
                        hint="check indentation and quoting") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise CaseError("a case file holds a list of cases", file=file,
                        hint="start each case with '- name: ...'")
    cases, errors = _read_cases(data, path)
    if errors:
        raise errors[0]
    return cases


def _read_cases(data: list, path: Path) -> tuple[list[Case], list[CaseError]]:
    """Every readable case of a file, and the errors of the others (one bad case spoils no other)."""
    cases: list[Case] = []
    errors: list[CaseError] = []
    seen: set[str] = set()
    for i, raw in enumerate(data):
        try:
            case = _read_case(raw, i, path)
        except CaseError as exc:
            errors.append(exc)
            continue
        if case.name in seen:
            errors.append(CaseError("two cases have this name", file=str(path), case=case.name, field="name",
                                    hint="give every case of a file its own name"))
            continue
        seen.add(case.name)
        cases.append(case)
    return cases, errors


def load_cases_lenient(path: str | Path) -> tuple[list[Case], list[CaseError]]:
    """Like ``load_cases``, but returns the readable cases with the errors of the others."""
    try:
        return load_cases(path), []
    except CaseError as exc:
        if exc.case is None:  # the file itself is unreadable
            return [], [exc]
    data = load_yaml(Path(path).read_text(encoding="utf-8"))
    return _read_cases(data, Path(path))


def _read_case(raw: Any, index: int, path: Path) -> Case:
    file = str(path)
    if not isinstance(raw, dict):
        raise CaseError(f"case #{index + 1} must be a mapping", file=file,
                        hint="write fields name, as_of, patient or patient_file, expect")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise CaseError(f"case #{index + 1} has no name", file=file, field="name",
                        hint="add 'name: what this case shows'")
    name = name.strip()

    def err(message: str, field: str, hint: str | None = None) -> CaseError:
        return CaseError(message, file=file, case=name, field=field, hint=hint)

    unknown = sorted(set(raw) - CASE_KEYS)
    if unknown:
        raise err(f"unknown field '{unknown[0]}'", unknown[0], "known fields: " + ", ".join(sorted(CASE_KEYS)))
    as_of = raw.get("as_of")
    if as_of is None:
        raise err("missing evaluation date", "as_of", "add 'as_of: YYYY-MM-DD'")
    if isinstance(as_of, dt.datetime):
        as_of = as_of.date()
    if not isinstance(as_of, dt.date):
        try:
            as_of = dt.date.fromisoformat(str(as_of).strip())
        except ValueError:
            raise err(f"cannot read {as_of!r} as a date", "as_of", "write YYYY-MM-DD") from None

    record = _read_patient(raw, path, err)

    expect = raw.get("expect")
    if not isinstance(expect, dict) or not expect:
        raise err("missing expectations", "expect", "add 'expect: {overall: eligible, criteria: {I1: met}}'")
    unknown = sorted(set(expect) - EXPECT_KEYS)
    if unknown:
        raise err(f"unknown field '{unknown[0]}'", f"expect.{unknown[0]}",
                  "known fields: " + ", ".join(sorted(EXPECT_KEYS)))
    overall = None
    if expect.get("overall") is not None:
        overall = VERDICTS.get(str(expect["overall"]).strip().lower())
        if overall is None:
            raise err(f"cannot read overall verdict {expect['overall']!r}", "expect.overall",
                      "write eligible, ineligible or undetermined")
    criteria: list[tuple[str, Outcome]] = []
    raw_criteria = expect.get("criteria") or {}
    if not isinstance(raw_criteria, dict):
        raise err("must map criterion ids to outcomes", "expect.criteria", "write e.g. 'I4.1: met'")
    for cid, outcome in raw_criteria.items():
        key = str(cid)
        text = "met" if outcome is True else "not met" if outcome is False else str(outcome).strip().lower()
        if text not in OUTCOMES:
            raise err(f"cannot read outcome {outcome!r}", f"expect.criteria.{key}",
                      "write met, not met or unknown")
        criteria.append((key, OUTCOMES[text]))
    to_collect = expect.get("to_collect") or []
    if isinstance(to_collect, str):
        to_collect = [to_collect]
    if not isinstance(to_collect, list) or not all(isinstance(x, str) for x in to_collect):
        raise err("must be a list of texts", "expect.to_collect", "write e.g. [serum creatinine, sex]")
    if overall is None and not criteria and not to_collect:
        raise err("expects nothing", "expect", "give 'overall', 'criteria' or 'to_collect'")
    xfail = raw.get("xfail")
    if xfail is not None and (not isinstance(xfail, str) or not xfail.strip()):
        raise err("must say why the case is expected to fail", "xfail", "write e.g. xfail: \"engine bug: ...\"")
    return Case(name=name, file=file, as_of=as_of, record=record, overall=overall, criteria=tuple(criteria),
                to_collect=tuple(to_collect), xfail=xfail.strip() if xfail else None)


def _read_patient(raw: dict, path: Path, err) -> dict:
    inline, ref, changes = raw.get("patient"), raw.get("patient_file"), raw.get("changes")
    if inline is not None and ref is not None:
        raise err("give either 'patient' or 'patient_file', not both", "patient",
                  "use 'patient_file' with 'changes' to vary a shared record")
    if inline is None and ref is None:
        raise err("missing patient", "patient", "give 'patient:' inline or 'patient_file: path'")
    if changes is not None and ref is None:
        raise err("'changes' applies to a 'patient_file'", "changes", "edit the inline patient instead")
    if inline is not None:
        if not isinstance(inline, dict):
            raise err("must be a mapping (a native patient record)", "patient",
                      "write fields such as id, birth_date, sex, observations")
        record = copy.deepcopy(inline)
    else:
        target = (path.parent / str(ref)).resolve()
        try:
            record = load_yaml(target.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise err(f"no such patient file {ref}", "patient_file", f"paths are relative to {path.parent}") from None
        except yaml.YAMLError as exc:
            raise err(f"patient file {ref} is not valid YAML: {getattr(exc, 'problem', exc)}", "patient_file") from None
        if not isinstance(record, dict):
            raise err(f"patient file {ref} is not a native patient record", "patient_file")
        if changes is not None:
            record = apply_changes(record, changes, err)
    return record


def _concept_key(name: Any) -> str:
    from elig.terminology.vocabulary import default_vocabulary

    text = " ".join(str(name or "").split())
    try:
        concept = default_vocabulary().lookup(text)
    except Exception:  # pragma: no cover - vocabulary trouble shows elsewhere
        concept = None
    return concept.name if concept is not None else text.lower()


def apply_changes(record: dict, changes: Any, err=None) -> dict:
    """A copy of ``record`` with ``changes`` applied (see the module docstring)."""
    if err is None:
        def err(message, field, hint=None):
            return DataError(message, location=field, hint=hint)
    if not isinstance(changes, dict):
        raise err("must be a mapping of fields to change", "changes")
    out = copy.deepcopy(record)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        elif key in LIST_FIELDS:
            if not isinstance(value, list):
                raise err(f"'{key}' must be a list of entries", f"changes.{key}")
            entries = list(out.get(key) or [])
            replaced: set[str] = set()
            for j, entry in enumerate(value):
                if not isinstance(entry, dict) or not (entry.get("concept") or entry.get("name")):
                    raise err("each entry needs a concept", f"changes.{key}[{j}]",
                              "write e.g. {concept: ANC, value: 1.4, unit: 10^9/L, date: 2024-03-12}")
                ckey = _concept_key(entry.get("concept") or entry.get("name"))
                if ckey not in replaced:
                    entries = [e for e in entries if not (isinstance(e, dict) and
                                                          _concept_key(e.get("concept") or e.get("name")) == ckey)]
                    replaced.add(ckey)
                if not entry.get("remove"):
                    entries.append(copy.deepcopy(entry))
            out[key] = entries
        elif key == "attestations":
            if not isinstance(value, dict):
                raise err("must map attestation texts to true/false", "changes.attestations")
            merged = dict(out.get("attestations") or {})
            for text, v in value.items():
                if v is None:
                    merged.pop(text, None)
                else:
                    merged[text] = v
            out["attestations"] = merged
        else:
            out[key] = copy.deepcopy(value)
    return out


# ---------------------------------------------------------------- running
@attrs.frozen
class Mismatch:
    field: str  # "overall", "criteria.I4.6", "to_collect"
    expected: str
    actual: str
    explanation: str  # why the engine decided as it did


@attrs.frozen
class CaseResult:
    case: Case
    mismatches: tuple[Mismatch, ...] = ()
    error: str | None = None
    result: EvaluationResult | None = attrs.field(default=None, repr=False)

    @property
    def status(self) -> str:
        """passed | failed | xfail (fails as its 'xfail' foresees) | xpass (marked xfail, yet passes)."""
        clean = self.error is None and not self.mismatches
        if self.case.xfail:
            return "xpass" if clean else "xfail"
        return "passed" if clean else "failed"

    @property
    def passed(self) -> bool:
        """Whether the case leaves the run green (an expected failure does; an unexpected pass does not)."""
        return self.status in ("passed", "xfail")


@attrs.frozen
class CriterionInfo:
    id: str
    section: str
    attested: bool


@attrs.frozen
class TrialReport:
    protocol_id: str
    protocol_file: str
    case_dir: str | None
    criteria: tuple[CriterionInfo, ...]
    cases: tuple[CaseResult, ...]
    errors: tuple[str, ...] = ()

    @property
    def computable(self) -> tuple[CriterionInfo, ...]:
        return tuple(c for c in self.criteria if not c.attested)

    @property
    def attested(self) -> tuple[CriterionInfo, ...]:
        return tuple(c for c in self.criteria if c.attested)

    @property
    def passed(self) -> int:
        return sum(1 for c in self.cases if c.passed)

    @property
    def failed(self) -> int:
        return len(self.cases) - self.passed

    @property
    def ok(self) -> bool:
        return not self.errors and self.failed == 0

    def coverage(self) -> dict[str, frozenset[Outcome]]:
        """Per criterion, the outcomes that passing cases assert."""
        seen: dict[str, set[Outcome]] = {c.id: set() for c in self.criteria}
        for r in self.cases:
            if r.status != "passed":
                continue
            for cid, outcome in r.case.criteria:
                if cid in seen:
                    seen[cid].add(outcome)
        return {k: frozenset(v) for k, v in seen.items()}

    def fully_covered(self, criteria) -> list[str]:
        cov = self.coverage()
        return [c.id for c in criteria if cov[c.id] >= set(Outcome)]

    def summary_counts(self) -> dict[str, int]:
        """The numbers ``elig test`` prints and docs/trials.md tabulates."""
        cov = self.coverage()
        comp = self.computable
        att = self.attested
        return {
            "criteria": len(self.criteria),
            "computable": len(comp),
            "attested": len(att),
            "computable_met": sum(1 for c in comp if Outcome.MET in cov[c.id]),
            "computable_not_met": sum(1 for c in comp if Outcome.NOT_MET in cov[c.id]),
            "computable_unknown": sum(1 for c in comp if Outcome.UNKNOWN in cov[c.id]),
            "computable_all_three": len(self.fully_covered(comp)),
            "attested_asserted": sum(1 for c in att if cov[c.id]),
            "cases": len(self.cases),
            "xfail": sum(1 for c in self.cases if c.status == "xfail"),
            "passed": self.passed,
            "failed": self.failed,
        }


@attrs.frozen
class Report:
    trials: tuple[TrialReport, ...]

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.trials)

    @property
    def cases(self) -> int:
        return sum(len(t.cases) for t in self.trials)

    @property
    def failed(self) -> int:
        return sum(t.failed for t in self.trials)


def only_attestations(node: p.RulePlan) -> bool:
    """Whether a rule is made of attestations only (so no record can decide it)."""
    if isinstance(node, p.AttestationPlan):
        return True
    if isinstance(node, p.LogicPlan):
        return all(only_attestations(c) for c in node.children)
    return False


def case_dir_for(protocol_file: Path, protocol_id: str) -> Path:
    """Where the cases of a protocol live: ``cases/<ID>/`` beside the protocol file."""
    return protocol_file.parent / "cases" / protocol_id


def case_files(folder: Path) -> list[Path]:
    """The case files of a folder: its own *.yaml / *.yml files (sub-folders hold shared records)."""
    if not folder.is_dir():
        return []
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix in (".yaml", ".yml"))


def _protocol_files(target: Path) -> list[Path]:
    if target.is_dir():
        return sorted(f for f in target.rglob("*.elig") if "cases" not in f.relative_to(target).parts[:-1])
    if target.exists():
        return [target]
    raise DataError("no such file or directory", file=str(target), hint="give a protocol file or a folder of them")


def run_cases(target: str | Path, cases_dir: str | Path | None = None, vocabulary=None) -> Report:
    """Run the cases of a protocol file, or of every protocol in a folder.

    Protocols are matched to case folders by protocol id (``cases/<ID>/``
    beside the protocol file, or ``<cases_dir>/<ID>/`` when given). ``vocabulary``: extra
    vocabulary files or a ``Vocabulary`` (see ``elig.load_protocol``).
    """
    from elig import api

    trials = []
    for pf in _protocol_files(Path(target)):
        checked = api.load_protocol(pf, vocabulary=vocabulary)
        folder = (Path(cases_dir) / checked.id) if cases_dir else case_dir_for(pf, checked.id)
        infos = tuple(CriterionInfo(c.id, c.section, only_attestations(c.plan)) for c in checked.criteria)
        ids = {c.id for c in infos}
        results: list[CaseResult] = []
        errors: list[str] = []
        for cf in case_files(folder):
            cases, problems = load_cases_lenient(cf)
            errors.extend(str(e) for e in problems)
            for case in cases:
                results.append(run_case(checked, case, ids))
        trials.append(TrialReport(protocol_id=checked.id, protocol_file=str(pf),
                                  case_dir=str(folder) if folder.is_dir() else None, criteria=infos,
                                  cases=tuple(results), errors=tuple(errors)))
    return Report(tuple(trials))


def run_case(checked, case: Case, ids: set[str] | None = None) -> CaseResult:
    """Evaluate one case and compare with its expectations."""
    from elig import api

    ids = ids if ids is not None else {c.id for c in checked.criteria}
    for cid, _ in case.criteria:
        if cid not in ids:
            return CaseResult(case, error=str(CaseError(
                f"no criterion {cid} in {checked.id}", file=case.file, case=case.name, field=f"expect.criteria.{cid}",
                hint="criteria: " + ", ".join(sorted(ids, key=_id_key)))))
    try:
        patient = case.patient()
        result = api.evaluate(checked, patient, case.as_of)
    except DataError as exc:
        return CaseResult(case, error=str(exc))
    mismatches: list[Mismatch] = []
    if case.overall is not None and result.verdict is not case.overall:
        deciding = [c for c in result.criteria if c.excludes] if result.verdict is Verdict.INELIGIBLE else \
            [c for c in result.criteria if c.outcome is Outcome.UNKNOWN]
        why = "; ".join(f"{c.id} {c.outcome}: {c.explanation.summary}" for c in deciding[:6])
        if result.verdict is Verdict.ELIGIBLE:
            why = "every inclusion met and no exclusion met"
        if result.to_collect and result.verdict is Verdict.UNDETERMINED:
            why += " | to collect: " + "; ".join(i.item for i in result.to_collect[:6])
        if patient.issues:
            why += " | data issues: " + "; ".join(str(i) for i in patient.issues[:3])
        mismatches.append(Mismatch("overall", str(case.overall), str(result.verdict), why))
    for cid, expected in case.criteria:
        got = result.criterion(cid)
        if got.outcome is not expected:
            mismatches.append(Mismatch(f"criteria.{cid}", str(expected), str(got.outcome),
                                       explain_briefly(got.explanation, got.rule)))
    if case.to_collect:
        items = [i.item.lower() for i in result.to_collect]
        for want in case.to_collect:
            if not any(want.lower() in item for item in items):
                mismatches.append(Mismatch("to_collect", want, "; ".join(i.item for i in result.to_collect) or "nothing",
                                           f"verdict {result.verdict}"))
    return CaseResult(case, tuple(mismatches), None, result)


def explain_briefly(e: Explanation, rule: str | None = None) -> str:
    """The explanation summary of a criterion, with the reason and the parts that decided it."""
    lines = [f"rule: {rule or e.rule}", f"why: {e.summary}"]
    if e.reason and e.reason not in e.summary:
        lines.append(f"reason: {e.reason}")
    for child in e.children:
        lines.append(f"  {child.outcome}: {child.rule} — {child.summary}")
    if e.derived is not None:
        lines.append(f"derived: {e.derived.substituted}")
    for v in e.values[:3]:
        if v.conversion:
            lines.append(f"conversion: {v.conversion}")
    if e.missing:
        lines.append("missing: " + "; ".join(e.missing))
    return "\n".join(lines)


def _id_key(cid: str):
    import re

    return [int(x) if x.isdigit() else x for x in re.split(r"(\d+)", cid)]


# ---------------------------------------------------------------- output
def format_report(report: Report) -> str:
    out: list[str] = []
    for t in report.trials:
        n = t.summary_counts()
        status = "ok" if t.ok else "FAILED"
        out.append(f"{t.protocol_id}  ({t.protocol_file})  {status}")
        out.append(f"  cases:    {n['cases']} run, {n['passed']} passed, {n['failed']} failed"
                   + (f" ({n['xfail']} expected failures)" if n['xfail'] else "")
                   + (f"  [cases from {t.case_dir}]" if t.case_dir else "  [no case folder]"))
        out.append(f"  criteria: {n['criteria']} = {n['computable']} computable + {n['attested']} attested")
        out.append(f"  computable covered: met {n['computable_met']}/{n['computable']}, "
                   f"not met {n['computable_not_met']}/{n['computable']}, "
                   f"unknown {n['computable_unknown']}/{n['computable']}; "
                   f"all three {n['computable_all_three']}/{n['computable']}")
        out.append(f"  attested asserted by a case: {n['attested_asserted']}/{n['attested']}")
        cov = t.coverage()
        gaps = [f"{c.id} (no {', '.join(str(o) for o in Outcome if o not in cov[c.id])})"
                for c in t.computable if not cov[c.id] >= set(Outcome)]
        if gaps:
            out.append("  not fully covered: " + "; ".join(gaps))
        for e in t.errors:
            out.append("  ERROR " + e.replace("\n", "\n        "))
        for r in t.cases:
            if r.status == "xfail":
                out.append(f"  xfail {r.case.file} :: {r.case.name}\n        known problem: {r.case.xfail}")
                continue
            if r.status == "xpass":
                out.append(f"  XPASS {r.case.file} :: {r.case.name}\n        marked xfail ({r.case.xfail}) "
                           f"but passes: remove the marker")
                continue
            if r.passed:
                continue
            out.append(f"  FAIL {r.case.file} :: {r.case.name}")
            if r.error:
                out.append("    error: " + r.error.replace("\n", "\n      "))
            for m in r.mismatches:
                out.append(f"    {m.field}: expected {m.expected}, got {m.actual}")
                out.append("      " + m.explanation.replace("\n", "\n      "))
        out.append("")
    total_failed = report.failed + sum(len(t.errors) for t in report.trials)
    out.append(f"{len(report.trials)} protocol{'s' if len(report.trials) != 1 else ''}, {report.cases} cases, "
               f"{report.cases - report.failed} passed, {report.failed} failed"
               + (f", {sum(len(t.errors) for t in report.trials)} unreadable case files" if total_failed > report.failed else ""))
    return "\n".join(out) + "\n"


@click.command("test")
@click.argument("target", type=click.Path())
@click.option("--cases", "cases_dir", type=click.Path(), default=None,
              help="Folder holding <PROTOCOL-ID>/ case folders (default: cases/ beside each protocol).")
@vocabulary_option
def command(target, cases_dir, vocabulary_files):
    """Run the test cases of PROTOCOL_OR_DIR and summarise them per trial."""
    from elig.diagnostics import EligError, ProtocolError, render_all

    try:
        report = run_cases(target, cases_dir, base_vocabulary(vocabulary_files))
    except ProtocolError as exc:
        click.echo(render_all(exc.diagnostics, add_sources(exc.diagnostics, exc.sources)), err=True)
        sys.exit(1)
    except EligError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    click.echo(format_report(report), nl=False)
    sys.exit(0 if report.ok else 1)
