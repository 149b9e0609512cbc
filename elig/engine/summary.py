"""Summary text: the phrases an explanation shows a person (logic counts, limits, distances, dates)."""

from __future__ import annotations

import math

from elig.engine import plan as p
from elig.engine.bounds import REL_TOL
from elig.engine.results import Outcome, ValueUsed, value_used
from elig.language.canonical import SYMBOLS
from elig.records.dates import PartialDate
from elig.terminology.units import format_beside, format_number as fmt, with_unit
from elig.terminology.vocabulary import Concept

MET, NOT_MET, UNKNOWN = Outcome.MET, Outcome.NOT_MET, Outcome.UNKNOWN
LOGIC_NAMES = {"and": "all required", "all": "all of", "or": "one suffices", "any": "any of", "none": "none of",
               "not": "not"}


def logic_summary(op: str, children, outcome: Outcome) -> str:
    if op == "not":
        return f"not: {children[0].summary}"
    return counts_text(op, *outcome_counts(children), outcome)


def outcome_counts(children) -> tuple[int, int, int]:
    """How many children are met, not met and unknown: all a logic rule's summary depends on."""
    met = not_met = unknown = 0
    for c in children:
        o = c.outcome
        if o is MET:
            met += 1
        elif o is NOT_MET:
            not_met += 1
        elif o is UNKNOWN:
            unknown += 1
    return met, not_met, unknown


def counts_text(op: str, met: int, not_met: int, unknown: int, outcome: Outcome) -> str:
    """``logic_summary``'s text from the counts of the children's outcomes."""
    parts = ", ".join([f"{n} {o.value}" for o, n in ((MET, met), (NOT_MET, not_met), (UNKNOWN, unknown)) if n])
    return f"{LOGIC_NAMES[op]}: {parts} → {outcome.value}"


def limit_text(bound: p.Bound, limit: float, unit: str) -> str:
    if bound.uln_factor is not None or bound.lln_factor is not None:
        return f"{bound.text} = {with_unit(fmt(limit), unit)}"
    return f"{bound.text}"


def distance(value: float, op: str, limit: float, unit: str) -> str:
    """How far a value is from the threshold it does not meet."""
    gap = abs(value - limit)
    needs = f"{with_unit(format_beside(value, limit), unit)}; needs {SYMBOLS[op]} {with_unit(fmt(limit), unit)}"
    if math.isclose(value, limit, rel_tol=REL_TOL, abs_tol=1e-12):
        # A strict comparator at its own threshold: no distance to give, only the direction.
        return f"{needs} (it equals the threshold and must be {'above' if op in ('>', '>=') else 'below'} it)"
    return f"{needs} ({with_unit(fmt(gap), unit)} away)"


def meets(outcome: Outcome) -> str:
    return "meets" if outcome is MET else "does not meet"


def date_text(d: PartialDate | None) -> str | None:
    return str(d) if d is not None else None


def record_value(concept: Concept, r, start: PartialDate | None, why: str) -> ValueUsed:
    """A record entry (condition, procedure, medication) as a value used, with its codes or name."""
    codes = ", ".join(str(c) for c in r.codes)
    extra = f" (coded {codes})" if codes else (f" (recorded as '{r.concept}')" if r.concept else "")
    return value_used(concept=concept.name, value=None, unit=None, date=date_text(start), source=str(r.source),
                     text=f"{why}{extra}")
