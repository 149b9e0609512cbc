"""The explaining evaluator builds its results through slot builders (elig.engine.results): the
objects must be exactly the ones the classes' own constructors give, and as immutable."""

from __future__ import annotations


import attrs
import pytest

from elig.engine import results as r
from elig.engine.context import Picked, new_picked
from elig.records.patient import Observation, Source
from builder_support import assert_built_as_constructed

USED = r.ValueUsed("serum creatinine", 97.2, "µmol/L", 1.0995, "mg/dL", "97.2 µmol/L = 1.10 mg/dL", "2024-03-08",
                   "observations[3] in p1.json", None)
THRESHOLD = r.ThresholdUsed("≤ 2.5 x ULN", 100.0, "U/L", 40.0, "reference range of observations[9]", "ULN")
DERIVED = r.Derived("creatinine clearance", "Cockcroft-Gault", "CrCl = …", "(140 − 60) × 70 kg / …", 70.7, "mL/min",
                    (USED,), "Cockcroft DW", None, ())
EXPLANATION = r.Explanation("comparison", "ALT ≤ 2.5 x ULN within 7 days", r.Outcome.MET, "ALT 43 U/L meets …",
                            (USED,), THRESHOLD, DERIVED, None, (), (), None, ())
CRITERION = r.CriterionResult("I4.5", "inclusion", "ALT ≤ 2.5 x ULN", "ALT ≤ 2.5 x ULN within 7 days", ("a note",),
                              r.Outcome.MET, EXPLANATION, False)

BUILT = [
    (r.new_value_used, r.ValueUsed, attrs.astuple(USED, recurse=False)),
    (r.new_threshold_used, r.ThresholdUsed, attrs.astuple(THRESHOLD, recurse=False)),
    (r.new_derived, r.Derived, attrs.astuple(DERIVED, recurse=False)),
    (r.new_explanation, r.Explanation,
     ("and", "a and b", r.Outcome.UNKNOWN, "all required: 1 met, 1 unknown → unknown", (USED,), None, None, "why",
      ("ALT within 7 days",), ("LOINC 1742-6",), "needs ≤ 100", (EXPLANATION,))),
    (r.new_criterion_result, r.CriterionResult, attrs.astuple(CRITERION, recurse=False)),
    (r.new_collect_item, r.CollectItem, ("ALT within 7 days before 2024-03-15", ("I4.5", "E8"))),
    (r.new_evaluation_result, r.EvaluationResult,
     ("P1", "title", "sha256:0", "p1", "p1.json", "2024-03-15", "0.1.0", r.Verdict.ELIGIBLE, (CRITERION,), (),
      ("a data issue",), "A. Patient")),
    (new_picked, Picked, (Observation(Source("p1.json", "observations[0]"), "ALT", value=43.0), 43.0, USED)),
]


@pytest.mark.parametrize("build,cls,values", BUILT, ids=[c.__name__ for _, c, _ in BUILT])
def test_a_built_result_is_the_result_its_constructor_gives(build, cls, values):
    assert_built_as_constructed(build, cls, values)


def test_results_built_quickly_serialise_as_results_built_by_their_constructors():
    built = r.new_evaluation_result(*BUILT[6][2])
    made = r.EvaluationResult(*BUILT[6][2])
    assert built.to_json_dict() == made.to_json_dict()
