"""The terminal speaks to people: numbers without e notation and to the digits they carry,
tables that wrap instead of cutting at 80 columns and are whole when piped, every table in
four formats that parse back, and options and help that read the same on every command."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from credsim import formatting as fm
from credsim.scenario.reference import parameters

FINITE = st.floats(allow_nan=False, allow_infinity=False)
SHARES = st.floats(-1e300, 1e300)  # as percentages (x 100) still finite
# No deadline: the machine is shared, and time is not what these tests are about.
untimed = settings(deadline=None)
SMALL = ("--people", "2000", "--days", "30")
TINY = ("--people", "500", "--days", "10", "--replicates", "2", "--workers", "1")


def _parse(text: str) -> float:
    """The number a formatted value stands for."""
    return float(text.replace(",", "").replace("−", "-").removesuffix(" %"))


def _unit_of_last_place(text: str) -> float:
    digits = text.removesuffix(" %").partition(".")[2]
    return 10.0 ** -len(digits)


# --- numbers --------------------------------------------------------------------------


@untimed
@given(SHARES)
def test_numbers_never_use_e_notation(v):
    for text in (fm.number(v), fm.percent(v), fm.value(v, "share"), fm.value(v, "points")):
        assert "e" not in text.lower(), text


@untimed
@given(FINITE)
def test_numbers_read_back_to_within_their_last_digit(v):
    text = fm.number(v)
    # Within half a unit of the last digit shown (and of binary-to-decimal slack).
    assert abs(_parse(text) - v) <= _unit_of_last_place(text) / 2 + abs(v) * 1e-15


@untimed
@given(SHARES)
def test_percentages_read_back_to_within_their_last_digit(v):
    shown = fm.percent(v)
    assert abs(_parse(shown) - v * 100) <= _unit_of_last_place(shown) / 2 + abs(v) * 1e-13


@untimed
@given(FINITE, FINITE)
def test_numbers_are_monotone(a, b):
    lo, hi = sorted((a, b))
    assert _parse(fm.number(lo)) <= _parse(fm.number(hi))


@untimed
@given(SHARES, SHARES)
def test_percentages_are_monotone(a, b):
    lo, hi = sorted((a, b))
    assert _parse(fm.percent(lo)) <= _parse(fm.percent(hi))


@untimed
@given(st.floats(-1e12, 1e12), st.floats(1e-9, 1e9))
def test_intervals_show_the_digits_the_half_width_supports(mean, half):
    lo, hi = mean - half, mean + half
    half = (hi - lo) / 2  # as the bounds give it
    text = fm.mean_pm(mean, lo, hi)
    assert "e" not in text.lower()
    shown_mean, _, shown_half = text.partition(" ± ")
    # Mean and half-width rounded to the same place: that of the half-width's second
    # significant digit.
    place = _unit_of_last_place(shown_half)
    assert _unit_of_last_place(shown_mean) == place
    assert place == pytest.approx(10.0 ** -fm.decimals_for(half, 2))
    assert abs(_parse(shown_mean) - mean) <= place / 2 * (1 + 1e-9) + abs(mean) * 1e-15
    assert abs(_parse(shown_half) - half) <= place / 2 * (1 + 1e-9) + half * 1e-15


def test_people_read_these_numbers():
    assert fm.number(7.066e-05) == "0.00007066"
    assert fm.percent(7.066e-05) == "0.007066 %"
    assert fm.number(1234567.8) == "1,234,568"
    assert fm.mean_pm(1257.3, 917.2, 1597.4) == "1,257 ± 340"
    assert fm.mean_pm(0.017, -0.0302, 0.0642, "share") == "1.7 ± 4.7 %"
    assert fm.mean_pm(-0.01, -0.02, 0.0, "share", difference=True) == "-1.0 ± 1.0 pp"
    assert fm.number(None) == "n/a" and fm.mean_pm(None, None, None) == "n/a"


# --- tables at 80 columns and piped ---------------------------------------------------


def _cli(*args: str, columns: int | None = 80, cwd: Path | None = None,
         timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["NO_COLOR"] = "1"
    if columns is not None:
        env["COLUMNS"] = str(columns)
    return subprocess.run([sys.executable, "-m", "credsim", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def _columns(table_text: str) -> dict[str, str]:
    """Each column of a Rich table (by header) as its text with all white space removed:
    a cell folded over several lines reads back whole."""
    lines = table_text.splitlines()
    head = [ln for ln in lines if ln.startswith("┃")]
    body = [ln for ln in lines if ln.startswith("│")]
    names = [_squeezed("".join(parts)) for parts in zip(*[[c.strip() for c in ln.split("┃")[1:-1]]
                                                for ln in head], strict=True)]
    cols = [_squeezed("".join(col)) for col in
            zip(*[ln.split("│")[1:-1] for ln in body], strict=True)]
    return dict(zip(names, cols, strict=True))


def _squeezed(s: str) -> str:
    return "".join(s.split())


# command: (arguments, {field of a --format json record: the column that shows it whole})
AUDIT_NAME = "measure[identifierkey]"
CASES = {
    "audit": (["audit"], {"measure": AUDIT_NAME, "key": AUDIT_NAME, "label": AUDIT_NAME,
                          "unit": "unit"}),
    "calibrate": (["calibrate"], {"target": "target", "unit": "unit"}),
    "summary": (["summary"], {"figure": "figure", "unit": "unit"}),
}


@pytest.mark.parametrize("command", sorted(CASES))
def test_run_tables_wrap_but_keep_every_key_and_unit_whole_at_80_columns(cli_run, command):
    args, fields = CASES[command]
    r = _cli(*args, str(cli_run))
    assert r.returncode == 0, r.stderr
    assert "…" not in r.stdout
    # The table fits; notes below it are left to the terminal to wrap.
    assert all(len(ln) <= 80 for ln in r.stdout.splitlines() if ln[:1] in "┏┃┡│└")
    records = json.loads(_cli(*args, str(cli_run), "--format", "json").stdout)
    cols = _columns(r.stdout)
    for rec in records:
        for f, column in fields.items():
            assert _squeezed(rec[f]) in cols[column], (f, rec)


def test_params_wrap_but_keep_every_key_whole_at_80_columns():
    r = _cli("params")
    assert r.returncode == 0, r.stderr
    assert "…" not in r.stdout and all(len(ln) <= 80 for ln in r.stdout.splitlines())
    cols = _columns(r.stdout)
    for p in parameters():
        assert _squeezed(p.key) in cols["key"] and _squeezed(p.allowed) in cols["allowed"]
        assert _squeezed(p.unit) in cols["unit"]


def test_piped_tables_are_not_wrapped(cli_run):
    r = _cli("audit", str(cli_run), columns=None)
    assert r.returncode == 0, r.stderr
    lines = [[c.strip() for c in ln.split("│")[1:-1]] for ln in r.stdout.splitlines()
             if ln.startswith("│")]
    records = json.loads(_cli("audit", str(cli_run), "--format", "json").stdout)
    # Each measure: its label on one line with its value and unit, its identifier below.
    assert len(lines) == 2 * len(records)
    for (label, _, unit), (ident, _, _), x in zip(lines[::2], lines[1::2], records,
                                                 strict=True):
        key = f" {x['key']}" if x["key"] else ""
        assert (label, unit, ident) == (x["label"], x["unit"], f"[{x['measure']}{key}]")


@untimed
@given(st.lists(st.floats(-1e9, 1e9), min_size=1, max_size=6),
       st.integers(min_value=40, max_value=120))
def test_a_table_of_many_numbers_is_never_cut(means, width):
    """Numbers stay whole when the table can fit so, and wrap rather than being cut when
    it cannot (a grid of intervals on a narrow terminal)."""
    o = fm.Output("t", [fm.Column("grid point"),
                        *(fm.Column(f"measure number {i} per million", numeric=True)
                          for i in range(len(means)))])
    for row in range(3):
        o.add([f"court_list.grace_days={row}",
               *(fm.mean_pm(m, m - 1.5 - row, m + 1.5 + row) for m in means)])
    console = Console(file=io.StringIO(), width=width, color_system=None)
    fm.emit(o, "table", console)
    text = console.file.getvalue()
    assert "…" not in text and all(len(ln) <= width for ln in text.splitlines())
    cols = _columns(text)
    for row in o.cells:
        for header, cell in zip((c.header for c in o.columns), row, strict=True):
            assert _squeezed(cell) in cols[_squeezed(header)]


# --- formats --------------------------------------------------------------------------


def _markdown_rows(text: str) -> list[list[str]]:
    lines = text.strip().splitlines()
    assert re.fullmatch(r"\|(---:?\|)+", lines[1]), lines[1]
    return [[c.strip() for c in ln.strip("|").split(" | ")] for ln in [lines[0], *lines[2:]]]


@pytest.mark.parametrize("command", ["audit", "summary", "calibrate", "params"])
def test_every_format_parses_back_to_the_same_rows(cli_run, command):
    args = ["params"] if command == "params" else [command, str(cli_run)]
    as_json = json.loads(_cli(*args, "--format", "json").stdout)
    assert isinstance(as_json, list) and as_json and all(isinstance(r, dict) for r in as_json)
    as_csv = list(csv.DictReader(io.StringIO(_cli(*args, "--format", "csv").stdout)))
    assert len(as_csv) == len(as_json)
    for c, j in zip(as_csv, as_json, strict=True):
        assert set(c) == set(j)
        for k, v in j.items():
            if isinstance(v, float):
                assert float(c[k]) == v  # full precision
            elif v is None:
                assert c[k] in ("", "-inf", "inf")
            else:
                assert c[k] == str(v) or str(v) in ("True", "False")
    md = _markdown_rows(_cli(*args, "--format", "markdown").stdout)
    assert len(md) == len(as_json) + 1 and len({len(r) for r in md}) == 1
    if command != "params":
        assert "unit" in as_json[0] and "unit" in md[0]


def test_audit_csv_is_the_measures_file_at_full_precision(cli_run):
    r = _cli("audit", str(cli_run), "--format", "csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    stored = pq.read_table(cli_run / "measures.parquet").to_pylist()
    assert [(x["measure"], x["key"], x["unit"]) for x in rows] == [
        (s["measure"], s["key"], s["unit"]) for s in stored]
    for x, s in zip(rows, stored, strict=True):
        assert (x["value"] == "") if s["value"] is None else float(x["value"]) == s["value"]
    assert "measures:" in r.stderr and "measures:" not in r.stdout


def test_a_bad_format_exits_2(one_error, cli_run):
    msg = one_error(_cli("summary", str(cli_run), "--format", "xml"))
    assert "'xml'" in msg and "csv" in msg and "markdown" in msg


def test_human_tables_have_no_e_notation(cli_run):
    for args in (["audit", str(cli_run)], ["summary", str(cli_run)]):
        values = _columns(_cli(*args).stdout)["value"]
        assert values and "e" not in values, args
    for p in parameters():
        assert not re.search(r"\de[-+]?\d", p.allowed + p.default), p


# --- params PREFIX --------------------------------------------------------------------


def test_params_filters_by_prefix():
    rows = json.loads(_cli("params", "safeguards", "--format", "json").stdout)
    assert rows and all(r["key"].startswith("safeguards.") for r in rows)
    assert {r["key"] for r in rows} == {p.key for p in parameters()
                                        if p.key.startswith("safeguards")}
    # A concrete channel name stands for its <name> rows.
    rows = json.loads(_cli("params", "channels.court", "--format", "json").stdout)
    assert rows and all(r["key"].startswith("channels.<name>.") for r in rows)


def test_params_with_an_unknown_prefix_suggests_close_ones(one_error):
    msg = one_error(_cli("params", "safegards"))
    assert "'safegards'" in msg and "did you mean 'safeguards'" in msg


# --- show -----------------------------------------------------------------------------


def test_show_comments_every_key_with_its_unit_and_range():
    r = _cli("show", "rongcheng", *SMALL)
    assert r.returncode == 0, r.stderr
    plain = _cli("show", "rongcheng", *SMALL, "--plain").stdout
    assert tomllib.loads(r.stdout) == tomllib.loads(plain)
    assert "#" not in plain
    rows = {p.key: p for p in parameters()}
    lines, table, checked = r.stdout.splitlines(), "", 0
    for i, line in enumerate(lines):
        if m := re.fullmatch(r"\[(.+)\]", line):
            table = m.group(1)
            continue
        m = re.match(r"(\w+) = ", line)
        if not m:
            continue
        parts = f"{table}.{m.group(1)}".strip(".").split(".")
        if parts[0] in ("channels", "behaviours", "gates") and len(parts) > 2:
            parts[1] = "<name>"
        row = rows.get(".".join(parts))
        if row is None:  # an entry of a table such as points.deltas
            continue
        above = []
        for prev in reversed(lines[:i]):
            if not prev.startswith("#"):
                break
            above.insert(0, prev[1:].strip())
        comment = " ".join(above)
        assert row.allowed in comment and row.unit in comment, (row.key, comment)
        checked += 1
    assert checked > 100


def test_a_saved_show_runs_the_same_as_the_preset(tmp_path):
    f = tmp_path / "saved.toml"
    f.write_text(_cli("show", "rongcheng", *SMALL, "--seed", "3").stdout)
    a, b = tmp_path / "from-file", tmp_path / "from-preset"
    assert _cli("run", str(f), "--out", str(a), "-q").returncode == 0
    assert _cli("run", "rongcheng", *SMALL, "--seed", "3", "--out", str(b), "-q").returncode == 0
    ma, mb = (json.loads((d / "manifest.json").read_text()) for d in (a, b))
    assert ma["scenario_toml"] == mb["scenario_toml"]
    for table in ("timeseries", "ledger", "people"):
        assert pq.read_table(a / f"{table}.parquet").equals(pq.read_table(b / f"{table}.parquet"))


# --- options and help -----------------------------------------------------------------


def _commands() -> list[str]:
    text = _cli("--help", columns=200).stdout
    return [ln.split()[0] for ln in text.partition("Commands:")[2].splitlines() if ln.strip()]


def test_help_of_every_command_names_arguments_without_python_types():
    commands = _commands()
    assert {"run", "show", "compare", "sweep", "query", "params"} <= set(commands)
    for c in commands:
        r = _cli(c, "--help", columns=100)
        assert r.returncode == 0, (c, r.stderr)
        assert not re.search(r"<[a-z_ ]+(\[[^\]]*\])?>", r.stdout), (c, r.stdout)
        assert "{" not in r.stdout.splitlines()[0], (c, r.stdout)
        for name in re.findall(r"^\s+(--[a-z-]+) ([A-Za-z_=.,]+)\b", r.stdout, re.M):
            assert name[1].upper() == name[1], (c, name)  # metavars in capitals


@pytest.mark.parametrize("command", ["run", "show", "compare", "sweep"])
def test_scenario_options_are_the_same_on_every_command(command):
    text = _cli(command, "--help", columns=200).stdout
    for option in ("--seed N", "--people N", "--days N", "--set KEY=VALUE"):
        assert option in text, (command, option)
    if command != "show":
        assert "-q, --quiet" in text and "--out DIR" in text


def test_quiet_compare_and_sweep_print_nothing_but_their_format(tmp_path):
    r = _cli("compare", "rongcheng", "baseline", *TINY, "--out", str(tmp_path / "c"), "-q")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == "", r.stderr
    r = _cli("sweep", "rongcheng", "--vary", "court_list.grace_days=10,30", *TINY,
             "--out", str(tmp_path / "s"), "-q", "--format", "csv")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    summary = {(s["court_list.grace_days"], s["measure"]): s for s in
               pq.read_table(tmp_path / "s" / "summary.parquet").to_pylist()}
    assert rows
    for x in rows:
        s = summary[(float(x["court_list.grace_days"]), x["measure"])]
        assert float(x["mean"]) == s["mean"] and x["unit"] == s["unit"]


def test_compare_formats_parse_back(tmp_path):
    r = _cli("compare", "rongcheng", "baseline", *TINY, "--out", str(tmp_path / "c"),
             "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)  # the progress lines went to standard error
    assert "p0-r000" in r.stderr
    summary = {(s["scenario"], s["measure"], s["key"]): s for s in
               pq.read_table(tmp_path / "c" / "summary.parquet").to_pylist()}
    assert rows and {r["scenario"] for r in rows} == {"rongcheng", "baseline"}
    for x in rows:
        s = summary[(x["scenario"], x["measure"], x["key"])]
        for f in ("mean", "ci_low", "ci_high", "diff_mean", "unit"):
            assert x[f] == s.get(f), f


def test_ctrl_c_in_a_reading_command_says_interrupted(cli_run):
    proc = subprocess.Popen(
        [sys.executable, "-m", "credsim", "query", str(cli_run),
         "SELECT sum(a.income * b.income * c.income * d.income) "
         "FROM people a, people b, people c, people d"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(3)  # starting, or well into the query (it would take days: Ctrl-C must
        # interrupt DuckDB itself, which does not look at Python's signals on its own)
        assert proc.poll() is None, proc.communicate()
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # Whenever it comes (while importing, or inside DuckDB): one line and 130.
    assert proc.returncode == 130, stderr
    assert len(stderr.strip().splitlines()) == 1 and stderr.startswith("interrupted"), stderr


def test_a_closed_pipe_ends_quietly(cli_run):
    r = subprocess.run(
        f"{shlex.quote(sys.executable)} -m credsim query {shlex.quote(str(cli_run))} "
        "'SELECT * FROM people a, people b' --format csv | head -1",
        shell=True, capture_output=True, text=True, timeout=300)
    assert r.stdout.startswith("id,")
    assert "Traceback" not in r.stderr and "BrokenPipe" not in r.stderr, r.stderr
    assert r.stderr == ""
