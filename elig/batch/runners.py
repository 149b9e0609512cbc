"""Running a compiled protocol: DuckDB (embedded, the default for batch screening) and Spark.

Both read the same flat tables (``elig.batch.tables``): a folder of Parquet files, or
(DuckDB only) Arrow tables in memory. Each runner first reads the distinct concept
keys and units of the data, builds the small tables that match them to the protocol's
vocabulary (``compiler.concept_maps``), then runs the one query. The result is an
Arrow table: ``pk``, ``patient_id``, ``issues``, ``verdict`` and one column per
criterion (``c0``, ``c1``, ... in protocol order; TRUE met, FALSE not met, NULL unknown).

For Spark the query is translated from DuckDB's dialect with sqlglot, and the few
functions it does not carry are fixed up here (see ``to_spark``).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Iterable, Iterator

import attrs
import pyarrow as pa

from elig.batch import compiler as cc
from elig.batch.tables import TABLES, table_files
from elig.diagnostics import DataError
from elig.engine.plan import CheckedProtocol

OUTCOME = {True: "met", False: "not met", None: "unknown"}
CHUNK = 100_000  # patients per run of the query over a folder of tables: the peak memory does not grow beyond it


@attrs.frozen
class BatchRow:
    """One patient's outcomes from an SQL engine."""

    pk: int
    patient_id: str
    verdict: str
    outcomes: tuple[tuple[str, str], ...]  # (criterion id, met | not met | unknown), protocol order
    excluded_by: tuple[str, ...] = ()
    data_issues: int = 0
    source: str | None = None
    line: int | None = None


def rows(compiled: cc.Compiled, result: pa.Table | Iterable[pa.RecordBatch]) -> Iterator[BatchRow]:
    """The result (a table, or record batches as they come) as rows, outcome words per criterion, in patient order."""
    ids = [cid for cid, _ in compiled.criteria]
    excluding = [("not met" if section == "inclusion" else "met") for _, section in compiled.criteria]
    for batch in (result.to_batches(max_chunksize=10_000) if isinstance(result, pa.Table) else result):
        cols = batch.to_pydict()
        for n in range(batch.num_rows):
            outcomes = tuple((cid, OUTCOME[cols[f"c{i}"][n]]) for i, cid in enumerate(ids))
            yield BatchRow(cols["pk"][n], cols["patient_id"][n], cols["verdict"][n], outcomes,
                           tuple(cid for (cid, o), e in zip(outcomes, excluding) if o == e),
                           cols["issues"][n] or 0, cols["source"][n], cols["line"][n])


def write_parquet(batches: Iterable[pa.RecordBatch], out: str | Path) -> int:
    """Write record batches, as they come, into one Parquet file; return the number of rows."""
    import pyarrow.parquet as pq

    writer = None
    n = 0
    try:
        for batch in batches:
            if writer is None:
                writer = pq.ParquetWriter(str(out), batch.schema)
            writer.write_batch(batch)
            n += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return n


def _aux_arrow(rows_: list[dict], name: str) -> pa.Table:
    types = {"VARCHAR": pa.string(), "DOUBLE": pa.float64(), "BOOLEAN": pa.bool_(), "INTEGER": pa.int32(),
             "DATE": pa.date32()}
    schema = pa.schema([(col, types[t]) for col, t in cc.AUX_SCHEMAS[name]])
    return pa.Table.from_pylist(rows_, schema=schema)


_LEADING_COMMENTS = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z))*")


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _check_folder(folder: Path) -> None:
    missing = [name for name, f in table_files(folder).items() if not f.is_file()]
    if missing:
        raise DataError(f"not a folder of elig tables: {', '.join(m + '.parquet' for m in missing)} missing",
                        file=str(folder), hint="write the tables first: elig tables PATIENTS... --out FOLDER")


