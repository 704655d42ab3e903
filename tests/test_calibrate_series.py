"""Calibration over time: the published series as shipped, the point-by-point comparison on
made-up daily counts, the schedule of filing and case ending, and the court-list-2013
preset within the published ranges."""

from __future__ import annotations

import csv
import math
import os
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from credsim.audit import series as ser
from credsim.errors import InputError
from credsim.results.query import connect
from credsim.scenario.load import load_scenario

# --------------------------------------------------------------- the series file


def test_the_series_loads_with_every_source():
    rows = ser.load_series()
    assert len(rows) == 28
    assert all(r.source and r.bound in ser.BOUNDS and r.value > 0 for r in rows)
    assert [r.date for r in rows] == sorted(r.date for r in rows)
    # every dated metric is one the comparison knows
    assert {r.metric for r in rows} <= set(ser.METRICS)


def test_the_series_matches_its_sources_figures():
    got = {(r.date.isoformat(), r.metric): r for r in ser.load_series()}

    def value(d: str, metric: str) -> float:
        return got[(d, metric)].value

    # SPC July 2025: 2.457 M new listings and 2.821 M restored in 2024
    assert value("2024-12-31", "new_listings_in_year") == 2_457_000
    assert value("2024-12-31", "restored_in_year") == 2_821_000
    # 2023 back-calculated from the 2024 changes (-23.4 %, +35.4 %), to the rounding
    assert value("2023-12-31", "new_listings_in_year") == pytest.approx(2.457e6 / (1 - 0.234),
                                                                         rel=0.005)
    assert value("2023-12-31", "restored_in_year") == pytest.approx(2.821e6 / 1.354, rel=0.005)
    assert got[("2023-12-31", "restored_in_year")].bound == "derived"
    # ecns.cn 2014-01-17: 46,500 individuals and 9,400 organisations (rounded in the text)
    assert value("2014-01-17", "listed_cumulative") == pytest.approx(46_500 + 9_400, rel=0.001)
    # SPC white paper: about 13 million listed by the end of 2018, ~0.9 % of 1.4 bn
    assert value("2018-12-31", "listed_cumulative") == 13e6
    assert pytest.approx(0.009, abs=0.0005) == 13e6 / ser.POPULATION
    # "more than" figures are lower bounds
    assert got[("2014-12-31", "listed_cumulative")].bound == "lower"
    assert got[("2019-07-31", "listed_cumulative")].bound == "lower"
    assert value("2019-03-31", "new_listings_in_month_people") == 171_823
    assert value("2019-03-31", "new_listings_in_month_orgs") == 53_128
    assert value("2018-12-31", "flights_blocked_in_year") == 17_460_000
    assert value("2018-12-31", "trains_blocked_in_year") == 5_470_000


