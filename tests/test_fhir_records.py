"""Records as EHRs and oncology registries send them (issue 10), end to end.

Each FHIR bundle in tests/data/records/ uses the real code systems (LOINC, SNOMED CT,
ICD-10-CM, mCODE profiles) and is evaluated against tests/data/records/records.elig at
2024-03-15; every test asserts the outcome a reader would see and the source the
explanation cites for it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from elig import api
from elig.commands.cli import main
from elig.engine.results import Outcome, Verdict
from elig.records.loader import load_patient, patient_from_data
from fhir_r4 import r4_problems

DATA = Path(__file__).parent / "data" / "records"
AS_OF = "2024-03-15"


@pytest.fixture(scope="module")
def protocol():
    return api.load_protocol(DATA / "records.elig")


def run(protocol, name, **kwargs):
    return api.evaluate(protocol, DATA / name, AS_OF, **kwargs)


def crit(result, cid):
    return next(c for c in result.criteria if c.id == cid)


def walk(e):
    yield e
    for c in e.children:
        yield from walk(c)


def sources(criterion) -> list[str]:
    return [v.source for e in walk(criterion.explanation) for v in e.values]


def texts(criterion) -> str:
    return " | ".join(e.summary for e in walk(criterion.explanation)) + " | " + " | ".join(
        v.text or "" for e in walk(criterion.explanation) for v in e.values)


# ---------------------------------------------------------------- pregnancy, lactation, childbearing potential
def test_pregnancy_status_observation_excludes(protocol):
    e1 = crit(run(protocol, "pregnancy_status.json"), "E1")
    assert e1.outcome is Outcome.MET
    assert any("Observation/preg-status-1" in s for s in sources(e1))
    assert "pregnant: yes (pregnancy status positive on 2024-03-13" in texts(e1)


def test_pregnancy_status_not_pregnant_and_unknown_answers(protocol):
    data = json.loads((DATA / "pregnancy_status.json").read_text())
    for answer, outcome in (("LA26683-5", Outcome.NOT_MET), ("LA4489-6", Outcome.UNKNOWN)):
        changed = copy.deepcopy(data)
        changed["entry"][1]["resource"]["valueCodeableConcept"]["coding"][0]["code"] = answer
        pregnant = crit(api.evaluate(protocol, patient_from_data(changed, "x.json"), AS_OF), "E1") \
            .explanation.children[0]
        assert pregnant.outcome is outcome, answer


def test_negative_hcg_and_not_breastfeeding_clear_the_exclusion(protocol):
    e1 = crit(run(protocol, "hcg_negative.json"), "E1")
    assert e1.outcome is Outcome.NOT_MET
    cited = sources(e1)
    assert any("Observation/hcg-urine-1" in s for s in cited)
    assert any("Observation/hcg-serum-1" in s for s in cited)
    assert any("Observation/breastfeeding-1" in s for s in cited)


def test_quantitative_hcg_thresholds(protocol):
    data = json.loads((DATA / "hcg_negative.json").read_text())
    data["entry"] = [e for e in data["entry"] if e["resource"]["id"] != "hcg-urine-1"]
    for value, outcome in ((1200, Outcome.MET), (12, Outcome.UNKNOWN), (2, Outcome.NOT_MET)):
        changed = copy.deepcopy(data)
        changed["entry"][1]["resource"]["valueQuantity"]["value"] = value
        pregnant = crit(api.evaluate(protocol, patient_from_data(changed, "x.json"), AS_OF), "E1") \
            .explanation.children[0]
        assert pregnant.outcome is outcome, value
    assert "equivocal" in texts(crit(api.evaluate(protocol, patient_from_data(
        _with_value(data, 12), "x.json"), AS_OF), "E1"))


def test_quantitative_urine_hcg_above_and_below_the_threshold(protocol):
    # LOINC 25372-4 Choriogonadotropin [Units/volume] in Urine, in mIU/mL and in IU/L
    above = crit(run(protocol, "hcg_urine_quantitative_positive.json"), "E1")
    assert above.outcome is Outcome.MET
    assert any("Observation/hcg-urine-quant-pos" in s for s in sources(above))
    assert "pregnant: yes (urine hCG level 180 IU/L: positive (≥ 25 IU/L) on 2024-03-13" in texts(above)
    below = crit(run(protocol, "hcg_urine_quantitative_negative.json"), "E1")
    assert below.outcome is Outcome.NOT_MET
    assert any("Observation/hcg-urine-quant-neg" in s for s in sources(below))
    assert "pregnant: no (urine hCG level 2 IU/L: negative (< 5 IU/L) on 2024-03-14" in texts(below)


def test_quantitative_urine_hcg_equivocal_or_in_moles_is_unknown(protocol):
    data = json.loads((DATA / "hcg_urine_quantitative_negative.json").read_text())
    for code, value, unit, why in (("25372-4", 12, "m[IU]/mL", "12 IU/L: equivocal"),
                                   ("2107-1", 40, "pmol/L", "unit 'pmol/L' cannot be converted to IU/L")):
        changed = copy.deepcopy(data)
        obs = changed["entry"][1]["resource"]
        obs["code"]["coding"][0]["code"] = code
        obs["valueQuantity"].update(value=value, unit=unit, code=unit)
        pregnant = crit(api.evaluate(protocol, patient_from_data(changed, "x.json"), AS_OF), "E1") \
            .explanation.children[0]
        assert pregnant.outcome is Outcome.UNKNOWN, code
        assert why in pregnant.summary and "Observation/hcg-urine-quant-neg" in pregnant.summary


def test_hcg_cut_offs_are_declared_and_cited_in_the_vocabulary():
    from elig.terminology.vocabulary import default_vocabulary

    for name in ("serum hCG", "urine hCG level"):
        concept = default_vocabulary().lookup(name)
        assert (concept.positive_at, concept.negative_below) == (25, 5)
        assert concept.cutoffs_source and "mIU/mL" in concept.cutoffs_source


def _with_value(data, value):
    changed = copy.deepcopy(data)
    changed["entry"][1]["resource"]["valueQuantity"]["value"] = value
    return changed


def test_pregnancy_diagnosis_counts_while_active_and_recent(protocol):
    e1 = crit(run(protocol, "pregnancy_condition.json"), "E1")
    assert e1.outcome is Outcome.MET
    assert any("Condition/pregnancy-1" in s for s in sources(e1))
    assert "pregnant: yes (pregnancy diagnosis status active since 2024-01-22 (ICD-10-CM Z33.1)" in texts(e1)
    data = json.loads((DATA / "pregnancy_condition.json").read_text())

    def pregnant(change):
        changed = copy.deepcopy(data)
        change(changed["entry"][1]["resource"])
        return crit(api.evaluate(protocol, patient_from_data(changed, "x.json"), AS_OF), "E1").explanation.children[0]

    snomed = pregnant(lambda c: c.update(code={"coding": [{"system": "http://snomed.info/sct", "code": "77386006",
                                                           "display": "Pregnancy (finding)"}]}))
    assert snomed.outcome is Outcome.MET
    stale = pregnant(lambda c: c.update(onsetDateTime="2023-03-01"))  # more than 42 weeks ago
    assert stale.outcome is Outcome.UNKNOWN and "more than 294 days ago: it may have ended" in stale.summary
    resolved = pregnant(lambda c: c.update(clinicalStatus={"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}]}))
    assert resolved.outcome is Outcome.UNKNOWN and "pregnant not recorded" in resolved.summary
    delivery = pregnant(lambda c: c.update(code={"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm",
                                                             "code": "O80", "display": "Encounter for full-term "
                                                             "uncomplicated delivery"}]}))
    assert delivery.outcome is Outcome.UNKNOWN  # a delivery ends a pregnancy: not evidence of one


def test_breastfeeding_status_within_90_days_is_lactating(protocol):
    e1 = crit(run(protocol, "lactating.json"), "E1")
    assert e1.outcome is Outcome.MET
    pregnant, lactating = e1.explanation.children
    assert pregnant.outcome is Outcome.NOT_MET and lactating.outcome is Outcome.MET
    assert any("Observation/breastfeeding-3" in v.source for v in lactating.values)
    assert any("Observation/preg-status-2" in v.source for v in pregnant.values)
    data = json.loads((DATA / "lactating.json").read_text())
    data["entry"][1]["resource"]["effectiveDateTime"] = "2023-11-20"  # 116 days before: outside the window
    lactating = crit(api.evaluate(protocol, patient_from_data(data, "x.json"), AS_OF), "E1").explanation.children[1]
    assert lactating.outcome is Outcome.UNKNOWN and "lactating not recorded" in lactating.summary


def test_postmenopausal_woman_is_not_asked_and_the_reading_is_shown(protocol):
    e1 = crit(run(protocol, "postmenopausal.json"), "E1")
    assert e1.outcome is Outcome.NOT_MET
    pregnant = e1.explanation.children[0]
    assert pregnant.summary.startswith("not asked: the patient is not of childbearing potential")
    assert "vocabulary default reading" in pregnant.summary
    reading = pregnant.children[0]
    assert reading.kind == "definition" and reading.outcome is Outcome.NOT_MET
    assert any("Condition/menopause-1" in v.source for e in walk(reading) for v in e.values)


def test_menopause_coded_in_snomed_ct_counts_too(protocol):
    data = json.loads((DATA / "postmenopausal.json").read_text())
    data["entry"][1]["resource"]["code"] = {"coding": [{"system": "http://snomed.info/sct", "code": "76498008",
                                                        "display": "Postmenopausal state (finding)"}]}
    assert crit(api.evaluate(protocol, patient_from_data(data, "x.json"), AS_OF), "E1").outcome is Outcome.NOT_MET


def test_a_woman_of_childbearing_age_without_data_stays_undetermined(protocol):
    data = json.loads((DATA / "postmenopausal.json").read_text())
    data["entry"] = data["entry"][:1]  # no menopause record: 52 is within 12 to 55
    e1 = crit(api.evaluate(protocol, patient_from_data(data, "x.json"), AS_OF), "E1")
    assert e1.outcome is Outcome.UNKNOWN
    assert any("pregnant (yes/no)" in m for e in walk(e1.explanation) for m in e.missing)


def test_a_protocol_can_define_childbearing_potential():
    text = (DATA / "records.elig").read_text().replace(
        '  title "Records as EHRs send them"\n',
        '  title "Records as EHRs send them"\n  define childbearing potential: female and age 12 to 50 years\n')
    checked = api.parse_protocol_text(text, file="own.elig")
    data = json.loads((DATA / "postmenopausal.json").read_text())
    data["entry"] = data["entry"][:1]  # 52 years old, no menopause record
    e1 = crit(api.evaluate(checked, patient_from_data(data, "x.json"), AS_OF), "E1")
    assert e1.outcome is Outcome.NOT_MET
    assert "by the protocol reading 'female and age 12 to 50 years'" in texts(e1)


# ---------------------------------------------------------------- body sites: mCODE radiotherapy
def test_mcode_radiotherapy_to_the_thorax_is_chest_radiotherapy(protocol):
    i1 = crit(run(protocol, "mcode_radiotherapy_thorax.json"), "I1")
    assert i1.outcome is Outcome.MET
    assert any("Procedure/rt-course-thorax" in s for s in sources(i1))
    assert "site: Thoracic structure, left" in texts(i1)
    assert "Left lung PTV, left" in texts(i1)  # the Radiotherapy Volume (BodyStructure) and its laterality


def test_mcode_radiotherapy_to_the_pelvis_is_not(protocol):
    i1 = crit(run(protocol, "mcode_radiotherapy_pelvis.json"), "I1")
    assert i1.outcome is Outcome.NOT_MET
    assert "site: Pelvic structure, not one of Thoracic structure" in texts(i1)
    assert any("Procedure/rt-course-pelvis" in s for s in sources(i1))


def test_radiotherapy_without_a_body_site_is_unknown(protocol):
    data = json.loads((DATA / "mcode_radiotherapy_pelvis.json").read_text())
    del data["entry"][1]["resource"]["bodySite"]
    i1 = crit(api.evaluate(protocol, patient_from_data(data, "x.json"), AS_OF), "I1")
    assert i1.outcome is Outcome.UNKNOWN
    assert "recorded without a body site" in texts(i1)


def test_procedure_category_alone_counts_with_a_chest_site(protocol):
    data = json.loads((DATA / "mcode_radiotherapy_thorax.json").read_text())
    data["entry"][1]["resource"]["code"] = {"text": "RT course"}  # only the category says radiotherapy
    i1 = crit(api.evaluate(protocol, patient_from_data(data, "x.json"), AS_OF), "I1")
    assert i1.outcome is Outcome.MET


# ---------------------------------------------------------------- attestations
def test_research_consent_is_informed_consent_with_who_and_when(protocol):
    i2 = crit(run(protocol, "consent.json"), "I2")
    assert i2.outcome is Outcome.MET
    assert any("Consent/consent-research-1" in s for s in sources(i2))
    assert "by Grace Mensah on 2024-03-14" in i2.explanation.summary


def test_rejected_consent_and_consent_to_another_study(protocol):
    data = json.loads((DATA / "consent.json").read_text())
    rejected = copy.deepcopy(data)
    rejected["entry"][1]["resource"]["status"] = "rejected"
    assert crit(api.evaluate(protocol, patient_from_data(rejected, "x.json"), AS_OF), "I2").outcome \
        is Outcome.NOT_MET
    other = copy.deepcopy(data)
    other["entry"][1]["resource"]["policy"] = [{"uri": "urn:elig:study:NCT00000000"}]
    i2 = crit(api.evaluate(protocol, patient_from_data(other, "x.json"), AS_OF), "I2")
    assert i2.outcome is Outcome.UNKNOWN
    assert "not counted: given for another study" in texts(i2)


def test_generated_questionnaire_is_valid_fhir_and_stable(protocol):
    from elig.report.questionnaire import questionnaire_json

    text = questionnaire_json(protocol)
    assert text == (DATA / "questionnaire.json").read_text(encoding="utf-8")
    q = json.loads(text)
    assert [i["linkId"] for i in q["item"]] == ["informed consent", "life expectancy of at least 6 months"]
    assert q["item"][0]["text"] == "Signed informed consent" and q["item"][0]["type"] == "boolean"
    assert r4_problems(q) == []


def test_questionnaire_response_answers_the_attestations(protocol):
    result = run(protocol, "eligible.json")
    i3 = crit(result, "I3")
    assert i3.outcome is Outcome.MET
    assert any("QuestionnaireResponse/qr-eligible item 'life expectancy of at least 6 months'" in s
               for s in sources(i3))
    qr = next(e["resource"] for e in json.loads((DATA / "eligible.json").read_text())["entry"]
              if e["resource"]["resourceType"] == "QuestionnaireResponse")
    assert r4_problems(qr) == []


def test_answers_to_another_protocols_questionnaire_are_not_counted(protocol):
    data = json.loads((DATA / "eligible.json").read_text())
    qr = next(e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == "QuestionnaireResponse")
    qr["questionnaire"] = "urn:elig:questionnaire:NCT06416709"
    i2 = crit(api.evaluate(protocol, patient_from_data(data, "x.json"), AS_OF), "I2")
    assert i2.outcome is Outcome.UNKNOWN and "not counted: given for another study" in texts(i2)


def test_every_test_bundle_is_valid_fhir_r4():
    checked = 0
    for path in sorted(DATA.glob("*.json")):
        assert r4_problems(json.loads(path.read_text())) == [], path.name
        checked += 1
    assert checked >= 13


def test_the_questionnaire_of_every_protocol_is_valid_fhir_r4():
    from elig.report.questionnaire import questionnaire

    root = Path(__file__).parent.parent
    paths = sorted((root / "protocols").glob("*.elig")) + [DATA / "records.elig"]
    asked = 0
    for path in paths:
        q = questionnaire(api.load_protocol(path))
        assert r4_problems(q) == [], path.name
        asked += len(q["item"])
    assert asked >= 5  # the seed protocols ask several attestations: the check is not vacuous


def test_the_r4_check_fails_on_invalid_resources(protocol):
    from elig.report.questionnaire import questionnaire

    q = questionnaire(protocol)
    bad = copy.deepcopy(q)
    bad["item"][0]["type"] = "yes-no"  # not a code of the required item-type binding
    bad["subjectType"] = "Patient"  # 0..*: an array
    problems = r4_problems(bad)
    assert any(p.startswith("item/0/type: 'yes-no' is not one of") for p in problems), problems
    assert any(p.startswith("subjectType: 'Patient' is not of type 'array'") for p in problems), problems
    # an R4B/R5-only element, and an unknown resource type, are refused too
    assert any("'copyrightLabel' was unexpected" in p for p in r4_problems({**q, "copyrightLabel": "x"}))
    assert r4_problems({"resourceType": "SubscriptionStatus"}) == [
        "(root): 'SubscriptionStatus' is not a FHIR R4 resource type"]
    # FHIR's JSON rules that the schema leaves out: no empty arrays or objects, no nulls
    problems = r4_problems({**q, "subjectType": [], "meta": {}, "title": None})
    assert {"subjectType: an empty array is not a FHIR value (leave the element out)",
            "meta: an empty object is not a FHIR value (leave the element out)",
            "title: null is not a FHIR value (leave the element out)"} <= set(problems), problems
    # inside a Bundle, the message names the entry and what is wrong in it
    bundle = json.loads((DATA / "consent.json").read_text())
    bundle["entry"][1]["resource"]["status"] = "signed"
    del bundle["entry"][1]["resource"]["scope"]  # Consent.scope is 1..1
    assert r4_problems(bundle) == ["entry/1/resource: 'scope' is a required property",
                                   "entry/1/resource/status: 'signed' is not one of "
                                   "['draft', 'proposed', 'active', 'rejected', 'inactive', 'entered-in-error']"]


def test_site_code_system_through_a_mapping_file(protocol):
    result = run(protocol, "site_codes.json", site_codes=DATA / "site_codes.yaml")
    assert crit(result, "I3").outcome is Outcome.MET
    assert any("Observation/site-lifeexp-1 (site code LIFE-EXP-6M)" in s for s in sources(crit(result, "I3")))
    assert crit(result, "I2").outcome is Outcome.MET
    without = run(protocol, "site_codes.json")
    assert crit(without, "I3").outcome is Outcome.UNKNOWN


def test_attestation_form_merged_with_a_fhir_record(protocol, tmp_path):
    form = tmp_path / "form.yaml"
    form.write_text("life expectancy of at least 6 months: {value: yes, by: Dr Lee, date: 2024-03-14}\n")
    i3 = crit(run(protocol, "consent.json", attestations=form), "I3")
    assert i3.outcome is Outcome.MET
    assert any("form answer 'life expectancy of at least 6 months'" in s for s in sources(i3))


def test_conflicting_answers_are_unknown_with_both_sources(protocol, tmp_path):
    form = tmp_path / "form.json"
    form.write_text(json.dumps({"informed consent": False}))
    i2 = crit(run(protocol, "consent.json", attestations=form), "I2")
    assert i2.outcome is Outcome.UNKNOWN
    assert "conflicting answers" in i2.explanation.summary
    cited = sources(i2)
    assert any("Consent/consent-research-1" in s for s in cited) and any("form answer" in s for s in cited)


def test_explain_and_screen_take_attestations_on_the_command_line(tmp_path):
    form = tmp_path / "form.yaml"
    form.write_text("patients:\n  consented-patient:\n    life expectancy of at least 6 months: yes\n")
    runner = CliRunner()
    out = runner.invoke(main, ["explain", str(DATA / "records.elig"), str(DATA / "consent.json"), "--as-of", AS_OF,
                               "--attestations", str(form), "--format", "json"])
    assert out.exit_code == 0, out.output
    i3 = next(c for c in json.loads(out.output)["criteria"] if c["id"] == "I3")
    assert i3["outcome"] == "met"
    csv_path = tmp_path / "rows.csv"
    out = runner.invoke(main, ["screen", str(DATA / "records.elig"), str(DATA / "consent.json"),
                               str(DATA / "site_codes.json"), "--as-of", AS_OF, "--attestations", str(form),
                               "--site-codes", str(DATA / "site_codes.yaml"), "--csv", str(csv_path), "-q"])
    assert out.exit_code == 0, out.output
    rows = csv_path.read_text().splitlines()
    header = rows[0].split(",")
    by_id = {r.split(",")[header.index("patient_id")]: r.split(",") for r in rows[1:]}
    assert by_id["consented-patient"][header.index("I3")] == "met"
    assert by_id["site-coded-patient"][header.index("I3")] == "met"
    bad = tmp_path / "bad.yaml"
    bad.write_text("- not a form\n")
    out = runner.invoke(main, ["explain", str(DATA / "records.elig"), str(DATA / "consent.json"),
                               "--attestations", str(bad)])
    assert out.exit_code == 1 and "attestation form must be a mapping" in out.output
    assert "Traceback" not in out.output


def test_a_misspelt_question_in_a_form_is_a_data_issue_with_the_nearest_question(protocol, tmp_path):
    form = tmp_path / "form.yaml"
    form.write_text("informed consnt: no\nlife expectancy of at least 6 months: yes\n")
    result = run(protocol, "consent.json", attestations=form)
    assert crit(result, "I3").outcome is Outcome.MET  # the well-spelt answer is used
    assert crit(result, "I2").outcome is Outcome.MET  # the Consent decides; the misspelt 'no' is not used...
    issue = next(i for i in result.data_issues if "informed consnt" in i)  # ...and the report says so
    assert "not a question of RECORDS-DEMO" in issue and "did you mean 'informed consent'?" in issue
    assert not any("life expectancy" in i for i in result.data_issues)
    out = CliRunner().invoke(main, ["explain", str(DATA / "records.elig"), str(DATA / "consent.json"),
                                    "--as-of", AS_OF, "--attestations", str(form), "--format", "json"])
    assert out.exit_code == 0, out.output
    assert any("did you mean 'informed consent'?" in json.dumps(i) for i in json.loads(out.output)["data_issues"])


def test_a_protocol_without_attestations_gets_a_valid_questionnaire_without_items(tmp_path):
    plain = tmp_path / "plain.elig"
    plain.write_text('protocol PLAIN\ninclusion\n  I1 "Adults"\n    age ≥ 18 years\n', encoding="utf-8")
    out = CliRunner().invoke(main, ["questionnaire", str(plain)])
    assert out.exit_code == 0, out.output
    assert "PLAIN asks no attestation, so the Questionnaire has no items" in out.output
    q = json.loads(out.stdout)
    assert "item" not in q and r4_problems(q) == []


def test_questionnaire_command_writes_the_file(tmp_path):
    target = tmp_path / "q.json"
    out = CliRunner().invoke(main, ["questionnaire", str(DATA / "records.elig"), "-o", str(target)])
    assert out.exit_code == 0 and json.loads(target.read_text())["resourceType"] == "Questionnaire"


# ---------------------------------------------------------------- alternative measurements
def test_pta_absent_inr_present_decides(protocol):
    e2 = crit(run(protocol, "pta_absent_inr_present.json"), "E2")
    assert e2.outcome is Outcome.NOT_MET
    assert e2.explanation.summary.startswith("decided by INR ≥ 1.5")
    assert any("Observation/inr-1" in s for s in sources(e2))


def test_alternatives_unknown_only_when_none_is_recorded(protocol):
    data = json.loads((DATA / "pta_absent_inr_present.json").read_text())
    high = copy.deepcopy(data)
    high["entry"][1]["resource"]["valueQuantity"]["value"] = 1.7
    assert crit(api.evaluate(protocol, patient_from_data(high, "x.json"), AS_OF), "E2").outcome is Outcome.MET
    data["entry"] = data["entry"][:1]
    e2 = crit(api.evaluate(protocol, patient_from_data(data, "x.json"), AS_OF), "E2")
    assert e2.outcome is Outcome.UNKNOWN and "none of the alternatives is recorded" in e2.explanation.summary


def test_an_unreadable_alternative_is_not_skipped(protocol):
    data = json.loads((DATA / "pta_absent_inr_present.json").read_text())
    data["entry"].append({"resource": {
        "resourceType": "Observation", "id": "pta-1", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "5894-1"}]},
        "effectiveDateTime": "2024-03-14", "valueQuantity": {"value": 35, "unit": "s", "code": "s",
                                                             "system": "http://unitsofmeasure.org"}}})
    e2 = crit(api.evaluate(protocol, patient_from_data(data, "x.json"), AS_OF), "E2")
    assert e2.outcome is Outcome.UNKNOWN  # a PTA in seconds cannot be read, and might be ≤ 40 %


# ---------------------------------------------------------------- value sets
def test_influenza_pneumonia_j10_00_is_viral_pneumonia(protocol):
    i4 = crit(run(protocol, "influenza_pneumonia.json"), "I4")
    assert i4.outcome is Outcome.MET
    assert any("Condition/flu-pneumonia-1" in s for s in sources(i4))
    assert "J10.00" in texts(i4)


def test_a_patient_who_arrives_as_fhir_can_be_eligible(protocol):
    result = run(protocol, "eligible.json")
    assert result.verdict is Verdict.ELIGIBLE, [(c.id, str(c.outcome)) for c in result.criteria]


def test_native_records_carry_body_sites_too():
    from elig.records.patient import _NativeReader

    p = _NativeReader("x.yaml").read({"id": "n", "procedures": [{"code": "SNOMED:1217123003", "date": "2023-10-02",
                                                                  "body_site": "SNOMED:51185008", "laterality": "left"}]})
    assert str(p.procedures[0].body_sites[0]) == "SNOMED CT 51185008, left"
    assert not p.issues
    assert load_patient(DATA / "eligible.json").attestations[0].by == "Dr Lee (investigator)"


def test_the_library_takes_answers_as_a_mapping(protocol):
    result = api.evaluate(protocol, DATA / "mcode_radiotherapy_thorax.json", AS_OF,
                          attestations={"informed consent": True, "life expectancy of at least 6 months": "no"})
    assert crit(result, "I2").outcome is Outcome.MET and crit(result, "I3").outcome is Outcome.NOT_MET
    assert any("form answer 'informed consent'" in s for s in sources(crit(result, "I2")))


def test_a_bad_site_mapping_names_its_place(tmp_path):
    bad = tmp_path / "site.yaml"
    bad.write_text("system: http://x\ncodes:\n  A1: [not, a, name]\n")
    out = CliRunner().invoke(main, ["explain", str(DATA / "records.elig"), str(DATA / "site_codes.json"),
                                    "--site-codes", str(bad)])
    assert out.exit_code == 1
    assert "site.yaml" in out.output and "codes.A1" in out.output and "Traceback" not in out.output


def test_screen_with_two_workers_reads_the_attestation_files(tmp_path):
    from elig.commands.screen import screen

    rows = list(screen(DATA / "records.elig", [DATA / "site_codes.json", DATA / "consent.json"], AS_OF, jobs=2,
                       site_codes=DATA / "site_codes.yaml"))
    outcomes = {r.patient_id: dict(r.outcomes) for r in rows}
    assert outcomes["site-coded-patient"]["I3"] == "met"
    assert outcomes["consented-patient"]["I2"] == "met"


def test_coded_answers_and_laterality_are_data_checked_when_read(tmp_path):
    from elig.terminology.answers import AnswersError, answers, read_answers
    from elig.terminology.codes import Coding

    shipped = answers()
    assert shipped.result([Coding("http://loinc.org", "LA15173-0")]) == "positive"
    assert shipped.result([Coding("http://loinc.org", "LA26683-5"), Coding("http://snomed.info/sct", "10828004")]) \
        == "positive"  # a SNOMED CT result is read before a LOINC answer
    assert shipped.side([Coding("http://snomed.info/sct", "24028007")]) == "right"
    bad = tmp_path / "answers.yaml"
    for entry, why in (('{system: SNOMED, code: "10828005", display: Positive, means: positive}', "check digit"),
                       ('{system: LOINC, code: "LA15173", display: Pregnant, means: positive}', "not a LOINC answer code"),
                       ('{system: SNOMED, code: "10828004", display: Positive, means: yes}', "means must be one of"),
                       ('{system: SNOMED, code: "10828004", display: Positive}', "system, code, display and means")):
        bad.write_text(f"results:\n  - {entry}\n", encoding="utf-8")
        with pytest.raises(AnswersError, match=why) as err:
            read_answers(bad)
        assert f"{bad}: results[0]" in str(err.value)

