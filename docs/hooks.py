"""mkdocs hook: generate reference tables from their declarations at build time.

A page containing ``<!-- elig:vocabulary -->`` gets the vocabulary table from
the bundled ``elig/data/vocabulary*.yaml`` files; ``<!-- elig:derivations -->`` gets the derivation
catalogue from ``elig/terminology/derivations.py``. Nothing is copied by hand, so the docs
cannot drift from the code.
"""

from __future__ import annotations


def _vocabulary() -> str:
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
                if c.refused_units:
                    mm += "; not in " + ", ".join(u for u, _ in c.refused_units)
                lines.append(f"| {c.name} | {aliases} | `{c.unit}` | {plaus} | {mm} | {uln} | {codes} |")
            else:
                lines.append(f"| {c.name} | {aliases} | {codes} |")
    return "\n".join(lines) + "\n"


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
    """The table of bench/results/engine.json, written by `make bench` (bench/bench_engine.py)."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "bench" / "results" / "engine.json"
    if not path.exists():
        return "\n*No benchmark results yet: run `make bench`.*\n"
    r = json.loads(path.read_text(encoding="utf-8"))
    out = [f"\nMeasured {r['generated']} with `{r['command']}` (Python {r['python']}, {r['machine']}, "
           f"load average {r['load_average']:.1f} at the start; each variant in its own "
           f"process; protocol {r['protocol']} as of {r['as_of']}).\n"]
    for size in r["sizes"]:
        agree = size["agreement"]
        out.append(f"\n### {size['patients']:,} patients ({size['repeat']} repeats)\n")
        out.append(f"Verdicts: {', '.join(f'{v} {n:,}' for v, n in sorted(size['verdicts'].items()))}. "
                   f"Agreement with the hand-written verdicts: compiled {agree['compiled']}, "
                   f"explained {agree['explained']}.\n")
        out.append("| variant | patients | decide, patients/s (min / median / max) | × hand-written | "
                   "end to end from JSON, patients/s (median) | × hand-written | reader ÷ json.loads | peak RSS |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for v in size["variants"]:
            d, e = v["decide_per_s"], v["end_to_end_per_s"]
            reader = f"{v['reader_over_json']['median']:.1f}×" if "reader_over_json" in v else "—"
            out.append(f"| {v['variant']} | {v['patients']:,} | {d['min']:,.0f} / {d['median']:,.0f} / "
                       f"{d['max']:,.0f} | {v['decide_ratio']:.1f}× | {e['median']:,.0f} | "
                       f"{v['end_to_end_ratio']:.1f}× | {reader} | {v['peak_rss_mb']:,.0f} MB |")
    out.append("\n### Targets\n")
    out.append("| target | measured | met |")
    out.append("|---|---:|---|")
    for t in r["targets"]:
        out.append(f"| {t['target']} | {t['measured']} | {'yes' if t['met'] else '**no**'} |")
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
    if "<!-- elig:gallery -->" in markdown:
        markdown = markdown.replace("<!-- elig:gallery -->", _gallery())
    if "<!-- elig:corpus -->" in markdown:
        markdown = markdown.replace("<!-- elig:corpus -->", _corpus())
    if "<!-- elig:vocabulary -->" in markdown:
        markdown = markdown.replace("<!-- elig:vocabulary -->", _vocabulary())
    if "<!-- elig:derivations -->" in markdown:
        markdown = markdown.replace("<!-- elig:derivations -->", _derivations())
    return markdown