def test_a_bad_series_file_is_refused_with_its_line(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("date,metric,value,bound,unit,note,source\n"
                 "2014-01-17,listed_cumulative,1,about,entities,,x\n")
    with pytest.raises(InputError, match="line 2: bound 'about'"):
        ser.load_series(p)


def test_the_calendar_starts_when_the_list_opened():
    p = ser.Published(date(2018, 12, 31), "listed_cumulative", 1.0, "approx", "", "", "")
    assert p.day == 1917  # the list's age at the end of 2018
    assert ser.Published(date(2024, 12, 31), "x", 1, "approx", "", "", "").day == 4109


# --------------------------------------------------------------- comparison by hand

DAYS = 1000  # 2013-10-01 .. 2016-06-26


def _daily(**counts) -> ser.Daily:
    """Made-up daily counts of a run of 140,000 people (1/10,000 of 1.4 bn)."""
    zero = np.zeros(DAYS)
    base = {k: zero.copy() for k in ("listed", "listed_people", "listed_firms", "delisted",
                                     "complied", "payments", "flights", "rail")}
    base.update(counts)
    return ser.Daily(base, np.full(DAYS, 140_000.0))


def _point(d: str, metric: str, value: float, bound: str = "approx") -> ser.Published:
    return ser.Published(date.fromisoformat(d), metric, value, bound, "entities", "", "src")


def test_windows_and_scaling_by_hand():
    listed = np.ones(DAYS)  # one case listed a day
    listed[:100] = 0.0  # none in the first 100 days
    people = listed.copy()
    people[::2] = 0.0
    d = _daily(listed=listed, listed_people=people, delisted=np.full(DAYS, 2.0))
    scale = 1.4e9 / 140_000  # each case in the run stands for 10,000
    # cumulative to 2014-12-31 (day 456): days 100..456 -> 357 cases
    p = ser.compare_point(_point("2014-12-31", "listed_cumulative", 3.57e6), d)
    assert p.run == pytest.approx(357 * scale) and p.log_ratio == pytest.approx(0.0)
    assert p.within is True and p.note == "" and p.source == "src"
    # a year up to 2015-12-31 (day 821): 365 cases
    p = ser.compare_point(_point("2015-12-31", "new_listings_in_year", 1e6), d)
    assert p.run == pytest.approx(365 * scale)
    assert p.log_ratio == pytest.approx(math.log(3.65)) and p.within is False
    # the calendar month of 2015-03-31: days 516..546, the odd ones hold a person case
    p = ser.compare_point(_point("2015-03-31", "new_listings_in_month_people", 1.6e5), d)
    first, last = (date(2015, 3, 1) - ser.LIST_OPENED).days, (date(2015, 3, 31)
                                                               - ser.LIST_OPENED).days
    assert p.run == pytest.approx(people[first:last + 1].sum() * scale)
    # since 1 January: two restorations a day over 2016-01-01 .. 2016-03-31 (91 days)
    p = ser.compare_point(_point("2016-03-31", "restored_in_year_to_date", 1.82e6), d)
    assert p.run == pytest.approx(182 * scale) and p.within is True


def test_the_people_alive_scale_each_day():
    d = _daily(listed=np.ones(DAYS))
    d.alive[:] = 70_000.0  # half the people: each case stands for twice as many
    p = ser.compare_point(_point("2014-12-31", "listed_cumulative", 9.14e6), d)
    assert p.run == pytest.approx(457 * 1.4e9 / 70_000)


def test_range_lower_bounds_and_too_few_events():
    d = _daily(listed=np.full(DAYS, 10.0))
    run = 4570 * 1e4  # cumulative to 2014-12-31
    within = [ser.compare_point(_point("2014-12-31", "listed_cumulative", run * f), d).within
              for f in (0.49, 0.51, 1.0, 1.99, 2.01)]
    assert within == [False, True, True, True, False]
    # a lower bound ("more than"): at least figure / 2, no ceiling
    lower = [ser.compare_point(_point("2014-12-31", "listed_cumulative", run * f, "lower"),
                               d).within for f in (0.01, 1.0, 1.99, 2.01)]
    assert lower == [True, True, True, False]
    # 9 expected events in the run: not judged, and the note says how many people it needs
    p = ser.compare_point(_point("2014-12-31", "listed_cumulative", 9e4), d)
    assert p.within is None and p.log_ratio is not None
    assert "9.0 events expected" in p.note and "155,556 people" in p.note
    # none in the run: -inf, out of range
    p = ser.compare_point(_point("2014-12-31", "listed_cumulative", 1e6), _daily())
    assert p.log_ratio == -math.inf and p.within is False


def test_points_the_run_cannot_give():
    d = _daily(flights=None)
    p = ser.compare_point(_point("2014-12-31", "flights_blocked_cumulative", 1e6), d)
    assert p.run is None and p.within is None and "no flights gate" in p.note
    p = ser.compare_point(_point("2019-12-31", "listed_cumulative", 1e6), d)
    assert p.run is None and "after the run's end: needs --days 2283" in p.note
    p = ser.compare_point(_point("2014-12-31", "unknown_metric", 1e6), d)
    assert p.run is None and "no figure for this metric" in p.note


def test_distance_per_year():
    d = _daily(listed=np.full(DAYS, 10.0))
    pts = ser.compare_series(d, [
        _point("2014-06-30", "listed_cumulative", 2.73e7 * 1.5),  # run: 273 days x 10 x 1e4
        _point("2014-12-31", "listed_cumulative", 4.57e7 / 3),
        _point("2015-12-31", "new_listings_in_year", 3.65e7),
        _point("2019-12-31", "new_listings_in_year", 3.65e7)])
    years = {y.year: y for y in ser.by_year(pts)}
    assert years[2014].judged == 2 and years[2014].within == 1
    assert years[2014].mean_abs_log_ratio == pytest.approx((math.log(1.5) + math.log(3)) / 2)
    assert years[2014].max_abs_log_ratio == pytest.approx(math.log(3))
    assert years[2015].mean_abs_log_ratio == pytest.approx(0.0)
    assert years[2019].judged == 0 and years[2019].mean_abs_log_ratio is None


# --------------------------------------------------------------- from a run

BUSY_COURT = ("behaviours.judgment_default.rate=2e-3",
              "behaviours.firm_judgment_default.rate=3e-3",
              "court_list.grace_days=10", "court_list.term_days=40")


def test_within_range_is_none_when_no_point_is_judged():
    """A run too small for any point is not reported as within range (a vacuous True)."""
    from credsim.api import Calibration

    d = _daily(listed=np.full(DAYS, 10.0))  # 4,570 cases to 2014-12-31
    inside, outside, unjudged = (ser.compare_point(_point("2014-12-31", "listed_cumulative",
                                                          v), d) for v in (4.57e7, 1e9, 9e4))
    assert (inside.within, outside.within, unjudged.within) == (True, False, None)
    for points, expected in (([inside, unjudged], True), ([inside, outside], False),
                             ([unjudged], None), ([], None)):
        assert Calibration([], points, Path(".")).within_range is expected


def test_daily_counts_read_from_a_run(simulate, tmp_path):
    run = simulate(tmp_path / "cb", "court-blacklist", BUSY_COURT, people=3000, days=150).path
    d = ser.daily_counts(run)
    con = connect(run)
    try:
        (people, firms, pay, flights) = con.execute(
            "SELECT sum(new_listings), sum(new_firm_listings), sum(payments), "
            "sum(gate_flights) FROM timeseries").fetchone()
        (delisted,) = con.execute("SELECT count(*) FROM ledger WHERE kind = 'list' AND "
                                  "entity = 'person' AND delta < 0").fetchone()
    finally:
        con.close()
    assert people > 20 and firms > 5 and delisted > 5
    assert d.counts["listed"].sum() == people + firms
    assert d.counts["listed_people"].sum() == people
    assert d.counts["delisted"].sum() == delisted
    assert d.counts["payments"].sum() == pay and d.counts["flights"].sum() == flights
    assert (d.alive == 3000).all()  # no demography: the people at the start


def test_cli_and_python_give_the_series(simulate, tmp_path, cli):
    import credsim

    run = simulate(tmp_path / "cb", "court-blacklist", BUSY_COURT, people=2000, days=120).path
    r = cli("calibrate", str(run), "--by-year", "--format", "csv")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(r.stdout.splitlines()))
    assert [x["metric"] for x in rows] == [p.metric for p in ser.load_series()]
    assert set(rows[0]) == {"date", "year", "metric", "bound", "published", "run", "unit",
                            "log_ratio", "within", "note", "source"}
    # 120 days reach 2014-01-17 (day 108) only
    assert rows[0]["run"] != "" and all(x["run"] == "" for x in rows[1:])
    table = cli("calibrate", str(run))
    assert table.returncode == 0 and "distance per year" in table.stdout
    assert "new_listings_2024" in table.stdout and "1.4 billion" in table.stdout
    c = credsim.open(run).calibrate()
    assert c.table().num_rows == len(rows) and len(c.targets) == 10
    assert c.years[0].year == 2014 and c.table().column("metric").to_pylist()[0] == (
        "listed_cumulative")


