"""The FHIR R4 Questionnaire of a protocol's attestations (``elig questionnaire``).

One boolean item per attestation, in the order the criteria first ask it: ``linkId`` is
the attestation's key (what a QuestionnaireResponse answers and elig reads back),
``text`` the sponsor's sentence, and ``prefix`` the criteria that use it. When the
attestation is one part of a longer criterion (``attested "severe asthma"`` among the
diagnoses of E4.5), the text names the part before the sentence, so the form asks one
thing at a time. The output is deterministic: the same protocol gives the same bytes.
"""

from __future__ import annotations

import json
import re

from elig.engine import plan as p

__all__ = ["attestation_keys", "questionnaire", "questionnaire_json"]


def _attestations(node) -> list[p.AttestationPlan]:
    if isinstance(node, p.AttestationPlan):
        return [node]
    if isinstance(node, p.LogicPlan):
        return [a for c in node.children for a in _attestations(c)]
    if isinstance(node, p.DefinitionPlan):
        return _attestations(node.plan)
    if isinstance(node, p.FactPlan) and node.only_if is not None:
        return _attestations(node.only_if)
    return []


def attestation_keys(checked: p.CheckedProtocol) -> set[str]:
    """The keys of every attestation the protocol asks (what a form or a QuestionnaireResponse answers)."""
    return {a.key for c in checked.criteria for a in _attestations(c.plan)}


def _sole(node) -> bool:
    """The criterion's rule is this one attestation (possibly negated)."""
    while isinstance(node, p.LogicPlan) and node.op == "not":
        node = node.children[0]
    return isinstance(node, p.AttestationPlan)


def questionnaire(checked: p.CheckedProtocol) -> dict:
    items: dict[str, dict] = {}
    for c in checked.criteria:
        for a in _attestations(c.plan):
            item = items.get(a.key)
            if item is not None:
                if c.id not in item["prefix"].split(", "):
                    item["prefix"] += f", {c.id}"
                continue
            sentence = c.sentence or a.statement
            text = sentence if _sole(c.plan) else f"{a.statement} ({c.id}: {sentence})"
            items[a.key] = {"linkId": a.key, "prefix": c.id, "text": text, "type": "boolean"}
    name = "Elig" + re.sub(r"[^A-Za-z0-9]", "", checked.id.title())
    return {
        "resourceType": "Questionnaire",
        "id": re.sub(r"[^A-Za-z0-9\-.]", "-", f"elig-{checked.id}")[:64],
        "url": f"urn:elig:questionnaire:{checked.id}",
        "version": checked.checksum,
        "name": name[:255],
        "title": f"Attestations of {checked.id}" + (f": {checked.title}" if checked.title else ""),
        "status": "active",
        "subjectType": ["Patient"],
        "description": ("What only a person can attest for this protocol's eligibility criteria, one yes/no "
                        "question each. Written by elig; answer it with a QuestionnaireResponse."),
        # FHIR JSON has no empty arrays: a protocol that asks nothing gives a Questionnaire without items
        **({"item": list(items.values())} if items else {}),
    }


def questionnaire_json(checked: p.CheckedProtocol) -> str:
    return json.dumps(questionnaire(checked), ensure_ascii=False, indent=2) + "\n"
