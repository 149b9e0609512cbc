"""Benchmark of screening: elig against a hand-written Python function, same criteria, same data, same run.

Run from the repository root::

    python bench/bench_screen.py                 # 10,000 patients
    python bench/bench_screen.py --patients 20000 --seed 7

It generates a deterministic population of native patient records for
protocols/NCT06021067.elig (mixed units: creatinine in µmol/L or mg/dL,
platelets in 10^9/L or 10^3/µL, haemoglobin in g/L or g/dL, bilirubin in µmol/L
or mg/dL with reference ranges, weight in kg or lb; some stale or missing
values, some anticoagulated patients, recent myocardial infarctions, missing
attestations), then measures, on one core:

* ``handwritten``: a plain Python function deciding the same 32 criteria on the
  same dicts (unit conversions, Cockcroft-Gault, look-back windows, Kleene logic)
  -- the floor any engine is compared to;
* ``elig``: ``patient_from_data`` + ``evaluate`` (verdict and every criterion);
* ``elig + HTML``: the same with each patient's HTML explanation rendered;
* ``elig screen``: the batch API over an NDJSON file, jobs=1 and jobs=2;

and prints patients per second, the ratios to the hand-written function, the
agreement of the verdicts (elig and the hand-written function must decide the
same), and peak memory (tracemalloc) of each in-process variant. Times are
best-of-3 wall clock; they are for comparison within a run. Figures go in
docs/reports.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import elig  # noqa: E402
from elig.report.html import render_html  # noqa: E402

PROTOCOL = ROOT / "protocols" / "NCT06021067.elig"
AS_OF = dt.date(2024, 3, 15)
ATTESTATIONS = {
    # key: the value an eligible patient has
    "ECG normal, or abnormal without clinical significance": True,
    "life expectancy of at least 6 months": True,
    "informed consent": True,
    "unwilling or unable to use effective contraception": False,
    "severe lung infection": False,
    "uncontrolled severe systemic disease": False,
    "previous participation in a stem cell clinical study": False,
    "investigator judges the participant unsuitable": False,
}
CREAT_MGDL_PER_UMOL = 1 / 88.42
TBIL_MGDL_PER_UMOL = 1 / 17.1


# ---------------------------------------------------------------- population
def _day(days_before: int) -> str:
    return (AS_OF - dt.timedelta(days=days_before)).isoformat()


def generate(n: int, seed: int = 20240315) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        sex = rng.choice(["male", "female"])
        age_days = rng.randint(19 * 365, 78 * 365)
        birth = (AS_OF - dt.timedelta(days=age_days)).isoformat()
        lab_day = rng.choice([1, 2, 3, 4, 5]) if rng.random() > 0.04 else rng.choice([10, 20])  # 4% stale
        d = _day(lab_day)
        obs = []
        weight = rng.uniform(45, 110)
        if rng.random() < 0.3:
            obs.append({"concept": "body weight", "value": round(weight / 0.45359237, 1), "unit": "lb", "date": d})
        else:
            obs.append({"concept": "body weight", "value": round(weight, 1), "unit": "kg", "date": d})
        obs.append({"concept": "ECOG", "value": rng.choice([0, 1, 1, 2, 2, 3, 0, 1, 2, 4]), "date": _day(rng.randint(1, 20))})
        obs.append({"concept": "ANC", "value": round(rng.uniform(1.3, 6.0), 2), "unit": "10^9/L", "date": d})
        plt_ = rng.uniform(70, 400)
        if rng.random() < 0.5:
            obs.append({"concept": "PLT", "value": round(plt_), "unit": "10^3/µL", "date": d})
        else:
            obs.append({"concept": "PLT", "value": round(plt_), "unit": "10^9/L", "date": d})
        hgb = rng.uniform(76, 160)
        if rng.random() < 0.5:
            obs.append({"concept": "HGB", "value": round(hgb / 10, 1), "unit": "g/dL", "date": d})
        else:
            obs.append({"concept": "HGB", "value": round(hgb), "unit": "g/L", "date": d})
        if rng.random() < 0.5:
            obs.append({"concept": "TBil", "value": round(rng.uniform(4, 34), 1), "unit": "µmol/L", "date": d,
                        "reference_range": {"low": 3, "high": 21, "unit": "µmol/L"}})
        else:
            obs.append({"concept": "TBil", "value": round(rng.uniform(0.2, 1.9), 2), "unit": "mg/dL", "date": d,
                        "reference_range": {"high": 1.2, "unit": "mg/dL"}})
        for name in ("ALT", "AST"):
            obs.append({"concept": name, "value": round(rng.uniform(8, 105)), "unit": "U/L", "date": d,
                        "reference_range": {"high": 40, "unit": "U/L"}})
        if rng.random() < 0.5:
            obs.append({"concept": "serum creatinine", "value": round(rng.uniform(45, 135), 1), "unit": "µmol/L",
                        "date": d})
        else:
            obs.append({"concept": "serum creatinine", "value": round(rng.uniform(0.5, 1.55), 2), "unit": "mg/dL",
                        "date": d})
        if rng.random() > 0.05:  # 5% without a coagulation test
            obs.append({"concept": "INR", "value": round(rng.uniform(0.8, 1.8), 2), "date": d})
            obs.append({"concept": "PT", "value": round(rng.uniform(10, 22), 1), "unit": "s", "date": d,
                        "reference_range": {"high": 13.5, "unit": "s"}})
        obs.append({"concept": "LVEF", "value": round(rng.uniform(45, 72)), "unit": "%",
                    "date": _day(rng.randint(1, 25))})
        onset = rng.randint(10, 45) if rng.random() < 0.9 else rng.randint(75, 120)
        conditions = [{"concept": "radiation pneumonitis", "onset": _day(onset), "status": "active",
                       "grade": rng.choice([1, 2, 2, 2, 3, 3, 3, 4])}]
        if rng.random() < 0.04:
            mi = rng.choice([rng.randint(20, 150), rng.randint(220, 400)])
            conditions.append({"concept": "myocardial infarction", "onset": _day(mi), "abatement": _day(mi - 10),
                               "status": "resolved"})
        if rng.random() < 0.03:
            conditions.append({"concept": "chronic bronchitis", "onset": _day(rng.randint(400, 3000))})
        procedures = []
        if rng.random() < 0.96:
            procedures.append({"concept": "chest radiotherapy", "start": _day(onset + 60), "end": _day(onset + 20)})
        medications = []
        if rng.random() < 0.05:
            medications.append({"concept": "anticoagulant", "start": _day(200), "status": "active"})
        attestations = {}
        for key, good in ATTESTATIONS.items():
            r = rng.random()
            if r < 0.01:
                continue  # not recorded yet
            attestations[key] = (not good) if r < 0.015 else good
        record = {"id": f"bench-{i:06d}", "birth_date": birth, "sex": sex, "observations": obs,
                  "conditions": conditions, "procedures": procedures, "medications": medications,
                  "attestations": attestations}
        if sex == "female":
            record["pregnant"] = rng.random() < 0.01
            record["lactating"] = False
        out.append(record)
    return out


# ---------------------------------------------------------------- the hand-written decision
MET, NOT, UNK = True, False, None


def _and(*xs):
    if any(x is False for x in xs):
        return False
    if any(x is None for x in xs):
        return None
    return True


def _or(*xs):
    if any(x is True for x in xs):
        return True
    if any(x is None for x in xs):
        return None
    return False


def _not(x):
    return None if x is None else not x


def handwritten(p: dict) -> tuple[str, list]:
    """Decide NCT06021067 for one native record, as a programmer would by hand."""
    as_of = AS_OF
    by = {}
    for o in p["observations"]:
        by[o["concept"]] = o

    def recent(name, days):
        o = by.get(name)
        if o is None:
            return None
        when = dt.date.fromisoformat(o["date"])
        if (as_of - when).days > days or when > as_of:
            return None
        return o

    def value(name, days, convert=None):
        o = recent(name, days)
        if o is None:
            return None
        return convert(o) if convert else float(o["value"])

    def uln_test(name, factor, op):
        o = recent(name, 7)
        if o is None:
            return None
        v, uln = float(o["value"]), float(o["reference_range"]["high"])
        return v <= factor * uln * (1 + 1e-12) if op == "<=" else v > factor * uln * (1 + 1e-12)

    birth = dt.date.fromisoformat(p["birth_date"])
    age = as_of.year - birth.year - ((as_of.month, as_of.day) < (birth.month, birth.day))
    female = p["sex"] == "female"
    att = p.get("attestations", {})

    def attested(key):
        return att.get(key)

    conds = p.get("conditions", [])

    def has_condition(name, within_days=None):
        for c in conds:
            if c["concept"] == name:
                if within_days is None:
                    return True
                last = c.get("abatement") or as_of.isoformat()  # an ongoing condition is present now
                if (as_of - dt.date.fromisoformat(last)).days <= within_days:
                    return True
        return False

    rp = next((c for c in conds if c["concept"] == "radiation pneumonitis"), None)
    anticoag = any(m["concept"] == "anticoagulant" and m.get("status") == "active" for m in p.get("medications", []))

    def scr_mgdl(o):
        return float(o["value"]) * (CREAT_MGDL_PER_UMOL if o["unit"] == "µmol/L" else 1.0)

    crit = []
    crit.append(any(x["concept"] == "chest radiotherapy" for x in p.get("procedures", [])))  # I1
    ecog = value("ECOG", 30)
    crit.append(None if ecog is None else 0 <= ecog <= 3)  # I2
    crit.append(rp is not None and 2 <= rp["grade"] <= 3)  # I3
    crit.append(True)  # I4.0: no growth factor, no transfusion recorded
    anc = value("ANC", 7)
    crit.append(None if anc is None else anc >= 1.5)  # I4.1
    plt_ = value("PLT", 7)
    crit.append(None if plt_ is None else plt_ >= 80)  # I4.2 (10^3/µL = 10^9/L)
    hgb = value("HGB", 7, lambda o: float(o["value"]) * (10 if o["unit"] == "g/dL" else 1))
    crit.append(None if hgb is None else hgb >= 80 - 1e-9)  # I4.3
    crit.append(uln_test("TBil", 1.5, "<="))  # I4.4
    crit.append(_and(uln_test("ALT", 2.5, "<="), uln_test("AST", 2.5, "<=")))  # I4.5
    scr = value("serum creatinine", 7, scr_mgdl)
    wt = value("body weight", 7, lambda o: float(o["value"]) * (0.45359237 if o["unit"] == "lb" else 1))
    crcl = None if scr is None or wt is None else (140 - age) * wt / (72 * scr) * (0.85 if female else 1)
    crit.append(None if crcl is None else crcl >= 60)  # I4.6
    coag = _or(uln_test("INR", 1.5, "<=") if recent("INR", 7) and "reference_range" in recent("INR", 7) else
               (None if value("INR", 7) is None else value("INR", 7) <= 1.5 * 1.1 * (1 + 1e-12)),
               uln_test("PT", 1.5, "<="))
    crit.append(True if anticoag else coag)  # I4.7
    crit.append(attested("ECG normal, or abnormal without clinical significance"))  # I4.8
    lvef = value("LVEF", 30)
    crit.append(None if lvef is None else lvef >= 50)  # I4.9
    crit.append(rp is not None and _months_between(dt.date.fromisoformat(rp["onset"]), as_of) < 2)  # I5
    crit.append(attested("life expectancy of at least 6 months"))  # I6
    crit.append(attested("informed consent"))  # I7
    crit.append(18 <= age <= 75)  # I8
    # exclusions
    preg = (p.get("pregnant") if female else False)
    lact = (p.get("lactating") if female else False)
    crit.append(_or(preg, lact, attested("unwilling or unable to use effective contraception")))  # E1
    crit.append(has_condition("chronic bronchitis"))  # E2
    crit.append(False)  # E3 lung resection: none generated
    crit.append(False)  # E4 tumour progression: none generated
    crit.append(attested("severe lung infection"))  # E5
    crit.append(attested("uncontrolled severe systemic disease"))  # E6
    crit.append(has_condition("myocardial infarction", within_days=_days_in_months(6)))  # E7
    cr_limit = 1.4 if female else 1.5
    crit.append(_or(uln_test("AST", 2.5, ">"), uln_test("ALT", 2.5, ">"),
                    None if scr is None else scr > cr_limit))  # E8
    crit.append(False)  # E9 infections: none generated
    crit.append(anticoag)  # E10
    crit.append(False)  # E11
    crit.append(False)  # E12
    crit.append(False)  # E13
    crit.append(attested("previous participation in a stem cell clinical study"))  # E14
    crit.append(attested("investigator judges the participant unsuitable"))  # E15
    inc, exc = crit[:17], crit[17:]
    if any(x is False for x in inc) or any(x is True for x in exc):
        verdict = "ineligible"
    elif all(x is True for x in inc) and all(x is False for x in exc):
        verdict = "eligible"
    else:
        verdict = "undetermined"
    return verdict, crit


def _months_between(a: dt.date, b: dt.date) -> float:
    return (b - a).days / 30.4375


def _days_in_months(m: int) -> int:
    start = AS_OF.replace(month=AS_OF.month - m) if AS_OF.month > m else AS_OF.replace(
        year=AS_OF.year - 1, month=AS_OF.month - m + 12)
    return (AS_OF - start).days


# ---------------------------------------------------------------- measuring
def best_of(fn, repeat=3):
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def peak(fn) -> int:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=20240315)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--html-sample", type=int, default=2_000,
                    help="patients for the with-HTML measurement (it is slower; the rate is per patient)")
    args = ap.parse_args(argv)

    population = generate(args.patients, args.seed)
    protocol = elig.load_protocol(PROTOCOL)
    n = len(population)
    print(f"population: {n} native patients (seed {args.seed}), protocol {protocol.id} "
          f"({len(protocol.criteria)} criteria), as of {AS_OF}")

    def run_hand(pop=population):
        return [handwritten(p)[0] for p in pop]

    def run_elig(pop=population):
        return [str(elig.evaluate(protocol, elig.patient_from_data(p, "bench"), AS_OF).verdict) for p in pop]

    def run_elig_html(pop=population[: args.html_sample]):
        out = []
        for p in pop:
            r = elig.evaluate(protocol, elig.patient_from_data(p, "bench"), AS_OF)
            render_html(r)
            out.append(str(r.verdict))
        return out

    t_hand, hand = best_of(run_hand, args.repeat)
    t_elig, got = best_of(run_elig, args.repeat)
    t_html, _ = best_of(run_elig_html, max(1, args.repeat - 1))
    n_html = min(n, args.html_sample)

    agree = sum(a == b for a, b in zip(hand, got))
    counts = {v: got.count(v) for v in ("eligible", "ineligible", "undetermined")}
    print(f"verdicts (elig): {counts}; agreement with the hand-written function: {agree}/{n}")
    if agree != n:
        for p, a, b in zip(population, hand, got):
            if a != b:
                r = elig.evaluate(protocol, elig.patient_from_data(p, "bench"), AS_OF)
                _, crit = handwritten(p)
                diff = [(c.id, str(c.outcome), crit[i]) for i, c in enumerate(r.criteria)
                        if str(c.outcome) != {True: "met", False: "not met", None: "unknown"}[crit[i]]]
                print(f"  first disagreement: {p['id']}: hand {a}, elig {b}: {diff}")
                break

    rate_hand, rate_elig, rate_html = n / t_hand, n / t_elig, n_html / t_html
    print()
    print(f"{'variant':<34}{'patients/s':>12}{'µs/patient':>12}{'× hand-written':>16}")
    for name, rate in (("hand-written Python function", rate_hand), ("elig (read + evaluate)", rate_elig),
                       ("elig + HTML report rendered", rate_html)):
        print(f"{name:<34}{rate:>12,.0f}{1e6 / rate:>12,.1f}{rate_hand / rate:>16,.1f}")

    # the batch API over an NDJSON file, one and two processes (includes reading the file)
    from elig.commands import screen

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "population.ndjson"
        with path.open("w", encoding="utf-8") as fh:
            for p in population:
                fh.write(json.dumps(p, ensure_ascii=False) + "\n")
        for jobs in (1, 2):
            t0 = time.perf_counter()
            rows = 0
            for row in screen.screen(PROTOCOL, [path], as_of=AS_OF, jobs=jobs, chunksize=64):
                rows += 1
            t = time.perf_counter() - t0
            print(f"{'elig screen NDJSON, jobs=' + str(jobs):<34}{rows / t:>12,.0f}{1e6 * t / rows:>12,.1f}"
                  f"{rate_hand / (rows / t):>16,.1f}")
        print(f"(cores available: {os.cpu_count()})")

        # memory: peak traced allocation while streaming the whole file (constant in patients)
        def stream(limit):
            def go():
                for i, _ in enumerate(screen.screen(protocol, [path], as_of=AS_OF)):
                    if i + 1 >= limit:
                        break
            return go

        print()
        print("peak memory (tracemalloc):")
        print(f"  hand-written, {n} patients kept in a list:        {peak(run_hand) / 1e6:8.2f} MB")
        print(f"  elig evaluate, {n} verdicts kept in a list:       {peak(run_elig) / 1e6:8.2f} MB")
        small = max(1, n // 10)
        print(f"  elig screen streaming {small} rows from NDJSON:      {peak(stream(small)) / 1e6:8.2f} MB")
        print(f"  elig screen streaming {n} rows from NDJSON:     {peak(stream(n)) / 1e6:8.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
