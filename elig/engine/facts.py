"""Fact rules (sex, pregnancy, lactation), defined concepts (childbearing potential) and
attestations (a person's answer, unknown until recorded).

A fact is read, in this order, from the record's own field (``pregnant: true`` in the
native format), from the sex it cannot hold for (a man is not pregnant), and from the
evidence its concept names in the vocabulary: status observations and tests within
``evidence_days`` (the newest decides), quantitative results against their cut-offs, and
conditions while active. Evidence that disagrees (an active pregnancy diagnosis and a
negative test since) is unknown, with both shown. ``pregnant (if of childbearing
potential)`` asks only whom the definition names: without evidence, a woman the reading
does not count as of childbearing potential is "not pregnant", and the report shows the
reading used.
"""

from __future__ import annotations

import datetime as dt

import attrs

from elig.engine import plan as p
from elig.engine.context import Context, Picked
from elig.engine.events import NOT_RECORDED, active_at
from elig.engine.measure import read_value
from elig.engine.results import Explanation, Outcome, ValueUsed, explanation, value_used
from elig.engine.summary import date_text
from elig.records.dates import within
from elig.terminology.units import format_number as fmt, with_unit

# The members as plain names: reading ``Outcome.MET`` goes through the enum class's __getattr__ hook.
MET, NOT_MET, UNKNOWN = Outcome.MET, Outcome.NOT_MET, Outcome.UNKNOWN
outcome_of = Outcome.of


@attrs.frozen
class _Evidence:
    value: bool | None  # what it says: yes, no, or nothing usable (equivocal, unknown answer)
    used: ValueUsed
    observed: bool  # an observation (the newest decides) rather than a condition (counts while active)
    when: tuple = ()  # sort key, newest first
    undated: bool = False  # an observation without a readable date: it may be the newest

    @property
    def may_say_yes(self) -> bool:
        """Whether it could make the fact true: anything but a 'no' (what the 'not asked' reading needs)."""
        return self.value is not False


def fact(ctx: Context, node: p.FactPlan) -> Explanation:
    text = node.text
    patient = ctx.patient
    if node.sex is not None:
        answer = is_sex(patient, node.sex)
        if answer is None:
            return explanation(kind="fact", rule=text, outcome=UNKNOWN, summary="unknown: sex not recorded",
                               reason="sex not recorded", missing=("sex",))
        return explanation(kind="fact", rule=text, outcome=outcome_of(answer), summary=f"sex: {patient.sex}")
    concept = node.concept
    name = concept.field or concept.name
    answer, case = on_record(patient, concept)
    if case == "field":
        return explanation(kind="fact", rule=text, outcome=outcome_of(answer),
                           summary=f"{name}: {'yes' if answer else 'no'} (patient record)")
    if case == "sex":
        return explanation(kind="fact", rule=text, outcome=NOT_MET,
                           summary=f"not {name}: the patient is {patient.sex}")
    found = evidence(ctx, concept)
    values = tuple(e.used for e in found)
    decided, why = decide(found)
    if decided is not None:
        return explanation(kind="fact", rule=text, outcome=outcome_of(decided), values=values,
                           summary=f"{name}: {'yes' if decided else 'no'} ({why})")
    searched = _searched(ctx, concept)
    # The reading of who is asked, shown (as a child) only when it is what decides or leaves it open.
    reading = ctx.rule(node.only_if) if node.only_if is not None else None
    children = (reading,) if reading is not None else ()
    stated = name in patient.unstated_facts
    if stated:
        why = why or f"the record gives {name} but not as yes or no"
    if reading is not None and not_asked(reading.outcome, found, stated):
        return explanation(kind="fact", rule=text, outcome=NOT_MET, values=values, children=children,
                           summary=f"not asked: the patient is not of {node.only_if.name} by the "
                                   f"{node.only_if.source} reading '{node.only_if.definition}', and the "
                                   f"record says nothing of {name}",
                           searched=searched)
    reason = why or f"{name} not recorded"
    missing = (f"{name} (yes/no)" + (f": {_wanted(concept)}" if concept.evidence else ""),)
    return explanation(kind="fact", rule=text, outcome=UNKNOWN, summary=f"unknown: {reason}", reason=reason,
                       missing=missing, values=values, children=children, searched=searched)


# ---------------------------------------------------------------- the decisions (both evaluators)
def is_sex(patient, sex: str) -> bool | None:
    """Whether the patient is of ``sex``; None when the record does not say."""
    recorded = patient.sex
    return None if recorded is None else recorded == sex


def on_record(patient, concept) -> tuple[bool | None, str]:
    """What the record's own fields say of a fact: its field (case "field"), else the sex the fact
    cannot hold for ("sex"); (None, "evidence") when they say nothing and the evidence decides."""
    value = getattr(patient, concept.field, None) if concept.field else None
    if value is not None:
        return bool(value), "field"
    sex = patient.sex
    if sex is not None and sex == concept.not_for_sex:
        return False, "sex"
    return None, "evidence"


