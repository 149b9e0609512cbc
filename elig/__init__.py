"""elig: a rules-as-code engine for clinical-trial eligibility.

Load a protocol once, evaluate many patients::

    import elig
    protocol = elig.load_protocol("protocols/NCT06021067.elig")
    patient = elig.load_patient("examples/patients/demo_patient.yaml")
    result = elig.evaluate(protocol, patient, as_of="2024-03-15")
    print(result.verdict, result.criterion("I4.5").outcome)
"""

__version__ = "0.1.0"

from elig.api import evaluate, load_protocol, load_vocabulary, parse_protocol_text  # noqa: E402
from elig.diagnostics import DataError, Diagnostic, EligError, ProtocolError  # noqa: E402
from elig.records.loader import load_patient, patient_from_data  # noqa: E402
from elig.records.patient import Patient  # noqa: E402
from elig.engine.results import EvaluationResult, Outcome, Verdict  # noqa: E402
from elig.engine.collector import batch_gc  # noqa: E402

__all__ = [
    "__version__", "load_protocol", "load_vocabulary", "parse_protocol_text", "evaluate", "load_patient", "patient_from_data",
    "Patient", "EvaluationResult", "Outcome", "Verdict", "EligError", "ProtocolError", "DataError", "Diagnostic",
    "batch_gc",
]
