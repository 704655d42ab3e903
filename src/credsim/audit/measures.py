"""The harm audit's measures (MODEL.md section 7), computed from one run folder.

Each measure is a number with a name, an optional key (a group, a gate, a
grade, a domain ...) and a unit; docs/measures.md defines every one. The
functions read the run's Parquet tables with DuckDB, so no table is loaded
whole. Per-run rates are per year (scaled by 365 / days) so that runs of
different lengths compare.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from credsim.errors import InputError
from credsim.results.query import connect, ident
from credsim.results.run_dir import open_run, reading
from credsim.scenario.model import GRADES, Scenario

FOUR_FIFTHS = 0.8
CRITIC_QUANTILE = 0.9  # critics: the most vocal tenth of adults, as for insiders' targets
BENEFIT_DOMAINS = ("court", "finance", "traffic")  # the claimed benefits of MODEL.md §7


@dataclass
class Measure:
    measure: str  # identifier, defined in docs/measures.md
    key: str  # '' or what the value is for: 'group=1', 'gate=flights', 'grade=C', ...
    value: float | None  # None: not defined for this run (e.g. no sanctions at all)
    unit: str


SCHEMA = pa.schema([("measure", pa.string()), ("key", pa.string()),
                    ("value", pa.float64()), ("unit", pa.string())])


def to_table(measures: list[Measure]) -> pa.Table:
    return pa.Table.from_pylist([asdict(m) for m in measures], schema=SCHEMA)


def write_measures(measures: list[Measure], run: Path) -> Path:
    """Write measures.parquet into the run folder, under a temporary name first, so an
    earlier file is replaced only by a complete one."""
    import pyarrow.parquet as pq

    path = run / "measures.parquet"
    tmp = run / ".measures.parquet.tmp"
    try:
        pq.write_table(to_table(measures), tmp)
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"{path}: cannot write the measures ({exc.strerror})") from None
    return path


def compute(run: Path, baseline: Path | None = None, bound_days: float = 30.0) -> list[Measure]:
    """Every measure of the run folder `run`; `baseline`, the same society run without
    the system (same people, days and seed), adds the measures relative to it."""
    manifest = open_run(run)
    s = Scenario.model_validate(manifest["scenario"])  # open_run checked it
    with reading(run):
        return _compute(run, manifest, s, baseline, bound_days)


def _compute(run: Path, manifest: dict, s: Scenario, baseline: Path | None,
             bound_days: float) -> list[Measure]:
    con = connect(run)
    try:
        a = _Audit(con, run, manifest, s, bound_days)
        a.distributions()
        a.sanctions()
        a.wrongful_and_disparity()
        a.spirals()
        a.stratification()
        a.chilling()
        a.manipulation()
        a.cross_context()
        a.benefits()
        if baseline is not None:
            bm = open_run(baseline)
            key = ("people", "days")
            if any(bm[k] != manifest[k] for k in key) or (
                    bm["scenario"]["run"]["seed"] != s.run.seed):
                raise InputError(f"{baseline}: the baseline must have the same people, days "
                                 f"and seed as {run}")
            with reading(baseline):
                bcon = connect(baseline)
                try:
                    a.against_baseline(bcon)
                finally:
                    bcon.close()
        return a.out
    finally:
        con.close()


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def gini(x: np.ndarray) -> float | None:
    """Gini coefficient of non-negative values (shifted to start at 0 if any is negative,
    since scores and savings can be negative)."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    if len(x) == 0:
        return None
    if x[0] < 0:
        x = x - x[0]
    total = x.sum()
    if total <= 0:
        return 0.0
    n = len(x)
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * total))


