"""A points system (Rongcheng): a score per person, deductions and additions per
recorded behaviour, grades from score floors, instant grade caps.

Each person carries two scores: the score the system holds and the score it
would hold without false records ("true score"). A sanction rests on a false
record when it holds under the first and not under the second.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from credsim.ledger import C_CAP_EXPIRY, K_GRADE, K_SCORE, R_FALSE, R_NONE, R_TRUE, Ledger
from credsim.scenario.model import GRADES, PointsSystem

NO_DOMAIN = 255


class Points:
    def __init__(self, params: PointsSystem, n: int, behaviour_names: list[str]):
        self.params = params
        self.floors = np.array([params.grade_floors[g] for g in GRADES[:-1]], dtype=np.int64)
        self.score = np.full(n, params.initial, dtype=np.int32)
        self.score_true = self.score.copy()
        g0 = grade_of(params.initial, self.floors)
        self.grade = np.full(n, g0, dtype=np.uint8)
        self.grade_true = self.grade.copy()
        self.cap_until = np.full(n, -1, dtype=np.int16)
        self.cap_grade = np.zeros(n, dtype=np.uint8)
        self.cap_false = np.zeros(n, dtype=bool)
        self.last_neg_domain = np.full(n, NO_DOMAIN, dtype=np.uint8)
        self.grade_counts = np.zeros(len(GRADES), dtype=np.int64)
        self.grade_counts[g0] = n
        self.cap_by_behaviour = np.array(
            [GRADES.index(params.instant_grade[b]) if b in params.instant_grade else -1
             for b in behaviour_names], dtype=np.int16,
        )
        self._capped: list[np.ndarray] = []

    def apply(self, ledger: Ledger, day: int, who, delta, cap, cause, channel, is_false,
              domain) -> None:
        """Apply score deltas and grade caps in order, writing ledger rows."""
        if len(who) == 0:
            return
        ledger.reserve(2 * len(who))
        c = ledger.cols
        ledger.n = _apply(
            who.astype(np.int32), delta.astype(np.int32), cap.astype(np.int16),
            cause.astype(np.int16), channel.astype(np.int16), is_false.astype(np.bool_),
            domain.astype(np.uint8), day, self.params.instant_grade_days, self.floors,
            self.score, self.score_true, self.grade, self.grade_true, self.cap_until,
            self.cap_grade, self.cap_false, self.last_neg_domain, self.grade_counts,
            c["day"], c["id"], c["kind"], c["cause"], c["channel"], c["record"],
            c["delta"], c["value"], ledger.n,
        )
        capped = who[cap >= 0]
        if len(capped):
            self._capped.append(capped.astype(np.int32))

    def expire_caps(self, ledger: Ledger, day: int) -> None:
        """Regrade people whose instant grade cap ends today."""
        if not self._capped:
            return
        pending = np.unique(np.concatenate(self._capped))
        done = self.cap_until[pending] <= day
        self._capped = [pending[~done]]
        ending = pending[done & (self.cap_until[pending] == day)]
        if len(ending) == 0:
            return
        ledger.reserve(len(ending))
        c = ledger.cols
        ledger.n = _regrade(
            ending, day, self.floors, self.score, self.score_true, self.grade, self.grade_true,
            self.cap_until, self.cap_grade, self.cap_false, self.grade_counts,
            c["day"], c["id"], c["kind"], c["cause"], c["channel"], c["record"],
            c["delta"], c["value"], ledger.n, C_CAP_EXPIRY,
        )


def grade_of(score: int, floors: np.ndarray) -> int:
    return int(_grade_of(score, floors))


@njit(cache=True, inline="always")
def _grade_of(score, floors):  # pragma: no cover
    g = 0
    while g < len(floors) and score < floors[g]:
        g += 1
    return g


@njit(cache=True)
def _apply(who, delta, cap, cause, channel, is_false, domain, day, cap_days, floors,
           score, score_true, grade, grade_true, cap_until, cap_grade, cap_false,
           last_neg_domain, grade_counts, l_day, l_id, l_kind, l_cause, l_channel,
           l_record, l_delta, l_value, n):  # pragma: no cover
    for r in range(len(who)):
        p = who[r]
        d = delta[r]
        f = is_false[r]
        rec = R_FALSE if f else R_TRUE
        if d != 0:
            score[p] += d
            if not f:
                score_true[p] += d
            if d < 0:
                last_neg_domain[p] = domain[r]
            l_day[n], l_id[n], l_kind[n], l_cause[n] = day, p, K_SCORE, cause[r]
            l_channel[n], l_record[n], l_delta[n], l_value[n] = channel[r], rec, d, score[p]
            n += 1
        if cap[r] >= 0:
            last_neg_domain[p] = domain[r]
            if cap_until[p] > day:
                cap_grade[p] = max(cap_grade[p], cap[r])
                cap_false[p] = cap_false[p] and f
                cap_until[p] = max(cap_until[p], day + cap_days)
            else:
                cap_grade[p] = cap[r]
                cap_false[p] = f
                cap_until[p] = day + cap_days
        g = _grade_of(score[p], floors)
        gt = _grade_of(score_true[p], floors)
        if cap_until[p] > day:
            g = max(g, cap_grade[p])
            if not cap_false[p]:
                gt = max(gt, cap_grade[p])
        grade_true[p] = gt
        if g != grade[p]:
            l_day[n], l_id[n], l_kind[n], l_cause[n] = day, p, K_GRADE, cause[r]
            l_channel[n], l_record[n] = channel[r], rec
            l_delta[n], l_value[n] = g - grade[p], g
            n += 1
            grade_counts[grade[p]] -= 1
            grade_counts[g] += 1
            grade[p] = g
    return n


@njit(cache=True)
def _regrade(who, day, floors, score, score_true, grade, grade_true, cap_until, cap_grade,
             cap_false, grade_counts, l_day, l_id, l_kind, l_cause, l_channel, l_record,
             l_delta, l_value, n, cause):  # pragma: no cover
    for r in range(len(who)):
        p = who[r]
        g = _grade_of(score[p], floors)
        gt = _grade_of(score_true[p], floors)
        if cap_until[p] > day:
            g = max(g, cap_grade[p])
            if not cap_false[p]:
                gt = max(gt, cap_grade[p])
        grade_true[p] = gt
        if g != grade[p]:
            l_day[n], l_id[n], l_kind[n], l_cause[n] = day, p, K_GRADE, cause
            l_channel[n], l_record[n] = 0, R_NONE
            l_delta[n], l_value[n] = g - grade[p], g
            n += 1
            grade_counts[grade[p]] -= 1
            grade_counts[g] += 1
            grade[p] = g
    return n
