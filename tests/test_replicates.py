"""Replicates, comparisons and sweeps (`credsim compare`, `credsim sweep`).

Small runs (3,000 people, 60 days) with the court list made busy, so the
measures vary from seed to seed. What is checked: intervals shrink with more
replicates; common random numbers make the paired difference tighter than
the unpaired one; a sweep killed half-way and resumed gives the same numbers
as one run straight through; local processes and a Dask LocalCluster give the
same numbers; bad input exits 2 with one message.
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from credsim.audit import replicates as rep
from credsim.audit.executors import ExecutorError, LocalExecutor
from credsim.errors import InputError, RunsFailed

PEOPLE, DAYS = 3000, 60
SMALL = ("--people", str(PEOPLE), "--days", str(DAYS))
# More court cases and false court records than the preset, so a 60-day run on 3,000
# people lists, sanctions and wrongfully sanctions people.
OVERRIDES = ["behaviours.judgment_default.rate=2e-3",
             "behaviours.firm_judgment_default.rate=3e-3",
             "channels.court.false_rate=5e-5"]
SETS = [a for o in OVERRIDES for a in ("--set", o)]
VARY = ["court_list.grace_days=10,30", "channels.court.false_rate_by_group=[1.0,1.0],[1.0,4.0]"]
SANCTIONED = "sanctioned_person_days_per_million"


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


@pytest.fixture(scope="module")
def short_grace(tmp_path_factory) -> Path:
    """Rongcheng with 10 days' grace before listing instead of 30: one lever changed."""
    path = tmp_path_factory.mktemp("scen") / "short-grace.toml"
    path.write_text('extends = "rongcheng"\nname = "short-grace"\n\n'
                    "[court_list]\ngrace_days = 10\n", "utf-8")
    return path


def _compare(out: Path, sources, replicates: int, *, workers: int | None = 1,
             scheduler: str | None = None, people: int = PEOPLE, days: int = DAYS) -> Path:
    return rep.compare_command([str(s) for s in sources], replicates=replicates, out=out,
                               overrides=OVERRIDES, seed=1, days=days, people=people,
                               workers=workers, scheduler=scheduler, console=_quiet())


def _summary(folder: Path) -> dict[tuple, dict]:
    return {(r["point"], r["measure"], r["key"]): r
            for r in pq.read_table(folder / "summary.parquet").to_pylist()}


def _runs(folder: Path) -> dict[str, list[dict]]:
    return {p.stem: pq.read_table(p).to_pylist() for p in sorted((folder / "runs").iterdir())}


def _width(row: dict, lo: str = "ci_low", hi: str = "ci_high") -> float:
    return row[hi] - row[lo]


@pytest.fixture(scope="module")
def compare8(tmp_path_factory, short_grace) -> Path:
    return _compare(tmp_path_factory.mktemp("cmp") / "r8", ["rongcheng", short_grace], 8)


def test_t_quantiles_match_the_tables():
    for df, q in ((1, 12.7062), (2, 4.3027), (4, 2.7764), (9, 2.2622), (30, 2.0423),
                  (1e7, 1.9600)):
        assert rep.t_quantile(0.975, df) == pytest.approx(q, abs=1e-4)
    s = rep.mean_ci([1.0, 2.0, 3.0, 4.0])
    assert (s.n, s.mean) == (4, 2.5)
    assert s.ci_high - s.mean == pytest.approx(3.1824 * s.sd / 2, rel=1e-4)
    assert rep.mean_ci([5.0]).ci_low is None and rep.mean_ci([]).mean is None


