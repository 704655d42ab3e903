"""Replicates with common random numbers: `credsim compare` and `credsim sweep`.

Both commands plan a list of runs, each fully determined by a resolved scenario
(as TOML text) and a seed: replicate r of every scenario or grid point runs with
seed = base seed + r, so scenarios that differ in one lever share every random
draw that lever does not touch (common random numbers, see credsim.rng). The
runs go through one executor (credsim.audit.executors): local worker processes
or a Dask cluster; the numbers do not depend on which.

A worker simulates the run into a temporary run folder, computes the harm
audit's measures on it (credsim.audit.measures) and deletes the folder; only
the measures and a few daily series come back. This process writes them, two
Parquet files per run, under a temporary name first, and appends to an
append-only status log, so an interrupted sweep loses at most the runs in
progress and `--resume` carries on where it stopped. The log's first line
records a hash of the plan and each "done" line the hashes of its run's files,
so a resume refuses an edited manifest and runs again any file that is not the
one it wrote. At the end, summary.parquet gives every measure's mean and 95 %
interval per scenario or grid point, on the measure's own scale so that it
stays in its range (see "Intervals that stay in the measure's range" below),
and the paired difference from the first one with its Student-t interval (and
the unpaired interval, for reference); series.parquet gives the daily series'
means with their intervals. docs/cli.md describes the folder.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
import tomllib
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from rich.console import Console
from rich.markup import escape

from credsim import __version__
from credsim import formatting as fm
from credsim.audit.executors import Executor, ExecutorError, make_executor
from credsim.errors import InputError, RunsFailed, Stopped
from credsim.results import run_dir
from credsim.scenario.load import _apply_override, load_scenario, scenario_to_toml, validate

FORMAT_VERSION = 2  # of the compare/sweep folder (manifest.json, runs/, summary, series)
MAX_SEED = 2**63 - 1  # the largest run.seed
DEFAULT_REPLICATES = 10  # the command line's default for --replicates
CONFIDENCE = 0.95
BOUND_DAYS = 30.0  # the proportionality bound passed to measures.compute

RUN_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("scenario", pa.string()), ("point", pa.int32()),
    ("replicate", pa.int32()), ("seed", pa.int64()), ("measure", pa.string()),
    ("key", pa.string()), ("value", pa.float64()), ("unit", pa.string()),
])
# The daily series a worker returns with the measures (columns of the run's time series
# that exist in it), and their schema in runs/<run_id>.series.parquet.
SERIES = ("sanctioned", "sanctioned_wrongful", "listed", "people_alive", "gini_income",
          "gini_savings")
SERIES_SCHEMA = pa.schema([
    ("run_id", pa.string()), ("point", pa.int32()), ("replicate", pa.int32()),
    ("seed", pa.int64()), ("series", pa.string()), ("day", pa.int32()),
    ("value", pa.float64()),
])
SUMMARY_STATS = (
    ("n", pa.int32()), ("mean", pa.float64()), ("sd", pa.float64()),
    ("ci_low", pa.float64()), ("ci_high", pa.float64()), ("versus", pa.string()),
    ("diff_n", pa.int32()), ("diff_mean", pa.float64()), ("diff_sd", pa.float64()),
    ("diff_ci_low", pa.float64()), ("diff_ci_high", pa.float64()),
    ("unpaired_ci_low", pa.float64()), ("unpaired_ci_high", pa.float64()),
)


# ---------------------------------------------------------------------------------------
# Tasks and the worker side

@dataclass(frozen=True)
class Task:
    """One run: everything a worker needs, and nothing that depends on where it runs."""

    run_id: str
    point: int  # index of the scenario (compare) or grid point (sweep)
    label: str
    replicate: int
    seed: int
    scenario_toml: str  # the resolved scenario; run.seed is replaced by `seed`
    bound_days: float = BOUND_DAYS


def task_scenario(task: Task):
    """The task's scenario, validated, with its seed."""
    data = tomllib.loads(task.scenario_toml)
    data.setdefault("run", {})["seed"] = task.seed
    return validate(data, f"run {task.run_id}")


_LOCK = threading.Lock()  # one run at a time per process (Dask workers may have threads)
_CURRENT_TMP: Path | None = None  # the temporary run folder of the run in progress
_SERIES: dict[str, list[float]] = {}  # the daily series of the run just measured (_LOCK)


def _take_series() -> dict[str, list[float]]:
    """The daily series _simulate_and_measure kept aside (it returns only the measures,
    the one thing a stand-in for a simulation has to provide)."""
    global _SERIES
    series, _SERIES = _SERIES, {}
    return series


def init_worker(workers: int) -> None:
    """In each local worker process: share the cores with the other workers, leave Ctrl-C
    to the parent, on SIGTERM remove the temporary run folder before exiting, and exit
    too if the parent dies (killed with SIGKILL, it cannot stop its workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_terminate)
    threading.Thread(target=_watch_parent, args=(os.getppid(),), daemon=True,
                     name="credsim-watch-parent").start()
    try:
        import numba

        numba.set_num_threads(max(1, min(numba.config.NUMBA_NUM_THREADS,
                                         (os.cpu_count() or 1) // max(workers, 1))))
    except Exception:  # pragma: no cover - Numba's thread count is only a performance hint
        pass


def _worker_terminate(signum, frame) -> None:  # pragma: no cover - runs in a worker
    _worker_exit(128 + signum)


def _worker_exit(code: int) -> None:  # pragma: no cover - runs in a worker
    tmp = _CURRENT_TMP
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
    os._exit(code)


def _watch_parent(parent: int) -> None:  # pragma: no cover - runs in a worker
    while os.getppid() == parent:
        time.sleep(1.0)
    _worker_exit(1)


def run_task(task: Task) -> dict:
    """Simulate one run and return its measures and a few daily series: {'run_id',
    'measures': [(measure, key, value, unit), ...], 'series': {name: [value per day]},
    'seconds', 'host', 'pid'}, or {'run_id', 'error': 'Type: message', 'traceback': the
    full traceback} if it failed. Module-level, so every executor can ship it to its
    workers."""
    with _LOCK:
        t0 = time.perf_counter()
        try:
            ms = _simulate_and_measure(task)
            series = _take_series()
        except Exception as exc:
            return {"run_id": task.run_id, "error": error_line(exc),
                    "traceback": traceback.format_exc(),
                    "host": socket.gethostname(), "pid": os.getpid()}
        return {"run_id": task.run_id, "measures": [(m.measure, m.key, m.value, m.unit)
                                                     for m in ms],
                "series": series,
                "seconds": round(time.perf_counter() - t0, 3),
                "host": socket.gethostname(), "pid": os.getpid()}


def error_line(exc: BaseException) -> str:
    """An exception as one line, 'Type: message' (the last line of a traceback can be a
    caret line instead)."""
    lines = traceback.format_exception_only(type(exc), exc)
    return " ".join(" ".join(line.split()) for line in lines if line.strip())


# A worker's temporary folder: credsim-<worker pid>-<host>-<run id>-<random>, so that a
# folder left by a killed worker can be told from one in use, even in a temporary
# directory that several hosts share (see remove_stale_worker_folders).
WORKER_FOLDER = re.compile(r"credsim-(\d+)-(.+)-p\d+-r\d+-[A-Za-z0-9_]+")


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", socket.gethostname())[:64] or "host"


def _simulate_and_measure(task: Task):
    global _CURRENT_TMP, _SERIES
    from credsim.audit.measures import compute

    s = task_scenario(task)
    work = Path(tempfile.mkdtemp(prefix=f"credsim-{os.getpid()}-{_host_tag()}-{task.run_id}-"))
    _CURRENT_TMP = work
    try:
        out = work / "run"
        tmp = run_dir.prepare(out)
        run_dir.simulate(s, tmp)
        run_dir.commit(tmp, out)
        measures = compute(out, None, task.bound_days)
        _SERIES = _daily_series(out)
        return measures
    finally:
        _CURRENT_TMP = None
        shutil.rmtree(work, ignore_errors=True)


def _daily_series(run: Path) -> dict[str, list[float]]:
    """The SERIES columns the run's time series has, day by day (day 0 first)."""
    ts = pq.read_table(run / "timeseries.parquet")
    ts = ts.sort_by("day")
    return {name: [float(v) for v in ts.column(name).to_pylist()]
            for name in SERIES if name in ts.column_names}


