"""mkdocs hook: render bench/results/sql.json (written by bench/bench_sql.py) where a page says
``<!-- elig:bench-sql -->``, so the figures in the docs are the ones the benchmark wrote."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "bench" / "results" / "sql.json"


def _mb(x) -> str:
    return f"{x:,.0f}"


def _f(x, fmt: str = ".2f") -> str:
    """A figure, or a dash where an older results file does not have it."""
    return "–" if x is None else format(x, fmt)


def _table() -> str:
    if not RESULTS.is_file():
        return "*No results yet: run `python bench/bench_sql.py` (or `make bench`).*\n"
    data = json.loads(RESULTS.read_text(encoding="utf-8"))
    m = data["machine"]
    scopes = data.get("scopes", {})
    s = data["duckdb_settings"]
    lines = [f"**Partial run:** {data['partial']}", ""] if data.get("partial") else []
    if data.get("failed"):
        lines += ["**This run failed its check of meaning** (see below): its times do not count.", ""]
    lines += [
        f"Measured with `{data['command'].strip()}` on {m['cpus']} CPUs (Python {m['python']}, DuckDB "
        f"{m['duckdb']}; DuckDB threads: {s['threads']}, memory_limit {s['memory_limit']}, "
        f"patients per chunk: {s.get('chunk', 'all at once')}); protocol {data['protocol']}. Load average of the "
        f"machine (1, 5, 15 min): {', '.join(map(str, m['load_average_start']))} at the start, "
        f"{', '.join(map(str, m['load_average_end']))} at the end; the load column is the 1-minute load "
        "while that variant ran.",
        "",
        "| variant | criteria | patients | patients/s | × hand SQL | × hand SQL, CPU | min s | median s | max s "
        "| CPU s (min) | peak MB | load |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in data["results"]:
        lines.append(f"| {r['variant']} | {scopes.get(r['scope'], r['scope'])} | {r['patients']:,} "
                     f"| {r['patients_per_s']:,} | {r['ratio_to_hand_sql']:.2f} | {_f(r.get('cpu_ratio_to_hand_sql'))} "
                     f"| {r['min_s']:.2f} | {r['median_s']:.2f} | {r['max_s']:.2f} | {_f(r.get('cpu_min_s'), '.1f')} "
                     f"| {_mb(r['peak_mb'])} | {_f(r.get('load_1m'), '.1f')} |")
    c = data["check"]
    g = data.get("generation")
    if g:
        runs = "; ".join(f"{x['s']} s (CPU {x['cpu_s']} s, load {x['load_1m']})" for x in g["runs"])
        built = (f"- Building the population of {g['patients']:,} patients ({g['base_patients']:,} generated and "
                 f"read with elig's reader, then repeated with new keys): min {g['min_s']} s, median "
                 f"{g['median_s']} s, max {g['max_s']} s over {len(g['runs'])} runs ({runs}).")
    else:
        built = ("- Building the Parquet tables: " + ", ".join(f"{int(k):,}: {v} s" for k, v in
                                                            data.get("generation_s", {}).items()) + ".")
    lines += [
        "",
        f"- Meaning first: on {c['patients']:,} generated patients × {c['all']['criteria']} criteria, elig on "
        f"DuckDB differs from the interpreter on **{c['all']['differ_from_interpreter']}** patients; the "
        f"hand-written SQL differs from elig on **{c['all']['hand_written_differs']}** (all criteria) and "
        f"**{c['organ']['hand_written_differs']}** (organ function) patients, comparing every criterion.",
        built,
        f"- {data['note']}.",
    ]
    lines += _targets(data)
    for r in data["results"]:
        if "session_start_s" in r:
            lines.append(f"- The Spark session took {r['session_start_s']} s to start (not in the times above); "
                         f"its peak memory is the driver's plus the JVM's ({_mb(r['jvm_peak_mb'])} MB of it the "
                         "JVM's), and its CPU time the driver's plus the JVM's.")
    return "\n".join(lines) + "\n"


def _targets(data: dict) -> list[str]:
    """The issue's targets, judged on this run's figures."""
    res = [r for r in data["results"] if "cpu_ratio_to_hand_sql" in r]
    if not res:
        return []
    out = []
    big = max(r["patients"] for r in res)
    for r in res:
        if r["variant"] == "elig on DuckDB" and r["patients"] == big:
            met = {True: "met", False: "not met"}
            out.append(f"- Target: {big:,} patients in at most 1.5× the hand-written SQL's time "
                       f"({SCOPE_SHORT.get(r['scope'], r['scope'])}): **{r['ratio_to_hand_sql']:.2f}×** on the wall "
                       f"clock ({met[r['ratio_to_hand_sql'] <= 1.5]} in this run), "
                       f"**{r['cpu_ratio_to_hand_sql']:.2f}×** in CPU time ({met[r['cpu_ratio_to_hand_sql'] <= 1.5]}).")
    for variant in ("hand-written DuckDB SQL", "elig on DuckDB"):
        peaks = ", ".join(f"{r['patients']:,}: {_mb(r['peak_mb'])} MB" for r in res
                          if r["variant"] == variant and r["scope"] == "all")
        if peaks:
            out.append(f"- Peak memory of {variant} (all criteria), by number of patients: {peaks}.")
    g = data.get("generation")
    if g:
        ok = "met" if g["max_s"] < 120 else "not met"
        out.append(f"- Target: the {g['patients']:,}-patient population built in under two minutes: max "
                   f"{g['max_s']} s ({ok}).")
    return out


SCOPE_SHORT = {"all": "all criteria", "organ": "organ function"}


def on_page_markdown(markdown: str, page, config, files) -> str:
    if "<!-- elig:bench-sql -->" in markdown:
        markdown = markdown.replace("<!-- elig:bench-sql -->", _table())
    return markdown
