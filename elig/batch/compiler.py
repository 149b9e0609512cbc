"""Compile a checked protocol into one SQL query over the flat tables (``elig.batch.tables``).

The checked plan (``elig.engine.plan``) is the single source of meaning and the
interpreter (``elig.engine.evaluator``) is the reference: the query decides every
patient and criterion as the interpreter does. Outcomes are SQL booleans with NULL
for unknown, so ``AND``, ``OR`` and ``NOT`` are Kleene's; an aggregate "any record
matches" is written out (true wins, then unknown, then false). A plan construct the
compiler cannot express raises ``CompileError`` naming the criterion: it is never
evaluated differently.

What the query does, as the interpreter does it:

* entries are matched to vocabulary concepts through small tables built from the
  protocol's vocabulary and the distinct codes and names in the data (``concept_maps``);
* values are converted to the concept's canonical unit by a table of factors
  (``unit_factors``); a value without a unit, of a unit that does not convert, or
  outside the concept's plausible range is unusable;
* the newest value (newest date, then time, then record order) is taken with
  ``arg_max_null`` over one key that orders the records so, never with ``arg_max`` (which
  would silently fall back to an older row when the newest is unusable); a stale or
  unusable newest value, or two results at the same instant that disagree, is unknown.
  Only the rare patients with several results at the newest instant have those results
  ranked with a window (``slot_ctes``), so the query sorts almost nothing;
* ``x ULN`` takes the upper limit from the same row's reference range, else the
  vocabulary's default for the patient's sex; sex branches choose by sex;
* derived values (Cockcroft-Gault and the rest of the catalogue), ratios of paired
  measurements (P/F, within 1 hour or the same day) and daily rates between the two
  newest results are computed in SQL with the same operations in the same order, so the
  floats are the same; boundaries are exact within a relative 1e-9.

The SQL is written in DuckDB's dialect; ``elig.batch.runners`` translates it for Spark.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Callable

import attrs

from elig.diagnostics import EligError
from elig.engine import plan as p
from elig.records.dates import window_start
from elig.terminology.units import UnitResolver
from elig.terminology.vocabulary import Concept, Vocabulary

PAIRING_SECONDS = 3600
ENTRY_TABLES = {"observation": "observations", "condition": "conditions", "procedure": "procedures",
                "medication": "medications"}


class CompileError(EligError):
    """A construct of the protocol that the SQL compiler cannot express."""

    def __init__(self, criterion: str, construct: str):
        self.criterion = criterion
        self.construct = construct
        super().__init__(f"criterion {criterion}: {construct} cannot be compiled to SQL; "
                         f"screen this protocol with --engine python (the interpreter)")


# ---------------------------------------------------------------- SQL helpers
def lit(x: float | int) -> str:
    """A float literal that every engine reads as the same DOUBLE (never a DECIMAL)."""
    if isinstance(x, bool):
        return "TRUE" if x else "FALSE"
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"no SQL literal for {x}")
    text = repr(x)
    return text if "e" in text else text + "e0"


def text_lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def date_lit(d: dt.date) -> str:
    return f"DATE '{d.isoformat()}'"


def close(a: str, b: str, abs_tol: bool = True) -> str:
    """math.isclose(a, b, rel_tol=1e-9[, abs_tol=1e-12]) in SQL: |a - b| <= max(1e-9 |a|, 1e-9 |b|[, 1e-12])."""
    try:
        # A constant b (a literal of ``lit``): its share of the tolerance is computed here, with the same
        # double arithmetic, so the query does not compute it for every patient.
        fixed = 1e-9 * abs(float(b))
        bounds = f"{lit(max(fixed, 1e-12) if abs_tol else fixed)}, 1e-9 * abs({a})"
    except ValueError:
        bounds = f"1e-9 * abs({b}), 1e-9 * abs({a})" + (", 1e-12" if abs_tol else "")
    return f"(({a}) = ({b}) OR abs(({a}) - ({b})) <= greatest({bounds}))"


def compare(a: str, op: str, b: str) -> str:
    """The interpreter's ``compare``: exact boundaries, NULL when either side is unknown."""
    eq = close(a, b)
    return {">=": f"({eq} OR ({a}) > ({b}))", "<=": f"({eq} OR ({a}) < ({b}))",
            ">": f"(NOT {eq} AND ({a}) > ({b}))", "<": f"(NOT {eq} AND ({a}) < ({b}))",
            "==": eq, "!=": f"(NOT {eq})"}[op]


def within(lo: str, hi: str, start: str, end: str) -> str:
    """``within(date, start, end)``: TRUE, FALSE, or NULL when the unknown part of the date decides."""
    return (f"(CASE WHEN {lo} >= {start} AND {hi} <= {end} THEN TRUE "
            f"WHEN {hi} < {start} OR {lo} > {end} THEN FALSE ELSE NULL END)")


def any_record(x: str, where: str) -> str:
    """Kleene OR over the records selected by ``where``, as a code: 2 when one is TRUE, else 1 when
    one is unknown, else 0; NULL when no record is selected. ``x`` is written (and computed) once."""
    # CASE rather than FILTER: the record's outcome is computed only on the rows ``where`` selects.
    return f"max(CASE WHEN {where} THEN (CASE {x} WHEN TRUE THEN 2 WHEN FALSE THEN 0 ELSE 1 END) END)"


# ---------------------------------------------------------------- derived values in SQL
def _cg(age: str, weight: str, scr: str, female: str) -> str:
    return f"((140 - {age}) * {weight} / (72 * {scr}) * (CASE WHEN {female} THEN 0.85e0 ELSE 1.0e0 END))"


def _ibw(height: str, female: str) -> str:
    return f"((CASE WHEN {female} THEN 45.5e0 ELSE 50.0e0 END) + 2.3e0 * ({height} / 2.54e0 - 60))"


def _ckd_epi(v, age, female):
    kappa = f"(CASE WHEN {female} THEN 0.7e0 ELSE 0.9e0 END)"
    alpha = f"(CASE WHEN {female} THEN -0.241e0 ELSE -0.302e0 END)"
    ratio = f"({v['scr']} / {kappa})"
    return (f"(142 * pow(least({ratio}, 1.0e0), {alpha}) * pow(greatest({ratio}, 1.0e0), -1.2e0) "
            f"* pow(0.9938e0, {age}) * (CASE WHEN {female} THEN 1.012e0 ELSE 1.0e0 END))")


def _alveolar(v, age, female):
    alveolar = f"({v['fio2']} * ({v['patm']} - {v['ph2o']}) - {v['paco2']} / {v['rq']})"
    return f"({alveolar} - {v['pao2']})"


DERIVED_SQL: dict[str, Callable[[dict, str, str], str]] = {
    "cockcroft-gault": lambda v, age, female: _cg(age, v["weight"], v["scr"], female),
    "cockcroft-gault-ideal": lambda v, age, female: _cg(age, _ibw(v["height"], female), v["scr"], female),
    "cockcroft-gault-adjusted": lambda v, age, female: _cg(
        age, f"({_ibw(v['height'], female)} + 0.4e0 * ({v['weight']} - {_ibw(v['height'], female)}))",
        v["scr"], female),
    "ckd-epi-2021": _ckd_epi,
    "pf-ratio": lambda v, age, female: f"({v['pao2']} / {v['fio2']})",
    "alveolar-gas-equation": _alveolar,
    "bmi": lambda v, age, female: f"({v['weight']} / pow({v['height']} / 100, 2))",
    "mosteller": lambda v, age, female: f"sqrt({v['height']} * {v['weight']} / 3600)",
    "dubois": lambda v, age, female: f"(0.007184e0 * pow({v['weight']}, 0.425e0) * pow({v['height']}, 0.725e0))",
    "bazett": lambda v, age, female: f"({v['qt']} / sqrt({v['rr']} / 1000))",
    "fridericia": lambda v, age, female: f"({v['qt']} / pow({v['rr']} / 1000, {lit(1 / 3)}))",
    "bazett-hr": lambda v, age, female: f"({v['qt']} / sqrt(60.0e0 / {v['hr']}))",
    "fridericia-hr": lambda v, age, female: f"({v['qt']} / pow(60.0e0 / {v['hr']}, {lit(1 / 3)}))",
}


# ---------------------------------------------------------------- the compiled query
@attrs.frozen
class Compiled:
    """One protocol at one evaluation date as SQL, with what the query needs beside the tables."""

    sql: str
    criteria: tuple[tuple[str, str], ...]  # (id, section), in protocol order; column c{i} is criterion i
    as_of: dt.date
    concepts: dict  # table kind -> names of the concepts the query matches entries against
    measured: tuple[Concept, ...]  # concepts whose values are read (unit factors and plausible ranges)
    steps: tuple[tuple[str, str], ...] = ()  # the query's named steps (its CTEs) in order, and ...
    final: str = ""  # ... its last SELECT: an engine may materialise the steps one by one (Spark does)
    # Per observation concept: (the first day any step reads its records from, whether it has a newest value
    # to find, the first day that search reads from); None: every record. concept_maps puts them in the table.
    first_days: dict = attrs.field(factory=dict)


