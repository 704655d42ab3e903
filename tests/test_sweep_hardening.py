"""compare and sweep under stress: seed ranges, tampered folders, failing workers,
signals, killed workers and Dask clusters that lose their workers or scheduler.

Most checks of the folder logic run the commands in this process with a serial
executor and a stand-in for the simulation (measures made from the seed), so
they take milliseconds; the signal, leftover and Dask checks use real
processes, real signals and real (small) clusters.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from credsim.audit import executors
from credsim.audit import replicates as rep
from credsim.errors import InputError, RunsFailed

MAX = rep.MAX_SEED
TINY = ("--people", "1000", "--days", "10")
VARY = ["court_list.grace_days=10,30"]


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def _said(console: Console) -> str:
    return console.file.getvalue()


class SerialExecutor:
    """Runs every task here and now, one after another."""

    description = "this process"

    def map_unordered(self, fn, tasks):
        for t in tasks:
            yield t, fn(t)

    def close(self, cancel: bool = False) -> None:
        pass


def _fake_measures(task: rep.Task) -> list:
    """Stands in for a simulation: measures determined by the task alone."""
    m = SimpleNamespace
    return [m(measure="sanctioned_person_days_per_million", key="",
              value=float(task.seed * 10 + task.point), unit="person-days per million"),
            m(measure="wrongful_share", key="", value=task.replicate / 10, unit="share")]


@pytest.fixture
def serial(monkeypatch):
    """compare and sweep run in this process on stand-in measures."""
    monkeypatch.setattr(rep, "make_executor", lambda *a, **k: SerialExecutor())
    monkeypatch.setattr(rep, "_simulate_and_measure", _fake_measures)


def _sweep(out: Path, console: Console | None = None, **kw) -> Path:
    args = {"vary": VARY, "replicates": 3, "out": out, "seed": 1, "days": 10,
            "people": 1000, "console": console or _quiet(), **kw}
    return rep.sweep_command("rongcheng", **args)


def _resume(folder: Path, console: Console | None = None) -> Path:
    return rep.sweep_command(None, resume=folder, console=console or _quiet())


def _events(folder: Path) -> list[dict]:
    return rep.read_status(folder / "status.log")


def _runs(folder: Path) -> dict[str, list[dict]]:
    """The measures files (stand-in runs have empty daily series)."""
    return {p.stem: pq.read_table(p).to_pylist() for p in sorted((folder / "runs").iterdir())
            if not p.name.endswith(".series.parquet")}


def _rerun_ids(folder: Path) -> set[str]:
    events = _events(folder)
    at = max(i for i, e in enumerate(events) if e["event"] == "resume")
    return {e["run_id"] for e in events[at:] if e["event"] == "started"}


# ---------------------------------------------------------------------------------------
# 1. Seeds

@given(base=st.integers(0, MAX), replicates=st.integers(1, 10**6))
def test_the_whole_seed_range_is_checked(base, replicates):
    if base + replicates - 1 <= MAX:
        rep.check_seed_range(base, replicates, True, "x")
    else:
        with pytest.raises(InputError) as info:
            rep.check_seed_range(base, replicates, True, "x")
        assert f"the largest allowed base seed is {MAX - replicates + 1}" in str(info.value)
        assert f"--seed {base}" in str(info.value)


def test_a_seed_near_the_top_fails_before_any_run(one_error, cli, tmp_path):
    out = tmp_path / "s"
    msg = one_error(cli("sweep", "rongcheng", "--vary", VARY[0], "--replicates", "3",
                        "--seed", str(MAX - 1), "--out", str(out), *TINY, cwd=tmp_path))
    assert f"the largest allowed base seed is {MAX - 2}" in msg
    assert not out.exists() and list(tmp_path.iterdir()) == []
    # The seed of the scenario counts too, named as such.
    with pytest.raises(InputError, match=r"base seed \d+ \(run.seed of rongcheng\)"):
        rep.plan_compare(["rongcheng", "baseline"], 2, [f"run.seed={MAX}"], None, 10, 1000)


def test_the_largest_allowed_base_seed_runs_every_replicate(serial, tmp_path):
    out = _sweep(tmp_path / "top", seed=MAX - 2)
    runs = _runs(out)
    assert {rows[0]["seed"] for rows in runs.values()} == {MAX - 2, MAX - 1, MAX}
    assert json.loads((out / "manifest.json").read_text())["complete"]


# ---------------------------------------------------------------------------------------
# 2. Resume integrity

@pytest.fixture
def swept(serial, tmp_path) -> tuple[Path, dict]:
    """A finished 2 × 3 sweep and its run files."""
    out = _sweep(tmp_path / "sw")
    return out, _runs(out)


def test_done_lines_record_each_files_hash_and_begin_the_plan(swept):
    out, _ = swept
    events = _events(out)
    assert events[0]["event"] == "begin" and len(events[0]["plan_sha256"]) == 64
    done = {e["run_id"]: e["sha256"] for e in events if e["event"] == "done"}
    assert done == {p.stem: rep.file_sha256(p) for p in (out / "runs").iterdir()
                    if not p.name.endswith(".series.parquet")}


def test_resume_runs_again_a_file_copied_over_another(swept):
    out, before = swept
    runs = out / "runs"
    shutil.copy(runs / "p0-r000.parquet", runs / "p0-r001.parquet")
    shutil.copy(runs / "p1-r000.parquet", runs / "p1-r002.parquet")
    (out / "summary.parquet").unlink()
    console = _quiet()
    _resume(out, console)
    assert "2 result files did not match their recorded hash; running them again" in \
        _said(console)
    assert _rerun_ids(out) == {"p0-r001", "p1-r002"}
    assert _runs(out) == before


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> tuple[Path, dict]:
    """A finished 2 × 3 sweep on stand-in measures, never changed: tests copy it."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rep, "make_executor", lambda *a, **k: SerialExecutor())
        mp.setattr(rep, "_simulate_and_measure", _fake_measures)
        out = _sweep(tmp_path_factory.mktemp("pristine") / "sw")
    return out, _runs(out)


