"""The benchmark's protocols and hand-written functions mean what elig means (bench/, issue 14).

The engine benchmark compares elig with functions written by hand; a ratio is only honest
when both decide the same criteria the same way. The organ-function protocol must be the
9 criteria of NCT06021067 copied as written, and each hand-written function must give
elig's outcome for every criterion of every generated patient.
"""

from __future__ import annotations

import elig
from elig.engine.compiled import compile_protocol
from population import (
    AS_OF, ORGAN_CRITERIA, ORGAN_PROTOCOL, PROTOCOL, generate, handwritten, handwritten_organ,
)

OUTCOME = {True: "met", False: "not met", None: "unknown"}


def test_organ_function_protocol_is_nct06021067s_own_criteria():
    organ = elig.load_protocol(ORGAN_PROTOCOL)
    full = {c.id: c for c in elig.load_protocol(PROTOCOL).criteria}
    assert tuple(c.id for c in organ.criteria) == ORGAN_CRITERIA
    for c in organ.criteria:
        original = full[c.id]
        assert (c.section, c.sentence, c.rule_text, c.notes) == \
            (original.section, original.sentence, original.rule_text, original.notes), c.id


def test_hand_written_functions_decide_as_elig():
    records = generate(400, seed=11)
    for path, hand in ((ORGAN_PROTOCOL, handwritten_organ), (PROTOCOL, handwritten)):
        checked = elig.load_protocol(path)
        compiled = compile_protocol(checked)
        verdicts = set()
        for record in records:
            patient = elig.patient_from_data(record, "generated")
            verdict, crit = hand(record)
            result = elig.evaluate(checked, patient, AS_OF)
            assert [c.outcome.value for c in result.criteria] == [OUTCOME[x] for x in crit], record["id"]
            assert result.verdict.value == verdict, record["id"]
            assert compiled.outcomes(patient, AS_OF).verdict is result.verdict
            verdicts.add(verdict)
        assert verdicts == {"eligible", "ineligible", "undetermined"}, path.name
