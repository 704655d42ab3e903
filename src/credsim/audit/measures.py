"""The harm audit's measures, computed from one run folder.

Each measure is a number with a name, an optional key (a group, a gate, a
grade, a domain ...), a unit and a label in plain words, both from
`credsim.labels`; docs/measures.md defines every one. The functions read the
run's Parquet tables with DuckDB, so no table is loaded whole. Flows are per
year (scaled by 365 / days) so that runs of different lengths compare.

The measures of one system (grade shares, composite bands, ratings, grade
flows, recovery, ...) are its own: each module computes them in its `audit`
hook (src/credsim/systems/<name>/audit.py), for the part of the audit where
they go. The harm measures that cross systems are computed here.
"""

from __future__ import annotations

import contextlib
import functools
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from credsim.errors import InputError
from credsim.generations.inequality import gini
from credsim.labels import measure_label
from credsim.modules.plan import module_classes, module_instances
from credsim.results.query import connect, ident
from credsim.results.run_dir import open_run, reading
from credsim.scenario.model import Scenario

FOUR_FIFTHS = 0.8
CRITIC_QUANTILE = 0.9  # critics: the most vocal tenth of adults, as for insiders' targets
BENEFIT_DOMAINS = ("court", "finance", "traffic")  # where the claimed benefits are sought
Z95 = 1.959963984540054  # two-sided 95 % normal quantile
# The four-fifths verdicts of `*_four_fifths` (docs/measures.md).
NOT_FLAGGED, INCONCLUSIVE, FLAGGED = 0.0, 1.0, 2.0


@dataclass
class Measure:
    measure: str  # identifier, defined in docs/measures.md
    key: str  # '' or what the value is for: 'group=1', 'gate=flights', 'grade=C', ...
    value: float | None  # None: not defined for this run (e.g. no sanctions at all)
    unit: str
    label: str = ""  # plain words; filled from credsim.labels when left empty

    def __post_init__(self) -> None:
        if not self.label and self.measure:
            # A measure this version does not know (read from a file) keeps no label.
            with contextlib.suppress(KeyError):
                self.label = measure_label(self.measure, self.key).label


# The columns every measures file has, and that its readers require: files written before
# measures had labels lack `label` (a reader fills it from credsim.labels).
SCHEMA = pa.schema([("measure", pa.string()), ("key", pa.string()),
                    ("value", pa.float64()), ("unit", pa.string())])
# What write_measures writes.
LABELLED_SCHEMA = SCHEMA.append(pa.field("label", pa.string()))


def to_table(measures: list[Measure]) -> pa.Table:
    return pa.Table.from_pylist([asdict(m) for m in measures], schema=LABELLED_SCHEMA)


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
        a.own("distributions")
        a.sanctions()
        a.wrongful_and_disparity()
        a.own("spirals")
        a.stratification()
        a.chilling()
        a.manipulation()
        a.cross_context()
        a.benefits()
        a.own("generations")
        a.modules()
        if baseline is not None:
            check_baseline(run, manifest, baseline, open_run(baseline))
            with reading(baseline):
                bcon = connect(baseline)
                try:
                    a.against_baseline(bcon)
                finally:
                    bcon.close()
        return a.out
    finally:
        con.close()


SYSTEMS = ("points", "court_list", "composite", "rating", "firm_lists")


def society_differences(manifest: dict, base: dict) -> list[str]:
    """What keeps the run of the manifest `base` from being the counterfactual of the run
    of `manifest`: another society, or a system at work; [] when it is a fair baseline."""
    diffs = [f"{k}: {base[k]:,} in the baseline, {manifest[k]:,} in the run"
             for k in ("people", "days") if base[k] != manifest[k]]
    s, b = manifest["scenario"], base["scenario"]
    if b["run"]["seed"] != s["run"]["seed"]:
        diffs.append(f"seed: {b['run']['seed']} in the baseline, {s['run']['seed']} in the run")
    for section in ("population", "graph", "demography"):
        run_part, base_part = s.get(section) or {}, b.get(section) or {}
        changed = sorted(k for k in set(run_part) | set(base_part)
                         if run_part.get(k) != base_part.get(k))
        diffs += [f"{section}.{k}: {base_part.get(k)} in the baseline, "
                  f"{run_part.get(k)} in the run" for k in changed]
    running = [x for x in SYSTEMS if b.get(x, {}).get("enabled")]
    running += [f"systems.{name}" for name in b.get("systems", {})]  # from packages
    if b.get("gates"):
        running.append("gates")
    if running:
        diffs.append(f"the baseline runs a system ({', '.join(running)})")
    return diffs