def test_a_short_run_prints_no_series(simulate, tmp_path, cli):
    run = simulate(tmp_path / "cb", "court-blacklist", (), people=1000, days=30).path
    r = cli("calibrate", str(run))
    assert r.returncode == 0 and "distance per year" not in r.stdout


# --------------------------------------------------------------- the schedule


def _listed_from_day_60(sim_run) -> int:
    con = connect(sim_run.path)
    try:
        return con.execute("SELECT sum(new_listings + new_firm_listings) FROM timeseries "
                           "WHERE day >= 60").fetchone()[0]
    finally:
        con.close()


def test_filing_and_end_factor_by_period(simulate, tmp_path):
    sched = ("court_list.schedule=[{from_day = 0, filing = 1.0}, "
             "{from_day = 50, filing = 0.0}]")
    base = simulate(tmp_path / "a", "court-blacklist", BUSY_COURT, people=3000, days=120)
    off = simulate(tmp_path / "b", "court-blacklist", (*BUSY_COURT, sched), people=3000,
                   days=120)
    assert _listed_from_day_60(base) > 20
    # no case opened from day 50, and so none listed once the grace (10 days) has passed
    assert _listed_from_day_60(off) == 0
    # before the change the two runs are the same
    con_a, con_b = connect(base.path), connect(off.path)
    try:
        q = "SELECT new_listings, payments FROM timeseries WHERE day < 50 ORDER BY day"
        assert con_a.execute(q).fetchall() == con_b.execute(q).fetchall()
    finally:
        con_a.close()
        con_b.close()
    fast = simulate(tmp_path / "c", "court-blacklist",
                    (*BUSY_COURT, "court_list.schedule=[{from_day = 0, end_factor = 20.0}]"),
                    people=3000, days=120)
    assert fast.sim.get("court_list").end_factor == 20.0
    pay = [connect(r.path).execute("SELECT sum(payments) FROM timeseries").fetchone()[0]
           for r in (base, fast)]
    assert pay[1] > 3 * pay[0]


