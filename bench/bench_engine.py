"""Benchmark of the engine: hand-written Python, elig's compiled verdicts and elig explained, each in its own process.

Run from the repository root (``make bench`` runs the default)::

    python bench/bench_engine.py                         # 10,000 (3 repeats) and 100,000 patients (1)
    python bench/bench_engine.py --sizes 10000 --repeat 5 --protocols organ-function

The population (``bench/population.py``, deterministic) is written once to NDJSON
under build/bench/. It is decided against two protocols: the organ-function
criteria of NCT06021067 (9 criteria, bench/organ_function.elig: the setup issue 14
states its targets on) and the whole of NCT06021067 (32 criteria). For each, every
variant streams the same file in a fresh process and times its phases per patient:

* ``hand-written``: ``json.loads`` + the protocol's hand-written function in
  ``population.py`` (the floor any engine is compared to);
* ``compiled``: ``json.loads`` + ``patient_from_data`` + ``CompiledProtocol.outcomes``
  (verdict and every criterion's outcome, no explanation);
* ``explained``: ``json.loads`` + ``patient_from_data`` + ``evaluate`` (every criterion's
  explanation built); above ``--explained-cap`` patients it runs on the first ones,
  and its rate is per patient;
* ``explained, default collector``: the same with Python's cycle collector as a fresh
  interpreter sets it.

The first three run inside ``elig.batch_gc()``, the collector setting ``elig screen``
batches run with (``elig/engine/collector.py``: what was loaded before the first patient
is frozen, young collections are rarer); the last shows what the explaining evaluator
costs a caller that keeps Python's defaults. Each variant keeps its batch of 500 results
alive until the next batch, as a writer of reports does.

It prints, for each size and protocol, patients per second (min/median/max over the
repeats) of the decision alone (on parsed records) and end to end (from the JSON
text), the ratio to the hand-written function, the native reader's cost against
``json.loads`` of the same line, the agreement with the hand-written function (the
verdict, and every criterion's outcome), how often the compiled evaluator handed a
rule to the explaining one, the load average while it ran, and each process's own
peak resident memory; and writes it all to bench/results/engine.json, which
docs/performance.md shows. Each phase is timed per batch of 500 patients on the wall
clock and in the process's own CPU time (``time.process_time``); the targets are
judged on CPU time, the rate on one core, which other jobs on a shared machine
disturb less than the wall clock. Compare within a run.
"""

from __future__ import annotations

import argparse
import contextlib
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

from population import (  # noqa: E402
    AS_OF, DEFAULT_SEED, ORGAN_PROTOCOL, PROTOCOL, generate, handwritten, handwritten_organ,
)

RESULTS = ROOT / "bench" / "results" / "engine.json"
DATA = ROOT / "build" / "bench"
DEFAULT_COLLECTOR = "explained, default collector"  # explained, outside elig.batch_gc()
VARIANTS = ("hand-written", "compiled", "explained", DEFAULT_COLLECTOR)
EXPLAINED = ("explained", DEFAULT_COLLECTOR)
# The protocols measured: issue 14 states its targets on the organ-function criteria; the full
# protocol (32 criteria: events, attestations, facts, derived values besides) is measured too.
PROTOCOLS = {
    "organ-function": {"file": ORGAN_PROTOCOL, "hand": handwritten_organ,
                       "label": "organ-function criteria of NCT06021067 (9 criteria; bench/organ_function.elig)"},
    "full": {"file": PROTOCOL, "hand": handwritten,
             "label": "NCT06021067, every criterion (32 criteria; protocols/NCT06021067.elig)"},
}
LETTER = {"met": "m", "not met": "n", "unknown": "u", True: "m", False: "n", None: "u"}


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


def peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM), in MB.

    Not ``getrusage``: on Linux its ``ru_maxrss`` survives ``execve``, so a child started
    from a large parent would report the parent's peak instead of its own.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:  # pragma: no cover - not Linux
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)


