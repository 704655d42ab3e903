"""The command line, run as a user runs it: `python -m credsim ...` in a fresh process.

Bad input must exit with code 2, print one clear message naming the file or key, and
leave no results folder and no temporary folder behind.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from credsim import __version__
from credsim.results.run_dir import FORMAT_VERSION

TABLES = ("timeseries", "ledger", "people", "firms", "sanctions")
PHASES = ("behave", "observe", "review", "score", "list", "consequences", "adapt", "record")
SMALL = ("--people", "2000", "--days", "30")


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}




def test_version(cli):
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"credsim {__version__}"


def test_presets_lists_rongcheng_and_baseline(cli):
    r = cli("presets")
    assert r.returncode == 0, r.stderr
    names = [ln.split()[0] for ln in r.stdout.splitlines() if ln.strip()]
    assert {"rongcheng", "baseline"} <= set(names)


def test_show_prints_toml_that_run_accepts(cli, tmp_path):
    r = cli("show", "rongcheng", "--set", "run.seed=5")
    assert r.returncode == 0, r.stderr
    data = tomllib.loads(r.stdout)
    assert data["name"] == "rongcheng" and data["run"]["seed"] == 5
    f = tmp_path / "shown.toml"
    f.write_text(r.stdout)
    out = tmp_path / "out"
    r = cli("run", str(f), *SMALL, "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["scenario_name"] == "rongcheng"
    assert manifest["scenario"]["run"]["seed"] == 5


def test_show_with_a_bad_override_exits_2(one_error, cli):
    msg = one_error(cli("show", "rongcheng", "--set", "graph.mean_degre=3"))
    assert "graph.mean_degre" in msg and "'mean_degree'" in msg


def test_run_writes_a_complete_results_folder(cli_run):
    out = cli_run
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is True
    assert manifest["format_version"] == FORMAT_VERSION == 3
    assert manifest["people"] == 2000 and manifest["days"] == 30
    assert manifest["scenario_name"] == "rongcheng"
    timings = manifest["timings_seconds"]
    for phase in PHASES:
        assert isinstance(timings[phase], int | float) and timings[phase] >= 0, phase
    assert set(manifest["tables"]) == set(TABLES)
    for t in TABLES:
        assert (out / f"{t}.parquet").is_file(), t
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".credsim-")]
    # The manifest's TOML is the resolved scenario: it must load back to the same run.
    assert tomllib.loads(manifest["scenario_toml"])["run"]["people"] == 2000


def test_quiet_run_prints_nothing(cli, tmp_path):
    r = cli("run", "baseline", "--people", "500", "--days", "3", "--out",
            str(tmp_path / "o"), "--quiet")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""


def test_loud_run_prints_the_summary_and_the_folder(cli, tmp_path):
    out = tmp_path / "o"
    r = cli("run", "rongcheng", "--people", "1000", "--days", "5", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "on the last day: grade A" in r.stdout and f"results: {out}" in r.stdout


def test_default_output_folder_is_never_overwritten(cli, tmp_path):
    for _ in range(2):
        r = cli("run", "baseline", "--people", "300", "--days", "2", "--quiet", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
    made = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert made == ["baseline-seed1", "baseline-seed1-2"]


def test_running_again_into_the_same_folder_exits_2_and_keeps_it(one_error, cli, cli_run):
    before = _snapshot(cli_run)
    r = cli("run", "rongcheng", *SMALL, "--out", str(cli_run), "--quiet")
    msg = one_error(r)
    assert str(cli_run) in msg and "already exists" in msg
    assert _snapshot(cli_run) == before
    assert not [p for p in cli_run.parent.iterdir() if p.name.startswith(".credsim-")]


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], list[str]]]:
    unknown = tmp / "unknown.toml"
    unknown.write_text('extends = "rongcheng"\n[run]\ndayz = 3\n')
    broken = tmp / "broken.toml"
    broken.write_text("[run\ndays = 3\n")
    a_file = tmp / "plain-file"
    a_file.write_text("not a folder")
    return {
        "unknown key in file": ([str(unknown)], [str(unknown), "run.dayz", "'days'"]),
        "negative days": (["rongcheng", "--set", "run.days=-1"], ["run.days", "-1"]),
        "misspelt key": (["rongcheng", "--set", "run.dayz=3"], ["run.dayz", "'days'"]),
        "malformed toml": ([str(broken)], [str(broken), "malformed TOML"]),
        "unknown preset": (["rongchen"], ["unknown preset", "'rongcheng'"]),
        "missing file": ([str(tmp / "missing.toml")], ["missing.toml", "no such"]),
        "bad --days": (["rongcheng", "--days", "0"], ["run.days"]),
        "out under a file": (["rongcheng", "--out", str(a_file / "sub")],
                             [str(a_file / "sub"), "is not a folder"]),
    }


BAD_CASES = ["unknown key in file", "negative days", "misspelt key", "malformed toml",
             "unknown preset", "missing file", "bad --days", "out under a file"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_input_exits_2_with_one_message_and_leaves_nothing(one_error, cli, tmp_path, case):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    args, needles = _bad_inputs(inputs)[case]
    before = sorted(p.name for p in inputs.iterdir())
    work = tmp_path / "work"
    work.mkdir()
    # Small by --set, so the case's own --set / --days come later and win.
    full = ["run", args[0], "--quiet", "--set", "run.people=500", "--set", "run.days=3",
            *args[1:]]
    if "--out" not in args:
        full += ["--out", str(work / "out")]
    msg = one_error(cli(*full, cwd=work))
    for needle in needles:
        assert needle in msg, (needle, msg)
    assert sorted(p.name for p in inputs.iterdir()) == before
    assert list(work.iterdir()) == [], "no results folder, no temporary folder"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root ignores directory permissions")
def test_read_only_parent_exits_2(one_error, cli, tmp_path):
    parent = tmp_path / "ro"
    parent.mkdir()
    parent.chmod(0o555)
    try:
        msg = one_error(cli("run", "baseline", "--people", "300", "--days", "2", "--quiet",
                             "--out", str(parent / "out")))
        assert "cannot write" in msg and list(parent.iterdir()) == []
    finally:
        parent.chmod(0o755)


def _stop_a_long_run(parent: Path, signum: int) -> tuple[Path, int, str]:
    """Start a long run, send `signum` once its temporary folder exists."""
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "credsim", "run", "baseline", "--people", "1000000",
         "--days", "10000", "--out", str(parent / "big"), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.endswith(".tmp") for p in parent.iterdir()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        time.sleep(1.0)
        assert proc.poll() is None, "the run ended before it could be stopped"
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return parent, proc.returncode, stderr


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """A long run sent SIGINT (Ctrl-C)."""
    return _stop_a_long_run(tmp_path_factory.mktemp("interrupt"), signal.SIGINT)


def test_terminated_run_leaves_no_folder(tmp_path):
    parent, returncode, stderr = _stop_a_long_run(tmp_path, signal.SIGTERM)
    assert returncode == 128 + signal.SIGTERM, stderr
    assert "terminated" in stderr and "Traceback" not in stderr
    assert list(parent.iterdir()) == []


def test_interrupted_run_leaves_no_folder(interrupted):
    parent, returncode, stderr = interrupted
    assert returncode == 130, stderr
    assert "Traceback" not in stderr
    assert list(parent.iterdir()) == []


def test_interrupted_run_says_so(interrupted):
    """Regression: Typer turned Ctrl-C into a silent exit before main() could say so."""
    assert "interrupted" in interrupted[2]


# --- query ----------------------------------------------------------------------------


def test_query_prints_the_count(cli, cli_run):
    r = cli("query", str(cli_run), "select count(*) as n from people")
    assert r.returncode == 0, r.stderr
    assert re.search(r"\b2000\b", r.stdout)


def test_query_csv(cli, cli_run):
    r = cli("query", str(cli_run), "select count(*) as n, min(day) as first, max(day) as last, "
            "'a,b' as text from timeseries", "--format", "csv")
    assert r.returncode == 0, r.stderr
    assert list(csv.reader(io.StringIO(r.stdout))) == [["n", "first", "last", "text"],
                                                       ["30", "0", "29", "a,b"]]


def test_query_csv_is_not_truncated_by_limit(cli, cli_run):
    r = cli("query", str(cli_run), "select id from people order by id", "--format", "csv",
            "--limit", "5")
    rows = list(csv.reader(io.StringIO(r.stdout)))
    assert rows[0] == ["id"] and len(rows) == 2001 and rows[-1] == ["1999"]


def test_query_table_limit_says_there_are_more(cli, cli_run):
    # The table fetches one row more than it shows, so it cannot say how many more.
    r = cli("query", str(cli_run), "select id from people", "--limit", "5")
    assert r.returncode == 0 and "more rows than the 5 shown" in r.stdout


@pytest.mark.parametrize("sql", ["selec 1", "select * from nosuch",
                                 "select cast('a' as integer)"])
def test_query_with_bad_sql_exits_2(one_error, cli, cli_run, sql):
    assert "query failed" in one_error(cli("query", str(cli_run), sql))


def test_query_rejects_an_unknown_format(one_error, cli, cli_run):
    assert "--format" in one_error(cli("query", str(cli_run), "select 1", "--format", "json"))


def test_query_on_a_missing_folder_exits_2(one_error, cli, tmp_path):
    msg = one_error(cli("query", str(tmp_path / "nope"), "select 1"))
    assert "no such run folder" in msg


# --- summary --------------------------------------------------------------------------


def test_summary_prints_headline_figures(cli, cli_run):
    r = cli("summary", str(cli_run))
    assert r.returncode == 0, r.stderr
    for figure in ("people on the court list on an average day",
                   "sanctioned person-days per million", "holding a grade on the last day: grade A",
                   "false records created", "spoke out per 1000 person-days"):
        assert figure in r.stdout, figure
    assert "2,000 people, 30 days" in r.stdout


def test_summary_against_the_baseline(cli, cli_run, cli_baseline):
    r = cli("summary", str(cli_run), "--baseline", str(cli_baseline))
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if "speaking out, relative to" in ln)
    ratio = float(re.search(r"(\d+(?:\.\d+)?)", line.split("system", 1)[1]).group(1))
    # Same society, same random numbers: the system can only chill voice, never add to it.
    assert 0 < ratio <= 1


def test_summary_refuses_a_baseline_of_another_size(one_error, cli, cli_run, tmp_path):
    other = tmp_path / "other"
    r = cli("run", "baseline", "--people", "1000", "--days", "30", "--out", str(other),
            "--quiet")
    assert r.returncode == 0, r.stderr
    msg = one_error(cli("summary", str(cli_run), "--baseline", str(other)))
    assert "same people, days and seed" in msg


def test_summary_refuses_another_format_version(one_error, cli, cli_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(cli_run, copy)
    mf = copy / "manifest.json"
    manifest = json.loads(mf.read_text())
    manifest["format_version"] = 99
    mf.write_text(json.dumps(manifest))
    msg = one_error(cli("summary", str(copy)))
    assert "format_version" in msg and "99" in msg


def test_summary_refuses_an_incomplete_run(one_error, cli, cli_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(cli_run, copy)
    (copy / "ledger.parquet").unlink()
    assert "ledger.parquet" in one_error(cli("summary", str(copy)))
    (copy / "manifest.json").unlink()
    assert "manifest.json" in one_error(cli("summary", str(copy)))


def test_summary_on_a_missing_folder_exits_2(one_error, cli, tmp_path):
    assert "no such run folder" in one_error(cli("summary", str(tmp_path / "nope")))


def test_summary_on_a_manifest_that_is_not_an_object_exits_2(one_error, cli, cli_run, tmp_path):
    """Regression: a manifest holding a JSON list crashed with AttributeError (exit 1)."""
    copy = tmp_path / "copy"
    shutil.copytree(cli_run, copy)
    (copy / "manifest.json").write_text("[1, 2, 3]")
    assert "manifest" in one_error(cli("summary", str(copy)))