def evidence_sources(vocabulary, concept) -> tuple[tuple[str, object], ...]:
    """(index kind, concept) of each piece of evidence a fact's concept names, in its order: tests
    and measurements are observations; conditions are conditions; other kinds are not evidence."""
    out = []
    for ev_name in concept.evidence:
        ev = vocabulary.lookup(ev_name)
        if ev.kind in ("test", "measurement"):
            out.append(("observation", ev))
        elif ev.kind == "condition":
            out.append(("condition", ev))
    return tuple(out)


def not_asked(reading: Outcome, found: list, stated: bool) -> bool:
    """Whether a fact asked only of whom a definition names (``only_if``) is "no" for want of evidence:
    the reading does not count the patient in, nothing found could say yes or be the newest, and
    the record does not give the fact in a form that cannot be read."""
    return reading is NOT_MET and not stated and not any(e.may_say_yes or not e.undated for e in found)


def _wanted(concept) -> str:
    days = f" within {concept.evidence_days} days" if concept.evidence_days else ""
    return " or ".join(concept.evidence[:2]) + days


def _searched(ctx: Context, concept) -> tuple[str, ...]:
    out = []
    for ev in concept.evidence:
        c = ctx.vocabulary.lookup(ev)
        out.extend(str(s) for s in c.codes)
    return tuple(out)


def evidence(ctx: Context, concept) -> list[_Evidence]:
    """What the record says of a fact: each status, test, result and condition its concept names."""
    out: list[_Evidence] = []
    as_of = ctx.as_of
    opens = ctx.opens(concept.evidence_days, "day") if concept.evidence_days else dt.date.min
    idx = ctx.index()
    for kind, ev in evidence_sources(ctx.vocabulary, concept):
        if kind == "observation":
            for obs in idx["observation"].get(ev.name, []):
                undated = obs.date is None  # no readable date: it may be the newest, so it is not passed over
                if not undated and (obs.date.earliest() > as_of or within(obs.date, opens, as_of) is not True):
                    continue  # future or outside the window: not evidence of now
                if ev.kind == "test":
                    value = {"positive": True, "negative": False}.get(obs.result or "")
                    said = obs.result or obs.value_text or "no readable result"
                    used = value_used(concept=ev.name, value=None, unit=None, date=date_text(obs.date),
                                     source=str(obs.source), text=said)
                else:
                    picked = read_value(ctx, ev, ev.name, obs, ev.name)
                    if not isinstance(picked, Picked):
                        # the citation names the concept and the date already: keep only why
                        why = picked.reason
                        for lead in (f"{ev.name} on {obs.date}: ", f"{ev.name} on {obs.date} "):
                            why = why.removeprefix(lead)
                        value, used = None, attrs.evolve(picked.values[0], text=why) if picked.values \
                            else value_used(concept=ev.name, value=obs.value, unit=obs.unit, source=str(obs.source))
                    else:
                        v = picked.value
                        value = (True if ev.positive_at is not None and v >= ev.positive_at else
                                 False if ev.negative_below is not None and v < ev.negative_below else None)
                        verdict = {True: f"positive (≥ {with_unit(fmt(ev.positive_at), ev.unit)})",
                                   False: f"negative (< {with_unit(fmt(ev.negative_below), ev.unit)})",
                                   None: "equivocal"}[value]
                        used = attrs.evolve(picked.used, text=f"{with_unit(fmt(v), ev.unit)}: {verdict}")
                out.append(_Evidence(value, used, True, obs.date.sort_key() if obs.date else (), undated))
        else:
            for r in idx["condition"].get(ev.name, []):
                if (r.verification_status or "") in NOT_RECORDED:
                    continue
                active, why = active_at(r, as_of)
                if active is False or (r.onset is not None and r.onset.earliest() > as_of):
                    continue
                value = active
                if active and concept.evidence_condition_days and r.onset is not None:
                    began = within(r.onset, ctx.opens(concept.evidence_condition_days, "day"), as_of)
                    if began is not True:
                        value, why = None, (f"open since {r.onset}, more than {concept.evidence_condition_days} "
                                            f"days ago: it may have ended")
                codes = ", ".join(str(c) for c in r.codes) or (r.concept or "")
                used = value_used(concept=ev.name, value=None, unit=None, date=date_text(r.onset),
                                 source=str(r.source), text=f"{why} ({codes})")
                out.append(_Evidence(value, used, False, r.onset.sort_key() if r.onset else ()))
    return out


def decide(found: list[_Evidence]) -> tuple[bool | None, str]:
    """Yes or no from the evidence, or None with why; disagreement is never resolved by guessing.
    An observation without a readable date never decides (it may be old), but it may be the
    newest: when it says anything else than the decision, the fact is unknown."""
    undated = [e for e in found if e.undated]
    decided, why = _decide([e for e in found if not e.undated])
    against = [e for e in undated if e.value is not decided]
    if against:
        may = "; ".join(_cite(e) for e in against)
        return None, (f"{why}; " if why else "") + f"a result without a readable date may be the newest: {may}"
    return decided, why


