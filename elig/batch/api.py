"""The batch API: load a population into tables, screen it on an SQL engine, explain one patient.

::

    from elig.batch import api
    loaded = api.load(["population.ndjson"], "tables/")          # Parquet, once
    for row in api.screen(protocol, "tables/", "2024-03-15"):   # DuckDB by default
        print(row.patient_id, row.verdict, dict(row.outcomes))
    result = api.explain(protocol, "tables/", "bench-000042", "2024-03-15")  # the interpreter

``explain`` reads that one patient's record again from where the tables say it came
from and runs the interpreter on it: the explanation is the reference one, with every
value, conversion and source.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator

import attrs

from elig.batch import runners
from elig.batch.sources import Record, read_again, read_population
from elig.batch.tables import ParquetTables
from elig.diagnostics import DataError
from elig.engine.plan import CheckedProtocol

ENGINES = ("duckdb", "spark")


@attrs.frozen
class Loaded:
    folder: Path
    patients: int
    failures: tuple[tuple[int, Record], ...]  # (position in the input, the record that could not be read)


def load(inputs: Iterable[str | Path], folder: str | Path, batch: int = 50_000) -> Loaded:
    """Read every record of ``inputs`` into the Parquet tables of ``folder``."""
    failures = []
    index = 0
    with ParquetTables(folder, batch) as out:
        for record in read_population(inputs):
            if record.patient is None:
                failures.append((index, record))
            else:
                out.add(record.patient, record.source, record.line, record.origin)
            index += 1
        return Loaded(Path(folder), out.patients, tuple(failures))


def engine(name: str, folder: str | Path, master: str | None = None):
    if name == "duckdb":
        return runners.DuckDBEngine(folder)
    if name == "spark":
        return runners.SparkEngine(folder, master=master or "local[2]")
    raise ValueError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")


def screen(checked: CheckedProtocol, folder: str | Path, as_of, engine_name: str = "duckdb",
           master: str | None = None) -> Iterator[runners.BatchRow]:
    """Every patient of the tables in ``folder``, screened on an SQL engine, in input order."""
    eng = engine(engine_name, folder, master)
    if engine_name != "duckdb":
        compiled, result = eng.run(checked, as_of)
        yield from runners.rows(compiled, result)
        return
    try:  # DuckDB: the rows come as the query makes them, chunk by chunk, never all in memory at once
        compiled, batches = eng.stream(checked, as_of)
        yield from runners.rows(compiled, batches)
    finally:
        eng.close()


def explain(checked: CheckedProtocol, folder: str | Path, patient_id: str, as_of, attestations=None,
            site_codes=None):
    """The interpreter's full result for one patient of a batch (by patient id, or by row number ``#N``).

    Give the same ``attestations`` and ``site_codes`` as the screening did, if any.
    """
    import duckdb

    from elig.engine.evaluator import evaluate

    path = str(Path(folder) / "patients.parquet")
    if not Path(path).is_file():
        raise DataError("not a folder of elig tables (patients.parquet is missing)", file=str(folder),
                        hint="give the folder that elig screen --tables or elig tables wrote")
    con = duckdb.connect()
    try:
        if patient_id.startswith("#") and patient_id[1:].isdigit():
            found = con.execute("SELECT patient_id, source, line, origin FROM read_parquet(?) WHERE pk = ?",
                                [path, int(patient_id[1:]) - 1]).fetchall()
        else:
            found = con.execute("SELECT patient_id, source, line, origin FROM read_parquet(?) WHERE patient_id = ? "
                                "ORDER BY pk", [path, patient_id]).fetchall()
    finally:
        con.close()
    if not found:
        raise DataError(f"no patient {patient_id!r} in these tables", file=str(folder),
                        hint="give a patient id from the screening output, or #N for the N-th patient")
    pid, source, line, origin = found[0]
    from elig.api import with_attestations

    record = with_attestations(read_again(source, line, origin, pid), attestations, site_codes, checked)
    return evaluate(checked, record, as_of)
