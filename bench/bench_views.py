"""Benchmark of the batch route's FHIR reading: the SQL-on-FHIR views against the FHIR reader.

Run from the repository root::

    python bench/bench_views.py                  # Synthea bundles from $ELIG_SYNTHEA_DIR or shared/ beside the checkout
    python bench/bench_views.py path/to/bundles  # another folder of FHIR bundles
    python bench/bench_views.py --repeat 15

On the same parsed bundles, in the same run and on one core, it measures:

* ``read_fhir``: elig's FHIR reader (what ``elig explain`` reads with), the baseline;
* ``views``: ``elig.batch.assemble.patient_from_fhir``, the batch route: elig's runner
  evaluates the 17 ViewDefinitions on each resource, and the step after the views
  rebuilds and reads each resource from its rows;
* ``views: rows only``: the ViewDefinitions alone (what Pathling would do elsewhere).

It prints min / median / max CPU seconds over the repeats, resources per second and the
ratio to the reader, and checks that both routes give the same tables. The figures are
written down in docs/views.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from elig.batch import assemble, tables  # noqa: E402
from elig.batch.views import bundle_resources  # noqa: E402
from elig.records.fhir import read_fhir  # noqa: E402

DEFAULT_DIR = Path(os.environ.get("ELIG_SYNTHEA_DIR", ROOT.parent / "shared" / "data" / "fhir"))
FALLBACK_DIR = ROOT / "tests" / "data" / "fhir"


def timings(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        out.append(time.process_time() - t0)
    return out


def rows_only(bundles: list[dict]) -> None:
    for b in bundles:
        rows = assemble.ViewRows()
        for r in bundle_resources(b, rows.by_type):
            rows.add(r)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?", type=Path)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    folder = args.folder or (DEFAULT_DIR if DEFAULT_DIR.is_dir() else FALLBACK_DIR)
    bundles = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]
    bundles = [b for b in bundles if b.get("resourceType") == "Bundle"]
    resources = sum(len(b.get("entry") or []) for b in bundles)
    for b in bundles:  # the same reading, or the figures mean nothing
        assert tables.rows_of(read_fhir(b).patient, 0) == tables.rows_of(assemble.patient_from_fhir(b), 0)
    runs = {
        "read_fhir": lambda: [read_fhir(b) for b in bundles],
        "views": lambda: [assemble.patient_from_fhir(b) for b in bundles],
        "views: rows only": lambda: rows_only(bundles),
    }
    print(f"{len(bundles)} bundles, {resources} entries ({folder}); CPU seconds over {args.repeat} runs")
    base = None
    for name, fn in runs.items():
        fn()  # warm: caches of dates, units and parsed paths
        t = timings(fn, args.repeat)
        best = min(t)
        base = base or best
        print(f"  {name:18} min {best:.4f}  median {statistics.median(t):.4f}  max {max(t):.4f}  "
              f"{resources / best:>10,.0f} entries/s  x{best / base:.1f}")


if __name__ == "__main__":
    main()
