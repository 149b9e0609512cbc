"""The fuzz suite: hostile and broken records and protocols (issue 11).

Strategies build native records, FHIR bundles and protocol texts from the project's own
corpus (the protocols' test cases, the Synthea bundles, the seed protocols) and put
garbage into the fields a criterion reads. The properties:

* **Only documented exceptions.** Reading a record raises nothing but ``DataError``;
  parsing a protocol nothing but ``ProtocolError``; evaluating and rendering (text,
  Markdown, HTML, JSON) raise nothing at all.
* **Bounded work.** Inputs are bounded by construction (sizes drawn below), and the
  outputs are bounded by the inputs: no message quotes more than a few hundred
  characters of data, whatever was put in. No assertion is timed.
* **Garbage never moves a verdict toward ELIGIBLE.** Garbage in a field only loses
  information: every criterion decided (met or not met) on the garbled record is
  decided the same way on the clean one, so a garbled record is ELIGIBLE only when
  the clean one is.
* **Removing data never does either.** Removing every result of a measurement, the
  birth date, the sex, a fact or an attestation only loses information, in the same
  sense. (Removing a condition, procedure or medication can: the record is judged
  closed-world for events, as docs/semantics.md says. So can removing one alternative
  of a rule written '(whichever is recorded)': its author chose that the recorded
  alternative decides; those criteria are exempt. So can removing the one result that
  showed a patient outside a '(if of ...)' gate to be pregnant, say: the author chose
  not to ask the question of patients outside the gate, so a criterion the reduced
  record decides by 'not asked' is exempt too.)

Two profiles: ``quick`` (the default, run by ``make test``; derandomised, so it never
flakes) and ``long`` (``make fuzz``, or ``ELIG_FUZZ=long``). docs/architecture.md
records how many inputs each runs.
"""

from __future__ import annotations

import copy
import json
import os
from functools import lru_cache
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import elig
from elig.api import parse_protocol_text
from elig.commands.casefile import case_files, load_cases
from elig.diagnostics import DataError, ProtocolError
from elig.engine.evaluator import evaluate
from elig.engine.results import Outcome, Verdict
from elig.records.loader import patient_from_data
from elig.records.patient import grade_number, read_number
from elig.report.html import render_html
from elig.report.json import render_json
from elig.report.markdown import render_markdown
from elig.report.text import render_text

from conftest import ROOT, SYNTHEA_DIR

PROFILE = os.environ.get("ELIG_FUZZ", "quick")
# Examples per property test; the profiles' totals are in docs/architecture.md.
EXAMPLES = int(os.environ.get("ELIG_FUZZ_EXAMPLES", 0)) or {"quick": 30, "long": 2500}[PROFILE]
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # no timing: work is bounded by input sizes, never by the clock
    derandomize=PROFILE == "quick",
    database=None if PROFILE == "quick" else settings.default.database,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)


# ---------------------------------------------------------------- the corpus
@lru_cache(maxsize=1)
def protocols() -> dict[str, object]:
    return {p.stem: elig.load_protocol(p) for p in sorted((ROOT / "protocols").glob("*.elig"))}


@lru_cache(maxsize=1)
def cases() -> list[tuple[str, dict, str]]:
    """(protocol id, native record, as_of) of every protocol test case."""
    out = []
    for pid in protocols():
        for f in case_files(ROOT / "protocols" / "cases" / pid):
            for case in load_cases(f):
                out.append((pid, case.record, case.as_of.isoformat()))
    return out