def test_compare_folder_and_intervals_shrink_with_replicates(tmp_path, short_grace, compare8):
    r3 = _compare(tmp_path / "r3", ["rongcheng", short_grace], 3)
    m = json.loads((r3 / "manifest.json").read_text())
    assert m["kind"] == "compare" and m["complete"] and m["replicates"] == 3
    assert [p["label"] for p in m["points"]] == ["rongcheng", "short-grace"]
    assert sorted(p.name for p in (r3 / "runs").iterdir()) == [
        f"p{p}-r00{r}{ext}" for p in (0, 1) for r in range(3)
        for ext in (".parquet", ".series.parquet")]
    events = [json.loads(line)["event"] for line in (r3 / "status.log").read_text().splitlines()]
    assert events.count("done") == 6 and events[-1] == "finished"
    # Replicate r has seed 1 + r however many replicates there are: the same numbers.
    runs3, runs8 = _runs(r3), _runs(compare8)
    for run_id, rows in runs3.items():
        assert rows == runs8[run_id]
    s3, s8 = _summary(r3), _summary(compare8)
    for point in (0, 1):
        for measure in (SANCTIONED, "new_listings_per_million"):
            a, b = s3[(point, measure, "")], s8[(point, measure, "")]
            assert (a["n"], b["n"]) == (3, 8)
            assert a["sd"] > 0 and b["sd"] > 0
            assert _width(b) < _width(a)
            assert b["ci_low"] < b["mean"] < b["ci_high"]
        d3, d8 = s3[(1, SANCTIONED, "")], s8[(1, SANCTIONED, "")]
        assert _width(d8, "diff_ci_low", "diff_ci_high") < _width(d3, "diff_ci_low",
                                                                   "diff_ci_high")


def test_common_random_numbers_make_paired_differences_tighter(compare8):
    s = _summary(compare8)
    runs = _runs(compare8)
    for measure in (SANCTIONED, "new_listings_per_million"):
        row = s[(1, measure, "")]
        assert row["versus"] == "rongcheng" and row["diff_n"] == 8
        paired, unpaired = (_width(row, "diff_ci_low", "diff_ci_high"),
                            _width(row, "unpaired_ci_low", "unpaired_ci_high"))
        assert 0 < paired < unpaired, (measure, paired, unpaired)
        # The shorter grace lists more people, and the paired interval shows it.
        assert row["diff_ci_low"] > 0
        assert row["diff_mean"] == pytest.approx(row["mean"] - s[(0, measure, "")]["mean"])

        def value(run_id, measure=measure):
            return next(r["value"] for r in runs[run_id] if r["measure"] == measure)

        diffs = [value(f"p1-r00{r}") - value(f"p0-r00{r}") for r in range(8)]
        assert row["diff_mean"] == pytest.approx(sum(diffs) / 8)


def _sweep_args(out: Path) -> list[str]:
    args = ["sweep", "rongcheng", *SETS, *SMALL, "--seed", "1", "--replicates", "3",
            "--out", str(out)]
    for v in VARY:
        args += ["--vary", v]
    return args