def test_the_schedule_must_increase():
    with pytest.raises(InputError, match="from_day must increase"):
        load_scenario("court-blacklist", ["court_list.schedule=[{from_day = 5}, "
                                          "{from_day = 5}]"])


# --------------------------------------------------------------- demography


def test_real_deaths_replace_the_lists_own_death_hazard(simulate, tmp_path):
    """With demography, a case ends by death only when its debtor died: every
    delisting_death is of a person no longer alive."""
    over = (*BUSY_COURT, "demography.enabled=true", "court_list.death_hazard=0.01")
    run = simulate(tmp_path / "d", "court-blacklist", over, people=3000, days=200)
    assert run.sim.get("court_list").death_hazard == 0.0
    con = connect(run.path)
    try:
        living = con.execute(
            "SELECT count(*) FROM ledger l JOIN people p ON p.id = l.id WHERE l.kind = 'list' "
            "AND l.entity = 'person' AND l.cause = 'delisting_death' AND p.alive").fetchone()[0]
    finally:
        con.close()
    assert living == 0
    without = simulate(tmp_path / "e", "court-blacklist",
                       (*BUSY_COURT, "court_list.death_hazard=0.01"), people=3000, days=200)
    assert without.sim.get("court_list").death_hazard == 0.01


# --------------------------------------------------------------- the preset


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("CREDSIM_SLOW"), reason="set CREDSIM_SLOW=1")
def test_court_list_2013_lands_within_the_published_ranges(tmp_path):
    """The preset at its defaults (200,000 people, 4,110 days, seed 1): every judged point
    of the series within its range, and at least 20 points judged."""
    import credsim

    c = credsim.run("court-list-2013", out=tmp_path / "run").calibrate()
    judged = [p for p in c.points if p.within is not None]
    assert len(judged) >= 20
    assert [(p.date, p.metric, p.log_ratio) for p in judged if not p.within] == []
