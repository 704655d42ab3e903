"""Calibration: a run's court-list figures against the published national aggregates of
the court list (each target's source text below; docs/presets.md, "Calibration").

Only aggregate figures enter here, never records about persons. Each target
below carries the published text it comes from, how that text is turned into
a per-capita figure, and which figure of the run it is compared with.

Denominators (stated once, used for every target):

- population of China: 1.4 billion (1.395 billion at the end of 2018,
  1.408 billion at the end of 2024; one round figure for both years);
- listed people in 2018: 13 million, the size of the list reported for the
  end of 2018 (reported as the list's size then). Travel bans per listed person are divided by
  it; it is a count at the end of the year, so the mean stock during 2018
  was probably smaller and the published rate per listed person, if
  anything, an underestimate;
- the list's age: it opened in October 2013, so the end of 2018 is about
  1,917 days (5.25 years) later, and 2018 was its fifth full year.

A run starts with an empty list. Its flows (new listings a year, travel
bans per listed person) compare with the published flows in a run of any
length. Its stock and what depends on the stock (people listed so far,
travel bans and restorations per capita) do not: after one simulated year
the list holds at most one year's listings, while the published stock had
built up over five years. Such targets are compared only in runs long
enough (`min_days`, and for the cumulative count also `max_days`); for
shorter runs their figures are printed with the flag `n/a`, the reason and the
`--days` a run needs.

Distance: the natural log of run / published (0 = equal; ±0.69 = a factor
of 2). A target is within range when the run's figure lies within a factor
of `RANGE_FACTOR` (2) of the published one, either way. The published
figures are rounded national totals, partly ambiguous (whether a count
includes organisations, whether 13 million is the active or the cumulative
list), and their denominators are approximate; a factor of 2 absorbs that
and still catches an error of an order of magnitude.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from credsim.errors import InputError
from credsim.labels import PER_LISTED_YEAR, PER_M_PEOPLE, PER_M_YEAR, target_label
from credsim.results.query import connect, ident
from credsim.results.run_dir import open_run, reading

POPULATION = 1.4e9  # China, people (1.395 bn end 2018, 1.408 bn end 2024)
LISTED_2018 = 13e6  # listed people, end 2018 (reported size): travel bans per listed person
LIST_AGE_END_2018 = 1917  # days from the list's opening (Oct 2013) to the end of 2018
FIFTH_YEAR = 1825  # a run this long has a fifth year, like the list in 2018
RANGE_FACTOR = 2.0  # within range: run / published in [1/2, 2]
PER_M = 1e6 / POPULATION  # published national count -> per million people


@dataclass(frozen=True)
class Target:
    key: str
    source: str  # the published text
    published: float  # per capita, in `unit` (credsim.labels declares each target's unit)
    unit: str
    derivation: str  # how `published` follows from the source
    run_figure: str  # what is taken from the run
    min_days: int = 0  # shorter runs are not comparable
    max_days: int | None = None  # longer runs are not comparable
    why_days: str = ""
    suggest_days: int | None = None  # the --days to propose (default: min_days)

    @property
    def label(self) -> str:
        return target_label(self.key).label

    def days_needed(self) -> str:
        """What run length the target needs, as a sentence with the option to ask for it."""
        span = (f"{self.min_days:,}-{self.max_days:,} days" if self.max_days
                else f"at least {self.min_days:,} days")
        return f"needs a run of {span}: --days {self.suggest_days or self.min_days}"


TARGETS: tuple[Target, ...] = (
    Target("new_listings_2024", "2024: 2.457 M new listings",
           2.457e6 * PER_M, PER_M_YEAR, "2.457 M / 1.4 bn",
           "person cases listed (timeseries new_listings), per year"),
    Target("new_people_2019", "March 2019 flows: 171 823 people added",
           171_823 * 12 * PER_M, PER_M_YEAR, "171,823 x 12 months / 1.4 bn",
           "person cases listed (timeseries new_listings), per year"),
    Target("new_organisations_2019", "March 2019 flows: 53 128 organisations added",
           53_128 * 12 * PER_M, PER_M_YEAR, "53,128 x 12 months / 1.4 bn",
           "firm cases listed (timeseries new_firm_listings), per year; depends on the "
           "scenario's firms per person"),
    Target("flights_per_listed_2018", "flight purchases blocked: 17.46 M in 2018",
           17.46e6 / LISTED_2018, PER_LISTED_YEAR, "17.46 M / 13 M listed",
           "applications of the gate flights / listed person-days x 365"),
    Target("rail_per_listed_2018", "high-speed rail purchases blocked: 5.47 M in 2018",
           5.47e6 / LISTED_2018, PER_LISTED_YEAR, "5.47 M / 13 M listed",
           "applications of the gate high_speed_rail / listed person-days x 365"),
    Target("listed_cumulative_2018",
           "court list, cumulative: ~13 million (end 2018, about 0.9 % of the population)",
           13e6 * 1e6 / POPULATION, PER_M_PEOPLE, "13 M / 1.4 bn",
           "people ever listed by the end of the run (people.ever_listed)",
           min_days=1700, max_days=2200, suggest_days=LIST_AGE_END_2018,
           why_days="built up over the list's first 5.25 years (1,917 days)"),
    Target("flights_per_capita_2018", "flight purchases blocked: 17.46 M in 2018",
           17.46e6 * PER_M, PER_M_YEAR, "17.46 M / 1.4 bn",
           "applications of the gate flights in the run's last 365 days",
           min_days=FIFTH_YEAR, why_days="depends on the stock of the list's fifth year"),
    Target("rail_per_capita_2018", "high-speed rail purchases blocked: 5.47 M in 2018",
           5.47e6 * PER_M, PER_M_YEAR, "5.47 M / 1.4 bn",
           "applications of the gate high_speed_rail in the run's last 365 days",
           min_days=FIFTH_YEAR, why_days="depends on the stock of the list's fifth year"),
    Target("restored_2024", "2024: 2.821 M restored",
           2.821e6 * PER_M, PER_M_YEAR, "2.821 M / 1.4 bn",
           "person cases delisted (any cause) in the run's last 365 days",
           min_days=FIFTH_YEAR, why_days="depends on a built-up stock (2024: the list's "
           "eleventh year)"),
    Target("fulfilled_2018", "3.51 M \"voluntarily fulfilled\" obligations in 2018",
           3.51e6 * PER_M, PER_M_YEAR, "3.51 M / 1.4 bn",
           "cases paid (timeseries payments: persons and firms, listed or still in grace) in "
           "the run's last 365 days",
           min_days=FIFTH_YEAR, why_days="depends on the open cases of the list's fifth year"),
)


@dataclass
class Row:
    key: str
    run: float | None  # the run's figure, in the target's unit (None: not measurable)
    published: float
    unit: str
    log_ratio: float | None  # ln(run / published); -inf when the run's figure is 0
    within: bool | None  # None: not comparable in this run (see note)
    note: str
    source: str


def _within(log_ratio: float | None) -> bool | None:
    if log_ratio is None:
        return None
    return abs(log_ratio) <= math.log(RANGE_FACTOR) + 1e-12


def figures(run_dir: Path) -> dict:
    """The run's raw counts that the targets need."""
    manifest = open_run(run_dir)
    scenario = manifest["scenario"]
    if not scenario.get("court_list", {}).get("enabled"):
        raise InputError(f"{run_dir}: the run has no court list (court_list.enabled = false); "
                         "calibration compares court-list figures")
    days, people = int(manifest["days"]), int(manifest["people"])
    with reading(run_dir):
        return _figures(run_dir, days, people)


