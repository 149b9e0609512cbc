"""Benchmark of batch screening in SQL: elig's compiled query against hand-written DuckDB SQL.

Run from the repository root (``make bench`` runs the default)::

    python bench/bench_sql.py                                  # 10k, 100k, 1M; Spark at 100k
    python bench/bench_sql.py --sizes 10000 --spark-size 0 --check 2000 --base 2000 --gen-repeat 1   # a quick run

What it does, on one generated population (``generate`` of bench/population.py, protocol
NCT06021067, evaluation date 2024-03-15):

1. Builds the Parquet tables (``elig.batch.tables``). ``--base`` patients (10,000 by
   default) are generated and read by elig's own reader; larger sizes are that population
   repeated with new patient keys and ids (1M = 100 copies, written with pyarrow in patient
   order). Building the largest population is timed ``--gen-repeat`` times (3), from nothing,
   with CPU time and load average.
2. Checks meaning before speed, on the first ``--check`` generated patients (100,000 by
   default, in tables of their own): elig on DuckDB decides every patient and criterion
   as the interpreter does, and both hand-written queries decide every patient and
   criterion as elig does. Any difference makes the benchmark exit with status 1.
3. Measures, each variant in its own process (so the peak memory is its own), ``--repeat``
   times, on the same Parquet: hand-written DuckDB SQL and elig's compiled query, on all
   32 criteria (bench/handwritten.sql) and on the 9 organ-function criteria I4.1 to I4.9
   (bench/handwritten_organ.sql, the measurement of the issue that asked for SQL), at
   each size; and elig on Spark ``local[2]`` at ``--spark-size``. On DuckDB both queries run
   on the same chunks of ``--chunk`` patients (``elig.batch.runners.CHUNK``), their results
   streamed into one Parquet file; elig's time includes compiling the protocol and
   building its concept and unit tables. Spark writes its result as Parquet too.

It prints patients/s, the ratio to the hand-written SQL of the same criteria and size (of
wall time and of CPU time), min/median/max times, CPU time, peak resident memory (VmHWM of
the variant's process; for Spark, the driver's Python process plus the JVM) and the load
average while it ran, and writes them to ``bench/results/sql.json``, which
docs/performance-sql.md renders as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
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
    """``n`` patients from the base tables: its first ``n``, or copies of it with new keys and ids.

    Each table is read once into Arrow and written again, copy after copy, as row groups of
    the base's size with ``pk`` shifted and ``-k`` appended to the ids: the rows stay in ``pk``
    order (as elig's own reader writes them), and nothing goes through Python row by row."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from elig.batch.tables import TABLES

    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    copies = -(-n // base_n)
    for name in TABLES:
        table = pq.read_table(base / f"{name}.parquet")
        cols = table.schema.names
        with pq.ParquetWriter(folder / f"{name}.parquet", table.schema) as out:
            for k in range(copies):
                keep = min(base_n, n - k * base_n)
                part = table if keep == base_n else table.filter(pc.less(table["pk"], keep))
                part = part.set_column(cols.index("pk"), "pk", pc.add(part["pk"], k * base_n))
                if k and "patient_id" in cols:
                    ids = pc.binary_join_element_wise(part["patient_id"], pa.scalar(f"-{k}"), "")
                    part = part.set_column(cols.index("patient_id"), "patient_id", ids)
                out.write_table(part)
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
            memory_limit: str | None, chunk: int) -> dict:
    from elig.batch import runners

    as_of, _ = _population()
    checked = protocol(scope)
    times, cpu = [], []
    extra = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.parquet"
        if variant == "spark":
            t0 = time.perf_counter()
            engine = runners.SparkEngine(folder)
            extra["session_start_s"] = round(time.perf_counter() - t0, 2)
            for i in range(repeat):
                t0, c0 = time.perf_counter(), _cpu() + _jvm_cpu(os.getpid())
                engine.write(checked, as_of, Path(tmp) / f"spark-{i}")
                times.append(time.perf_counter() - t0)
                cpu.append(_cpu() + _jvm_cpu(os.getpid()) - c0)
            jvm = [m for m in (_peak_mb(p) for p in _descendants(os.getpid())) if m]
            extra["jvm_peak_mb"] = round(sum(jvm), 1)
            engine.close()
        else:
            for _ in range(repeat):
                # The hand-written query runs as elig's does: on the same chunks of patients, its result
                # streamed into one Parquet file, so the two are compared on the same footing.
                engine = runners.DuckDBEngine(folder, threads=threads, memory_limit=memory_limit,
                                              temp_directory=str(Path(tmp) / "spill"), chunk=chunk)
                extra["threads"] = engine.con.execute("SELECT current_setting('threads')").fetchall()[0][0]
                extra["chunks"] = len(engine.chunks())
                t0, c0 = time.perf_counter(), _cpu()
                if variant == "hand":
                    runners.write_parquet(engine.batches(hand_sql(scope, as_of)), out)
                else:
                    engine.write(checked, as_of, out)
                times.append(time.perf_counter() - t0)
                cpu.append(_cpu() - c0)
                engine.close()
    peak = _peak_mb() or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"times": times, "cpu": cpu, "peak_mb": round(peak + extra.get("jvm_peak_mb", 0), 1), **extra}


