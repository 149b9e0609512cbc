"""ICD-10-CM in the vocabulary, audited against the code system itself (simple-icd-10-cm,
which ships the current ICD-10-CM release).

* Every ICD-10-CM code is in force: an exact code is a code of the current release (a
  retired code such as Z22.51, deleted in FY2020, fails), and a prefix (``J10.0*``,
  ``C*``) expands to real codes.
* An exact code has no children: a record coded more specifically than the value set
  would otherwise be missed (write ``J10.0*``, not ``J10.0``).
* ``COVERAGE`` lists, for every condition concept, what it covers in ICD-10-CM, so a
  reviewer reads the coverage of the whole vocabulary in one place. A prefix that is a
  code of its own is shown as ``J10.0*`` (that code and all below it); a prefix that is
  only a string (``C*``) shows the categories it spans. When a concept changes, the
  failure prints the new line to paste here, after checking it means the disease.
"""

from __future__ import annotations

import pytest

simple_icd_10_cm = pytest.importorskip("simple_icd_10_cm")

from elig.terminology.vocabulary import default_vocabulary  # noqa: E402

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
ALL_CODES = [c for c in simple_icd_10_cm.get_all_codes(True) if "-" not in c and not c.isdigit()]
CATEGORIES = sorted(c for c in ALL_CODES if len(c) == 3)

COVERAGE = {
    'radiation pneumonitis': ['J70.0', 'J70.1'],
    'chronic bronchitis': ['J41*', 'J42'],
    'emphysema': ['J43*'],
    'chronic obstructive pulmonary disease': ['J44*', 'J43*'],
    'asthma': ['J45*'],
    'cor pulmonale': ['I27.81', 'I26.0*'],
    'interstitial lung disease': ['J84*'],
    'pulmonary fibrosis': ['J84.1*'],
    'acute respiratory distress syndrome': ['J80'],
    'pneumonia': ['J12*', 'J09.X1', 'J10.0*', 'J11.0*', 'J13', 'J14', 'J15*', 'J16*', 'J17', 'J18*'],
    'viral pneumonia': ['J12*', 'J09.X1', 'J10.0*', 'J11.0*'],
    'COVID-19': ['U07.1'],
    'influenza': ['J09*', 'J10*', 'J11*'],
    'adenovirus infection': ['B34.0', 'B97.0', 'J12.0', 'A08.2', 'A87.1', 'B30.0', 'B30.1'],
    'respiratory infection': ['J0* (J00–J09, 8 categories)', 'J1* (J10–J18, 9 categories)', 'J20*', 'J21*', 'J22', 'U07.1'],
    'HIV infection': ['B20', 'Z21', 'O98.7*'],
    'syphilis': ['A50*', 'A51*', 'A52*', 'A53*'],
    'tuberculosis': ['A15*', 'A17*', 'A18*', 'A19*'],
    'hepatitis B': ['B16*', 'B17.0', 'B18.0', 'B18.1', 'B19.1*'],
    'hepatitis C': ['B17.1*', 'B18.2', 'B19.2*'],
    'heart failure': ['I50*', 'I11.0', 'I13.0', 'I13.2', 'I09.81'],
    'acute heart failure': ['I50.21', 'I50.23', 'I50.31', 'I50.33', 'I50.41', 'I50.43', 'I50.811', 'I50.813'],
    'myocardial infarction': ['I21*', 'I22*'],
    'unstable angina': ['I20.0', 'I25.110'],
    'cardiac arrhythmia': ['I47*', 'I48*', 'I49*'],
    'ventricular arrhythmia': ['I47.2*', 'I49.0*'],
    'myocarditis': ['I40*', 'I41', 'I51.4', 'I09.0'],
    'valvular heart disease': ['I05*', 'I06*', 'I07*', 'I08*', 'I34*', 'I35*', 'I36*', 'I37*', 'I38', 'I39'],
    'cerebral infarction': ['I63*'],
    'cerebral haemorrhage': ['I61*'],
    'stroke': ['I60*', 'I61*', 'I63*'],
    'haemorrhage': ['R58', 'R04*', 'K92.0', 'K92.1', 'K92.2', 'I60*', 'I61*', 'I62*'],
    'thrombosis': ['I26*', 'I74*', 'I80*', 'I81', 'I82*'],
    'disseminated intravascular coagulation': ['D65'],
    'acute kidney injury': ['N17*'],
    'chronic kidney disease': ['N18*'],
    'shock': ['R57*', 'R65.21', 'T78.2*', 'T79.4*', 'T81.1*', 'T88.6*'],
    'organ failure': ['R65.11', 'R65.20', 'R65.21'],
    'cachexia': ['R64'],
    'drug addiction': ['F11*', 'F12*', 'F13*', 'F14*', 'F15*', 'F16*', 'F18*', 'F19*'],
    "Gilbert's syndrome": ['E80.4'],
    'malignant neoplasm': ['C* (C00–C96, 94 categories)'],
    'solid tumour': ['C0* (C00–C09, 10 categories)', 'C1* (C10–C19, 10 categories)', 'C2* (C20–C26, 7 categories)', 'C3* (C30–C39, 8 categories)', 'C4* (C40–C4A, 10 categories)', 'C5* (C50–C58, 10 categories)', 'C6* (C60–C69, 10 categories)', 'C7* (C70–C7B, 14 categories)', 'C80*'],
    'tumour progression': [],
    'liver metastases': ['C78.7'],
    'bone metastases': ['C79.51'],
    'leukaemia': ['C91*', 'C92*', 'C93*', 'C94*', 'C95*'],
    'mental disorder': ['F* (F01–F99, 73 categories)'],
    'psychosis': ['F20*', 'F21', 'F22', 'F23', 'F24', 'F25*', 'F28', 'F29'],
    'pregnancy diagnosis': ['Z33.1', 'Z34*', 'Z3A*', 'O09*', 'O1* (O10–O16, 7 categories)', 'O2* (O20–O29, 9 categories)', 'O3* (O30–O36, 7 categories)', 'O4* (O40–O48, 9 categories)'],
    'breastfeeding finding': [],
    'menopause': ['Z78.0', 'N95.1', 'E28.31*', 'E89.4*'],
}