@attrs.frozen
class _Slot:
    concept: Concept
    start: dt.date | None  # None: no look-back window


class _Compiler:
    def __init__(self, checked: p.CheckedProtocol, as_of: dt.date):
        self.checked = checked
        self.vocabulary = checked.vocabulary
        self.resolver: UnitResolver = checked.resolver
        self.as_of = as_of
        self.AS_OF = date_lit(as_of)
        self.criterion = ""
        self.section = "inclusion"
        self.slots: list[_Slot] = []
        self.rates: list[tuple[Concept, dt.date]] = []
        self.pairs: list[tuple[tuple[Concept, ...], dt.date | None]] = []
        self.events: dict[str, list[tuple[str, str]]] = {k: [] for k in ("condition", "procedure", "medication")}
        self.tests: list[tuple[str, str]] = []  # (concept, per-record verdict/inclusion) on observations
        self.attested: list[str] = []
        self.facts: list[tuple[Concept, dict]] = []  # facts decided by evidence in the record
        self.presence: list[tuple[Concept, dt.date | None]] = []  # "is it recorded" (whichever)
        self.unread: set[str] = set()  # entry kinds whose unreadable entries the query needs
        self.concepts: dict[str, set[str]] = {k: set() for k in ENTRY_TABLES}
        self.measured: dict[str, Concept] = {}
        self.derived_values: list[str] = []  # derived values in SQL, columns dv0, dv1, ... of the step bx
        # Per observation concept, the first day each reader of its records needs (None: all of them).
        self.reads: dict[str, list[dt.date | None]] = {}

    def read_from(self, concept: Concept, start: dt.date | None) -> None:
        self.reads.setdefault(concept.name, []).append(start)

    # ------------------------------------------------------------ entry points
    def run(self) -> Compiled:
        exprs = []
        for c in self.checked.criteria:
            self.criterion, self.section = c.id, c.section
            exprs.append(self.rule(c.plan))
        sql = self.query(exprs)
        return Compiled(sql=sql, criteria=tuple((c.id, c.section) for c in self.checked.criteria),
                        as_of=self.as_of, concepts={k: tuple(sorted(v)) for k, v in self.concepts.items()},
                        measured=tuple(self.measured[k] for k in sorted(self.measured)), steps=tuple(self.steps),
                        final=self.final, first_days=self.first_days())

    def fail(self, construct: str):
        raise CompileError(self.criterion, construct)

    # ------------------------------------------------------------ rules
    def rule(self, node) -> str:
        if isinstance(node, p.LogicPlan):
            return self.logic(node)
        if isinstance(node, p.ComparisonPlan):
            return self.comparison(node)
        if isinstance(node, p.EventPlan):
            return self.event(node)
        if isinstance(node, p.FactPlan):
            return self.fact(node)
        if isinstance(node, p.AttestationPlan):
            return self.attestation(node)
        if isinstance(node, p.RatePlan):
            return self.rate(node)
        if isinstance(node, getattr(p, "DefinitionPlan", ())):
            return self.rule(node.plan)
        self.fail(f"a rule of kind {type(node).__name__}")

    def logic(self, node: p.LogicPlan) -> str:
        kids = [self.rule(c) for c in node.children]
        if node.op == "unless":
            main, exception = kids
            if self.section == "inclusion":
                return f"(({main}) OR ({exception}))"
            return f"(({main}) AND NOT ({exception}))"
        if node.op in ("and", "all"):
            return "(" + " AND ".join(f"({k})" for k in kids) + ")"
        if node.op in ("or", "any"):
            return "(" + " OR ".join(f"({k})" for k in kids) + ")"
        if node.op == "none":
            return "(NOT (" + " OR ".join(f"({k})" for k in kids) + "))"
        if node.op == "not":
            return f"(NOT ({kids[0]}))"
        if node.op == "whichever":
            recorded = [self.recorded(c) for c in node.children]
            any_recorded = " OR ".join(f"({r})" for r in recorded)
            decided = " OR ".join(f"(CASE WHEN {r} THEN ({k}) ELSE FALSE END)" for r, k in zip(recorded, kids))
            return f"(CASE WHEN NOT ({any_recorded}) THEN NULL ELSE ({decided}) END)"
        self.fail(f"the logical operator '{node.op}'")

    def recorded(self, node) -> str:
        """Whether an alternative measurement has any record in its window, usable or not (never NULL)."""
        subject = getattr(node, "subject", None)
        if isinstance(subject, p.MeasureRef):
            concepts = [subject.concept]
        elif isinstance(subject, p.RatioRef):
            concepts = [subject.numerator.concept, subject.denominator.concept]
        elif isinstance(subject, p.DerivedRef):
            concepts = [self.vocabulary.lookup(i.concept) for i in subject.derivation.inputs]
        else:
            concepts = []
        if not concepts or (isinstance(subject, p.MeasureRef) and subject.concept.kind == "demographic"):
            return "TRUE"
        out = []
        for concept in concepts:
            self.measure(concept)
            key = (concept, self.start(node.window))
            self.read_from(concept, key[1])
            if key not in self.presence:
                self.presence.append(key)
            out.append(f"coalesce(b.rec{self.presence.index(key)}, FALSE)")
        return "(" + " AND ".join(out) + ")"

    # ------------------------------------------------------------ values
    def start(self, window: p.Duration | None) -> dt.date | None:
        return window_start(self.as_of, window.amount, window.unit) if window is not None else None

    def measure(self, concept: Concept) -> None:
        self.concepts["observation"].add(concept.name)
        self.measured[concept.name] = concept

    def slot(self, concept: Concept, window: p.Duration | None) -> int:
        """The newest usable value of a concept in a window: column v{i} (NULL: unknown), r{i} its ULN."""
        self.measure(concept)
        s = _Slot(concept, self.start(window))
        self.read_from(concept, s.start)
        if s not in self.slots:
            self.slots.append(s)
        return self.slots.index(s)

    def paired(self, concepts: tuple[Concept, ...], window: p.Duration | None) -> int:
        for c in concepts:
            self.measure(c)
            self.read_from(c, None)  # partners and the records passed over may be older than the window
        key = (concepts, self.start(window))
        if key not in self.pairs:
            self.pairs.append(key)
        return self.pairs.index(key)

    def subject(self, subject, window) -> tuple[str, str | None]:
        """(SQL value in canonical units or NULL, SQL of the newest row's ULN from its reference range)."""
        if isinstance(subject, p.MeasureRef):
            concept = subject.concept
            if concept.kind == "demographic":
                if concept.name == "age":
                    return "CAST(b.age AS DOUBLE)", None
                return "CAST(NULL AS DOUBLE)", None
            i = self.slot(concept, window)
            return f"b.v{i}", f"b.r{i}"
        if isinstance(subject, p.RatioRef):
            j = self.paired((subject.numerator.concept, subject.denominator.concept), window)
            num, den = f"b.p{j}_0", f"b.p{j}_1"
            return f"(CASE WHEN {den} = 0 THEN NULL ELSE {num} / {den} END)", None
        if isinstance(subject, p.DerivedRef):
            return self.derived(subject, window), None
        self.fail(f"a value of kind {type(subject).__name__}")

    def derived(self, subject: p.DerivedRef, window) -> str:
        d = subject.derivation
        formula = DERIVED_SQL.get(d.key)
        if formula is None:
            self.fail(f"the derivation '{d.title}'")
        concepts = {i.key: self.vocabulary.lookup(i.concept) for i in d.inputs}
        if d.paired:
            j = self.paired(tuple(concepts[i.key] for i in d.inputs), window)
            raw = {i.key: f"b.p{j}_{n}" for n, i in enumerate(d.inputs)}
        else:
            raw = {i.key: f"b.v{self.slot(concepts[i.key], window)}" for i in d.inputs}
        values = {}
        for inp in d.inputs:
            concept = concepts[inp.key]
            factor = self.resolver.factor(concept.unit, inp.unit, concept.molar_mass)
            values[inp.key] = f"({raw[inp.key]} * {lit(factor if isinstance(factor, float) else 1.0)})"
        params = {prm.key: prm.default for prm in d.params}
        params.update(dict(subject.params))
        values.update({k: lit(v) for k, v in params.items()})
        known = [f"{v} IS NOT NULL" for v in raw.values()]
        if d.needs_age:
            known.append("b.age IS NOT NULL")
        if d.needs_sex:
            known.append("b.sex IS NOT NULL")
        value = formula(values, "b.age", "b.sex = 'female'")
        factor = self.resolver.factor(d.unit, subject.concept.unit or d.unit)
        if isinstance(factor, float):
            value = f"({value} * {lit(factor)})"
        # Computed once per patient (the step ``bx``), however many comparisons read it.
        value = f"(CASE WHEN {' AND '.join(known)} THEN {value} END)"
        if value not in self.derived_values:
            self.derived_values.append(value)
        return f"b.dv{self.derived_values.index(value)}"

    def uln(self, subject, bound: p.Bound, ref: str | None, sex: str | None) -> str:
        """The limit of ``bound``: a constant, or ``factor x ULN`` (reference range of the row, else default)."""
        if bound.uln_factor is None:
            return lit(bound.value)
        concept = subject.concept
        default = "CAST(NULL AS DOUBLE)"
        if concept.uln is not None:
            def const(s):
                v = concept.uln.for_sex(s)
                if v is None:
                    return "CAST(NULL AS DOUBLE)"
                f = self.resolver.factor(concept.uln.unit, concept.unit or "1", concept.molar_mass)
                return lit(v * (f if isinstance(f, float) else 1.0))
            if sex is not None:
                default = const(sex)
            elif const("male") == const("female") == const(None):  # one default whatever the sex
                default = const(None)
            else:
                default = (f"(CASE WHEN b.sex = 'male' THEN {const('male')} WHEN b.sex = 'female' THEN "
                           f"{const('female')} ELSE {const(None)} END)")
        return f"({lit(bound.uln_factor)} * coalesce({ref or 'CAST(NULL AS DOUBLE)'}, {default}))"

    def comparison(self, node: p.ComparisonPlan) -> str:
        value, ref = self.subject(node.subject, node.window)
        test = node.test
        if isinstance(test, p.CompareTest):
            out = compare(value, test.op, self.uln(node.subject, test.bound, ref, None))
        elif isinstance(test, p.RangeTest):
            lo = self.uln(node.subject, test.low, ref, None)
            hi = self.uln(node.subject, test.high, ref, None)
            out = (f"({compare(value, '>=' if test.low_inclusive else '>', lo)} AND "
                   f"{compare(value, '<=' if test.high_inclusive else '<', hi)})")
            # A range with an unknown bound is unknown, even where the other bound fails.
            out = f"(CASE WHEN ({lo}) IS NULL OR ({hi}) IS NULL THEN NULL ELSE {out} END)"
        elif isinstance(test, p.SexTest):
            outcomes = {sex: compare(value, t.op, self.uln(node.subject, t.bound, ref, sex))
                        for sex, t in test.branches}
            when = " ".join(f"WHEN b.sex = {text_lit(sex)} THEN {o}" for sex, o in outcomes.items())
            os = list(outcomes.values())
            same = " AND ".join(f"({o}) IS NOT NULL" for o in os) + "".join(
                f" AND ({o}) = ({os[0]})" for o in os[1:])
            out = f"(CASE {when} WHEN {same} THEN {os[0]} ELSE NULL END)"
        else:
            self.fail(f"a test of kind {type(test).__name__}")
        return f"(CASE WHEN {value} IS NULL THEN NULL ELSE {out} END)"

    def rate(self, node: p.RatePlan) -> str:
        self.measure(node.concept)
        self.read_from(node.concept, None)
        key = (node.concept, self.start(node.window))
        if key not in self.rates:
            self.rates.append(key)
        j = self.rates.index(key)
        per_day = f"((b.q{j}_v1 - b.q{j}_v2) / b.q{j}_days)"
        return f"(CASE WHEN b.q{j}_days IS NULL OR b.q{j}_days = 0 THEN NULL ELSE {compare(per_day, node.op, lit(node.bound.value))} END)"

    # ------------------------------------------------------------ events
    def event(self, node: p.EventPlan) -> str:
        concept = node.concept
        if concept.kind == "test":
            return self.test_event(node)
        if concept.kind not in self.events:
            self.fail(f"an event on a {concept.kind}")
        self.concepts[concept.kind].add(concept.name)
        kinds = [concept.kind]
        if concept.kind == "procedure":
            # Status codes of past procedures are recorded as conditions (elig.engine.events.event).
            self.concepts["condition"].add(concept.name)
            kinds.append("condition")
        record = self.record_matches(node, kinds)
        record = f"(({record}) AND (CASE WHEN r.site_applies THEN r.site_ok ELSE TRUE END))"
        where = f"r.target = {text_lit(concept.name)}"
        aggregate = (any_record(record, where), where)
        if aggregate not in self.events[concept.kind]:  # the same event in several criteria: one aggregate
            self.events[concept.kind].append(aggregate)
        i = self.events[concept.kind].index(aggregate)
        # No match, but an entry with neither concept nor code may be one: unknown (events._doubt).
        unread = " OR ".join(f"coalesce(b.unread_{k}, FALSE)" for k in kinds)
        self.unread.update(kinds)
        return (f"(CASE coalesce(e_{concept.kind}.x{i}, 0) WHEN 2 THEN TRUE WHEN 1 THEN NULL "
                f"ELSE (CASE WHEN {unread} THEN NULL ELSE FALSE END) END)")

    @staticmethod
    def by_kind(kinds: list[str], make) -> str:
        if len(kinds) == 1:
            return make(kinds[0])
        whens = " ".join(f"WHEN r.rk = {text_lit(k)} THEN {make(k)}" for k in kinds[1:])
        return f"(CASE {whens} ELSE {make(kinds[0])} END)"

    def record_matches(self, node: p.EventPlan, kinds: list[str]) -> str:
        A = self.AS_OF
        checks = []
        if node.prefix in ("active", "taking"):
            checks.append(self.by_kind(kinds, lambda k: self.active_at(k, A)))
        if node.grade is not None:
            lo, hi, _ = node.grade
            checks.append(f"(CASE WHEN r.grade IS NULL THEN NULL ELSE r.grade BETWEEN {lo} AND {hi} END)")
        if node.timing_kind is not None and node.duration is not None:
            checks.append(self.by_kind(kinds, lambda k: self.timing(node, k)))
        body = " AND ".join(f"({c})" for c in checks) if checks else "TRUE"
        # A date given but unreadable decides nothing (elig.engine.events.judge_of).
        bad = "r.bad_start" + (" OR r.bad_any" if node.prefix in ("active", "taking") or node.timing_kind else "")
        return (f"(CASE WHEN r.s_lo > {A} THEN FALSE WHEN r.s_hi > {A} THEN NULL WHEN {bad} THEN NULL "
                f"ELSE ({body}) END)")

    def active_at(self, kind: str, at: str) -> str:
        from elig.engine import events as ev

        status = "lower(coalesce(r.status, ''))"
        known = {"condition": getattr(ev, "ACTIVE_CONDITION", ()) + ev.INACTIVE_CONDITION,
                 "medication": ev.STOPPED_MEDICATION + getattr(ev, "GOING_MEDICATION", ()),
                 "procedure": getattr(ev, "PROCEDURE_STATUS", ())}[kind]
        unknown = ""
        if known:
            # A status elig cannot read may be 'resolved': whether the entry is current is unknown.
            unknown = (f"WHEN {status} <> '' AND NOT {status} IN ({', '.join(text_lit(k) for k in known)}) "
                       f"THEN NULL ")
        if kind == "condition":
            other = f"(NOT {status} IN ('inactive', 'remission', 'resolved'))"
        elif kind == "medication":
            other = f"(NOT {status} IN ('completed', 'stopped', 'cancelled', 'not-taken'))"
        else:
            other = (f"(CASE WHEN {status} = 'completed' AND r.s_lo IS NOT NULL THEN "
                     f"(CASE WHEN r.s_hi < {at} THEN FALSE WHEN r.s_lo >= {at} THEN TRUE ELSE NULL END) ELSE TRUE END)")
        return (f"(CASE WHEN r.e_lo IS NOT NULL THEN (CASE WHEN r.e_hi < {at} THEN FALSE WHEN r.e_lo >= {at} "
                f"THEN TRUE ELSE NULL END) {unknown}ELSE {other} END)")

    def timing(self, node: p.EventPlan, kind: str) -> str:
        A = self.AS_OF
        opens = date_lit(self.start(node.duration))
        if node.timing_kind == "onset_within":
            return f"(CASE WHEN r.s_lo IS NULL THEN NULL ELSE {within('r.s_lo', 'r.s_hi', opens, A)} END)"
        if node.timing_kind == "lasting":
            op = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=", "!=": "<>"}.get(node.timing_op)
            if op is None:
                self.fail(f"the duration comparator '{node.timing_op}'")
            a, b = f"(r.s_lo {op} {opens})", f"(r.s_hi {op} {opens})"
            return f"(CASE WHEN r.s_lo IS NULL THEN NULL WHEN {a} = {b} THEN {a} ELSE NULL END)"
        if node.timing_kind != "within":
            self.fail(f"the timing '{node.timing_kind}'")
        began = within("r.s_lo", "r.s_hi", opens, A)
        if node.concept.acute:
            rest = began
        else:
            ended = (f"(CASE WHEN r.e_hi < {opens} THEN FALSE WHEN {within('r.e_lo', 'r.e_hi', opens, A)} "
                     f"OR r.e_lo > {A} THEN TRUE ELSE NULL END)")
            if kind == "procedure":
                no_end = f"(CASE WHEN r.s_hi < {opens} THEN FALSE ELSE NULL END)"
            else:
                no_end = self.active_at(kind, opens)
            rest = f"(CASE WHEN r.e_lo IS NOT NULL THEN {ended} ELSE {no_end} END)"
        return (f"(CASE WHEN r.s_lo IS NULL THEN NULL WHEN r.s_lo > {A} THEN FALSE "
                f"WHEN {began} THEN TRUE ELSE {rest} END)")

    def test_event(self, node: p.EventPlan) -> str:
        concept = node.concept
        self.concepts["observation"].add(concept.name)
        self.read_from(concept, self.start(node.duration) if node.duration else None)
        start = date_lit(self.start(node.duration)) if node.duration else "DATE '0001-01-01'"
        inside = within("o.d_lo", "o.d_hi", start, self.AS_OF)
        included = f"(o.d_lo IS NULL OR {inside} IS NOT FALSE)"
        verdict = (f"(CASE WHEN o.d_lo IS NULL THEN NULL WHEN {inside} THEN "
                   f"(CASE o.result WHEN 'positive' THEN TRUE WHEN 'negative' THEN FALSE ELSE NULL END) ELSE NULL END)")
        where = f"o.concept = {text_lit(concept.name)} AND {included}"
        i = len(self.tests)
        self.tests.append((verdict, where))
        # No result in the window: unknown (a test result is open-world).
        return f"t.x{i}"

    # ------------------------------------------------------------ facts and attestations
    def fact(self, node: p.FactPlan) -> str:
        if node.sex is not None:
            return f"(CASE WHEN b.sex IS NULL THEN NULL ELSE b.sex = {text_lit(node.sex)} END)"
        concept = node.concept
        field = concept.field
        if field is not None and field not in ("pregnant", "lactating"):
            self.fail(f"the patient fact '{field}'")
        reading = self.rule(node.only_if) if getattr(node, "only_if", None) is not None else None
        steps = []
        if field is not None:
            steps.append(f"WHEN b.{field} IS NOT NULL THEN b.{field}")
        if concept.not_for_sex:
            steps.append(f"WHEN b.sex = {text_lit(concept.not_for_sex)} THEN FALSE")
        found = "FALSE"
        if concept.evidence:
            i = self.evidence(concept)
            steps.append(f"WHEN f.d{i} IS NOT NULL THEN f.d{i}")
            found = f"coalesce(f.found{i}, FALSE)"
        if reading is not None:
            stated = f"coalesce(list_contains(b.unstated, {text_lit(field)}), FALSE)" if field else "FALSE"
            steps.append(f"WHEN ({reading}) = FALSE AND NOT {found} AND NOT {stated} THEN FALSE")
        return f"(CASE {' '.join(steps)} ELSE NULL END)" if steps else "CAST(NULL AS BOOLEAN)"

    def evidence(self, concept: Concept) -> int:
        """A fact read from the record's evidence (elig.engine.facts.evidence and decide)."""
        for i, (c, _) in enumerate(self.facts):
            if c.name == concept.name:
                return i
        parts = {"obs": [], "cond": []}
        for name in concept.evidence:
            ev = self.vocabulary.lookup(name)
            if ev is None:
                self.fail(f"the evidence '{name}' of '{concept.name}'")
            if ev.kind in ("test", "measurement"):
                self.read_from(ev, window_start(self.as_of, concept.evidence_days, "day")
                               if concept.evidence_days else None)
                if ev.kind == "measurement":
                    self.measure(ev)
                else:
                    self.concepts["observation"].add(ev.name)
                parts["obs"].append(ev)
            elif ev.kind == "condition":
                self.concepts["condition"].add(ev.name)
                parts["cond"].append(ev)
            else:
                self.fail(f"the evidence '{name}' (a {ev.kind}) of '{concept.name}'")
        self.facts.append((concept, parts))
        return len(self.facts) - 1

    def attestation(self, node: p.AttestationPlan) -> str:
        """Recorded answers (a consent to another study not counted); answers that disagree: unknown."""
        if node.key not in self.attested:
            self.attested.append(node.key)
        mask, weight = _answer_bits(self.attested.index(node.key))
        # Two bits per attestation: only yes (TRUE), only no (FALSE), both or no answer (unknown).
        return f"(CASE a.m{mask} & {3 * weight} WHEN {weight} THEN TRUE WHEN {2 * weight} THEN FALSE END)"

    # ------------------------------------------------------------ the query
    def query(self, exprs: list[str]) -> str:
        A = self.AS_OF
        ctes = []
        joins = []
        cols = ["p.pk", "p.patient_id", "p.source", "p.line", "p.sex", "p.pregnant", "p.lactating", "p.unstated", "p.issues", _age_sql(self.as_of)]
        if self.slots or self.rates or self.pairs or self.tests or self.presence or self.facts:
            uln = "o.ref_high * rf.ref_factor"
            finite = "abs({x}) <= 1.7976931348623157e308"
            # The reference range's upper limit, unless it cannot serve as one (elig.engine.bounds.uln_problem).
            uln_ok = (f"{finite.format(x=uln)} AND {uln} > 0 AND (o.ref_low IS NULL OR NOT "
                      f"{finite.format(x='o.ref_low')} OR NOT (o.ref_low * rf.ref_factor > {uln})) AND "
                      f"(m.u_lo IS NULL OR ({uln} >= m.u_lo AND {uln} <= m.u_hi))")
            ctes.append(f"""obs_all AS (
  SELECT o.pk, o.seq, m.target AS concept, m.cid, m.unmatched, o.d_lo, o.d_hi, coalesce(o.d_sec, 0) AS sec, o.d_sec,
         o.d_key, o.result,
         (o.value IS NOT NULL OR o.problem IS NOT NULL OR o.result IS NULL) AS valued,
         o.value * f.factor AS cval,
         (o.problem IS NULL AND o.value IS NOT NULL AND f.factor IS NOT NULL
          AND (m.p_lo IS NULL OR (o.value * f.factor >= m.p_lo AND o.value * f.factor <= m.p_hi))) AS ok,
         CASE WHEN {uln_ok} THEN {uln} END AS uln_ref,
         (m.slot AND (o.d_lo IS NULL OR m.slot_since IS NULL OR o.d_hi >= m.slot_since)) AS in_slot
  FROM observations o
  JOIN concepts_observation m ON m.mkey = o.mkey
  LEFT JOIN unit_factors f ON f.cid = m.cid AND f.unit = coalesce(o.unit, m.unitless_unit)
  LEFT JOIN unit_factors rf ON rf.cid = m.cid AND rf.unit = coalesce(o.ref_unit, o.unit, m.unit)
  WHERE {self.recent_enough()}
)""")
            ctes.append("obs AS (SELECT * FROM obs_all WHERE NOT unmatched)")
        if self.slots:
            ctes += self.slot_ctes()
            for i, s in enumerate(self.slots):
                cols += [f"mv.v{i}", f"mv.r{i}"]
            joins.append("LEFT JOIN mv ON mv.pk = p.pk")
        if self.rates or self.pairs:
            names = sorted({c.name for c, _ in self.rates} | {c.name for cs, _ in self.pairs for c in cs})
            ctes.append(f"""dated AS (
  SELECT *, row_number() OVER (PARTITION BY pk, concept ORDER BY d_hi DESC, sec DESC, seq) AS rn
  FROM obs WHERE concept IN ({', '.join(text_lit(n) for n in names)}) AND d_lo IS NOT NULL
)""")
        for j, (concept, start) in enumerate(self.rates):
            c = text_lit(concept.name)
            ctes.append(f"""rate{j} AS (
  SELECT pk, max(cval) FILTER (WHERE k = 1) AS v1, max(cval) FILTER (WHERE k = 2) AS v2,
         max(d_lo) FILTER (WHERE k = 1) AS lo1, max(d_lo) FILTER (WHERE k = 2) AS lo2,
         max(d_hi) FILTER (WHERE k = 1) AS hi1, max(d_hi) FILTER (WHERE k = 2) AS hi2,
         max(d_sec) FILTER (WHERE k = 1) AS sec1, max(d_sec) FILTER (WHERE k = 2) AS sec2, count(*) AS n,
         -- an unreadable result before the second usable one: the two newest are not known
         bool_or(bad IS NOT NULL AND bad < rn) FILTER (WHERE k = 2) OR bool_or(bad IS NOT NULL AND k = 1 AND n_ok < 2)
           AS unreadable
  FROM (SELECT *, row_number() OVER (PARTITION BY pk ORDER BY rn) AS k, count(*) OVER (PARTITION BY pk) AS n_ok
        FROM (SELECT *, min(CASE WHEN NOT (d_lo >= {date_lit(start)} AND d_hi <= {A}) THEN rn END)
                          OVER (PARTITION BY pk) AS brk
              FROM dated WHERE concept = {c} AND d_lo <= {A}) x
        LEFT JOIN (SELECT pk AS bpk, min(rn) AS bad FROM (
                     SELECT pk, rn, ok, min(CASE WHEN NOT (d_lo >= {date_lit(start)} AND d_hi <= {A}) THEN rn END)
                            OVER (PARTITION BY pk) AS brk2
                     FROM dated WHERE concept = {c} AND d_lo <= {A}) z
                   WHERE NOT ok AND (brk2 IS NULL OR rn < brk2) GROUP BY pk) b ON b.bpk = x.pk
        WHERE ok AND (brk IS NULL OR rn < brk)) y
  WHERE k <= 2 GROUP BY pk
)""")
            ctes.append(f"""rate{j}_u AS (SELECT DISTINCT pk FROM obs WHERE concept = {c} AND d_lo IS NULL)""")
            days = (f"(CASE WHEN rate{j}.n < 2 OR rate{j}.unreadable OR rate{j}_u.pk IS NOT NULL THEN NULL "
                    f"WHEN rate{j}.sec1 IS NOT NULL AND rate{j}.sec2 IS NOT NULL THEN "
                    f"(date_diff('day', rate{j}.lo2, rate{j}.lo1) * 86400 + (rate{j}.sec1 - rate{j}.sec2)) / 86400.0e0 "
                    f"WHEN rate{j}.lo1 = rate{j}.hi1 AND rate{j}.lo2 = rate{j}.hi2 THEN "
                    f"CAST(date_diff('day', rate{j}.lo2, rate{j}.lo1) AS DOUBLE) ELSE NULL END)")
            cols += [f"rate{j}.v1 AS q{j}_v1", f"rate{j}.v2 AS q{j}_v2", f"{days} AS q{j}_days"]
            joins.append(f"LEFT JOIN rate{j} ON rate{j}.pk = p.pk LEFT JOIN rate{j}_u ON rate{j}_u.pk = p.pk")
        for j, (concepts, start) in enumerate(self.pairs):
            ctes += self.pair_ctes(j, concepts, start)
            cols += [f"pair{j}.v{n} AS p{j}_{n}" for n in range(len(concepts))]
            joins.append(f"LEFT JOIN pair{j} ON pair{j}.pk = p.pk")
        if self.presence:
            aggs = []
            # Entries that may be of the concept (a display naming it, no concept nor code) or that cannot
            # be placed in time count as recorded (elig.engine.logic.recorded).
            ur = []
            for i, (concept, start) in enumerate(self.presence):
                inside = f" AND {within('d_lo', 'd_hi', date_lit(start), A)} IS NOT FALSE" if start else ""
                here = f"(d_lo IS NULL OR (d_lo <= {A}{inside}))"
                aggs.append(f"bool_or({here}) FILTER (WHERE concept = {text_lit(concept.name)}) AS rec{i}")
                ur.append(f"bool_or({here}) AS rec{i}")
            ctes.append("present_m AS (\n  SELECT pk, " + ",\n         ".join(aggs) + "\n  FROM obs_all GROUP BY pk\n)")
            ctes.append("present_u AS (\n  SELECT pk, " + ", ".join(ur) +
                        "\n  FROM observations WHERE unread GROUP BY pk\n)")
            cols += [f"(coalesce(present_m.rec{i}, FALSE) OR coalesce(present_u.rec{i}, FALSE)) AS rec{i}"
                     for i in range(len(self.presence))]
            joins.append("LEFT JOIN present_m ON present_m.pk = p.pk LEFT JOIN present_u ON present_u.pk = p.pk")
        if self.facts:
            ctes += self.fact_ctes()
        if self.unread:
            # The patients with an entry that names nothing elig can read, per kind: one step, one join.
            kinds = sorted(self.unread)
            parts = " UNION ALL ".join(f"SELECT pk, {i} AS kind FROM {ENTRY_TABLES[k]} WHERE unread"
                                       for i, k in enumerate(kinds))
            aggs = ", ".join(f"bool_or(kind = {i}) AS unread_{k}" for i, k in enumerate(kinds))
            ctes.append(f"unread AS (SELECT pk, {aggs} FROM ({parts}) u GROUP BY pk)")
            cols += [f"coalesce(unread.unread_{k}, FALSE) AS unread_{k}" for k in kinds]
            joins.append("LEFT JOIN unread ON unread.pk = p.pk")
        for kind, events in self.events.items():
            if not events:
                continue
            aggs = ",\n         ".join(f"{agg} AS x{i}" for i, (agg, _) in enumerate(events))
            parts = [f"SELECT r.pk, '{kind}' AS rk, m.target, m.site_applies, m.site_ok, r.s_lo, r.s_hi, r.e_lo, "
                     f"r.e_hi, r.status, {'r.grade' if kind == 'condition' else 'CAST(NULL AS INTEGER)'} AS grade, "
                     f"r.bad_start, r.bad_any "
                     f"FROM {ENTRY_TABLES[kind]} r JOIN concepts_{kind} m ON m.mkey = r.mkey"
                     + (" WHERE coalesce(r.verification, '') NOT IN ('refuted', 'entered-in-error')"
                        if kind == "condition" else "")]
            if kind == "procedure":
                names = ", ".join(text_lit(n) for n in sorted(self.concepts["procedure"]))
                parts.append("SELECT r.pk, 'condition' AS rk, m.target, m.site_applies, m.site_ok, r.s_lo, r.s_hi, "
                             "r.e_lo, r.e_hi, r.status, r.grade, r.bad_start, r.bad_any FROM conditions r "
                             "JOIN concepts_condition m "
                             "ON m.mkey = r.mkey WHERE coalesce(r.verification, '') NOT IN ('refuted', "
                             f"'entered-in-error') AND m.target IN ({names})")
            ctes.append(f"e_{kind} AS (\n  SELECT r.pk, {aggs}\n  FROM ("
                        + " UNION ALL ".join(parts) + ") r\n  GROUP BY r.pk\n)")
        if self.tests:
            aggs = []
            for i, (verdict, where) in enumerate(self.tests):
                # No result in the window: unknown (a test result is open-world).
                aggs.append(f"(CASE {any_record(verdict, where)} WHEN 2 THEN TRUE WHEN 0 THEN FALSE END) AS x{i}")
            ctes.append("tests AS (\n  SELECT o.pk, " + ",\n         ".join(aggs) + "\n  FROM obs o GROUP BY o.pk\n)")
        if self.attested:
            # A consent to another study is not a consent to this one (elig.engine.facts.attestation).
            mine = f"(study IS NULL OR contains(lower(study), {text_lit(self.checked.id.lower())}))"
            # Each answer's key is read once, as the bit of its attestation (a yes) or the bit beside it (a no):
            # one bitwise OR per patient says, for every attestation at once, whether it has a yes and a no.
            masks: dict[int, list[str]] = {}
            for i, k in enumerate(self.attested):
                mask, weight = _answer_bits(i)
                masks.setdefault(mask, []).append(f"WHEN {text_lit(k)} THEN CAST({weight} AS BIGINT)")
            bits = ", ".join(f"(CASE key {' '.join(whens)} END) * (CASE WHEN value THEN 1 ELSE 2 END) AS b{j}"
                             for j, whens in masks.items())
            aggs = ", ".join(f"bit_or(b{j}) AS m{j}" for j in masks)
            keys = ", ".join(text_lit(k) for k in self.attested)
            ctes.append(f"att AS (\n  SELECT pk, {aggs}\n  FROM (SELECT pk, {bits} FROM attestations "
                        f"WHERE value IS NOT NULL AND {mine} AND key IN ({keys})) x\n  GROUP BY pk\n)")
        # The criteria read the base row b; events, tests and attestations read their own aggregates.
        ctes.append("b AS (\n  SELECT " + ",\n         ".join(cols) + "\n  FROM patients p\n  "
                    + "\n  ".join(joins) + "\n)")
        # Event and test aggregates are joined again by alias in the criteria query.
        crit_joins = []
        for kind, events in self.events.items():
            if events:
                crit_joins.append(f"LEFT JOIN e_{kind} ON e_{kind}.pk = b.pk")
        if self.tests:
            crit_joins.append("LEFT JOIN tests t ON t.pk = b.pk")
        if self.attested:
            crit_joins.append("LEFT JOIN att a ON a.pk = b.pk")
        if self.facts:
            crit_joins.append("LEFT JOIN facts f ON f.pk = b.pk")
        crit = ",\n         ".join(f"{e} AS c{i}" for i, e in enumerate(exprs))
        base = "b"
        if self.derived_values:
            ctes.append("bx AS (\n  SELECT b.*, " + ",\n         ".join(
                f"{v} AS dv{k}" for k, v in enumerate(self.derived_values)) + "\n  FROM b\n)")
            base = "bx b"
        ctes.append(f"crit AS (\n  SELECT b.pk, b.patient_id, b.source, b.line, b.issues,\n         {crit}\n  FROM {base}\n  "
                    + "\n  ".join(crit_joins) + "\n)")
        excluded = " OR ".join(
            (f"coalesce(NOT c{i}, FALSE)" if section == "inclusion" else f"coalesce(c{i}, FALSE)")
            for i, (_, section) in enumerate((c.id, c.section) for c in self.checked.criteria)) or "FALSE"
        decided = " AND ".join(
            (f"coalesce(c{i}, FALSE)" if section == "inclusion" else f"coalesce(NOT c{i}, FALSE)")
            for i, (_, section) in enumerate((c.id, c.section) for c in self.checked.criteria)) or "TRUE"
        columns = ", ".join(f"c{i}" for i in range(len(exprs)))
        sep = ", " if columns else ""
        self.final = (f"SELECT pk, patient_id, source, line, issues, CASE WHEN {excluded} THEN 'ineligible' "
                      f"WHEN {decided} THEN 'eligible' ELSE 'undetermined' END AS verdict{sep}{columns}\nFROM crit\n"
                      f"ORDER BY pk")
        self.steps = []
        for cte in ctes:
            name, _, body = cte.partition(" AS (")
            self.steps.append((name.strip(), body.rstrip()[:-1]))
        return "WITH " + ",\n".join(ctes) + "\n" + self.final

    def cids(self) -> dict[str, int]:
        """The integer id of each observation concept the query reads (``concept_maps`` gives the same)."""
        return {name: i for i, name in enumerate(sorted(self.concepts["observation"]))}

    def first_days(self) -> dict[str, tuple[dt.date | None, bool, dt.date | None]]:
        """Per observation concept: the first day every reader of its records needs (None: all of them),
        whether the newest value is looked for (a slot), and the first day that search needs."""
        out = {}
        for name in self.cids():
            starts = self.reads.get(name)
            since = min(starts) if starts and None not in starts else None
            slots = [sl.start for sl in self.slots if sl.concept.name == name]
            out[name] = (since, bool(slots), min(slots) if slots and None not in slots else None)
        return out

    def recent_enough(self) -> str:
        """Which observations any step reads: a record that ends before the first day every reader
        of its concept needs is not read (each reader asks for a day that the record would not
        reach, or, for the newest value, a record that old cannot be the newest in the window).
        The first day is a column of the concept table (``since``)."""
        out = "(o.d_lo IS NULL OR m.since IS NULL OR o.d_hi >= m.since)"
        days = self.first_days().values()
        if days and all(since is not None for since, _, _ in days):
            # Every concept has a first day: the earliest of them is a test of the record alone, which
            # DuckDB applies as it reads the table, before matching the records to concepts.
            first = min(since for since, _, _ in days)
            out = f"(o.d_lo IS NULL OR o.d_hi >= {date_lit(first)}) AND {out}"
        return out

    def slot_ctes(self) -> list[str]:
        """The newest usable value of each slot (``elig.engine.measure.measurement``): ``mv``, one row per patient.

        The newest record of a concept is found by an aggregate, not by sorting every record:
        ``arg_max_null`` over a key that orders records as the interpreter does (latest day,
        then time of day, then first in the record), so the newest wins even when its value is
        NULL or unusable. Results at the same instant as the newest (twins) are rare; only for
        those patient and concept pairs are the records of that instant ranked with a window,
        as the interpreter walks them, to find a twin that disagrees.

        Records that end before every window of their concept are not read: where the newest
        record is one of them, it is stale (unknown) whether or not they are read.
        """
        A = self.AS_OF
        M = 16777216  # a record's place (seq, below 2^24) packs with its instant into one BIGINT key
        ids = self.cids()
        end_of_day = ((self.as_of - dt.date(1970, 1, 1)).days + 1) * 86400
        main = f"(NOT unmatched AND valued AND d_lo IS NOT NULL AND d_lo <= {A})"
        # Entries that may be newer than the newest and so keep it from deciding (elig.engine.measure.
        # _may_be_newer): a result without a date, or one whose display alone names the concept and
        # that is not known to be older. Their latest day (an undated one: never older) is kept.
        doubt = (f"max(CASE WHEN unmatched OR (valued AND d_lo IS NULL) THEN coalesce(d_hi, DATE '9999-12-31') "
                 f"END) AS doubt_hi")
        out = [f"""slot_rows AS (
  SELECT pk, seq, cid, unmatched, valued, d_lo, d_hi, d_key, cval, ok, uln_ref,
         CASE WHEN {main} THEN date_diff('day', DATE '1970-01-01', d_hi) * 86400 + sec END AS t
  FROM obs_all
  WHERE in_slot  -- a concept with a newest value to find, and recent enough for its windows (concept_maps)
)""", f"""newest AS (
  SELECT pk, cid, max(t) AS t_top, max(t * {M} + seq) AS k_last,
         max(t * {M} + ({M - 1} - seq)) AS k_first, bool_or(t IS NOT NULL AND (seq < 0 OR seq >= {M})) AS far,
         arg_max_null(d_lo, t * {M} + ({M - 1} - seq)) AS lo,
         arg_max_null(CASE WHEN ok THEN cval END, t * {M} + ({M - 1} - seq)) AS v,
         arg_max_null(uln_ref, t * {M} + ({M - 1} - seq)) AS uln_ref, {doubt}
  FROM slot_rows GROUP BY pk, cid
)""",
               # Twins: more than one record at the newest instant (the first and the last of that instant
               # differ), or a record order the key cannot hold. These are walked as the interpreter does.
               f"""ranked AS (
  SELECT r.*, row_number() OVER w AS rn, first_value(r.d_key) OVER w AS n_key,
         first_value(r.cval) OVER w AS n_cval, first_value(r.ok) OVER w AS n_ok
  FROM slot_rows r JOIN newest n ON n.pk = r.pk AND n.cid = r.cid AND r.t = n.t_top
  WHERE n.far OR (n.k_first - n.t_top * {M}) + (n.k_last - n.t_top * {M}) <> {M - 1}
  WINDOW w AS (PARTITION BY r.pk, r.cid ORDER BY r.seq)
)""", f"""exact AS (
  SELECT pk, cid, max(d_lo) FILTER (WHERE rn = 1) AS lo,
         max(CASE WHEN ok THEN cval END) FILTER (WHERE rn = 1) AS v, max(uln_ref) FILTER (WHERE rn = 1) AS uln_ref,
         min(rn) FILTER (WHERE rn > 1 AND d_key <> n_key) AS brk,
         min(rn) FILTER (WHERE rn > 1 AND d_key = n_key AND n_ok
                         AND (NOT ok OR NOT {close('cval', 'n_cval', False)})) AS clash
  FROM ranked GROUP BY pk, cid
)""", f"""unread_obs AS (
  SELECT pk, max(coalesce(d_hi, DATE '9999-12-31')) AS ur_hi FROM observations WHERE unread GROUP BY pk
)""", f"""nv AS (
  SELECT pk, cid, t_top, uln_ref, v,
         CASE WHEN (doubt_hi IS NULL OR doubt_hi < lo) AND (ur_hi IS NULL OR ur_hi < lo) THEN lo END AS dlo
  FROM (SELECT n.pk, n.cid, n.doubt_hi, u.ur_hi, n.t_top, CASE WHEN x.pk IS NULL THEN n.lo ELSE x.lo END AS lo,
               CASE WHEN x.pk IS NULL THEN n.uln_ref ELSE x.uln_ref END AS uln_ref,
               CASE WHEN x.pk IS NULL THEN n.v WHEN x.clash IS NULL OR (x.brk IS NOT NULL AND x.brk < x.clash)
                    THEN x.v END AS v
        FROM newest n LEFT JOIN exact x ON x.pk = n.pk AND x.cid = n.cid LEFT JOIN unread_obs u ON u.pk = n.pk) y
)"""]
        picks = []
        for i, s in enumerate(self.slots):
            # dlo: the newest's day, when no entry that may be newer keeps it from deciding (else NULL);
            # without a dated newest there is no value either.
            usable = "dlo IS NOT NULL"
            if s.start is not None:
                # The newest's last day is on or before the evaluation date: its instant is before the next day.
                usable = f"dlo >= {date_lit(s.start)} AND t_top < {end_of_day}"
            c = ids[s.concept.name]
            picks.append(f"max(CASE WHEN cid = {c} AND {usable} THEN v END) AS v{i}")
            picks.append(f"max(CASE WHEN cid = {c} THEN uln_ref END) AS r{i}")
        out.append("mv AS (\n  SELECT pk, " + ",\n         ".join(picks) + "\n  FROM nv GROUP BY pk\n)")
        return out

    def fact_ctes(self) -> list[str]:
        """Facts from evidence (elig.engine.facts.evidence, decide): the newest observations decide
        (results at the same time that differ: unknown), conditions count while active (and, with
        ``evidence_condition_days``, when they began that recently); evidence that disagrees is unknown."""
        A = self.AS_OF
        obs_parts, cond_parts = [], []
        for i, (concept, parts) in enumerate(self.facts):
            opens = (date_lit(window_start(self.as_of, concept.evidence_days, "day")) if concept.evidence_days
                     else "DATE '0001-01-01'")
            for ev in parts["obs"]:
                if ev.kind == "test":
                    value = "(CASE result WHEN 'positive' THEN TRUE WHEN 'negative' THEN FALSE ELSE NULL END)"
                else:
                    pos = f"WHEN cval >= {lit(ev.positive_at)} THEN TRUE " if ev.positive_at is not None else ""
                    neg = f"WHEN cval < {lit(ev.negative_below)} THEN FALSE " if ev.negative_below is not None else ""
                    value = f"(CASE WHEN NOT ok THEN NULL {pos}{neg}ELSE NULL END)"
                obs_parts.append((self.cids()[ev.name], i, opens, value))
            for n_ev, ev in enumerate(parts["cond"]):
                active = self.active_at("condition", A)
                recent = "TRUE"
                if concept.evidence_condition_days:
                    since = date_lit(window_start(self.as_of, concept.evidence_condition_days, "day"))
                    recent = f"(r.s_lo IS NULL OR (r.s_lo >= {since} AND r.s_hi <= {A}))"
                cond_parts.append(
                    f"SELECT r.pk, {i} AS fact, {n_ev} AS ev, r.s_hi, coalesce(r.s_sec, 0) AS s_sec, r.seq, "
                    f"CASE WHEN ({active}) AND NOT {recent} THEN NULL ELSE ({active}) END AS v "
                    f"FROM conditions r JOIN concepts_condition m ON m.mkey = r.mkey "
                    f"WHERE m.target = {text_lit(ev.name)} AND coalesce(r.verification, '') NOT IN "
                    f"('refuted', 'entered-in-error') AND ({active}) IS NOT FALSE AND NOT coalesce(r.s_lo > {A}, FALSE)")
        code = "(CASE WHEN v THEN 2 WHEN NOT v THEN 0 ELSE 1 END)"
        out = []
        seen = []
        if obs_parts:
            # One pass over the observations: each record of an evidence concept, once per fact and piece
            # of evidence it is (a small table of concept, fact, evidence and first day), with its value.
            rows = ", ".join(f"({cid}, {i}, {j}, {opens})" for j, (cid, i, opens, _) in enumerate(obs_parts))
            value = "CASE x.ev " + " ".join(f"WHEN {j} THEN {v}" for j, (_, _, _, v) in enumerate(obs_parts)) + " END"
            out.append(f"fact_rows AS (\n  SELECT o.pk, x.fact, {value} AS v, o.d_lo, o.d_hi, o.sec, x.opens\n"
                       f"  FROM obs o JOIN (VALUES {rows}) x(cid, fact, ev, opens) ON x.cid = o.cid\n)")
            when = "(date_diff('day', DATE '1970-01-01', d_hi) * 86400 + sec)"
            out.append("fact_obs AS (\n  SELECT pk, fact, min(code) AS lo, max(code) AS hi FROM (\n    SELECT *, "
                       f"{code} AS code, {when} AS t_at, max({when}) OVER (PARTITION BY pk, fact) AS t_top FROM "
                       f"fact_rows WHERE d_lo IS NOT NULL AND d_lo <= {A} AND d_lo >= opens AND d_hi <= {A}) x\n"
                       "  WHERE t_at = t_top\n  GROUP BY pk, fact\n)")
            seen.append("fact_obs")
            # without a readable date: never decides, but may be the newest (elig.engine.facts.decide)
            out.append("fact_undated AS (\n  SELECT pk, fact, min(code) AS lo, max(code) AS hi FROM (\n    SELECT *, "
                       f"{code} AS code FROM fact_rows WHERE d_lo IS NULL) x\n  GROUP BY pk, fact\n)")
            seen.append("fact_undated")
        if cond_parts:
            # Without observations, the first condition (in evidence order, newest first) says it; after it,
            # only conditions that say something (elig.engine.facts.decide).
            out.append("fact_cond AS (\n  SELECT pk, fact, bool_or(k = 1 AND v IS NOT DISTINCT FROM TRUE) AS all_true, "
                       "bool_or(v IS NOT DISTINCT FROM TRUE) AS any_true FROM (\n    SELECT *, row_number() OVER "
                       "(PARTITION BY pk, fact ORDER BY ev, s_hi DESC NULLS LAST, s_sec DESC, seq) AS k FROM ("
                       + " UNION ALL ".join(cond_parts) + ") e) x GROUP BY pk, fact\n)")
            seen.append("fact_cond")
        cols = []
        for i in range(len(self.facts)):
            o_lo = f"max(o.lo) FILTER (WHERE k.fact = {i})" if obs_parts else "NULL"
            o_hi = f"max(o.hi) FILTER (WHERE k.fact = {i})" if obs_parts else "NULL"
            c_all = f"bool_or(c.all_true) FILTER (WHERE k.fact = {i})" if cond_parts else "NULL"
            c_any = f"bool_or(c.any_true) FILTER (WHERE k.fact = {i})" if cond_parts else "NULL"
            decided = (f"CASE WHEN {o_lo} IS NOT NULL THEN (CASE WHEN {o_lo} <> {o_hi} THEN NULL "
                       f"WHEN {o_lo} = 2 THEN TRUE WHEN {o_lo} = 0 AND NOT coalesce({c_any}, FALSE) THEN FALSE "
                       f"ELSE NULL END) WHEN {c_all} IS NOT NULL THEN (CASE WHEN {c_all} THEN TRUE ELSE NULL END) "
                       f"END")
            u_lo = f"max(u.lo) FILTER (WHERE k.fact = {i})" if obs_parts else "NULL"
            u_hi = f"max(u.hi) FILTER (WHERE k.fact = {i})" if obs_parts else "NULL"
            # an undated result that says anything else than the decision leaves the fact unknown
            cols.append(f"CASE WHEN {u_lo} IS NOT NULL AND ({u_lo} <> {u_hi} OR {u_lo} IS DISTINCT FROM "
                        f"(CASE WHEN ({decided}) THEN 2 WHEN NOT ({decided}) THEN 0 END)) THEN NULL "
                        f"ELSE {decided} END AS d{i}")
            cols.append(f"({o_lo} IS NOT NULL OR {c_all} IS NOT NULL OR coalesce({u_hi} >= 1, FALSE)) AS found{i}")
        keys = " UNION ".join(f"SELECT pk, fact FROM {t}" for t in seen)
        joins = ""
        if obs_parts:
            joins += " LEFT JOIN fact_obs o ON o.pk = k.pk AND o.fact = k.fact"
            joins += " LEFT JOIN fact_undated u ON u.pk = k.pk AND u.fact = k.fact"
        if cond_parts:
            joins += " LEFT JOIN fact_cond c ON c.pk = k.pk AND c.fact = k.fact"
        if not seen:
            out.append("facts AS (SELECT pk, " + ", ".join(f"CAST(NULL AS BOOLEAN) AS d{i}, FALSE AS found{i}"
                                                          for i in range(len(self.facts))) + " FROM patients)")
        else:
            out.append(f"facts AS (\n  SELECT k.pk, " + ",\n         ".join(cols) +
                       f"\n  FROM ({keys}) k{joins}\n  GROUP BY k.pk\n)")
        return out

    def pair_ctes(self, j: int, concepts: tuple[Concept, ...], start: dt.date | None) -> list[str]:
        """Measurements taken together: each at the first's time (±1 h, or the same day without times).

        The first concept's records are tried newest first (up to the first outside the window);
        one whose value is unusable, or that has no partner, is passed over; a partner whose
        value is unusable makes the whole value unknown.
        """
        A = self.AS_OF
        first, *others = concepts
        window = f"NOT (d_lo >= {date_lit(start)} AND d_hi <= {A})" if start else "FALSE"
        out = [f"""pair{j}_c AS (
  SELECT * FROM (SELECT *, min(CASE WHEN {window} THEN rn END) OVER (PARTITION BY pk) AS brk
                 FROM dated WHERE concept = {text_lit(first.name)} AND d_lo <= {A}) x
  WHERE brk IS NULL OR rn < brk
)"""]
        status = ["WHEN NOT c.ok THEN 'skip'"]
        selects = ["c.cval AS v0"]
        joins = []
        for n, other in enumerate(others, 1):
            both = "c.d_sec IS NOT NULL AND q.d_sec IS NOT NULL"
            gap = f"abs(date_diff('day', c.d_lo, q.d_lo) * 86400 + (q.d_sec - c.d_sec))"
            qualifies = (f"(({both}) AND {gap} <= {PAIRING_SECONDS}) OR (NOT ({both}) AND c.d_lo = c.d_hi "
                         f"AND q.d_lo = q.d_hi AND q.d_lo = c.d_lo)")
            out.append(f"""pair{j}_m{n} AS (
  SELECT pk, crn, CASE WHEN m_rn = f_rn THEN m_rn ELSE CAST(i_key % 1000000 AS BIGINT) END AS qrn
  FROM (SELECT c.pk, c.rn AS crn, min(q.rn) AS f_rn, min(q.rn) FILTER (WHERE NOT ({both})) AS m_rn,
               min({gap} * 1000000 + q.rn) FILTER (WHERE {both}) AS i_key
        FROM pair{j}_c c JOIN dated q ON q.pk = c.pk AND q.concept = {text_lit(other.name)} AND ({qualifies})
        GROUP BY c.pk, c.rn) x
)""")
            joins.append(f"LEFT JOIN pair{j}_m{n} m{n} ON m{n}.pk = c.pk AND m{n}.crn = c.rn "
                         f"LEFT JOIN dated q{n} ON q{n}.pk = c.pk AND q{n}.concept = {text_lit(other.name)} "
                         f"AND q{n}.rn = m{n}.qrn")
            status.append(f"WHEN m{n}.qrn IS NULL THEN 'skip' WHEN NOT q{n}.ok THEN 'stop'")
            selects.append(f"q{n}.cval AS v{n}")
        out.append(f"""pair{j}_s AS (
  SELECT c.pk, c.rn, CASE {' '.join(status)} ELSE 'done' END AS status, {', '.join(selects)}
  FROM pair{j}_c c {' '.join(joins)}
)""")
        values = ", ".join(f"CASE WHEN status = 'done' AND u.pk IS NULL THEN v{n} END AS v{n}"
                           for n in range(len(concepts)))
        # An undated result of the first measurement may be the newest: no pair can be trusted.
        out.append(f"""pair{j} AS (
  SELECT x.pk, {values}
  FROM (SELECT *, row_number() OVER (PARTITION BY pk ORDER BY rn) AS k FROM pair{j}_s WHERE status <> 'skip') x
  LEFT JOIN (SELECT DISTINCT pk FROM obs WHERE concept = {text_lit(first.name)} AND d_lo IS NULL) u ON u.pk = x.pk
  WHERE x.k = 1
)""")
        return out


