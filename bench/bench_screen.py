"""Benchmark of screening: elig against a hand-written Python function, same criteria, same data, same run.

Run from the repository root::

    python bench/bench_screen.py                 # 10,000 patients
    python bench/bench_screen.py --patients 20000 --seed 7

It generates a deterministic population of native patient records for
protocols/NCT06021067.elig (``bench/population.py``: mixed units, histories,
boundaries, stale, missing and unreadable values), then measures, on one core:

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
import json
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import elig  # noqa: E402
from elig.report.html import render_html  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from population import AS_OF, PROTOCOL, generate, handwritten  # noqa: E402


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
