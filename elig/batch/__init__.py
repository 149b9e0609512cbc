"""Batch screening on SQL engines: flat tables, the plan-to-SQL compiler, DuckDB and Spark runners.

``tables`` reads populations (native files, FHIR bundles, FHIR Bulk Data NDJSON) into
flat tables kept as Parquet; ``views`` holds the SQL-on-FHIR v2 ViewDefinitions and a
runner for them; ``compiler`` turns a checked protocol into one SQL query over those
tables; ``runners`` executes it on DuckDB (embedded) or Spark. The interpreter
(``elig.engine.evaluator``) stays the reference: the SQL must decide every patient and
criterion as it does, and a construct the compiler cannot express is an error naming
the criterion (``CompileError``), never a different evaluation.
"""
