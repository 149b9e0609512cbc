"""The compiled protocol on Apache Spark (local[2]): the same outcomes as DuckDB and the interpreter.

Needs Java 17 (the Makefile installs Debian's openjdk-17-jre-headless where ``java`` is
missing) and pyspark (the ``test`` extra). One Spark session decides a small generated
population and every protocol case of NCT06416709 (ratios of paired blood gases, daily
rates, tests within 14 days).
"""

from __future__ import annotations

import collections
import shutil
import sys
from pathlib import Path

import pytest

import elig
from elig.batch import runners, tables
from elig.commands import casefile

from batch_support import differences

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

pytestmark = [
    pytest.mark.skipif(shutil.which("java") is None,
                       reason="no Java runtime: Spark needs Java 17 (make test installs openjdk-17-jre-headless)"),
]
pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed (pip install -e '.[test]')")


def test_spark_decides_as_duckdb_and_the_interpreter(tmp_path):
    try:
        from population import AS_OF, generate
    except ImportError:  # before bench/population.py exists
        from bench_screen import AS_OF, generate

    checked = elig.load_protocol(ROOT / "protocols" / "NCT06021067.elig")
    patients = [elig.patient_from_data(p, "generated") for p in generate(150, 11)]
    folder = tmp_path / "generated"
    tables.write_tables(patients, folder)

    pf = ROOT / "protocols" / "NCT06416709.elig"
    other = elig.load_protocol(pf)
    cases = [c for cf in casefile.case_files(casefile.case_dir_for(pf, pf.stem)) for c in casefile.load_cases(cf)]
    as_of = collections.Counter(c.as_of for c in cases).most_common(1)[0][0]
    case_patients = [c.patient() for c in cases if c.as_of == as_of]
    case_folder = tmp_path / "cases"
    tables.write_tables(case_patients, case_folder)

    spark = runners.SparkEngine(folder)
    try:
        compiled, result = spark.run(checked, AS_OF)
        on_spark = list(runners.rows(compiled, result))
        cases_on_spark = list(runners.rows(*runners.SparkEngine(case_folder, session=spark.spark).run(other, as_of)))
    finally:
        spark.close()

    compiled, result = runners.DuckDBEngine(folder).run(checked, AS_OF)
    on_duckdb = list(runners.rows(compiled, result))
    assert on_spark == on_duckdb
    assert differences(checked, patients, AS_OF, on_spark) == []
    assert {r.verdict for r in on_spark} == {"eligible", "ineligible", "undetermined"}
    assert len(cases_on_spark) == len(case_patients) >= 20
    assert differences(other, case_patients, as_of, cases_on_spark) == []
