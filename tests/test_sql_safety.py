"""No SQL is built from user strings, and `credsim query` reads only the run's tables.

A scenario's names (gates, bands) reach the readers through a run's manifest and its
column names; here they are made hostile by editing a small run after it was written,
since validation may refuse such names in a scenario file.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from credsim.cli import app
from credsim.results import query as q
from credsim.results.query import connect, ident

READERS = (("summary",), ("audit",), ("report",), ("calibrate",), ("lookup", "5"),
           ("query", "select count(*) from sanctions"))


@pytest.fixture(scope="module")
def run(simulate, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sql") / "run"
    return simulate(out, "rongcheng", people=2000, days=30).path


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _clean(r) -> None:
    """Exit 0, or exit 2 with one error line; never an uncaught exception."""
    assert r.exit_code in (0, 2), (r.exit_code, r.stdout, r.stderr, r.exception)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    if r.exit_code == 2:
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr


def _rename_gate(src: Path, dst: Path, old: str, new: str, decoy: str | None = None) -> Path:
    """A copy of the run `src` in which the gate `old` is called `new` in the manifest,
    the time series and the sanctions table; `decoy` adds a column gate_<decoy> that
    SQL formatted from the name would need to parse."""
    shutil.copytree(src, dst)
    mf = dst / "manifest.json"
    m = json.loads(mf.read_text("utf-8"))
    gates = m["scenario"]["gates"]
    m["scenario"]["gates"] = {(new if k == old else k): v for k, v in gates.items()}
    mf.write_text(json.dumps(m), "utf-8")
    ts = pq.read_table(dst / "timeseries.parquet")
    names = [{f"gate_{old}": f"gate_{new}", f"gate_{old}_wrongful": f"gate_{new}_wrongful"}
             .get(c, c) for c in ts.column_names]
    ts = ts.rename_columns(names)
    if decoy is not None:
        ts = ts.append_column(f"gate_{decoy}", ts.column(f"gate_{new}"))
    pq.write_table(ts, dst / "timeseries.parquet")
    sanctions = pq.read_table(dst / "sanctions.parquet")
    i = sanctions.column_names.index("gate")
    gate = sanctions.column("gate").combine_chunks()
    labels = [new if g == old else g for g in gate.dictionary.to_pylist()]
    gate = pa.DictionaryArray.from_arrays(gate.indices, pa.array(labels, pa.string()))
    pq.write_table(sanctions.set_column(i, "gate", gate), dst / "sanctions.parquet")
    return dst


def _gate_measure(run: Path, gate: str) -> float | None:
    values = pq.read_table(run / "measures.parquet").to_pylist()
    found = [r["value"] for r in values if r["key"] == f"gate={gate}"]
    assert len(found) == 1, found
    return found[0]


def test_hostile_gate_name_runs_no_sql(run, tmp_path, monkeypatch):
    """A gate name that closes the quoted column and appends a COPY ... TO: the readers
    neither run the COPY nor crash, and the audit still counts the gate's applications."""
    pwned = tmp_path / "pwned.csv"
    hostile = (f'x"), 0) FROM timeseries; COPY (SELECT 42 AS pwned) TO \'{pwned}\'; '
               'SELECT coalesce(sum("day')
    folder = _rename_gate(run, tmp_path / "hostile", "flights", hostile, decoy="x")
    monkeypatch.chdir(tmp_path)
    for args in READERS:
        r = _invoke(args[0], str(folder), *args[1:])
        _clean(r)
        assert not pwned.exists(), args
    if (folder / "measures.parquet").exists():  # the audit accepted the name
        expected = pq.read_table(run / "timeseries.parquet").column("gate_flights")
        assert _gate_measure(folder, hostile) == pytest.approx(
            sum(expected.to_pylist()) * 365 / 30 * 1e6 / 2000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hostile"]


@pytest.mark.parametrize("name", ['fl"ights', "fl'ights", "a\\b", "[bold]x[/]", "x;--",
                                  "<b>g</b>", "x[/]"])
def test_quotes_in_gate_names_do_not_crash_the_readers(run, tmp_path, name):
    folder = _rename_gate(run, tmp_path / "q", "flights", name)
    for args in READERS:
        _clean(_invoke(args[0], str(folder), *args[1:]))
    if (folder / "report.html").exists():
        assert "<b>g</b>" not in (folder / "report.html").read_text("utf-8")


def test_audit_reads_a_hostile_gate_column_through_the_api(run, tmp_path):
    """measures.compute on the same hostile folder: the gate's measure is the sum of its
    own column (if the scenario model accepts the name at all)."""
    from credsim.audit.measures import compute
    from credsim.errors import InputError

    name = 'a"b'
    folder = _rename_gate(run, tmp_path / "api", "flights", name)
    try:
        measures = compute(folder)
    except InputError as exc:  # the scenario model refuses such names
        assert "manifest.json" in str(exc)
        return
    (m,) = [m for m in measures if m.key == f"gate={name}"]
    total = sum(pq.read_table(run / "timeseries.parquet").column("gate_flights").to_pylist())
    assert m.value == pytest.approx(total * 365 / 30 * 1e6 / 2000)


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=30).filter(lambda s: "\x00" not in s))
def test_ident_quotes_any_name(name):
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t ({ident(name)} INTEGER)")
    con.execute("INSERT INTO t VALUES (7)")
    assert [d[0] for d in con.execute("SELECT * FROM t").description] == [name]
    assert con.execute(f"SELECT {ident(name)} FROM t").fetchall() == [(7,)]


