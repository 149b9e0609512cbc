"""Benchmark of the record readers: each against json.loads of the same input, in one process.

Run from the repository root (``make bench`` runs the default)::

    python bench/bench_readers.py                    # 10,000 native records, the Synthea bundles, 50,000 entries
    python bench/bench_readers.py --patients 2000 --entries 20000 --repeat 5
    python bench/bench_readers.py path/to/bundles    # another folder of FHIR bundles

Issue 14 asks both readers to cost at most 3× ``json.loads`` of the same input. Measured
here, in the same process and on the same text:

* **native**: ``patient_from_data`` on the bench population (``bench/population.py``, the
  NDJSON file ``bench/bench_engine.py`` streams), in chunks of 200 lines, each chunk twice:
  (A) ``json.loads`` of each line, (B) ``json.loads`` of each line and the reader on what it
  gave, line by line as a screening run reads. The reader's time is B − A; each pass frees
  a record before the next, so both allocate alike. The reader's memos of repeated texts
  (dates, codes, units) stay filled between records, as they do in a screening run. Every
  record is read as file "bench", as ``bench_engine.py`` reads them, and once more (with
  the collector paused) as ``elig screen`` names them, by file and line
  (``population-10000-….ndjson:17``): a target of its own, since then the Source of
  every entry, and every issue, names another record.
* **FHIR**: ``read_fhir`` on each Synthea bundle and on a synthetic bundle of their
  observations replicated to ``--entries`` entries with fresh ids and a distinct date
  each; its memos are emptied before every read, so repeated date strings do not
  flatter it. One repeat is ``json.loads`` of the file, then a read, back to back, each
  done as many times as takes about 20 ms (one time for a big bundle) and averaged.

Every figure is given as wall-clock time and as CPU time (``time.process_time``): on a
machine shared with other jobs the CPU time is the steadier. Each is measured twice:
with the cycle collector paused while timing, after a collection (as ``timeit`` does:
the work each step does), and with it left on. A collection that starts inside one
timed step walks every object alive, the other step's too, so with the collector on a
step is charged for objects it did not make; the targets are judged on the paused
figures and the others are shown beside them. Ratios are min / median / max over the
repeats; the load average (1 minute) is recorded while each part runs. Peak memory is
tracemalloc's, for each step alone. The figures are written to
bench/results/readers.json, which docs/performance.md shows.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "bench"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench_engine import population_file  # noqa: E402
from population import DEFAULT_SEED  # noqa: E402

from elig.records import fhir  # noqa: E402
from elig.records.fhir import read_fhir  # noqa: E402
from elig.records.loader import patient_from_data  # noqa: E402


def _synthea_dir() -> Path:
    """The shared Synthea bundles: $ELIG_SYNTHEA_DIR, or shared/ beside the checkout (as tests/conftest.py finds them)."""
    if os.environ.get("ELIG_SYNTHEA_DIR"):
        return Path(os.environ["ELIG_SYNTHEA_DIR"])
    for candidate in (ROOT.parent / "shared" / "data" / "fhir", ROOT.parent.parent / "shared" / "data" / "fhir"):
        if candidate.is_dir():
            return candidate
    return ROOT.parent / "shared" / "data" / "fhir"


DEFAULT_DIR = _synthea_dir()
FALLBACK_DIR = ROOT / "tests" / "data" / "fhir"
RESULTS = ROOT / "bench" / "results" / "readers.json"
CHUNK = 200  # native records parsed, then read, at a time
clock, cpu = time.perf_counter, time.process_time


def stats(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def timed(fn) -> tuple[float, float]:
    """(wall, CPU) seconds of one call."""
    w0, c0 = clock(), cpu()
    fn()
    return clock() - w0, cpu() - c0


def peak_bytes(fn) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del result
    return peak


# ---------------------------------------------------------------- native records
def measure_native(patients: int, seed: int, repeat: int) -> dict:
    path = population_file(patients, seed)
    lines = path.read_text(encoding="utf-8").splitlines()
    chunks = [lines[i:i + CHUNK] for i in range(0, len(lines), CHUNK)]
    loads, read = json.loads, patient_from_data
    issues = sum(len(read(loads(line), "bench").issues) for line in lines[:1000])
    out = {"label": f"bench population, {len(lines):,} native records", "file": str(path.relative_to(ROOT)),
           "records": len(lines), "mb": sum(len(line.encode("utf-8")) for line in lines) / 1e6, "repeat": repeat,
           "issues_in_first_1000": issues}
    # "bench" names every record, as bench_engine.py does; `elig screen` names each by its file and
    # line, so the Sources of its entries are all new (the last run, with the collector paused).
    labelled = [[f"{path.name}:{i + k + 1}" for k in range(len(chunk))] for i, chunk in zip(range(0, len(lines), CHUNK), chunks)]
    for key, collector in (("gc_paused", "paused"), ("gc_on", "on"), ("distinct_files", "paused")):
        per_repeat, load = [], []
        for _ in range(repeat):
            load.append(os.getloadavg()[0])
            jw = jc = bw = bc = 0.0
            for chunk, names in zip(chunks, labelled if key == "distinct_files" else [["bench"] * CHUNK] * len(chunks)):
                # A: json.loads of each line; B: json.loads and the reader, line by line, as a screening
                # run reads. The reader's time is B - A: each pass frees each record before the next.
                with collecting(collector):
                    w0, c0 = clock(), cpu()
                    for line in chunk:
                        loads(line)
                    w1, c1 = clock(), cpu()
                with collecting(collector):
                    w2, c2 = clock(), cpu()
                    for line, name in zip(chunk, names):
                        read(loads(line), name)
                    w3, c3 = clock(), cpu()
                jw, jc, bw, bc = jw + w1 - w0, jc + c1 - c0, bw + w3 - w2, bc + c3 - c2
            per_repeat.append((jw, jc, bw - jw, bc - jc))
        n = len(lines)
        out[key] = {
            "json_us": {"wall": min(r[0] for r in per_repeat) / n * 1e6, "cpu": min(r[1] for r in per_repeat) / n * 1e6},
            "read_us": {"wall": min(r[2] for r in per_repeat) / n * 1e6, "cpu": min(r[3] for r in per_repeat) / n * 1e6},
            "read_over_json": {"wall": stats([r[2] / r[0] for r in per_repeat]),
                               "cpu": stats([r[3] / r[1] for r in per_repeat])},
            "load_average": stats(load)}
    sample = lines[:CHUNK]
    out["mem_json"] = peak_bytes(lambda: [loads(line) for line in sample])
    out["mem_read"] = peak_bytes(lambda: [read(d, "bench") for d in [loads(line) for line in sample]])
    return out


class collecting:
    """``with collecting("paused")``: the cycle collector off while timing (as ``timeit`` does), after a
    collection; ``"on"``: after a collection, left on. A collection started inside a timed call
    walks every object alive, so it charges one step for the other's objects: both are shown."""

    def __init__(self, collector: str):
        self.pause = collector == "paused"

    def __enter__(self):
        gc.collect()
        if self.pause:
            gc.disable()

    def __exit__(self, *exc):
        gc.enable()


