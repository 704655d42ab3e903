"""The output folder: checked and claimed before anything is simulated, written atomically,
leftovers of killed processes removed, and a run that cannot fit in memory refused."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from credsim import memory
from credsim.cli import app
from credsim.errors import InputError
from credsim.results import outdir, run_dir
from credsim.scenario.load import load_scenario

SMALL = ("--people", "500", "--days", "5", "--quiet")


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture
def live_pid():
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield p.pid
    p.kill()
    p.wait()


def _listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_a_name_longer_than_the_file_system_allows_is_refused_up_front(one_error, cli,
                                                                        tmp_path):
    line = one_error(cli("run", "rongcheng", *SMALL, "--out", str(tmp_path / ("a" * 256))))
    assert "256 bytes" in line and "255" in line
    assert _listing(tmp_path) == set()


def test_the_longest_name_the_file_system_allows_works(cli, tmp_path):
    target = tmp_path / ("b" * 255)
    r = cli("run", "rongcheng", *SMALL, "--out", str(target))
    assert r.returncode == 0, r.stderr
    assert (target / "manifest.json").is_file()
    assert _listing(tmp_path) == {target.name, *(f"{target.name}/{n}" for n in
                                                 os.listdir(target))}


def test_a_dangling_symlink_is_refused_before_simulating(one_error, cli, tmp_path):
    link = tmp_path / "dangling"
    link.symlink_to(tmp_path / "nowhere")
    assert "symbolic link" in one_error(cli("run", "rongcheng", *SMALL, "--out", str(link)))
    assert link.is_symlink() and not (tmp_path / "nowhere").exists()


def test_a_parent_that_is_a_file_is_refused(one_error, cli, tmp_path):
    (tmp_path / "file").write_text("x")
    line = one_error(cli("run", "rongcheng", *SMALL, "--out", str(tmp_path / "file" / "r")))
    assert "is not a folder" in line


def _hold_claim(target: Path, pid: int) -> Path:
    claim = outdir._claim_path(target)
    claim.write_text(f"{pid} {outdir._start_time(pid)}")
    return claim


def test_a_target_another_live_process_writes_is_refused_at_once(one_error, cli, tmp_path,
                                                                 live_pid):
    target = tmp_path / "same"
    claim = _hold_claim(target, live_pid)
    line = one_error(cli("run", "rongcheng", *SMALL, "--out", str(target)))
    assert f"PID {live_pid}" in line and "another credsim process" in line
    assert claim.is_file() and not target.exists()


def test_the_claim_of_a_dead_process_is_taken_over(cli, tmp_path):
    target = tmp_path / "same"
    _hold_claim(target, _dead_pid())
    r = cli("run", "rongcheng", *SMALL, "--out", str(target))
    assert r.returncode == 0, r.stderr
    assert _listing(tmp_path) == {"same", *(f"same/{n}" for n in os.listdir(target))}


def test_a_claim_whose_pid_was_reused_by_a_new_process_is_stale(tmp_path, live_pid):
    claim = tmp_path / ".credsim-0123456789abcdef.claim"
    claim.write_text(f"{live_pid} 1")  # started at another time than the live process
    if not outdir._start_time(live_pid):
        pytest.skip("no /proc: process start times are not known here")
    assert outdir._claim_is_stale(claim)
    claim.write_text(f"{live_pid} {outdir._start_time(live_pid)}")
    assert not outdir._claim_is_stale(claim)


def test_runs_without_out_pass_over_a_folder_being_written(tmp_path, monkeypatch, live_pid):
    monkeypatch.chdir(tmp_path)
    busy = Path("runs") / "rongcheng-seed1"
    busy.parent.mkdir()
    _hold_claim(busy, live_pid)
    target, tmp = run_dir.prepare_default("rongcheng", 1)
    try:
        assert target == Path("runs") / "rongcheng-seed1-2"
        assert tmp.is_dir() and tmp.parent == target.parent
    finally:
        run_dir.abort(tmp)
    assert not outdir._claim_path(target).exists()


def test_leftovers_of_dead_processes_are_removed_and_nothing_else(cli, tmp_path, live_pid):
    dead = _dead_pid()
    ours_dead = tmp_path / f".credsim-{'a' * 16}-{dead}.tmp"
    ours_live = tmp_path / f".credsim-{'b' * 16}-{live_pid}.tmp"
    legacy_dead = tmp_path / f".old.tmp-{dead}"
    users_own = tmp_path / f".mine.tmp-{dead}"
    for d in (ours_dead, ours_live, legacy_dead, users_own):
        d.mkdir()
        (d / "ledger.parquet").write_bytes(b"partial")
    (users_own / "thesis.tex").write_text("keep me")
    stale_claim = tmp_path / f".credsim-{'c' * 16}.claim"
    stale_claim.write_text(f"{dead} 1")
    r = cli("run", "rongcheng", *SMALL, "--out", str(tmp_path / "new"))
    assert r.returncode == 0, r.stderr
    assert not ours_dead.exists() and not legacy_dead.exists() and not stale_claim.exists()
    assert ours_live.is_dir() and (users_own / "thesis.tex").read_text() == "keep me"


def test_a_full_disk_gives_one_message_and_leaves_nothing(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pq, "write_table", full)
    target = tmp_path / "full"
    r = CliRunner().invoke(app, ["run", "rongcheng", *SMALL, "--out", str(target)])
    assert r.exit_code == 2, r.output
    assert "the disk is full" in r.output and "Traceback" not in r.output
    assert _listing(tmp_path) == set()


def test_a_folder_that_appears_during_the_run_is_not_replaced(tmp_path):
    target = tmp_path / "late"
    tmp = run_dir.prepare(target)
    target.mkdir()  # someone else makes it while the results are written
    with pytest.raises(InputError, match="appeared while"):
        run_dir.commit(tmp, target)
    run_dir.abort(tmp)
    assert _listing(tmp_path) == {"late"}


def test_the_memory_estimate_follows_the_budget_per_person_and_per_tie():
    s = load_scenario("rongcheng", people=10_000_000)
    ties = 10_000_000 * s.graph.mean_degree / 2
    assert memory.estimate_peak_bytes(s) == int(
        memory.RUNTIME_BYTES + 150 * 10_000_000 + 10 * ties)


def test_a_run_that_will_not_fit_in_memory_is_refused_unless_forced(monkeypatch):
    s = load_scenario("rongcheng", people=200_000_000)
    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * memory.GIB)
    with pytest.raises(InputError) as exc:
        memory.check_fits(s)
    msg = str(exc.value)
    assert "run.people" in msg and "8.0 GiB is available" in msg and "--force" in msg
    assert f"{memory.estimate_peak_bytes(s) / memory.GIB:.1f} GiB" in msg
    memory.check_fits(s, force=True)
    memory.check_fits(load_scenario("rongcheng", people=1000))


def test_the_command_line_refuses_a_run_too_big_for_this_machine(one_error, cli, tmp_path):
    s = load_scenario("rongcheng", people=200_000_000)
    have = memory.available_bytes()
    if have is None or have >= memory.estimate_peak_bytes(s):
        pytest.skip("this machine could hold 200 million people")
    line = one_error(cli("run", "rongcheng", "--people", "200000000", "--out",
                         str(tmp_path / "big")))
    assert "GiB" in line and "--force" in line
    assert _listing(tmp_path) == set()


def test_a_refusal_names_the_room_for_births_when_they_are_most_of_the_need(monkeypatch):
    """Decades of a high fertility need far more slots than the people at the start: the
    message says how many births it makes room for, and which keys set them."""
    s = load_scenario("rongcheng-decades", ["run.people=100000", "run.days=18263",
                                            "demography.fertility=[1,1,1,1,1,1,1]"])
    births = memory.person_slots(s) - s.run.people
    assert births > 10 * s.run.people
    monkeypatch.setattr(memory, "available_bytes", lambda: 8 * memory.GIB)
    with pytest.raises(InputError) as exc:
        memory.check_fits(s)
    msg = str(exc.value)
    assert msg.startswith(f"run.people: 100,000 people and room for {births:,} births "
                          "(demography.fertility over run.days) with mean degree")
    with pytest.raises(InputError) as exc:  # without demography: as before
        memory.check_fits(load_scenario("rongcheng", people=200_000_000))
    assert str(exc.value).startswith("run.people: 200,000,000 people with mean degree")


def test_more_person_slots_than_ids_are_refused_even_when_forced():
    s = load_scenario("rongcheng-decades", ["run.people=1000000", "run.days=18263",
                                            "demography.fertility=[1,1,1,1,1,1,1]"])
    assert memory.person_slots(s) > memory.MAX_SLOTS
    with pytest.raises(InputError, match=r"person ids, past the 2,147,483,647"):
        memory.check_fits(s, force=True)
