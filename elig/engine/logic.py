"""Logic rules in Kleene's three-valued logic: and/all, or/any, none, not, and unless;
and alternative measurements (``a or b (whichever is recorded)``).

``false and unknown`` is false, ``true or unknown`` is true; nothing is
simplified (``x and not x`` stays unknown when ``x`` is). ``unless`` waives an
inclusion when its exception holds, and clears an exclusion when it holds.
"""

from __future__ import annotations

from operator import attrgetter

from elig.engine import plan as p
from elig.engine.context import Context
from elig.engine.events import nothing_recorded
from elig.engine.memo import Memo
from elig.engine.results import Explanation, Outcome, explanation, kleene_and, kleene_or, new_explanation
from elig.engine.summary import counts_text, logic_summary, outcome_counts

# The members as plain names: reading ``Outcome.MET`` goes through the enum class's __getattr__ hook.
MET, NOT_MET, UNKNOWN = Outcome.MET, Outcome.NOT_MET, Outcome.UNKNOWN


def combine(op: str, outcomes) -> Outcome:
    """The outcome of and/all, or/any, none and not over the children's outcomes."""
    return combiner(op)(outcomes)


def combiner(op: str):
    """The function that combines the children's outcomes for and/all, or/any, none and not; given
    an iterator, each reads only as far as the outcome needs (the compiled evaluator's laziness)."""
    return _COMBINERS[op]


def _none(outcomes) -> Outcome:
    return kleene_or(outcomes).negate()


def _not(outcomes) -> Outcome:
    return next(iter(outcomes)).negate()


_outcome = attrgetter("outcome")
_COMBINERS = {"and": kleene_and, "all": kleene_and, "or": kleene_or, "any": kleene_or, "none": _none, "not": _not}


def unless(section: str, main: Outcome, exception: Outcome) -> Outcome:
    """``main unless exception``: an inclusion is met when either holds; an exclusion needs main and not the exception."""
    if section == "inclusion":
        return kleene_or([main, exception])
    return kleene_and([main, exception.negate()])


def event_concepts(node) -> tuple | None:
    """The concepts of a rule made only of event rules (no test) under and/or/any/all/none/not/
    unless; None for any other rule. Such a rule, on a record with none of them, is explained the
    same way for every patient (``events.nothing_recorded``)."""
    if isinstance(node, p.EventPlan):
        return (node.concept,) if node.concept.kind != "test" else None
    if isinstance(node, p.LogicPlan) and node.op != "whichever":
        found = []
        for child in node.children:
            below = event_concepts(child)
            if below is None:
                return None
            found.extend(c for c in below if c not in found)
        return tuple(found)
    return None


def logic(ctx: Context, node: p.LogicPlan) -> Explanation:
    memo = ctx.memo
    concepts = memo.of_node(node)
    if concepts is None:
        concepts = memo.for_node(node, event_concepts(node) or ())
    quiet = None
    if concepts:
        idx = ctx._index or ctx.index()
        for c in concepts:
            if not nothing_recorded(idx, c):
                break
        else:
            # None of its events is recorded: the explanation is the one every such patient gets.
            quiet = ("quiet", id(node), ctx.section)
            found = memo.recall(quiet, (node,))
            if found is not None:
                return found
    explanation = _logic(ctx, node)
    if quiet is not None:
        memo.keep(quiet, (node,), explanation)
    return explanation