# ---------------------------------------------------------------- one variant, in its own process
CHUNK = 500  # patients per timed batch: each phase is timed once per batch on both clocks


def run_variant(variant: str, protocol_key: str, path: Path, limit: int | None) -> dict:
    import elig
    from elig.engine.compiled import compile_protocol

    perf, cpu = time.perf_counter, time.process_time
    wall = {"parse": 0.0, "read": 0.0, "decide": 0.0}
    cpu_s = {"parse": 0.0, "read": 0.0, "decide": 0.0}
    verdicts: dict[str, int] = {}
    outcomes = []  # per patient: the verdict's initial, then one letter per criterion (m, n, u)
    n = 0
    spec = PROTOCOLS[protocol_key]
    hand = spec["hand"]
    protocol = elig.load_protocol(spec["file"])
    compiled = compile_protocol(protocol)
    read = elig.patient_from_data
    loads = json.loads

    def timed(phase, work):
        w0, c0 = perf(), cpu()
        out = work()
        cpu_s[phase] += cpu() - c0
        wall[phase] += perf() - w0
        return out

    def decide(records):
        if variant == "hand-written":
            return [hand(data) for data in records]
        if variant == "compiled":
            return [compiled.outcomes(patient, AS_OF) for patient in records]
        return [elig.evaluate(protocol, patient, AS_OF) for patient in records]

    collector = contextlib.nullcontext() if variant == DEFAULT_COLLECTOR else elig.batch_gc()
    with collector, path.open(encoding="utf-8") as fh:
        while limit is None or n < limit:
            lines = []
            for line in fh:
                lines.append(line)
                if len(lines) == CHUNK or (limit is not None and n + len(lines) >= limit):
                    break
            if not lines:
                break
            # Each phase over the batch, timed on the wall clock and in this process's CPU time.
            data = timed("parse", lambda: [loads(line) for line in lines])
            records = data if variant == "hand-written" else timed("read", lambda: [read(d, "bench") for d in data])
            decided = timed("decide", lambda: decide(records))
            for got in decided:
                if variant == "hand-written":
                    verdict, crit = got
                    letters = "".join(LETTER[c] for c in crit)
                elif variant == "compiled":
                    verdict = got.verdict.value
                    letters = "".join(LETTER[o.value] for _, o in got.outcomes)
                else:
                    verdict = got.verdict.value
                    letters = "".join(LETTER[c.outcome.value] for c in got.criteria)
                verdicts[verdict] = verdicts.get(verdict, 0) + 1
                outcomes.append(verdict[0] + letters)
            n += len(lines)
    out = {"variant": variant, "protocol": protocol_key, "patients": n, "parse_s": wall["parse"],
           "read_s": wall["read"], "decide_s": wall["decide"], "parse_cpu_s": cpu_s["parse"],
           "read_cpu_s": cpu_s["read"], "decide_cpu_s": cpu_s["decide"], "verdicts": verdicts,
           "outcomes": outcomes, "peak_rss_mb": peak_rss_mb()}
    if variant == "compiled" and hasattr(compiled, "fallback_report"):
        out["fallbacks"] = compiled.fallback_report()
    return out


