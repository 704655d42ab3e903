"""Safeguards: human review, notice, expiry of marks (docs/odd.md, Safeguards).

Review phase, in order: a human review team checks the day's adverse
records (deductions, grade caps, court judgments) in the order they arrive,
up to its daily capacity, and strikes out a reviewed false record with the
review's accuracy; then deductions are held for the notice period, during
which a person contests a false record with `contest_prob` and has it struck
out with `contest_success`. True records are never struck out. Expiry:
every deduction caused by a record is reversed `expiry_days` after it took
effect (a listing's deduction lasts as long as the listing).

Draws are computed from each record's identity (day, person, behaviour, and its
ordinal among the day's records with those), so a safeguard changes the fate of
the records it touches and of no others.
"""

from __future__ import annotations

import numpy as np

from credsim.ledger import C_MARK_EXPIRY
from credsim.modules import Day, Hook, Module, Result
from credsim.modules.day import by_owner
from credsim.observation import Records
from credsim.rng import Stream, counter_uniform, occurrence


class Safeguarding(Module):
    kind = "safeguards"
    build_order = 80
    record_order = 80
    ledger_causes = ("mark_expiry",)
    hooks = (Hook("review", "review_records", 50), Hook("score", "expire_marks", 20),
             Hook("score", "schedule_expiry", 45))
    results = (
        Result("records_reviewed"),
        Result("records_struck"),
        Result("marks_expired"),
    )

    random_streams = tuple(Stream(f"safeguards.{k}", "counter",
                                  "record: day, person, behaviour and ordinal")
                           for k in ("review", "review_order", "contest", "contest_success"))

    @classmethod
    def present(cls, scenario) -> bool:
        p = scenario.safeguards
        return p.notice_days > 0 or p.review_capacity > 0 or p.expiry_days > 0

    def __init__(self, sim) -> None:
        super().__init__(sim)
        params, n, streams = sim.scenario.safeguards, sim.people.n, sim.streams
        # Records held for notice: deductions and grade caps; review also looks at what
        # other modules name (court judgments), gathered once all are built (setup).
        self.noticed = sim.cat.penalised
        self.adverse = self.noticed.copy()
        self.p = params
        self.capacity = int(round(params.review_capacity * n / 1e6))
        self.keys = {s.name.removeprefix("safeguards."): streams.key(s.name)
                     for s in self.random_streams}
        self.held: dict[int, list[Records]] = {}
        self.expiring: dict[int, list[tuple]] = {}
        self.reviewed_today = self.struck_today = self.marks_expired_today = 0

    def setup(self) -> None:
        for m in self.sim.modules.values():
            extra = m.reviewed_behaviours()
            if extra is not None:
                self.adverse = self.adverse | extra

    # Hooks -------------------------------------------------------------------
    def review_records(self, d: Day) -> None:
        """Human review strikes false records; notice holds deductions for contest."""
        d.records = self.review(d.records, d.day)

    def expire_marks(self, d: Day) -> None:
        """Reverse the deductions that expire today, by the module that made them."""
        due = self.expiring.pop(d.day, [])
        self.marks_expired_today = sum(len(e[1]) for e in due)
        for owner, who, delta, delta_true, record, rows in by_owner(due):
            owner.reverse(d, who, delta, delta_true, record, C_MARK_EXPIRY, 0, rows)

    def schedule_expiry(self, d: Day) -> None:
        """Deductions that took effect today expire `expiry_days` later, unless an audit
        will reverse them first."""
        for a in d.applied:
            keep = ~a.caught
            self._schedule(a.owner, a.who[keep], a.delta[keep], a.delta_true[keep],
                           a.record[keep], a.rows[keep], d.day)

    def record(self, d: Day, row: dict) -> None:
        if self.active:
            row["records_reviewed"] = self.reviewed_today
            row["records_struck"] = self.struck_today
            row["marks_expired"] = self.marks_expired_today

    @property
    def active(self) -> bool:
        p = self.p
        return p.notice_days > 0 or self.capacity > 0 or p.expiry_days > 0

    def _u(self, name: str, day: int, r: Records) -> np.ndarray:
        key = (np.uint64(day) << np.uint64(36)) | (r.who.astype(np.uint64) << np.uint64(8)) | (
            r.behaviour.astype(np.uint64))
        # Two records of one behaviour against one person on one day draw apart: the
        # second and later carry their ordinal in the key's top bits.
        return counter_uniform(self.keys[name], day, key | (occurrence(key) << np.uint64(52)))

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

    def _schedule(self, owner: Module, who: np.ndarray, delta: np.ndarray,
                  delta_true: np.ndarray, record: np.ndarray, rows: np.ndarray,
                  day: int) -> None:
        """Deductions that took effect today: `delta` on the held score, `delta_true` on
        the true score (they differ when a warning replaced one of them); `rows`: their
        ledger rows, which the reversals will refer to."""
        if self.p.expiry_days <= 0:
            return
        neg = (delta < 0) | (delta_true < 0)
        if neg.any():
            self.expiring.setdefault(day + self.p.expiry_days, []).append(
                (owner, who[neg], delta[neg], delta_true[neg], record[neg], rows[neg]))