def _icd_specs(concept):
    return [s for s in concept.codes if s.system == ICD10CM]


def covered(spec) -> str:
    if spec.match == "exact" or simple_icd_10_cm.is_valid_item(spec.code):
        return spec.code + ("" if spec.match == "exact" else "*")
    cats = [c for c in CATEGORIES if c.startswith(spec.code)]
    if len(cats) == 1:
        return f"{spec.code}* ({cats[0]})"
    return f"{spec.code}* ({cats[0]}–{cats[-1]}, {len(cats)} categories)"


def test_every_icd10cm_code_is_in_force():
    problems = []
    for concept in default_vocabulary().concepts:
        for spec in _icd_specs(concept):
            if spec.match == "exact":
                if not simple_icd_10_cm.is_valid_item(spec.code):
                    problems.append(f"{concept.name}: {spec.code} is not an ICD-10-CM code in force")
                elif not simple_icd_10_cm.is_leaf(spec.code):
                    problems.append(f"{concept.name}: {spec.code} has children "
                                    f"({', '.join(simple_icd_10_cm.get_children(spec.code)[:3])}, ...): write {spec.code}*")
            elif not any(code.startswith(spec.code) for code in ALL_CODES):
                problems.append(f"{concept.name}: the prefix {spec.code}* matches no ICD-10-CM code")
    assert not problems, "\n".join(problems)


def test_a_retired_code_is_caught():
    # Z22.51 (carrier of viral hepatitis B) was deleted from ICD-10-CM in FY2020.
    assert not simple_icd_10_cm.is_valid_item("Z22.51")
    assert simple_icd_10_cm.is_valid_item("B18.1")


def test_coverage_of_every_condition_concept():
    found = {c.name: [covered(s) for s in _icd_specs(c)] for c in default_vocabulary().concepts
             if c.kind == "condition"}
    changed = [f"    {name!r}: {found.get(name)!r}," for name in sorted(set(found) | set(COVERAGE))
               if found.get(name) != COVERAGE.get(name)]
    assert not changed, "update COVERAGE (check that each line means the disease):\n" + "\n".join(changed)


def test_influenza_with_pneumonia_is_viral_pneumonia():
    vocabulary = default_vocabulary()
    from elig.terminology.codes import Coding

    for code in ("J09.X1", "J10.00", "J10.01", "J10.08", "J11.00", "J11.08"):
        assert simple_icd_10_cm.is_valid_item(code) and simple_icd_10_cm.is_leaf(code), code
        names = {c.name for c in vocabulary.by_code(Coding(ICD10CM, code))}
        assert {"viral pneumonia", "pneumonia", "influenza"} <= names, (code, names)
    # Influenza without pneumonia is not pneumonia.
    names = {c.name for c in vocabulary.by_code(Coding(ICD10CM, "J10.1"))}
    assert "viral pneumonia" not in names and "influenza" in names