def _figures(run_dir: Path, days: int, people: int) -> dict:
    con = connect(run_dir)
    try:
        cols = {r[0] for r in con.execute("DESCRIBE timeseries").fetchall()}
        last = max(days - 365, 0)

        def ts(col: str, since: int = 0) -> float | None:
            if col not in cols:
                return None
            return float(con.execute(f"SELECT coalesce(sum({ident(col)}), 0) FROM timeseries "
                                     "WHERE day >= ?", [since]).fetchone()[0])

        person_delist, firm_delist = con.execute(
            "SELECT count(*) FILTER (WHERE entity = 'person'), "
            "count(*) FILTER (WHERE entity = 'firm') FROM ledger "
            "WHERE kind = 'list' AND delta < 0 AND day >= ?", [last]).fetchone()
        (ever,) = con.execute("SELECT count(*) FILTER (WHERE ever_listed) FROM people"
                              ).fetchone()
        return {
            "days": days, "people": people, "last_days": days - last,
            "new_listings": ts("new_listings"), "new_firm_listings": ts("new_firm_listings"),
            "payments_last": ts("payments", last), "listed_person_days": ts("listed"),
            "flights": ts("gate_flights"), "rail": ts("gate_high_speed_rail"),
            "flights_last": ts("gate_flights", last), "rail_last": ts("gate_high_speed_rail", last),
            # each delisting of a firm case also writes one person row (its representative)
            "person_case_delistings_last": float(person_delist - firm_delist),
            "ever_listed": float(ever),
        }
    finally:
        con.close()


