"""Logic rules in Kleene's three-valued logic: and/all, or/any, none, not, and unless.

``false and unknown`` is false, ``true or unknown`` is true; nothing is
simplified (``x and not x`` stays unknown when ``x`` is). ``unless`` waives an
inclusion when its exception holds, and clears an exclusion when it holds.
"""

from __future__ import annotations

from elig.engine import plan as p
from elig.engine.context import Context
from elig.engine.results import Explanation, Outcome, kleene_and, kleene_or
from elig.engine.summary import logic_summary


def combine(op: str, outcomes) -> Outcome:
    """The outcome of and/all, or/any, none and not over the children's outcomes."""
    if op in ("and", "all"):
        return kleene_and(outcomes)
    if op in ("or", "any"):
        return kleene_or(outcomes)
    if op == "none":
        return kleene_or(outcomes).negate()
    return outcomes[0].negate()  # not


def unless(section: str, main: Outcome, exception: Outcome) -> Outcome:
    """``main unless exception``: an inclusion is met when either holds; an exclusion needs main and not the exception."""
    if section == "inclusion":
        return kleene_or([main, exception])
    return kleene_and([main, exception.negate()])


def logic(ctx: Context, node: p.LogicPlan) -> Explanation:
    text = node.text
    if node.op == "unless":
        main = ctx.rule(node.children[0])
        exception = ctx.rule(node.children[1])
        outcome = unless(ctx.section, main.outcome, exception.outcome)
        if exception.outcome is Outcome.MET:
            summary = f"waived: {exception.summary}"
        elif exception.outcome is Outcome.NOT_MET:
            summary = f"{main.summary}; the exception does not apply ({exception.summary})"
        else:
            summary = f"{main.summary}; exception undetermined: {exception.summary}"
        return Explanation(kind="unless", rule=text, outcome=outcome, summary=summary, children=(main, exception))
    children = tuple(ctx.rule(c) for c in node.children)
    outcome = combine(node.op, [c.outcome for c in children])
    return Explanation(kind=node.op, rule=text, outcome=outcome, summary=logic_summary(node.op, children, outcome),
                       children=children)
