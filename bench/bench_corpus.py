"""How much of real registry text elig reads, and how much of it right.

    python bench/bench_corpus.py [--corpus PATH] [--labels FILE ...] [--top 15] [--repeat 3] [--record]

Over the development corpus (``../shared/data/criteria/lines.jsonl``: 1,500 eligibility
lines from 940 trials) it reports:

- lines accepted by ``elig parse`` as written (parsed and checked without an error;
  warnings allowed), and refusals by the code of their first diagnostic;
- the most frequent refused phrasings: the token a syntax error stops at, and the
  unknown concept names;
- lines that become rules in a draft (``elig draft`` reads each line as written,
  then without the words around a rule and with age phrasings as rules);
- on the hand-labelled lines (``tests/data/corpus_labels.yaml``; the held-out set
  ``tests/data/corpus_labels_heldout.yaml`` labelled after the reader was tuned on the first;
  and ``tests/data/corpus_labels_heldout2.yaml``, drawn and labelled before any further change
  and before elig was run on it), how many are read right among those that state a threshold
  a record can decide, by ``elig parse`` and by the draft reader, each set on its own and
  all sets together.

``--record`` writes what elig does today into the labels' ``parse`` and ``draft`` fields
(right, wrong, todo or the first error's code), keeping the files' comments.

Timing: each pass is repeated; the figures are min/median/max seconds, and the
draft pass is given as a ratio of the parse pass measured in the same run.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import statistics
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from elig.commands.draft import read_sentence  # noqa: E402
from elig.diagnostics import ProtocolError  # noqa: E402
from elig.engine import checker  # noqa: E402
from elig.language import canonical, parser  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "criteria" / "lines.jsonl"
if not DEFAULT_CORPUS.exists():
    DEFAULT_CORPUS = Path("/work/shared/data/criteria/lines.jsonl")
DEFAULT_LABELS = [ROOT / "tests" / "data" / name for name in
                  ("corpus_labels.yaml", "corpus_labels_heldout.yaml", "corpus_labels_heldout2.yaml")]


def parse_line(text: str, section: str = "inclusion") -> tuple[str, str]:
    """('OK', canonical reading) or (first error code, message) for one line, as `elig parse` does."""
    try:
        node = parser.parse_rule(text, file="<line>")
    except ProtocolError as exc:
        d = exc.diagnostics[0]
        return d.code, d.message
    errors = [d for d in checker.diagnose_rule(node, file="<line>", section=section) if d.severity == "error"]
    if errors:
        return errors[0].code, errors[0].message
    return "OK", canonical.rule(node)


def draft_line(text: str, section: str = "inclusion") -> str | None:
    return read_sentence(text, section).rule


def section_of(row: dict) -> str:
    return "exclusion" if row.get("kind") == "exclusion" else "inclusion"


def load_corpus(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def timed(fn, repeat: int):
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return result, times


def _stats(times: list[float]) -> str:
    return f"min {min(times):.2f} s, median {statistics.median(times):.2f} s, max {max(times):.2f} s"


def status(label: dict) -> tuple[str, str]:
    """What `elig parse` and the draft reader do with a labelled line: right, wrong, todo or an error code."""
    code, text = parse_line(label["line"], label["kind"])
    drafted = draft_line(label["line"], label["kind"])
    if code == "OK":
        parse = "right" if text == label["reading"] else ("wrong" if label["decidable"] else "accepted")
    else:
        parse = code
    if drafted is None:
        draft = "todo"
    else:
        draft = "right" if drafted == label["reading"] else ("wrong" if label["decidable"] else "encoded")
    return parse, draft


def labelled_figures(labels: list[dict]) -> dict:
    """Right, wrong and refused among the labelled lines that state a record-decidable threshold, today."""
    decidable = [x for x in labels if x.get("decidable")]
    out = {"labelled": len(labels), "decidable": len(decidable)}
    for what in ("parse", "draft"):
        out[f"{what}_right"] = out[f"{what}_wrong"] = 0
    for x in decidable:
        parse, draft = status(x)
        for what, got in (("parse", parse), ("draft", draft)):
            if got == "right":
                out[f"{what}_right"] += 1
            elif got == "wrong":
                out[f"{what}_wrong"] += 1
    return out


def record(path: Path, labels: list[dict]) -> None:
    """Rewrite the parse/draft fields of a labels file in place, line by line (comments stay)."""
    lines = path.read_text(encoding="utf-8").split("\n")
    statuses = iter([status(x) for x in labels])
    current = None
    for i, line in enumerate(lines):
        if line.startswith("- line:"):
            current = next(statuses)
        elif current is not None and line.startswith("  parse:"):
            lines[i] = f"  parse: {current[0]}"
        elif current is not None and line.startswith("  draft:"):
            lines[i] = f"  draft: {current[1]}"
    path.write_text("\n".join(lines), encoding="utf-8")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    ap.add_argument("--labels", type=Path, action="append", help="a labels file (repeatable); default: both sets")
    ap.add_argument("--record", action="store_true", help="write today's parse/draft status into the labels files")
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    args.labels = args.labels or DEFAULT_LABELS

    rows = load_corpus(args.corpus)
    parsed, parse_times = timed(lambda: [parse_line(r["text"], section_of(r)) for r in rows], args.repeat)
    drafted, draft_times = timed(lambda: [draft_line(r["text"], section_of(r)) for r in rows], args.repeat)

    n = len(rows)
    accepted = sum(1 for code, _ in parsed if code == "OK")
    codes = collections.Counter(code for code, _ in parsed if code != "OK")
    tokens = collections.Counter()
    concepts = collections.Counter()
    for code, message in parsed:
        if code == "E001":
            m = re.match(r"unexpected (?:character )?('?[^;]*?'?)(?:;|$)", message)
            tokens[(m.group(1) if m else message)[:40]] += 1
        elif code == "E101":
            m = re.search(r"unknown concept '([^']*)'", message)
            concepts[(m.group(1) if m else message).lower()] += 1
    became_rules = sum(1 for r in drafted if r is not None)

    print(f"corpus: {args.corpus} ({n} lines from {len({r['nct_id'] for r in rows})} trials)")
    print(f"accepted by `elig parse` as written: {accepted} of {n} ({100 * accepted / n:.1f}%)")
    print("refused, by the code of the first diagnostic:")
    for code, k in sorted(codes.items(), key=lambda kv: -kv[1]):
        print(f"  {code}: {k}")
    print(f"most frequent tokens a syntax error (E001) stops at (top {args.top}):")
    for tok, k in tokens.most_common(args.top):
        print(f"  {k:4d}  {tok}")
    print(f"most frequent unknown concepts (E101, top {args.top}):")
    for name, k in concepts.most_common(args.top):
        print(f"  {k:4d}  {name}")
    print(f"became rules with `elig draft`: {became_rules} of {n} ({100 * became_rules / n:.1f}%)")

    total = collections.Counter()
    for path in args.labels:
        if not path.exists():
            continue
        labels = yaml.safe_load(path.read_text(encoding="utf-8"))
        if args.record:
            record(path, labels)
        f = labelled_figures(labels)
        print(f"hand-labelled lines in {path.name}: {f['labelled']}; stating a threshold a record can decide: "
              f"{f['decidable']}")
        print(f"  right by `elig parse` as written: {f['parse_right']} of {f['decidable']} "
              f"({100 * f['parse_right'] / max(1, f['decidable']):.1f}%)")
        print(f"  right by the draft reader: {f['draft_right']} of {f['decidable']} "
              f"({100 * f['draft_right'] / max(1, f['decidable']):.1f}%)")
        print(f"  read with another meaning than the clinician's: parse {f['parse_wrong']}, draft {f['draft_wrong']}")
        total.update({k: v for k, v in f.items()})
    if len(args.labels) > 1 and total["decidable"]:
        d = total["decidable"]
        print(f"all labelled sets together: {total['labelled']} lines; stating a threshold a record can decide: {d}")
        print(f"  right by `elig parse` as written: {total['parse_right']} of {d} ({100 * total['parse_right'] / d:.1f}%)")
        print(f"  right by the draft reader: {total['draft_right']} of {d} ({100 * total['draft_right'] / d:.1f}%)")
        print(f"  read with another meaning than the clinician's: parse {total['parse_wrong']}, "
              f"draft {total['draft_wrong']}")

    print(f"time, {args.repeat} runs over {n} lines: parse {_stats(parse_times)}; draft {_stats(draft_times)}; "
          f"draft/parse median ratio {statistics.median(draft_times) / statistics.median(parse_times):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
