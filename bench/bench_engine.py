"""Benchmark of the engine: hand-written Python, elig's compiled verdicts and elig explained, each in its own process.

Run from the repository root (``make bench`` runs the default)::

    python bench/bench_engine.py                         # 10,000 (3 repeats) and 100,000 patients (1)
    python bench/bench_engine.py --sizes 10000 --repeat 5

The population (``bench/population.py``, deterministic) is written once to NDJSON
under build/bench/; every variant streams the same file in a fresh process and
times its phases per patient:

* ``hand-written``: ``json.loads`` + ``handwritten`` (the floor any engine is compared to);
* ``compiled``: ``json.loads`` + ``patient_from_data`` + ``CompiledProtocol.outcomes``
  (verdict and every criterion's outcome, no explanation);
* ``explained``: ``json.loads`` + ``patient_from_data`` + ``evaluate`` (every criterion's
  explanation built); at 100,000 patients it runs on the first ``--explained-cap``
  patients, and its rate is per patient.

It prints, for each size, patients per second (min/median/max over the repeats)
of the decision alone (on parsed records) and end to end (from the JSON text),
the ratio to the hand-written function, the native reader's cost against
``json.loads`` of the same line, the agreement of the verdicts, and the peak
resident memory of each process; and writes it all to bench/results/engine.json,
which docs/performance.md shows. Times are wall clock on one core, for comparison
within a run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from population import AS_OF, DEFAULT_SEED, PROTOCOL, generate  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "engine.json"
DATA = ROOT / "build" / "bench"
VARIANTS = ("hand-written", "compiled", "explained")


def population_file(n: int, seed: int) -> Path:
    path = DATA / f"population-{n}-{seed}.ndjson"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for record in generate(n, seed):
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        tmp.replace(path)
    return path


# ---------------------------------------------------------------- one variant, in its own process
def run_variant(variant: str, path: Path, limit: int | None) -> dict:
    import elig
    from elig.engine.compiled import compile_protocol
    from population import handwritten

    perf = time.perf_counter
    t_parse = t_read = t_decide = 0.0
    verdicts: dict[str, int] = {}
    initials = []
    n = 0
    protocol = elig.load_protocol(PROTOCOL)
    compiled = compile_protocol(protocol)
    read = elig.patient_from_data
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if limit is not None and n >= limit:
                break
            t0 = perf()
            data = json.loads(line)
            t1 = perf()
            if variant == "hand-written":
                verdict = handwritten(data)[0]
                t2 = t1
            else:
                patient = read(data, "bench")
                t2 = perf()
                if variant == "compiled":
                    verdict = compiled.outcomes(patient, AS_OF).verdict.value
                else:
                    verdict = elig.evaluate(protocol, patient, AS_OF).verdict.value
            t3 = perf()
            t_parse += t1 - t0
            t_read += t2 - t1
            t_decide += t3 - t2
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
            initials.append(verdict[0])
            n += 1
    return {"variant": variant, "patients": n, "parse_s": t_parse, "read_s": t_read, "decide_s": t_decide,
            "verdicts": verdicts, "verdict_string": "".join(initials),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def in_process(variant: str, path: Path, limit: int | None) -> dict:
    cmd = [sys.executable, __file__, "--run", variant, "--file", str(path)]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def stats(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


# ---------------------------------------------------------------- the whole benchmark
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--repeat-large", type=int, default=1, help="repeats for sizes above 10,000 patients")
    ap.add_argument("--explained-cap", type=int, default=10_000,
                    help="patients the explained variant runs at larger sizes (its rate is per patient)")
    ap.add_argument("--output", default=str(RESULTS))
    ap.add_argument("--run", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run:
        print(json.dumps(run_variant(args.run, Path(args.file), args.limit)))
        return 0

    report = {"generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "command": "python bench/bench_engine.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "python": platform.python_version(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "load_average": os.getloadavg()[0], "protocol": PROTOCOL.stem,
              "as_of": AS_OF.isoformat(), "sizes": []}
    for n in [int(s) for s in args.sizes.split(",")]:
        path = population_file(n, args.seed)
        runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
        repeat = args.repeat if n <= 10_000 else args.repeat_large
        for _ in range(repeat):
            for variant in VARIANTS:  # interleaved, so a change of machine load touches every variant alike
                limit = min(n, args.explained_cap) if variant == "explained" else None
                runs[variant].append(in_process(variant, path, limit))
        hand = runs["hand-written"]
        agree_compiled = sum(a == b for a, b in zip(hand[0]["verdict_string"], runs["compiled"][0]["verdict_string"]))
        agree_explained = sum(a == b for a, b in zip(hand[0]["verdict_string"], runs["explained"][0]["verdict_string"]))
        hand_decide = statistics.median(r["decide_s"] / r["patients"] for r in hand)
        hand_total = statistics.median((r["parse_s"] + r["decide_s"]) / r["patients"] for r in hand)
        size = {"patients": n, "repeat": repeat, "verdicts": hand[0]["verdicts"],
                "agreement": {"compiled": f"{agree_compiled}/{n}",
                              "explained": f"{agree_explained}/{runs['explained'][0]['patients']}"},
                "variants": []}
        for variant in VARIANTS:
            rs = runs[variant]
            decide = [r["patients"] / r["decide_s"] for r in rs]
            total = [r["patients"] / (r["parse_s"] + r["read_s"] + r["decide_s"]) for r in rs]
            row = {"variant": variant, "patients": rs[0]["patients"],
                   "decide_per_s": stats(decide), "end_to_end_per_s": stats(total),
                   "decide_ratio": statistics.median(r["decide_s"] / r["patients"] for r in rs) / hand_decide,
                   "end_to_end_ratio": statistics.median((r["parse_s"] + r["read_s"] + r["decide_s"]) / r["patients"]
                                                         for r in rs) / hand_total,
                   "peak_rss_mb": max(r["peak_rss_mb"] for r in rs)}
            if variant != "hand-written":
                row["reader_over_json"] = stats([r["read_s"] / r["parse_s"] for r in rs])
            size["variants"].append(row)
        report["sizes"].append(size)
        print_size(size)
        report["targets"] = targets(report)
        out = Path(args.output)  # after each size, so a long run keeps what it measured
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nwritten to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}", flush=True)
    for t in report["targets"]:
        print(f"  {'met    ' if t['met'] else 'NOT met'}  {t['target']}: {t['measured']}")
    return 0


def print_size(size: dict) -> None:
    print(f"\n{size['patients']:,} patients; verdicts {size['verdicts']}; agreement with the hand-written "
          f"verdicts: compiled {size['agreement']['compiled']}, explained {size['agreement']['explained']}")
    print(f"{'variant':<14}{'decide/s (min / median / max)':>34}{'× hand':>8}{'end-to-end/s (median)':>24}"
          f"{'× hand':>8}{'reader/json':>13}{'peak RSS':>11}")
    for row in size["variants"]:
        d, e = row["decide_per_s"], row["end_to_end_per_s"]
        reader = f"{row['reader_over_json']['median']:.1f}×" if "reader_over_json" in row else ""
        print(f"{row['variant']:<14}{d['min']:>12,.0f} / {d['median']:>8,.0f} / {d['max']:>8,.0f}"
              f"{row['decide_ratio']:>8.1f}{e['median']:>24,.0f}{row['end_to_end_ratio']:>8.1f}{reader:>13}"
              f"{row['peak_rss_mb']:>9.0f} MB")


def targets(report: dict) -> list[dict]:
    out = []
    for size in report["sizes"]:
        rows = {r["variant"]: r for r in size["variants"]}
        c, e = rows["compiled"], rows["explained"]
        n = size["patients"]
        out.append({"target": f"verdicts and outcomes ≤ 3× hand-written ({n:,} patients, on parsed records)",
                    "measured": f"{c['decide_ratio']:.1f}×", "met": c["decide_ratio"] <= 3})
        out.append({"target": f"full explanations ≥ 5,000 patients/s ({n:,} patients)",
                    "measured": f"{e['decide_per_s']['median']:,.0f}/s", "met": e["decide_per_s"]["median"] >= 5000})
        reader = c["reader_over_json"]["median"]
        out.append({"target": f"native reader ≤ 3× json.loads ({n:,} patients)", "measured": f"{reader:.1f}×",
                    "met": reader <= 3})
    return out


if __name__ == "__main__":
    sys.exit(main())
