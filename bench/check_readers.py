"""Differential check of the record readers: this checkout against another revision.

Run from the repository root::

    python bench/check_readers.py --against main          # the default inputs
    python bench/check_readers.py --against 0890ebb --patients 10000 --mutants 20000

Both readers, the native ``patient_from_data`` and the FHIR ``read_fhir``, are
rewritten now and then for speed; they must keep reading every record exactly as
before. This script reads the same inputs with the readers of this checkout and of
``--against`` (its ``elig/`` taken with ``git archive`` into a temporary folder),
each in its own process, and compares what they give, record by record:

* the bench population (``bench/population.py``, native records as ``json.loads``
  gives them);
* mutants of it and of the Synthea bundles: one to three fields of each record,
  anywhere in it, replaced by garbage (text, numbers, NaN, lists, mappings, broken
  dates, codes, units, yes/no words) or removed, or an unknown field added, so
  that every path that notes a data issue is taken;
* every record of the repository (``examples/``, ``tests/data/``), the records of
  every protocol case file, and the shared Synthea FHIR bundles, read from their
  files with ``load_patient``.

What is compared is the ``repr`` of the ``Patient`` read (every field of every
entry and every ``DataIssue``: location, message, hint, file; floats exactly), or
the message of the ``DataError`` raised. It prints how many records agree and the
first differences, and exits 1 on any difference. It is not part of ``make test``
(it takes a minute or two); run it before landing a change to a reader.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Field names the mutator may add or overwrite: the native format's and FHIR's.
FIELDS = (
    "id", "name", "sex", "gender", "birth_date", "birthDate", "pregnant", "lactating", "weight", "height",
    "observations", "conditions", "procedures", "medications", "attestations", "concept", "codes", "code",
    "value", "unit", "date", "effective", "reference_range", "reference", "low", "high", "result", "status",
    "onset", "abatement", "resolved", "grade", "stage", "class", "body_site", "laterality", "verification",
    "clinical_status", "start", "end", "category", "by", "system", "display", "resourceType", "valueQuantity",
    "valueString", "valueCodeableConcept", "valueBoolean", "valueInteger", "effectiveDateTime", "issued",
    "effectivePeriod", "component", "referenceRange", "coding", "onsetDateTime", "performedPeriod",
    "medicationReference", "fullUrl", "entry", "comparator", "dataAbsentReason", "notes", "mystery",
)
GARBAGE = (
    None, "", " ", "abc", "positive", "Detected", "unknown", "yes", "no", "n", 0, -1, 1.5, 1200, 10 ** 20,
    True, False, [], {}, math.nan, math.inf, "NaN", "1,200", "1,25", "1,200.5", "1e3", " 42 ", "pending",
    "2024-02-30", "2024-03", "2024", "2024-03-08", " 2024-03-08 ", "2024-03-08T10:00:00+05:00",
    "2024-03-08T24:00", "2023-12-31T23:30:00-12:00", "2024-03-00", "2024-00-08", "2024-03-00T10:00",
    "0000-01-01", "2024-3-8", "08/03/2024", "LOINC:2160-0", "http://loinc.org|2160-0", "loinc:",
    ["LOINC:2160-0", "SNOMED CT:22298006"], ["LOINC:2160-0", 5], [{"system": "LOINC", "code": "2160-0"}],
    {"system": "http://loinc.org", "code": "2160-0", "display": "Creatinine"}, {"coding": "x"},
    {"coding": [{"system": "http://loinc.org"}]}, "mg/dL", "µmol/L", "10^9/L", "furlongs", "%", "[IU]/L",
    {"low": 3, "high": 21, "unit": "µmol/L"}, {"low": "1,200", "high": "x"}, {"high": 40}, {"value": 5, "unit": "mg"},
    {"start": "2024-01-01", "end": "2023-01-01"}, "grade 2", "III", "NYHA class IV", 2.5, "left", "sideways",
    {"value": True, "by": "Dr Lee", "date": "2024-03-01"}, {"value": "maybe", "by": 5}, "x" * 300,
)


def _nodes(value, out: dict, kind: str = "top") -> dict:
    """Every mapping and list inside ``value`` (the places a mutation may hit), by the field that holds it."""
    if isinstance(value, dict):
        out.setdefault(kind, []).append(value)
        for key, v in value.items():
            _nodes(v, out, key)
    elif isinstance(value, list):
        out.setdefault(kind, []).append(value)
        for v in value:
            _nodes(v, out, kind + "[]")
    return out


def mutate(record, rng: random.Random):
    """A copy of ``record`` with one to three fields garbled, removed or added.

    The place is drawn by kind first (the top level, observations, conditions, a reference range,
    a coding, ...), then among the places of that kind, so that rare kinds are hit as often as
    the twenty observations of a record; the garbage is drawn from ``GARBAGE``.
    """
    record = json.loads(json.dumps(record))
    for _ in range(rng.randint(1, 3)):
        places = _nodes(record, {})
        node = rng.choice(places[rng.choice(sorted(places))])
        garbage = json.loads(json.dumps(rng.choice(GARBAGE)))  # a fresh copy each time
        if isinstance(node, list):
            if node and rng.random() < 0.5:
                node[rng.randrange(len(node))] = garbage
            else:
                node.append(garbage)
            continue
        roll = rng.random()
        if node and roll < 0.2:
            del node[rng.choice(list(node))]
        elif node and roll < 0.7:
            node[rng.choice(list(node))] = garbage
        else:
            node[rng.choice(FIELDS)] = garbage
    return record


def case_records() -> list[tuple[str, dict]]:
    """The patient record of every protocol case (as the case file gives it, changes applied)."""
    sys.path.insert(0, str(ROOT))
    from elig.commands.casefile import case_files, load_cases  # noqa: PLC0415

    out = []
    folders = sorted({p.parent for p in (ROOT / "protocols").rglob("cases/*/*.yaml")}
                     | {p.parent for p in (ROOT / "examples").rglob("cases/*/*.yaml")})
    for folder in folders:
        for path in case_files(folder):
            for case in load_cases(path):
                out.append((f"{path.relative_to(ROOT)}#{case.name}", case.record))
    return out


def record_files() -> list[str]:
    files = []
    for folder in (ROOT / "examples" / "patients", ROOT / "examples" / "fhir", ROOT / "tests" / "data" / "records",
                   ROOT / "tests" / "data" / "fhir"):
        files += sorted(str(p) for p in folder.glob("*") if p.suffix in (".json", ".yaml", ".yml"))
    synthea = synthea_dir()
    if synthea:
        files += sorted(str(p) for p in synthea.glob("*.json"))
    return files


def synthea_dir() -> Path | None:
    if os.environ.get("ELIG_SYNTHEA_DIR"):
        return Path(os.environ["ELIG_SYNTHEA_DIR"])
    for candidate in (ROOT.parent / "shared" / "data" / "fhir", ROOT.parent.parent / "shared" / "data" / "fhir"):
        if candidate.is_dir():
            return candidate
    return None


def write_inputs(folder: Path, patients: int, mutants: int, seed: int) -> tuple[Path, Path, int]:
    sys.path.insert(0, str(ROOT / "bench"))
    from population import generate  # noqa: PLC0415

    rng = random.Random(seed)
    population = generate(patients, seed)
    bundles = []
    synthea = synthea_dir()
    if synthea:
        bundles = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(synthea.glob("*.json"))]
    bundles += [json.loads(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "tests" / "data" / "fhir").glob("*.json"))]
    inputs = folder / "inputs.ndjson"
    n = 0
    with inputs.open("w", encoding="utf-8") as fh:
        def put(label: str, data) -> None:
            nonlocal n
            fh.write(json.dumps({"file": label, "data": data}, ensure_ascii=False) + "\n")
            n += 1

        for record in population:
            put("bench", record)
        for label, record in case_records():
            put(label, record)
        for i in range(mutants):
            put(f"mutant-{i}", mutate(rng.choice(population), rng))
        for i in range(max(1, mutants // 50) if bundles else 0):
            put(f"fhir-mutant-{i}", mutate(rng.choice(bundles), rng))
    files = folder / "files.txt"
    paths = record_files()
    files.write_text("\n".join(paths) + "\n", encoding="utf-8")
    return inputs, files, n + len(paths)


# ---------------------------------------------------------------- one reader, in its own process
def worker(inputs: Path, files: Path, out: Path) -> None:
    import elig  # noqa: PLC0415 - the elig of PYTHONPATH: this checkout or the other revision
    from elig.diagnostics import DataError  # noqa: PLC0415

    with out.open("w", encoding="utf-8") as fh:
        def put(read, *args) -> None:
            try:
                text = repr(read(*args))
            except DataError as exc:
                text = f"DataError: {exc}"
            except Exception as exc:  # noqa: BLE001 - a reader bug: compared too, and counted
                text = f"crash: {type(exc).__name__}: {exc}"
            fh.write(text.replace("\n", "\\n") + "\n")

        with inputs.open(encoding="utf-8") as lines:
            for line in lines:
                item = json.loads(line)
                put(elig.patient_from_data, item["data"], item["file"])
        for path in files.read_text(encoding="utf-8").split():
            put(elig.load_patient, path)


def run_worker(tree: Path, inputs: Path, files: Path, out: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(tree))
    subprocess.run([sys.executable, str(Path(__file__).resolve()), "--worker", str(inputs), str(files), str(out)],
                   check=True, env=env, cwd=tree)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--against", default="main", help="the revision whose readers are the reference (default main)")
    ap.add_argument("--patients", type=int, default=10_000, help="bench population size (default 10000)")
    ap.add_argument("--mutants", type=int, default=20_000, help="garbled records (default 20000)")
    ap.add_argument("--seed", type=int, default=20240315)
    ap.add_argument("--shown", type=int, default=5, help="differences printed in full")
    ap.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(*(Path(p) for p in args.worker))
        return 0

    with tempfile.TemporaryDirectory(prefix="elig-check-readers-") as tmp:
        tmp = Path(tmp)
        old = tmp / "old"
        old.mkdir()
        archive = subprocess.run(["git", "archive", args.against, "elig"], cwd=ROOT, check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        rev = subprocess.run(["git", "rev-parse", "--short", args.against], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip()
        inputs, files, n = write_inputs(tmp, args.patients, args.mutants, args.seed)
        print(f"{n:,} records: {args.patients:,} generated, {args.mutants:,} garbled, the protocol cases, "
              f"the repository's record files and the Synthea bundles", flush=True)
        run_worker(old, inputs, files, tmp / "old.txt")
        run_worker(ROOT, inputs, files, tmp / "new.txt")
        labels = [json.loads(line)["file"] for line in inputs.open(encoding="utf-8")]
        labels += files.read_text(encoding="utf-8").split()
        with (tmp / "old.txt").open(encoding="utf-8") as a, (tmp / "new.txt").open(encoding="utf-8") as b:
            old_lines, new_lines = a.read().splitlines(), b.read().splitlines()
        if len(old_lines) != len(new_lines) or len(old_lines) != len(labels):
            print(f"the readers gave {len(old_lines)} and {len(new_lines)} results for {len(labels)} records")
            return 1
        fixed = [i for i, (x, y) in enumerate(zip(old_lines, new_lines)) if x.startswith("crash: ") and x != y]
        differ = [i for i, (x, y) in enumerate(zip(old_lines, new_lines)) if x != y and not x.startswith("crash: ")]
        errors = sum(line.startswith("DataError: ") for line in new_lines)
        issues = sum(line.count("DataIssue(") for line in new_lines)
        crashes = [i for i, line in enumerate(new_lines) if line.startswith("crash: ")]
        print(f"{len(labels) - len(differ):,} of {len(labels):,} records read identically by {rev} ({args.against}) "
              f"and this checkout ({errors:,} refused with a DataError, {issues:,} data issues in all)")
        if crashes:
            print(f"{len(crashes):,} records made this checkout's reader raise something other than a DataError, "
                  f"e.g. {labels[crashes[0]]}: {new_lines[crashes[0]][:300]}")
        if fixed:
            print(f"{len(fixed):,} records that made {args.against}'s reader crash are read here, e.g. "
                  f"{labels[fixed[0]]}: {old_lines[fixed[0]][:200]}")
        for i in differ[:args.shown]:
            x, y = old_lines[i], new_lines[i]
            at = next((k for k, (a, b) in enumerate(zip(x, y)) if a != b), min(len(x), len(y)))
            print(f"\n{labels[i]} (record {i}), from character {at}:\n  {args.against}: …{x[max(0, at - 300):at + 300]}"
                  f"\n  here: …{y[max(0, at - 300):at + 300]}")
        return 1 if differ or crashes else 0


if __name__ == "__main__":
    sys.exit(main())