def _cpu() -> float:
    """CPU time of this process and its children so far (every DuckDB thread; Spark's JVM once it has ended)."""
    r, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def _jvm_cpu(root: int) -> float:
    """CPU time of the processes ``root`` started and that still run (Spark's JVM), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in _descendants(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            continue
    return total


def run_child(variant: str, scope: str, folder: Path, args) -> dict:
    """One variant in a process of its own: its peak memory is its own, not the parent's."""
    cmd = [sys.executable, __file__, "--measure", variant, "--scope", scope, "--tables", str(folder),
           "--repeat", str(args.repeat), "--memory-limit", args.memory_limit, "--threads", str(args.threads),
           "--chunk", str(args.chunk)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} ({scope}) on {folder} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    from elig.batch.runners import CHUNK

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--spark-size", type=int, default=100_000, help="0: no Spark run")
    ap.add_argument("--base", type=int, default=10_000, help="distinct generated patients the sizes repeat")
    ap.add_argument("--check", type=int, default=100_000, help="generated patients checked against the interpreter")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--gen-repeat", type=int, default=3, help="times the largest population is built, to time it")
    ap.add_argument("--seed", type=int, default=20240315)
    ap.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: every core, DuckDB's default)")
    ap.add_argument("--memory-limit", default="2GB", help="DuckDB memory_limit; beyond it DuckDB spills to disk")
    ap.add_argument("--chunk", type=int, default=CHUNK, help="patients per run of a DuckDB query (0: all at once)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--measure", help=argparse.SUPPRESS)
    ap.add_argument("--scope", default="all", help=argparse.SUPPRESS)
    ap.add_argument("--tables", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.scope, args.tables, args.repeat, args.threads or None,
                                 args.memory_limit, args.chunk)))
        return 0

    load_start = os.getloadavg()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    every = sorted(set(sizes + ([args.spark_size] if args.spark_size else [])))
    base_n = min(args.base, max(every))
    largest = max(every)
    with tempfile.TemporaryDirectory(prefix="elig-bench-sql-") as tmp:
        tmp = Path(tmp)
        # Building the largest population, timed --gen-repeat times from nothing (generate, read, repeat).
        gen_runs = []
        for i in range(max(1, args.gen_repeat)):
            shutil.rmtree(tmp / "base", ignore_errors=True)
            shutil.rmtree(tmp / f"n{largest}", ignore_errors=True)
            load = os.getloadavg()[0]
            t0, c0 = time.perf_counter(), _cpu()
            t_base = build_base(tmp / "base", base_n, args.seed)
            t_copy = derive(tmp / "base", base_n, tmp / f"n{largest}", largest) if largest > base_n else 0.0
            gen_runs.append({"s": round(time.perf_counter() - t0, 1), "cpu_s": round(_cpu() - c0, 1),
                             "generate_s": round(t_base, 1), "repeat_s": round(t_copy, 1), "load_1m": round(load, 2)})
            print(f"population of {largest:,} patients built in {gen_runs[-1]['s']:.1f} s ({base_n:,} generated and "
                  f"read: {t_base:.1f} s; repeated: {t_copy:.1f} s; CPU {gen_runs[-1]['cpu_s']:.1f} s; "
                  f"load {load:.2f})", flush=True)
        walls = [g["s"] for g in gen_runs]
        generation = {"patients": largest, "base_patients": base_n, "runs": gen_runs, "min_s": min(walls),
                      "median_s": round(statistics.median(walls), 1), "max_s": max(walls)}
        base = tmp / "base"
        folders = {n: (base if n == base_n else tmp / f"n{n}") for n in every}
        for n in every:
            if n not in (base_n, largest):
                derive(base, base_n, folders[n], n)

        check_folder = tmp / "check"
        if args.check <= base_n:
            derive(base, base_n, check_folder, args.check)
        else:
            build_base(check_folder, args.check, args.seed)
        checked = check(check_folder, args.check, args.seed)
        a, o = checked["all"], checked["organ"]
        print(f"check on {args.check:,} generated patients: elig on DuckDB differs from the interpreter on "
              f"{a['differ_from_interpreter']} (x {a['criteria']} criteria); the hand-written SQL differs from elig "
              f"on {a['hand_written_differs']} (all criteria) and {o['hand_written_differs']} (organ function)",
              flush=True)
        if a["differ_from_interpreter"]:
            print(f"  first difference: {a['first_difference']}")
        if a["hand_written_differs"] or o["hand_written_differs"]:
            print(f"  first hand-written difference: {a['first_hand_difference'] or o['first_hand_difference']}")
        failed = a["differ_from_interpreter"] or a["hand_written_differs"] or o["hand_written_differs"]

        results = []
        print()
        print(f"{'variant':<26}{'criteria':<27}{'patients':>10}{'patients/s':>12}{'× hand':>8}{'× CPU':>7}"
              f"{'min s':>8}{'median s':>9}{'max s':>8}{'CPU s':>7}{'peak MB':>9}{'load':>6}")
        for n in sizes:
            for scope in ("all", "organ"):
                hand = _child("hand", scope, folders[n], args)
                mine = _child("elig", scope, folders[n], args)
                for name, m in (("hand-written DuckDB SQL", hand), ("elig on DuckDB", mine)):
                    results.append(_row(name, scope, n, m, hand))
                    _print(results[-1])
        if args.spark_size:
            n = args.spark_size
            hand = next((r["_m"] for r in results if r["variant"] == "hand-written DuckDB SQL" and r["patients"] == n
                         and r["scope"] == "all"), None) or _child("hand", "all", folders[n], args)
            results.append(_row("elig on Spark local[2]", "all", n, _child("spark", "all", folders[n], args), hand))
            _print(results[-1])
        for r in results:
            r.pop("_m", None)

        import duckdb

        report = {
            "benchmark": "bench/bench_sql.py",
            "command": "python bench/bench_sql.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "protocol": "NCT06021067", "scopes": SCOPES,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "duckdb": duckdb.__version__,
                        "platform": platform.platform(),
                        "load_average_start": [round(x, 2) for x in load_start],
                        "load_average_end": [round(x, 2) for x in os.getloadavg()]},
            "duckdb_settings": {"threads": args.threads or "every core", "memory_limit": args.memory_limit,
                                "chunk": args.chunk or "all patients at once"},
            "generation": generation, "check": checked, "results": results, "failed": bool(failed),
            "note": f"min_s is the best of {args.repeat} runs; ratio = min / min of the hand-written SQL of the same "
                    "criteria and size, in the same run (cpu_ratio: the same with CPU time); sizes above "
                    f"{base_n:,} repeat the {base_n:,} generated patients with new keys and ids",
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        print(f"\nwrote {args.out} (load average {load_start[0]:.2f} at the start, {os.getloadavg()[0]:.2f} at the end)")
    return 1 if failed else 0


