#!/usr/bin/env python3
"""Parse every golden Athena query as Trino SQL (sqlglot) and transpile it to DuckDB.

Fails (exit 1) naming the file when a query does not parse or transpile: Athena's engine (Trino)
cannot run here, so this is the offline check that the rendered SQL is valid Trino.
Usage: python3 scripts/check_athena_sql.py [FILES…]  (default: shared/tests/golden/*.sql)
"""
import glob
import sys

import sqlglot
from sqlglot.errors import ErrorLevel

files = sys.argv[1:] or sorted(glob.glob("shared/tests/golden/*.athena.sql"))
if not files:
    sys.exit("no golden SQL files found: run from the repository root")
failed = 0
for path in files:
    text = open(path, encoding="utf-8").read()
    try:
        tree = sqlglot.parse_one(text, read="trino", error_level=ErrorLevel.RAISE)
        tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
        print(f"ok    {path}")
    except Exception as exc:  # sqlglot raises several error types; each is a failure to report
        failed += 1
        print(f"FAIL  {path}: {exc}")
print(f"{len(files) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