def remove_stale_worker_folders(where: Path | None = None) -> list[Path]:
    """Remove the temporary folders of workers that no longer run (killed with SIGKILL,
    a worker cannot remove its folder) from `where` (default: the temporary directory);
    return them. Only folders of this host and user count. A folder is kept while a
    process with its PID runs, unless that process started after the folder was last
    modified (its PID was reused); where the start of a process cannot be read (no
    /proc), a reused PID keeps a folder."""
    where = Path(where or tempfile.gettempdir())
    removed = []
    try:
        entries = list(where.iterdir())
    except OSError:
        return removed
    for path in entries:
        m = WORKER_FOLDER.fullmatch(path.name)
        if m is None or m.group(2) != _host_tag():
            continue
        try:
            st = path.lstat()
        except OSError:
            continue
        if not stat_is_own_dir(st) or _owner_alive(int(m.group(1)), st.st_mtime):
            continue
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            removed.append(path)
    return removed


def stat_is_own_dir(st: os.stat_result) -> bool:
    """A real folder (not a link) of this user."""
    import stat as stat_mod

    getuid = getattr(os, "getuid", None)  # not on Windows
    return stat_mod.S_ISDIR(st.st_mode) and (getuid is None or st.st_uid == getuid())


def _owner_alive(pid: int, modified: float) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's process, or cannot tell: keep the folder
    started = _process_start(pid)
    # Two seconds' slack: the boot time in /proc/stat is in whole seconds.
    return started is None or modified >= started - 2.0


def _process_start(pid: int) -> float | None:
    """When process `pid` started (seconds since the epoch), from /proc; None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22, starttime: clock ticks after boot
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text()
                    .splitlines() if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, StopIteration):
        return None


# ---------------------------------------------------------------------------------------
# Student t intervals (no SciPy: the regularised incomplete beta function)

def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz)."""
    tiny, eps = 1e-300, 1e-15
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 1000):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)),
                   -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h


def _betai(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _betacf(a, b, x) / a
    return 1.0 - front * _betacf(b, a, 1.0 - x) / b


def t_sf(t: float, df: float) -> float:
    """P(T > t) for Student's t with `df` degrees of freedom, t >= 0."""
    return 0.5 * _betai(df / 2.0, 0.5, df / (df + t * t))


@lru_cache(maxsize=4096)
def t_quantile(p: float, df: float) -> float:
    """The p-quantile (p > 0.5) of Student's t with `df` (> 0) degrees of freedom."""
    target = 1.0 - p
    lo, hi = 0.0, 2.0
    while t_sf(hi, df) > target:
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_sf(mid, df) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-13 * hi:
            break
    return 0.5 * (lo + hi)


@dataclass
class Stats:
    n: int
    mean: float | None = None
    sd: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None


def mean_ci(xs: Sequence[float], confidence: float = CONFIDENCE) -> Stats:
    """Mean, sample standard deviation and the Student-t interval of the mean."""
    n = len(xs)
    if n == 0:
        return Stats(0)
    mean = math.fsum(xs) / n
    if n == 1:
        return Stats(1, mean)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1))
    half = t_quantile(0.5 + confidence / 2, n - 1) * sd / math.sqrt(n) if sd > 0 else 0.0
    return Stats(n, mean, sd, mean - half, mean + half)


def welch_ci(a: Sequence[float], b: Sequence[float],
             confidence: float = CONFIDENCE) -> tuple[float | None, float | None]:
    """Interval of mean(a) - mean(b) from independent samples (Welch)."""
    sa, sb = mean_ci(a, confidence), mean_ci(b, confidence)
    if sa.sd is None or sb.sd is None:
        return None, None
    va, vb = sa.sd ** 2 / sa.n, sb.sd ** 2 / sb.n
    d = sa.mean - sb.mean
    if va + vb == 0:
        return d, d
    df = (va + vb) ** 2 / (va ** 2 / (sa.n - 1) + vb ** 2 / (sb.n - 1))
    half = t_quantile(0.5 + confidence / 2, df) * math.sqrt(va + vb)
    return d - half, d + half


# ---------------------------------------------------------------------------------------
# Intervals that stay in the measure's range
#
# Each measure has a kind (share, flag, count, rate, ratio, score, correlation) and a
# range. A mean's 95 % interval is built on a scale where the range is unbounded and
# mapped back, so it never leaves the range:
#   - bounded [lo, hi] (shares, impact ratios, Gini, correlations): the delta method on
#     the logit of (mean - lo) / (hi - lo) (for a correlation this is Fisher's z), with
#     Student's t quantile;
#   - non-negative (counts, rates, other ratios, standard deviations): the delta method
#     on the log of the mean, with Student's t quantile;
#   - 0/1 flags: the Wilson score interval of the proportion of replicates flagged;
#   - unbounded (scores, points): Student's t on the values.
# The transformation is applied to the mean, not to each replicate, so a replicate at 0
# (no sanction in one run) is allowed and the interval is one for the mean itself. A
# bootstrap percentile interval was not chosen: with the 5-10 replicates usual here it
# is too narrow (it uses the normal, not the t, spread). Differences stay Student-t on
# the paired differences, cut to the range a difference can take (a difference of shares
# lies in [-1, 1]). docs/cli.md (compare) documents the methods.

INF = math.inf
KIND_RANGES: dict[str, tuple[float, float]] = {
    "share": (0.0, 1.0), "flag": (0.0, 1.0), "count": (0.0, INF), "rate": (0.0, INF),
    "ratio": (0.0, INF), "score": (-INF, INF), "correlation": (-1.0, 1.0),
    "verdict": (0.0, 2.0),  # the four-fifths codes: 0 not flagged, 1 inconclusive, 2 flagged
}
# Measures whose range is narrower than their kind's.
RANGE_OF_MEASURE: dict[str, tuple[float, float]] = {
    "sanction_impact_ratio": (0.0, 1.0), "listing_impact_ratio": (0.0, 1.0),
    "gini_score": (0.0, 1.0), "gini_composite": (0.0, 1.0), "gini_savings": (0.0, 1.0),
    "gini_income": (0.0, 1.0), "voice_by_cohort": (0.0, 1.0),
}
INTERVAL_METHOD = {"bounded": "logit t (delta method)", "positive": "log t (delta method)",
                   "flag": "Wilson score", "t": "Student t"}


def _kind_of(measure: str, unit: str) -> str:
    """The kind of a measure: as declared in credsim.labels; for a measure it does not
    know (a file from another version), guessed from the name and unit."""
    from credsim.labels import measure_label

    try:
        return measure_label(measure).kind  # credsim's own measures and modules'
    except KeyError:
        pass
    u = unit.lower()
    if measure.endswith("_flag") or u == "1 = flagged":
        return "flag"
    if u.startswith("correlation"):
        return "correlation"
    if (u.startswith("share") or u.startswith("sanctioned share") or u == "gini"
            or measure.endswith("_share")):
        return "share"
    if measure.endswith("_impact_ratio") or u.startswith("ratio"):
        return "ratio"
    if "points" in u or u == "stars":
        return "score"
    if u in ("deductions", "days") or u.startswith("firms"):
        return "count"
    if "per " in u:
        return "rate"
    return "score"


