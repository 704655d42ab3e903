"""Safeguards: human review, notice, expiry of marks (docs/odd.md, Safeguards).

Review phase, in order: a human review team checks the day's adverse
records (deductions, grade caps, court judgments) in the order they arrive,
up to its daily capacity, and strikes out a reviewed false record with the
review's accuracy; then deductions are held for the notice period, during
which a person contests a false record with `contest_prob` and has it struck
out with `contest_success`. True records are never struck out. Expiry:
every deduction caused by a record is reversed `expiry_days` after it took
effect (a listing's deduction lasts as long as the listing).

Draws are computed from each record's identity (day, person, behaviour), so
a safeguard changes the fate of the records it touches and of no others.
"""

from __future__ import annotations

import numpy as np

from credsim.observation import Records
from credsim.rng import Streams, counter_uniform, stream_key
from credsim.scenario.model import Safeguards


class Safeguarding:
    def __init__(self, params: Safeguards, adverse: np.ndarray, noticed: np.ndarray, n: int,
                 streams: Streams):
        """`adverse`: per behaviour, records review looks at; `noticed`: per behaviour,
        records held for notice (points deductions and grade caps)."""
        self.p = params
        self.adverse, self.noticed = adverse, noticed
        self.capacity = int(round(params.review_capacity * n / 1e6))
        self.keys = {k: stream_key(f"{streams.seed}/safeguards.{k}")
                     for k in ("review", "review_order", "contest", "contest_success")}
        self.held: dict[int, list[Records]] = {}
        self.expiring: dict[int, list[tuple[np.ndarray, ...]]] = {}
        self.reviewed_today = self.struck_today = 0

    @property
    def active(self) -> bool:
        p = self.p
        return p.notice_days > 0 or self.capacity > 0 or p.expiry_days > 0

    def _u(self, name: str, day: int, r: Records) -> np.ndarray:
        key = (np.uint64(day) << np.uint64(36)) | (r.who.astype(np.uint64) << np.uint64(8)) | (
            r.behaviour.astype(np.uint64))
        return counter_uniform(self.keys[name], day, key)

    def review(self, records: Records, day: int) -> Records:
        """Human review and notice; returns the records that take effect today."""
        self.reviewed_today = self.struck_today = 0
        if self.capacity > 0 and len(records):
            # The team cannot tell false records from true ones: it checks a random
            # selection of the day's adverse records, up to its capacity.
            adverse = np.flatnonzero(self.adverse[records.behaviour] & ~records.is_firm)
            pick = np.argsort(self._u("review_order", day, records.subset(adverse)),
                              kind="stable")
            order = adverse[pick[: self.capacity]]
            self.reviewed_today = len(order)
            checked = np.zeros(len(records), dtype=bool)
            checked[order] = True
            strike = checked & records.is_false & (
                self._u("review", day, records) < self.p.review_accuracy)
            self.struck_today += int(strike.sum())
            records = records.subset(~strike)
        if self.p.notice_days > 0:
            hold = self.noticed[records.behaviour] & ~records.is_firm
            if hold.any():
                held = records.subset(hold)
                struck = held.is_false & (self._u("contest", day, held) < self.p.contest_prob) & (
                    self._u("contest_success", day, held) < self.p.contest_success)
                self.struck_today += int(struck.sum())
                self.held.setdefault(day + self.p.notice_days, []).append(held.subset(~struck))
                records = records.subset(~hold)
            due = self.held.pop(day, [])
            if due:
                records = Records.concat([records, *due])
        return records

    def schedule_expiry(self, who: np.ndarray, delta: np.ndarray, delta_true: np.ndarray,
                        record: np.ndarray, day: int) -> None:
        """Deductions that took effect today: `delta` on the held score, `delta_true` on
        the true score (they differ when a warning replaced one of them)."""
        if self.p.expiry_days <= 0:
            return
        neg = (delta < 0) | (delta_true < 0)
        if neg.any():
            self.expiring.setdefault(day + self.p.expiry_days, []).append(
                (who[neg], delta[neg], delta_true[neg], record[neg]))

    def expire(self, day: int) -> tuple[np.ndarray, ...]:
        """Deductions that expire today: (who, held delta, true delta, record code)."""
        due = self.expiring.pop(day, [])
        if not due:
            z = np.zeros(0, np.int32)
            return z, z, z, np.zeros(0, np.uint8)
        return tuple(np.concatenate(c) for c in zip(*due, strict=True))
