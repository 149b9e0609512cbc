"""The bundled vocabulary: it loads, names resolve, codes map, and every concept is usable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from elig.terminology.codes import Coding, canonical_system
from elig.terminology.units import parse_unit
from elig.terminology.vocabulary import EVENT_KINDS, load_vocabulary

VOCAB_PATH = Path(__file__).resolve().parent.parent / "elig" / "data" / "vocabulary.yaml"

# Words of the protocol language that cannot appear inside a concept name.
KEYWORDS = {
    "and", "or", "not", "any", "all", "none", "of", "within", "if", "unless", "to", "between",
    "history", "active", "current", "taking", "positive", "onset", "lasting", "daily", "increase",
    "in", "by", "attested", "note", "male", "female", "class", "stage", "grade",
}


@pytest.fixture(scope="module")
def vocab():
    return load_vocabulary(VOCAB_PATH)


def test_file_loads(vocab):
    assert len(vocab.concepts) > 50


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("ANC", "absolute neutrophil count"),
        ("PLT", "platelet count"),
        ("HGB", "haemoglobin"),
        ("TBil", "total bilirubin"),
        ("ALT", "alanine aminotransferase"),
        ("SGPT", "alanine aminotransferase"),
        ("AST", "aspartate aminotransferase"),
        ("SGOT", "aspartate aminotransferase"),
        ("serum bilirubin", "total bilirubin"),
        ("Creatinine clearance", "creatinine clearance"),
        ("P(A-a)O2", "alveolar-arterial oxygen gradient"),
        ("LVEF", "left ventricular ejection fraction"),
        ("EOCG PS score", "ECOG performance status"),
        ("oxygenation index", "PaO2/FiO2 ratio"),
        ("radiation lung injury", "radiation pneumonitis"),
        ("pulmonary interstitial pneumonia", "interstitial lung disease"),
        ("CRP", "C-reactive protein"),
        ("PCT", "procalcitonin"),
        ("eGFR", "estimated glomerular filtration rate"),
    ],
)
def test_names_resolve(vocab, name, canonical):
    concept = vocab.lookup(name)
    assert concept is not None, name
    assert concept.name == canonical


def test_egfr_is_not_creatinine_clearance(vocab):
    assert vocab.lookup("eGFR") is not vocab.lookup("creatinine clearance")
    assert vocab.lookup("CKD-EPI eGFR") is not vocab.lookup("creatinine clearance")


@pytest.mark.parametrize("code", ["38483-4", "14682-9", "2160-0"])
def test_creatinine_codes_map_to_serum_creatinine(vocab, code):
    found = vocab.by_code(Coding(canonical_system("LOINC"), code))
    assert [c.name for c in found] == ["serum creatinine"]


def test_warfarin_atc_matches_anticoagulant_by_prefix(vocab):
    found = vocab.by_code(Coding(canonical_system("ATC"), "B01AA03"))
    assert "anticoagulant" in [c.name for c in found]


def test_synthea_egfr_code_maps_to_egfr(vocab):
    found = vocab.by_code(Coding(canonical_system("LOINC"), "33914-3"))
    assert [c.name for c in found] == ["estimated glomerular filtration rate"]


def test_measurements_have_units_and_plausible_ranges(vocab):
    for concept in vocab.concepts:
        if concept.kind not in ("measurement", "derived"):
            continue
        assert concept.unit, concept.name
        parse_unit(concept.unit)  # raises on an unreadable unit
        assert concept.plausible is not None, concept.name
        low, high = concept.plausible
        assert low < high, concept.name


def test_derived_concepts_name_methods(vocab):
    for concept in vocab.concepts:
        if concept.kind == "derived":
            assert concept.methods, concept.name


def test_event_concepts_have_codes(vocab):
    for concept in vocab.concepts:
        if concept.kind in EVENT_KINDS:
            assert concept.codes, concept.name


def test_tests_are_qualitative(vocab):
    for concept in vocab.concepts:
        if concept.kind == "test":
            assert concept.qualitative, concept.name


def test_aliases_avoid_language_keywords_and_slashes(vocab):
    for concept in vocab.concepts:
        for alias in concept.aliases:
            words = set(re.split(r"[\s\-]+", alias.lower()))
            assert not words & KEYWORDS, (concept.name, alias)
            assert "/" not in alias, (concept.name, alias)


def test_uln_defaults_are_in_the_concept_dimension(vocab):
    for concept in vocab.concepts:
        if concept.uln is not None:
            src = parse_unit(concept.uln.unit)
            assert src.dimensionality == concept.unit_quantity.dimensionality, concept.name
