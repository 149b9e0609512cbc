"""mkdocs hook: render bench/results/sql.json (written by bench/bench_sql.py) where a page says
``<!-- elig:bench-sql -->``, so the figures in the docs are the ones the benchmark wrote."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results" / "sql.json"


def _table() -> str:
    if not RESULTS.is_file():
        return "*No results yet: run `python bench/bench_sql.py` (or `make bench`).*\n"
    data = json.loads(RESULTS.read_text(encoding="utf-8"))
    m = data["machine"]
    lines = [
        f"Measured with `{data['command'].strip()}` on {m['cpus']} CPUs (Python {m['python']}, DuckDB "
        f"{m['duckdb']}); protocol {data['protocol']}, {data['criteria']} criteria.",
        "",
        "| variant | patients | patients/s | × hand-written SQL | min s | median s | max s | peak MB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["results"]:
        lines.append(f"| {r['variant']} | {r['patients']:,} | {r['patients_per_s']:,} | {r['ratio_to_hand_sql']:.2f} "
                     f"| {r['min_s']:.2f} | {r['median_s']:.2f} | {r['max_s']:.2f} | {r['peak_mb']:,.0f} |")
    c = data["check"]
    gen = ", ".join(f"{int(k):,}: {v} s" for k, v in data["generation_s"].items())
    lines += [
        "",
        f"- Meaning first: on {c['patients']:,} patients × {c['criteria']} criteria, elig on DuckDB differs from "
        f"the interpreter on **{c['differ_from_interpreter']}** patients; the hand-written SQL's verdicts agree "
        f"with elig's on {c['hand_written_agrees']:,} of {c['of']:,}.",
        f"- Building the Parquet tables (generate, read with elig's reader, write): {gen}.",
        f"- {data['note']}.",
    ]
    spark = [r for r in data["results"] if "session_start_s" in r]
    for r in spark:
        lines.append(f"- The Spark session took {r['session_start_s']} s to start (not in the times above).")
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if "<!-- elig:bench-sql -->" in markdown:
        markdown = markdown.replace("<!-- elig:bench-sql -->", _table())
    return markdown