def in_process(variant: str, protocol_key: str, path: Path, limit: int | None) -> dict:
    cmd = [sys.executable, __file__, "--run", variant, "--protocol", protocol_key, "--file", str(path)]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def stats(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def agreement(reference: list[str], other: list[str]) -> dict:
    """How many patients (of ``other``) have the reference's verdict, and its every criterion outcome."""
    pairs = list(zip(reference, other))
    return {"patients": len(pairs), "verdicts": sum(a[0] == b[0] for a, b in pairs),
            "outcomes": sum(a == b for a, b in pairs)}


# ---------------------------------------------------------------- the whole benchmark
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--protocols", default=",".join(PROTOCOLS), help="which of: " + ", ".join(PROTOCOLS))
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--repeat-large", type=int, default=1, help="repeats for sizes above 10,000 patients")
    ap.add_argument("--explained-cap", type=int, default=10_000,
                    help="patients the explained variant runs at larger sizes (its rate is per patient)")
    ap.add_argument("--output", default=str(RESULTS))
    ap.add_argument("--run", choices=VARIANTS, help=argparse.SUPPRESS)
    ap.add_argument("--protocol", choices=list(PROTOCOLS), help=argparse.SUPPRESS)
    ap.add_argument("--file", help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.run:
        print(json.dumps(run_variant(args.run, args.protocol, Path(args.file), args.limit)))
        return 0

    protocol_keys = [k.strip() for k in args.protocols.split(",") if k.strip()]
    report = {"generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "command": "python bench/bench_engine.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "python": platform.python_version(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
              "load_average_start": list(os.getloadavg()), "as_of": AS_OF.isoformat(), "runs": []}
    for n in [int(s) for s in args.sizes.split(",")]:
        path = population_file(n, args.seed)
        repeat = args.repeat if n <= 10_000 else args.repeat_large
        for key in protocol_keys:
            runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
            loads = []
            for _ in range(repeat):
                for variant in VARIANTS:  # interleaved, so a change of machine load touches every variant alike
                    limit = min(n, args.explained_cap) if variant in EXPLAINED else None
                    loads.append(os.getloadavg()[0])
                    runs[variant].append(in_process(variant, key, path, limit))
            result = summarise(key, n, repeat, runs, loads)
            report["runs"].append(result)
            print_run(result)
            report["targets"] = targets(report)
            report["load_average_end"] = list(os.getloadavg())
            out = Path(args.output)  # after each run, so a long benchmark keeps what it measured
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"\nwritten to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    for t in report["targets"]:
        print(f"  {'met    ' if t['met'] else 'NOT met'}  {t['target']} ({t['where']}"
              f"{', the issue' + chr(39) + 's setup' if t['issue_setup'] else ''}): {t['measured']}")
    return 0


def summarise(key: str, n: int, repeat: int, runs: dict, loads: list[float]) -> dict:
    hand = runs["hand-written"]
    reference = hand[0]["outcomes"]
    result = {"protocol": key, "label": PROTOCOLS[key]["label"], "criteria": len(reference[0]) - 1,
              "patients": n, "repeat": repeat, "verdicts": hand[0]["verdicts"],
              "load_average": stats(loads),
              "agreement": {v: agreement(reference, runs[v][0]["outcomes"]) for v in VARIANTS[1:]},
              "fallbacks": runs["compiled"][0].get("fallbacks"), "variants": []}
    # Each figure on the wall clock (as before) and in CPU time (``_cpu``: the process's own, which
    # other jobs on a shared machine disturb less).
    for clock in ("", "_cpu"):
        def decide_s(r):
            return r[f"decide{clock}_s"]

        def total_s(r):
            return r[f"parse{clock}_s"] + r[f"read{clock}_s"] + r[f"decide{clock}_s"]

        hand_decide = statistics.median(decide_s(r) / r["patients"] for r in hand)
        hand_total = statistics.median(total_s(r) / r["patients"] for r in hand)
        for i, variant in enumerate(VARIANTS):
            rs = runs[variant]
            if clock == "":
                result["variants"].append({"variant": variant, "patients": rs[0]["patients"],
                                           "peak_rss_mb": stats([r["peak_rss_mb"] for r in rs])})
            row = result["variants"][i]
            row[f"decide{clock}_per_s"] = stats([r["patients"] / decide_s(r) for r in rs])
            row[f"end_to_end{clock}_per_s"] = stats([r["patients"] / total_s(r) for r in rs])
            row[f"decide{clock}_ratio"] = statistics.median(decide_s(r) / r["patients"] for r in rs) / hand_decide
            row[f"end_to_end{clock}_ratio"] = statistics.median(total_s(r) / r["patients"] for r in rs) / hand_total
            if variant != "hand-written":
                row[f"reader_over_json{clock}"] = stats([r[f"read{clock}_s"] / r[f"parse{clock}_s"] for r in rs])
                row[f"reader{clock}_us"] = statistics.median(r[f"read{clock}_s"] / r["patients"] * 1e6 for r in rs)
                row[f"json{clock}_us"] = statistics.median(r[f"parse{clock}_s"] / r["patients"] * 1e6 for r in rs)
    return result


def print_run(run: dict) -> None:
    ag = run["agreement"]
    print(f"\n{run['patients']:,} patients, {run['label']}; verdicts {run['verdicts']}; load average "
          f"{run['load_average']['min']:.1f}–{run['load_average']['max']:.1f}")
    print("agreement with the hand-written function (verdict / every criterion's outcome): " + ", ".join(
        f"{v} {a['verdicts']:,}/{a['outcomes']:,} of {a['patients']:,}" for v, a in ag.items()))
    fb = run.get("fallbacks")
    if fb:
        print(f"compiled fallbacks to the explaining rule functions: {fb['patients_with_fallback']:,} of "
              f"{fb['patients']:,} patients ({fb['patient_rate']:.1%}), {fb['per_patient']:.3f} per patient")
    print(f"{'variant':<30}{'clock':<6}{'decide/s (min / median / max)':>34}{'× hand':>8}{'end-to-end/s (median)':>24}"
          f"{'× hand':>8}{'reader/json':>13}{'peak RSS':>11}")
    for row in run["variants"]:
        for clock, name in (("", "wall"), ("_cpu", "CPU")):
            d, e = row[f"decide{clock}_per_s"], row[f"end_to_end{clock}_per_s"]
            rj = row.get(f"reader_over_json{clock}")
            reader = f"{rj['median']:.2f}×" if rj else ""
            rss = f"{row['peak_rss_mb']['max']:>9.0f} MB" if clock == "" else ""
            print(f"{row['variant'] if clock == '' else '':<30}{name:<6}{d['min']:>12,.0f} / {d['median']:>8,.0f} / "
                  f"{d['max']:>8,.0f}{row[f'decide{clock}_ratio']:>8.2f}{e['median']:>24,.0f}"
                  f"{row[f'end_to_end{clock}_ratio']:>8.2f}{reader:>13}{rss}", flush=True)


def targets(report: dict) -> list[dict]:
    """Issue 14's targets, on its setup (the organ-function criteria) and on the full protocol, in CPU
    time (the rate on one core; the wall-clock figure is given beside it)."""
    out = []
    for run in report["runs"]:
        rows = {r["variant"]: r for r in run["variants"]}
        c, e, plain = rows["compiled"], rows["explained"], rows[DEFAULT_COLLECTOR]
        where = f"{run['protocol']}, {run['patients']:,} patients"
        setup = run["protocol"] == "organ-function"
        out.append({"target": "verdicts and outcomes ≤ 3× hand-written, on parsed records", "where": where,
                    "issue_setup": setup,
                    "measured": f"{c['decide_cpu_ratio']:.2f}× CPU ({c['decide_ratio']:.2f}× wall)",
                    "met": c["decide_cpu_ratio"] <= 3})
        rate = e["decide_cpu_per_s"]["median"]
        out.append({"target": "full explanations ≥ 5,000 patients/s on one core", "where": where,
                    "issue_setup": setup,
                    "measured": f"{rate:,.0f}/s CPU ({e['decide_per_s']['median']:,.0f}/s wall; with Python's "
                                f"default collector {plain['decide_cpu_per_s']['median']:,.0f}/s CPU)",
                    "met": rate >= 5000})
        reader = c["reader_over_json_cpu"]["median"]
        out.append({"target": "native reader ≤ 3× json.loads", "where": where, "issue_setup": setup,
                    "measured": f"{reader:.2f}× CPU ({c['reader_over_json']['median']:.2f}× wall)",
                    "met": reader <= 3})
    return out


if __name__ == "__main__":
    sys.exit(main())
