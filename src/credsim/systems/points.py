"""A points system (Rongcheng): a score per person, deductions and additions per
recorded behaviour, grades from score floors, instant grade caps.

Each person carries two scores: the score the system holds and the score it
would hold without false records ("true score"). A sanction rests on a false
record when it holds under the first and not under the second.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from credsim.ledger import C_CAP_EXPIRY, K_GRADE, K_SCORE, K_WARNING, R_NONE, R_TRUE, Ledger
from credsim.scenario.model import GRADES, PointsSystem

NO_DOMAIN = 255


class Points:
    def __init__(self, params: PointsSystem, n: int, behaviour_names: list[str], adults: int):
        self.params = params
        self.floors = np.array([params.grade_floors[g] for g in GRADES[:-1]], dtype=np.int64)
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
        self.grade_counts = np.zeros(len(GRADES), dtype=np.int64)
        self.grade_counts[g0] = adults  # children are never scored: counts are of adults
        self.cap_by_behaviour = np.array(
            [GRADES.index(params.instant_grade[b]) if b in params.instant_grade else -1
             for b in behaviour_names], dtype=np.int16,
        )
        self._capped: list[np.ndarray] = []
        # Warn before punishing: the day until which a person's last warning counts,
        # for the held and the true score (a false record can use up the warning).
        warn = params.warn_max > 0
        self.warned_until = np.full(n if warn else 1, -1, dtype=np.int16)
        self.warned_true_until = self.warned_until.copy()
        self.warnings_today = 0

    def apply(self, ledger: Ledger, day: int, who, delta, cap, cause, channel, record,
              domain, warnable: np.ndarray | None = None,
              delta_true: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Apply score deltas and grade caps in order, writing ledger rows. `record`: ledger
        record codes (R_TRUE, R_FALSE, R_INSIDER, ...); by default only R_TRUE records
        move the true score, by `delta`; `delta_true` overrides that (a reversal gives
        back what each score lost). `warnable`: which deductions may be replaced by a
        warning (warn before punishing). Returns the deltas applied to the held and to
        the true score."""
        applied = np.zeros(len(who), dtype=np.int32)
        applied_true = np.zeros(len(who), dtype=np.int32)
        if len(who) == 0:
            return applied, applied_true
        if delta_true is None:
            delta_true = np.where(record == R_TRUE, delta, 0)
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
            self.grade_counts,
            c["day"], c["entity"], c["id"], c["kind"], c["cause"], c["channel"],
            c["record"], c["delta"], c["value"], ledger.n,
        )
        if warn:
            self.warnings_today += int(np.count_nonzero(c["kind"][n0:ledger.n] == K_WARNING))
        capped = who[cap >= 0]
        if len(capped):
            self._capped.append(capped.astype(np.int32))
        return applied, applied_true

    def expire_caps(self, ledger: Ledger, day: int) -> np.ndarray:
        """Regrade people one of whose grade caps ends today; return them."""
        if not self._capped:
            return np.zeros(0, np.int32)
        pending = np.unique(np.concatenate(self._capped))
        held, true = self.cap_until[pending], self.cap_true_until[pending]
        self._capped = [pending[(held > day) | (true > day)]]
        ending = pending[(held == day) | (true == day)]
        if len(ending) == 0:
            return ending
        ledger.reserve(len(ending))
        c = ledger.cols
        ledger.n = _regrade(
            ending, day, self.floors, self.score, self.score_true, self.grade, self.grade_true,
            self.cap_until, self.cap_grade, self.cap_true_until, self.cap_true_grade,
            self.grade_counts, c["day"], c["entity"], c["id"], c["kind"], c["cause"],
            c["channel"], c["record"], c["delta"], c["value"], ledger.n, C_CAP_EXPIRY,
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
           cap_true_grade, last_neg_domain, grade_counts, l_day, l_entity, l_id, l_kind,
           l_cause, l_channel, l_record, l_delta, l_value, n):  # pragma: no cover
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
                l_day[n], l_entity[n], l_id[n], l_kind[n] = day, 0, p, K_WARNING
                l_cause[n] = cause[r]
                l_channel[n], l_record[n], l_delta[n], l_value[n] = channel[r], rec, 0, score[p]
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
            l_day[n], l_entity[n], l_id[n], l_kind[n] = day, 0, p, K_SCORE
            l_cause[n] = cause[r]
            l_channel[n], l_record[n], l_delta[n], l_value[n] = channel[r], rec, d, score[p]
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
            l_day[n], l_entity[n], l_id[n], l_kind[n] = day, 0, p, K_GRADE
            l_cause[n] = cause[r]
            l_channel[n], l_record[n] = channel[r], rec
            l_delta[n], l_value[n] = g - grade[p], g
            n += 1
            grade_counts[grade[p]] -= 1
            grade_counts[g] += 1
            grade[p] = g
    return n


@njit(cache=True)
def _regrade(who, day, floors, score, score_true, grade, grade_true, cap_until, cap_grade,
             cap_true_until, cap_true_grade, grade_counts, l_day, l_entity, l_id, l_kind,
             l_cause, l_channel, l_record, l_delta, l_value, n, cause):  # pragma: no cover
    for r in range(len(who)):
        p = who[r]
        g, gt = _grades(p, day, floors, score, score_true, cap_until, cap_grade,
                        cap_true_until, cap_true_grade)
        grade_true[p] = gt
        if g != grade[p]:
            l_day[n], l_entity[n], l_id[n], l_kind[n] = day, 0, p, K_GRADE
            l_cause[n] = cause
            l_channel[n], l_record[n] = 0, R_NONE
            l_delta[n], l_value[n] = g - grade[p], g
            n += 1
            grade_counts[grade[p]] -= 1
            grade_counts[g] += 1
            grade[p] = g
    return n
