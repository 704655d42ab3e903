"""SQL over a run folder's tables with DuckDB (each table is a view of its Parquet file;
the ledger's has its row numbers, `file_row_number`, which its `ref` column refers to).

Every connection made here is confined: once the views exist, DuckDB may read only
the run's five Parquet files, may not write, attach or load anything, and its
configuration is locked. `query` also accepts only one reading statement.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from credsim.errors import InputError
from credsim.results.run_dir import TABLES, open_run, reading

# Statements `credsim query` runs; DESCRIBE, SHOW, SUMMARIZE, FROM-first and VALUES
# queries parse as SELECT.
READ_STATEMENTS = (duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN)


def ident(name: str) -> str:
    """`name` as a quoted SQL identifier, whatever characters it holds."""
    return '"' + name.replace('"', '""') + '"'


def connect(run: Path) -> duckdb.DuckDBPyConnection:
    """A confined DuckDB connection with one view per table of the run folder `run`
    (check the folder with open_run first)."""
    paths = [str((run / f"{t}.parquet").resolve()) for t in TABLES]
    con = duckdb.connect(config={"autoinstall_known_extensions": False,
                                 "autoload_known_extensions": False})
    try:
        with reading(run):
            for table, path in zip(TABLES, paths, strict=True):
                # The ledger's rows are numbered: its `ref` column refers to them.
                con.read_parquet(path, file_row_number=table == "ledger").create_view(table)
        con.execute("SET allowed_paths = ?", [paths])
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def read_statement(sql: str) -> str:
    """`sql` if it is exactly one reading statement; else InputError saying what is
    accepted."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise InputError(f"query failed: {str(exc).splitlines()[0]}") from None
    if not statements:
        raise InputError("the SQL is empty; give one query, e.g. \"SELECT count(*) FROM "
                         "people\"")
    if len(statements) > 1:
        raise InputError(f"the SQL holds {len(statements)} statements; give exactly one query")
    kind = statements[0].type
    if kind not in READ_STATEMENTS:
        raise InputError(f"{kind.name} statements are not allowed: credsim query only reads "
                         "the run's tables (SELECT, WITH, EXPLAIN, DESCRIBE, SHOW)")
    return sql


def interruptible(con: duckdb.DuckDBPyConnection, work: Callable[[], Any]) -> Any:
    """Run `work()`, a DuckDB call on `con`, so that Ctrl-C stops it. DuckDB does not
    look at Python's signals while it computes, so a long query ran on to its end; here
    it runs in a thread, the main thread waits where Python can take the signal, and
    Ctrl-C interrupts the query before KeyboardInterrupt goes on."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="credsim-query", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.05)
    except KeyboardInterrupt:
        # Wait for the query to stop before going on: a thread still inside DuckDB when
        # the interpreter exits aborts the process. The interrupt is sent again until it
        # lands (one sent before the query began is lost), and a second Ctrl-C waits too.
        while thread.is_alive():
            con.interrupt()
            with suppress(KeyboardInterrupt):
                thread.join(0.05)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


@dataclass
class Result:
    """The rows of a query, fetched on demand."""

    columns: list[str]
    _con: duckdb.DuckDBPyConnection

    def fetch(self, n: int) -> list[tuple]:
        """The next at most `n` rows ([] at the end)."""
        try:
            return interruptible(self._con, lambda: self._con.fetchmany(n))
        except duckdb.Error as exc:
            raise InputError(f"query failed: {str(exc).splitlines()[0]}") from None

    def batches(self, n: int = 10_000) -> Iterator[list[tuple]]:
        while rows := self.fetch(n):
            yield rows


def _refusal(exc: duckdb.Error) -> InputError:
    first = str(exc).splitlines()[0]
    if isinstance(exc, duckdb.PermissionException):
        return InputError(f"query refused: {first} (credsim query reads only the run's tables)")
    return InputError(f"query failed: {first}")


@contextmanager
def stream(run: Path, sql: str) -> Iterator[Result]:
    """Run one reading statement over the run folder `run`; the rows are fetched from
    the Result while the context is open."""
    open_run(run)
    read_statement(sql)
    con = connect(run)
    try:
        try:
            interruptible(con, lambda: con.execute(sql))
        except duckdb.Error as exc:
            raise _refusal(exc) from None
        yield Result([d[0] for d in con.description or []], con)
    finally:
        con.close()


def query_arrow(run: Path, sql: str):
    """The result of one reading statement as a pyarrow.Table (the Python API's
    Run.sql), confined as `credsim query` is."""
    open_run(run)
    read_statement(sql)
    con = connect(run)
    try:
        rel = con.sql(sql)
        if rel is None:  # a statement without a result
            raise InputError("the statement returns no rows")
        # DuckDB 2 names it to_arrow_table; DuckDB 1 calls it arrow.
        fetch = rel.to_arrow_table if hasattr(rel, "to_arrow_table") else rel.arrow
        return interruptible(con, fetch)
    except duckdb.Error as exc:
        raise _refusal(exc) from None
    finally:
        con.close()


def query(run: Path, sql: str, limit: int | None = None) -> tuple[list[str], list[tuple]]:
    """The columns and rows (at most `limit` if given) of one reading statement."""
    with stream(run, sql) as result:
        if limit is not None:
            return result.columns, result.fetch(limit)
        return result.columns, [r for batch in result.batches() for r in batch]