def _child(variant: str, scope: str, folder: Path, args) -> dict:
    load = os.getloadavg()[0]
    m = run_child(variant, scope, folder, args)
    m["load_1m"] = round((load + os.getloadavg()[0]) / 2, 2)
    return m


def _row(name: str, scope: str, n: int, m: dict, hand: dict) -> dict:
    t, c = m["times"], m["cpu"]
    row = {"variant": name, "scope": scope, "patients": n, "patients_per_s": round(n / min(t)),
           "ratio_to_hand_sql": round(min(t) / min(hand["times"]), 2),
           "cpu_ratio_to_hand_sql": round(min(c) / min(hand["cpu"]), 2), "min_s": round(min(t), 3),
           "median_s": round(statistics.median(t), 3), "max_s": round(max(t), 3),
           "cpu_min_s": round(min(c), 2), "cpu_median_s": round(statistics.median(c), 2),
           "peak_mb": m["peak_mb"], "load_1m": m["load_1m"], "_m": m}
    for key in ("session_start_s", "jvm_peak_mb", "threads", "chunks"):
        if key in m:
            row[key] = m[key]
    return row


def _print(r: dict) -> None:
    print(f"{r['variant']:<26}{SCOPES[r['scope']]:<27}{r['patients']:>10,}{r['patients_per_s']:>12,.0f}"
          f"{r['ratio_to_hand_sql']:>8.2f}{r['cpu_ratio_to_hand_sql']:>7.2f}{r['min_s']:>8.2f}{r['median_s']:>9.2f}"
          f"{r['max_s']:>8.2f}{r['cpu_min_s']:>7.1f}{r['peak_mb']:>9.0f}{r['load_1m']:>6.1f}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