# ---------------------------------------------------------------- DuckDB
class DuckDBEngine:
    """DuckDB over a folder of Parquet tables, or over Arrow tables in memory.

    Over a folder, the query runs on the patients ``chunk`` at a time (by ``pk``, which the
    tables keep in order, so each chunk reads only its own row groups), and the results
    stream out chunk by chunk: memory is flat in the number of patients. Every step of the
    query is per patient (``GROUP BY pk``, windows ``PARTITION BY pk``), so a chunk decides
    its patients as the whole population would; only the distinct concept keys and units,
    which the concept tables are built from, are read over all patients, once.
    """

    name = "duckdb"

    def __init__(self, tables: str | Path | dict[str, pa.Table], threads: int | None = None,
                 memory_limit: str | None = None, temp_directory: str | None = None,
                 chunk: int | None = CHUNK):
        """``threads``: DuckDB's worker threads (default: every core). ``memory_limit`` (``'2GB'``):
        beyond it DuckDB spills to ``temp_directory`` (default: DuckDB's own); without it DuckDB
        may use up to 80% of the machine's memory. ``chunk``: patients per run of the query over
        a folder (``None`` or 0: all at once)."""
        import duckdb

        config = {}
        if threads:
            config["threads"] = int(threads)
        if memory_limit:
            config["memory_limit"] = str(memory_limit)
        if temp_directory:
            config["temp_directory"] = str(temp_directory)
        self.con = duckdb.connect(config=config)
        self.chunk = chunk or None
        self._files: dict[str, Path] = {}
        if isinstance(tables, dict):
            for name in TABLES:
                self.con.register(name, tables[name])
            self.chunk = None
        else:
            folder = Path(tables)
            _check_folder(folder)
            self._files = table_files(folder)
            self._views()
        self._keys = None

    def _views(self) -> None:
        """The six tables as views over the Parquet files, every patient."""
        for name, f in self._files.items():
            self.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet({_quote(f)})")

    def chunks(self) -> list[tuple[int, int] | None]:
        """The ``pk`` ranges the query runs on, one after the other (``[None]``: all patients at once)."""
        if not self.chunk:
            return [None]
        lo, hi = self.con.execute("SELECT min(pk), max(pk) FROM patients").fetchall()[0]
        if lo is None or hi - lo < self.chunk:
            return [None]
        return [(start, min(start + self.chunk, hi + 1)) for start in range(lo, hi + 1, self.chunk)]

    def chunked(self, sql: str) -> str:
        """``sql`` over the patients with ``$lo <= pk < $hi``: each table it reads becomes a CTE of that
        name over its Parquet file, filtered by the two parameters (DuckDB prunes the row groups
        outside them), so the query is prepared once and run on every chunk without planning it again."""
        tables = ",\n".join(f"{name} AS NOT MATERIALIZED (SELECT * FROM read_parquet({_quote(f)}) "
                            f"WHERE pk >= $lo AND pk < $hi)" for name, f in self._files.items())
        body = _LEADING_COMMENTS.sub("", sql)
        if body[:4].upper() == "WITH" and not body[4:5].isalnum() and body[4:5] != "_":
            return f"WITH {tables},\n{body[4:].lstrip()}"
        return f"WITH {tables}\n{body}"

    def batches(self, sql: str, rows: int = 50_000) -> Iterator[pa.RecordBatch]:
        """The result of ``sql`` (a query over the six tables, per patient), chunk by chunk, in
        record batches of at most ``rows`` rows; never the whole result at once."""
        empty = None
        yielded = False
        chunks = self.chunks()
        prepared = None
        try:
            if chunks != [None]:
                prepared = f"elig_chunk_{id(sql):x}"
                self.con.execute(f"PREPARE {prepared} AS {self.chunked(sql)}")
            for bounds in chunks:
                if bounds is None:
                    reader = self.con.sql(sql).to_arrow_reader(rows)
                else:
                    reader = self.con.sql(f"EXECUTE {prepared}(lo := {int(bounds[0])}, hi := {int(bounds[1])})"
                                          ).to_arrow_reader(rows)
                empty = reader.schema.empty_table()
                while True:
                    try:
                        batch = reader.read_next_batch()
                    except StopIteration:
                        break
                    if batch.num_rows:
                        yielded = True
                        yield batch
            if not yielded and empty is not None:  # no patient: an empty result still has its columns
                yield pa.RecordBatch.from_pylist([], schema=empty.schema)
        finally:
            if prepared is not None:
                self.con.execute(f"DEALLOCATE {prepared}")

    def keys(self) -> tuple[dict, list[str]]:
        """The distinct concept keys per entry kind, and the distinct units (read once)."""
        if self._keys is None:
            keys = {}
            for kind, table in cc.ENTRY_TABLES.items():
                keys[kind] = [k for (k,) in self.con.execute(f"SELECT DISTINCT mkey FROM {table}").fetchall()]
            units = [u for (u,) in self.con.execute(
                "SELECT unit FROM observations WHERE unit IS NOT NULL UNION "
                "SELECT ref_unit FROM observations WHERE ref_unit IS NOT NULL").fetchall()]
            self._keys = (keys, units)
        return self._keys

    def prepare(self, checked: CheckedProtocol, compiled: cc.Compiled) -> None:
        keys, units = self.keys()
        for name, data in cc.concept_maps(compiled, checked.vocabulary, checked.resolver, keys, units).items():
            self.con.register(name, _aux_arrow(data, name))

    def stream(self, checked: CheckedProtocol, as_of: dt.date) -> tuple[cc.Compiled, Iterator[pa.RecordBatch]]:
        """The compiled query and its result as record batches, computed chunk by chunk as they are read."""
        compiled = cc.compile_protocol(checked, as_of)
        self.prepare(checked, compiled)
        return compiled, self.batches(compiled.sql)

    def run(self, checked: CheckedProtocol, as_of: dt.date) -> tuple[cc.Compiled, pa.Table]:
        """The compiled query and its whole result as one Arrow table (for small populations)."""
        compiled, batches = self.stream(checked, as_of)
        return compiled, pa.Table.from_batches(list(batches))

    def write(self, checked: CheckedProtocol, as_of: dt.date, out: str | Path) -> cc.Compiled:
        """Run the query and write its result to a Parquet file, chunk by chunk."""
        compiled, batches = self.stream(checked, as_of)
        write_parquet(batches, out)
        return compiled

    def close(self) -> None:
        self.con.close()


