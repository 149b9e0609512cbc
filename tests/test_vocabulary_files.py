"""Authors declare their own concepts: vocabulary files named in a protocol's header or passed
with --vocabulary, checked as the shipped vocabulary is, each problem at its file, line and column."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import elig
from elig.commands.cli import main
from elig.diagnostics import ProtocolError
from elig.language import canonical, parser
from elig.language.formatter import format_text
from elig.terminology.vocabulary import VocabularyError, default_vocabulary, load_vocabulary, read_vocabulary_file

from conftest import ROOT

FERRITIN = """\
concepts:
  - name: serum ferritin
    kind: measurement
    aliases: [ferritin, s-ferritin]
    codes:
      - {system: LOINC, code: 2276-4, display: "Ferritin [Mass/volume] in Serum or Plasma"}
    unit: ng/mL
    plausible: [0, 100000]
    uln: {value: 300, unit: ng/mL, source: "site laboratory"}
"""

PROTOCOL = """\
protocol SITE-1
  title "A site trial"
  vocabulary "site.yaml"

inclusion
  I1 "Ferritin below 2 x ULN"
    ferritin < 2 x ULN within 30 days
  I2 "Serum ferritin ≥ 20 µg/L"
    serum ferritin ≥ 20 µg/L within 30 days
"""

PATIENT = """\
id: p1
birth_date: 1970-01-01
sex: female
observations:
  - {code: {system: "http://loinc.org", code: 2276-4}, value: 150, unit: ng/mL, date: 2024-03-01}