def check_baseline(run: Path, manifest: dict, baseline: Path, base: dict) -> None:
    """Refuse, naming what differs, a baseline that is not the same society as `run`
    (same people, days and seed, population and graph) run without any system."""
    diffs = society_differences(manifest, base)
    if diffs:
        raise InputError(f"{baseline}: not a baseline for {run}: a baseline must be the same "
                         "society (the same people, days and seed, population and graph) run "
                         f"without any system; {'; '.join(diffs)}")


def katz_interval(x_ref, n_ref, x, n, z: float = Z95):
    """The ratio of two proportions (x_ref / n_ref) / (x / n) and its interval by the Katz
    log method: exp(ln ratio ± z × sqrt(1/x_ref − 1/n_ref + 1/x − 1/n)). A zero count
    gets 0.5 added to each count (and 1 to each n), so the interval stays defined.
    Works on numbers or NumPy arrays; returns (ratio, low, high)."""
    x_ref, n_ref, x, n = (np.asarray(v, dtype=np.float64) for v in (x_ref, n_ref, x, n))
    ratio = (x_ref / n_ref) / np.where(x > 0, x / n, np.nan)
    zero = (x_ref == 0) | (x == 0)
    a, b = np.where(zero, x_ref + 0.5, x_ref), np.where(zero, x + 0.5, x)
    na, nb = np.where(zero, n_ref + 1, n_ref), np.where(zero, n + 1, n)
    log_r = np.log((a / na) / (b / nb))
    se = np.sqrt(np.maximum(1 / a - 1 / na + 1 / b - 1 / nb, 0.0))
    return ratio, np.exp(log_r - z * se), np.exp(log_r + z * se)


def four_fifths_verdict(low: float | None, high: float | None) -> float | None:
    """FLAGGED when the whole interval lies below 0.8, NOT_FLAGGED when it lies at or
    above, INCONCLUSIVE when it spans 0.8."""
    if low is None or high is None:
        return None
    if high < FOUR_FIFTHS:
        return FLAGGED
    if low >= FOUR_FIFTHS:
        return NOT_FLAGGED
    return INCONCLUSIVE


def ratio(num: float, den: float) -> float | None:
    """num / den, or None (undefined) when den is 0."""
    return num / den if den else None


class RunTables:
    """What a module's `measures` reads of one run folder: its tables, through DuckDB
    (timeseries, ledger, people, firms, sanctions), its manifest and scenario."""

    def __init__(self, path: Path, manifest: dict, scenario: Scenario, con) -> None:
        self.path, self.manifest, self.scenario, self._con = path, manifest, scenario, con
        self.people, self.days = manifest["people"], manifest["days"]
        self.adults = manifest["adults"]

    def sql(self, query: str, params: list | None = None) -> list[tuple]:
        """The rows of one query; bind values as `?` with `params`, never in the text."""
        return self._con.execute(query, params or []).fetchall()

    def numpy(self, query: str, params: list | None = None) -> dict[str, np.ndarray]:
        """The columns of one query as NumPy arrays."""
        return self._con.execute(query, params or []).fetchnumpy()

    @functools.cached_property
    def ts_cols(self) -> set[str]:
        return {r[0] for r in self.sql("DESCRIBE timeseries")}

    def ts_column(self, col: str) -> str:
        """`col` quoted for SQL, once it is known to be a column of the time series (its
        name may come from the scenario: a gate's or a band's)."""
        if col not in self.ts_cols:
            raise InputError(f"{self.path / 'timeseries.parquet'}: no column {col!r}, which "
                             "this run's scenario needs")
        return ident(col)

    def ts_sum(self, col: str) -> float:
        """The sum of a time-series column over the run."""
        return float(self.sql(f"SELECT coalesce(sum({self.ts_column(col)}), 0) "
                              "FROM timeseries")[0][0])

    def ts_last(self, col: str) -> float:
        """A time-series column's value on the last day."""
        return float(self.sql(f"SELECT {self.ts_column(col)} FROM timeseries "
                              "ORDER BY day DESC LIMIT 1")[0][0])

    def column(self, col: str, where: str) -> np.ndarray:
        """A people column (a fixed name) of the rows meeting the fixed condition `where`."""
        return self.numpy(f"SELECT {ident(col)} AS v FROM people WHERE {where}")["v"]


