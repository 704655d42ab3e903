"""Calibration over time: a run's court list, day by day, against the published series of
the list's national figures, 2014-2025 (credsim/data/court_list_series.csv, each row with
its source; docs/presets.md, "Calibration over time").

Calendar: the run's day 0 is the list's opening, 1 October 2013, with an empty list, so
a published figure dated D is compared with the run at the end of day (D - 2013-10-01).
Points after the run's last day are not compared.

Scaling: the run's counts are scaled to China's population of 1.4 billion (the national
equivalent: count x 1.4 bn / the people alive in the run that day), so that they read in
the published units.

What each published metric is compared with (`METRICS`):

- `listed_cumulative`: cases listed since day 0, of persons and of firms (the published
  counts are of "entities", people and organisations; a debtor listed twice counts twice);
- `new_listings_in_year`, `..._in_month_people`, `..._in_month_orgs`: cases listed in the
  365 days, or the calendar month, up to the date;
- `restored_in_year`, `restored_in_year_to_date`: listings ended (any cause) in the year
  up to the date, or since 1 January;
- `flights_blocked_...`, `hsr_blocked_...`, `trains_blocked_...`: applications of the gates
  `flights` and `high_speed_rail` (trains are the high-speed rail gate), cumulative or in
  the year;
- `complied_cumulative`: listings ended by a payment or a settlement, cumulative;
- `repaid_under_pressure_in_year`, `fulfilled_cumulative_since_2013`: cases paid (the
  timeseries' `payments`, listed or still in grace), in the year or cumulative.

Within range: for a figure marked `approx` or `derived`, the run lies within a factor of
RANGE_FACTOR (2) of it either way; for a `lower` bound ("more than ..."), the run is at
least the figure / RANGE_FACTOR, with no ceiling. Distance: ln(run / published).

Too few events: a point whose published figure, scaled down to the run's population, is
fewer than MIN_EVENTS events is not judged (the run's count is then mostly Poisson noise:
at 10 expected events its standard deviation is a third of the mean); the note says how
many people a run needs for it.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path

import numpy as np

from credsim.errors import InputError
from credsim.results.query import connect, ident
from credsim.results.run_dir import open_run, reading

LIST_OPENED = date(2013, 10, 1)  # the run's day 0
POPULATION = 1.4e9  # China (1.395 bn end 2018, 1.408 bn end 2024): one round figure
RANGE_FACTOR = 2.0
MIN_EVENTS = 10  # a point needs this many expected events in the run to be judged
BOUNDS = ("approx", "derived", "lower")


@dataclass(frozen=True)
class Published:
    """One row of the published series."""

    date: date
    metric: str
    value: float
    bound: str  # approx, derived (back-calculated) or lower ("more than")
    unit: str
    note: str
    source: str

    @property
    def day(self) -> int:
        """The run's day this figure is compared on (day 0: 1 October 2013)."""
        return (self.date - LIST_OPENED).days


