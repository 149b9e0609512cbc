"""The explaining evaluator's results, character for character, before and after a change.

Run from the repository root::

    python bench/explain_check.py --write build/explain-before.jsonl.gz   # on the code before
    python bench/explain_check.py --compare build/explain-before.jsonl.gz # on the code after

Evaluates the bench population (``bench/population.py``; ``--patients``, default 10,000)
against the organ-function criteria and the whole of NCT06021067 with ``elig.evaluate``,
and writes (or compares) the full JSON of every result, one line per patient and protocol.
A speed-up of the explaining evaluator must leave every line identical; ``--compare``
prints the first differences and exits 1 when any line differs.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from population import AS_OF, DEFAULT_SEED, ORGAN_PROTOCOL, PROTOCOL, generate  # noqa: E402


def results(n: int, seed: int):
    """(protocol file name, patient index, the result's JSON) for every patient and protocol."""
    import elig

    population = generate(n, seed)
    for path in (ORGAN_PROTOCOL, PROTOCOL):
        protocol = elig.load_protocol(path)
        for i, data in enumerate(population):
            patient = elig.patient_from_data(data, "bench")
            result = elig.evaluate(protocol, patient, AS_OF)
            yield path.name, i, json.dumps(result.to_json_dict(), ensure_ascii=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--patients", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", help="write every result's JSON to this file (gzip)")
    group.add_argument("--compare", help="compare every result's JSON with this file's")
    args = ap.parse_args(argv)
    if args.write:
        count = 0
        with gzip.open(args.write, "wt", encoding="utf-8") as out:
            for name, i, text in results(args.patients, args.seed):
                out.write(f"{name}\t{i}\t{text}\n")
                count += 1
        print(f"wrote {count:,} results to {args.write}")
        return 0
    differ = count = 0
    with gzip.open(args.compare, "rt", encoding="utf-8") as before:
        for (name, i, text), line in zip(results(args.patients, args.seed), before):
            b_name, b_i, b_text = line.rstrip("\n").split("\t", 2)
            count += 1
            if (b_name, int(b_i)) != (name, i):
                print(f"the file holds {b_name} #{b_i} where {name} #{i} was expected: written with other options?")
                return 1
            if b_text != text:
                differ += 1
                if differ <= 5:
                    pos = next((k for k, (a, b) in enumerate(zip(b_text, text)) if a != b), min(len(b_text), len(text)))
                    print(f"{name} patient #{i} differs at character {pos}:\n  before …{b_text[max(0, pos - 120):pos + 120]}…\n"
                          f"  after  …{text[max(0, pos - 120):pos + 120]}…")
    print(f"{count:,} results compared, {differ:,} differ")
    return 1 if differ or count == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
