"""The three seed trials: checked clean, every registered criterion present with its sentence."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

import elig
from elig.commands import casefile
from elig.commands.cli import main

ROOT = Path(__file__).resolve().parent.parent
PROTOCOLS = ROOT / "protocols"

# Criterion numbers of the registered text (sub-criteria such as I4.1 count for I4).
REGISTERED = {
    "NCT06021067": [f"I{i}" for i in range(1, 8)] + [f"E{i}" for i in range(1, 16)],
    "NCT06416709": [f"I{i}" for i in range(1, 5)] + [f"E{i}" for i in range(1, 10)],
    "NCT02444455": [f"I{i}" for i in range(1, 7)] + [f"E{i}" for i in range(1, 8)],
}
# Criteria no record can decide: the rule is made of attestations only.
ATTESTED = {
    "NCT06021067": {"I4.8", "I6", "I7", "E5", "E14", "E15"},
    "NCT06416709": {"I2.1", "I2.2", "I2.3", "I3.2", "E4.14", "E5", "E7", "E8.1", "E8.2", "E9"},
    "NCT02444455": {"I1", "I5", "E1", "E4", "E7"},
}


def test_check_is_clean():
    result = CliRunner().invoke(main, ["check", str(PROTOCOLS)])
    assert result.exit_code == 0, result.output
    assert "no problems" in result.output


@pytest.fixture(scope="module", params=sorted(REGISTERED))
def protocol(request):
    return elig.load_protocol(PROTOCOLS / f"{request.param}.elig")


def test_every_criterion_has_the_sponsor_sentence(protocol):
    for c in protocol.criteria:
        assert c.sentence and c.sentence.strip(), f"{protocol.id} {c.id} has no sponsor sentence"


def test_every_registered_criterion_is_present(protocol):
    ids = [c.id for c in protocol.criteria]
    for number in REGISTERED[protocol.id]:
        assert any(i == number or i.startswith(number + ".") for i in ids), f"{protocol.id}: {number} missing"


def test_attestation_only_criteria_are_listed(protocol):
    found = {c.id for c in protocol.criteria if casefile.only_attestations(c.plan)}
    assert found == ATTESTED[protocol.id]


def test_no_warnings(protocol):
    assert not protocol.warnings


def test_restored_comparators_carry_a_note():
    """NCT06416709 lost its ≥ and ≤: every sentence printing '=' before a number has a note saying so."""
    checked = elig.load_protocol(PROTOCOLS / "NCT06416709.elig")
    for c in checked.criteria:
        if re.search(r"(?<![<>])=\s*\d", c.sentence or ""):
            assert any("registry text prints '='" in n for n in c.notes), c.id