# ---------------------------------------------------------------- FHIR bundles
def synthetic_bundle(template: dict, entries: int) -> dict:
    """``entries`` Observation entries copied round-robin from the template, each with its own id and date."""
    observations = [e for e in template.get("entry", [])
                    if isinstance(e, dict) and _obj(e.get("resource")).get("resourceType") == "Observation"]
    if not observations:
        raise SystemExit("the template bundle has no Observation to replicate")
    patient = next((e for e in template.get("entry", [])
                    if isinstance(e, dict) and _obj(e.get("resource")).get("resourceType") == "Patient"), None)
    out = [copy.deepcopy(patient)] if patient else []
    start = dt.datetime(2000, 1, 1, 8, 0, tzinfo=dt.timezone.utc)
    for i in range(entries - len(out)):
        entry = copy.deepcopy(observations[i % len(observations)])
        rid = f"00000000-0000-4000-8000-{i:012d}"
        entry["fullUrl"] = f"urn:uuid:{rid}"
        resource = entry["resource"]
        resource["id"] = rid
        stamp = (start + dt.timedelta(minutes=17 * i)).isoformat()
        resource.pop("effectivePeriod", None)
        resource["effectiveDateTime"] = stamp
        resource["issued"] = stamp
        out.append(entry)
    return {"resourceType": "Bundle", "type": "collection", "entry": out}


