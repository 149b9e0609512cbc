"""Benchmark of batch screening in SQL: elig's compiled query against hand-written DuckDB SQL.

Run from the repository root (``make bench`` runs the default)::

    python bench/bench_sql.py                                  # 10k, 100k, 1M; Spark at 100k
    python bench/bench_sql.py --sizes 10000 --spark-size 0 --check 2000 --base 2000   # a quick run

What it does, on one generated population (``generate`` of bench/population.py, protocol
NCT06021067, evaluation date 2024-03-15):

1. Builds the Parquet tables (``elig.batch.tables``). ``--base`` patients (10,000 by
   default) are generated and read by elig's own reader; larger sizes are that population
   repeated with new patient keys and ids (1M = 100 copies), so generating 1M stays under
   two minutes. The time is printed and kept in the results.
2. Checks meaning before speed, on the first ``--check`` generated patients (100,000 by
   default, in tables of their own): elig on DuckDB decides every patient and criterion
   as the interpreter does, and both hand-written queries decide every patient and
   criterion as elig does. Any difference makes the benchmark exit with status 1.
3. Measures, each variant in its own process (so the peak memory is its own), ``--repeat``
   times, on the same Parquet: hand-written DuckDB SQL and elig's compiled query, on all
   32 criteria (bench/handwritten.sql) and on the 9 organ-function criteria I4.1 to I4.9
   (bench/handwritten_organ.sql, the measurement of the issue that asked for SQL), at
   each size; and elig on Spark ``local[2]`` at ``--spark-size``. Each run reads the
   Parquet and writes the result table to Parquet; elig's time includes compiling the
   protocol and building its concept and unit tables.

It prints patients/s, the ratio to the hand-written SQL of the same criteria and size,
min/median/max times and peak resident memory (VmHWM of the variant's process; for
Spark, the driver's Python process plus the JVM), and writes them with the machine's
load average to ``bench/results/sql.json``, which docs/performance-sql.md renders as a
table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

PROTOCOL = ROOT / "protocols" / "NCT06021067.elig"
RESULTS = ROOT / "bench" / "results" / "sql.json"
HAND_SQL = {"all": ROOT / "bench" / "handwritten.sql", "organ": ROOT / "bench" / "handwritten_organ.sql"}
ORGAN = ("I4.1", "I4.2", "I4.3", "I4.4", "I4.5", "I4.6", "I4.7", "I4.8", "I4.9")
SCOPES = {"all": "all 32 criteria", "organ": "organ function, I4.1-I4.9"}


def _population():
    from population import AS_OF, generate

    return AS_OF, generate


def protocol(scope: str):
    """The checked protocol, or only its organ-function criteria."""
    import attrs

    import elig

    checked = elig.load_protocol(PROTOCOL)
    if scope == "organ":
        checked = attrs.evolve(checked, criteria=tuple(c for c in checked.criteria if c.id in ORGAN))
    return checked


def hand_sql(scope: str, as_of) -> str:
    return HAND_SQL[scope].read_text(encoding="utf-8").replace("{AS_OF}", as_of.isoformat())


# ---------------------------------------------------------------- building the tables
def build_base(folder: Path, n: int, seed: int) -> float:
    import elig
    from elig.batch.tables import ParquetTables

    _, generate = _population()
    t0 = time.perf_counter()
    with ParquetTables(folder) as out:
        for record in generate(n, seed):
            out.add(elig.patient_from_data(record, "generated"), "generated", None, "generated")
    return time.perf_counter() - t0


def derive(base: Path, base_n: int, folder: Path, n: int) -> float:
    """``n`` patients from the base tables: its first ``n``, or copies of it with new keys and ids."""
    import duckdb

    from elig.batch.tables import TABLES

    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    con = duckdb.connect()
    copies = -(-n // base_n)
    for name in TABLES:
        src = str(base / f"{name}.parquet")
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{src}')").fetchall()]
        select = ", ".join(
            "t.pk + k.i * {b} AS pk".format(b=base_n) if c == "pk" else
            ("t.patient_id || CASE WHEN k.i = 0 THEN '' ELSE '-' || k.i END AS patient_id" if c == "patient_id"
             else f"t.{c}") for c in cols)
        con.execute(f"COPY (SELECT {select} FROM range({copies}) k(i), read_parquet('{src}') t "
                    f"WHERE t.pk + k.i * {base_n} < {n}) TO '{folder / (name + '.parquet')}' (FORMAT parquet)")
    con.close()
    return time.perf_counter() - t0


# ---------------------------------------------------------------- checks
def check(folder: Path, n: int, seed: int) -> dict:
    """elig on DuckDB against the interpreter, and the hand-written SQL against elig: every patient and criterion."""
    import elig
    from elig.batch import runners
    from elig.engine.evaluator import evaluate

    as_of, generate = _population()
    word = {True: "met", False: "not met", None: "unknown"}
    out = {"patients": n}
    engine = runners.DuckDBEngine(folder)
    for scope in ("all", "organ"):
        checked = protocol(scope)
        compiled, result = engine.run(checked, as_of)
        rows = list(runners.rows(compiled, result))
        hand = engine.con.execute(hand_sql(scope, as_of)).fetchall()
        differ = [r.patient_id for r, (_, pid, verdict, inc, exc) in zip(rows, hand)
                  if pid != r.patient_id or verdict != r.verdict
                  or [word[x] for x in list(inc) + list(exc)] != [o for _, o in r.outcomes]]
        out[scope] = {"criteria": len(compiled.criteria), "hand_written_differs": len(differ),
                      "first_hand_difference": differ[0] if differ else None, "of": len(rows)}
        if scope == "all":
            interpreter = 0
            first = None
            for record, row in zip(generate(n, seed), rows):
                r = evaluate(checked, elig.patient_from_data(record, "generated"), as_of)
                expected = (str(r.verdict), tuple((c.id, str(c.outcome)) for c in r.criteria))
                if expected != (row.verdict, row.outcomes):
                    interpreter += 1
                    first = first or (row.patient_id, expected, row.outcomes)
            out[scope].update(differ_from_interpreter=interpreter, first_difference=first)
    engine.close()
    return out


# ---------------------------------------------------------------- one measurement, in its own process
def _peak_mb(pid: int | str = "self") -> float | None:
    """Peak resident memory of one process (VmHWM). Unlike ``ru_maxrss`` it is not inherited:
    a child started by a large parent reports its own peak, not the parent's."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _descendants(root: int) -> list[int]:
    """Processes started, directly or not, by ``root`` (Spark's JVM is one)."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                parent[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def measure(variant: str, scope: str, folder: Path, repeat: int, threads: int | None,
            memory_limit: str | None) -> dict:
    from elig.batch import runners

    as_of, _ = _population()
    checked = protocol(scope)
    times = []
    extra = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.parquet"
        if variant == "spark":
            t0 = time.perf_counter()
            engine = runners.SparkEngine(folder)
            extra["session_start_s"] = round(time.perf_counter() - t0, 2)
            for i in range(repeat):
                t0 = time.perf_counter()
                engine.write(checked, as_of, Path(tmp) / f"spark-{i}")
                times.append(time.perf_counter() - t0)
            jvm = [m for m in (_peak_mb(p) for p in _descendants(os.getpid())) if m]
            extra["jvm_peak_mb"] = round(sum(jvm), 1)
            engine.close()
        else:
            for _ in range(repeat):
                engine = runners.DuckDBEngine(folder, threads=threads, memory_limit=memory_limit,
                                              temp_directory=str(Path(tmp) / "spill"))
                extra["threads"] = engine.con.execute("SELECT current_setting('threads')").fetchone()[0]
                t0 = time.perf_counter()
                if variant == "hand":
                    engine.con.execute(f"COPY ({hand_sql(scope, as_of)}) TO '{out}' (FORMAT parquet)")
                else:
                    engine.write(checked, as_of, out)
                times.append(time.perf_counter() - t0)
                engine.close()
    peak = _peak_mb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"times": times, "peak_mb": round(peak + extra.get("jvm_peak_mb", 0), 1), **extra}


def run_child(variant: str, scope: str, folder: Path, args) -> dict:
    """One variant in a process of its own: its peak memory is its own, not the parent's."""
    cmd = [sys.executable, __file__, "--measure", variant, "--scope", scope, "--tables", str(folder),
           "--repeat", str(args.repeat), "--memory-limit", args.memory_limit, "--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} ({scope}) on {folder} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--spark-size", type=int, default=100_000, help="0: no Spark run")
    ap.add_argument("--base", type=int, default=10_000, help="distinct generated patients the sizes repeat")
    ap.add_argument("--check", type=int, default=100_000, help="generated patients checked against the interpreter")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20240315)
    ap.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: every core, DuckDB's default)")
    ap.add_argument("--memory-limit", default="2GB", help="DuckDB memory_limit; beyond it DuckDB spills to disk")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--scope", default="all", help=argparse.SUPPRESS)
    ap.add_argument("--tables", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.scope, args.tables, args.repeat, args.threads or None,
                                 args.memory_limit)))
        return 0

    load_start = os.getloadavg()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    base_n = min(args.base, max(sizes + [args.spark_size]))
    with tempfile.TemporaryDirectory(prefix="elig-bench-sql-") as tmp:
        tmp = Path(tmp)
        base = tmp / "base"
        t_base = build_base(base, base_n, args.seed)
        print(f"generated {base_n:,} patients and read them into Parquet tables: {t_base:.1f} s")
        folders = {}
        generation = {}
        for n in sorted(set(sizes + ([args.spark_size] if args.spark_size else []))):
            if n == base_n:
                folders[n], generation[str(n)] = base, round(t_base, 1)
                continue
            t = derive(base, base_n, tmp / f"n{n}", n)
            folders[n] = tmp / f"n{n}"
            generation[str(n)] = round(t_base + t, 1) if n > base_n else round(t, 1)
            print(f"tables of {n:,} patients: {generation[str(n)]:.1f} s "
                  + (f"({base_n:,} generated, then repeated: {t:.1f} s)" if n > base_n else "(the base's first)"))

        if args.check <= base_n:
            check_folder = tmp / "check"
            derive(base, base_n, check_folder, args.check)
            t_check = 0.0
        else:
            check_folder = tmp / "check"
            t_check = build_base(check_folder, args.check, args.seed)
            print(f"generated {args.check:,} patients for the check: {t_check:.1f} s")
        checked = check(check_folder, args.check, args.seed)
        a, o = checked["all"], checked["organ"]
        print(f"check on {args.check:,} patients: elig on DuckDB differs from the interpreter on "
              f"{a['differ_from_interpreter']} (x {a['criteria']} criteria); the hand-written SQL differs from elig "
              f"on {a['hand_written_differs']} (all criteria) and {o['hand_written_differs']} (organ function)")
        if a["differ_from_interpreter"]:
            print(f"  first difference: {a['first_difference']}")
        failed = a["differ_from_interpreter"] or a["hand_written_differs"] or o["hand_written_differs"]

        results = []
        print()
        print(f"{'variant':<26}{'criteria':<27}{'patients':>10}{'patients/s':>12}{'× hand SQL':>11}"
              f"{'min s':>8}{'median s':>9}{'max s':>8}{'peak MB':>9}")
        for n in sizes:
            for scope in ("all", "organ"):
                hand = run_child("hand", scope, folders[n], args)
                mine = run_child("elig", scope, folders[n], args)
                for name, m in (("hand-written DuckDB SQL", hand), ("elig on DuckDB", mine)):
                    results.append(_row(name, scope, n, m, min(hand["times"])))
                    _print(results[-1])
        if args.spark_size:
            n = args.spark_size
            hand = next((r for r in results if r["variant"] == "hand-written DuckDB SQL" and r["patients"] == n
                         and r["scope"] == "all"), None)
            base_time = hand["min_s"] if hand else min(run_child("hand", "all", folders[n], args)["times"])
            results.append(_row("elig on Spark local[2]", "all", n, run_child("spark", "all", folders[n], args),
                                base_time))
            _print(results[-1])

        import duckdb

        report = {
            "benchmark": "bench/bench_sql.py",
            "command": "python bench/bench_sql.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "protocol": "NCT06021067", "scopes": SCOPES,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "duckdb": duckdb.__version__,
                        "platform": platform.platform(),
                        "load_average_start": [round(x, 2) for x in load_start],
                        "load_average_end": [round(x, 2) for x in os.getloadavg()]},
            "duckdb_settings": {"threads": args.threads or "every core", "memory_limit": args.memory_limit},
            "generation_s": generation, "base_patients": base_n, "check_generation_s": round(t_check, 1),
            "check": checked, "results": results,
            "note": "min_s is the best of --repeat runs; ratio = min / min of the hand-written SQL of the same "
                    f"criteria and size, in the same run; sizes above {base_n:,} repeat the {base_n:,} generated "
                    "patients with new keys and ids",
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nwrote {args.out} (load average {load_start[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end)")
    return 1 if failed else 0


def _row(name: str, scope: str, n: int, m: dict, hand_min: float) -> dict:
    t = m["times"]
    row = {"variant": name, "scope": scope, "patients": n, "patients_per_s": round(n / min(t)),
           "ratio_to_hand_sql": round(min(t) / hand_min, 2), "min_s": round(min(t), 3),
           "median_s": round(statistics.median(t), 3), "max_s": round(max(t), 3), "peak_mb": m["peak_mb"]}
    for key in ("session_start_s", "jvm_peak_mb", "threads"):
        if key in m:
            row[key] = m[key]
    return row


def _print(r: dict) -> None:
    print(f"{r['variant']:<26}{SCOPES[r['scope']]:<27}{r['patients']:>10,}{r['patients_per_s']:>12,.0f}"
          f"{r['ratio_to_hand_sql']:>11.2f}{r['min_s']:>8.2f}{r['median_s']:>9.2f}{r['max_s']:>8.2f}"
          f"{r['peak_mb']:>9.0f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