ANSWERS_PER_MASK = 31  # two bits each in a BIGINT, below its sign bit


def _answer_bits(i: int) -> tuple[int, int]:
    """Attestation ``i``'s mask (column ``m<mask>`` of the step ``att``) and the weight of its 'yes' bit;
    its 'no' bit is the next one."""
    mask, place = divmod(i, ANSWERS_PER_MASK)
    return mask, 1 << (2 * place)


def _age_sql(as_of: dt.date) -> str:
    def years(b: str) -> str:
        return (f"({as_of.year} - year({b}) - (CASE WHEN month({b}) > {as_of.month} OR (month({b}) = {as_of.month} "
                f"AND day({b}) > {as_of.day}) THEN 1 ELSE 0 END))")
    return f"(CASE WHEN {years('p.birth_hi')} = {years('p.birth_lo')} THEN {years('p.birth_lo')} END) AS age"


def compile_protocol(checked: p.CheckedProtocol, as_of: dt.date) -> Compiled:
    """The protocol as one SQL query (DuckDB dialect) at ``as_of``; raises ``CompileError``."""
    from elig.engine.evaluator import as_date

    return _Compiler(checked, as_date(as_of)).run()


# ---------------------------------------------------------------- the small tables beside the query
def concept_maps(compiled: Compiled, vocabulary: Vocabulary, resolver: UnitResolver,
                 keys: dict[str, list[str]], units: list[str]) -> dict[str, list[dict]]:
    """Rows of the small tables the query joins: entries to concepts, and unit factors.

    ``keys`` holds, per entry kind, the distinct match keys of the data (``tables.match_key``);
    ``units`` the distinct unit strings of observations (values and reference ranges). Each key
    is matched with the interpreter's own functions (``elig.engine.index``): by code (exact or
    prefix), by a procedure's category and body site where the concept lists site codes, and
    for a named entry by name with the broader concepts; an observation whose display alone
    names a concept is kept apart (``unmatched``), as the interpreter keeps it.
    """
    from types import SimpleNamespace

    from elig.batch.tables import entry_of
    from elig.engine.bounds import plausible_uln
    from elig.engine.index import concepts_of, display_only_concept, site_check
    from elig.engine.measure import unit_fits

    out: dict[str, list[dict]] = {}
    site_concepts = tuple(c for c in vocabulary.concepts if c.site_codes)
    for kind in ENTRY_TABLES:
        wanted = set(compiled.concepts.get(kind, ()))
        cids = {name: i for i, name in enumerate(sorted(wanted))}  # the query's integer concept ids
        rows = []
        for mkey in keys.get(kind, []):
            entry = entry_of(kind, mkey)
            found = concepts_of(vocabulary, entry, site_concepts)
            matched = [(c, False) for c in found if c.name in wanted]
            if kind == "observation" and not found and entry.codes:
                named = display_only_concept(vocabulary, entry)
                if named is not None and named[1].name in wanted:
                    matched.append((named[1], True))
            for concept, unmatched in matched:
                site = site_check(concept, entry) if kind in ("condition", "procedure") else None
                row = {"mkey": mkey, "target": concept.name, "unmatched": unmatched,
                       "site_applies": site is not None, "site_ok": site[0] if site is not None else None}
                if kind == "observation":
                    window = plausible_uln(concept, resolver)
                    since, slot, slot_since = compiled.first_days.get(concept.name, (None, False, None))
                    row.update(cid=cids[concept.name], since=since, slot=slot, slot_since=slot_since,
                               unit=concept.unit or "1",
                               unitless_unit=concept.unit if concept.unitless == "canonical" else None,
                               p_lo=concept.plausible[0] if concept.plausible else None,
                               p_hi=concept.plausible[1] if concept.plausible else None,
                               u_lo=window[0] if window else None, u_hi=window[1] if window else None)
                rows.append(row)
        out[f"concepts_{kind}"] = rows
    ctx = SimpleNamespace(resolver=resolver)
    factors = []
    cids = {name: i for i, name in enumerate(sorted(compiled.concepts.get("observation", ())))}
    for concept in compiled.measured:
        target_unit = concept.unit or "1"
        for unit in sorted(set(units) | {target_unit}):
            f = resolver.factor(unit, target_unit, concept.molar_mass)
            ref = f if isinstance(f, float) else None
            if ref is not None and not unit_fits(ctx, concept, unit, ref):
                f = None  # a dimensionless unit of another scale (% on ECOG) is not read
            if getattr(concept, "refused", None) is not None and concept.refused(unit):
                f = None  # a unit the vocabulary refuses for this concept
            factors.append({"unit": unit, "target": concept.name, "cid": cids[concept.name],
                            "factor": f if isinstance(f, float) else None,
                            "ref_factor": ref})
    out["unit_factors"] = factors
    return out


_MAP = (("mkey", "VARCHAR"), ("target", "VARCHAR"), ("unmatched", "BOOLEAN"), ("site_applies", "BOOLEAN"),
        ("site_ok", "BOOLEAN"))
AUX_SCHEMAS = {
    "concepts_observation": _MAP + (("cid", "INTEGER"), ("since", "DATE"), ("slot", "BOOLEAN"), ("slot_since", "DATE"),
                                    ("unit", "VARCHAR"), ("unitless_unit", "VARCHAR"), ("p_lo", "DOUBLE"),
                                    ("p_hi", "DOUBLE"), ("u_lo", "DOUBLE"), ("u_hi", "DOUBLE")),
    "concepts_condition": _MAP,
    "concepts_procedure": _MAP,
    "concepts_medication": _MAP,
    "unit_factors": (("unit", "VARCHAR"), ("target", "VARCHAR"), ("cid", "INTEGER"), ("factor", "DOUBLE"),
                     ("ref_factor", "DOUBLE")),
}
