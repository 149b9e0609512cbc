"""From a checked protocol to verdicts: the checker, the plan, the evaluator and its results."""
