"""mkdocs hook: generate reference tables from their declarations at build time.

A page containing ``<!-- elig:vocabulary -->`` gets the vocabulary table from
the bundled ``elig/data/vocabulary*.yaml`` files (``<!-- elig:loinc-evidence -->`` the evidence for
each LOINC code); ``<!-- elig:derivations -->`` gets the derivation
catalogue from ``elig/terminology/derivations.py``. Nothing is copied by hand, so the docs
cannot drift from the code.
"""

from __future__ import annotations


def _vocabulary() -> str:
    import re

    from elig.terminology.codes import short_system
    from elig.terminology.vocabulary import default_vocabulary

    vocab = default_vocabulary()
    lines = []
    kinds = ["measurement", "derived", "demographic", "fact", "condition", "procedure", "medication", "test"]
    for kind in kinds:
        concepts = sorted((c for c in vocab.concepts if c.kind == kind), key=lambda c: c.name.lower())
        if not concepts:
            continue
        lines.append(f"\n### {kind.capitalize()}s ({len(concepts)})\n")
        if kind in ("measurement", "derived", "demographic"):
            lines.append("| concept | aliases | unit | plausible | molar mass | default ULN | codes |")
            lines.append("|---|---|---|---|---|---|---|")
        else:
            lines.append("| concept | aliases | codes |")
            lines.append("|---|---|---|")
        for c in concepts:
            codes = ", ".join(f"{short_system(s.system)} `{s.code}{'*' if s.match == 'prefix' else ''}`"
                              for s in c.codes) or "—"
            aliases = ", ".join(c.aliases) or "—"
            if kind in ("measurement", "derived", "demographic"):
                plaus = f"{c.plausible[0]:g}–{c.plausible[1]:g}" if c.plausible else "—"
                uln = "—"
                if c.uln:
                    u = c.uln
                    uln = (f"{u.value:g} {u.unit}" if u.value is not None else
                           f"M {u.male:g} / F {u.female:g} {u.unit}")
                mm = f"{c.molar_mass:g} g/mol" if c.molar_mass else "—"
                factor = re.search(r"1 (\S+) = ([\d.]+) (\S+?)(?=[\s,;)]|$)", c.molar_mass_source or "")
                if c.molar_mass and factor:
                    mm += f" (1 {factor.group(1)} = {factor.group(2)} {factor.group(3)})"
                if c.refused_units:
                    mm += "; not in " + ", ".join(u for u, _ in c.refused_units)
                lines.append(f"| {c.name} | {aliases} | `{c.unit}` | {plaus} | {mm} | {uln} | {codes} |")
            else:
                lines.append(f"| {c.name} | {aliases} | {codes} |")
    return "\n".join(lines) + "\n"


def _loinc_evidence() -> str:
    """Every shipped LOINC code with the long name seen on the page that confirms it, from
    tests/data/loinc_checked.tsv (which tests/test_vocabulary_codes.py keeps equal to the vocabulary)."""
    import re
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "tests" / "data" / "loinc_checked.tsv"
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()
            if line and not line.startswith(("#", "code\t"))]
    out = [f"{len(rows)} LOINC codes, each confirmed on the page(s) named.\n",
           "| code | long common name (as seen) | evidence |", "|---|---|---|"]
    for code, name, _status, evidence in sorted(rows, key=lambda r: [int(x) for x in r[0].split("-")]):
        links = re.sub(r"(https?://[^\s;()]+)", r"<\1>", evidence.replace("|", "\\|"))
        out.append(f"| `{code}` | {name.replace('|', chr(92) + '|')} | {links} |")
    return "\n".join(out) + "\n"


