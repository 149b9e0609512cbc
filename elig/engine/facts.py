"""Fact rules (sex, pregnancy, lactation: fields of the patient record) and attestations
(a person's answer, unknown until recorded)."""

from __future__ import annotations

from elig.engine import plan as p
from elig.engine.context import Context
from elig.engine.results import Explanation, Outcome, ValueUsed
from elig.engine.summary import date_text


def fact(ctx: Context, node: p.FactPlan) -> Explanation:
    text = node.text
    patient = ctx.patient
    sex = patient.sex
    if node.sex is not None:
        if sex is None:
            return Explanation(kind="fact", rule=text, outcome=Outcome.UNKNOWN, summary="unknown: sex not recorded",
                               reason="sex not recorded", missing=("sex",))
        return Explanation(kind="fact", rule=text, outcome=Outcome.of(sex == node.sex), summary=f"sex: {sex}")
    name = node.concept.field or node.concept.name
    value = getattr(patient, name, None)
    if value is None and sex is not None and sex == node.concept.not_for_sex:
        return Explanation(kind="fact", rule=text, outcome=Outcome.NOT_MET,
                           summary=f"not {name}: the patient is {sex}")
    if value is None:
        return Explanation(kind="fact", rule=text, outcome=Outcome.UNKNOWN, summary=f"unknown: {name} not recorded",
                           reason=f"{name} not recorded", missing=(f"{name} (yes/no)",))
    return Explanation(kind="fact", rule=text, outcome=Outcome.of(bool(value)),
                       summary=f"{name}: {'yes' if value else 'no'} (patient record)")


def attestation(ctx: Context, node: p.AttestationPlan) -> Explanation:
    text = node.text
    found = next((a for a in ctx.patient.attestations if a.key == node.key), None)
    if found is None or found.value is None:
        return Explanation(kind="attestation", rule=text, outcome=Outcome.UNKNOWN,
                           summary=f"awaiting attestation: {node.statement}", reason="not attested yet",
                           missing=(f"attestation: {node.statement}",))
    by = f" by {found.by}" if found.by else ""
    on = f" on {found.date}" if found.date else ""
    return Explanation(kind="attestation", rule=text, outcome=Outcome.of(found.value),
                       summary=f"attested {'yes' if found.value else 'no'}{by}{on}: {node.statement}",
                       values=(ValueUsed(concept=node.statement, value=None, unit=None, source=str(found.source),
                                         text="yes" if found.value else "no", date=date_text(found.date)),))