@lru_cache(maxsize=1)
def synthea() -> list[tuple[str, dict]]:
    return [(p.name, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(SYNTHEA_DIR.glob("*.json"))]


def rank_outcomes(result) -> dict[str, Outcome]:
    return {c.id: c.outcome for c in result.criteria}


def whichever_criteria(checked) -> set[str]:
    """Criteria holding '(whichever is recorded)': the author chose that the recorded alternative
    decides, so removing one alternative's results hands the decision to another (by design)."""
    def has(node) -> bool:
        return getattr(node, "op", None) == "whichever" or any(has(c) for c in getattr(node, "children", ()))
    return {c.id for c in checked.criteria if has(c.plan)}


def not_asked_criteria(result) -> set[str]:
    """Criteria decided because a fact was not asked of this patient ('pregnant (if of childbearing
    potential)' for a woman outside it): the author chose who is asked, as with whichever."""
    def has(e) -> bool:
        return (e.kind == "fact" and e.summary.startswith("not asked")) or any(has(c) for c in e.children)
    return {c.id for c in result.criteria if has(c.explanation)}


def assert_loses_information_only(clean, garbled, what: str, exempt: set[str] = frozenset()) -> None:
    """Every criterion decided on the garbled record is decided the same way on the clean one."""
    before, after = rank_outcomes(clean), rank_outcomes(garbled)
    for cid, outcome in after.items():
        if outcome is not Outcome.UNKNOWN and cid not in exempt:
            assert before[cid] is outcome, (
                f"{what}: {cid} is {outcome} with the garbage but {before[cid]} without it: "
                f"{garbled.criterion(cid).explanation.summary}")
    # The verdict may follow an exempt criterion's change, and only then: an exempt criterion
    # that came out the same leaves the verdict to the rule above.
    moved_by_design = {cid for cid in exempt if before.get(cid) is not after.get(cid)}
    if garbled.verdict is Verdict.ELIGIBLE and not moved_by_design:
        assert clean.verdict is Verdict.ELIGIBLE, what


def assert_renders(result) -> None:
    """Every renderer takes the result; data quoted in messages stays short."""
    for render in (render_text, render_markdown, render_html, render_json):
        render(result)
    for issue in result.data_issues:
        assert len(issue) < 2000, issue[:200]


# ---------------------------------------------------------------- garbage
SCALAR_GARBAGE = st.one_of(
    st.sampled_from(["", " ", "abc", "1,200", "1.2.3", "nan", "NaN", "inf", "-inf", "1e400", "1_000", "0x10",
                     "٣", "½", "--1", "1e", "∞", "null", "None", "true", "\x00", "\x1b[2J", "1\n2", "\u2028",
                     "\ud800", "%%", "µ", "10^9^9", "10*99999/L", "mg/dLL", "2024-02-30", "2024-13-01",
                     "2024-03-10T25:00", "2024-03-10T23:59:60", "2024-03-10T10:00+25:00",
                     "9999-12-31T23:30-01:00", "0000-01-01", "yesterday", "=1+1", "a" * 300]),
    st.text(max_size=12),
    st.sampled_from([None, True, False, float("nan"), float("inf"), -float("inf"), 10 ** 400, -(10 ** 400),
                     2 ** 63, 1e308]),
)
CONTAINER_GARBAGE = st.one_of(
    st.lists(st.one_of(st.integers(), st.text(max_size=4)), max_size=3),
    st.dictionaries(st.text(max_size=4), st.one_of(st.integers(), st.text(max_size=4)), max_size=3),
    st.just([[[[[[[[["deep"]]]]]]]]]),
)
GARBAGE = st.one_of(SCALAR_GARBAGE, CONTAINER_GARBAGE)

# Fields a criterion reads, and garbage that is not data of another kind: a different
# number is a different result, so a value's garbage is anything but a number; a date's
# anything but a date; a unit's anything but a readable unit of the right dimension.
NOT_A_NUMBER = GARBAGE.filter(lambda g: not (isinstance(g, (int, float)) and not isinstance(g, bool)
                                             and abs(g) < 1e300 and g == g))
ENTRY_FIELDS = {
    "observations": ("value", "unit", "date", "concept", "code", "status", "reference_range"),
    "conditions": ("concept", "onset", "abatement", "status", "grade", "code"),
    "procedures": ("concept", "start", "end", "date", "status", "code"),
    "medications": ("concept", "start", "end", "status", "code"),
}
TOP_FIELDS = ("birth_date", "sex", "pregnant", "lactating")
# What the reader takes as yes or no is data, not garbage (docs: 'yes', 'true', 'n', '0' ...).
YES_NO = {"yes", "true", "y", "1", "no", "false", "n", "0"}


def garbage_for(field: str):
    if field in ("pregnant", "lactating"):
        return GARBAGE.filter(lambda g: not isinstance(g, bool) and
                              not (isinstance(g, (str, int)) and str(g).strip().lower() in YES_NO))
    if field == "value":  # text the reader takes as a number ("0", "1,25") is a number: data
        return NOT_A_NUMBER.filter(lambda g: read_number(g)[0] is None)
    if field == "grade":  # likewise a grade it reads ("0", "II", "grade 2")
        return NOT_A_NUMBER.filter(lambda g: grade_number(g) is None)
    if field == "reference_range":
        return st.one_of(GARBAGE, st.fixed_dictionaries({"high": NOT_A_NUMBER}),
                         st.fixed_dictionaries({"high": st.sampled_from([1e308, 2 ** 63, -40, 0, 1e-9, 15000])}),
                         st.fixed_dictionaries({"high": st.just(40), "unit": GARBAGE}))
    if field in ("date", "onset", "abatement", "start", "end", "birth_date"):
        # A bare year (2024) is a partial date, and a valid one: not garbage.
        return GARBAGE.filter(lambda g: not (isinstance(g, int) and not isinstance(g, bool)) and
                              not (isinstance(g, str) and g.strip().isdigit()))
    if field == "concept":
        return CONTAINER_GARBAGE  # a text that names no concept is another measurement, not garbage
    if field == "code":
        return CONTAINER_GARBAGE
    if field == "unit":
        return st.one_of(CONTAINER_GARBAGE, st.sampled_from(
            ["%%", "µ", "10^9^9", "10*99999/L", "mg/dLL", "abc", "1,2", "m^999", "%.%", "\x1b", "U%", "%", "‰", "U"]))
    return GARBAGE


@st.composite
def garbled_case(draw):
    """(protocol id, clean record, garbled record, as_of, what was garbled)."""
    pid, record, as_of = draw(st.sampled_from(cases()))
    garbled = copy.deepcopy(record)
    lists = [k for k in ENTRY_FIELDS if garbled.get(k)]
    if lists and draw(st.integers(0, 4)):
        key = draw(st.sampled_from(lists))
        i = draw(st.integers(0, len(garbled[key]) - 1))
        field = draw(st.sampled_from(ENTRY_FIELDS[key]))
        value = draw(garbage_for(field))
        if field == "concept":
            garbled[key][i].pop("name", None)
        garbled[key][i][field] = value
        what = f"{key}[{i}].{field} = {value!r:.80}"
    elif garbled.get("attestations") and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(garbled["attestations"])))
        value = draw(GARBAGE.filter(lambda g: not isinstance(g, bool) and
                                    not (isinstance(g, (str, int)) and str(g).strip().lower() in YES_NO)))
        garbled["attestations"][key] = value
        what = f"attestations[{key!r}] = {value!r:.80}"
    else:
        field = draw(st.sampled_from(TOP_FIELDS))
        value = draw(garbage_for(field))
        garbled[field] = value
        what = f"{field} = {value!r:.80}"
    return pid, record, garbled, as_of, what


