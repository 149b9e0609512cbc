"""Every code in the shipped vocabulary is real: LOINC codes against the checked list (with their
evidence), SNOMED CT, ATC and RxNorm codes against theirs (tests/data/codes_checked.tsv), ICD-10-CM
codes against the code system itself (simple-icd-10-cm), ICD-10-PCS codes against the CMS code set as
tests/data/icd10pcs_checked.tsv records it (a current code for each exact code and under each prefix,
the CMS title, and the table axes that a prefix's display must name), molar masses cited.
The corpus decides which concepts are shipped: every measurable concept that two or more trials of
the registry corpus name is in the vocabulary (bench/vocabulary_corpus.py)."""

from __future__ import annotations

import csv
import importlib.util
import re

import pytest
import simple_icd_10_cm as icd10cm

from elig.terminology.codes import atc_level, code_problem, loinc_check_digit
from elig.terminology.vocabulary import bundled_files, default_vocabulary, read_vocabulary_file

from conftest import ROOT

LOINC = "http://loinc.org"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CHECKED = ROOT / "tests" / "data" / "loinc_checked.tsv"


def _checked() -> dict[str, dict]:
    lines = [ln for ln in CHECKED.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    return {row["code"]: row for row in csv.DictReader(lines, delimiter="\t")}


def _codes(system: str, files=None):
    for path in files or bundled_files():
        concepts, problems, _ = read_vocabulary_file(path)
        assert not problems, problems
        for concept in concepts:
            for spec in concept.codes:
                if spec.system == system:
                    yield path.name, concept, spec


# ---------------------------------------------------------------- LOINC
def _loinc_problems(specs, checked: dict[str, dict]) -> list[str]:
    """Why each (concept, code) pair is not a confirmed LOINC code: a wrong check digit, no row
    of evidence in the checked list, or a display that is not the long name seen on the page."""
    problems = []
    for concept, spec in specs:
        body, _, digit = spec.code.partition("-")
        if not digit.isdigit() or loinc_check_digit(body) != int(digit):
            problems.append(f"{spec.code} ({concept.name}): wrong LOINC check digit")
            continue
        row = checked.get(spec.code)
        if row is None:
            problems.append(f"{spec.code} ({concept.name}): not in tests/data/loinc_checked.tsv; add it with its "
                            "long common name and the public page that confirms it")
        elif spec.display and spec.display != row["long_common_name"]:
            problems.append(f"{spec.code} ({concept.name}): declared as {spec.display!r}, but the page confirms "
                            f"{row['long_common_name']!r}")
    return problems


# The LOINC property (the bracket in the long name) against the concept's unit: a unit of this
# dimension must convert to the concept's unit (through its molar mass, for mass and moles).
PROPERTY_UNIT = {
    "Mass/volume": "g/L", "Moles/volume": "mol/L", "#/volume": "10^9/L", "Enzymatic activity/volume": "U/L",
    "Units/volume": "U/L", "Mass Ratio": "1", "Mass/time": "g/d", "Partial pressure": "mmHg", "Volume": "L",
    "Volume Fraction": "%", "Volume Rate/Area": "mL/min/{1.73_m2}", "Entitic volume": "fL",
}
QUALITATIVE = ("Presence", "Interpretation")
# Codes kept on purpose although their property is not the concept's; each needs a reason.
PROPERTY_KEPT = {
    "2107-1": "urine hCG in moles: recognised so that such a result is reported unknown (no IU-to-mole factor), "
              "not missing",
    "2114-7": "urine beta-hCG in moles: as 2107-1",
    "39156-5": "LOINC's [Ratio] for body mass index is the kg/m2 quotient",
}


def _property_problem(long_name: str, kind: str, unit: str | None, molar_mass: float | None) -> str | None:
    import pint

    from elig.terminology.units import conversion_factor

    match = re.search(r"\[([^\]]+)\]", long_name)
    if match is None:
        return None
    prop = match.group(1)
    if prop in QUALITATIVE:
        return None if kind == "test" else f"a qualitative [{prop}] code on a {kind} in {unit}"
    if kind == "test":
        return f"a quantitative [{prop}] code on a qualitative test"
    if prop not in PROPERTY_UNIT:
        return f"LOINC property [{prop}] is not known to this check: add it to PROPERTY_UNIT"
    try:
        conversion_factor(PROPERTY_UNIT[prop], unit, molar_mass)
    except pint.DimensionalityError:
        return (f"[{prop}] results cannot be read in {unit}"
                + ("" if molar_mass else " (and no molar mass is declared)"))
    return None


def test_every_loinc_code_is_confirmed_by_a_public_page():
    problems = [p for file in bundled_files() for p in _loinc_problems(
        ((concept, spec) for _, concept, spec in _codes(LOINC, [file])), _checked())]
    assert not problems, "LOINC codes not confirmed:\n" + "\n".join(problems)


def test_every_loinc_code_measures_what_its_concept_means():
    checked = _checked()
    wrong = [f"{spec.code} {checked[spec.code]['long_common_name']!r} on {concept.name}: {problem}"
             for _, concept, spec in _codes(LOINC) if spec.code not in PROPERTY_KEPT
             for problem in [_property_problem(checked[spec.code]["long_common_name"], concept.kind, concept.unit,
                                               concept.molar_mass)] if problem]
    assert not wrong, "\n".join(wrong)


def test_checked_list_rows_are_well_formed():
    for code, row in _checked().items():
        assert code_problem(LOINC, code) is None, code
        assert row["long_common_name"].strip() and row["evidence"].strip(), code
        # Every row was confirmed on a public page (loinc.org, HL7 or VSAC pages, laboratory catalogues).
        assert row["status"] == "checked", code
        assert re.search(r"https?://", row["evidence"]), code



# Codes shipped before issue 9 that no public page could confirm when they were re-checked: a wrong
# code is worse than none (a record under it would be read as the concept), so they are removed and
# must not come back without evidence. Each says what it was meant to be and why it went.
REMOVED = {
    "1743-4": "ALT with P-5'-P (alanine aminotransferase): no page found for this code; 1742-6 and 1744-2 were",
    "753-4": "neutrophils by manual count: no page found; 751-8 and 26499-4 cover the absolute count",
    "8634-8": "uncorrected Q-T interval: no page found (8636-3, the corrected QT, was)",
    "19994-3": "FiO2 ventilator setting: no page found; 3150-0 'Inhaled oxygen concentration' was (US Core)",
    "19996-8": "FiO2 on ventilator: no page found; as 19994-3",
    "92130-4": "rhinovirus RNA by NAA: no page found (searched loinc.org, HL7 IGs, lab catalogues)",
    "92134-6": "human metapneumovirus RNA by NAA: as 92130-4",
    "92138-7": "parainfluenza 3 RNA by NAA: as 92130-4",
    "92139-5": "parainfluenza 2 RNA by NAA: as 92130-4",
    "92140-3": "parainfluenza 1 RNA by NAA: as 92130-4",
    "94040-3": "adenovirus DNA by NAA in respiratory specimens: no page found",
}


def test_codes_removed_for_want_of_evidence_stay_out():
    back = {spec.code for _, _, spec in _codes(LOINC)} & set(REMOVED)
    assert not back, {code: REMOVED[code] for code in back}
    assert not set(REMOVED) & set(_checked()), "a removed code has a row again: drop it from REMOVED with its evidence"


def test_the_loinc_checks_fail_on_wrong_codes():
    """The checks above can fail: a code with a wrong check digit, a code nobody confirmed, a display
    that names another analyte, and codes whose property is not what the concept means."""
    from elig.terminology.vocabulary import CodeSpec, Concept

    creatinine = Concept(name="serum creatinine", kind="measurement", unit="mg/dL")
    checked = {"2160-0": {"long_common_name": "Creatinine [Mass/volume] in Serum or Plasma"}}
    specs = [(creatinine, CodeSpec(LOINC, "2160-1")),                      # check digit
             (creatinine, CodeSpec(LOINC, "14682-9")),                     # real, but not confirmed here
             (creatinine, CodeSpec(LOINC, "2160-0", "Creatinine [Moles/volume] in Serum or Plasma"))]
    problems = _loinc_problems(specs, checked)
    assert [p.split(":")[0] for p in problems] == ["2160-1 (serum creatinine)", "14682-9 (serum creatinine)",
                                                    "2160-0 (serum creatinine)"]
    assert "wrong LOINC check digit" in problems[0] and "declared as" in problems[2]
    # A substance concentration code on a mass concentration concept without a molar mass to bridge them.
    assert _property_problem("Sodium [Moles/volume] in Serum or Plasma", "measurement", "mg/dL", None)
    assert _property_problem("Creatinine [Moles/volume] in Serum or Plasma", "measurement", "mg/dL", 113.12) is None
    # An absolute count is not a percentage of leukocytes, and a presence test is not a quantity.
    assert _property_problem("Neutrophils [#/volume] in Blood", "measurement", "%", None)
    assert _property_problem("Hepatitis B virus surface Ag [Presence] in Serum", "measurement", "IU/L", None)
    assert _property_problem("Platelets [#/volume] in Blood", "test", None, None)


def test_every_kept_property_mismatch_is_still_needed():
    """An entry of PROPERTY_KEPT that no longer excuses anything is removed, so the list cannot hide a code."""
    checked = _checked()
    needed = {spec.code for _, concept, spec in _codes(LOINC) if spec.code in PROPERTY_KEPT
              and _property_problem(checked[spec.code]["long_common_name"], concept.kind, concept.unit,
                                    concept.molar_mass)}
    assert needed == set(PROPERTY_KEPT)


def test_a_wrong_check_digit_is_refused():
    assert code_problem(LOINC, "2160-1") == "'2160-1' has a wrong LOINC check digit (expected 2160-0)"


# ---------------------------------------------------------------- ICD-10-CM
def _is_code(code: str) -> bool:
    """A category or code of the classification (B20 is also the name of its one-category block)."""
    return icd10cm.is_valid_item(code) and (icd10cm.is_category(code) or icd10cm.is_subcategory(code)
                                            or icd10cm.is_leaf(code))


def _icd_exists(code: str, prefix: bool) -> bool:
    if not prefix:
        return _is_code(code)
    return any(c.startswith(code) for c in _ALL_CODES)


_ALL_CODES = tuple(c for c in icd10cm.get_all_codes(with_dots=True) if _is_code(c))

# Codes no longer in the current ICD-10-CM release (simple-icd-10-cm) that a value set keeps on
# purpose, because records coded before their deletion still carry them. Each needs a reason.
RETIRED_KEPT: dict[str, str] = {}


def _missing_icd(codes) -> list[str]:
    return [f"{spec.code}{'*' if spec.match == 'prefix' else ''} ({concept.name})"
            for _, concept, spec in codes
            if not _icd_exists(spec.code, spec.match == "prefix") and spec.code not in RETIRED_KEPT]


def test_every_icd10cm_code_exists_in_the_code_system():
    wrong = _missing_icd(_codes(ICD10CM))
    assert not wrong, "ICD-10-CM codes that do not exist: " + ", ".join(wrong)


@pytest.mark.parametrize(("code", "prefix", "exists"), [
    ("J70.0", False, True), ("I50.811", False, True), ("C91", True, True), ("J0", True, True),
    ("B20", False, True), ("X99.99", False, False), ("J45.999", False, False), ("U99", True, False),
    ("Z22.51", False, False),
])
def test_the_icd10cm_check_fails_on_codes_that_do_not_exist(code, prefix, exists):
    assert _icd_exists(code, prefix) is exists


def test_a_vocabulary_file_with_a_made_up_icd10cm_code_fails_the_check(tmp_path):
    """The check reads a vocabulary file as the suite reads the shipped ones: J45.999 has the syntax of
    an ICD-10-CM code, so the vocabulary loader accepts it, but the classification has no such code."""
    path = tmp_path / "site.yaml"
    path.write_text("concepts:\n  - name: severe asthma\n    kind: condition\n    codes:\n"
                    "      - {system: ICD-10-CM, code: J45.999, display: made up}\n"
                    "      - {system: ICD-10-CM, code: J45.51, display: Severe persistent asthma with (acute) exacerbation}\n",
                    encoding="utf-8")
    assert _missing_icd(_codes(ICD10CM, [path])) == ["J45.999 (severe asthma)"]


# ---------------------------------------------------------------- ICD-10-PCS
PCS = "http://www.cms.gov/Medicare/Coding/ICD10"
PCS_CHECKED = ROOT / "tests" / "data" / "icd10pcs_checked.tsv"
_PCS_STATUSES = ("ms-drg-v43", "pcs-page")


def _pcs_checked(path=PCS_CHECKED) -> dict[str, dict]:
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    return {row["code"]: row for row in csv.DictReader(lines, delimiter="\t")}


def pcs_axes(prefix: str, checked: dict[str, dict]) -> list[str] | None:
    """The labels of a prefix's characters in their tables, section first (5A19: Extracorporeal or
    Systemic Assistance and Performance, Physiological Systems, Performance, Respiratory); None when
    the checked table lacks one of them."""
    rows = [checked.get(prefix[:i]) for i in range(1, len(prefix) + 1)]
    if any(row is None or row["axis"] == "code" for row in rows):
        return None
    return [row["title"] for row in rows]


def pcs_problems(specs, checked: dict[str, dict]) -> list[str]:
    """Why each (concept, code) pair is not a current ICD-10-PCS code named as CMS names it. An exact
    code is a 7-character code of the checked table, shown with its CMS title; a prefix has at least
    one current code under it, and its display is the labels of its characters in the tables."""
    problems = []
    for concept, spec in specs:
        prefix = spec.match == "prefix"
        where = f"{spec.code}{'*' if prefix else ''} ({concept.name})"
        if not re.fullmatch(r"[0-9A-HJ-NP-Z]{1,7}", spec.code):
            problems.append(f"{where}: not ICD-10-PCS characters (digits and letters other than I and O)")
        elif not prefix:
            row = checked.get(spec.code)
            if len(spec.code) != 7:
                problems.append(f"{where}: an exact ICD-10-PCS code has 7 characters; {spec.code} has more "
                                f"specific codes under it (write it as a prefix, {spec.code}*)")
            elif row is None or row["axis"] != "code":
                problems.append(f"{where}: not a current code in tests/data/icd10pcs_checked.tsv; add it with "
                                "its CMS title and the public page that shows it, or remove it")
            elif spec.display and spec.display.casefold() != row["title"].casefold():
                problems.append(f"{where}: shown as {spec.display!r}; CMS titles it {row['title']!r}")
        else:
            axes = pcs_axes(spec.code, checked)
            if len(spec.code) > 6:
                problems.append(f"{where}: a 7-character code is exact, not a prefix")
            elif not any(row["axis"] == "code" and code.startswith(spec.code) for code, row in checked.items()):
                problems.append(f"{where}: expands to no current code of tests/data/icd10pcs_checked.tsv")
            elif axes is None:
                problems.append(f"{where}: the table axes of its characters are not all in "
                                "tests/data/icd10pcs_checked.tsv")
            elif spec.display and spec.display.casefold() != ", ".join(axes).casefold():
                problems.append(f"{where}: shown as {spec.display!r}; its table axes are {', '.join(axes)!r}")
    return problems


def test_every_icd10pcs_code_is_current_and_named_as_cms_names_it():
    problems = pcs_problems(((concept, spec) for _, concept, spec in _codes(PCS)), _pcs_checked())
    assert not problems, "ICD-10-PCS codes not confirmed:\n" + "\n".join(problems)


def test_the_icd10pcs_check_fails_on_wrong_codes():
    """A retired code (5A15223, ECMO until FY2018; 5A1D60Z, dialysis until FY2017), a made-up one, a
    6-character code written as exact, a prefix of no current code, a title of another duration and
    a prefix displayed other than by its axes are each refused; the shipped forms pass."""
    from elig.terminology.vocabulary import CodeSpec, Concept

    concept = Concept(name="organ support", kind="procedure")
    checked = _pcs_checked()
    specs = [CodeSpec(PCS, "5A15223"), CodeSpec(PCS, "5A1D60Z"), CodeSpec(PCS, "5A1955X"),
             CodeSpec(PCS, "5A1955"), CodeSpec(PCS, "5A1F", match="prefix"),
             CodeSpec(PCS, "5A1955Z", "Respiratory Ventilation, Less than 24 Consecutive Hours"),
             CodeSpec(PCS, "5A19", "Respiratory ventilation (ICD-10-PCS 5A19)", match="prefix"),
             CodeSpec(PCS, "0BTI", match="prefix")]
    problems = pcs_problems([(concept, spec) for spec in specs], checked)
    assert [p.split(" (")[0] for p in problems] == ["5A15223", "5A1D60Z", "5A1955X", "5A1955", "5A1F*",
                                                     "5A1955Z", "5A19*", "0BTI*"]
    assert "not a current code" in problems[0] and "7 characters" in problems[3]
    assert "expands to no current code" in problems[4] and "CMS titles it" in problems[5]
    assert problems[6].endswith("'Extracorporeal or Systemic Assistance and Performance, Physiological Systems, "
                                "Performance, Respiratory'")
    assert "digits and letters other than I and O" in problems[7]
    good = [CodeSpec(PCS, "5A1955Z", "respiratory ventilation, greater than 96 consecutive hours"),
            CodeSpec(PCS, "5A19", "Extracorporeal or Systemic Assistance and Performance, Physiological Systems, "
                                  "Performance, Respiratory", match="prefix"),
            CodeSpec(PCS, "DB", match="prefix")]
    assert pcs_problems([(concept, spec) for spec in good], checked) == []


def test_a_vocabulary_file_with_a_retired_icd10pcs_code_fails_the_check(tmp_path):
    """5A15223 has the syntax of an ICD-10-PCS code, so the loader accepts it, but CMS deleted it in
    FY2019 (ECMO is now coded by cannulation, 5A1522F/G/H)."""
    path = tmp_path / "site.yaml"
    path.write_text("concepts:\n  - name: ecmo run\n    kind: procedure\n    codes:\n"
                    "      - {system: ICD-10-PCS, code: 5A15223, display: 'Extracorporeal Membrane Oxygenation, Continuous'}\n"
                    "      - {system: ICD-10-PCS, code: 5A1522G, display: 'Extracorporeal Oxygenation, Membrane, "
                    "Peripheral Veno-arterial'}\n",
                    encoding="utf-8")
    problems = pcs_problems(((concept, spec) for _, concept, spec in _codes(PCS, [path])), _pcs_checked())
    assert [p.split(":")[0] for p in problems] == ["5A15223 (ecmo run)"]


def test_icd10pcs_checked_rows_are_well_formed():
    checked = _pcs_checked()
    for code, row in checked.items():
        assert row["status"] in _PCS_STATUSES, (code, row["status"])
        assert row["title"].strip() and re.search(r"https?://", row["evidence"]), code
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", row["checked"]), code
        if row["axis"] == "code":
            assert code_problem(PCS, code) is None and len(code) == 7, code
            # A code's table (its first three characters) is in the checked axes.
            assert pcs_axes(code[:3], checked) is not None, code
        else:
            assert re.fullmatch(r"[0-9A-HJ-NP-Z]{1,6}", code), code
            assert row["axis"] in ("Section", "Body System", "Operation", "Body Part", "Modality"), code
    shipped = [spec for _, _, spec in _codes(PCS)]
    assert shipped and all(len(s.code) == 7 for s in shipped if s.match != "prefix")


# ---------------------------------------------------------------- SNOMED CT, ATC and RxNorm
SNOMED = "http://snomed.info/sct"
ATC = "http://www.whocc.no/atc"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"
CODES_CHECKED = ROOT / "tests" / "data" / "codes_checked.tsv"
_SHORT = {SNOMED: "SNOMED CT", ATC: "ATC", RXNORM: "RxNorm"}
_STATUSES = ("value-set", "ig", "ohdsi", "synthea", "who-atc", "indexed")


def _checked_codes(path=CODES_CHECKED) -> dict[tuple[str, str], dict]:
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    return {(row["system"], row["code"]): row for row in csv.DictReader(lines, delimiter="\t")}


def _shipped_codes():
    """(system, code, display, where) of every SNOMED CT, ATC and RxNorm code elig ships: concept
    value sets, site codes and body sites, and the coded answers (answers.yaml)."""
    import yaml

    for path in bundled_files():
        concepts, _, _ = read_vocabulary_file(path)
        for concept in concepts:
            for spec in (*concept.codes, *concept.site_codes, *concept.body_sites):
                if spec.system in _SHORT:
                    yield spec.system, spec.code, spec.display, f"{concept.name} ({path.name})"
    answers = yaml.safe_load((ROOT / "elig" / "data" / "answers.yaml").read_text(encoding="utf-8"))
    for entries in answers.values():
        for e in entries:
            if e["system"] == "SNOMED":
                yield SNOMED, str(e["code"]), e["display"], "answers.yaml"


def _name(display: str | None) -> str:
    """A name as compared: case and a trailing semantic tag ("(disorder)", "(ingredient)") aside."""
    return re.sub(r"\s*\((?:disorder|finding|procedure|regime/therapy|body structure|qualifier value|"
                  r"observable entity|ingredient)\)$", "", (display or "").strip()).casefold()


def unchecked(shipped, checked) -> list[str]:
    """Why each shipped code is not backed by the checked table: missing, or named otherwise."""
    problems = []
    for system, code, display, where in shipped:
        row = checked.get((_SHORT[system], code))
        if row is None:
            problems.append(f"{_SHORT[system]} {code} ({where}) is not in tests/data/codes_checked.tsv")
        elif display and _name(display) != _name(row["display"]):
            problems.append(f"{_SHORT[system]} {code} ({where}) is shown as {display!r}; the code system "
                            f"names it {row['display']!r}")
    return problems


def test_every_snomed_atc_and_rxnorm_code_is_checked_and_named_as_the_code_system_names_it():
    problems = unchecked(_shipped_codes(), _checked_codes())
    assert not problems, ("confirm each code on a public page (a value set, an implementation guide, the "
                          "WHO ATC index), add it with its evidence, or remove it:\n" + "\n".join(problems))


def test_the_check_fails_on_a_made_up_or_misnamed_code():
    checked = _checked_codes()
    made_up = [(SNOMED, "999999001", "Made-up disorder (disorder)", "x"), (ATC, "B01AC99", "made-up", "x"),
               (RXNORM, "99999999", "made-up", "x"), (SNOMED, "84114007", "Asthma (disorder)", "x")]
    problems = unchecked(made_up, checked)
    assert len(problems) == 4
    assert "SNOMED CT 999999001 (x) is not in" in problems[0]
    assert "names it 'Heart failure (disorder)'" in problems[3]
    assert unchecked([(SNOMED, "84114007", "heart failure", "x")], checked) == []


def test_checked_codes_are_well_formed_per_system():
    shipped_prefix = {(s, c) for s, c, _, _ in _shipped_codes()}
    for (system, code), row in _checked_codes().items():
        assert row["status"] in _STATUSES, (code, row["status"])
        assert row["display"].strip() and row["evidence"].strip(), code
        assert re.fullmatch(r"\d{4}-\d\d-\d\d", row["checked"]), code
        if row["status"] != "indexed":
            assert re.search(r"https?://|\.\./shared/data/", row["evidence"]), code
        if system == "ATC":
            # A class (levels 1-4) matches by prefix; a substance is level 5, e.g. B01AC06. The WHO
            # index writes substances in lower case and classes capitalised.
            level = atc_level(code)
            assert level is not None, code
            assert (level == 5) == (row["display"] == row["display"].lower()), (code, level, row["display"])
        elif system == "RxNorm":
            assert re.fullmatch(r"\d{1,8}", code), code
        else:
            assert system == "SNOMED CT" and code_problem(SNOMED, code) is None, code
    assert shipped_prefix  # the shipped vocabulary has codes of these systems


@pytest.mark.parametrize(("code", "level"), [
    ("B", 1), ("B01", 2), ("B01A", 3), ("B01AC", 4), ("B01AC06", 5),
    ("B1AC06", None), ("B01AC6", None), ("B01AC060", None), ("b01ac06", None), ("", None),
])
def test_atc_codes_have_the_shape_of_their_level(code, level):
    assert atc_level(code) == level


def test_shipped_atc_codes_are_classes_by_prefix_and_substances_exactly():
    for path in bundled_files():
        concepts, _, _ = read_vocabulary_file(path)
        for concept in concepts:
            for spec in concept.codes:
                if spec.system == ATC:
                    level = atc_level(spec.code)
                    assert level == 5 if spec.match != "prefix" else level in (1, 2, 3, 4), (concept.name, spec.code)


# ---------------------------------------------------------------- conversions
def test_every_molar_mass_is_cited():
    for concept in default_vocabulary().concepts:
        if concept.molar_mass is not None:
            assert concept.molar_mass_source and re.search(r"\d", concept.molar_mass_source), concept.name


@pytest.mark.parametrize(("concept", "value", "unit", "canonical"), [
    ("haemoglobin", 6.0, "mmol/L", 96.69),     # Hb 6 mmol/L = 9.67 g/dL (monomer convention)
    ("glucose", 7.0, "mmol/L", 126.1),         # 7 mmol/L = 126 mg/dL
    ("serum creatinine", 88.4, "µmol/L", 1.0),
    ("calcium", 2.5, "mmol/L", 10.02),
    ("total cholesterol", 5.0, "mmol/L", 193.3),
])
def test_two_units_of_one_analyte_convert_by_the_declared_molar_mass(concept, value, unit, canonical):
    from elig.terminology.units import conversion_factor

    c = default_vocabulary().lookup(concept)
    assert value * conversion_factor(unit, c.unit, c.molar_mass) == pytest.approx(canonical, rel=2e-3)


def test_an_analyte_coded_in_mass_and_in_moles_declares_a_cited_molar_mass():
    """A concept with a [Mass/...] and a [Moles/...] LOINC code receives results in both: the molar
    mass that bridges them is declared, with its source."""
    for path in bundled_files():
        concepts, _, _ = read_vocabulary_file(path)
        for concept in concepts:
            kinds = {("mass" if "[Mass/" in spec.display else "moles" if "[Moles/" in spec.display else None)
                     for spec in concept.codes if spec.system == LOINC and spec.display}
            if {"mass", "moles"} <= kinds:
                assert concept.molar_mass and concept.molar_mass_source, concept.name


# The factor a molar mass implies is stated in its source and recomputed here, so that a typo in the
# molar mass or in the stated factor fails: '1 mmol/L = 4.008 mg/dL' for calcium at 40.078 g/mol.
_FACTOR = re.compile(r"1 (\S+) = ([\d.]+) (\S+?)(?=[\s,;)]|$)")


def _factor_problem(source: str | None, molar_mass: float) -> str | None:
    from elig.terminology.units import conversion_factor

    match = _FACTOR.search(source or "")
    if match is None:
        return "the source states no factor such as '1 mmol/L = 4.008 mg/dL'"
    frm, value, to = match.group(1), float(match.group(2)), match.group(3)
    got = conversion_factor(frm, to, molar_mass)
    if abs(got - value) > 2e-3 * value:
        return f"1 {frm} = {got:.4g} {to} at {molar_mass:g} g/mol, not {value:g}"
    return None


def test_every_declared_conversion_factor_is_the_arithmetic_of_its_molar_mass():
    wrong = {c.name: problem for c in default_vocabulary().concepts if c.molar_mass
             for problem in [_factor_problem(c.molar_mass_source, c.molar_mass)] if problem}
    assert not wrong, wrong


def test_the_factor_check_fails_on_a_wrong_factor_or_molar_mass():
    assert _factor_problem("calcium, 40.078 (IUPAC 2021): 1 mmol/L = 4.008 mg/dL", 40.078) is None
    assert _factor_problem("calcium: 1 mmol/L = 4.5 mg/dL", 40.078) == "1 mmol/L = 4.008 mg/dL at 40.078 g/mol, not 4.5"
    # Hb in mmol/L counts monomers: the tetramer's 64,458 g/mol would make 1 g/dL a quarter of 0.6206 mmol/L.
    assert _factor_problem("1 g/dL = 0.6206 mmol/L", 64458.0)
    assert _factor_problem("cholesterol (PubChem CID 5997)", 386.65).startswith("the source states no factor")


# Real values, each checked against the usual clinical conversion in both directions.
@pytest.mark.parametrize(("concept", "value", "unit", "canonical"), [
    ("magnesium", 0.85, "mmol/L", 2.066),        # 1 mmol/L = 2.43 mg/dL
    ("phosphate", 1.0, "mmol/L", 3.097),         # as phosphorus: 1 mmol/L = 3.10 mg/dL
    ("uric acid", 357.0, "µmol/L", 6.0),         # 1 mg/dL = 59.48 µmol/L
    ("free thyroxine", 15.4, "pmol/L", 1.196),   # 1 ng/dL = 12.87 pmol/L
    ("oestradiol", 367.1, "pmol/L", 100.0),      # 1 pg/mL = 3.671 pmol/L
    ("testosterone", 1.734, "nmol/L", 50.0),     # 1 ng/mL = 3.467 nmol/L
    ("total bilirubin", 17.1, "µmol/L", 1.0),    # 1 mg/dL = 17.1 µmol/L
    ("urea nitrogen", 5.0, "mmol/L", 14.01),     # urea 5 mmol/L = BUN 14 mg/dL (× 2.801)
    ("sodium", 321.9, "mg/dL", 140.0),           # 321.9 mg/dL = 140 mmol/L (rarely reported so)
])
def test_a_real_value_converts_both_ways_by_the_declared_molar_mass(concept, value, unit, canonical):
    from elig.terminology.units import conversion_factor

    c = default_vocabulary().lookup(concept)
    there = conversion_factor(unit, c.unit, c.molar_mass)
    back = conversion_factor(c.unit, unit, c.molar_mass)
    assert value * there == pytest.approx(canonical, rel=3e-3)
    assert canonical * back == pytest.approx(value, rel=3e-3)
    assert there * back == pytest.approx(1.0)


# ---------------------------------------------------------------- the corpus decides
def _bench():
    spec = importlib.util.spec_from_file_location("vocabulary_corpus", ROOT / "bench" / "vocabulary_corpus.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_concept_two_trials_name_is_in_the_vocabulary():
    bench = _bench()
    corpus = bench.default_corpus()
    if not corpus.is_file():
        pytest.skip(f"no registry corpus at {corpus} (set ELIG_CORPUS)")
    counts = bench.count(corpus)
    covered = bench.coverage(counts)
    named = {n for n, c in counts.items() if c["trials"] >= 2}
    assert len(named) >= 40
    assert [n for n in named if covered[n] is None] == []
    # The names the bench counts are the vocabulary's own names, so a renamed concept fails here.
    assert all(covered[n] == n for n in named), {n: covered[n] for n in named if covered[n] != n}


# ---------------------------------------------------------------- units that must not be converted
def test_units_that_mean_something_else_are_refused_not_rescaled():
    import elig
    from elig.diagnostics import ProtocolError
    from elig.records.loader import patient_from_data

    protocol = elig.parse_protocol_text(
        "protocol X\ninclusion\n  I1\n    HbA1c < 6.5%\n  I2\n    calcium < 10.5 mg/dL\n"
        "  I3\n    haematocrit > 30%\n  I4\n    FEV1 FVC ratio < 70%\n")
    patient = patient_from_data({"id": "a", "birth_date": "1970-01-01", "sex": "female", "observations": [
        # 53 mmol/mol is 7.0 %: read as 5.3 % it would wrongly meet < 6.5 %.
        {"concept": "HbA1c", "value": 53, "unit": "mmol/mol", "date": "2024-03-01"},
        # 5.4 mEq/L of calcium is 2.7 mmol/L = 10.8 mg/dL: read as mmol/L it would be 21.6 mg/dL.
        {"concept": "calcium", "value": 5.4, "unit": "mEq/L", "date": "2024-03-01"},
        {"concept": "Hct", "value": 0.32, "unit": "L/L", "date": "2024-03-01"},
        {"concept": "FEV1 FVC ratio", "value": 65, "unit": "%", "date": "2024-03-01"},
    ]})
    result = elig.evaluate(protocol, patient, "2024-03-15")
    outcome = {c.id: c.outcome for c in result.criteria}
    assert outcome == {"I1": elig.Outcome.UNKNOWN, "I2": elig.Outcome.UNKNOWN, "I3": elig.Outcome.MET,
                       "I4": elig.Outcome.MET}
    assert "NGSP % = 0.0915 × IFCC + 2.15" in result.criterion("I1").explanation.summary
    assert "divalent" in result.criterion("I2").explanation.summary
    with pytest.raises(ProtocolError, match="not compared in mmol/mol"):
        elig.parse_protocol_text("protocol X\ninclusion\n  I1\n    HbA1c ≤ 53 mmol/mol\n")


def test_the_documented_counts_are_the_corpus_counts():
    import json

    bench = _bench()
    corpus = bench.default_corpus()
    if not corpus.is_file():
        pytest.skip(f"no registry corpus at {corpus} (set ELIG_CORPUS)")
    committed = json.loads((ROOT / "bench" / "vocabulary_corpus_counts.json").read_text(encoding="utf-8"))
    assert committed == bench.snapshot(bench.count(corpus)), \
        "refresh: .venv/bin/python bench/vocabulary_corpus.py --write-snapshot"