def measure_range(measure: str, unit: str) -> tuple[float, float]:
    """The values the measure can take."""
    if measure in RANGE_OF_MEASURE:
        return RANGE_OF_MEASURE[measure]
    if measure.endswith("_sd"):
        return (0.0, INF)
    return KIND_RANGES[_kind_of(measure, unit)]


def _method(measure: str, unit: str) -> str:
    lo, hi = measure_range(measure, unit)
    if _kind_of(measure, unit) == "flag":
        return "flag"
    if math.isfinite(lo) and math.isfinite(hi):
        return "bounded"
    if math.isfinite(lo):
        return "positive"
    return "t"


def _z(confidence: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson(k: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson score interval of a proportion: k successes in n trials."""
    z = _z(confidence)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(max(p * (1 - p) / n + z * z / (4 * n * n), 0.0))
    return max(0.0, centre - half), min(1.0, centre + half)


def _expit(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def interval_in_range(xs: Sequence[float], lo: float, hi: float, method: str,
                      confidence: float = CONFIDENCE) -> Stats:
    """Mean, sd and the interval of the mean by `method` (INTERVAL_METHOD), inside
    [lo, hi]."""
    st = mean_ci(xs, confidence)
    if method == "flag" and st.n >= 2 and all(x in (0.0, 1.0) for x in xs):
        st.ci_low, st.ci_high = wilson(sum(xs), st.n, confidence)
        return st  # a proportion: all replicates flagged still leaves an interval
    if st.sd is None or st.sd == 0:
        return st
    n, m = st.n, st.mean
    se = st.sd / math.sqrt(n)
    t = t_quantile(0.5 + confidence / 2, n - 1)
    if method in ("bounded", "flag") and lo < m < hi:
        u = (m - lo) / (hi - lo)
        half = t * se / ((hi - lo) * u * (1 - u))
        logit = math.log(u / (1 - u))
        st.ci_low = lo + (hi - lo) * _expit(logit - half)
        st.ci_high = lo + (hi - lo) * _expit(logit + half)
    elif method == "positive" and m > lo:
        half = t * se / (m - lo)
        st.ci_low = lo + (m - lo) * math.exp(-half)
        st.ci_high = lo + (m - lo) * math.exp(half)
    return _clip(st, lo, hi)


def _clip(st: Stats, lo: float, hi: float) -> Stats:
    if st.ci_low is not None:
        st.ci_low = min(max(st.ci_low, lo), hi)
        st.ci_high = min(max(st.ci_high, lo), hi)
    return st


def measure_interval(xs: Sequence[float], measure: str, unit: str,
                     confidence: float = CONFIDENCE) -> Stats:
    """The mean of a measure across replicates with its interval on the right scale."""
    lo, hi = measure_range(measure, unit)
    return interval_in_range(xs, lo, hi, _method(measure, unit), confidence)


def difference_range(measure: str, unit: str) -> tuple[float, float]:
    lo, hi = measure_range(measure, unit)
    return lo - hi, hi - lo


def difference_interval(ds: Sequence[float], measure: str, unit: str,
                        confidence: float = CONFIDENCE) -> Stats:
    """Student t on paired differences, cut to the range a difference can take."""
    return _clip(mean_ci(ds, confidence), *difference_range(measure, unit))


# ---------------------------------------------------------------------------------------
# Plans: the scenarios or grid points, the replicates, the runs

@dataclass
class Point:
    index: int
    label: str
    source: str
    scenario_toml: str
    values: dict[str, str] = field(default_factory=dict)  # sweep: key -> value as given


@dataclass
class Plan:
    kind: str  # 'compare' or 'sweep'
    points: list[Point]
    replicates: int
    base_seed: int
    vary: list[tuple[str, list[str]]] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    bound_days: float = BOUND_DAYS

    def tasks(self) -> list[Task]:
        """Replicate-major, so an unfinished batch covers every point about evenly."""
        wp, wr = len(str(len(self.points) - 1)), max(3, len(str(self.replicates - 1)))
        return [Task(f"p{p.index:0{wp}d}-r{r:0{wr}d}", p.index, p.label, r,
                     self.base_seed + r, p.scenario_toml, self.bound_days)
                for r in range(self.replicates) for p in self.points]

    def digest(self) -> str:
        """sha256 of everything that determines the runs and the summary: the points
        (labels, values, resolved scenarios), the replicates, the base seed, the grid and
        the bound. The status log records it when the folder is created, so a resume can
        tell an edited manifest."""
        plan = {"kind": self.kind, "replicates": self.replicates, "base_seed": self.base_seed,
                "vary": [[k, list(vs)] for k, vs in self.vary], "bound_days": self.bound_days,
                "points": [[p.index, p.label, p.values, p.scenario_toml]
                           for p in self.points]}
        return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()

    def manifest(self) -> dict:
        return {
            "kind": self.kind,
            "format_version": FORMAT_VERSION,
            "credsim_version": __version__,
            "created": _now(),
            "complete": False,
            "replicates": self.replicates,
            "base_seed": self.base_seed,
            "seeds": f"base seed + replicate: {self.base_seed} to "
                     f"{self.base_seed + self.replicates - 1}",
            "confidence": CONFIDENCE,
            "bound_days": self.bound_days,
            "settings": self.settings,
            "vary": [{"key": k, "values": vs} for k, vs in self.vary],
            "points": [{"point": p.index, "label": p.label, "source": p.source,
                        "values": p.values, "scenario_toml": p.scenario_toml}
                       for p in self.points],
            "runs": [{"run_id": t.run_id, "point": t.point, "replicate": t.replicate,
                      "seed": t.seed} for t in self.tasks()],
            "files": {"runs": "runs/<run_id>.parquet",
                      "run_series": "runs/<run_id>.series.parquet",
                      "summary": "summary.parquet", "series": "series.parquet",
                      "status": "status.log"},
        }

    @classmethod
    def from_manifest(cls, m: dict, where: Path) -> Plan:
        try:
            points = [Point(int(p["point"]), str(p["label"]), str(p["source"]),
                            str(p["scenario_toml"]), dict(p.get("values") or {}))
                      for p in m["points"]]
            plan = cls(str(m["kind"]), points, int(m["replicates"]), int(m["base_seed"]),
                       [(str(v["key"]), list(v["values"])) for v in m.get("vary") or []],
                       dict(m.get("settings") or {}), float(m.get("bound_days", BOUND_DAYS)))
            planned = [r["run_id"] for r in m["runs"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"{where}: not a complete credsim manifest ({exc!r})") from None
        if planned != [t.run_id for t in plan.tasks()]:
            raise InputError(f"{where}: its run list does not match its points and "
                             "replicates; the manifest was edited")
        for p in points:  # still a valid scenario for this version of credsim
            try:
                validate(tomllib.loads(p.scenario_toml), f"{where}: point {p.index}")
            except tomllib.TOMLDecodeError as exc:
                raise InputError(f"{where}: point {p.index}: malformed TOML: {exc}") from None
        return plan


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _split_values(raw: str) -> list[str]:
    """Split `v1,v2,...` at the commas outside brackets, braces and quotes."""
    out, depth, quote, cur = [], 0, "", []
    for ch in raw:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return out


def parse_vary(items: Sequence[str]) -> list[tuple[str, list[str]]]:
    """`key=v1,v2,...` options as (key, [raw values]); the values are parsed like --set."""
    out: list[tuple[str, list[str]]] = []
    for item in items:
        if "=" not in item:
            raise InputError(f"--vary {item!r}: expected key.path=v1,v2,...")
        key, raw = (s.strip() for s in item.split("=", 1))
        if not key or not all(key.split(".")):
            raise InputError(f"--vary {item!r}: expected a dotted key before '=', "
                             "e.g. court_list.grace_days=10,30")
        values = _split_values(raw)
        if any(v == "" for v in values):
            raise InputError(f"--vary {item!r}: expected comma-separated values, none empty")
        if key in (k for k, _ in out):
            raise InputError(f"--vary {key}: given twice; list all its values in one --vary")
        if key == "run.seed":
            raise InputError("--vary run.seed: replicate r already runs with the base seed "
                             "+ r; set the base seed with --seed")
        dup = next((v for i, v in enumerate(values) if v in values[:i]), None)
        if dup is not None:
            raise InputError(f"--vary {key}: value {dup} is listed twice")
        out.append((key, values))
    return out


def parsed_value(key: str, raw: str) -> Any:
    """The value `raw` gives `key`, parsed as --set parses it."""
    data: dict[str, Any] = {}
    _apply_override(data, f"{key}={raw}")
    node: Any = data
    for part in key.split("."):
        node = node[part]
    return node


def plan_compare(sources: Sequence[str], replicates: int, overrides: list[str] | None,
                 seed: int | None, days: int | None, people: int | None) -> Plan:
    if len(sources) < 2:
        raise InputError("compare needs two or more scenarios (presets or TOML files)")
    _check_replicates(replicates, 2, "compare")
    first = load_scenario(sources[0], overrides, seed=seed, days=days, people=people)
    base_seed = first.run.seed
    check_seed_range(base_seed, replicates, seed is not None, sources[0])
    loaded = [load_scenario(src, overrides, seed=base_seed, days=days, people=people)
              for src in sources]
    labels = _unique_labels([s.name for s in loaded], list(sources))
    points = [Point(i, labels[i], src, scenario_to_toml(s))
              for i, (src, s) in enumerate(zip(sources, loaded, strict=True))]
    return Plan("compare", points, replicates, base_seed, settings=_settings(
        overrides, seed, days, people))


def plan_sweep(source: str, vary_items: Sequence[str], replicates: int,
               overrides: list[str] | None, seed: int | None, days: int | None,
               people: int | None) -> Plan:
    _check_replicates(replicates, 1, "sweep")
    if not vary_items:
        raise InputError("sweep needs at least one --vary key.path=v1,v2,...")
    vary = parse_vary(vary_items)
    for key, flag, given in (("run.days", "--days", days), ("run.people", "--people", people)):
        if given is not None and any(k == key for k, _ in vary):
            raise InputError(f"--vary {key}: {flag} {given} would replace every value; "
                             f"leave out {flag}")
    base = load_scenario(source, overrides, seed=seed, days=days, people=people)
    base_seed = base.run.seed
    check_seed_range(base_seed, replicates, seed is not None, source)
    over = list(overrides or [])
    # Each value on its own first, so an error names the value at fault.
    for key, values in vary:
        for v in values:
            try:
                load_scenario(source, over + [f"{key}={v}"], seed=base_seed, days=days,
                              people=people)
            except InputError as exc:
                raise InputError(f"--vary {key}={v}: {exc}") from None
    points = []
    for i, combo in enumerate(itertools.product(*(vs for _, vs in vary))):
        values = {k: v for (k, _), v in zip(vary, combo, strict=True)}
        label = ", ".join(f"{k}={v}" for k, v in values.items())
        try:
            s = load_scenario(source, over + [f"{k}={v}" for k, v in values.items()],
                              seed=base_seed, days=days, people=people)
        except InputError as exc:
            raise InputError(f"grid point {label}: {exc}") from None
        points.append(Point(i, label, source, scenario_to_toml(s), values))
    return Plan("sweep", points, replicates, base_seed, vary, _settings(
        overrides, seed, days, people))


def _settings(overrides, seed, days, people) -> dict:
    return {"set": list(overrides or []), "seed": seed, "days": days, "people": people}


def check_seed_range(base_seed: int, replicates: int, given: bool, source: str) -> None:
    """Replicate r runs with base seed + r: every one of them must be a valid seed."""
    last = base_seed + replicates - 1
    if last <= MAX_SEED:
        return
    what = f"--seed {base_seed}" if given else f"base seed {base_seed} (run.seed of {source})"
    raise InputError(f"{what}: replicate r runs with seed {base_seed} + r, so with "
                     f"--replicates {replicates} the last seed would be {last}, above the "
                     f"largest seed {MAX_SEED}; the largest allowed base seed is "
                     f"{MAX_SEED - replicates + 1}")


def _check_replicates(r: int, minimum: int, what: str) -> None:
    if r < minimum:
        why = " (an interval needs at least two runs)" if minimum == 2 else ""
        raise InputError(f"--replicates {r}: {what} needs at least {minimum}{why}")


def _unique_labels(names: list[str], sources: list[str]) -> list[str]:
    labels = [n if names.count(n) == 1 else f"{n} ({src})" for n, src in zip(names, sources,
                                                                           strict=True)]
    return [lab if labels.count(lab) == 1 else f"{lab} #{i + 1}"
            for i, lab in enumerate(labels)]



# ---------------------------------------------------------------------------------------
# The folder: manifest, status log, per-run Parquet files, summary

def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2), "utf-8")
    os.replace(tmp, path)


class StatusLog:
    """status.log: one JSON object per line, appended, never rewritten."""

    def __init__(self, path: Path):
        self.path = path
        # A line cut short by a killed process must not swallow the next one.
        if path.exists() and path.stat().st_size > 0:
            with open(path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                last = f.read(1)
            if last != b"\n":
                with open(path, "ab") as f:
                    f.write(b"\n")

    def write(self, event: str, **fields: Any) -> None:
        line = json.dumps({"time": _now(), "event": event, **fields}) + "\n"
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)


def read_status(path: Path) -> list[dict]:
    """The log's events, skipping any line that does not parse (one cut short by a kill)."""
    out = []
    if not path.is_file():
        return out
    for line in path.read_text("utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def _run_path(folder: Path, run_id: str) -> Path:
    return folder / "runs" / f"{run_id}.parquet"


def _series_path(folder: Path, run_id: str) -> Path:
    return folder / "runs" / f"{run_id}.series.parquet"


def _write_atomic_parquet(table: pa.Table, final: Path) -> str:
    tmp = final.with_name(f".{final.name}.tmp")
    pq.write_table(table, tmp)
    digest = file_sha256(tmp)
    os.replace(tmp, final)
    return digest


def _write_series(folder: Path, task: Task, series: dict[str, list[float]]) -> str:
    """Write the run's daily series (under a temporary name first); return its sha256."""
    names = [name for name, vs in series.items() for _ in vs]
    days = [d for vs in series.values() for d in range(len(vs))]
    n = len(names)
    table = pa.table({
        "run_id": [task.run_id] * n, "point": [task.point] * n,
        "replicate": [task.replicate] * n, "seed": [task.seed] * n, "series": names,
        "day": days, "value": [v for vs in series.values() for v in vs],
    }, schema=SERIES_SCHEMA)
    return _write_atomic_parquet(table, _series_path(folder, task.run_id))


def _write_run(folder: Path, task: Task, rows: list[tuple]) -> str:
    """Write the run's file (under a temporary name first); return its sha256."""
    n = len(rows)
    table = pa.table({
        "run_id": [task.run_id] * n, "scenario": [task.label] * n, "point": [task.point] * n,
        "replicate": [task.replicate] * n, "seed": [task.seed] * n,
        "measure": [r[0] for r in rows], "key": [r[1] for r in rows],
        "value": [r[2] for r in rows], "unit": [r[3] for r in rows],
    }, schema=RUN_SCHEMA)
    return _write_atomic_parquet(table, _run_path(folder, task.run_id))


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _run_files_match(folder: Path, task: Task, digests: tuple[str | None, str | None]
                     ) -> bool:
    """The run's measures and series files are those logged as done (same sha256) and
    are the task's run."""
    return (_run_file_matches(_run_path(folder, task.run_id), task, digests[0])
            and _run_file_matches(_series_path(folder, task.run_id), task, digests[1],
                                  may_be_empty=True))


def _run_file_matches(path: Path, task: Task, digest: str | None,
                      may_be_empty: bool = False) -> bool:
    """The file is the one logged as done (same sha256) and is the task's run."""
    try:
        if digest is None or file_sha256(path) != digest:
            return False
        t = pq.read_table(path, columns=["run_id", "point", "replicate", "seed"])
    except Exception:  # missing, unreadable or not Parquet
        return False
    want = {"run_id": task.run_id, "point": task.point, "replicate": task.replicate,
            "seed": task.seed}
    if t.num_rows == 0:
        return may_be_empty
    return all(set(t.column(k).to_pylist()) == {v} for k, v in want.items())


def _complete_manifest(folder: Path) -> None:
    manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    _write_json(folder / "manifest.json", {**manifest, "complete": True, "finished": _now()})


def _new_folder(tmp: Path, plan: Plan, executor: Executor) -> StatusLog:
    """The folder's manifest and a status log that starts with the plan's digest."""
    (tmp / "runs").mkdir()
    _write_json(tmp / "manifest.json", plan.manifest())
    log = StatusLog(tmp / "status.log")
    n = len(plan.points) * plan.replicates
    log.write("begin", runs=n, todo=n, executor=executor.description, plan_sha256=plan.digest())
    return log


def summary_table(folder: Path, plan: Plan) -> pa.Table:
    """Every measure per point: n, mean, sd, interval; the paired difference from point 0
    by replicate and its interval; the unpaired (Welch) interval of the same difference."""
    values: dict[tuple[int, str, str], dict[int, float | None]] = {}
    units: dict[tuple[str, str], str] = {}
    order: dict[tuple[str, str], None] = {}
    for t in sorted(plan.tasks(), key=lambda t: (t.point, t.replicate)):
        for r in pq.read_table(_run_path(folder, t.run_id)).to_pylist():
            mk = (r["measure"], r["key"])
            order.setdefault(mk)
            units.setdefault(mk, r["unit"])
            values.setdefault((t.point, *mk), {})[t.replicate] = r["value"]
    ref = plan.points[0]
    rows = []
    for p in plan.points:
        for mk in order:
            vals = values.get((p.index, *mk))
            if vals is None:
                continue
            xs = [v for _, v in sorted(vals.items()) if v is not None]
            st = measure_interval(xs, mk[0], units[mk])
            row = {"scenario": p.label, "point": p.index, "measure": mk[0], "key": mk[1],
                   "unit": units[mk], "kind": _kind_of(mk[0], units[mk]),
                   "interval": INTERVAL_METHOD[_method(mk[0], units[mk])],
                   "n": st.n, "mean": st.mean, "sd": st.sd,
                   "ci_low": st.ci_low, "ci_high": st.ci_high}
            for k, raw in p.values.items():
                row[f"vary:{k}"] = raw
            if p.index != ref.index:
                base = values.get((ref.index, *mk), {})
                pairs = [(v, base[r]) for r, v in sorted(vals.items())
                         if v is not None and base.get(r) is not None]
                d = difference_interval([a - b for a, b in pairs], mk[0], units[mk])
                dlo, dhi = difference_range(mk[0], units[mk])
                lo, hi = welch_ci(xs, [v for v in base.values() if v is not None])
                if lo is not None:
                    lo, hi = min(max(lo, dlo), dhi), min(max(hi, dlo), dhi)
                row.update({"versus": ref.label, "diff_n": d.n, "diff_mean": d.mean,
                            "diff_sd": d.sd, "diff_ci_low": d.ci_low, "diff_ci_high": d.ci_high,
                            "unpaired_ci_low": lo, "unpaired_ci_high": hi})
            rows.append(row)
    fields = [("scenario", pa.string()), ("point", pa.int32())]
    for key, raws in plan.vary:
        parsed = [parsed_value(key, v) for v in raws]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in parsed)
        fields.append((key, pa.float64() if numeric else pa.string()))
        conv = dict(zip(raws, parsed if numeric else raws, strict=True))
        for row in rows:
            raw = row.pop(f"vary:{key}")
            row[key] = float(conv[raw]) if numeric else raw
    fields += [("measure", pa.string()), ("key", pa.string()), ("unit", pa.string()),
               ("kind", pa.string()), ("interval", pa.string()), *SUMMARY_STATS]
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


SERIES_SUMMARY_SCHEMA = pa.schema([
    ("scenario", pa.string()), ("point", pa.int32()), ("series", pa.string()),
    ("day", pa.int32()), ("n", pa.int32()), ("mean", pa.float64()),
    ("ci_low", pa.float64()), ("ci_high", pa.float64()),
])


def series_table(folder: Path, plan: Plan) -> pa.Table:
    """Each point's daily series: the mean over replicates and its 95 % interval (people
    counted on a day are non-negative: the log-scale interval)."""
    import numpy as np

    values: dict[tuple[int, str], list[np.ndarray]] = {}
    for t in sorted(plan.tasks(), key=lambda t: (t.point, t.replicate)):
        tab = pq.read_table(_series_path(folder, t.run_id), columns=["series", "day", "value"])
        for name in dict.fromkeys(tab.column("series").to_pylist()):
            part = tab.filter(pc.equal(tab.column("series"), name)).sort_by("day")
            values.setdefault((t.point, name), []).append(
                part.column("value").to_numpy(zero_copy_only=False))
    rows = []
    labels = {p.index: p.label for p in plan.points}
    for (point, name), runs in values.items():
        days = min(len(r) for r in runs)
        for day in range(days):
            st = interval_in_range([float(r[day]) for r in runs], 0.0, INF, "positive")
            rows.append({"scenario": labels[point], "point": point, "series": name,
                         "day": day, "n": st.n, "mean": st.mean, "ci_low": st.ci_low,
                         "ci_high": st.ci_high})
    return pa.Table.from_pylist(rows, schema=SERIES_SUMMARY_SCHEMA)


def _write_summary(folder: Path, plan: Plan) -> pa.Table:
    table = summary_table(folder, plan)
    for name, t in (("summary", table), ("series", series_table(folder, plan))):
        tmp = folder / f".{name}.parquet.tmp"
        pq.write_table(t, tmp)
        os.replace(tmp, folder / f"{name}.parquet")
    return table


# ---------------------------------------------------------------------------------------
# Running: signals, the loop over results

class _Stop(BaseException):
    """Ctrl-C or SIGTERM: stop the runs, keep what is complete."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _nothing_written(how: str) -> str:
    return f"{how}; nothing was written"


class _Stopper:
    """Turns the first SIGINT/SIGTERM into _Stop, but not inside `hold()` (while a
    finished run is written and logged): there it waits until the block ends.
    `report(how)` is the one line that says what a stop leaves behind; the command
    keeps it up to date."""

    def __init__(self):
        self.signum: int | None = None
        self.critical = False
        self.previous: dict = {}
        self.report: Callable[[str], str] = _nothing_written

    def __enter__(self) -> _Stopper:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        for sig, h in self.previous.items():
            signal.signal(sig, h)

    def _handler(self, signum, frame) -> None:
        if self.signum is not None:
            return  # already stopping
        self.signum = signum
        if not self.critical:
            raise _Stop(signum)

    @contextmanager
    def hold(self) -> Iterator[None]:
        self.critical = True
        try:
            yield
        finally:
            self.critical = False
        if self.signum is not None:
            raise _Stop(self.signum)


@contextmanager
def _command() -> Iterator[_Stopper]:
    """The whole of a compare or sweep: Ctrl-C (exit code 130) or SIGTERM (143) anywhere
    in it ends it with one line on standard error, the stopper's report."""
    with _Stopper() as stopper:
        try:
            yield stopper
        except _Stop as stop:
            how = "interrupted" if stop.signum == signal.SIGINT else "terminated"
            _exit_interrupted(stop.signum, stopper.report(how))


@dataclass
class _Progress:
    total: int
    done: int
    failed: list[tuple[Task, str]] = field(default_factory=list)


def _execute(folder: Path, plan: Plan, todo: list[Task], executor: Executor, log: StatusLog,
             stopper: _Stopper, progress: _Progress, console: Console,
             stop_on_failure: bool) -> None:
    width = len(str(progress.total))
    # Progress lines name a grid point by its values alone (the keys are in the header).
    short = {p.index: ", ".join(p.values.values()) or p.label for p in plan.points}

    def feed() -> Iterator[Task]:
        for t in todo:
            with stopper.hold():
                log.write("started", run_id=t.run_id, point=t.point, replicate=t.replicate,
                          seed=t.seed)
            yield t

    results = executor.map_unordered(run_task, feed())
    while True:
        try:
            task, res = next(results)
        except StopIteration:
            return
        except ExecutorError as exc:  # the executor cannot go on: a failure that stops all
            task, res = exc.task, {"error": str(exc)}
            stop_on_failure = True
        head = f"[{progress.done + len(progress.failed) + 1:>{width}}/{progress.total}]"
        if "error" in res:
            message = " ".join(str(res["error"]).split()) or "failed without a message"
            with stopper.hold():
                log.write("failed", run_id=task.run_id, host=res.get("host"),
                          pid=res.get("pid"), error=message, traceback=res.get("traceback"))
            progress.failed.append((task, message))
            console.print(f"{head} {task.run_id} FAILED: {escape(message)}", highlight=False)
            if stop_on_failure:
                return
            continue
        with stopper.hold():
            digest = _write_run(folder, task, res["measures"])
            series_digest = _write_series(folder, task, res.get("series") or {})
            log.write("done", run_id=task.run_id, seconds=res["seconds"], host=res["host"],
                      pid=res["pid"], sha256=digest, series_sha256=series_digest)
            progress.done += 1
        console.print(f"{head} {task.run_id}  {escape(short[task.point])}  seed {task.seed}  "
                      f"{res['seconds']:.1f} s", highlight=False)


def _exit_interrupted(signum: int, message: str) -> None:
    raise Stopped(signum, message)


def _exit_failed(progress: _Progress, folder: Path | None, hint: str) -> None:
    task, last = progress.failed[0]
    where = f"; see {folder / 'status.log'}" if folder else ""
    raise RunsFailed(f"{len(progress.failed)} run(s) failed; the first, {task.run_id} "
                     f"({task.label}, seed {task.seed}): {last}{where}. {hint}")


def _remove_leftovers(console: Console) -> None:
    removed = remove_stale_worker_folders()
    if removed:
        console.print(f"removed {len(removed)} temporary folder{'s' if len(removed) > 1 else ''}"
                      f" left in {escape(str(removed[0].parent))} by credsim workers that "
                      "were killed", highlight=False)


# ---------------------------------------------------------------------------------------
# The commands

def compare_command(scenarios: Sequence[str], *, replicates: int = DEFAULT_REPLICATES,
                    out: Path | None = None, overrides: list[str] | None = None,
                    seed: int | None = None, days: int | None = None,
                    people: int | None = None, workers: int | None = None,
                    scheduler: str | None = None, console: Console | None = None,
                    force: bool = False) -> Path:
    """`credsim compare`: R replicates of each scenario with common random numbers, into a
    folder written atomically (a folder under the target name is always complete)."""
    console = console or Console()
    with _command() as stopper:
        plan = plan_compare(scenarios, replicates, overrides, seed, days, people)
        tasks = plan.tasks()
        _check_memory(plan, workers, scheduler, len(tasks), force)
        executor: Executor | None = None
        tmp: Path | None = None
        try:
            # The folder is claimed before any worker starts.
            target, tmp = _claim(out, "compare-" + "-vs-".join(
                p.label for p in plan.points[:3]), plan.base_seed)
            stopper.report = lambda how: f"{how}; no results folder was left behind"
            _remove_leftovers(console)
            executor = make_executor(workers, scheduler, tasks=len(tasks),
                                     initializer=init_worker)
            log = _new_folder(tmp, plan, executor)
            console.print(f"compare: {len(plan.points)} scenarios × {replicates} replicates "
                          f"= {len(tasks)} runs, seeds {plan.base_seed} to "
                          f"{plan.base_seed + replicates - 1}, on {executor.description}",
                          highlight=False)
            progress = _Progress(len(tasks), 0)
            _execute(tmp, plan, tasks, executor, log, stopper, progress, console,
                     stop_on_failure=True)
            if progress.failed:
                executor.close(cancel=True)
                run_dir.abort(tmp)
                _exit_failed(progress, None, "No results folder was left behind.")
            executor.close()
            table = _write_summary(tmp, plan)
            with stopper.hold():
                log.write("finished", runs=len(tasks))
                _complete_manifest(tmp)
                run_dir.commit(tmp, target)
                stopper.report = lambda how: f"{how}; the comparison is complete in {target}"
        except BaseException:
            if executor is not None:
                executor.close(cancel=True)
            if tmp is not None:
                run_dir.abort(tmp)  # nothing to do once committed
            raise
        _print_compare(console, plan, table)
        console.print(f"results: [bold]{escape(str(target))}[/] (summary.parquet: every "
                      "measure; series.parquet: the daily series; runs/: each run's files)",
                      highlight=False)
    return target


def sweep_command(scenario: str | None, *, vary: list[str] | None = None,
                  replicates: int = DEFAULT_REPLICATES, out: Path | None = None,
                  resume: Path | None = None, overrides: list[str] | None = None,
                  seed: int | None = None, days: int | None = None,
                  people: int | None = None, workers: int | None = None,
                  scheduler: str | None = None, console: Console | None = None,
                  force: bool = False) -> Path:
    """`credsim sweep`: a grid of parameter values, R replicates each; the folder grows run
    by run and `--resume DIR` finishes an interrupted sweep."""
    console = console or Console()
    with _command() as stopper:
        if resume is not None:
            given = [name for name, v in (("SCENARIO", scenario), ("--vary", vary),
                                          ("--out", out), ("--set", overrides),
                                          ("--seed", seed), ("--days", days),
                                          ("--people", people))
                     if v is not None and v != []]
            if given:
                raise InputError(f"--resume takes the sweep's settings from "
                                 f"{resume}/manifest.json; leave out {', '.join(given)}")
            return _resume(resume, replicates, workers, scheduler, console, stopper)
        if scenario is None:
            raise InputError("sweep needs a SCENARIO (a preset or TOML file), or --resume DIR")
        plan = plan_sweep(scenario, vary or [], replicates, overrides, seed, days, people)
        name = tomllib.loads(plan.points[0].scenario_toml).get("name", "scenario")
        if out is not None and out.exists():
            hint = ""
            if _folder_kind(out) == "sweep" and not _folder_complete(out):
                hint = f", or finish that sweep with: credsim sweep --resume {out}"
            raise InputError(f"{out}: already exists; choose another --out or remove it "
                             f"first{hint}")
        tasks = plan.tasks()
        _check_memory(plan, workers, scheduler, len(tasks), force)
        tmp: Path | None = None
        try:
            # The folder is claimed before any worker starts.
            target, tmp = _claim(out, f"sweep-{name}", plan.base_seed)
            _remove_leftovers(console)
            executor = make_executor(workers, scheduler, tasks=len(tasks),
                                     initializer=init_worker)
        except BaseException:
            if tmp is not None:
                run_dir.abort(tmp)
            raise
        try:
            _create_sweep_folder(tmp, target, plan, executor, stopper)
            console.print(f"sweep: {len(plan.points)} grid points × {replicates} replicates "
                          f"= {len(tasks)} runs, seeds {plan.base_seed} to "
                          f"{plan.base_seed + replicates - 1}, on {executor.description}; "
                          f"grid: {escape(', '.join(k for k, _ in plan.vary))}",
                          highlight=False)
            with _folder_lock(target):
                _run_sweep(target, plan, tasks, executor, console, stopper, resumed=False)
        finally:
            executor.close(cancel=True)
    return target


def _claim(out: Path | None, stem: str, seed: int) -> tuple[Path, Path]:
    """Check and claim the output folder (a default one if `out` is None); return it
    and the temporary folder to write into."""
    if out is None:
        return run_dir.prepare_default(stem, seed)
    return out, run_dir.prepare(out)


def _check_memory(plan: Plan, workers: int | None, scheduler: str | None, tasks: int,
                  force: bool) -> None:
    """Local workers run side by side on this machine: their runs must fit together.
    (A Dask cluster's workers are elsewhere; their memory is theirs to check.)"""
    if scheduler is not None:
        return
    from credsim.memory import check_fits

    at_once = min(workers or os.cpu_count() or 1, max(tasks, 1))
    largest = max((task_scenario(t) for t in plan.tasks()[:len(plan.points)]),
                  key=lambda s: s.run.people * (1 + s.graph.mean_degree))
    check_fits(largest, runs_at_once=at_once, force=force)


def _create_sweep_folder(tmp: Path, target: Path, plan: Plan, executor: Executor,
                         stopper: _Stopper) -> None:
    """The sweep folder, from its temporary folder `tmp`, with its manifest and the
    first line of its status log: whole or not at all."""
    try:
        with stopper.hold():
            _new_folder(tmp, plan, executor)
            run_dir.commit(tmp, target)
            stopper.report = _resume_report(target, 0, len(plan.tasks()))
    except BaseException:
        run_dir.abort(tmp)  # nothing to do once committed
        raise


def _resume_report(folder: Path, done: int, total: int) -> Callable[[str], str]:
    return lambda how: (f"{how}: {done} of {total} runs are done in {folder}; finish the "
                        f"sweep with: credsim sweep --resume {folder}")


def _folder_manifest(path: Path) -> dict:
    try:
        m = json.loads((path / "manifest.json").read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return m if isinstance(m, dict) else {}


def _folder_kind(path: Path) -> str | None:
    m = _folder_manifest(path)
    return m.get("kind", "run") if m else None


def _folder_complete(path: Path) -> bool:
    return bool(_folder_manifest(path).get("complete"))


def _read_sweep_manifest(folder: Path) -> dict:
    m = run_dir.read_manifest(folder, "no such sweep folder",
                              "not a sweep folder (no manifest.json)")
    mf = folder / "manifest.json"
    kind = m.get("kind", "run")
    if kind != "sweep":
        raise InputError(f"{folder}: a {kind} folder, not a sweep; only folders written by "
                         "`credsim sweep` can be resumed")
    if m.get("format_version") != FORMAT_VERSION:
        raise InputError(f"{mf}: sweep format_version {m.get('format_version')!r} is not "
                         f"supported by credsim {__version__} (expects {FORMAT_VERSION}); "
                         "start the sweep again")
    if m.get("credsim_version") != __version__:
        raise InputError(f"{folder}: the sweep was started by credsim "
                         f"{m.get('credsim_version')}, this is credsim {__version__}; its "
                         "runs would not be comparable, so start the sweep again")
    return m


def _resume(folder: Path, replicates: int, workers: int | None, scheduler: str | None,
            console: Console, stopper: _Stopper) -> Path:
    m = _read_sweep_manifest(folder)
    plan = Plan.from_manifest(m, folder)
    if replicates not in (plan.replicates, DEFAULT_REPLICATES):
        raise InputError(f"--replicates {replicates}: the sweep in {folder} has "
                         f"{plan.replicates} replicates, and resuming does not change them")
    tasks = plan.tasks()
    with _folder_lock(folder):
        events = read_status(folder / "status.log")
        _check_plan(folder, plan, events)
        (folder / "runs").mkdir(exist_ok=True)
        for stale in (folder / "runs").glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        done, mismatched = _verified_runs(folder, tasks, events)
        for t in mismatched:  # a wrong file must not outlive a failed re-run
            _run_path(folder, t.run_id).unlink(missing_ok=True)
            _series_path(folder, t.run_id).unlink(missing_ok=True)
        todo = [t for t in tasks if t.run_id not in done]
        stopper.report = _resume_report(folder, len(done), len(tasks))
        console.print(f"resuming {escape(str(folder))}: {len(done)} of {len(tasks)} runs "
                      f"are done, {len(todo)} to run", highlight=False)
        if mismatched:
            n = len(mismatched)
            console.print(f"{n} result file{'s' if n > 1 else ''} did not match "
                          f"{'their' if n > 1 else 'its'} recorded hash; running "
                          f"{'them' if n > 1 else 'it'} again", highlight=False)
        _remove_leftovers(console)
        executor = make_executor(workers, scheduler, tasks=len(todo), initializer=init_worker)
        try:
            if todo:
                console.print(f"on {executor.description}", highlight=False)
            _run_sweep(folder, plan, tasks, executor, console, stopper, resumed=True,
                       todo=todo, rerun=[t.run_id for t in mismatched])
        finally:
            executor.close(cancel=True)
    return folder


def _check_plan(folder: Path, plan: Plan, events: list[dict]) -> None:
    """The manifest still describes the sweep that was begun (the plan_sha256 of the
    status log's first 'begin' line)."""
    begin = next((e for e in events if e.get("event") == "begin"), {})
    recorded = begin.get("plan_sha256")
    if not isinstance(recorded, str):
        raise InputError(f"{folder / 'status.log'}: no record of the plan the sweep began "
                         "with (plan_sha256 in its first 'begin' line), so "
                         f"{folder / 'manifest.json'} cannot be checked; start the sweep "
                         "again")
    if recorded != plan.digest():
        raise InputError(f"{folder / 'manifest.json'}: its grid points, scenarios, "
                         "replicates or seed differ from those the sweep began with (the "
                         "plan_sha256 in status.log): the manifest was edited; restore it or "
                         "start a new sweep")


def _verified_runs(folder: Path, tasks: list[Task],
                   events: list[dict]) -> tuple[set[str], list[Task]]:
    """The run ids whose file is the one the log's last 'done' line for it records (by
    sha256, and by its run columns), and the tasks whose file is there but is not."""
    logged: dict[str, tuple[str | None, str | None]] = {}
    for e in events:
        if e.get("event") == "done" and isinstance(e.get("run_id"), str):
            digests = (e.get("sha256"), e.get("series_sha256"))
            logged[e["run_id"]] = tuple(d if isinstance(d, str) else None for d in digests)
    done: set[str] = set()
    mismatched: list[Task] = []
    for t in tasks:
        if t.run_id not in logged:
            continue
        if _run_files_match(folder, t, logged[t.run_id]):
            done.add(t.run_id)
        elif _run_path(folder, t.run_id).exists() or _series_path(folder, t.run_id).exists():
            mismatched.append(t)
    return done, mismatched


@contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Refuse a second `credsim sweep` in the same folder at the same time."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    try:
        f = open(folder / ".lock", "a+")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InputError(f"{folder}: cannot write in the sweep folder ({exc.strerror})"
                         ) from None
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise InputError(f"{folder}: another credsim sweep is running in this folder"
                             ) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _run_sweep(folder: Path, plan: Plan, tasks: list[Task], executor: Executor,
               console: Console, stopper: _Stopper, *, resumed: bool,
               todo: list[Task] | None = None, rerun: list[str] | None = None) -> None:
    """Run `todo` (default: every task) in the sweep folder, then write the summary; the
    caller holds the folder's lock."""
    todo = tasks if todo is None else todo
    log = StatusLog(folder / "status.log")
    if resumed:
        log.write("resume", runs=len(tasks), todo=len(todo), executor=executor.description,
                  rerun_mismatched=rerun or [])
    progress = _Progress(len(tasks), len(tasks) - len(todo))
    stopper.report = lambda how: _resume_report(folder, progress.done, len(tasks))(how)
    finished = False
    try:
        _execute(folder, plan, todo, executor, log, stopper, progress, console,
                 stop_on_failure=False)
        if progress.failed:
            log.write("stopped", failed=len(progress.failed), done=progress.done,
                      runs=len(tasks))
            _exit_failed(progress, folder, f"The {progress.done} completed runs are "
                         f"kept; `credsim sweep --resume {folder}` runs the failed and "
                         "missing ones again.")
        executor.close()
        table = _write_summary(folder, plan)
        with stopper.hold():
            log.write("finished", runs=len(tasks))
            _complete_manifest(folder)
            finished = True
            stopper.report = lambda how: f"{how}; the sweep is complete in {folder}"
    except _Stop as stop:
        if not finished:
            executor.close(cancel=True)
            log.write("interrupted", signal=signal.Signals(stop.signum).name,
                      done=progress.done, runs=len(tasks))
        raise
    _print_sweep(console, plan, table)
    console.print(f"results: [bold]{escape(str(folder))}[/] (summary.parquet: every measure; "
                  "series.parquet: the daily series; runs/: each run's files)", highlight=False)


# ---------------------------------------------------------------------------------------
# Console tables

HEADLINE = (
    ("sanctioned_person_days_per_million", "sanctioned person-days per million"),
    ("wrongful_share", "wrongful share of sanctioned days"),
    ("listed_per_million", "listed per million (mean)"),
    ("new_listings_per_million", "new listings per million per year"),
    ("sanctions_per_million", "sanctions per million per year"),
    ("perks_per_million", "perks per million per year"),
    ("cross_context_share", "sanctions outside the trigger's domain"),
    ("disproportionate_share", "sanctions costing > {bound:g} days' income"),
    ("voice_per_1000_person_days", "voice events per 1000 person-days"),
    ("ties_dropped_per_1000", "ties dropped per 1000 people"),
)
SWEEP_COLUMNS = {"sanctioned_person_days_per_million": "sanctioned days per million",
                 "wrongful_share": "wrongful share",
                 "new_listings_per_million": "new listings per million/yr",
                 "voice_per_1000_person_days": "voice per 1000 person-days"}


def _pm(r: dict | None, prefix: str = "") -> str:
    """'mean ± half-width' of a summary row's interval (`prefix` 'diff_': of its paired
    difference), to the digits the interval supports."""
    if r is None:
        return fm.NOT_AVAILABLE
    return fm.mean_pm(r[f"{prefix}mean"], r[f"{prefix}ci_low"], r[f"{prefix}ci_high"],
                      r["unit"], difference=bool(prefix))


def _headline_rows(rows: list[dict], bound: float) -> list[tuple[str, str, str]]:
    """(measure, key, description) of the headline measures present; gates only if any
    scenario applied them."""
    present: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        present.setdefault((r["measure"], r["key"]), []).append(r)
    out = []
    for measure, desc in HEADLINE:
        for (m, k), rs in present.items():
            if m != measure or all(r["mean"] is None for r in rs):
                continue
            if k.startswith("gate="):
                if all(not r["mean"] for r in rs):
                    continue
                out.append((m, k, f"{desc}: {k[5:]}"))
            elif k == "":
                out.append((m, k, desc.format(bound=bound)))
    return out


def _print_compare(console: Console, plan: Plan, table: pa.Table) -> None:
    fm.emit(_compare_output(plan, table), "table", console)
    console.print(f"{table.num_rows} rows in summary.parquet: every measure of "
                  "docs/measures.md, with the unpaired interval of each difference for "
                  "reference", highlight=False)


def _compare_output(plan: Plan, table: pa.Table) -> fm.Output:
    """The headline measures: per scenario for people (mean ± half-width, the paired
    differences), one record per measure and scenario for programs."""
    rows = table.to_pylist()
    by = {(r["point"], r["measure"], r["key"]): r for r in rows}
    labels = [p.label for p in plan.points]
    o = fm.Output(f"{' vs '.join(labels)}: {plan.replicates} replicates each, common random "
                  "numbers; mean ± 95 % half-width, or mean [95 % interval]",
                  [fm.Column("measure"), *(fm.Column(lab, numeric=True) for lab in labels),
                   *(fm.Column(f"{lab} − {labels[0]} (paired)", numeric=True)
                     for lab in labels[1:])])
    o.fields = ["measure", "key", "description", "unit", "scenario", "n", "mean", "ci_low",
                "ci_high", "versus", "diff_mean", "diff_ci_low", "diff_ci_high"]
    for m, k, desc in _headline_rows(rows, plan.bound_days):
        found = [by.get((p.index, m, k)) for p in plan.points]
        o.add([desc, *(_pm(r) for r in found), *(_pm(r, "diff_") for r in found[1:])])
        for r in found:
            if r is not None:
                o.records.append({"measure": m, "key": k, "description": desc,
                                  **{f: r.get(f) for f in o.fields[3:]}})
    return o


def compare_output(folder: Path) -> fm.Output:
    """The table `credsim compare` prints, from a finished compare folder."""
    return _compare_output(Plan.from_manifest(_folder_manifest(folder), folder),
                           pq.read_table(folder / "summary.parquet"))


def _short_keys(keys: list[str]) -> list[str]:
    """Each dotted key by its shortest tail that no other key ends with."""
    out = []
    for key in keys:
        parts = key.split(".")
        for k in range(1, len(parts) + 1):
            tail = ".".join(parts[-k:])
            if not any(o != key and (o == tail or o.endswith("." + tail)) for o in keys):
                break
        out.append(tail)
    return out


def _print_sweep(console: Console, plan: Plan, table: pa.Table) -> None:
    fm.emit(_sweep_output(plan, table), "table", console)
    console.print(f"{table.num_rows} rows in summary.parquet: every measure per grid point, "
                  "with the paired difference from the first point", highlight=False)


def _sweep_output(plan: Plan, table: pa.Table) -> fm.Output:
    """A few headline measures per grid point: mean ± half-width for people, one record per
    point and measure (with the varied keys' values) for programs."""
    rows = table.to_pylist()
    by = {(r["point"], r["measure"], r["key"]): r for r in rows}
    cols = [m for m in SWEEP_COLUMNS
            if any(by.get((p.index, m, ""), {}).get("mean") is not None for p in plan.points)]
    keys = [k for k, _ in plan.vary]
    o = fm.Output(f"sweep: {len(plan.points)} grid points × {plan.replicates} replicates; "
                  "mean ± 95 % half-width, or mean [95 % interval]",
                  [*(fm.Column(k) for k in _short_keys(keys)),
                   *(fm.Column(SWEEP_COLUMNS[m], numeric=True) for m in cols)])
    o.fields = [*keys, "measure", "key", "description", "unit", "n", "mean", "ci_low",
                "ci_high"]
    for p in plan.points:
        found = [by.get((p.index, m, "")) for m in cols]
        o.add([*(p.values[k] for k in keys), *(_pm(r) for r in found)])
        for m, r in zip(cols, found, strict=True):
            if r is not None:
                o.records.append({**{k: r.get(k) for k in keys}, "measure": m, "key": "",
                                  "description": SWEEP_COLUMNS[m],
                                  **{f: r.get(f) for f in ("unit", "n", "mean", "ci_low",
                                                            "ci_high")}})
    return o


def sweep_output(folder: Path) -> fm.Output:
    """The table `credsim sweep` prints, from a finished sweep folder."""
    return _sweep_output(Plan.from_manifest(_folder_manifest(folder), folder),
                         pq.read_table(folder / "summary.parquet"))
