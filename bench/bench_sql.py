"""Benchmark of batch screening in SQL: elig's compiled query against hand-written DuckDB SQL.

Run from the repository root (``make bench`` runs the default)::

    python bench/bench_sql.py                                  # 10k, 100k, 1M; Spark at 100k
    python bench/bench_sql.py --sizes 10000 --spark-size 0 --check 2000   # a quick run

What it does, on one generated population (``generate`` of bench/population.py, protocol
NCT06021067, evaluation date 2024-03-15):

1. Builds the Parquet tables (``elig.batch.tables``). The first ``--base`` patients
   (100,000 by default) are generated and read by elig's own reader; larger sizes are
   that population repeated with new patient keys and ids (1M = 10 copies), which takes
   seconds, so generating 1M stays well under two minutes.
2. Checks meaning before speed: elig on DuckDB decides every patient and criterion as
   the interpreter does on the first ``--check`` patients (100,000 by default), and the
   verdicts of the hand-written SQL agree with elig's.
3. Measures, each variant in its own process (so peak memory is its own), ``--repeat``
   times: hand-written DuckDB SQL (bench/handwritten.sql) and elig's compiled query on
   the same Parquet at each size, and elig on Spark ``local[2]`` at ``--spark-size``.
   Each run reads the Parquet and writes the result table to Parquet; elig's time
   includes compiling the protocol and building its concept and unit tables.

It prints patients/s, the ratio to hand-written SQL at the same size, min/median/max
times and peak resident memory (``ru_maxrss``; for Spark, the driver's Python process
and the JVM), and writes them to ``bench/results/sql.json``, which
docs/performance-sql.md renders as a table.
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


def _population():
    try:
        from population import AS_OF, generate
    except ImportError:  # before bench/population.py exists
        from bench_screen import AS_OF, generate
    return AS_OF, generate


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
        con.execute(f"COPY (SELECT {select} FROM read_parquet('{src}') t, range({copies}) k(i) "
                    f"WHERE t.pk + k.i * {base_n} < {n}) TO '{folder / (name + '.parquet')}' "
                    f"(FORMAT parquet)")
    con.close()
    return time.perf_counter() - t0


# ---------------------------------------------------------------- checks
def check(folder: Path, n: int, seed: int) -> dict:
    """elig on DuckDB against the interpreter (every criterion) and against the hand-written SQL (verdicts)."""
    import elig
    from elig.batch import runners
    from elig.engine.evaluator import evaluate

    as_of, generate = _population()
    protocol = elig.load_protocol(PROTOCOL)
    engine = runners.DuckDBEngine(folder)
    compiled, result = engine.run(protocol, as_of)
    rows = list(runners.rows(compiled, result))
    hand = [r[2] for r in engine.con.execute(_hand_sql(as_of)).fetchall()]
    agree_hand = sum(a == r.verdict for a, r in zip(hand, rows))
    differ = 0
    first = None
    for record, row in zip(generate(n, seed), rows):
        r = evaluate(protocol, elig.patient_from_data(record, "generated"), as_of)
        expected = (str(r.verdict), tuple((c.id, str(c.outcome)) for c in r.criteria))
        if expected != (row.verdict, row.outcomes):
            differ += 1
            first = first or (row.patient_id, expected, row.outcomes)
    engine.close()
    return {"patients": n, "criteria": len(compiled.criteria), "differ_from_interpreter": differ,
            "first_difference": first, "hand_written_agrees": agree_hand, "of": len(rows)}


def _hand_sql(as_of) -> str:
    return (ROOT / "bench" / "handwritten.sql").read_text(encoding="utf-8").replace("{AS_OF}", as_of.isoformat())


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


def measure(variant: str, folder: Path, repeat: int, threads: int | None, memory_limit: str | None) -> dict:
    import elig
    from elig.batch import runners

    as_of, _ = _population()
    protocol = elig.load_protocol(PROTOCOL)
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
                engine.write(protocol, as_of, Path(tmp) / f"spark-{i}")
                times.append(time.perf_counter() - t0)
            jvm = [m for m in (_peak_mb(p) for p in _descendants(os.getpid())) if m]
            extra["jvm_peak_mb"] = round(sum(jvm), 1)
            engine.close()
        else:
            for _ in range(repeat):
                engine = runners.DuckDBEngine(folder, threads=threads, memory_limit=memory_limit,
                                              temp_directory=str(Path(tmp) / "spill"))
                t0 = time.perf_counter()
                if variant == "hand":
                    engine.con.execute(f"COPY ({_hand_sql(as_of)}) TO '{out}' (FORMAT parquet)")
                else:
                    engine.write(protocol, as_of, out)
                times.append(time.perf_counter() - t0)
                engine.close()
    peak = _peak_mb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"times": times, "peak_mb": round(peak + extra.get("jvm_peak_mb", 0), 1), **extra}


def run_child(variant: str, folder: Path, args) -> dict:
    """One variant in a process of its own: its peak memory is its own, not the parent's."""
    cmd = [sys.executable, __file__, "--measure", variant, "--tables", str(folder), "--repeat", str(args.repeat),
           "--memory-limit", args.memory_limit]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} on {folder} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--spark-size", type=int, default=100_000, help="0: no Spark run")
    ap.add_argument("--base", type=int, default=100_000, help="distinct generated patients")
    ap.add_argument("--check", type=int, default=100_000, help="patients checked against the interpreter")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=20240315)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: every core)")
    ap.add_argument("--memory-limit", default="2GB", help="DuckDB memory_limit; beyond it DuckDB spills to disk")
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--tables", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.tables, args.repeat, args.threads or None, args.memory_limit)))
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s]
    base_n = min(args.base, max(sizes + [args.spark_size]))
    with tempfile.TemporaryDirectory(prefix="elig-bench-sql-") as tmp:
        tmp = Path(tmp)
        base = tmp / "base"
        t_base = build_base(base, base_n, args.seed)
        print(f"generated and read {base_n:,} patients into Parquet tables: {t_base:.1f} s")
        folders = {}
        generation = {str(base_n): round(t_base, 1)}
        for n in sorted(set(sizes + ([args.spark_size] if args.spark_size else []))):
            if n == base_n:
                folders[n] = base
                continue
            t = derive(base, base_n, tmp / f"n{n}", n)
            folders[n] = tmp / f"n{n}"
            generation[str(n)] = round(t_base + t, 1) if n > base_n else round(t, 1)
            print(f"tables of {n:,} patients from the base: {t:.1f} s")

        n_check = min(args.check, base_n)
        if n_check == base_n:
            check_folder = base
        else:
            check_folder = tmp / "check"
            derive(base, base_n, check_folder, n_check)
        checked = check(check_folder, n_check, args.seed)
        print(f"check on {n_check:,} patients x {checked['criteria']} criteria: "
              f"{checked['differ_from_interpreter']} differ from the interpreter; hand-written SQL verdicts agree "
              f"on {checked['hand_written_agrees']:,}/{checked['of']:,}")
        if checked["differ_from_interpreter"]:
            print(f"  first difference: {checked['first_difference']}")

        results = []
        print()
        print(f"{'variant':<30}{'patients':>11}{'patients/s':>13}{'× hand SQL':>12}"
              f"{'min s':>8}{'median s':>10}{'max s':>8}{'peak MB':>9}")
        for n in sizes:
            hand = run_child("hand", folders[n], args)
            mine = run_child("elig", folders[n], args)
            for name, m in (("hand-written DuckDB SQL", hand), ("elig on DuckDB", mine)):
                results.append(_row(name, n, m, min(hand["times"])))
        if args.spark_size:
            n = args.spark_size
            hand = next((r for r in results if r["variant"] == "hand-written DuckDB SQL" and r["patients"] == n), None)
            base_time = hand["min_s"] if hand else min(run_child("hand", folders[n], args)["times"])
            m = run_child("spark", folders[n], args)
            results.append(_row("elig on Spark local[2]", n, m, base_time))
        for r in results:
            print(f"{r['variant']:<30}{r['patients']:>11,}{r['patients_per_s']:>13,.0f}{r['ratio_to_hand_sql']:>12.2f}"
                  f"{r['min_s']:>8.2f}{r['median_s']:>10.2f}{r['max_s']:>8.2f}{r['peak_mb']:>9.0f}")

        import duckdb

        report = {
            "benchmark": "bench/bench_sql.py", "command": "python bench/bench_sql.py " + " ".join(argv or sys.argv[1:]),
            "protocol": "NCT06021067", "criteria": checked["criteria"],
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "duckdb": duckdb.__version__,
                        "platform": platform.platform()},
            "generation_s": generation, "check": checked, "results": results,
            "note": "best of --repeat runs is min_s; ratio = elig min / hand-written min at the same size; "
                    f"sizes above {base_n:,} repeat the {base_n:,} generated patients with new keys",
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nwrote {args.out}")
    return 0 if not checked["differ_from_interpreter"] else 1


def _row(name: str, n: int, m: dict, hand_min: float) -> dict:
    t = m["times"]
    row = {"variant": name, "patients": n, "patients_per_s": round(n / min(t)), "ratio_to_hand_sql": round(min(t) / hand_min, 2),
           "min_s": round(min(t), 3), "median_s": round(statistics.median(t), 3), "max_s": round(max(t), 3),
           "peak_mb": m["peak_mb"]}
    if "session_start_s" in m:
        row["session_start_s"] = m["session_start_s"]
    return row


if __name__ == "__main__":
    sys.exit(main())