def _obj(x) -> dict:
    return x if isinstance(x, dict) else {}


def cold_read(data: dict, label: str):
    """read_fhir with its memo caches (date strings, codings) emptied: every run pays in full."""
    fhir._DATE.clear()
    fhir._CODING.clear()
    return read_fhir(data, label)


def measure_bundle(label: str, text: str, repeat: int) -> dict:
    data = json.loads(text)
    reading = cold_read(data, label)
    p = reading.patient
    out = {"label": label, "mb": len(text.encode("utf-8")) / 1e6, "entries": reading.entries,
           "facts": len(p.observations) + len(p.conditions) + len(p.procedures) + len(p.medications),
           "issues": len(p.issues), "repeat": repeat}
    # A small bundle is parsed and read several times a measurement (at least ~20 ms of parsing),
    # so that a measurement outlasts the scheduler's time slices on a busy machine.
    inner = max(1, math.ceil(0.02 / timed(lambda: json.loads(text))[1]))
    out["calls_per_measurement"] = inner

    def parse_all():
        for _ in range(inner):
            json.loads(text)

    def read_all():
        for _ in range(inner):
            cold_read(data, label)

    for collector in ("paused", "on"):
        pairs, load = [], []
        for _ in range(repeat):  # interleaved, so a change of machine load touches both alike
            load.append(os.getloadavg()[0])
            with collecting(collector):
                parse = timed(parse_all)
            with collecting(collector):
                pairs.append(tuple(x / inner for x in parse + timed(read_all)))
        out[f"gc_{collector}"] = {
            "t_json": {"wall": min(x[0] for x in pairs), "cpu": min(x[1] for x in pairs)},
            "t_read": {"wall": min(x[2] for x in pairs), "cpu": min(x[3] for x in pairs)},
            "read_over_json": {"wall": stats([x[2] / x[0] for x in pairs]), "cpu": stats([x[3] / x[1] for x in pairs])},
            "load_average": stats(load)}
    out["mem_json"] = peak_bytes(lambda: json.loads(text))
    out["mem_read"] = peak_bytes(lambda: cold_read(data, label))
    return out


