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
    scopes = data.get("scopes", {})
    lines = [f"**Partial run:** {data['partial']}", ""] if data.get("partial") else []
    lines += [
        f"Measured with `{data['command'].strip()}` on {m['cpus']} CPUs (Python {m['python']}, DuckDB "
        f"{m['duckdb']}; DuckDB threads: {data['duckdb_settings']['threads']}, memory_limit "
        f"{data['duckdb_settings']['memory_limit']}); protocol {data['protocol']}. Load average of the "
        f"machine (1, 5, 15 min): {', '.join(map(str, m['load_average_start']))} at the start, "
        f"{', '.join(map(str, m['load_average_end']))} at the end.",
        "",
        "| variant | criteria | patients | patients/s | × hand-written SQL | min s | median s | max s | peak MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["results"]:
        lines.append(f"| {r['variant']} | {scopes.get(r['scope'], r['scope'])} | {r['patients']:,} "
                     f"| {r['patients_per_s']:,} | {r['ratio_to_hand_sql']:.2f} | {r['min_s']:.2f} | {r['median_s']:.2f} "
                     f"| {r['max_s']:.2f} | {r['peak_mb']:,.0f} |")
    c = data["check"]
    gen = ", ".join(f"{int(k):,}: {v} s" for k, v in data["generation_s"].items())
    lines += [
        "",
        f"- Meaning first: on {c['patients']:,} generated patients × {c['all']['criteria']} criteria, elig on "
        f"DuckDB differs from the interpreter on **{c['all']['differ_from_interpreter']}** patients; the "
        f"hand-written SQL differs from elig on **{c['all']['hand_written_differs']}** (all criteria) and "
        f"**{c['organ']['hand_written_differs']}** (organ function) patients, comparing every criterion.",
        f"- Building the Parquet tables ({data['base_patients']:,} generated and read with elig's reader, "
        f"then repeated with new keys): {gen}.",
        f"- {data['note']}.",
    ]
    for r in data["results"]:
        if "session_start_s" in r:
            lines.append(f"- The Spark session took {r['session_start_s']} s to start (not in the times above); "
                         f"its peak memory is the driver's plus the JVM's ({r['jvm_peak_mb']:,.0f} MB).")
    return "\n".join(lines) + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if "<!-- elig:bench-sql -->" in markdown:
        markdown = markdown.replace("<!-- elig:bench-sql -->", _table())
    return markdown
