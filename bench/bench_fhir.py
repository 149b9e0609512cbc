"""Benchmark of the FHIR reader (elig.records.fhir): speed against json.loads, and peak memory.

Run from the repository root::

    python bench/bench_fhir.py                   # Synthea bundles from $ELIG_SYNTHEA_DIR or shared/ beside the checkout
    python bench/bench_fhir.py path/to/bundles   # another folder of FHIR bundles
    python bench/bench_fhir.py --entries 100000  # a bigger synthetic bundle

For each bundle it measures, in the same run and on the same text:

* ``json.loads`` of the file (the baseline: the least any Python reader must pay),
* ``read_fhir`` on the parsed data (elig's reader alone),

and prints entries per second and the ratio reader / json.loads, then the peak
memory (tracemalloc) of each. The synthetic bundle replicates the observations of
a Synthea bundle to ``--entries`` entries with fresh ids and a distinct date per
entry, so caches of repeated date strings do not flatter the figures.

Times are wall-clock on one core (best of N; the ratio is the median over N pairs
measured back to back); they are for comparison within one run, not absolute
promises. The figures are written to bench/results/fhir.json, which
docs/performance.md shows.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import gc
import json
import os
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from elig.records import fhir  # noqa: E402
from elig.records.fhir import read_fhir  # noqa: E402

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
RESULTS = ROOT / "bench" / "results" / "fhir.json"


def timings(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


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
    fhir._parse_date.cache_clear()
    fhir._coding.cache_clear()
    return read_fhir(data, label)


def measure(label: str, text: str, repeat: int) -> dict:
    data = json.loads(text)
    reading = cold_read(data, label)
    n = reading.entries
    # interleaved, so a change of machine load touches both alike; each pair gives one ratio
    pairs = [(timings(lambda: json.loads(text), 1)[0], timings(lambda: cold_read(data, label), 1)[0])
             for _ in range(repeat)]
    t_json = min(j for j, _ in pairs)
    t_read = min(r for _, r in pairs)
    ratios = sorted(r / j for j, r in pairs)
    mem_json = peak_bytes(lambda: json.loads(text))
    mem_read = peak_bytes(lambda: cold_read(data, label))
    p = reading.patient
    return {
        "label": label, "mb": len(text.encode("utf-8")) / 1e6, "entries": n, "facts": len(p.observations)
        + len(p.conditions) + len(p.procedures) + len(p.medications), "issues": len(p.issues),
        "t_json": t_json, "t_read": t_read, "mem_json": mem_json, "mem_read": mem_read, "repeat": repeat,
        "read_over_json": {"min": ratios[0], "median": statistics.median(ratios), "max": ratios[-1]},
    }


def report(rows: list[dict]) -> None:
    head = (f"{'bundle':<28} {'MB':>6} {'entries':>8} {'facts':>7} {'json.loads':>11} {'read_fhir':>10} "
            f"{'entries/s':>10} {'read/json':>9} {'peak json':>10} {'peak read':>10}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['label'][:28]:<28} {r['mb']:>6.2f} {r['entries']:>8} {r['facts']:>7} "
              f"{r['t_json'] * 1e3:>9.1f}ms {r['t_read'] * 1e3:>8.1f}ms "
              f"{r['entries'] / r['t_read']:>10,.0f} {r['read_over_json']['median']:>8.2f}x "
              f"{r['mem_json'] / 1e6:>8.1f}MB {r['mem_read'] / 1e6:>8.1f}MB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", nargs="?", type=Path, default=None, help="folder of FHIR bundles (*.json)")
    ap.add_argument("--entries", type=int, default=50_000, help="entries in the synthetic bundle (default 50000)")
    ap.add_argument("--repeat", type=int, default=10, help="best of N for the small bundles (default 10)")
    ap.add_argument("--output", type=Path, default=RESULTS, help="where the figures are written as JSON")
    args = ap.parse_args(argv)
    command = "python bench/bench_fhir.py " + " ".join(argv if argv is not None else sys.argv[1:])
    load_start = list(os.getloadavg())

    folder = args.folder or (DEFAULT_DIR if DEFAULT_DIR.is_dir() else FALLBACK_DIR)
    files = sorted(folder.glob("*.json"))
    if not files:
        print(f"no FHIR bundles in {folder}", file=sys.stderr)
        return 2
    print(f"Python {sys.version.split()[0]}, bundles from {folder}\n")
    rows = []
    template = None
    for path in files:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
            continue
        rows.append(measure(path.name, text, args.repeat))
        entries = data.get("entry") or []
        if template is None or len(entries) > len(template.get("entry") or []):
            template = data
    if template is not None:
        big = synthetic_bundle(template, args.entries)
        text = json.dumps(big)
        del big
        rows.append(measure(f"synthetic {args.entries:,} entries", text, max(1, args.repeat // 3)))
    report(rows)
    print("\nread/json: time of read_fhir on parsed data divided by json.loads of the same text "
          "(the baseline; median of the repeats, each pair measured back to back). "
          "peak: tracemalloc peak of each step alone.")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({
        "generated": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "command": command,
        "python": sys.version.split()[0], "bundles": str(folder.name if folder == FALLBACK_DIR else folder),
        "load_average_start": load_start, "load_average_end": list(os.getloadavg()), "rows": rows,
    }, indent=2) + "\n", encoding="utf-8")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
