"""Which measurable concepts do real eligibility criteria name? Let the corpus decide.

Reads the corpus of registry lines (``../shared/data/criteria/lines.jsonl`` beside the
checkout, or ``--corpus``), finds the measurable concepts each line names (lab values,
vital signs, scores, lung function, derived values) by the spellings sponsors use, and
counts, per concept, the lines and the distinct trials that name it. Then it asks the
shipped vocabulary for each concept: a concept named in two or more trials must be there.

    python bench/vocabulary_corpus.py              # the table, most frequent first
    python bench/vocabulary_corpus.py --json       # the counts as data
    python bench/vocabulary_corpus.py --write-snapshot   # refresh bench/vocabulary_corpus_counts.json (docs table)

Exit status 1 when a concept named in two or more trials is missing from the vocabulary.
The patterns are deliberately spelled out one by one, as sponsors write the names
(abbreviations, British spellings, SGOT/SGPT, Hgb/Hb): a missed spelling undercounts.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# concept (its canonical name in the vocabulary) -> regular expression over a line (case-insensitive).
# \b boundaries everywhere: "ALT" must not match "ALTernative", "PT" not "PTSD".
CONCEPTS: dict[str, str] = {
    # --- haematology (CBC with differential)
    "absolute neutrophil count": r"\bANC\b|neutrophil|\bgranulocyte|\bAGC\b",
    "platelet count": r"platelet|\bPLT\b|thrombocyte count",
    "haemoglobin": r"ha?emoglobin(?!\s*A1c)|\bHgb\b|\bHb\b(?!A1c|s)",
    "white blood cell count": r"white blood (?:cell|count)|\bWBC\b|leu[ck]ocyte count|leu[ck]ocytes\s*(?:[≥≤<>]|count)",
    "lymphocyte count": r"lymphocyte(?:s)?(?: count)?\s*(?:[≥≤<>]|count|\d)|\bALC\b|absolute lymphocyte",
    "haematocrit": r"ha?ematocrit|\bHct\b",
    "red blood cell count": r"red blood cell count|\bRBC count|erythrocyte count",
    "eosinophil count": r"eosinophil",
    "monocyte count": r"monocyte count|absolute monocyte",
    "basophil count": r"basophil",
    "mean corpuscular volume": r"\bMCV\b|mean corpuscular volume",
    "reticulocyte count": r"reticulocyte",
    # --- metabolic panel and chemistry
    "serum creatinine": r"creatinine(?!\s*clearance|\s*ratio)|\bSCr\b",
    "creatinine clearance": r"creatinine clearance|\bCrCl\b|\bCLcr\b|Cockcroft",
    "estimated glomerular filtration rate": r"\beGFR\b|glomerular filtration|\bGFR\b",
    "total bilirubin": r"bilirubin|\bT-?Bil\b",
    "direct bilirubin": r"direct bilirubin|conjugated bilirubin|\bD-?Bil\b",
    "alanine aminotransferase": r"\bALT\b|\bSGPT\b|alanine (?:amino)?transaminase|alanine aminotransferase|\bALAT\b",
    "aspartate aminotransferase": r"\bAST\b|\bSGOT\b|aspartate (?:amino)?transaminase|aspartate aminotransferase|\bASAT\b",
    "alkaline phosphatase": r"alkaline phosphatase|\bALP\b|\bAlk Phos\b",
    "gamma-glutamyl transferase": r"\bGGT\b|gamma[- ]?glutamyl|\bγ-?GT\b|\bGGTP\b",
    "albumin": r"(?<!pre)albumin(?!uria|\s*/\s*creatinine|[- ]to[- ]creatinine)",
    "total protein": r"total protein",
    "urea nitrogen": r"\bBUN\b|urea nitrogen|\burea\b",
    "uric acid": r"uric acid|\burate\b",
    "sodium": r"(?:serum|plasma|blood)\s+sodium|sodium\s*(?:level|concentration|[<>≥≤]|\(?Na\)?\s*[<>≥≤])|hyponatra?emia",
    "potassium": r"potassium(?!\s*(?:sparing|supplement|chloride|citrate))|hyperkala?emia|hypokala?emia|\bK\+",
    "chloride": r"\bchloride\b",
    "bicarbonate": r"bicarbonate|\bHCO3|total CO2",
    "calcium": r"calcium(?!\s*(?:channel\s*)?(?:blocker|antagonist|supplement|carbonate))",
    "corrected calcium": r"corrected (?:serum )?calcium|albumin[- ]corrected calcium",
    "ionised calcium": r"ioni[sz]ed calcium",
    "magnesium": r"magnesium(?!\s*(?:sulph|sulf|supplement|oxide|containing))|hypomagnes",
    "phosphate": r"(?<!bis)(?<!bis-)\bphosph(?:ate|orus)\b(?!\s*binder)|hyperphosphat|hypophosphat",
    "glucose": r"(?:blood|plasma|serum|fasting|random|capillary)\s+glucose|glucose\s*(?:level|concentration|value|<|>|≥|≤|of\s*[<>≥≤\d]|\d)|blood sugar|glyca?emia\s*[<>≥≤]",
    "fasting glucose": r"fasting (?:plasma |blood |serum )?glucose|\bFPG\b|\bFBG\b",
    "haemoglobin A1c": r"\bHbA1c\b|\bA1c\b|glycated ha?emoglobin|glycosylated ha?emoglobin|ha?emoglobin A1c",
    "lactate dehydrogenase": r"\bLDH\b|lactate dehydrogenase|\bLD\b",
    "amylase": r"amylase",
    "lipase": r"lipase",
    "creatine kinase": r"creatine (?:phospho)?kinase|\bCPK\b|\bCK\b",
    "lactate": r"\blactate\b(?!\s*dehydrogenase)|lactic acid",
    "ferritin": r"ferritin",
    "vitamin D": r"vitamin D\s*(?:level|deficien|insufficien|<|>|≥|≤|concentration)|25[- ]?\(?OH\)?[- ]?D\b|25-hydroxy",
    "vitamin B12": r"vitamin B12|cobalamin",
    "folate": r"\bfolate\b|folic acid level",
    "C-reactive protein": r"\bCRP\b|C-reactive protein",
    "procalcitonin": r"procalcitonin|\bPCT\b",
    # --- coagulation
    "INR": r"\bINR\b|international normali[sz]ed ratio",
    "prothrombin time": r"prothrombin time(?!\s*activity)|\bPT\b(?![- ]?INR)",
    "activated partial thromboplastin time": r"\ba?PTT\b|partial thromboplastin|\bAPTT\b",
    "fibrinogen": r"fibrinogen",
    "prothrombin activity": r"\bPTA\b|prothrombin (?:time )?activity|Quick",
    "D-dimer": r"D-?dimer",
    # --- lipids
    "total cholesterol": r"total cholesterol|(?:serum|plasma|fasting) cholesterol|\bcholesterol\s*(?:<|>|≥|≤|greater|less|above|below)",
    "LDL cholesterol": r"\bLDL(?:-?C)?\b|low[- ]density lipoprotein",
    "HDL cholesterol": r"\bHDL\b|high[- ]density lipoprotein",
    "triglycerides": r"triglyceride|\bTG\b",
    # --- endocrine
    "thyroid stimulating hormone": r"\bTSH\b|thyroid[- ]stimulating hormone|thyrotropin",
    "free thyroxine": r"free T4|\bFT4\b|free thyroxine",
    "follicle stimulating hormone": r"\bFSH\b|follicle[- ]stimulating",
    "oestradiol": r"o?estradiol|\bE2\b",
    "testosterone": r"testosterone\s*(?:level|concentration|<|>|≥|≤|greater|less|above|below|\d)|(?:total|free|serum|castrat\w*)\s+testosterone",
    "cortisol": r"cortisol",
    "insulin": r"\binsulin level|fasting insulin|C-peptide",
    # --- cardiac
    "troponin": r"troponin|\bcTn[IT]?\b",
    "B-type natriuretic peptide": r"\bBNP\b|B-type natriuretic|brain natriuretic",
    "NT-proBNP": r"NT-?pro-?BNP|N-terminal pro",
    "left ventricular ejection fraction": r"ejection fraction|\bLVEF\b|\bLV ?EF\b|\bEF\b",
    "corrected QT interval": r"\bQTc|QT interval|corrected QT|\bQT\b",
    "heart rate": r"heart rate(?![- ]corrected)|pulse rate|\bHR\s*[<>≥≤]|\d\s*bpm\b|beats per minute",
    "systolic blood pressure": r"systolic|\bSBP\b",
    "diastolic blood pressure": r"diastolic|\bDBP\b",
    # --- urine
    "urine protein": r"urine protein|proteinuria|urinary protein|protein in (?:the )?urine|dipstick",
    "urine protein creatinine ratio": r"\bUPCR\b|protein[- /:]*(?:to[- ])?creatinine ratio|\bUPC\b",
    "urine albumin creatinine ratio": r"\bUACR\b|\bACR\b|albumin[- /:]*(?:to[- ])?creatinine ratio|microalbumin|albuminuria",
    # --- infection markers
    "hepatitis B surface antigen test": r"HBsAg|hepatitis B surface antigen",
    "hepatitis B core antibody test": r"anti-?HBc|HBcAb|hepatitis B core",
    "HBV DNA": r"HBV[- ]DNA|hepatitis B (?:virus )?DNA|HBV viral load",
    "hepatitis C antibody test": r"anti-?HCV|HCV[- ]?Ab|hepatitis C antibod",
    "hepatitis C RNA test": r"HCV[- ]RNA|hepatitis C (?:virus )?RNA",
    "HIV test": r"\bHIV\b.{0,20}(?:test|antibod|serolog|positive|negative)|HIV[- ]?1/2",
    "HIV RNA": r"HIV[- ]?(?:1 )?RNA|HIV viral load",
    "CD4 count": r"\bCD4\b",
    # --- tumour markers and hormones
    "prostate specific antigen": r"\bPSA\b|prostate[- ]specific antigen",
    "CA-125": r"CA[- ]?125",
    "carcinoembryonic antigen": r"\bCEA\b|carcinoembryonic",
    "alpha-fetoprotein": r"\bAFP\b|alpha[- ]?fetoprotein|α-fetoprotein",
    # --- lung function and gases
    "FEV1": r"\bFEV ?1\b|forced expiratory volume",
    "FVC": r"\bFVC\b|forced vital capacity",
    "FEV1/FVC ratio": r"FEV ?1 ?/ ?FVC|Tiffeneau",
    "DLCO": r"\bDL ?CO\b|diffusing capacity|\bTLCO\b",
    "SpO2": r"\bSpO2\b|oxygen saturation|\bSaO2\b|pulse oximetry",
    "PaO2": r"\bPaO2\b|arterial oxygen",
    "PaCO2": r"\bPaCO2\b",
    "respiratory rate": r"respiratory rate|breaths? per minute|breaths/min|respiration rate",
    "body temperature": r"(?:body |axillary |oral |core |tympanic )?temperature\s*(?:<|>|≥|≤|of|above|below|greater)|(?:fever|febrile)\s*(?:<|>|≥|≤|of|above|\(|defined)|\d\s*°\s*C\b",
    # --- body
    "body weight": r"\bweight\b|\bweigh(?:s|ing)?\b",
    "body height": r"\bheight\b|stature",
    "body mass index": r"\bBMI\b|body mass index",
    "body surface area": r"\bBSA\b|body surface area",
    "waist circumference": r"waist circumference",
    "ideal body weight": r"ideal body weight|\bIBW\b",
    "adjusted body weight": r"adjusted body weight|\bABW\b",
    # --- scores and grades
    "ECOG performance status": r"\bECOG\b|\bEOCG\b|\bWHO performance|Zubrod",
    "Karnofsky performance status": r"Karnofsky|\bKPS\b",
    "Lansky performance status": r"Lansky",
    "NYHA functional class": r"\bNYHA\b|New York Heart Association",
    "Child-Pugh score": r"Child[- ]?Pugh|Child[- ]Turcotte",
    "MELD score": r"\bMELD\b",
    "CTCAE grade": r"\bCTCAE\b|Common Terminology Criteria",
    "Glasgow Coma Scale": r"Glasgow Coma|\bGCS\b",
    "APACHE II score": r"APACHE",
    "SOFA score": r"\bSOFA\b",
    "Mini-Mental State Examination": r"\bMMSE\b|Mini[- ]Mental",
}

_COMPILED = {name: re.compile(pattern, re.IGNORECASE) for name, pattern in CONCEPTS.items()}


def default_corpus() -> Path:
    """$ELIG_CORPUS, or shared/data/criteria/lines.jsonl beside the checkout (as in CI), or /work/shared."""
    import os

    if os.environ.get("ELIG_CORPUS"):
        return Path(os.environ["ELIG_CORPUS"])
    for candidate in (ROOT.parent / "shared" / "data" / "criteria" / "lines.jsonl",
                      Path("/work/shared/data/criteria/lines.jsonl")):
        if candidate.is_file():
            return candidate
    return ROOT.parent / "shared" / "data" / "criteria" / "lines.jsonl"


def count(corpus: Path) -> dict[str, dict]:
    """concept -> {"lines": n, "trials": n, "example": a line}, over the corpus."""
    lines: dict[str, int] = defaultdict(int)
    trials: dict[str, set] = defaultdict(set)
    example: dict[str, str] = {}
    with open(corpus, encoding="utf-8") as f:
        for raw in f:
            row = json.loads(raw)
            text = row["text"]
            for name, rx in _COMPILED.items():
                if rx.search(text):
                    lines[name] += 1
                    trials[name].add(row["nct_id"])
                    example.setdefault(name, text)
    return {name: {"lines": lines[name], "trials": len(trials[name]), "example": example.get(name, "")}
            for name in CONCEPTS}


def snapshot(counts: dict[str, dict]) -> dict:
    """The counts as committed for the documentation (concepts named at least once)."""
    return {"corpus": "../shared/data/criteria/lines.jsonl (1,500 lines, 940 trials)",
            "command": ".venv/bin/python bench/vocabulary_corpus.py --json",
            "concepts": {k: {"trials": v["trials"], "lines": v["lines"]} for k, v in counts.items() if v["trials"] > 0}}


def coverage(counts: dict[str, dict]) -> dict[str, str | None]:
    """concept -> the vocabulary concept it resolves to (None when the vocabulary lacks it)."""
    sys.path.insert(0, str(ROOT))
    from elig.terminology.vocabulary import default_vocabulary

    vocab = default_vocabulary()
    out = {}
    for name in counts:
        concept = vocab.lookup(name)
        out[name] = concept.name if concept is not None else None
    return out


def coding(counts: dict[str, dict]) -> dict[str, str]:
    """concept -> how FHIR records of it are matched: 'LOINC' (it carries a checked LOINC code),
    'derived' (elig computes it), 'by name' (shipped without a code: native records only), or
    'missing' (not in the vocabulary)."""
    sys.path.insert(0, str(ROOT))
    from elig.terminology.vocabulary import default_vocabulary

    vocab = default_vocabulary()
    out = {}
    for name in counts:
        concept = vocab.lookup(name)
        if concept is None:
            out[name] = "missing"
        elif any(spec.system == "http://loinc.org" for spec in concept.codes):
            out[name] = "LOINC"
        elif concept.kind == "derived":
            out[name] = "derived"
        else:
            out[name] = "by name"
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=default_corpus())
    ap.add_argument("--json", action="store_true", help="print the counts as JSON")
    ap.add_argument("--write-snapshot", action="store_true",
                    help="write the counts to bench/vocabulary_corpus_counts.json, from which the docs table is built")
    ap.add_argument("--min-trials", type=int, default=2, help="concepts named in this many trials must be covered")
    args = ap.parse_args(argv)
    if not args.corpus.is_file():
        print(f"no corpus at {args.corpus}; pass --corpus", file=sys.stderr)
        return 2
    counts = count(args.corpus)
    covered = coverage(counts)
    missing = [n for n, c in counts.items() if c["trials"] >= args.min_trials and covered[n] is None]
    if args.write_snapshot:
        (ROOT / "bench" / "vocabulary_corpus_counts.json").write_text(json.dumps(snapshot(counts), indent=1,
                                                                                 ensure_ascii=False) + "\n",
                                                                      encoding="utf-8")
    if args.json:
        print(json.dumps({"concepts": counts, "covered": covered, "missing": missing}, indent=2, ensure_ascii=False))
        return 1 if missing else 0
    n_lines = sum(1 for _ in open(args.corpus, encoding="utf-8"))
    n_trials = len({json.loads(r)["nct_id"] for r in open(args.corpus, encoding="utf-8")})
    print(f"corpus: {n_lines} lines from {n_trials} trials ({args.corpus})")
    coded = coding(counts)
    print(f"{'concept':40} {'trials':>6} {'lines':>6}  {'in vocabulary':40} FHIR match")
    for name, c in sorted(counts.items(), key=lambda kv: (-kv[1]["trials"], kv[0])):
        if c["trials"] == 0:
            continue
        mark = covered[name] or ("MISSING" if c["trials"] >= args.min_trials else "-")
        print(f"{name:40} {c['trials']:>6} {c['lines']:>6}  {mark:40} {coded[name]}")
    named = [n for n, c in counts.items() if c["trials"] >= args.min_trials]
    print(f"\n{len(named)} concepts named in {args.min_trials}+ trials; "
          f"{len(named) - len(missing)} in the vocabulary, {len(missing)} missing")
    kinds = {k: sum(1 for n in named if coded[n] == k) for k in ("LOINC", "derived", "by name")}
    print(f"of those in the vocabulary: {kinds['LOINC']} carry a checked LOINC code, {kinds['derived']} "
          f"{'is' if kinds['derived'] == 1 else 'are'} derived (computed), {kinds['by name']} "
          f"{'is' if kinds['by name'] == 1 else 'are'} matched by name only (no code could be confirmed)")
    if missing:
        print("missing: " + ", ".join(missing))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