def measure_fhir(folder: Path, entries: int, repeat: int) -> list[dict]:
    rows, template = [], None
    for path in sorted(folder.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
            continue
        rows.append(measure_bundle(path.name, text, repeat))
        if template is None or len(data.get("entry") or []) > len(template.get("entry") or []):
            template = data
    if template is not None and entries:
        big = synthetic_bundle(template, entries)
        text = json.dumps(big)
        del big
        rows.append(measure_bundle(f"synthetic {entries:,} entries", text, max(3, repeat // 2)))
    return rows


# ---------------------------------------------------------------- report
def _ratio(m: dict) -> str:
    w, c = m["read_over_json"]["wall"], m["read_over_json"]["cpu"]
    return f"{w['min']:.2f}/{w['median']:.2f}/{w['max']:.2f}  {c['min']:.2f}/{c['median']:.2f}/{c['max']:.2f}"


def targets(native: dict | None, bundles: list[dict]) -> list[dict]:
    """Issue 14: each reader at most 3× json.loads of the same input: the median over the repeats,
    wall clock and CPU time, the collector paused (and, shown beside it, left on)."""
    def worst(m: dict) -> float:
        return max(m["read_over_json"]["wall"]["median"], m["read_over_json"]["cpu"]["median"])

    def measured(row: dict) -> str:
        p, o = row["gc_paused"]["read_over_json"], row["gc_on"]["read_over_json"]
        return (f"{p['wall']['median']:.2f}× wall, {p['cpu']['median']:.2f}× CPU (min–max "
                f"{p['wall']['min']:.2f}–{p['wall']['max']:.2f}×, {p['cpu']['min']:.2f}–{p['cpu']['max']:.2f}×; "
                f"collector on: {o['wall']['median']:.2f}×, {o['cpu']['median']:.2f}×)")

    out = []
    if native:
        out.append({"target": "native reader ≤ 3× json.loads", "where": native["label"] + ", each named \"bench\"",
                    "measured": measured(native), "met": worst(native["gc_paused"]) <= 3})
        if "distinct_files" in native:
            d = native["distinct_files"]["read_over_json"]
            out.append({"target": "native reader ≤ 3× json.loads, records named as `elig screen` names them",
                        "where": native["label"] + ", each named by its file and line",
                        "measured": (f"{d['wall']['median']:.2f}× wall, {d['cpu']['median']:.2f}× CPU "
                                     f"(min–max {d['wall']['min']:.2f}–{d['wall']['max']:.2f}×, "
                                     f"{d['cpu']['min']:.2f}–{d['cpu']['max']:.2f}×)"),
                        "met": worst(native["distinct_files"]) <= 3})
    if bundles:
        row = max(bundles, key=lambda r: worst(r["gc_paused"]))
        out.append({"target": "FHIR reader ≤ 3× json.loads",
                    "where": f"{len(bundles)} bundles; the highest, {row['label']}",
                    "measured": measured(row), "met": worst(row["gc_paused"]) <= 3})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", nargs="?", type=Path, default=None, help="folder of FHIR bundles (*.json)")
    ap.add_argument("--patients", type=int, default=10_000, help="native records read (default 10000; 0: none)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--entries", type=int, default=50_000, help="entries in the synthetic bundle (default 50000; 0: none)")
    ap.add_argument("--repeat", type=int, default=7, help="repeats (default 7; the synthetic bundle: half, at least 3)")
    ap.add_argument("--output", type=Path, default=RESULTS, help="where the figures are written as JSON")
    args = ap.parse_args(argv)
    command = "python bench/bench_readers.py " + " ".join(argv if argv is not None else sys.argv[1:])
    load_start = list(os.getloadavg())
    folder = args.folder or (DEFAULT_DIR if DEFAULT_DIR.is_dir() else FALLBACK_DIR)
    print(f"Python {platform.python_version()}; load average {load_start[0]:.2f}; bundles from {folder}\n", flush=True)

    native = measure_native(args.patients, args.seed, args.repeat) if args.patients else None
    bundles = measure_fhir(folder, args.entries, args.repeat)
    head = (f"{'input':<34} {'collector':<9} {'json.loads':>11} {'reader':>9}   "
            f"{'reader ÷ json: wall':<19} {'CPU (min/median/max)':<20} {'load':>9}")
    print(head)
    print("-" * len(head))
    for collector in ("paused", "on"):
        if native:
            m = native[f"gc_{collector}"]
            print(f"{native['label'][:34]:<34} {collector:<9} {m['json_us']['cpu']:>9.1f}µs {m['read_us']['cpu']:>7.1f}µs"
                  f"   {_ratio(m)}   {m['load_average']['min']:.1f}–{m['load_average']['max']:.1f}")
        for r in bundles:
            m = r[f"gc_{collector}"]
            print(f"{r['label'][:34]:<34} {collector:<9} {m['t_json']['cpu'] * 1e3:>9.1f}ms "
                  f"{m['t_read']['cpu'] * 1e3:>7.1f}ms   {_ratio(m)}   "
                  f"{m['load_average']['min']:.1f}–{m['load_average']['max']:.1f}")
    if native:
        m = native["distinct_files"]
        print(f"{'  … named by file and line':<34} {'paused':<9} {m['json_us']['cpu']:>9.1f}µs {m['read_us']['cpu']:>7.1f}µs"
              f"   {_ratio(m)}   {m['load_average']['min']:.1f}–{m['load_average']['max']:.1f}")
    print("\njson.loads and reader: best CPU time (per record for native records, per bundle for FHIR). "
          "reader ÷ json: min/median/max over the repeats, wall clock, then CPU time. collector: the cycle "
          "collector paused while timing (as timeit does), or left on.")
    goals = targets(native, bundles)
    for t in goals:
        print(f"  {'met    ' if t['met'] else 'NOT met'}  {t['target']} ({t['where']}): {t['measured']}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "command": command,
        "python": platform.python_version(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "bundles": str(folder.name if folder == FALLBACK_DIR else folder),
        "load_average_start": load_start, "load_average_end": list(os.getloadavg()),
        "native": native, "fhir": bundles, "targets": goals,
    }, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"written to {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
