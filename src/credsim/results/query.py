"""SQL over a run folder's tables with DuckDB (each table is a view of its Parquet file)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from credsim.errors import InputError
from credsim.results.run_dir import open_run


def connect(run: Path) -> duckdb.DuckDBPyConnection:
    manifest = open_run(run)
    con = duckdb.connect()
    for t in manifest["tables"]:
        path = str((run / f"{t}.parquet").resolve()).replace("'", "''")
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{path}')")
    return con


def query(run: Path, sql: str) -> tuple[list[str], list[tuple]]:
    con = connect(run)
    try:
        rel = con.execute(sql)
    except duckdb.Error as exc:
        raise InputError(f"query failed: {str(exc).splitlines()[0]}") from None
    if rel.description is None:
        return [], []
    return [d[0] for d in rel.description], rel.fetchall()
