"""The files rnnbench reads and writes, as typed records validated by pydantic v2 on read and
before write: suite files (suite.py), benchmark results (results.py), parity records
(parity.py), parallel-in-time sweeps and solves (parallel_in_time.py) and the trained examples'
training record (training.py). Each field is declared once, here; every violation becomes one
line naming the file, the field's path and what is allowed (errors.py); `rnnbench schema`
publishes the JSON Schema of each (results/schema/).

Why pydantic: its models validate nested data with the exact location of each error, produce a
JSON Schema from the same declarations, read JSON in strict or lax modes per field, and are
maintained and used widely enough that a reader of this code already knows them.
"""