class _Audit:
    def __init__(self, con, run: Path, manifest: dict, s: Scenario, bound_days: float):
        self.con, self.m, self.s, self.bound_days = con, manifest, s, bound_days
        self.run = run
        self.n, self.days = manifest["people"], manifest["days"]
        self.adults = manifest["adults"]
        self.year = 365.0 / self.days
        self.ts_cols = {r[0] for r in con.execute("DESCRIBE timeseries").fetchall()}
        self.people_cols = {r[0] for r in con.execute("DESCRIBE people").fetchall()}
        (counted,) = con.execute("SELECT count(*) FROM people WHERE age_band != 'child'"
                                 ).fetchone()
        if counted != self.adults:
            raise InputError(f"{run / 'manifest.json'}: adults is {self.adults:,} but "
                             f"people.parquet has {counted:,} adults")
        self.out: list[Measure] = []

    def add(self, measure: str, value, unit: str, key: str = "") -> None:
        v = None if value is None or (isinstance(value, float) and math.isnan(value)) else (
            float(value))
        self.out.append(Measure(measure, key, v, unit))

    def q(self, sql: str, params: list | None = None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    def ts_column(self, col: str) -> str:
        """`col` quoted for SQL, once it is known to be a column of the time series (its
        name may come from the scenario: a gate's or a band's)."""
        if col not in self.ts_cols:
            raise InputError(f"{self.run / 'timeseries.parquet'}: no column {col!r}, which "
                             "this run's scenario needs")
        return ident(col)

    def ts_sum(self, col: str) -> float:
        return float(self.q(f"SELECT coalesce(sum({self.ts_column(col)}), 0) "
                            "FROM timeseries")[0][0])

    def ts_last(self, col: str) -> float:
        return float(self.q(f"SELECT {self.ts_column(col)} FROM timeseries "
                            "ORDER BY day DESC LIMIT 1")[0][0])

    # Distributions -------------------------------------------------------------
    def distributions(self) -> None:
        s = self.s
        if s.points.enabled:
            for g in GRADES:
                self.add("grade_share", _ratio(self.ts_last(f"grade_{g}"), self.adults),
                         "share", f"grade={g}")
            mean, sd = self.q("SELECT avg(score), stddev_pop(score) FROM people "
                              "WHERE age_band != 'child'")[0]
            self.add("score_mean", mean, "points")
            self.add("score_sd", sd, "points")
        if s.composite.enabled:
            n_in = self.ts_last("composite_participants")
            self.add("composite_participation", _ratio(n_in, self.adults), "share")
            for name in s.composite.bands:
                self.add("band_share", _ratio(self.ts_last(f"band_{name}"), n_in), "share",
                         f"band={name}")
            mean, sd = self.q("SELECT avg(composite), stddev_pop(composite) FROM people "
                              "WHERE composite >= 0")[0]
            self.add("composite_mean", mean, "points")
            self.add("composite_sd", sd, "points")
        if s.rating.enabled:
            mean, sd = self.q("SELECT avg(rating), stddev_pop(rating) FROM people "
                              "WHERE age_band != 'child'")[0]
            self.add("rating_mean", mean, "stars")
            self.add("rating_sd", sd, "stars")

    # Listings and sanctions -------------------------------------------------------
    def sanctions(self) -> None:
        s = self.s
        per_m = 1e6 / self.n
        if s.court_list.enabled:
            self.add("listed_per_million", self.ts_sum("listed") / self.days * per_m,
                     "per million people (mean stock)")
            self.add("new_listings_per_million",
                     self.ts_sum("new_listings") * self.year * per_m,
                     "per million people per year")
        if s.firm_lists.enabled:
            self.add("firms_blacklisted", self.ts_sum("firms_blacklisted") / self.days,
                     "firms (mean stock)")
        for name, g in s.gates.items():
            what = "perks_per_million" if g.effect == "perk" else "sanctions_per_million"
            self.add(what, self.ts_sum(f"gate_{name}") * self.year * per_m,
                     "per million people per year", f"gate={name}")
        sanctioned = self.ts_sum("sanctioned")
        self.add("sanctioned_person_days_per_million", sanctioned / (self.n * self.days) * 1e6,
                 "per million person-days")

    # Wrongful sanctions and disparate impact ------------------------------------
    def wrongful_and_disparity(self) -> None:
        sanctioned, wrongful = self.ts_sum("sanctioned"), self.ts_sum("sanctioned_wrongful")
        self.add("wrongful_share", _ratio(wrongful, sanctioned), "share of sanctioned person-days")
        adults = dict(self.q('SELECT "group", count(*) FROM people WHERE age_band != \'child\' '
                             'GROUP BY 1'))
        rates: dict[int, float] = {}
        for g in sorted(adults):
            col = f"sanctioned_group{g}"
            if col not in self.ts_cols:
                continue
            sg, wg = self.ts_sum(col), self.ts_sum(f"sanctioned_wrongful_group{g}")
            self.add("wrongful_share", _ratio(wg, sg), "share of sanctioned person-days",
                     f"group={g}")
            rates[g] = sg / (adults[g] * self.days)
            self.add("sanction_rate", rates[g], "sanctioned share of adult person-days",
                     f"group={g}")
        self._disparate("sanction", rates)
        if self.s.court_list.enabled:
            rows = dict(self.q(
                'SELECT p."group", count(*) FROM ledger l JOIN people p ON p.id = l.id '
                "WHERE l.entity = 'person' AND l.kind = 'list' AND l.delta > 0 "
                "AND l.value = 1 GROUP BY 1"))
            lrates = {g: rows.get(g, 0) * self.year / adults[g] for g in sorted(adults)}
            for g, r in lrates.items():
                self.add("listing_rate", r, "entries onto the list per adult per year",
                         f"group={g}")
            self._disparate("listing", lrates)

    def _disparate(self, what: str, rates: dict[int, float]) -> None:
        """Ratio of the least-burdened group's rate to each group's: below 0.8 flags
        adverse impact (the four-fifths rule, read for an adverse outcome). With no one
        burdened in any group there is no disparity to measure: the ratios are undefined."""
        if not rates:
            return
        best = min(rates.values())
        nobody = max(rates.values()) == 0
        for g, r in rates.items():
            ratio = None if nobody else (best / r if r > 0 else 1.0)
            self.add(f"{what}_impact_ratio", ratio, "ratio to the least-burdened group",
                     f"group={g}")
            self.add(f"{what}_four_fifths_flag",
                     None if ratio is None else float(ratio < FOUR_FIFTHS), "1 = flagged",
                     f"group={g}")

    # Negative spirals ----------------------------------------------------------
    def spirals(self) -> None:
        s = self.s
        if not s.points.enabled:
            return
        floors = [s.points.grade_floors[g] for g in GRADES[:-1]]
        g0 = next((i for i, f in enumerate(floors) if s.points.initial >= f), len(floors))
        finals = dict(self.q("SELECT grade, count(*) FROM people WHERE age_band != 'child' "
                             "GROUP BY 1"))
        for g in GRADES:  # everyone starts at the initial grade
            self.add("grade_transition", _ratio(finals.get(g, 0), self.adults),
                     f"share of adults starting at {GRADES[g0]}", f"{GRADES[g0]}->{g}")
        c_index = GRADES.index("C")
        if g0 < c_index:
            fallen = self.q("SELECT count(DISTINCT id) FROM ledger WHERE entity = 'person' "
                            "AND kind = 'grade' AND value >= ? AND day < 365", [c_index])[0][0]
            self.add("fall_to_c_within_year", _ratio(fallen, self.adults),
                     f"share of adults starting at {GRADES[g0]}")
        self._recovery()

    def _recovery(self) -> None:
        """Days until a person's score is back where it stood before a deduction resting on
        a false record or an insider edit (censored at the end of the run)."""
        rows = self.q(
            "WITH s AS (SELECT id, day, delta, value, record, row_number() OVER () AS r "
            "FROM ledger WHERE entity = 'person' AND kind = 'score'), "
            "marks AS (SELECT id, day, r, value - delta AS before FROM s "
            "WHERE delta < 0 AND record IN ('false', 'insider')) "
            "SELECT m.id, m.day, min(s.day) FROM marks m LEFT JOIN s ON s.id = m.id "
            "AND s.r > m.r AND s.value >= m.before GROUP BY m.id, m.day, m.r")
        if not rows:
            self.add("wrongful_marks", 0, "deductions")
            return
        waits = np.array([(d2 - d) if d2 is not None else np.nan for _, d, d2 in rows])
        done = ~np.isnan(waits)
        self.add("wrongful_marks", len(rows), "deductions")
        self.add("recovered_share", done.mean(), "share of wrongful deductions")
        self.add("recovery_days_median", float(np.median(waits[done])) if done.any() else None,
                 "days (recovered marks only)")

    # Stratification ------------------------------------------------------------
    def stratification(self) -> None:
        s = self.s
        adult = "age_band != 'child'"
        if s.points.enabled:
            self.add("gini_score", gini(self._col("score", adult)), "Gini")
        if s.composite.enabled:
            self.add("gini_composite", gini(self._col("composite", "composite >= 0")), "Gini")
        self.add("gini_savings", gini(self._col("savings", adult)), "Gini")
        # Children's schooling by their first parent's standing at the end.
        standing = ("coalesce(p.grade, 'none')" if "grade" in self.people_cols
                    else "CASE WHEN p.listings > 0 THEN 'listed' ELSE 'not listed' END"
                    if "listings" in self.people_cols else "'all'")
        rows = self.q(
            f"SELECT {standing} AS st, count(*) FILTER (WHERE c.school IN "
            "('private', 'lost_private_place')), count(*) FILTER (WHERE c.school = "
            "'lost_private_place') FROM people c JOIN people p ON p.id = c.parent1 "
            "WHERE c.age_band = 'child' GROUP BY 1 ORDER BY 1")
        for st, private, lost in rows:
            self.add("private_school_lost_share", _ratio(lost, private),
                     "share of children who held a private place", f"parent={st}")

    def _col(self, col: str, where: str) -> np.ndarray:
        """A people column (a fixed name, as is the fixed condition `where`)."""
        return self.con.execute(f"SELECT {ident(col)} AS v FROM people WHERE {where}"
                                ).fetchnumpy()["v"]

    # Chilling -------------------------------------------------------------------
    def chilling(self) -> None:
        pd = self.n * self.days
        self.add("voice_per_1000_person_days", self.ts_sum("voice_events") / pd * 1e3,
                 "events per 1000 person-days")
        self.add("ties_dropped_per_1000", self.ts_sum("ties_dropped") / self.n * 1e3,
                 "per 1000 people per run")
        if "contacts" in self.people_cols:
            (cut,) = self.q("SELECT quantile_cont(voice, ?) FROM people WHERE age_band != "
                            "'child'", [CRITIC_QUANTILE])[0]
            iso, critics = self.q("SELECT count(*) FILTER (WHERE contacts = 0), count(*) "
                                  "FROM people WHERE age_band != 'child' AND voice >= ?",
                                  [cut])[0]
            self.add("isolated_critics_share", _ratio(iso, critics),
                     "share of critics with no tie outside the family")
        for system, v in (self.m.get("score_assortativity") or {}).items():
            self.add("score_assortativity", v, "correlation across ties", f"system={system}")

    # Manipulation ---------------------------------------------------------------
    def manipulation(self) -> None:
        if self.s.threats.insiders_per_million <= 0:
            return
        # A small population may round its insiders to none: the run then writes no
        # insider columns, and there were no edits to catch.
        active = "insider_edits" in self.ts_cols
        edits = self.ts_sum("insider_edits") if active else 0.0
        self.add("insider_edits", edits * self.year, "per year")
        self.add("audit_catch_share",
                 _ratio(self.ts_sum("audit_catches"), edits) if active else None,
                 "share of edits")
        (reach,) = self.q("SELECT avg(t) FROM (SELECT id, sum(delta) AS t FROM ledger "
                          "WHERE entity = 'person' AND kind = 'score' AND record = 'insider' "
                          "GROUP BY id)")[0]
        self.add("insider_reach_points", reach, "net points per targeted person")

    # Cross-context detriment and proportionality (EU AI Act Art. 5(1)(c)) -------
    def cross_context(self) -> None:
        total, outside, heavy = self.q(
            "SELECT count(*), count(*) FILTER (WHERE gate_domain != trigger_domain), "
            "count(*) FILTER (WHERE gate IN (SELECT unnest(?::VARCHAR[]))) "
            "FROM sanctions WHERE effect = 'sanction'",
            [[n for n, g in self.s.gates.items() if g.loss_days > self.bound_days]])[0]
        self.add("cross_context_share", _ratio(outside, total),
                 "share of sanction applications outside the triggering domain")
        self.add("disproportionate_share", _ratio(heavy, total),
                 f"share of sanction applications costing over {self.bound_days:g} days "
                 "of income")

    # Claimed benefits -------------------------------------------------------------
    def benefits(self) -> None:
        pd = self.adults * self.days
        for d in BENEFIT_DOMAINS:
            col = f"events_{d}"
            if col in self.ts_cols:
                self.add("true_event_rate", _ratio(self.ts_sum(col) * 1e3, pd),
                         "true events per 1000 adult person-days", f"domain={d}")

    def against_baseline(self, bcon) -> None:
        bcols = {r[0] for r in bcon.execute("DESCRIBE timeseries").fetchall()}

        def bsum(col: str) -> float:  # col: a fixed name found in both time series
            return float(bcon.execute(f"SELECT coalesce(sum({ident(col)}), 0) FROM timeseries")
                         .fetchall()[0][0])

        self.add("voice_vs_baseline", _ratio(self.ts_sum("voice_events"), bsum("voice_events")),
                 "ratio to the same society without the system")
        for d in BENEFIT_DOMAINS:
            col = f"events_{d}"
            if col in self.ts_cols and col in bcols:
                self.add("true_events_vs_baseline", _ratio(self.ts_sum(col), bsum(col)),
                         "ratio to the same society without the system", f"domain={d}")