def test_manifest_tables_are_not_table_names_for_sql(run, tmp_path):
    """`tables` in the manifest is checked against the five tables, never formatted into a
    CREATE VIEW."""
    folder = tmp_path / "t"
    shutil.copytree(run, folder)
    m = json.loads((folder / "manifest.json").read_text("utf-8"))
    m["tables"] = [*m["tables"], "x AS SELECT 1; COPY (SELECT 1) TO 'pwned.csv'; --"]
    (folder / "manifest.json").write_text(json.dumps(m), "utf-8")
    r = _invoke("query", str(folder), "select 1")
    assert r.exit_code == 2 and "manifest.json" in r.stderr and "tables" in r.stderr
    assert not (Path.cwd() / "pwned.csv").exists()


# credsim query --------------------------------------------------------------------------

REFUSED = {
    "read_text": "SELECT * FROM read_text('{secret}')",
    "read_csv": "SELECT * FROM read_csv('{secret}')",
    "replacement scan": "SELECT * FROM '{secret}'",
    "glob": "SELECT * FROM glob('{dir}/*')",
    "another run's table": "SELECT * FROM read_parquet('{other}')",
    "copy to": "COPY (SELECT * FROM people) TO '{dir}/out.csv'",
    "copy table": "COPY people TO '{dir}/out.parquet' (FORMAT parquet)",
    "explain analyze copy": "EXPLAIN ANALYZE COPY (SELECT 1) TO '{dir}/out.csv'",
    "create view": "CREATE VIEW v AS SELECT 1",
    "attach": "ATTACH '{dir}/db.duckdb' AS db",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "create table": "CREATE TABLE t AS SELECT 1",
    "insert": "INSERT INTO people SELECT * FROM people",
    "drop": "DROP VIEW people",
    "set": "SET enable_external_access = true",
    "pragma": "PRAGMA version",
    "call": "CALL pragma_version()",
    "export": "EXPORT DATABASE '{dir}/exported'",
    "two statements": "SELECT 1; COPY (SELECT 1) TO '{dir}/out.csv'",
    "two selects": "SELECT 1; SELECT 2",
    "empty": "",
    "blank": "   \n ",
    "semicolon": ";",
    "comment only": "/* nothing */",
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_query_is_refused_with_exit_2_and_writes_nothing(run, tmp_path, monkeypatch, case):
    secret = tmp_path / "secret.txt"
    secret.write_text("id\n123456789\n")
    other = tmp_path / "other.parquet"
    pq.write_table(pa.table({"id": [123456789]}), other)
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*")), sorted(run.iterdir())
    sql = REFUSED[case].format(secret=secret, dir=tmp_path, other=other)
    for fmt in ("table", "csv"):
        r = _invoke("query", str(run), sql, "--format", fmt)
        _clean(r)
        assert r.exit_code == 2, (case, r.stdout)
        assert "123456789" not in r.stdout + r.stderr
    assert (sorted(tmp_path.rglob("*")), sorted(run.iterdir())) == before


def test_query_messages_say_what_is_allowed(run):
    assert "empty" in _invoke("query", str(run), ";").stderr
    assert "exactly one" in _invoke("query", str(run), "select 1; select 2").stderr
    msg = _invoke("query", str(run), "COPY people TO 'x.csv'").stderr
    assert "COPY" in msg and "SELECT" in msg
    msg = _invoke("query", str(run), "select * from read_text('/etc/hostname')").stderr
    assert "only the run's tables" in msg


@pytest.mark.parametrize("sql", ["SELECT count(*) AS n FROM people",
                                 "WITH x AS (SELECT id FROM people) SELECT count(*) AS n "
                                 "FROM x", "FROM people SELECT count(*) AS n"])
def test_reading_queries_still_work(run, sql):
    r = _invoke("query", str(run), sql, "--format", "csv")
    assert r.exit_code == 0, r.stderr
    assert r.stdout.split() == ["n", "2000"]


@pytest.mark.parametrize("sql", ["DESCRIBE people", "SHOW TABLES", "EXPLAIN SELECT 1",
                                 "SUMMARIZE timeseries"])
def test_describe_show_and_explain_are_reads(run, sql):
    assert _invoke("query", str(run), sql).exit_code == 0


def test_query_table_fetches_one_row_more_than_the_limit(run, monkeypatch):
    asked: list[int] = []
    fetch = q.Result.fetch
    monkeypatch.setattr(q.Result, "fetch", lambda self, n: asked.append(n) or fetch(self, n))
    r = _invoke("query", str(run), "select id from people order by id", "--limit", "7")
    assert r.exit_code == 0
    assert asked == [8]
    shown = [ln for ln in r.stdout.splitlines() if ln.startswith("│")]
    assert len(shown) == 7
    assert "more rows than the 7 shown" in r.stdout
    r = _invoke("query", str(run), "select id from people limit 7", "--limit", "7")
    assert r.exit_code == 0 and "more rows" not in r.stdout


def test_query_csv_streams_in_batches(run, monkeypatch):
    asked: list[int] = []
    fetch = q.Result.fetch
    monkeypatch.setattr(q.Result, "fetch", lambda self, n: asked.append(n) or fetch(self, n))
    monkeypatch.setattr(q.Result.batches, "__defaults__", (300,))
    r = _invoke("query", str(run), "select id from people order by id", "--format", "csv")
    assert r.exit_code == 0
    assert r.stdout.split() == ["id", *map(str, range(2000))]
    assert asked and set(asked) == {300} and len(asked) == 2000 // 300 + 2


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_query_limit_must_be_at_least_1(run, limit):
    r = _invoke("query", str(run), "select 1", "--limit", limit)
    assert r.exit_code == 2 and "--limit" in r.stderr


def test_query_connection_is_locked(run):
    con = connect(run)
    try:
        with pytest.raises(duckdb.Error):
            con.execute("SET enable_external_access = true")
        with pytest.raises(duckdb.Error):
            con.execute("SELECT * FROM read_text('/etc/hostname')")
        assert con.execute("SELECT count(*) FROM people").fetchone() == (2000,)
    finally:
        con.close()