def _logic(ctx: Context, node: p.LogicPlan) -> Explanation:
    text = node.text
    if node.op == "unless":
        main = ctx.rule(node.children[0])
        exception = ctx.rule(node.children[1])
        outcome = unless(ctx.section, main.outcome, exception.outcome)
        if exception.outcome is MET:
            summary = f"waived: {exception.summary}"
        elif exception.outcome is NOT_MET:
            summary = f"{main.summary}; the exception does not apply ({exception.summary})"
        else:
            summary = f"{main.summary}; exception undetermined: {exception.summary}"
        return new_explanation("unless", text, outcome, summary, (), None, None, None, (), (), None, (main, exception))
    children = tuple(map(ctx.rule, node.children))
    if node.op == "whichever":
        return whichever(ctx, node, children)
    memo = ctx.memo
    key = None
    shared = memo.shared
    for c in children:
        if shared.get(id(c)) is not c:
            break
    else:
        # Children that are the same for every patient who has them make the same parent.
        key = ("logic", id(node), *[id(c) for c in children])
        found = memo.recall(key, (node, *children))
        if found is not None:
            return found
    op = node.op
    outcome = _COMBINERS[op](map(_outcome, children))  # ``combine``
    if op == "not":
        summary = logic_summary(op, children, outcome)
    else:
        # The summary depends only on how many children came out each way: made once per distinct count.
        met, not_met, unknown = outcome_counts(children)
        counted = ("logic", op, met, not_met, unknown, outcome)
        summary = memo.texts.get(counted)
        if summary is None:
            summary = Memo.put(memo.texts, counted, counts_text(op, met, not_met, unknown, outcome))
    explanation = new_explanation(op, text, outcome, summary, (), None, None, None, (), (), None, children)
    if key is not None:
        memo.keep(key, (node, *children), explanation)
    return explanation


def recorded(ctx: Context, node) -> bool:
    """Whether a measurement alternative has any record in its window (usable or not)."""
    from elig.records.dates import within

    subject = getattr(node, "subject", None)
    concepts = []
    if isinstance(subject, p.MeasureRef):
        concepts = [subject.concept]
    elif isinstance(subject, p.RatioRef):
        concepts = [subject.numerator.concept, subject.denominator.concept]
    elif isinstance(subject, p.DerivedRef):
        concepts = [ctx.vocabulary.lookup(i.concept) for i in subject.derivation.inputs]
    if not concepts or (isinstance(subject, p.MeasureRef) and subject.concept.kind == "demographic"):
        return True  # age and the like: never "not recorded" in this sense
    window = node.window
    opens = ctx.window_opens(window) if window else None

    def present(concept) -> bool:
        # An entry that cannot be placed in time, or that may be of the concept (no readable concept
        # or code; a display naming it), may be recorded in the window: garbage never makes an
        # alternative "not recorded" and hands the decision to another (docs/semantics.md).
        maybe = ctx.observations(concept.name) + ctx.unmatched(concept.name) + ctx.unreadable("observation")
        for obs in maybe:
            if obs.date is None:
                return True
            if obs.date.earliest() > ctx.as_of:
                continue
            if opens is None or within(obs.date, opens, ctx.as_of) is not False:
                return True
        return False

    return all(present(c) for c in concepts)


def whichever(ctx: Context, node: p.LogicPlan, children) -> Explanation:
    """Alternative measurements of one thing: decided by those recorded in their windows (Kleene 'or'
    over them); unknown only when none is recorded. A recorded value that cannot be used stays
    unknown, so it may still decide."""
    present = [c for c, plan in zip(children, node.children) if recorded(ctx, plan)]
    if not present:
        reason = "none of the alternatives is recorded: " + "; ".join(c.reason or c.summary for c in children)
        missing = tuple(m for c in children for m in c.missing[:1])
        return explanation(kind="whichever", rule=node.text, outcome=UNKNOWN, summary=f"unknown: {reason}",
                           reason=reason, missing=(" or ".join(missing),) if missing else (), children=children)
    outcome = kleene_or([c.outcome for c in present])
    deciding = next((c for c in present if c.outcome is outcome), present[0])
    absent = [c.rule for c in children if c not in present]
    skipped = f"; not recorded, so not needed: {', '.join(absent)}" if absent else ""
    summary = f"decided by {deciding.rule.split(' within ')[0]}: {deciding.summary}{skipped}"
    return explanation(kind="whichever", rule=node.text, outcome=outcome, summary=summary,
                       reason=deciding.reason if outcome is UNKNOWN else None, children=children)