def run_value(key: str, f: dict) -> tuple[float | None, str]:
    """The run's figure for target `key` from the counts `f`, scaled per capita and per year
    (or per listed person-year); (None, why) when the run cannot give it."""
    per_m = 1e6 / f["people"]
    year = 365.0 / f["days"]
    last_year = 365.0 / f["last_days"]

    def gate(name: str, count: float | None) -> tuple[float | None, str]:
        if count is None:
            return None, f"the run has no gate named {name}"
        return count, ""

    if key in ("new_listings_2024", "new_people_2019"):
        return f["new_listings"] * year * per_m, ""
    if key == "new_organisations_2019":
        return f["new_firm_listings"] * year * per_m, ""
    if key in ("flights_per_listed_2018", "rail_per_listed_2018"):
        name = "flights" if key.startswith("flights") else "high_speed_rail"
        count, why = gate(name, f["flights" if name == "flights" else "rail"])
        if count is None:
            return None, why
        if not f["listed_person_days"]:
            return None, "nobody was listed in the run"
        return count / f["listed_person_days"] * 365.0, ""
    if key in ("flights_per_capita_2018", "rail_per_capita_2018"):
        name = "flights" if key.startswith("flights") else "high_speed_rail"
        count, why = gate(name, f["flights_last" if name == "flights" else "rail_last"])
        if count is None:
            return None, why
        return count * last_year * per_m, ""
    if key == "restored_2024":
        return f["person_case_delistings_last"] * last_year * per_m, ""
    if key == "fulfilled_2018":
        return f["payments_last"] * last_year * per_m, ""
    if key == "listed_cumulative_2018":
        return f["ever_listed"] * per_m, ""
    raise KeyError(key)


def compare(f: dict) -> list[Row]:
    """One row per target for the run counts `f` (see `figures`)."""
    rows = []
    for t in TARGETS:
        value, note = run_value(t.key, f)
        log_ratio = None
        if value is not None:
            log_ratio = math.log(value / t.published) if value > 0 else -math.inf
        within = _within(log_ratio)
        days = f["days"]
        if value is not None and (days < t.min_days or (t.max_days and days > t.max_days)):
            note = (f"not comparable: {t.days_needed()} ({t.why_days}); this run: "
                    f"{days:,} days")
            within = None
        rows.append(Row(t.key, value, t.published, t.unit, log_ratio, within, note, t.source))
    return rows


def calibrate(run_dir: Path) -> list[Row]:
    return compare(figures(run_dir))


def _num(v: float | None) -> str:
    if v is None:
        return "n/a"
    if v == 0 or abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:,.3g}"


def calibrate_command(run_dir: Path, console) -> list[Row]:
    """Print the calibration table of a run folder; return its rows."""
    from rich.markup import escape
    from rich.table import Table

    rows = calibrate(run_dir)
    manifest = open_run(run_dir)
    t = Table(title=f"calibration of {escape(str(run_dir))}: {manifest['people']:,} people, "
                    f"{manifest['days']:,} days, against the published national figures of "
                    "the court list")
    for c, j in (("target", "left"), ("what", "left"), ("run", "right"),
                 ("published", "right"), ("unit", "left"), ("ln(run/pub)", "right"),
                 ("within x2", "left")):
        t.add_column(c, justify=j)
    for r, tg in zip(rows, TARGETS, strict=True):
        lr = "n/a" if r.log_ratio is None else (
            "-inf" if math.isinf(r.log_ratio) else f"{r.log_ratio:+.2f}")
        flag = "n/a" if r.within is None else ("yes" if r.within else "NO")
        t.add_row(r.key, tg.label, _num(r.run), _num(r.published), r.unit, lr, flag)
    console.print(t)
    for r, tg in zip(rows, TARGETS, strict=True):
        line = f"{r.key}: {tg.source} ({tg.derivation}); run: {tg.run_figure}"
        if r.note:
            line += f". {r.note}"
        console.print(escape(line), highlight=False, soft_wrap=True)
    console.print(f"Per capita: population of China {POPULATION / 1e9:g} billion; per listed "
                  f"person: {LISTED_2018 / 1e6:g} million listed (end 2018). Within range: "
                  f"within a factor of {RANGE_FACTOR:g} either way.", highlight=False,
                  soft_wrap=True)
    console.print(comparable_line(rows, int(manifest["days"])), highlight=False,
                  soft_wrap=True)
    return rows


def comparable_line(rows: list[Row], days: int) -> str:
    """How many targets a run of `days` days could be compared with, and how many of
    those are within range."""
    judged = [r for r in rows if r.within is not None]
    inside = sum(1 for r in judged if r.within)
    longer = sum(1 for r in rows if r.run is not None and r.within is None)
    unmeasured = sum(1 for r in rows if r.run is None)
    line = (f"{len(judged)} of {len(rows)} targets could be compared at this length "
            f"({days:,} days), {inside} of them within range")
    if longer:
        line += f"; {longer} need a run of another length (see above)"
    if unmeasured:
        line += f"; {unmeasured} cannot be measured in this run"
    return line + "."