def _decide(found: list[_Evidence]) -> tuple[bool | None, str]:
    if not found:
        return None, ""
    observed = sorted((e for e in found if e.observed), key=lambda e: e.when, reverse=True)
    conditions = [e for e in found if not e.observed]
    said: list[_Evidence] = []
    if observed:
        newest = [e for e in observed if e.when == observed[0].when]
        values = {e.value for e in newest}
        if len(values) > 1:
            return None, "conflicting results at the same time: " + "; ".join(_cite(e) for e in newest)
        said.append(newest[0])
    said.extend(e for e in conditions if e.value is not None or not said)
    values = {e.value for e in said}
    if values == {True} or values == {False}:
        return values.pop(), "; ".join(_cite(e) for e in said)
    if True in values and False in values:
        return None, "the record disagrees with itself: " + "; ".join(_cite(e) for e in said)
    return None, "; ".join(_cite(e) for e in said)


def _cite(e: _Evidence) -> str:
    return f"{e.used.concept} {e.used.text} on {e.used.date or 'an unknown date'}, {e.used.source}"


def definition(ctx: Context, node: p.DefinitionPlan) -> Explanation:
    """A defined concept: its rule's outcome, with the reading (protocol's or the vocabulary default) shown."""
    child = ctx.rule(node.plan)
    verdict = {MET: "yes", NOT_MET: "no", UNKNOWN: "unknown"}[child.outcome]
    return explanation(kind="definition", rule=node.text, outcome=child.outcome,
                       summary=f"{node.name}: {verdict}, by the {node.source} reading",
                       reason=child.reason, children=(child,))


def attestation(ctx: Context, node: p.AttestationPlan) -> Explanation:
    """An attested answer, citing its source; two sources that disagree leave it unknown, both shown."""
    text = node.text
    answers = ctx.answers(node.key)
    if not answers:
        key = ("awaiting", id(node))
        found = ctx.memo.recall(key, (node,))
        if found is None:
            found = ctx.memo.keep(key, (node,), explanation(
                kind="attestation", rule=text, outcome=UNKNOWN, summary=f"awaiting attestation: {node.statement}",
                reason="not attested yet", missing=(f"attestation: {node.statement}",)))
        return found
    protocol_id = ctx.checked.id.lower()
    # The explanation reads nothing of the patient but these answers: the same answers (a
    # questionnaire's, say) give the same explanation, built once.
    key = ("attested", id(node), protocol_id,
           tuple([(a.value, a.by, a.date, a.study, a.source.file, a.source.record) for a in answers]))
    found = ctx.memo.recall(key, (node,))
    if found is None:
        found = ctx.memo.keep(key, (node,), _attested(node, protocol_id, answers))
    return found


def _attested(node: p.AttestationPlan, protocol_id: str, answers: list) -> Explanation:
    text = node.text
    answer = attested(answers, protocol_id)
    other_study = [a for a in answers if not counts(a, protocol_id)]
    answers = [a for a in answers if a not in other_study]
    values = tuple(value_used(concept=node.statement, value=None, unit=None, source=str(a.source),
                             text=("yes" if a.value else "no") + (f" by {a.by}" if a.by else ""),
                             date=date_text(a.date)) for a in answers)
    ignored = tuple(value_used(concept=node.statement, value=None, unit=None, source=str(a.source),
                              text=f"not counted: given for another study ({a.study})", date=date_text(a.date))
                    for a in other_study)
    if not answers:
        return explanation(kind="attestation", rule=text, outcome=UNKNOWN, values=ignored,
                           summary=f"awaiting attestation: {node.statement}", reason="not attested yet",
                           missing=(f"attestation: {node.statement}",))
    if answer is None:
        reason = (f"conflicting answers: " +
                  "; ".join(f"{'yes' if a.value else 'no'} ({a.source})" for a in answers))
        return explanation(kind="attestation", rule=text, outcome=UNKNOWN, values=values + ignored,
                           summary=f"unknown: {reason}: {node.statement}", reason=reason,
                           missing=(f"attestation: {node.statement} (one answer; the sources disagree)",))
    found = answers[0]
    by = f" by {found.by}" if found.by else ""
    on = f" on {found.date}" if found.date else ""
    also = f" (also {len(answers) - 1} more source{'s' if len(answers) > 2 else ''})" if len(answers) > 1 else ""
    return explanation(kind="attestation", rule=text, outcome=outcome_of(answer), values=values + ignored,
                       summary=f"attested {'yes' if answer else 'no'}{by}{on}: {node.statement}{also}")


def attested(answers: list, protocol_id: str) -> bool | None:
    """The answer the attestations (``Context.answers``) give for this protocol: yes or no; None when
    none counts for it (``counts``) or those that count disagree."""
    if not answers:
        return None
    given = {a.value for a in answers if counts(a, protocol_id)}
    return given.pop() if len(given) == 1 else None


def counts(answer, protocol_id: str) -> bool:
    """Whether an attested answer counts for the protocol (lower-case id): it names no study, or this one."""
    return not answer.study or protocol_id in answer.study.lower()