# ---------------------------------------------------------------- native records
@FUZZ
@given(garbled_case())
def test_garbage_in_a_native_record_never_moves_a_verdict_toward_eligible(case):
    pid, record, garbled, as_of, what = case
    checked = protocols()[pid]
    clean = evaluate(checked, patient_from_data(copy.deepcopy(record), "clean.yaml"), as_of)
    try:
        patient = patient_from_data(garbled, "garbled.yaml")
    except DataError:
        return  # refusing the whole record is allowed: it gives no verdict at all
    result = evaluate(checked, patient, as_of)
    assert_loses_information_only(clean, result, what)
    assert_renders(result)


@st.composite
def reduced_case(draw):
    """(protocol id, record, record with some data removed, as_of, what was removed)."""
    pid, record, as_of = draw(st.sampled_from(cases()))
    reduced = copy.deepcopy(record)
    concepts = sorted({str(o.get("concept")) for o in reduced.get("observations") or []})
    choice = draw(st.sampled_from(["observation"] * 3 + ["attestation", "top"]))
    if choice == "observation" and concepts:
        concept = draw(st.sampled_from(concepts))
        reduced["observations"] = [o for o in reduced["observations"] if str(o.get("concept")) != concept]
        what = f"every {concept} result"
    elif choice == "attestation" and reduced.get("attestations"):
        key = draw(st.sampled_from(sorted(reduced["attestations"])))
        del reduced["attestations"][key]
        what = f"the attestation {key!r}"
    else:
        field = draw(st.sampled_from(TOP_FIELDS))
        reduced.pop(field, None)
        what = f"the field {field}"
    return pid, record, reduced, as_of, what


