"""A points system (Rongcheng): a score per person, deductions and additions per
recorded behaviour, grades from score floors, instant grade caps.

A scenario's main points system is its [points] section; further ones (a
province's scheme beside a city's) are [systems.<name>] tables of kind
"points", each with its own catalogue of deltas, grades and floors. Their
columns, ledger kinds and standings carry their name.

Each person carries two scores: the score the system holds and the score it
would hold without false records ("true score"). A sanction rests on a false
record when it holds under the first and not under the second.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from numba import njit

from credsim.conditions import Standing
from credsim.errors import InputError, first_line
from credsim.ledger import (
    C_CAP_EXPIRY,
    K_GRADE,
    NO_REF,
    R_FALSE,
    R_NONE,
    R_TRUE,
    Ledger,
)
from credsim.modules import Applied, Day, Hook, Instance, Module, Result, lazy_hook
from credsim.modules.columns import category
from credsim.observation import channel_codes
from credsim.population.people import is_adult
from credsim.scenario.model import DOMAINS, GRADES, PointsSystem, points_systems

NO_DOMAIN = 255
COURT_DOMAIN = DOMAINS.index("court")


class Points(Module):
    kind = "points"
    # Its explanations in credsim lookup, audit measures and report figures, from
    # explain.py, audit.py and report.py (imported when asked).
    explain = lazy_hook("credsim.systems.points.explain:explain")
    audit = lazy_hook("credsim.systems.points.audit:audit")
    report_figures = lazy_hook("credsim.systems.points.report:report_figures")
    build_order = 10
    record_order = 10
    hooks = (Hook("score", "expire_caps", 10), Hook("score", "score_records", 30),
             Hook("list", "listing_points", 55))
    results = (
        Result("grade_<grade>"),
        Result("warnings"),
    )
    standings = {"grade": Standing(
        "grade", "`grade`, coded 0 = AAA ... 5 = D", "`grade_true`", ops=("<=", ">="),
        names=GRADES, ledger_kind=K_GRADE)}
    ledger_kinds = ("score", "grade", "warning")
    ledger_causes = ("instant_grade_expiry",)
    several = True
    further = PointsSystem

    @classmethod
    def present(cls, scenario) -> bool:
        return scenario.points.enabled

    @classmethod
    def instances(cls, scenario) -> list[Instance]:
        """The main system ([points]), then each further [systems.<name>] of this kind;
        only those enabled, and further ones only beside the main one."""
        if not scenario.points.enabled:
            return []
        return [Instance(where.removeprefix("systems."), cls, params, where == "points")
                for where, params in points_systems(scenario)]

    @classmethod
    def standings_for(cls, params: PointsSystem | None) -> dict[str, Standing]:
        grades = tuple(params.grades) if params is not None else GRADES
        if grades == GRADES:
            return cls.standings
        held = f"`grade`, coded 0 = {grades[0]} ... {len(grades) - 1} = {grades[-1]}"
        return {"grade": Standing("grade", held, "`grade_true`", ops=("<=", ">="),
                                  names=grades, ledger_kind=K_GRADE)}

    @classmethod
    def required_columns(cls, scenario) -> dict[str, set[str]]:
        return {"timeseries": {f"grade_{g}" for g in scenario.points.grades},
                "people": {"score", "score_true", "grade", "grade_true"}}

    @classmethod
    def check_tables(cls, folder, manifest, scenario) -> None:
        """Every adult holds a grade: the grade counts of each day add up to the adults
        (where the population changes, to that day's: the `adults_alive` column)."""

        ts, adults = folder / "timeseries.parquet", manifest.adults
        grades = scenario.points.grades
        changing = scenario.demography.enabled
        try:
            t = pq.read_table(ts, columns=[f"grade_{g}" for g in grades]
                              + (["adults_alive"] if changing else []))
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{ts}: not a readable Parquet file ({first_line(exc)})") from None
        try:
            counts = [np.asarray(c, dtype=np.int64) for c in t.columns]
            if changing:  # each day's grade counts less its adults: 0
                counts[-1] = -counts[-1]
                adults = 0
            totals = set(np.sum(counts, axis=0))
        except (TypeError, ValueError):
            raise InputError(f"{ts}: the grade columns are not counts") from None
        if changing and totals != {0}:
            raise InputError(f"{ts}: the grade counts differ from the day's adults")
        if totals != {adults}:
            raise InputError(f"{ts}: the grade counts add up to "
                             f"{', '.join(f'{int(x):,}' for x in sorted(totals)[:3])} adults "
                             f"but the manifest says {adults:,}")

    def __init__(self, sim) -> None:
        super().__init__(sim)
        n, adults = sim.people.n, sim.adults
        params = self.instance.params or sim.scenario.points
        behaviour_names = sim.cat.names
        self.params = params
        self.grades = grades = tuple(params.grades)
        cat = sim.cat
        ledger = sim.ledger
        self.k_score, self.k_grade, self.k_warning = (
            ledger.kind_code(self.column(k)) for k in ("score", "grade", "warning"))
        self.standings = {"grade": replace(self.standings_for(params)["grade"],
                                           ledger_kind=self.k_grade)}
        # The main system's deltas are the catalogue's (people adapt to them); a further
        # system keeps its own.
        self.delta = cat.delta if self.instance.primary else np.array(
            [params.deltas.get(k, 0) for k in behaviour_names], dtype=np.int32)
        # The proportionality cap (a safeguard) limits every deduction.
        self.cap_cap = sim.scenario.safeguards.proportionality_cap
        self.floors = np.array([params.grade_floors[g] for g in grades[:-1]], dtype=np.int64)
        self.score = np.full(n, params.initial, dtype=np.int32)
        self.score_true = self.score.copy()
        g0 = grade_of(params.initial, self.floors)
        self.grade = np.full(n, g0, dtype=np.uint8)
        self.grade_true = self.grade.copy()
        # Instant grade caps: the one the system holds (from any record) and the one
        # true records alone would give, so a false cap never leaks into the true grade.
        self.cap_until = np.full(n, -1, dtype=np.int16)
        self.cap_grade = np.zeros(n, dtype=np.uint8)
        self.cap_true_until = np.full(n, -1, dtype=np.int16)
        self.cap_true_grade = np.zeros(n, dtype=np.uint8)
        self.last_neg_domain = np.full(n, NO_DOMAIN, dtype=np.uint8)
        self.grade_counts = np.zeros(len(grades), dtype=np.int64)
        self.grade_counts[g0] = adults  # children are never scored: counts are of adults
        self.cap_by_behaviour = np.array(
            [grades.index(params.instant_grade[b]) if b in params.instant_grade else -1
             for b in behaviour_names], dtype=np.int16,
        )
        self._capped: list[np.ndarray] = []
        # Of each person under an instant grade cap, the ledger row of the grade change
        # the cap's records made (NO_REF if they changed no grade): the cap's end refers
        # to it (an entry leaves when the cap ends).
        self.cap_rows: dict[int, int] = {}
        # Of each listing on a false case, the ledger row of its deduction, which is
        # given back if the case is lifted by correction or appeal.
        self.listing_deductions: dict[int, int] = {}
        # Warn before punishing: the day until which a person's last warning counts,
        # for the held and the true score (a false record can use up the warning).
        warn = params.warn_max > 0
        self.warned_until = np.full(n if warn else 1, -1, dtype=np.int16)
        self.warned_true_until = self.warned_until.copy()
        self.warnings_today = 0
        # Behaviours whose records this system acts on: a delta or an instant grade.
        self.scored = (self.delta != 0) | (self.cap_by_behaviour >= 0)

    # Hooks -------------------------------------------------------------------
    def expire_caps(self, d: Day) -> None:
        """Regrade the people one of whose instant grade caps ends today."""
        d.touched.append(self._expire_caps(self.sim.ledger, d.day))

    def score_records(self, d: Day) -> None:
        """Apply today's person records: deductions, additions and grade caps."""
        sim, records = self.sim, d.records
        cat, ledger = sim.cat, sim.ledger
        sel = ~records.is_firm & self.scored[records.behaviour]
        who, b = records.who[sel], records.behaviour[sel]
        d.touched.append(who)
        if self.instance.primary:  # a record deters once, however many systems act on it
            d.acted.append((who, b))
        delta = self.delta[b]
        # Whether a deduction is minor enough to warn about is judged before the
        # proportionality cap: a capped serious offence is no minor one.
        warnable = (delta < 0) & (delta >= -self.params.warn_max)
        if self.cap_cap > 0:
            delta = np.maximum(delta, -self.cap_cap)
        acted = records.subset(sel)
        rec = acted.ledger_record()
        self.warnings_today = 0
        delta, delta_true, rows = self.apply(
            ledger, d.day, who, delta, self.cap_by_behaviour[b],
            b.astype(np.int32) + ledger.behaviour_cause(0), channel_codes(sim.cat, acted),
            rec, cat.domain[b], warnable,
        )
        d.applied.append(Applied(self, who, delta, delta_true, rec, acted.source, rows,
                                 np.zeros(len(who), dtype=bool)))

    def listing_points(self, d: Day) -> None:
        """The points deduction for each case listing a person (referring to the
        listing, with its cause), and its give-back (referring to the deduction) when a false case's
        listing is lifted by correction or appeal."""
        delta = self.params.listing_delta
        if not delta:
            return
        if self.cap_cap > 0:
            delta = max(delta, -self.cap_cap)
        for listed, lifted in d.listings:
            who = [p for p, *_ in listed] + [p for p, _, _ in lifted]
            if not who:
                continue
            k = len(who)
            false = [bool(f) for _, f, _, _ in listed]
            given_back = [self.listing_deductions.pop(row, NO_REF) for _, _, row in lifted]
            _, _, rows = self.apply(
                self.sim.ledger, d.day, np.array(who, dtype=np.int32),
                np.array([delta] * len(listed) + [-delta] * len(lifted)), np.full(k, -1),
                # A deduction carries its listing's cause (a legal representative's
                # listing for a firm's case), a give-back its delisting's.
                np.array([c for *_, c in listed] + [c for _, c, _ in lifted]), np.zeros(k),
                np.array([int(f) for f in false] + [R_FALSE] * len(lifted)),
                np.full(k, COURT_DOMAIN),
                ref=np.array([row for _, _, row, _ in listed] + given_back, dtype=np.int64),
            )
            for (_, _, row, _), f, deduction in zip(listed, false,
                                                    rows[:len(listed)].tolist(), strict=True):
                if f:  # only a false case's listing can be lifted with its deduction
                    self.listing_deductions[row] = deduction

    def reverse(self, d: Day, who: np.ndarray, delta: np.ndarray, delta_true: np.ndarray,
                record: np.ndarray, cause: int, channel: int, rows: np.ndarray) -> None:
        """Give back deductions this system made (`delta` of the held score and
        `delta_true` of the true one; `rows`: their ledger rows, which the give-backs
        refer to): on expiry, or when an audit catches an edit."""
        k = len(who)
        if k:
            self.apply(self.sim.ledger, d.day, who, -delta, np.full(k, -1),
                       np.full(k, cause), np.full(k, channel), record, np.zeros(k),
                       delta_true=-delta_true, ref=rows)
        d.touched.append(who)

    def people_changed(self, d: Day, change) -> None:
        """Grade counts are of living adults: one who comes of age enters at the
        starting score (which every child holds), a death leaves every count."""
        came, gone = change.came_of_age, change.adults_out()
        self.score[came] = self.score_true[came] = self.params.initial
        g0 = grade_of(self.params.initial, self.floors)
        self.grade[came] = self.grade_true[came] = g0
        self.grade_counts[g0] += len(came)
        self.grade_counts -= np.bincount(self.grade[gone], minlength=len(self.grades))

    def floor_of(self, grade: str) -> int:
        """The lowest score of a grade."""
        return int(self.params.grade_floors.get(grade, 0))

    def record(self, d: Day, row: dict) -> None:
        col = self.column
        for g, c in zip(self.grades, self.grade_counts, strict=True):
            row[col(f"grade_{g}")] = int(c)
        if self.params.warn_max > 0:
            row[col("warnings")] = self.warnings_today

    def people_columns(self, part: slice) -> dict:
        # Children (and empty slots) are never scored: their score and grade are null.
        child = ~is_adult(self.sim.people.age[part])
        col = self.column
        return {col("score"): pa.array(self.score[part], mask=child),
                col("score_true"): pa.array(self.score_true[part], mask=child),
                col("grade"): category(self.grade[part], self.grades, mask=child),
                col("grade_true"): category(self.grade_true[part], self.grades, mask=child)}

    def final_scores(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {self.name: (self.score, is_adult(self.sim.people.age))}

    def standing_arrays(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.grade, self.grade_true

    def standing_domains(self, name: str) -> np.ndarray:
        return self.last_neg_domain

    def standing_initial(self, name: str) -> float:
        return float(self.grade[0])  # everyone starts at the same grade

    # State -------------------------------------------------------------------
    def apply(self, ledger: Ledger, day: int, who, delta, cap, cause, channel, record,
              domain, warnable: np.ndarray | None = None,
              delta_true: np.ndarray | None = None, ref: np.ndarray | None = None,
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply score deltas and grade caps in order, writing ledger rows. `record`: ledger
        record codes (R_TRUE, R_FALSE, R_INSIDER, ...); by default only R_TRUE records
        move the true score, by `delta`; `delta_true` overrides that (a reversal gives
        back what each score lost). `warnable`: which deductions may be replaced by a
        warning (warn before punishing). `ref`: the ledger row each change refers to
        (what it reverses, or the listing it is for), carried by every row it writes.
        Returns the deltas applied to the held and to the true score, and the ledger row
        of each held score change (NO_REF where none was written)."""
        alive = self.sim.people.alive
        if alive is not None and len(who) and not alive[who].all():
            return self._apply_to_living(alive[who], ledger, day, who, delta, cap, cause,
                                         channel, record, domain, warnable, delta_true, ref)
        applied = np.zeros(len(who), dtype=np.int32)
        applied_true = np.zeros(len(who), dtype=np.int32)
        score_rows = np.full(len(who), NO_REF, dtype=np.int64)
        cap_rows = np.full(len(who), NO_REF, dtype=np.int64)  # of grade changes by caps
        if len(who) == 0:
            return applied, applied_true, score_rows
        if delta_true is None:
            delta_true = np.where(record == R_TRUE, delta, 0)
        if ref is None:
            ref = np.full(len(who), NO_REF, dtype=np.int64)
        ledger.reserve(3 * len(who))
        c = ledger.cols
        n0 = ledger.n
        warn = warnable is not None and self.params.warn_max > 0
        if not warn:
            warnable = np.zeros(len(who), dtype=bool)
        ledger.n = _apply(
            who.astype(np.int32), delta.astype(np.int32), delta_true.astype(np.int32),
            cap.astype(np.int16),
            cause.astype(np.int16), channel.astype(np.int16), record.astype(np.uint8),
            domain.astype(np.uint8), day, self.params.instant_grade_days, self.floors,
            warnable, self.params.warning_days,
            self.warned_until, self.warned_true_until, applied, applied_true,
            self.score, self.score_true, self.grade, self.grade_true, self.cap_until,
            self.cap_grade, self.cap_true_until, self.cap_true_grade, self.last_neg_domain,
            self.grade_counts, ref.astype(np.int64), score_rows, cap_rows,
            c["day"], c["entity"], c["id"], c["kind"], c["cause"], c["channel"],
            c["record"], c["delta"], c["value"], c["ref"], ledger.first, ledger.n,
            self.k_score, self.k_grade, self.k_warning,
        )
        if warn:
            self.warnings_today += int(np.count_nonzero(c["kind"][n0:ledger.n]
                                                        == self.k_warning))
        capped = who[cap >= 0]
        if len(capped):
            self._capped.append(capped.astype(np.int32))
            self._note_cap_rows(who, cap_rows)
        return applied, applied_true, score_rows

    def _apply_to_living(self, living: np.ndarray, ledger: Ledger, day: int, *arrays
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """apply() for the living among the entries: one about someone who has died (a
        listing's deduction, an expiry) moves no score and no count, and writes no row."""
        keep = np.flatnonzero(living)
        res = self.apply(ledger, day, *(a if a is None else np.asarray(a)[keep]
                                        for a in arrays))
        n = len(living)
        out = (np.zeros(n, np.int32), np.zeros(n, np.int32), np.full(n, NO_REF, np.int64))
        for o, r in zip(out, res, strict=True):
            o[keep] = r
        return out

    def _note_cap_rows(self, who: np.ndarray, cap_rows: np.ndarray) -> None:
        """Keep each person's cap row: the last grade change a cap record made."""
        sel = np.flatnonzero(cap_rows != NO_REF)[::-1]
        people, last = np.unique(who[sel], return_index=True)
        self.cap_rows.update(zip(people.tolist(), cap_rows[sel[last]].tolist(), strict=True))

    def _expire_caps(self, ledger: Ledger, day: int) -> np.ndarray:
        """Regrade people one of whose grade caps ends today; return them."""
        if not self._capped:
            return np.zeros(0, np.int32)
        pending = np.unique(np.concatenate(self._capped))
        held, true = self.cap_until[pending], self.cap_true_until[pending]
        self._capped = [pending[(held > day) | (true > day)]]
        ending = pending[(held == day) | (true == day)]
        if self.sim.people.alive is not None:  # the dead are no longer graded
            ending = ending[self.sim.people.alive[ending]]
        if len(ending) == 0:
            return ending
        # A held cap that ends refers to its row; a true cap's end writes no row.
        refs = np.full(len(ending), NO_REF, dtype=np.int64)
        for i in np.flatnonzero(self.cap_until[ending] == day):
            refs[i] = self.cap_rows.pop(int(ending[i]), NO_REF)
        ledger.reserve(len(ending))
        c = ledger.cols
        ledger.n = _regrade(
            ending, day, self.floors, self.score, self.score_true, self.grade, self.grade_true,
            self.cap_until, self.cap_grade, self.cap_true_until, self.cap_true_grade,
            self.grade_counts, refs, c["day"], c["entity"], c["id"], c["kind"],
            c["cause"], c["channel"], c["record"], c["delta"], c["value"], c["ref"],
            ledger.n, C_CAP_EXPIRY, self.k_grade,
        )
        return ending


def grade_of(score: int, floors: np.ndarray) -> int:
    return int(_grade_of(score, floors))


@njit(cache=True, inline="always")
def _grade_of(score, floors):  # pragma: no cover
    g = 0
    while g < len(floors) and score < floors[g]:
        g += 1
    return g


@njit(cache=True, inline="always")
def _extend_cap(until, grade, p, g, day, cap_days):  # pragma: no cover
    if until[p] > day:
        grade[p] = max(grade[p], g)
        until[p] = max(until[p], day + cap_days)
    else:
        grade[p] = g
        until[p] = day + cap_days


@njit(cache=True, inline="always")
def _grades(p, day, floors, score, score_true, cap_until, cap_grade, cap_true_until,
            cap_true_grade):  # pragma: no cover
    """(held grade, true grade) of person p on `day`."""
    g = _grade_of(score[p], floors)
    if cap_until[p] > day:
        g = max(g, cap_grade[p])
    gt = _grade_of(score_true[p], floors)
    if cap_true_until[p] > day:
        gt = max(gt, cap_true_grade[p])
    return g, gt


@njit(cache=True)
def _apply(who, delta, delta_true, cap, cause, channel, record, domain, day, cap_days,
           floors, warnable, warn_days, warned_until, warned_true_until, applied, applied_true,
           score, score_true, grade, grade_true, cap_until, cap_grade, cap_true_until,
           cap_true_grade, last_neg_domain, grade_counts, ref, score_rows, cap_rows, l_day,
           l_entity, l_id, l_kind, l_cause, l_channel, l_record, l_delta, l_value, l_ref,
           first, n, k_score, k_grade, k_warning):  # pragma: no cover
    for r in range(len(who)):
        p = who[r]
        d = delta[r]
        rec = record[r]
        f = rec != R_TRUE
        dt = delta_true[r]
        if d < 0 and warnable[r]:
            if dt < 0 and warned_true_until[p] <= day:
                warned_true_until[p] = day + warn_days
                dt = 0
            if warned_until[p] <= day:
                warned_until[p] = day + warn_days
                l_day[n], l_entity[n], l_id[n], l_kind[n] = day, 0, p, k_warning
                l_cause[n] = cause[r]
                l_channel[n], l_record[n], l_delta[n], l_value[n] = channel[r], rec, 0, score[p]
                l_ref[n] = ref[r]
                n += 1
                d = 0
        applied[r] = d
        applied_true[r] = dt
        if dt != 0:
            score_true[p] += dt
        if d != 0:
            score[p] += d
            if d < 0:
                last_neg_domain[p] = domain[r]
            l_day[n], l_entity[n], l_id[n], l_kind[n] = day, 0, p, k_score
            l_cause[n] = cause[r]
            l_channel[n], l_record[n], l_delta[n], l_value[n] = channel[r], rec, d, score[p]
            l_ref[n] = ref[r]
            score_rows[r] = first + n
            n += 1
        if cap[r] >= 0:
            last_neg_domain[p] = domain[r]
            _extend_cap(cap_until, cap_grade, p, cap[r], day, cap_days)
            if not f:
                _extend_cap(cap_true_until, cap_true_grade, p, cap[r], day, cap_days)
        g, gt = _grades(p, day, floors, score, score_true, cap_until, cap_grade,
                        cap_true_until, cap_true_grade)
        grade_true[p] = gt
        if g != grade[p]:
            l_day[n], l_entity[n], l_id[n], l_kind[n] = day, 0, p, k_grade
            l_cause[n] = cause[r]
            l_channel[n], l_record[n] = channel[r], rec
            l_delta[n], l_value[n] = g - grade[p], g
            l_ref[n] = ref[r]
            if cap[r] >= 0:
                cap_rows[r] = first + n
            n += 1
            grade_counts[grade[p]] -= 1
            grade_counts[g] += 1
            grade[p] = g
    return n


@njit(cache=True)
def _regrade(who, day, floors, score, score_true, grade, grade_true, cap_until, cap_grade,
             cap_true_until, cap_true_grade, grade_counts, ref, l_day, l_entity, l_id,
             l_kind, l_cause, l_channel, l_record, l_delta, l_value, l_ref, n,
             cause, k_grade):  # pragma: no cover
    for r in range(len(who)):
        p = who[r]
        g, gt = _grades(p, day, floors, score, score_true, cap_until, cap_grade,
                        cap_true_until, cap_true_grade)
        grade_true[p] = gt
        if g != grade[p]:
            l_day[n], l_entity[n], l_id[n], l_kind[n] = day, 0, p, k_grade
            l_cause[n] = cause
            l_channel[n], l_record[n] = 0, R_NONE
            l_delta[n], l_value[n] = g - grade[p], g
            l_ref[n] = ref[r]
            n += 1
            grade_counts[grade[p]] -= 1
            grade_counts[g] += 1
            grade[p] = g
    return n