IDS = [f"p{p}-r00{r}" for r in range(3) for p in range(2)]


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tampered=st.dictionaries(st.sampled_from(IDS),
                                st.one_of(st.sampled_from(IDS), st.integers(0, 2000)),
                                max_size=4))
def test_resume_runs_again_exactly_the_tampered_files(pristine, tmp_path_factory, tampered):
    """Each tampered file is replaced by another run's file or has one byte changed."""
    src, before = pristine
    out = tmp_path_factory.mktemp("tamper") / "sw"
    shutil.copytree(src, out)
    changed = set()
    for run_id, how in tampered.items():
        path = out / "runs" / f"{run_id}.parquet"
        data = bytearray(path.read_bytes())
        if isinstance(how, str):
            data = bytearray((src / "runs" / f"{how}.parquet").read_bytes())
        else:
            data[how % len(data)] ^= 0xFF
        if data != path.read_bytes():
            path.write_bytes(bytes(data))
            changed.add(run_id)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rep, "make_executor", lambda *a, **k: SerialExecutor())
        mp.setattr(rep, "_simulate_and_measure", _fake_measures)
        _resume(out)
    assert _rerun_ids(out) == changed
    assert _runs(out) == before


def test_resume_checks_the_run_columns_too(swept):
    out, before = swept
    runs = out / "runs"
    # A copy whose hash was logged as done (as if the log recorded the wrong file).
    shutil.copy(runs / "p0-r000.parquet", runs / "p0-r001.parquet")
    rep.StatusLog(out / "status.log").write(
        "done", run_id="p0-r001", sha256=rep.file_sha256(runs / "p0-r001.parquet"))
    console = _quiet()
    _resume(out, console)
    assert "1 result file did not match its recorded hash; running it again" in _said(console)
    assert _rerun_ids(out) == {"p0-r001"}
    assert _runs(out) == before