@FUZZ
@given(reduced_case())
def test_removing_data_never_moves_a_verdict_toward_eligible(case):
    pid, record, reduced, as_of, what = case
    checked = protocols()[pid]
    clean = evaluate(checked, patient_from_data(copy.deepcopy(record), "clean.yaml"), as_of)
    result = evaluate(checked, patient_from_data(reduced, "reduced.yaml"), as_of)
    exempt = whichever_criteria(checked) | not_asked_criteria(result)
    assert_loses_information_only(clean, result, f"removing {what}", exempt=exempt)


# A record that is garbage through and through: any JSON-like value, anywhere.
JSONISH = st.recursive(
    st.one_of(SCALAR_GARBAGE, st.integers(), st.floats()),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(
        st.sampled_from(["id", "name", "sex", "birth_date", "observations", "conditions", "procedures",
                         "medications", "attestations", "concept", "value", "unit", "date", "code", "codes",
                         "status", "grade", "onset", "start", "end", "reference_range", "high", "low", "result",
                         "resourceType", "entry", "resource"]) | st.text(max_size=6), inner, max_size=5)),
    max_leaves=25,
)


@FUZZ
@given(JSONISH)
def test_any_native_record_raises_only_data_error_and_evaluates(data):
    checked = protocols()["NCT06021067"]
    try:
        patient = patient_from_data(data, "fuzz.json")
    except DataError as exc:
        assert len(str(exc)) < 2000
        return
    assert_renders(evaluate(checked, patient, "2024-03-15"))


# ---------------------------------------------------------------- FHIR bundles
FHIR_FIELDS = {
    "Observation": ("valueQuantity.value", "valueQuantity.code", "valueQuantity.unit", "effectiveDateTime",
                    "code.coding.0.code", "code.coding.0.system", "status", "referenceRange.0.high.value",
                    "referenceRange.0.high.code", "valueCodeableConcept", "valueString", "component"),
    "Condition": ("code.coding.0.code", "onsetDateTime", "abatementDateTime", "clinicalStatus",
                  "clinicalStatus.coding.0.code", "verificationStatus", "stage", "severity"),
    "Procedure": ("code.coding.0.code", "performedDateTime", "performedPeriod", "status"),
    "MedicationRequest": ("medicationCodeableConcept.coding.0.code", "authoredOn", "status"),
    "Patient": ("birthDate", "gender", "name", "id"),
}


def _set_path(resource: dict, path: str, value) -> None:
    parts = path.split(".")
    node = resource
    for part in parts[:-1]:
        nxt = node[int(part)] if isinstance(node, list) else node.get(part)
        if not isinstance(nxt, (dict, list)) or (isinstance(nxt, list) and not nxt):
            return
        node = nxt
    last = parts[-1]
    if isinstance(node, list):
        if int(last) < len(node):
            node[int(last)] = value
    else:
        node[last] = value