def _corpus() -> str:
    """The measurable concepts of the registry corpus, from bench/vocabulary_corpus_counts.json
    (written by bench/vocabulary_corpus.py; a test keeps it equal to a fresh count)."""
    import json
    from pathlib import Path

    from elig.terminology.vocabulary import default_vocabulary

    root = Path(__file__).resolve().parent.parent
    data = json.loads((root / "bench" / "vocabulary_corpus_counts.json").read_text(encoding="utf-8"))
    vocab = default_vocabulary()
    rows = sorted(data["concepts"].items(), key=lambda kv: (-kv[1]["trials"], kv[0].lower()))
    def matched(concept) -> str:
        if concept is None:
            return "—"
        if any(spec.system == "http://loinc.org" for spec in concept.codes):
            return "LOINC code"
        return "computed" if concept.kind == "derived" else "by name only"

    out = ["| concept | trials | lines | shipped | FHIR records matched by |", "|---|---|---|---|---|"]
    tally: dict[str, int] = {}
    for name, c in rows:
        concept = vocab.lookup(name)
        shipped = "yes" if concept is not None else "—"
        how = matched(concept)
        if c["trials"] >= 2:
            tally[how] = tally.get(how, 0) + 1
        out.append(f"| {name} | {c['trials']} | {c['lines']} | {shipped} | {how} |")
    two = sum(1 for _, c in rows if c["trials"] >= 2)
    return (f"Counted by `{data['command']}` on {data['corpus']}: {len(rows)} measurable concepts named, "
            f"{two} of them in two or more trials. Of those {two}, {tally.get('LOINC code', 0)} carry a checked "
            f"LOINC code, {tally.get('computed', 0)} {'is' if tally.get('computed', 0) == 1 else 'are'} computed, "
            f"and {tally.get('by name only', 0)} are matched by name only, because no code could be confirmed"
            + (" (or, for the NYHA class, because LOINC codes the class as an answer, not the number elig compares)"
               if matched(vocab.lookup("NYHA functional class")) == "by name only" else "") + ".\n\n"
            + "\n".join(out) + "\n")


def _derivations() -> str:
    from elig.terminology.derivations import CATALOGUE

    out = []
    for d in CATALOGUE.by_key.values():
        out.append(f"\n### {d.title}\n")
        out.append(f"- **computes**: {d.concept} in `{d.unit}`; key `{d.key}`")
        names = d.method_names[0] + (f", {d.variant_names[0]}" if d.variant_names else "")
        out.append(f"- **in a protocol**: `({names})`")
        out.append(f"- **formula**: `{d.formula}`")
        inputs = ", ".join(f"{i.concept} ({i.unit})" for i in d.inputs)
        extra = [x for x, need in (("age", d.needs_age), ("sex", d.needs_sex)) if need]
        out.append(f"- **inputs**: {', '.join([inputs] + extra) if inputs else ', '.join(extra)}"
                   + (" — measured together (paired by time)" if d.paired else ""))
        for prm in d.params:
            out.append(f"- **parameter** `{prm.names[0]}`: {prm.meaning}; default {prm.default:g} {prm.unit}")
        if d.notes:
            out.append(f"- **notes**: {d.notes}")
        out.append(f"- **reference**: {d.reference}")
    return "\n".join(out) + "\n"


_GALLERY = (
    ("Eligible", "demo_patient.yaml", "every inclusion met and no exclusion met; creatinine in µmol/L"),
    ("Ineligible", "organ_failure.yaml", "organ function fails; the distances to each threshold are shown"),
    ("Undetermined", "organ_unknown.yaml", "values stale, unit-less, implausible or missing; the data to collect"),
)


def _gallery() -> str:
    import re
    from pathlib import Path

    import elig
    from elig.report.markdown import render_markdown

    root = Path(__file__).resolve().parent.parent
    protocol = elig.load_protocol(root / "protocols" / "NCT06021067.elig")
    out = []
    for title, name, what in _GALLERY:
        result = elig.evaluate(protocol, root / "examples" / "patients" / name, as_of="2024-03-15")
        report = render_markdown(result).replace(str(root) + "/", "")
        report = re.sub(r"^(#+) ", lambda m: "#" * min(len(m.group(1)) + 3, 6) + " ", report, flags=re.M)
        out.append(f"\n### {title}: `{name}`\n\n{what}.\n\n{report}")
    return "\n".join(out)