def _number(value, what: str) -> float | None:
    """A module's measure as a float or None (undefined), or InputError naming it."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise InputError(f"{what}: a measure must be a number or None, got "
                         f"{type(value).__name__}")
    return float(value)


class _Audit:
    def __init__(self, con, run: Path, manifest: dict, s: Scenario, bound_days: float):
        self.con, self.m, self.s, self.bound_days = con, manifest, s, bound_days
        self.run = run
        self.n, self.days = manifest["people"], manifest["days"]
        self.adults = manifest["adults"]
        self.year = 365.0 / self.days
        self.tables = RunTables(run, manifest, s, con)
        self.ts_cols = self.tables.ts_cols
        self.people_cols = {r[0] for r in con.execute("DESCRIBE people").fetchall()}
        (counted,) = con.execute("SELECT count(*) FROM people WHERE age_band != 'child'"
                                 ).fetchone()
        if counted != self.adults:
            raise InputError(f"{run / 'manifest.json'}: adults is {self.adults:,} but "
                             f"people.parquet has {counted:,} adults")
        self.out: list[Measure] = []
        self._denominators()

    def _denominators(self) -> None:
        """The person-days of the run, of everyone and of adults, overall and per audit
        group. On a fixed population: people (or adults at the end) x days. Where the
        population changes (demography), the days each person lived, and lived as an
        adult, during the run (people.parquet `days_alive`, `days_adult`): the dead and
        the not yet born count only for the days they were alive."""
        self.changing = {"days_alive", "days_adult"} <= self.people_cols
        if not self.changing:
            self.person_days, self.adult_days = self.n * self.days, self.adults * self.days
            self.mean_people = self.n
            people = self.q('SELECT "group", count(*) FROM people GROUP BY 1')
            adults = self.q('SELECT "group", count(*) FROM people WHERE age_band != \'child\' '
                            'GROUP BY 1')
            self.group_days = {g: c * self.days for g, c in people}
            self.group_adult_days = {g: c * self.days for g, c in adults}
            return
        rows = self.q('SELECT "group", sum(days_alive), sum(days_adult) FROM people GROUP BY 1')
        self.group_days = {g: int(a) for g, a, _ in rows}
        self.group_adult_days = {g: int(b) for g, _, b in rows if b}
        self.person_days = sum(self.group_days.values())
        self.adult_days = sum(self.group_adult_days.values())
        self.mean_people = self.person_days / self.days  # alive on an average day

    def add(self, measure: str, value, key: str = "", unit: str | None = None) -> None:
        """Add a measure; its label and unit come from credsim.labels (`unit` only makes
        the registry's unit more precise for this run)."""
        v = None if value is None or (isinstance(value, float) and math.isnan(value)) else (
            float(value))
        lab = measure_label(measure, key)
        self.out.append(Measure(measure, key, v, unit or lab.unit, lab.label))

    def q(self, sql: str, params: list | None = None) -> list[tuple]:
        return self.con.execute(sql, params or []).fetchall()

    def ts_sum(self, col: str) -> float:
        return self.tables.ts_sum(col)

    # The measures of the systems the run ran (Module.audit), at their place ----------
    def own(self, part: str) -> None:
        """The measures that the modules compute for audit part `part`, in build order."""
        for inst in module_instances(self.s):
            for v in inst.cls.audit(self.tables, part, inst):
                self.add(v.measure, v.value, v.key, v.unit)

    # Listings and sanctions -------------------------------------------------------
    def sanctions(self) -> None:
        s = self.s
        per_m = 1e6 / self.mean_people
        if s.court_list.enabled:
            self.add("listed_per_million", self.ts_sum("listed") / self.days * per_m)
            self.add("new_listings_per_million",
                     self.ts_sum("new_listings") * self.year * per_m)
        if s.firm_lists.enabled:
            self.add("firms_blacklisted", self.ts_sum("firms_blacklisted") / self.days)
        for name, g in s.gates.items():
            what = "perks_per_million" if g.effect == "perk" else "sanctions_per_million"
            self.add(what, self.ts_sum(f"gate_{name}") * self.year * per_m, f"gate={name}")
        sanctioned = self.ts_sum("sanctioned")
        self.add("sanctioned_person_days_per_million", sanctioned / self.person_days * 1e6)

    # Wrongful sanctions and disparate impact ------------------------------------
    def wrongful_and_disparity(self) -> None:
        """The rate of wrongful sanctioned person-days comes before their share: a share
        rises when a safeguard removes rightful sanctions, with no fewer wrongful ones."""
        sanctioned, wrongful = self.ts_sum("sanctioned"), self.ts_sum("sanctioned_wrongful")
        self.add("wrongful_person_days_per_million", wrongful / self.person_days * 1e6)
        self.add("wrongful_share", ratio(wrongful, sanctioned))
        # Adults of each group: on an average day (on a fixed population, those there are).
        adults = {g: d / self.days for g, d in self.group_adult_days.items()}
        burden: dict[int, tuple[float, float]] = {}  # group: (count, adults)
        for g in sorted(adults):
            col = f"sanctioned_group{g}"
            if col not in self.ts_cols:
                continue
            sg, wg = self.ts_sum(col), self.ts_sum(f"sanctioned_wrongful_group{g}")
            key = f"group={g}"
            self.add("wrongful_person_days_per_million",
                     ratio(wg * 1e6, self.group_days[g]), key)
            self.add("wrongful_share", ratio(wg, sg), key)
            self.add("sanction_rate", sg / self.group_adult_days[g], key)
            # As a proportion of people: the mean number sanctioned on a day, of the adults.
            burden[g] = (sg / self.days, adults[g])
        self._disparate("sanction", burden)
        if self.s.court_list.enabled:
            rows = dict(self.q(
                'SELECT p."group", count(*) FROM ledger l JOIN people p ON p.id = l.id '
                "WHERE l.entity = 'person' AND l.kind = 'list' AND l.delta > 0 "
                "AND l.value = 1 GROUP BY 1"))
            entries = {g: (float(rows.get(g, 0)), adults[g]) for g in sorted(adults)}
            for g, (x, n) in entries.items():
                self.add("listing_rate", x * self.year / n, f"group={g}")
            self._disparate("listing", entries)

    def _disparate(self, what: str, burden: dict[int, tuple[float, float]]) -> None:
        """Ratio of the least-burdened group's rate to each group's: below 0.8 flags
        adverse impact (the four-fifths rule, read for an adverse outcome), with its 95 %
        interval as a ratio of two proportions (count / adults of each group) and the
        verdict of the interval. With no one burdened in any group there is no disparity
        to measure: the ratios are undefined."""
        if not burden:
            return
        rates = {g: x / n for g, (x, n) in burden.items()}
        ref = min(rates, key=lambda g: (rates[g], g))
        nobody = max(rates.values()) == 0
        for g, r in rates.items():
            key = f"group={g}"
            ratio = lo = hi = None
            if not nobody:
                ratio = rates[ref] / r if r > 0 else 1.0
                if g == ref:  # the least-burdened group against itself: exactly 1
                    lo = hi = 1.0
                else:
                    _, low, high = katz_interval(*burden[ref], *burden[g])
                    lo, hi = float(low), float(high)
            self.add(f"{what}_impact_ratio", ratio, key)
            self.add(f"{what}_impact_ratio_low", lo, key)
            self.add(f"{what}_impact_ratio_high", hi, key)
            self.add(f"{what}_impact_n", burden[g][1], key)
            self.add(f"{what}_four_fifths_flag",
                     None if ratio is None else float(ratio < FOUR_FIFTHS), key)
            self.add(f"{what}_four_fifths", four_fifths_verdict(lo, hi), key)
    # Stratification ------------------------------------------------------------
    def stratification(self) -> None:
        self.own("stratification")
        self.add("gini_savings", gini(self.tables.column("savings", "age_band != 'child'")))
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
            self.add("private_school_lost_share", ratio(lost, private),
                     f"parent={st}")

    # Chilling -------------------------------------------------------------------
    def chilling(self) -> None:
        pd = self.person_days
        self.add("voice_per_1000_person_days", self.ts_sum("voice_events") / pd * 1e3)
        self.add("ties_dropped_per_1000", self.ts_sum("ties_dropped") / self.mean_people * 1e3)
        if "contacts" in self.people_cols:
            (cut,) = self.q("SELECT quantile_cont(voice, ?) FROM people WHERE age_band != "
                            "'child'", [CRITIC_QUANTILE])[0]
            iso, critics = self.q("SELECT count(*) FILTER (WHERE contacts = 0), count(*) "
                                  "FROM people WHERE age_band != 'child' AND voice >= ?",
                                  [cut])[0]
            self.add("isolated_critics_share", ratio(iso, critics))
        for system, v in (self.m.get("score_assortativity") or {}).items():
            self.add("score_assortativity", v, f"system={system}")

    # Manipulation ---------------------------------------------------------------
    def manipulation(self) -> None:
        if self.s.threats.insiders_per_million <= 0:
            return
        # A small population may round its insiders to none: the run then writes no
        # insider columns, and there were no edits to catch.
        active = "insider_edits" in self.ts_cols
        edits = self.ts_sum("insider_edits") if active else 0.0
        self.add("insider_edits", edits * self.year)
        self.add("audit_catch_share",
                 ratio(self.ts_sum("audit_catches"), edits) if active else None)
        (reach,) = self.q("SELECT avg(t) FROM (SELECT id, sum(delta) AS t FROM ledger "
                          "WHERE entity = 'person' AND kind = 'score' AND record = 'insider' "
                          "GROUP BY id)")[0]
        self.add("insider_reach_points", reach)

    # Cross-context detriment and proportionality (EU AI Act Art. 5(1)(c)) -------
    def cross_context(self) -> None:
        total, outside, heavy = self.q(
            "SELECT count(*), count(*) FILTER (WHERE gate_domain != trigger_domain), "
            "count(*) FILTER (WHERE gate IN (SELECT unnest(?::VARCHAR[]))) "
            "FROM sanctions WHERE effect = 'sanction'",
            [[n for n, g in self.s.gates.items() if g.loss_days > self.bound_days]])[0]
        self.add("cross_context_share", ratio(outside, total))
        self.add("disproportionate_share", ratio(heavy, total),
                 unit=f"share of sanction applications costing over {self.bound_days:g} days "
                 "of income")

    # Claimed benefits -------------------------------------------------------------
    def benefits(self) -> None:
        pd = self.adult_days
        for d in BENEFIT_DOMAINS:
            col = f"events_{d}"
            if col in self.ts_cols:
                self.add("true_event_rate", ratio(self.ts_sum(col) * 1e3, pd),
                         f"domain={d}")

    # Measures of modules (systems from installed packages) --------------------------------
    def modules(self) -> None:
        """Each module's own measures (Module.measures), in the order it declares them."""
        tables = self.tables
        for cls in module_classes(self.s):
            if not cls.audit_measures:
                continue
            values = cls.measures(tables)
            declared = [m.name for m in cls.audit_measures]
            extra = sorted(set(values) - set(declared))
            if extra:
                raise InputError(f"module {cls.kind} ({cls.__module__}): measures() returned "
                                 f"{', '.join(extra)}, not declared in its audit_measures")
            for name in declared:
                self.add(name, _number(values.get(name), f"module {cls.kind}: {name}"))

    def _cohorts_vs_baseline(self, bcon) -> None:
        """Each birth cohort's mean voice over the baseline's (where the population
        changes: the generations' measures)."""
        from credsim.generations.audit import COHORT_VOICE

        own = {m.key: m.value for m in self.out if m.measure == "voice_by_cohort"}
        if not own:
            return
        base = {f"cohort={c}": v for c, v, _ in bcon.execute(COHORT_VOICE).fetchall()}
        for key, v in own.items():
            self.add("voice_by_cohort_vs_baseline", ratio(v, base.get(key) or 0.0), key)

    def against_baseline(self, bcon) -> None:
        bcols = {r[0] for r in bcon.execute("DESCRIBE timeseries").fetchall()}

        def bsum(col: str) -> float:  # col: a fixed name found in both time series
            return float(bcon.execute(f"SELECT coalesce(sum({ident(col)}), 0) FROM timeseries")
                         .fetchall()[0][0])

        self.add("voice_vs_baseline", ratio(self.ts_sum("voice_events"), bsum("voice_events")))
        self._cohorts_vs_baseline(bcon)
        for d in BENEFIT_DOMAINS:
            col = f"events_{d}"
            if col in self.ts_cols and col in bcols:
                self.add("true_events_vs_baseline", ratio(self.ts_sum(col), bsum(col)),
                         f"domain={d}")
