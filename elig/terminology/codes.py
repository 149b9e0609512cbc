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