def _performance() -> str:
    """The tables of bench/results/engine.json, written by `make bench` (bench/bench_engine.py)."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "bench" / "results" / "engine.json"
    if not path.exists():
        return "\n*No benchmark results yet: run `make bench`.*\n"
    r = json.loads(path.read_text(encoding="utf-8"))
    start, end = r["load_average_start"], r.get("load_average_end", r["load_average_start"])
    out = [f"\nMeasured {r['generated']} with `{r['command']}` (Python {r['python']}, {r['machine']}; "
           f"load average {start[0]:.2f} / {start[1]:.2f} / {start[2]:.2f} (1, 5, 15 min) at the start, "
           f"{end[0]:.2f} / {end[1]:.2f} / {end[2]:.2f} at the end; each variant in its own process; "
           f"evaluated as of {r['as_of']}).\n"]
    for run in r["runs"]:
        load = run["load_average"]
        out.append(f"\n### {run['patients']:,} patients: {run['label']}\n")
        out.append(f"{run['repeat']} repeat{'s' if run['repeat'] > 1 else ''}, each variant in its own process; "
                   f"load average {load['min']:.2f}–{load['max']:.2f} while it ran. Verdicts: "
                   f"{', '.join(f'{v} {n:,}' for v, n in sorted(run['verdicts'].items()))}.\n")
        agree = "; ".join(f"{v}: verdict {a['verdicts']:,}, every criterion's outcome {a['outcomes']:,}, "
                          f"of {a['patients']:,}" for v, a in run["agreement"].items())
        out.append(f"Agreement with the hand-written function: {agree}.\n")
        fb = run.get("fallbacks")
        if fb:
            top = ", ".join(f"{rule} ({count:,})" for rule, count in fb["rules"][:5])
            out.append(f"The compiled evaluator handed a rule to the explaining evaluator's rule functions "
                       f"for {fb['patients_with_fallback']:,} of {fb['patients']:,} patients "
                       f"({fb['patient_rate']:.1%}; {fb['per_patient']:.3f} rules a patient)"
                       + (f": {top}.\n" if top else ".\n"))
        cpu = "decide_cpu_per_s" in run["variants"][0]  # figures in CPU time (since the bench measures both)
        out.append("| variant | patients | decide, patients/s (min / median / max) | × hand-written | "
                   + ("decide, CPU time, patients/s (min / median / max) | × hand-written (CPU) | " if cpu else "")
                   + "end to end from JSON, patients/s (median) | × hand-written | reader ÷ json.loads "
                   "(min / median / max) | peak RSS |")
        out.append("|---|---:|---:|---:|" + ("---:|---:|" if cpu else "") + "---:|---:|---:|---:|")
        for v in run["variants"]:
            d, e = v["decide_per_s"], v["end_to_end_per_s"]
            rj = v.get("reader_over_json")
            reader = f"{rj['min']:.2f} / {rj['median']:.2f} / {rj['max']:.2f}×" if rj else "—"
            c = v.get("decide_cpu_per_s")
            in_cpu = (f"{c['min']:,.0f} / {c['median']:,.0f} / {c['max']:,.0f} | {v['decide_cpu_ratio']:.2f}× | "
                      if cpu else "")
            out.append(f"| {v['variant']} | {v['patients']:,} | {d['min']:,.0f} / {d['median']:,.0f} / "
                       f"{d['max']:,.0f} | {v['decide_ratio']:.2f}× | {in_cpu}{e['median']:,.0f} | "
                       f"{v['end_to_end_ratio']:.2f}× | {reader} | {v['peak_rss_mb']['max']:,.0f} MB |")
    out.append("\n### Targets\n")
    out.append("Issue 14 states its targets on the organ-function criteria (*issue's setup*); the full "
               "protocol is shown beside them.\n")
    out.append("| target | measured on | measured | met |")
    out.append("|---|---|---:|---|")
    for t in r["targets"]:
        where = t["where"] + (" (issue's setup)" if t.get("issue_setup") else "")
        out.append(f"| {t['target']} | {where} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(out) + "\n"


def _reader_performance() -> str:
    """The tables of bench/results/readers.json, written by `python bench/bench_readers.py`."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "bench" / "results" / "readers.json"
    if not path.exists():
        return "\n*No reader figures yet: run `python bench/bench_readers.py`.*\n"
    r = json.loads(path.read_text(encoding="utf-8"))
    start, end = r["load_average_start"], r["load_average_end"]

    def ratio(m: dict, key: str) -> str:
        x = m["read_over_json"][key]
        return f"{x['min']:.2f} / {x['median']:.2f} / {x['max']:.2f}×"

    out = [f"\nMeasured {r['generated']} with `{r['command']}` (Python {r['python']}, {r['machine']}; load "
           f"average {start[0]:.2f} at the start, {end[0]:.2f} at the end). *reader ÷ json* is min / median / "
           f"max over the repeats; *collector* says whether Python's cycle collector was paused while timing "
           f"(the work each step does) or left on.\n",
           "| input | collector | `json.loads` (best CPU) | reader (best CPU) | reader ÷ json, wall | "
           "reader ÷ json, CPU | load average |",
           "|---|---|---:|---:|---:|---:|---:|"]
    native = r.get("native")
    for collector in ("paused", "on"):
        if native:
            m = native[f"gc_{collector}"]
            out.append(f"| {native['label']} (`patient_from_data`) | {collector} | {m['json_us']['cpu']:.1f} µs a record | "
                       f"{m['read_us']['cpu']:.1f} µs a record | {ratio(m, 'wall')} | {ratio(m, 'cpu')} | "
                       f"{m['load_average']['min']:.1f}–{m['load_average']['max']:.1f} |")
        if native and collector == "paused" and "distinct_files" in native:
            m = native["distinct_files"]
            out.append(f"| … each record named by its file and line, as `elig screen` names them | {collector} | "
                       f"{m['json_us']['cpu']:.1f} µs a record | {m['read_us']['cpu']:.1f} µs a record | "
                       f"{ratio(m, 'wall')} | {ratio(m, 'cpu')} | "
                       f"{m['load_average']['min']:.1f}–{m['load_average']['max']:.1f} |")
        for row in r["fhir"]:
            m = row[f"gc_{collector}"]
            label = row["label"] if row["label"].startswith("synthetic") else f"Synthea {row['label'].split('_')[0]}"
            out.append(f"| {label}, {row['mb']:.2f} MB, {row['entries']:,} entries (`read_fhir`) | {collector} | "
                       f"{m['t_json']['cpu'] * 1e3:,.1f} ms | {m['t_read']['cpu'] * 1e3:,.1f} ms | {ratio(m, 'wall')} | "
                       f"{ratio(m, 'cpu')} | {m['load_average']['min']:.1f}–{m['load_average']['max']:.1f} |")
    memory = [f"{row['label'] if row['label'].startswith('synthetic') else 'Synthea ' + row['label'].split('_')[0]}: "
              f"{row['mem_json'] / 1e6:,.1f} / {row['mem_read'] / 1e6:,.1f} MB" for row in r["fhir"]]
    if native:
        memory.insert(0, f"200 native records: {native['mem_json'] / 1e6:,.1f} / {native['mem_read'] / 1e6:,.1f} MB")
    out.append("\nPeak memory (tracemalloc), `json.loads` / reader: " + "; ".join(memory) + ".\n")
    out.append("| target | measured on | measured | met |")
    out.append("|---|---|---:|---|")
    for t in r["targets"]:
        out.append(f"| {t['target']} | {t['where']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
    return "\n".join(out) + "\n"


def _include(match) -> str:
    """``<!-- elig:file PATH -->``: the file itself, fenced, so a page cannot drift from it."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    rel = match.group(1)
    lang = {"elig": "elig", "yaml": "yaml", "yml": "yaml"}.get(rel.rsplit(".", 1)[-1], "text")
    text = (root / rel).read_text(encoding="utf-8").rstrip("\n")
    return f"`{rel}`:\n\n```{lang}\n{text}\n```"


def _test_report(match) -> str:
    """``<!-- elig:test PATH -->``: what ``elig test PATH`` prints, run at build time."""
    from pathlib import Path

    from elig.commands.casefile import format_report, run_cases

    root = Path(__file__).resolve().parent.parent
    # paths in the report as a user in the checkout sees them
    report = format_report(run_cases(root / match.group(1))).replace(str(root) + "/", "")
    return f"```text\n$ elig test {match.group(1)}\n{report.rstrip()}\n```"


def on_page_markdown(markdown: str, page, config, files) -> str:
    import re

    markdown = re.sub(r"<!-- elig:file (\S+) -->", _include, markdown)
    markdown = re.sub(r"<!-- elig:test (\S+) -->", _test_report, markdown)
    if "<!-- elig:performance -->" in markdown:
        markdown = markdown.replace("<!-- elig:performance -->", _performance())
    if "<!-- elig:reader-performance -->" in markdown:
        markdown = markdown.replace("<!-- elig:reader-performance -->", _reader_performance())
    if "<!-- elig:gallery -->" in markdown:
        markdown = markdown.replace("<!-- elig:gallery -->", _gallery())
    if "<!-- elig:corpus -->" in markdown:
        markdown = markdown.replace("<!-- elig:corpus -->", _corpus())
    if "<!-- elig:loinc-evidence -->" in markdown:
        markdown = markdown.replace("<!-- elig:loinc-evidence -->", _loinc_evidence())
    if "<!-- elig:vocabulary -->" in markdown:
        markdown = markdown.replace("<!-- elig:vocabulary -->", _vocabulary())
    if "<!-- elig:derivations -->" in markdown:
        markdown = markdown.replace("<!-- elig:derivations -->", _derivations())
    return markdown