def load_series(path: Path | None = None) -> list[Published]:
    """The published series (credsim's own file unless `path` is given)."""
    if path is None:
        text = resources.files("credsim.data").joinpath("court_list_series.csv").read_text(
            encoding="utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    rows = []
    for i, r in enumerate(csv.DictReader(text.splitlines()), start=2):
        if r["bound"] not in BOUNDS:
            raise InputError(f"court list series, line {i}: bound {r['bound']!r} is not one "
                             f"of {', '.join(BOUNDS)}")
        rows.append(Published(date.fromisoformat(r["date"]), r["metric"], float(r["value"]),
                              r["bound"], r["unit"], r["note"], r["source"]))
    return rows


@dataclass(frozen=True)
class Metric:
    """How a published metric is measured in a run: a daily count (`daily`, a key of the
    run's daily counts) summed over a window ending on the point's date: since day 0
    ("cumulative"), the last 365 days ("year"), the calendar month ("month"), or since
    1 January ("year_to_date")."""

    daily: str
    window: str
    what: str


METRICS: dict[str, Metric] = {
    "listed_cumulative": Metric("listed", "cumulative", "cases listed (persons and firms)"),
    "new_listings_in_year": Metric("listed", "year", "cases listed (persons and firms)"),
    "new_listings_in_month_people": Metric("listed_people", "month", "person cases listed"),
    "new_listings_in_month_orgs": Metric("listed_firms", "month", "firm cases listed"),
    "restored_in_year": Metric("delisted", "year", "listings ended (any cause)"),
    "restored_in_year_to_date": Metric("delisted", "year_to_date",
                                       "listings ended (any cause)"),
    "flights_blocked_cumulative": Metric("flights", "cumulative", "gate flights applied"),
    "flights_blocked_in_year": Metric("flights", "year", "gate flights applied"),
    "hsr_blocked_cumulative": Metric("rail", "cumulative", "gate high_speed_rail applied"),
    "trains_blocked_cumulative": Metric("rail", "cumulative", "gate high_speed_rail applied"),
    "trains_blocked_in_year": Metric("rail", "year", "gate high_speed_rail applied"),
    "complied_cumulative": Metric("complied", "cumulative",
                                  "listings ended by payment or settlement"),
    "repaid_under_pressure_in_year": Metric("payments", "year", "cases paid"),
    "fulfilled_cumulative_since_2013": Metric("payments", "cumulative", "cases paid"),
}


@dataclass
class Point:
    """One published figure against the run."""

    date: date
    metric: str
    published: float
    bound: str
    unit: str
    run: float | None  # the run's national equivalent (None: not measured)
    log_ratio: float | None  # ln(run / published); -inf when the run's count is 0
    within: bool | None  # None: not judged (see note)
    note: str
    source: str

    @property
    def year(self) -> int:
        return self.date.year


@dataclass
class Year:
    """The points of one calendar year: how many were judged, how many within range, and
    their distance (mean and largest |ln(run / published)|)."""

    year: int
    points: int
    judged: int
    within: int
    mean_abs_log_ratio: float | None
    max_abs_log_ratio: float | None


@dataclass
class Daily:
    """A run's daily counts (index: day) and the people alive each day."""

    counts: dict[str, np.ndarray | None]  # None: the run has no such figure (a gate)
    alive: np.ndarray

    @property
    def days(self) -> int:
        return len(self.alive)


def daily_counts(run_dir: Path) -> Daily:
    """The daily counts the metrics need, from a run folder with a court list."""
    manifest = open_run(run_dir)
    if not manifest["scenario"].get("court_list", {}).get("enabled"):
        raise InputError(f"{run_dir}: the run has no court list (court_list.enabled = false); "
                         "calibration compares court-list figures")
    days = int(manifest["days"])
    with reading(run_dir):
        con = connect(run_dir)
        try:
            return _daily(con, days, int(manifest["people"]))
        finally:
            con.close()


def _daily(con, days: int, people: int) -> Daily:
    cols = {r[0] for r in con.execute("DESCRIBE timeseries").fetchall()}

    def ts(col: str) -> np.ndarray | None:
        if col not in cols:
            return None
        out = np.zeros(days)
        for day, v in con.execute(f"SELECT day, {ident(col)} FROM timeseries").fetchall():
            if 0 <= day < days and v is not None:
                out[day] = v
        return out

    def ledger(where: str) -> np.ndarray:
        out = np.zeros(days)
        for day, n in con.execute("SELECT day, count(*) FROM ledger WHERE kind = 'list' "
                                  f"AND entity = 'person' AND delta < 0 AND {where} "
                                  "GROUP BY day").fetchall():
            if 0 <= day < days:
                out[day] = n
        return out

    people_listed, firms_listed = ts("new_listings"), ts("new_firm_listings")
    alive = ts("people_alive")
    counts = {
        "listed": people_listed + firms_listed, "listed_people": people_listed,
        "listed_firms": firms_listed,
        # Every ended listing writes one person row (a firm's: its representative's).
        "delisted": ledger("TRUE"),
        "complied": ledger("cause IN ('delisting_payment', 'delisting_settlement')"),
        "payments": ts("payments"), "flights": ts("gate_flights"),
        "rail": ts("gate_high_speed_rail"),
    }
    return Daily(counts, alive if alive is not None else np.full(days, float(people)))


def window_start(p: Published, window: str) -> int:
    """The first day of the window that ends on the point's day."""
    if window == "cumulative":
        return 0
    if window == "year":
        return p.day - 364
    if window == "month":
        return (p.date.replace(day=1) - LIST_OPENED).days
    if window == "year_to_date":
        return (date(p.date.year, 1, 1) - LIST_OPENED).days
    raise ValueError(window)


def compare_point(p: Published, daily: Daily) -> Point:
    """The run's figure for one published point, scaled to 1.4 bn people, and whether it
    lies within the published range."""
    def point(run=None, log_ratio=None, within=None, note="") -> Point:
        return Point(p.date, p.metric, p.value, p.bound, p.unit, run, log_ratio, within,
                     note, p.source)

    metric = METRICS.get(p.metric)
    if metric is None:
        return point(note="not measured: the model has no figure for this metric")
    if p.day >= daily.days:
        return point(note=f"after the run's end: needs --days {p.day + 1}")
    counts = daily.counts[metric.daily]
    if counts is None:
        return point(note=f"not measured: the run has no {metric.what.split()[1]} gate")
    lo = max(window_start(p, metric.window), 0)
    count = float(counts[lo:p.day + 1].sum())
    alive = float(daily.alive[p.day])
    run = count * POPULATION / alive
    log_ratio = math.log(run / p.value) if run > 0 else -math.inf
    expected = p.value * alive / POPULATION
    if expected < MIN_EVENTS:
        need = math.ceil(MIN_EVENTS * POPULATION / p.value)
        return point(run, log_ratio, None, f"not judged: {expected:.1f} events expected in "
                     f"a run of {alive:,.0f} people; needs at least {need:,} people")
    return point(run, log_ratio, within_range(log_ratio, p.bound))


def within_range(log_ratio: float, bound: str) -> bool:
    """Within a factor of RANGE_FACTOR either way; for a lower bound, at least the figure /
    RANGE_FACTOR."""
    tol = math.log(RANGE_FACTOR) + 1e-12
    return log_ratio >= -tol if bound == "lower" else abs(log_ratio) <= tol


def compare_series(daily: Daily, series: list[Published] | None = None) -> list[Point]:
    return [compare_point(p, daily) for p in (series if series is not None else load_series())]


def by_year(points: list[Point]) -> list[Year]:
    """The points grouped by calendar year, each year's distance and count within range."""
    years = []
    for y in sorted({p.year for p in points}):
        mine = [p for p in points if p.year == y]
        judged = [abs(p.log_ratio) for p in mine if p.within is not None]
        years.append(Year(y, len(mine), len(judged),
                          sum(1 for p in mine if p.within),
                          sum(judged) / len(judged) if judged else None,
                          max(judged) if judged else None))
    return years


def calibrate_series(run_dir: Path) -> list[Point]:
    """The published series against the run folder `run_dir`."""
    return compare_series(daily_counts(run_dir))


def reaches_series(days: int, series: list[Published] | None = None) -> bool:
    """Whether a run of `days` days reaches any dated point of the series."""
    return any(p.day < days for p in (series if series is not None else load_series()))