# ---------------------------------------------------------------- Spark
def to_spark(sql: str) -> str:
    """The query in Spark SQL: sqlglot translates the dialect; what it leaves is fixed here.

    * ``arg_min_null(x, k)`` and ``arg_max_null(x, k)`` (DuckDB: the x of the least or greatest
      k, even when that x is NULL) become ``min_by`` and ``max_by``, which keep a NULL x as well
      (rows whose k is NULL are skipped by both).
    """
    import sqlglot

    sql = re.sub(r"\barg_min_null\(", "min_by(", sql)
    sql = re.sub(r"\barg_max_null\(", "max_by(", sql)
    return sqlglot.transpile(sql, read="duckdb", write="spark")[0]


class SparkEngine:
    """Apache Spark (``pyspark``) over the same Parquet tables.

    ``master`` is ``local[2]`` by default; give a cluster's master URL (or an existing
    ``SparkSession``) to run there. The tables' folder must then be readable by every
    executor (HDFS, S3, a shared file system).
    """

    name = "spark"

    def __init__(self, tables: str | Path, master: str = "local[2]", session=None, app: str = "elig"):
        folder = Path(tables) if "://" not in str(tables) else tables
        if isinstance(folder, Path):
            _check_folder(folder)
        if session is None:
            from pyspark.sql import SparkSession

            session = (SparkSession.builder.master(master).appName(app)
                       .config("spark.sql.session.timeZone", "UTC")
                       .config("spark.sql.shuffle.partitions", "2")
                       .config("spark.ui.enabled", "false")
                       .getOrCreate())
        self.spark = session
        for name in TABLES:
            self.spark.read.parquet(str(Path(tables) / f"{name}.parquet") if isinstance(folder, Path)
                                    else f"{tables}/{name}.parquet").createOrReplaceTempView(name)
        self._keys = None
        self._cached: list = []

    def keys(self) -> tuple[dict, list[str]]:
        if self._keys is None:
            keys = {}
            for kind, table in cc.ENTRY_TABLES.items():
                keys[kind] = [r[0] for r in self.spark.sql(f"SELECT DISTINCT mkey FROM {table}").collect()]
            units = [r[0] for r in self.spark.sql(
                "SELECT unit FROM observations WHERE unit IS NOT NULL UNION "
                "SELECT ref_unit FROM observations WHERE ref_unit IS NOT NULL").collect()]
            self._keys = (keys, units)
        return self._keys

    def frame(self, checked: CheckedProtocol, as_of: dt.date):
        """The compiled query and its Spark DataFrame (not yet computed)."""
        compiled = cc.compile_protocol(checked, as_of)
        keys, units = self.keys()
        from pyspark.sql.types import (BooleanType, DateType, DoubleType, IntegerType, StringType, StructField,
                                       StructType)

        types = {"VARCHAR": StringType(), "DOUBLE": DoubleType(), "BOOLEAN": BooleanType(), "INTEGER": IntegerType(),
                 "DATE": DateType()}
        for name, data in cc.concept_maps(compiled, checked.vocabulary, checked.resolver, keys, units).items():
            schema = StructType([StructField(col, types[t]) for col, t in cc.AUX_SCHEMAS[name]])
            self.spark.createDataFrame([tuple(r.get(c) for c, _ in cc.AUX_SCHEMAS[name]) for r in data],
                                       schema).createOrReplaceTempView(name)
        # Spark does not keep a CTE's result for its several readers: each step becomes a cached view,
        # computed once, so the query does not recompute the observations for every criterion.
        self.release()
        for name, body in compiled.steps:
            frame = self.spark.sql(to_spark(body))
            frame.cache()
            frame.createOrReplaceTempView(name)
            self._cached.append(frame)
        return compiled, self.spark.sql(to_spark(compiled.final))

    def release(self) -> None:
        """Free the cached steps of the last query."""
        for frame in self._cached:
            frame.unpersist()
        self._cached = []

    def run(self, checked: CheckedProtocol, as_of: dt.date) -> tuple[cc.Compiled, pa.Table]:
        compiled, frame = self.frame(checked, as_of)
        result = frame.toArrow() if hasattr(frame, "toArrow") else pa.Table.from_pandas(frame.toPandas())
        self.release()
        return compiled, result

    def write(self, checked: CheckedProtocol, as_of: dt.date, out: str | Path) -> cc.Compiled:
        """Run the query and write its result as Parquet (a folder of parts), on the executors."""
        compiled, frame = self.frame(checked, as_of)
        frame.write.mode("overwrite").parquet(str(out))
        self.release()
        return compiled

    def close(self) -> None:
        self.release()
        self.spark.stop()
