"""Shared fixtures. Golden files are rewritten on purpose with ELIG_UPDATE_GOLDEN=1."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# bench/population.py (the generated population) is shared by the benchmarks and the tests.
if str(ROOT / "bench") not in sys.path:
    sys.path.insert(0, str(ROOT / "bench"))
UPDATE_GOLDEN = bool(os.environ.get("ELIG_UPDATE_GOLDEN"))


def _synthea_dir() -> Path:
    """The shared Synthea bundles: $ELIG_SYNTHEA_DIR, or shared/ beside the checkout (as in CI)."""
    if os.environ.get("ELIG_SYNTHEA_DIR"):
        return Path(os.environ["ELIG_SYNTHEA_DIR"])
    for candidate in (ROOT.parent / "shared" / "data" / "fhir", Path("/work/shared/data/fhir")):
        if candidate.is_dir():
            return candidate
    return ROOT.parent / "shared" / "data" / "fhir"


SYNTHEA_DIR = _synthea_dir()


def assert_golden(path: Path, actual: str) -> None:
    """Compare with a golden file; with ELIG_UPDATE_GOLDEN=1, rewrite it instead."""
    if UPDATE_GOLDEN or not path.exists():
        if not UPDATE_GOLDEN:
            pytest.fail(f"golden file {path} is missing; run with ELIG_UPDATE_GOLDEN=1 to create it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    expected = path.read_text(encoding="utf-8")
    assert actual == expected, f"output differs from {path} (ELIG_UPDATE_GOLDEN=1 regenerates it)"


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def nct06021067():
    import elig

    return elig.load_protocol(ROOT / "protocols" / "NCT06021067.elig")
