"""Batch screening on SQL engines: flat tables, the plan-to-SQL compiler, DuckDB and Spark runners.

``sources`` reads populations (native files, FHIR bundles, FHIR Bulk Data NDJSON, view
output) and ``tables`` keeps them as flat Parquet tables; FHIR goes through the SQL-on-FHIR
v2 ViewDefinitions (``views``: the runner) and the step after them (``assemble``);
``compiler`` turns a checked protocol into one SQL query over those
tables; ``runners`` executes it on DuckDB (embedded) or Spark. The interpreter
(``elig.engine.evaluator``) stays the reference: the SQL must decide every patient and
criterion as it does, and a construct the compiler cannot express is an error naming
the criterion (``CompileError``), never a different evaluation.
"""