@st.composite
def garbled_bundle(draw):
    name, bundle = draw(st.sampled_from(synthea()))
    garbled = copy.deepcopy(bundle)
    entries = [e for e in garbled["entry"] if e.get("resource", {}).get("resourceType") in FHIR_FIELDS]
    entry = draw(st.sampled_from(entries))
    resource = entry["resource"]
    path = draw(st.sampled_from(FHIR_FIELDS[resource["resourceType"]]))
    value = draw(GARBAGE if path.endswith(("code", "system", "unit")) or "Date" in path or "authoredOn" in path
                 else st.one_of(GARBAGE, NOT_A_NUMBER))
    if path == "valueQuantity.value":
        value = draw(NOT_A_NUMBER)
    _set_path(resource, path, value)
    return name, bundle, garbled, f"{resource['resourceType']}/{resource.get('id')}.{path} = {value!r:.80}"


@pytest.mark.skipif(not SYNTHEA_DIR.is_dir(), reason="the shared Synthea bundles are not available")
@FUZZ
@given(garbled_bundle(), st.sampled_from(["NCT06021067", "NCT06416709", "NCT02444455"]),
       st.sampled_from(["2018-06-01", "2020-05-20", "2023-01-01"]))
def test_garbage_in_a_fhir_bundle_never_moves_a_verdict_toward_eligible(case, pid, as_of):
    name, bundle, garbled, what = case
    checked = protocols()[pid]
    clean = evaluate(checked, patient_from_data(bundle, name), as_of)
    try:
        patient = patient_from_data(garbled, name)
    except DataError:
        return
    result = evaluate(checked, patient, as_of)
    assert_loses_information_only(clean, result, what)
    assert_renders(result)


# ---------------------------------------------------------------- protocol text
@lru_cache(maxsize=1)
def seed_texts() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted((ROOT / "protocols").glob("*.elig"))]


PROTOCOL_PIECES = st.sampled_from([
    "not ", "(", ")", " and ", " or ", " unless ", "any of ", "all of ", "none of ", ",", " to ", "-", "≥", "≤",
    "<", ">", "=", " x ULN", " within ", " 7 days", " years", " yeers", " mg/dL", " mmHgg", " µmol/L", "%", "%%",
    " 1,000", " 1.5", " 10^9/L", " 10^9^9", "\n", "\n    ", "\n  I9 \"s\"\n    ", "\"", "`", "#", "\t",
    "\u2028", "\u2029", "\x85", "\v", "\f", "\r", "\x00", "\x1b[2J", "\ud800", "ECOG", "ANC", "age", "pregnant",
    "history of", "active", "grade", "III", " attested \"x\"", " (Cockcroft-Gault)", "define ", ":",
])


@st.composite
def mutated_protocol(draw):
    text = draw(st.sampled_from(seed_texts()))
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "duplicate"]))
        if kind == "insert":
            piece = draw(st.one_of(PROTOCOL_PIECES, st.text(max_size=8)))
            text = text[:pos] + piece * draw(st.integers(1, 3)) + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 40)):]
        else:
            line_start = text.rfind("\n", 0, pos) + 1
            line_end = text.find("\n", pos)
            line_end = len(text) if line_end < 0 else line_end
            text = text[:line_end] + "\n" + text[line_start:line_end] + text[line_end:]
    return text


@FUZZ
@given(st.one_of(mutated_protocol(), st.text(max_size=200), st.builds(
    lambda rule: f'protocol T\ninclusion\n  I1 "s"\n    {rule}\n',
    st.lists(PROTOCOL_PIECES, max_size=30).map("".join))))
def test_protocol_text_raises_only_protocol_error_and_what_parses_evaluates(text):
    try:
        checked = parse_protocol_text(text, file="fuzz.elig")
    except ProtocolError as exc:
        rendered = str(exc)
        assert rendered
        assert not any(ch in rendered for ch in "\x1b\x00\u2028\ud800")
        assert len(exc.diagnostics) <= text.count("\n") + 2
        return
    patient = elig.load_patient(ROOT / "examples" / "patients" / "demo_patient.yaml")
    assert_renders(evaluate(checked, patient, "2024-03-15"))
