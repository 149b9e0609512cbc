"""Code systems as records name them: their canonical URIs, short names and the Coding of an entry.

Records (native and FHIR) and the vocabulary both speak of codes; this module is
the one place that knows how a system is spelled, so neither depends on the other.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class Coding:
    system: str
    code: str
    display: str | None = None

    def __str__(self) -> str:
        return f"{short_system(self.system)} {self.code}"


_SYSTEMS = {
    "http://loinc.org": "LOINC",
    "http://snomed.info/sct": "SNOMED CT",
    "http://hl7.org/fhir/sid/icd-10-cm": "ICD-10-CM",
    "http://hl7.org/fhir/sid/icd-10": "ICD-10",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "RxNorm",
    "http://www.whocc.no/atc": "ATC",
    "http://www.cms.gov/Medicare/Coding/ICD10": "ICD-10-PCS",
}
SYSTEM_ALIASES = {v.lower(): k for k, v in _SYSTEMS.items()} | {
    "loinc": "http://loinc.org", "snomed": "http://snomed.info/sct", "sct": "http://snomed.info/sct",
    "icd10cm": "http://hl7.org/fhir/sid/icd-10-cm", "icd-10-cm": "http://hl7.org/fhir/sid/icd-10-cm",
    "icd10": "http://hl7.org/fhir/sid/icd-10", "rxnorm": "http://www.nlm.nih.gov/research/umls/rxnorm",
    "atc": "http://www.whocc.no/atc",
}


def short_system(system: str) -> str:
    return _SYSTEMS.get(system, system)


def canonical_system(system: str) -> str:
    return SYSTEM_ALIASES.get(system.strip().lower(), system.strip())


# ---------------------------------------------------------------- code syntax, per system
# What a well-formed code of each system looks like. A vocabulary entry whose code does not
# fit is refused when the vocabulary is read, so a typo never becomes a value set that
# silently matches nothing. ``prefix`` codes (ICD-10 categories, ATC classes, ICD-10-PCS
# sections) may stop at any level of the hierarchy.
_ICD10_EXACT = r"[A-Z][0-9][0-9A-Z](?:\.[0-9A-Z]{1,4})?"
_ICD10_PREFIX = r"[A-Z](?:[0-9](?:[0-9A-Z](?:\.[0-9A-Z]{0,4})?)?)?"
_SYNTAX = {
    "http://loinc.org": (r"\d{1,7}-\d", None, "digits, a hyphen and a check digit, e.g. 2160-0"),
    "http://snomed.info/sct": (r"\d{6,18}", None, "6 to 18 digits ending in a Verhoeff check digit, e.g. 84114007"),
    "http://hl7.org/fhir/sid/icd-10-cm": (_ICD10_EXACT, _ICD10_PREFIX,
                                          "a letter, two characters, then an optional dot and up to 4 more, e.g. I50.21"),
    "http://hl7.org/fhir/sid/icd-10": (_ICD10_EXACT, _ICD10_PREFIX, "a letter, two characters and an optional dot part, e.g. J18.9"),
    "http://www.nlm.nih.gov/research/umls/rxnorm": (r"\d{1,8}", None, "digits (an RxCUI), e.g. 11289"),
    "http://www.whocc.no/atc": (r"[A-Z]\d\d[A-Z][A-Z]\d\d", r"[A-Z](?:\d\d(?:[A-Z](?:[A-Z](?:\d\d)?)?)?)?",
                                "a 7-character ATC code such as B01AA03, or a class such as B01AA with match prefix"),
    "http://www.cms.gov/Medicare/Coding/ICD10": (r"[0-9A-HJ-NP-Z]{7}", r"[0-9A-HJ-NP-Z]{1,6}",
                                                 "7 characters (digits and letters other than I and O), e.g. 5A1955Z"),
}

KNOWN_SYSTEMS = tuple(_SYSTEMS)


def loinc_check_digit(body: str) -> int:
    """The LOINC mod-10 check digit of the digits before the hyphen (LOINC Users' Guide, appendix)."""
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d // 10 + d % 10
    return (10 - total % 10) % 10


_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 4, 0, 6, 7, 8, 9, 5), (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7), (4, 0, 1, 2, 3, 9, 5, 6, 7, 8), (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2), (7, 6, 5, 9, 8, 2, 1, 0, 4, 3), (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 5, 7, 6, 2, 8, 3, 0, 9, 4), (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7), (9, 4, 5, 3, 1, 2, 6, 8, 7, 0), (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5), (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)


_ATC_LEVELS = (r"[A-Z]", r"[A-Z]\d\d", r"[A-Z]\d\d[A-Z]", r"[A-Z]\d\d[A-Z][A-Z]", r"[A-Z]\d\d[A-Z][A-Z]\d\d")


def atc_level(code: str) -> int | None:
    """The level of an ATC code (WHO ATC index): 1 anatomical main group (B), 2 therapeutic
    subgroup (B01), 3 pharmacological subgroup (B01A), 4 chemical subgroup (B01AC), 5 chemical
    substance (B01AC06); None when the code has the shape of no level."""
    import re

    return next((i + 1 for i, pattern in enumerate(_ATC_LEVELS) if re.fullmatch(pattern, code)), None)


def verhoeff_valid(digits: str) -> bool:
    """SNOMED CT identifiers end in a Verhoeff check digit."""
    c = 0
    for i, ch in enumerate(reversed(digits)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[i % 8][int(ch)]]
    return c == 0


def code_problem(system: str, code: str, prefix: bool = False) -> str | None:
    """Why ``code`` is not a well-formed code of ``system`` (None when it is).

    Only the syntax and check digits are judged here; whether a well-formed code exists
    is checked against the code system itself in the test suite.
    """
    import re

    if system not in _SYSTEMS:
        return f"unknown code system {system!r}"
    exact, prefix_pattern, shape = _SYNTAX[system]
    if prefix:
        if prefix_pattern is None:
            return f"{short_system(system)} codes cannot match by prefix"
        if not re.fullmatch(prefix_pattern, code):
            return f"{code!r} is not the beginning of a {short_system(system)} code ({shape})"
        return None
    if not re.fullmatch(exact, code):
        return f"{code!r} is not a {short_system(system)} code ({shape})"
    if system == "http://loinc.org":
        body, check = code.split("-")
        if loinc_check_digit(body) != int(check):
            return f"{code!r} has a wrong LOINC check digit (expected {body}-{loinc_check_digit(body)})"
    if system == "http://snomed.info/sct":
        if not verhoeff_valid(code):
            return f"{code!r} has a wrong SNOMED CT check digit (Verhoeff)"
        if code[-3:-1] not in ("00", "10"):
            return f"{code!r} is not a SNOMED CT concept identifier (partition {code[-3:-1]}, expected 00 or 10)"
    return None