"""


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture
def site(tmp_path):
    (tmp_path / "site.yaml").write_text(FERRITIN, encoding="utf-8")
    (tmp_path / "trial.elig").write_text(PROTOCOL, encoding="utf-8")
    (tmp_path / "p1.yaml").write_text(PATIENT, encoding="utf-8")
    return tmp_path


# ---------------------------------------------------------------- the header item
def test_header_names_vocabulary_files_and_prints_them_back():
    tree = parser.parse_protocol(PROTOCOL.replace('  vocabulary "site.yaml"\n',
                                                  '  vocabulary "site.yaml"\n  vocabulary "lab/local.yaml"\n'))
    assert [v.path for v in tree.vocabularies] == ["site.yaml", "lab/local.yaml"]
    assert tree.vocabularies[0].span.line == 3 and tree.vocabularies[0].span.column == 14
    text = canonical.protocol(tree)
    assert '  vocabulary "site.yaml"\n  vocabulary "lab/local.yaml"\n' in text
    assert parser.parse_protocol(text) == tree
    assert format_text(text) == text


def test_keyword_in_any_case_and_comment_kept_by_fmt():
    src = PROTOCOL.replace('  vocabulary "site.yaml"', '  # our concepts\n  VOCABULARY "site.yaml"')
    out = format_text(src)
    assert '  # our concepts\n  vocabulary "site.yaml"\n' in out


# ---------------------------------------------------------------- using declared concepts
def test_declared_concepts_check_and_evaluate_from_the_protocol_folder(site, monkeypatch):
    monkeypatch.chdir(ROOT)  # the path is relative to the protocol, not to the working folder
    r = invoke("check", site / "trial.elig")
    assert r.exit_code == 0, r.output
    r = invoke("explain", site / "trial.elig", site / "p1.yaml", "--as-of", "2024-03-15", "--format", "json")
    assert r.exit_code == 0, r.output
    result = json.loads(r.output)
    assert result["verdict"] == "eligible"
    outcomes = {c["id"]: c["outcome"] for c in result["criteria"]}
    assert outcomes == {"I1": "met", "I2": "met"}


def test_declared_default_uln_and_unit_conversion_are_used(site):
    r = invoke("explain", site / "trial.elig", site / "p1.yaml", "--as-of", "2024-03-15")
    assert r.exit_code == 0, r.output
    assert "ferritin 150 ng/mL meets < 2 x ULN = 600 ng/mL" in r.output
    assert "ULN 300 ng/mL from site laboratory" in r.output
    assert "serum ferritin 150 ng/mL meets ≥ 20 µg/L" in r.output


def test_every_command_takes_vocabulary(site):
    plain = site / "plain.elig"
    plain.write_text(PROTOCOL.replace('  vocabulary "site.yaml"\n', ""), encoding="utf-8")
    voc = site / "site.yaml"
    assert invoke("check", plain).exit_code == 1  # unknown concept without the file
    assert invoke("check", "--vocabulary", voc, plain).exit_code == 0
    assert invoke("lint", "--vocabulary", voc, plain).exit_code == 0
    r = invoke("parse", "s-ferritin < 500 ng/mL")
    assert r.exit_code == 1 and "unknown concept 's-ferritin'" in r.output
    r = invoke("parse", "--vocabulary", voc, "s-ferritin < 500 ng/mL")
    assert r.exit_code == 0 and r.output.strip() == "s-ferritin < 500 ng/mL"
    r = invoke("explain", "--vocabulary", voc, plain, site / "p1.yaml", "--as-of", "2024-03-15")
    assert r.exit_code == 0 and "ELIGIBLE" in r.output.upper()
    r = invoke("screen", "--vocabulary", voc, plain, site / "p1.yaml", "--as-of", "2024-03-15", "-q",
               "--csv", site / "out.csv")
    assert r.exit_code == 0, r.output
    assert "eligible" in (site / "out.csv").read_text(encoding="utf-8")
    cases = site / "cases" / "SITE-1"
    cases.mkdir(parents=True)
    (cases / "cases.yaml").write_text(
        "- name: ferritin 150 meets both\n  as_of: 2024-03-15\n  patient_file: ../../p1.yaml\n"
        "  expect: {overall: eligible}\n", encoding="utf-8")
    r = invoke("test", "--vocabulary", voc, plain)
    assert r.exit_code == 0, r.output
    assert "1 passed" in r.output or "1/1" in r.output
    r = invoke("questionnaire", "--vocabulary", voc, plain)
    assert r.exit_code == 0 and '"resourceType": "Questionnaire"' in r.output.replace('":"', '": "')


def test_the_same_file_named_twice_is_read_once(site):
    protocol = elig.load_protocol(site / "trial.elig", vocabulary=site / "site.yaml")
    assert protocol.vocabulary.lookup("ferritin").name == "serum ferritin"
    assert protocol.vocabulary.files == (str((site / "site.yaml").resolve()),)


def test_api_takes_a_file_a_list_or_a_vocabulary(site):
    plain = site / "plain.elig"
    plain.write_text(PROTOCOL.replace('  vocabulary "site.yaml"\n', ""), encoding="utf-8")
    with pytest.raises(ProtocolError, match="unknown concept 'ferritin'"):
        elig.load_protocol(plain)
    for arg in (site / "site.yaml", [str(site / "site.yaml")], elig.load_vocabulary(site / "site.yaml")):
        assert elig.load_protocol(plain, vocabulary=arg).vocabulary.lookup("ferritin") is not None


def test_shipped_concepts_know_where_they_are_declared():
    anc = default_vocabulary().lookup("ANC")
    assert anc.origin.file.endswith("vocabulary.yaml") and anc.origin.line > 1


# ---------------------------------------------------------------- errors, at the file, line and column
def test_missing_file_is_reported_at_the_header(site):
    bad = site / "missing.elig"
    bad.write_text(PROTOCOL.replace("site.yaml", "nope.yaml"), encoding="utf-8")
    r = invoke("check", bad)
    assert r.exit_code == 1
    assert f"{bad}:3:14: error[V300]: no such vocabulary file 'nope.yaml'" in r.output
    assert "relative to the protocol" in r.output
    r = invoke("check", "--vocabulary", site / "nope.yaml", site / "trial.elig")
    assert r.exit_code == 1 and "V301" in r.output and "no such vocabulary file" in r.output


def test_every_problem_of_a_file_at_once_with_line_column_and_hint(site):
    (site / "site.yaml").write_text(FERRITIN.replace("aliases:", "alias:").replace("2276-4", "2276-5")
                                    .replace("plausible: [0, 100000]", "plausible: [100000, 0]"), encoding="utf-8")
    r = invoke("check", site / "trial.elig")
    assert r.exit_code == 1
    out = r.output
    assert f"{site / 'site.yaml'}:4:5: error[V302]: concept 'serum ferritin': unknown field 'alias'" in out
    assert "did you mean 'aliases'?" in out
    assert f"{site / 'site.yaml'}:6:31: error[V305]" in out and "expected 2276-4" in out
    assert f"{site / 'site.yaml'}:8:16: error[V307]" in out
    assert "   |     alias: [ferritin, s-ferritin]\n" not in out  # the caret line is drawn under the text
    assert "4 |     alias: [ferritin, s-ferritin]" in out
    assert "Traceback" not in out


def test_lint_and_test_report_vocabulary_problems_too(site):
    (site / "site.yaml").write_text(FERRITIN.replace("unit: ng/mL\n", "unit: ng/mLx\n"), encoding="utf-8")
    r = invoke("lint", site / "trial.elig")
    assert r.exit_code == 1 and "V306" in r.output and "cannot read unit 'ng/mLx'" in r.output
    r = invoke("test", site / "trial.elig")
    assert r.exit_code == 1 and "V306" in r.output
    r = invoke("explain", site / "trial.elig", site / "p1.yaml")
    assert r.exit_code == 1 and "V306" in r.output


def test_alias_clash_names_both_concepts(site):
    (site / "site.yaml").write_text(FERRITIN.replace("[ferritin, s-ferritin]", "[ferritin, ANC]"), encoding="utf-8")
    with pytest.raises(VocabularyError) as exc:
        elig.load_protocol(site / "trial.elig")
    (d,) = exc.value.diagnostics
    assert d.code == "V310"
    assert "'serum ferritin'" in d.message and "'absolute neutrophil count'" in d.message
    assert "elig/data/vocabulary.yaml:" in d.message
    assert d.span.file.endswith("site.yaml") and d.span.line == 2


def test_a_declared_concept_cannot_redefine_a_shipped_one(site):
    (site / "site.yaml").write_text(FERRITIN.replace("name: serum ferritin", "name: platelet count"),
                                    encoding="utf-8")
    with pytest.raises(VocabularyError, match="'platelet count' is declared twice"):
        elig.load_protocol(site / "trial.elig")


def test_not_yaml_is_reported_with_its_place(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text('concepts:\n  - name: "ferritin\n', encoding="utf-8")
    _, problems, _ = read_vocabulary_file(bad)
    assert [p.code for p in problems] == ["V301"] and problems[0].span.line >= 2


# ---------------------------------------------------------------- the catalogue in docs/diagnostics.md
DIAGNOSTICS = (ROOT / "docs" / "diagnostics.md").read_text(encoding="utf-8").split("# Vocabulary files")[1]
SECTIONS = {m.group(1): body for m, body in
            ((re.match(r"(V\d{3})\b", part), part) for part in re.split(r"^## ", DIAGNOSTICS, flags=re.M)[1:]) if m}


def _codes_of(yaml_text: str, tmp_path: Path) -> list[str]:
    f = tmp_path / "v.yaml"
    f.write_text(yaml_text, encoding="utf-8")
    try:
        default_vocabulary().extended([f])
    except VocabularyError as exc:
        return sorted({d.code for d in exc.diagnostics})
    return []


def test_catalogue_lists_every_vocabulary_code():
    source = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "elig").rglob("*.py"))
    assert set(re.findall(r'"(V3\d\d)"', source)) == set(SECTIONS)


@pytest.mark.parametrize("code", sorted(SECTIONS))
def test_catalogue_examples(code, tmp_path):
    section = SECTIONS[code]
    wrong = re.search(r"\*\*Wrong\*\*.*?```(\w+)\n(.*?)```", section, flags=re.S)
    right = re.search(r"\*\*Right\*\*.*?```(\w+)\n(.*?)```", section, flags=re.S)
    if code == "V300":
        from elig.commands.lint import lint_text

        assert [d.code for d in lint_text(wrong.group(2), str(tmp_path / "demo.elig"))] == ["V300"]
        return
    assert wrong.group(1) == right.group(1) == "yaml"
    assert _codes_of(wrong.group(2), tmp_path) == [code]
    assert _codes_of(right.group(2), tmp_path) == []


def test_shipped_vocabulary_passes_the_same_checks():
    # The bundled files are read by the same code: loading them is the check.
    vocab = load_vocabulary()
    assert len(vocab.concepts) == len(default_vocabulary().concepts)