def _cli(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "credsim", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run_cli(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    p = _cli(*args, cwd=cwd)
    out, err = p.communicate(timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def _events(folder: Path) -> list[dict]:
    return rep.read_status(folder / "status.log")


@pytest.fixture(scope="module")
def straight_sweep(tmp_path_factory) -> Path:
    """The sweep run straight through, in this process."""
    out = tmp_path_factory.mktemp("sweep") / "straight"
    return rep.sweep_command("rongcheng", vary=VARY, replicates=3, out=out, resume=None,
                             overrides=OVERRIDES, seed=1, days=DAYS, people=PEOPLE,
                             workers=1, scheduler=None, console=_quiet())


def test_straight_sweep_folder(straight_sweep):
    m = json.loads((straight_sweep / "manifest.json").read_text())
    assert m["kind"] == "sweep" and m["complete"] and len(m["runs"]) == 12
    assert [p["values"] for p in m["points"]][1] == {
        "court_list.grace_days": "10", "channels.court.false_rate_by_group": "[1.0,4.0]"}
    t = pq.read_table(straight_sweep / "summary.parquet")
    assert t.schema.field("court_list.grace_days").type == "double"
    rows = t.to_pylist()
    assert {r["court_list.grace_days"] for r in rows} == {10.0, 30.0}
    assert {r["channels.court.false_rate_by_group"] for r in rows} == {"[1.0,1.0]",
                                                                       "[1.0,4.0]"}
    s = _summary(straight_sweep)
    # Longer grace, fewer sanctioned days, at either false-record bias (points 0, 1: 10 days).
    assert s[(2, SANCTIONED, "")]["mean"] < s[(0, SANCTIONED, "")]["mean"]
    assert s[(3, SANCTIONED, "")]["diff_ci_high"] < 0


def test_resume_after_a_killed_sweep_gives_the_same_numbers(tmp_path, straight_sweep):
    out = tmp_path / "killed"
    proc = _cli(*_sweep_args(out), "--workers", "2", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if sum(e["event"] == "done" for e in _events(out)) >= 2:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143, err
    assert f"credsim sweep --resume {out}" in err
    done_before = {e["run_id"] for e in _events(out) if e["event"] == "done"}
    assert 2 <= len(done_before) < 12, "the sweep finished before it could be killed"
    assert _events(out)[-1]["event"] == "interrupted"
    assert not (out / "summary.parquet").exists()
    assert not json.loads((out / "manifest.json").read_text())["complete"]
    assert not [p for p in (out / "runs").iterdir() if p.name.startswith(".")]
    assert {p.name.split(".")[0] for p in (out / "runs").iterdir()} == done_before
    assert {p.name for p in (out / "runs").iterdir()} == {
        f"{r}{ext}" for r in done_before for ext in (".parquet", ".series.parquet")}

    r = _run_cli("sweep", "--resume", str(out), "--workers", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert f"{len(done_before)} of 12 runs are done" in r.stdout
    events = _events(out)
    resumed_at = max(i for i, e in enumerate(events) if e["event"] == "resume")
    rerun = {e["run_id"] for e in events[resumed_at:] if e["event"] == "started"}
    assert rerun.isdisjoint(done_before) and len(rerun | done_before) == 12
    assert json.loads((out / "manifest.json").read_text())["complete"]
    # Same numbers as the sweep run straight through (in one process, not two workers).
    assert _runs(out) == _runs(straight_sweep)
    assert pq.read_table(out / "summary.parquet").equals(
        pq.read_table(straight_sweep / "summary.parquet"))


def test_resume_repairs_a_hard_kill_and_reruns_only_what_is_missing(tmp_path,
                                                                    straight_sweep):
    out = tmp_path / "hard"
    shutil.copytree(straight_sweep, out)
    (out / "summary.parquet").unlink()
    (out / "runs" / "p1-r001.parquet").unlink()  # killed before the rename
    (out / "runs" / ".p1-r001.parquet.tmp").write_bytes(b"PAR1 half")
    (out / "runs" / "p2-r002.parquet").write_bytes(b"not parquet")  # corrupt file
    series = out / "runs" / "p0-r002.series.parquet"  # a daily series edited by hand
    t = pq.read_table(series)
    pq.write_table(t.set_column(t.schema.get_field_index("value"), "value",
                                pa.array([v + 1.0 for v in t.column("value").to_pylist()])),
                   series)
    with open(out / "status.log", "a") as f:
        f.write('{"time": "2026-01-01T00:00:00", "event": "sta')  # cut short by the kill
    rep.sweep_command(None, resume=out, workers=1, console=_quiet())
    events = _events(out)
    resumed_at = max(i for i, e in enumerate(events) if e["event"] == "resume")
    assert {e["run_id"] for e in events[resumed_at:] if e["event"] == "started"} == {
        "p0-r002", "p1-r001", "p2-r002"}
    assert not (out / "runs" / ".p1-r001.parquet.tmp").exists()
    assert _runs(out) == _runs(straight_sweep)
    for name in ("summary", "series"):
        assert pq.read_table(out / f"{name}.parquet").equals(
            pq.read_table(straight_sweep / f"{name}.parquet"))


def test_local_processes_and_dask_give_identical_numbers(tmp_path, short_grace):
    distributed = pytest.importorskip("distributed")
    # 20,000 people: enough adults that a multi-threaded BLAS would split the dot product
    # of the Gini coefficient, which Dask's workers compute with one thread.
    size = {"people": 20_000, "days": 30}
    local = _compare(tmp_path / "local", ["rongcheng", short_grace], 2, workers=2, **size)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with pytest.raises(InputError, match="--workers applies to local processes"):
            _compare(tmp_path / "x", ["rongcheng", short_grace], 2, workers=2,
                     scheduler=cluster.scheduler_address)
        dask = _compare(tmp_path / "dask", ["rongcheng", short_grace], 2, workers=None,
                        scheduler=cluster.scheduler_address, **size)
    assert "Dask scheduler" in json.loads((dask / "status.log").read_text().splitlines()[0]
                                          )["executor"]
    assert _runs(dask) == _runs(local)
    assert pq.read_table(dask / "summary.parquet").equals(
        pq.read_table(local / "summary.parquet"))


def test_failed_runs_are_logged_and_resume_runs_them_again(tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    real = rep._simulate_and_measure

    def flaky(task):
        if task.run_id == "p1-r001":
            raise MemoryError("no room for this society")
        return real(task)

    monkeypatch.setattr(rep, "_simulate_and_measure", flaky)
    size = {"replicates": 2, "resume": None, "overrides": OVERRIDES, "seed": 3, "days": 20,
            "people": 1000, "workers": None}
    # A cluster of threads in this process runs the patched function.
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        address = cluster.scheduler_address
        out = tmp_path / "flaky"
        with pytest.raises(RunsFailed):
            rep.sweep_command("rongcheng", vary=["court_list.grace_days=10,30"], out=out,
                              scheduler=address, console=_quiet(), **size)
        events = _events(out)
        failed = [e for e in events if e["event"] == "failed"]
        assert [e["run_id"] for e in failed] == ["p1-r001"]
        assert "MemoryError: no room for this society" in failed[0]["error"]
        assert sorted({p.name.split(".")[0] for p in (out / "runs").iterdir()}) == [
            "p0-r000", "p0-r001", "p1-r000"]
        assert not (out / "summary.parquet").exists()
        with pytest.raises(RunsFailed):
            rep.compare_command(["rongcheng", "baseline"], replicates=2, out=tmp_path / "c",
                                overrides=OVERRIDES, seed=3, days=20, people=1000,
                                scheduler=address, console=_quiet())
        assert not (tmp_path / "c").exists() and not list(tmp_path.glob(".credsim-*"))
        monkeypatch.setattr(rep, "_simulate_and_measure", real)
        rep.sweep_command(None, resume=out, scheduler=address, console=_quiet())
    events = _events(out)
    resumed_at = max(i for i, e in enumerate(events) if e["event"] == "resume")
    assert [e["run_id"] for e in events[resumed_at:] if e["event"] == "started"] == [
        "p1-r001"]
    assert (out / "summary.parquet").exists()


def test_a_worker_that_dies_is_a_clear_error():
    ex = LocalExecutor(1)
    try:
        with pytest.raises(ExecutorError, match="worker process died") as info:
            list(ex.map_unordered(os._exit, [3]))
        assert info.value.task == 3
    finally:
        ex.close(cancel=True)




def test_bad_vary_and_existing_out_exit_2(one_error, tmp_path, straight_sweep):
    out = tmp_path / "never"
    msg = one_error(_run_cli("sweep", "rongcheng", "--vary", "court_list.grace_days=10,-3",
                              "--out", str(out), cwd=tmp_path))
    assert "--vary court_list.grace_days=-3" in msg and "greater than or equal to 0" in msg
    msg = one_error(_run_cli("sweep", "rongcheng", "--vary", "court_list.grace_dayz=10",
                              "--out", str(out), cwd=tmp_path))
    assert "court_list.grace_dayz" in msg and "did you mean 'grace_days'" in msg
    msg = one_error(_run_cli("sweep", "rongcheng", "--vary", "court_list.grace_days",
                              "--out", str(out), cwd=tmp_path))
    assert "expected key.path=v1,v2" in msg
    assert not out.exists() and not list(tmp_path.glob(".never*"))
    existing = tmp_path / "existing"
    existing.mkdir()
    msg = one_error(_run_cli("compare", "rongcheng", "baseline", "--replicates", "2",
                              "--out", str(existing), cwd=tmp_path))
    assert f"{existing}: already exists" in msg
    assert list(existing.iterdir()) == []
    msg = one_error(_run_cli(*_sweep_args(straight_sweep), cwd=tmp_path))
    assert f"{straight_sweep}: already exists" in msg and "--resume" not in msg
    unfinished = tmp_path / "unfinished"
    shutil.copytree(straight_sweep, unfinished)
    m = json.loads((unfinished / "manifest.json").read_text())
    (unfinished / "manifest.json").write_text(json.dumps({**m, "complete": False}))
    msg = one_error(_run_cli(*_sweep_args(unfinished), cwd=tmp_path))
    assert f"or finish that sweep with: credsim sweep --resume {unfinished}" in msg


def test_input_errors_before_any_run(tmp_path, straight_sweep, short_grace):
    def sweep(**kw):
        args = {"vary": ["court_list.grace_days=10,30"], "replicates": 2,
                "out": tmp_path / "s", "resume": None, "overrides": None, "seed": None,
                "days": 5, "people": 1000, "workers": 1, "scheduler": None,
                "console": _quiet(), **kw}
        return rep.sweep_command(args.pop("scenario", "rongcheng"), **args)

    for kw, match in (
        ({"vary": []}, "at least one --vary"),
        ({"vary": ["court_list.grace_days=10,,30"]}, "none empty"),
        ({"vary": ["court_list.grace_days=10", "court_list.grace_days=30"]}, "given twice"),
        ({"vary": ["court_list.grace_days=10,10"]}, "listed twice"),
        ({"vary": ["run.seed=1,2"]}, "--seed"),
        ({"vary": ["run.days=10,20"]}, "--days 5 would replace every value"),
        # Each value is valid on its own, one combination is not.
        ({"vary": ["points.grade_floors.A=960,900", "points.grade_floors.B=850,920"]},
         "grid point points.grade_floors.A=900, points.grade_floors.B=920: .*must fall "
         "strictly"),
        ({"scenario": None}, "needs a SCENARIO"),
        ({"replicates": 0}, "at least 1"),
        ({"resume": straight_sweep}, "leave out SCENARIO, --vary, --out, --days, --people"),
        ({"scenario": None, "vary": None, "out": None, "days": None, "people": None,
          "resume": straight_sweep, "replicates": 4}, "has 3 replicates"),
    ):
        with pytest.raises(InputError, match=match):
            sweep(**kw)
    assert not (tmp_path / "s").exists()
    with pytest.raises(InputError, match="two or more scenarios"):
        rep.compare_command(["rongcheng"], replicates=2, out=tmp_path / "c", console=_quiet())

    def resume(folder):
        return rep.sweep_command(None, resume=folder, workers=1, console=_quiet())

    with pytest.raises(InputError, match="no such sweep folder"):
        resume(tmp_path / "nowhere")
    cmp = tmp_path / "cmp"
    cmp.mkdir()
    (cmp / "manifest.json").write_text(json.dumps({"kind": "compare", "format_version": 1}))
    with pytest.raises(InputError, match="a compare folder, not a sweep"):
        resume(cmp)
    (cmp / "manifest.json").write_text(json.dumps({"format_version": 1, "complete": True}))
    with pytest.raises(InputError, match="a run folder, not a sweep"):
        resume(cmp)
    future = tmp_path / "future"
    shutil.copytree(straight_sweep, future)
    m = json.loads((future / "manifest.json").read_text())
    (future / "manifest.json").write_text(json.dumps({**m, "format_version": 99}))
    with pytest.raises(InputError, match="format_version 99 is not supported"):
        resume(future)


def test_vary_values_are_split_and_parsed_like_set():
    assert rep.parse_vary(['a.b=[1.0, 2.0],[3.0,4.0]', 'c.d="x,y", z ,1e-4']) == [
        ("a.b", ["[1.0, 2.0]", "[3.0,4.0]"]), ("c.d", ['"x,y"', "z", "1e-4"])]
    assert rep.parsed_value("c.d", '"x,y"') == "x,y"
    assert rep.parsed_value("c.d", "z") == "z"
    assert rep.parsed_value("c.d", "1e-4") == 1e-4
    assert rep.parsed_value("a.b", "[1.0, 2.0]") == [1.0, 2.0]


# Intervals on the measure's scale ----------------------------------------------------

DRAWS = 4000  # replicate sets per distribution
REPLICATES = 10


def _coverage(draw, truth: float, measure: str, unit: str, seed: int) -> tuple[float, int]:
    """Share of DRAWS replicate sets whose interval holds `truth`, and how many
    intervals left the measure's range."""
    rng = np.random.default_rng(seed)
    lo, hi = rep.measure_range(measure, unit)
    hits = outside = 0
    for _ in range(DRAWS):
        st = rep.measure_interval([float(x) for x in draw(rng, REPLICATES)], measure, unit)
        hits += st.ci_low <= truth <= st.ci_high
        outside += st.ci_low < lo or st.ci_high > hi
    return hits / DRAWS, outside


def _tolerance(p: float) -> float:
    """Four standard errors of a coverage estimate from DRAWS sets (binomial variance)."""
    return 4 * math.sqrt(p * (1 - p) / DRAWS)


@pytest.mark.parametrize(("name", "measure", "unit", "draw", "truth"), [
    ("beta shares", "wrongful_share", "share of sanctioned person-days",
     lambda rng, n: rng.beta(2, 8, n), 0.2),
    ("symmetric beta shares", "cross_context_share", "share", lambda rng, n: rng.beta(5, 5, n),
     0.5),
    ("Poisson counts", "wrongful_marks", "deductions", lambda rng, n: rng.poisson(3.0, n), 3.0),
    ("gamma rates", "sanctions_per_million", "per million people per year",
     lambda rng, n: rng.gamma(2.0, 50.0, n), 100.0),
])
def test_mean_intervals_cover_at_the_nominal_rate_and_stay_in_range(name, measure, unit,
                                                                    draw, truth):
    seed = zlib.crc32(name.encode())
    coverage, outside = _coverage(draw, truth, measure, unit, seed)
    assert outside == 0
    assert abs(coverage - rep.CONFIDENCE) <= _tolerance(rep.CONFIDENCE), (name, coverage)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_flag_intervals_are_wilson_intervals_of_the_replicates(p):
    """A 0/1 flag's interval is the Wilson interval of the share of replicates flagged:
    its simulated coverage matches the exact coverage (a sum over the binomial
    distribution), which stays near the nominal 95 % even when every replicate agrees."""
    n = REPLICATES
    exact = sum(math.comb(n, k) * p ** k * (1 - p) ** (n - k) for k in range(n + 1)
                if rep.wilson(k, n)[0] <= p <= rep.wilson(k, n)[1])
    coverage, outside = _coverage(lambda rng, m: rng.binomial(1, p, m), p,
                                  "sanction_four_fifths_flag", "1 = flagged", int(p * 1000))
    assert outside == 0
    assert abs(coverage - exact) <= _tolerance(exact)
    assert exact >= 0.9  # Wilson's coverage oscillates around the nominal level
    # Every replicate unflagged still leaves an interval above 0.
    assert rep.measure_interval([0.0] * n, "sanction_four_fifths_flag", "1 = flagged"
                                ).ci_high > 0.2


def test_intervals_never_leave_the_range():
    rng = np.random.default_rng(7)
    cases = [("wrongful_share", "share", 0.0, 1.0), ("gini_savings", "Gini", 0.0, 1.0),
             ("sanction_impact_ratio", "ratio to the least-burdened group", 0.0, 1.0),
             ("score_assortativity", "correlation across ties", -1.0, 1.0),
             ("perks_per_million", "per million people per year", 0.0, math.inf),
             ("listing_four_fifths_flag", "1 = flagged", 0.0, 1.0)]
    for measure, unit, lo, hi in cases:
        assert rep.measure_range(measure, unit) == (lo, hi)
        for _ in range(300):
            n = int(rng.integers(2, 8))
            top = hi if math.isfinite(hi) else 2000.0
            # Values piled up at the ends of the range: the hard case for a t-interval.
            xs = [float(v) for v in rng.choice([lo, top, rng.uniform(lo, top)], n)]
            if unit == "1 = flagged":
                xs = [float(v >= (lo + top) / 2) for v in xs]
            st = rep.measure_interval(xs, measure, unit)
            assert lo <= st.ci_low <= st.mean <= st.ci_high <= hi, (measure, xs, st)
            d = rep.difference_interval([x - y for x, y in zip(xs, xs[::-1], strict=True)],
                                        measure, unit)
            assert lo - hi <= d.ci_low <= d.ci_high <= hi - lo


def test_the_cases_a_student_t_interval_got_wrong():
    # A flag raised in 3 of 5 replicates: Student t gives [-0.08, 1.28].
    t = rep.mean_ci([1.0, 0.0, 1.0, 0.0, 1.0])
    assert t.ci_low < 0 and t.ci_high > 1
    w = rep.measure_interval([1.0, 0.0, 1.0, 0.0, 1.0], "sanction_four_fifths_flag",
                             "1 = flagged")
    assert (w.ci_low, w.ci_high) == pytest.approx(rep.wilson(3, 5))
    # Perks in one replicate of five: the interval stays above zero.
    perks = [0.0, 0.0, 0.0, 0.0, 4000.0]
    assert rep.mean_ci(perks).ci_low < 0
    st = rep.measure_interval(perks, "perks_per_million", "per million people per year")
    assert 0 < st.ci_low < st.mean < st.ci_high


def test_summary_records_kind_and_interval_method(compare8):
    rows = pq.read_table(compare8 / "summary.parquet").to_pylist()
    by = {(r["measure"], r["key"]): r for r in rows if r["point"] == 0}
    assert by[("wrongful_share", "")]["kind"] == "share"
    assert by[(SANCTIONED, "")]["interval"] == "log t (delta method)"
    for r in rows:
        lo, hi = rep.measure_range(r["measure"], r["unit"])
        if r["ci_low"] is not None:
            assert lo <= r["ci_low"] <= r["ci_high"] <= hi
        if r["diff_ci_low"] is not None:
            assert lo - hi <= r["diff_ci_low"] <= r["diff_ci_high"] <= hi - lo


def test_compare_folder_keeps_daily_series(compare8):
    series = pq.read_table(compare8 / "series.parquet").to_pylist()
    per_run = pq.read_table(compare8 / "runs" / "p0-r000.series.parquet").to_pylist()
    assert {r["series"] for r in per_run} >= {"sanctioned", "sanctioned_wrongful", "listed"}
    assert len([r for r in per_run if r["series"] == "sanctioned"]) == DAYS
    # The series' mean on a day is the mean of the replicates' values that day.
    day = DAYS - 1
    values = [r["value"] for path in sorted((compare8 / "runs").glob("p0-*.series.parquet"))
              for r in pq.read_table(path).to_pylist()
              if r["series"] == "sanctioned" and r["day"] == day]
    row = next(r for r in series if r["point"] == 0 and r["series"] == "sanctioned"
               and r["day"] == day)
    assert row["n"] == len(values) == 8
    assert row["mean"] == pytest.approx(sum(values) / len(values))
    assert 0 <= row["ci_low"] <= row["mean"] <= row["ci_high"]
    manifest = json.loads((compare8 / "manifest.json").read_text())
    assert manifest["format_version"] == rep.FORMAT_VERSION == 2
    done = [e for e in _events(compare8) if e["event"] == "done"]
    assert all(e["series_sha256"] == rep.file_sha256(compare8 / "runs" /
                                                     f"{e['run_id']}.series.parquet")
               for e in done)