def test_resume_refuses_an_edited_manifest(swept):
    out, _ = swept
    m = json.loads((out / "manifest.json").read_text())
    toml = m["points"][1]["scenario_toml"]
    assert "grace_days = 30" in toml
    m["points"][1]["scenario_toml"] = toml.replace("grace_days = 30", "grace_days = 31")
    (out / "manifest.json").write_text(json.dumps(m))
    log = (out / "status.log").read_bytes()
    with pytest.raises(InputError, match="the manifest was edited"):
        _resume(out)
    m["points"][1]["scenario_toml"] = toml
    m["base_seed"] = 2
    m["runs"] = [{**r, "seed": r["seed"] + 1} for r in m["runs"]]
    (out / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(InputError, match="the manifest was edited"):
        _resume(out)
    assert (out / "status.log").read_bytes() == log


def test_resume_refuses_a_log_without_the_plan(swept):
    out, _ = swept
    lines = (out / "status.log").read_text().splitlines()
    (out / "status.log").write_text("\n".join(lines[1:]) + "\n")
    with pytest.raises(InputError, match="no record of the plan"):
        _resume(out)


# ---------------------------------------------------------------------------------------
# 3. Worker failure messages

def _divide(values):
    return values[0] / values[1]  # a caret line under this in the traceback


def _fails_for(run_id: str):
    def simulate(task):
        if task.run_id == run_id:
            return _divide([task.seed, 0])
        return _fake_measures(task)
    return simulate


def test_a_failed_run_reports_its_exception_not_a_caret_line(monkeypatch):
    monkeypatch.setattr(rep, "_simulate_and_measure", _fails_for("p0-r000"))
    res = rep.run_task(rep.Task("p0-r000", 0, "x", 0, 1, ""))
    assert res["error"] == "ZeroDivisionError: division by zero"
    assert res["traceback"].strip().splitlines()[-1] == res["error"]
    assert "^^^" in res["traceback"] and "in _divide" in res["traceback"]
    exc = ValueError("two\nlines")
    exc.add_note("and a note")
    assert rep.error_line(exc) == "ValueError: two lines and a note"


def test_worker_failures_show_type_and_message_and_log_the_traceback(serial, monkeypatch,
                                                                     tmp_path):
    monkeypatch.setattr(rep, "_simulate_and_measure", _fails_for("p1-r001"))
    console = _quiet()
    with pytest.raises(RunsFailed) as info:
        _sweep(tmp_path / "sw", console)
    assert "p1-r001 FAILED: ZeroDivisionError: division by zero" in _said(console)
    err = str(info.value)
    assert "p1-r001 (grace_days=30, seed 2): ZeroDivisionError: division by zero" in \
        " ".join(err.split()).replace("court_list.", "")
    assert "^^^" not in err and "~~~" not in err
    failed = [e for e in _events(tmp_path / "sw") if e["event"] == "failed"]
    assert [(e["run_id"], e["error"]) for e in failed] == [
        ("p1-r001", "ZeroDivisionError: division by zero")]
    assert "Traceback" in failed[0]["traceback"] and "^" in failed[0]["traceback"]
    assert "in _divide" in failed[0]["traceback"]
    # compare stops at the failure, with the same line.
    with pytest.raises(RunsFailed) as info:
        rep.compare_command(["rongcheng", "baseline"], replicates=2, out=tmp_path / "c",
                            seed=1, days=10, people=1000, console=_quiet())
    err = " ".join(str(info.value).split())
    assert "p1-r001 (baseline, seed 2): ZeroDivisionError: division by zero" in err
    assert not (tmp_path / "c").exists()


# ---------------------------------------------------------------------------------------
# 4. Signals (real processes, real signals)

def _popen(*args: str, cwd: Path, env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "credsim", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(proc: subprocess.Popen, ready, what: str, limit: float = 120) -> None:
    """Poll until `ready()` (never a timed assertion: the limit only ends a hung test)."""
    deadline = time.monotonic() + limit
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"ended before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"never {what}: {proc.communicate()}")
        time.sleep(0.02)


def _done_in(glob_root: Path, pattern: str):
    def count() -> int:
        return sum(e.get("event") == "done" for log in glob_root.glob(pattern)
                   for e in rep.read_status(log))
    return count


def _finish(proc: subprocess.Popen) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


RUNS = ("--people", "3000", "--days", "60")


def test_sigterm_during_a_sweep_prints_one_line(tmp_path):
    out = tmp_path / "sw"
    proc = _popen("sweep", "rongcheng", "--vary", "court_list.grace_days=10,20,30",
                  "--replicates", "4", "--workers", "1", "--out", str(out), *RUNS,
                  cwd=tmp_path)
    _wait_for(proc, lambda: _done_in(out, "status.log")() >= 1, "a finished run")
    proc.send_signal(signal.SIGTERM)
    _, err = _finish(proc)
    assert proc.returncode == 143, err
    done = sum(e["event"] == "done" for e in _events(out))
    assert _lines(err) == [f"terminated: {done} of 12 runs are done in {out}; finish the "
                           f"sweep with: credsim sweep --resume {out}"]


@pytest.mark.parametrize("sig, how", [(signal.SIGTERM, "terminated"),
                                      (signal.SIGINT, "interrupted")])
def test_a_signal_during_compare_prints_one_line(tmp_path, sig, how):
    out = tmp_path / "c"
    proc = _popen("compare", "rongcheng", "baseline", "--replicates", "6", "--workers", "1",
                  "--out", str(out), *RUNS, cwd=tmp_path)
    _wait_for(proc, lambda: _done_in(tmp_path, ".credsim-*.tmp/status.log")() >= 1,
              "a finished run")
    proc.send_signal(sig)
    _, err = _finish(proc)
    assert proc.returncode == 128 + sig, err
    assert _lines(err) == [f"{how}; no results folder was left behind"]
    assert list(tmp_path.iterdir()) == []


def _workers(pid: int) -> list[int]:
    """The spawned worker processes of process `pid` (/proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if (int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid
                    and b"spawn_main" in (stat.parent / "cmdline").read_bytes()):
                out.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def _sigint_disposition(pid: int) -> str:
    """'caught' (Python's own handler: a worker still starting), 'ignored' (a worker
    ready) or '' for process `pid` (/proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return ""
    masks = {k: int(v, 16) for k, v in (ln.split(":\t") for ln in status.splitlines()
                                        if ln.startswith(("SigCgt:", "SigIgn:")))}
    bit = 1 << (signal.SIGINT - 1)
    return ("caught" if masks.get("SigCgt", 0) & bit else
            "ignored" if masks.get("SigIgn", 0) & bit else "")


def _a_worker_is_starting(pid: int) -> bool:
    """A worker of `pid` is importing (or, if that was missed, both are ready)."""
    states = [_sigint_disposition(w) for w in _workers(pid)]
    return "caught" in states or states.count("ignored") >= 2


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_ctrl_c_to_the_process_group_while_workers_start_is_one_line(tmp_path):
    # A terminal's Ctrl-C signals every process of the group, workers still starting too.
    proc = subprocess.Popen(
        [sys.executable, "-m", "credsim", "compare", "rongcheng", "baseline",
         "--replicates", "4", "--workers", "2", "--out", str(tmp_path / "c"), *RUNS],
        cwd=tmp_path, env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    _wait_for(proc, lambda: _a_worker_is_starting(proc.pid), "a worker starting")
    os.killpg(proc.pid, signal.SIGINT)
    _, err = _finish(proc)
    assert proc.returncode == 130, err
    assert _lines(err) == ["interrupted; no results folder was left behind"]
    assert list(tmp_path.iterdir()) == []


def test_sigterm_during_credsim_run_still_says_so_once(tmp_path):
    out = tmp_path / "r"
    proc = _popen("run", "rongcheng", "--people", "20000", "--days", "400", "--quiet",
                  "--out", str(out), cwd=tmp_path)
    _wait_for(proc, lambda: any(tmp_path.glob(".credsim-*.tmp")), "its temporary folder")
    proc.send_signal(signal.SIGTERM)
    _, err = _finish(proc)
    assert proc.returncode == 143, err
    assert _lines(err) == ["terminated; no results folder was left behind"]


def test_ctrl_c_while_python_imports_credsim_is_one_line(tmp_path):
    # A real SIGINT, sent while `typer` is being imported: before any command runs.
    script = textwrap.dedent("""
        import os, signal, sys

        class InterruptOnImport:
            def find_spec(self, name, path=None, target=None):
                if name == "typer":
                    os.kill(os.getpid(), signal.SIGINT)
                return None

        sys.meta_path.insert(0, InterruptOnImport())
        sys.argv = ["credsim", "presets"]
        from credsim.__main__ import main
        main()
    """)
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 130, r.stderr
    assert _lines(r.stderr) == ["interrupted; nothing was written"]


# ---------------------------------------------------------------------------------------
# 5. Leftovers of killed workers

def _worker_folder(where: Path, pid: int, run_id: str = "p0-r001", age: float = 0,
                   host: str | None = None) -> Path:
    path = where / f"credsim-{pid}-{host or rep._host_tag()}-{run_id}-abc123"
    (path / "run").mkdir(parents=True)
    if age:
        t = time.time() - age
        os.utime(path, (t, t))
    return path


def test_folders_of_dead_workers_are_removed_and_live_ones_kept(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        gone = _worker_folder(tmp_path, dead.pid)
        mine = _worker_folder(tmp_path, os.getpid())
        running = _worker_folder(tmp_path, alive.pid, "p1-r000")
        other = tmp_path / "credsim-notapid-p0-r000-x"
        other.mkdir()
        elsewhere = _worker_folder(tmp_path, dead.pid, "p4-r000", host="another-host.lan")
        link = tmp_path / f"credsim-{dead.pid}-{rep._host_tag()}-p2-r000-link"
        link.symlink_to(mine)
        removed = rep.remove_stale_worker_folders(tmp_path)
        assert removed == [gone] and not gone.exists()
        assert mine.exists() and running.exists() and other.exists() and link.is_symlink()
        assert elsewhere.exists()  # another host's PIDs cannot be checked here
        if rep._process_start(alive.pid) is not None:  # PID reuse can be told apart
            # A folder older than the live process with its PID: that PID was reused.
            reused = _worker_folder(tmp_path, alive.pid, "p3-r000", age=3600)
            assert rep.remove_stale_worker_folders(tmp_path) == [reused]
            assert running.exists()
    finally:
        alive.kill()
        alive.wait()


def test_a_sigkilled_worker_leaves_a_folder_the_next_sweep_removes(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp)}
    out = tmp_path / "sw"
    proc = _popen("sweep", "rongcheng", "--vary", "court_list.grace_days=10,30",
                  "--replicates", "2", "--workers", "1", "--out", str(out), *RUNS,
                  cwd=tmp_path, env=env)
    _wait_for(proc, lambda: any(tmp.glob("credsim-*")), "a worker folder")
    folder = next(tmp.glob("credsim-*"))
    os.kill(int(rep.WORKER_FOLDER.fullmatch(folder.name).group(1)), signal.SIGKILL)
    _, err = _finish(proc)
    assert proc.returncode == 1, err
    assert "worker process died" in err
    assert folder.exists()  # SIGKILL: the worker could not remove it
    r = subprocess.run([sys.executable, "-m", "credsim", "sweep", "--resume", str(out),
                        "--workers", "1"], cwd=tmp_path, env={**os.environ, **env},
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"removed 1 temporary folder left in {tmp}" in " ".join(r.stdout.split())
    assert not folder.exists() and list(tmp.iterdir()) == []


# ---------------------------------------------------------------------------------------
# 6. Dask

distributed = pytest.importorskip("distributed")


def test_a_bad_scheduler_address_is_one_line(one_error, cli, tmp_path):
    msg = one_error(cli("compare", "rongcheng", "baseline", "--replicates", "2",
                        "--scheduler", "notanaddress::", "--out", str(tmp_path / "c"),
                        cwd=tmp_path))
    assert "--scheduler notanaddress::: not a Dask scheduler address" in msg
    assert list(tmp_path.iterdir()) == []


def test_worker_timeout_setting(monkeypatch):
    monkeypatch.setenv(executors.WORKER_TIMEOUT_ENV, "2.5")
    assert executors.worker_timeout_seconds() == 2.5
    for bad in ("0", "-1", "soon", "nan", "inf"):
        monkeypatch.setenv(executors.WORKER_TIMEOUT_ENV, bad)
        with pytest.raises(InputError, match=executors.WORKER_TIMEOUT_ENV):
            executors.worker_timeout_seconds()
    monkeypatch.delenv(executors.WORKER_TIMEOUT_ENV)
    assert executors.worker_timeout_seconds() == executors.DEFAULT_WORKER_TIMEOUT


def test_a_scheduler_without_workers_is_refused_up_front(tmp_path, monkeypatch):
    monkeypatch.setenv(executors.WORKER_TIMEOUT_ENV, "0.5")
    refused = pytest.raises(InputError, match="no worker connected to the scheduler "
                                              "within 0.5 s")
    with distributed.LocalCluster(n_workers=0, processes=False,
                                  dashboard_address=None) as cluster, refused:
        rep.compare_command(["rongcheng", "baseline"], replicates=2, out=tmp_path / "c",
                            days=10, people=1000, scheduler=cluster.scheduler_address,
                            console=_quiet())
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_whose_only_worker_dies_stops(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv(executors.WORKER_TIMEOUT_ENV, "0.5")
    started, release = threading.Event(), threading.Event()

    def stuck(task):
        started.set()
        release.wait(60)
        return _fake_measures(task)

    monkeypatch.setattr(rep, "_simulate_and_measure", stuck)
    out = tmp_path / "sw"
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        def kill_the_worker():
            started.wait(60)
            cluster.scale(0)

        killer = threading.Thread(target=kill_the_worker)
        killer.start()
        try:
            with pytest.raises(RunsFailed) as info:
                _sweep(out, scheduler=cluster.scheduler_address)
        finally:
            release.set()
            killer.join()
    err = str(info.value) + capfd.readouterr().err
    assert "has had no worker for 0.5 s" in err and "Traceback" not in err
    assert any(e["event"] == "stopped" for e in _events(out))


def test_a_lost_scheduler_is_one_clean_message(tmp_path):
    out = tmp_path / "c"
    # Threads in this process run the runs; the command, in its own process, connects.
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  protocol="tcp", dashboard_address=None) as cluster:
        proc = _popen("compare", "rongcheng", "baseline", "--replicates", "6",
                      "--scheduler", cluster.scheduler_address, "--out", str(out), *RUNS,
                      cwd=tmp_path)
        _wait_for(proc, lambda: _done_in(tmp_path, ".credsim-*.tmp/status.log")() >= 1,
                  "a finished run")
        cluster.close()
        _, err = _finish(proc)
    assert proc.returncode == 1, err
    lines = _lines(err)
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "lost the connection to the Dask scheduler" \
        in lines[0]
    assert not out.exists()


# ---------------------------------------------------------------------------------------
# 7. Up-front checks

def test_an_unwritable_output_folder_fails_before_any_worker(tmp_path, monkeypatch):
    def no_executor(*a, **k):
        raise AssertionError("an executor was started")

    monkeypatch.setattr(rep, "make_executor", no_executor)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(InputError, match="is not a folder"):
        rep.compare_command(["rongcheng", "baseline"], replicates=2, out=blocker / "c",
                            days=10, people=1000, console=_quiet())
    with pytest.raises(InputError, match="is not a folder"):
        _sweep(blocker / "s")
    with pytest.raises(InputError, match="--replicates 1: compare needs at least 2"):
        rep.compare_command(["rongcheng", "baseline"], replicates=1, out=tmp_path / "c",
                            console=_quiet())
    monkeypatch.undo()
    with pytest.raises(InputError, match="--workers 0: must be at least 1"):
        rep.compare_command(["rongcheng", "baseline"], replicates=2, out=tmp_path / "c",
                            days=10, people=1000, workers=0, console=_quiet())
    with pytest.raises(InputError, match="--workers 0: must be at least 1"):
        _sweep(tmp_path / "s", workers=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_resume_of_a_folder_it_cannot_write_in_is_one_message(swept):
    out, _ = swept
    (out / ".lock").unlink(missing_ok=True)
    (out / ".lock").mkdir()  # cannot be opened for writing, even by root
    log = (out / "status.log").read_bytes()
    with pytest.raises(InputError, match="cannot write in the sweep folder"):
        _resume(out)
    assert (out / "status.log").read_bytes() == log


# ---------------------------------------------------------------------------------------
# Callers without a main guard

UNGUARDED = """
import sys
from pathlib import Path
from credsim.audit import replicates as rep

rep.compare_command(["rongcheng", "baseline"], replicates=2, out=Path(sys.argv[-1]),
                    days=10, people=1000, workers=1)
print("compared")
"""


@pytest.mark.parametrize("how", ["stdin", "script"])
def test_compare_from_a_program_without_a_main_guard(tmp_path, how):
    # Spawned workers must not run the calling program again (nor fail to find it).
    script = tmp_path / "unguarded.py"
    script.write_text(UNGUARDED)
    out = tmp_path / "c"
    args = ["-", str(out)] if how == "stdin" else [str(script), str(out)]
    with open(script) as stdin:
        r = subprocess.run([sys.executable, *args], cwd=tmp_path, stdin=stdin,
                           capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("compared") == 1 and "Traceback" not in r.stderr
    assert json.loads((out / "manifest.json").read_text())["complete"]
