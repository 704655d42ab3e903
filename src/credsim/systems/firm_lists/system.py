"""Firm black and red lists (Credit China).

Each recorded firm behaviour with a severity becomes a public item, shown for
a display period drawn from the range of its severity (2025 market-regulation
rules: minor 3 months, moderate 3-12 months, serious 1-3 years). A firm is
on the blacklist while it shows an item of at least `blacklist_from`
severity; the blacklisting reaches its legal representative. A firm that has
shown no item for `red_after_days` is on the red list. Data-entry errors add
false items; as elsewhere, true and false blacklistings are counted apart so
a sanction on a legal representative can be traced to a false item.
"""

from __future__ import annotations

import numpy as np

from credsim.conditions import Standing
from credsim.ledger import (
    C_BLACKLIST_REP,
    C_DISPLAY_EXPIRY,
    K_BLACKLIST,
    NO_REF,
    R_FALSE,
    R_TRUE,
    Ledger,
)
from credsim.modules import Day, Hook, Module, Result, lazy_hook
from credsim.observation import Records, channel_codes
from credsim.rng import Stream

SEVERITIES = ("minor", "moderate", "serious")


class FirmLists(Module):
    kind = "firm_lists"
    # Its explanations in credsim lookup, from explain.py (imported when asked).
    explain = lazy_hook("credsim.systems.firm_lists.explain:explain")
    build_order = 50
    record_order = 40
    hooks = (Hook("list", "list_firms", 70),)
    standings = {"blacklisted": Standing(
        "blacklisted", "blacklisted firms the person is legal representative of, "
        "`rep_true + rep_false`", "`rep_true`", domain="firm", initial=0.0,
        ledger_kind=K_BLACKLIST)}
    ledger_kinds = ("blacklist",)
    ledger_causes = ("display_expiry", "legal_rep_of_blacklisted_firm")
    results = (Result("firms_blacklisted"), Result("firms_red_listed"),
               Result("firm_items_shown"), Result("firm_items_new"))
    random_streams = (Stream("firm_lists.setup", "numpy", "once: clean-record ages"),
                      Stream("firm_lists.display", "numpy", "day: display periods"),
                      Stream("firm_lists.false", "numpy", "day: false items"))

    @classmethod
    def present(cls, scenario) -> bool:
        return scenario.firm_lists.enabled

    @classmethod
    def required_columns(cls, scenario) -> dict[str, set[str]]:
        return {"timeseries": {"firms_blacklisted"},
                "people": {"blacklisted_firms", "blacklisted_firms_false"},
                "firms": {"items_shown", "blacklisted", "blacklisted_true", "red_listed"}}

    def __init__(self, sim) -> None:
        super().__init__(sim)
        cat = sim.cat
        params, firms, n_people, behaviour_names, rates, cause_base, streams = (
            sim.scenario.firm_lists, sim.firms, sim.people.n, cat.names, cat.rate,
            sim.ledger.behaviour_cause(0), sim.streams)
        self.p, self.firms, self.streams, self.cause_base = params, firms, streams, cause_base
        self.severity = np.array(
            [SEVERITIES.index(params.severity[b]) if b in params.severity else -1
             for b in behaviour_names], dtype=np.int8)
        self.black_from = SEVERITIES.index(params.blacklist_from)
        self.display = {SEVERITIES.index(k): v for k, v in params.display_days.items()}
        listed = np.flatnonzero(self.severity >= 0)
        w = rates[listed]
        self.false_choice = (listed, np.cumsum(w / w.sum()) if w.sum() > 0 else np.zeros(0))
        m = firms.n
        self.items = np.zeros(m, dtype=np.int32)  # items on display
        self.black = np.zeros((2, m), dtype=np.int32)  # blacklisting items: true, false
        self.rep_true = np.zeros(n_people, dtype=np.uint8)  # blacklisted firms represented
        self.rep_false = np.zeros(n_people, dtype=np.uint8)  # ... blacklisted only falsely
        # Firms start with a clean record of varied age (half of them already red-listed).
        u = streams.get("firm_lists.setup").random(m)
        self.clean_since = -np.rint(u * 2 * params.red_after_days).astype(np.int32)
        # Items by the day their display ends: (firm, severity, false, ledger row).
        self.expiring: dict[int, list[tuple[int, int, bool, int]]] = {}
        self.items_today = 0
        # The representative each firm's blacklisting reaches (a successor takes it over
        # when one dies: people_changed).
        self.rep = firms.legal_rep.copy()

    # Hooks -------------------------------------------------------------------
    def list_firms(self, d: Day) -> None:
        """Show firms' new record items, expire old ones, blacklist serious ones."""
        sim = self.sim
        reps = self.step(d.records, channel_codes(sim.cat, d.records), d.day, sim.ledger)
        d.touched.append(np.asarray(reps, dtype=np.int64))

    def people_changed(self, d: Day, change) -> None:
        """A blacklisted firm whose legal representative died (and who has a successor,
        credsim.population.firms.FirmDynamics): the blacklisting leaves the dead and
        reaches the successor."""
        moved = np.flatnonzero(self.rep != self.firms.legal_rep)
        touched: list[int] = []
        for f in moved.tolist():
            held, true = bool(self.black[:, f].sum() > 0), bool(self.black[0, f] > 0)
            if held:
                self._reach_rep(f, true, -1, d.day, self.sim.ledger, touched)
            self.rep[f] = self.firms.legal_rep[f]
            if held:
                self._reach_rep(f, true, +1, d.day, self.sim.ledger, touched)
        if touched:
            d.touched.append(np.asarray(touched, dtype=np.int64))

    def firms_founded(self, d: Day, firms: np.ndarray) -> None:
        """A new firm starts with a clean record, from today, and its representative."""
        self.clean_since[firms] = d.day
        self.rep[firms] = self.firms.legal_rep[firms]

    def _reach_rep(self, f: int, true: bool, step: int, day: int, ledger: Ledger,
                   touched: list[int]) -> None:
        """Firm f's blacklisting (on a true item or only on false ones) reaches (+1) or
        leaves (-1) its representative."""
        rep = int(self.rep[f])
        before = int(self.rep_true[rep]) + int(self.rep_false[rep])
        counts = self.rep_true if true else self.rep_false
        counts[rep] = int(counts[rep]) + step
        after = int(self.rep_true[rep]) + int(self.rep_false[rep])
        touched.append(rep)
        if after != before:
            ledger.append(day=day, entity=0, id=rep, kind=K_BLACKLIST, cause=C_BLACKLIST_REP,
                          record=R_TRUE if true else R_FALSE, delta=after - before,
                          value=after)

    def record(self, d: Day, row: dict) -> None:
        row.update(self.daily(d.day))

    def people_columns(self, part: slice) -> dict:
        return {"blacklisted_firms": self.rep_true[part] + self.rep_false[part],
                "blacklisted_firms_false": self.rep_false[part]}

    def firm_columns(self) -> dict:
        return {"items_shown": self.items, "blacklisted": self.black.sum(axis=0) > 0,
                "blacklisted_true": self.black[0] > 0,
                "red_listed": self.red_listed_mask(self.sim.scenario.run.days - 1)}

    def standing_values(self, name: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Blacklisted firms represented (on true or false items) and on true items."""
        true = self.rep_true[ids].astype(np.int32)
        return true + self.rep_false[ids], true

    @property
    def blacklisted(self) -> int:
        return int(np.count_nonzero(self.black.sum(axis=0)))

    def red_listed_mask(self, day: int) -> np.ndarray:
        if self.p.red_after_days <= 0:
            return np.zeros(len(self.items), dtype=bool)
        return (self.items == 0) & (day - self.clean_since >= self.p.red_after_days)

    def red_listed(self, day: int) -> int:
        return int(np.count_nonzero(self.red_listed_mask(day)))

    def step(self, records: Records, channel: np.ndarray, day: int,
             ledger: Ledger) -> list[int]:
        """Expire items due today, then show today's new ones; return the legal
        representatives whose standing changed."""
        touched: list[int] = []
        for firm, sev, false, row in self.expiring.pop(day, []):
            self._change(firm, sev, false, -1, C_DISPLAY_EXPIRY, 0, day, ledger, touched,
                         ref=row)
        sel = records.is_firm & (self.severity[records.behaviour] >= 0)
        firms = records.who[sel].tolist()
        behs = records.behaviour[sel].tolist()
        chans = channel[sel].tolist()
        falses = [False] * len(firms)
        fw, fb = self._false_items(day)
        firms += fw
        behs += fb
        chans += [0] * len(fw)
        falses += [True] * len(fw)
        self.items_today = len(firms)
        if not firms:
            return touched
        rng = self.streams.get("firm_lists.display", day)
        for f, b, ch, false in zip(firms, behs, chans, falses, strict=True):
            sev = int(self.severity[b])
            lo, hi = self.display[sev]
            end = day + int(rng.integers(lo, hi + 1))
            row = self._change(f, sev, false, +1, self.cause_base + b, ch, day, ledger,
                               touched)
            self.expiring.setdefault(end, []).append((f, sev, false, row))
        return touched

    def _false_items(self, day: int) -> tuple[list[int], list[int]]:
        listed, cum = self.false_choice
        if self.p.false_rate <= 0 or self.firms.n == 0 or len(cum) == 0:
            return [], []
        rng = self.streams.get("firm_lists.false", day)
        k = rng.poisson(self.firms.n * self.p.false_rate)
        who = rng.integers(0, self.firms.n, size=k)
        pick = np.minimum(np.searchsorted(cum, rng.random(k)), len(listed) - 1)
        return who.tolist(), listed[pick].tolist()

    def _change(self, f: int, sev: int, false: bool, step: int, cause: int, channel: int,
                day: int, ledger: Ledger, touched: list[int], ref: int = NO_REF) -> int:
        """Show (+1) or withdraw (-1) an item of firm f (a withdrawal refers to the item's
        row, `ref`); the legal representative's blacklist row it causes refers to the
        firm's row. Returns the firm's row."""
        rec = R_FALSE if false else R_TRUE
        self.items[f] += step
        if self.items[f] == 0:
            self.clean_since[f] = day
        row = ledger.append(day=day, entity=1, id=f, kind=K_BLACKLIST, cause=cause,
                            channel=channel, record=rec, delta=step, value=int(self.items[f]),
                            ref=ref)
        if sev < self.black_from:
            return row
        held0, true0 = self.black[:, f].sum() > 0, self.black[0, f] > 0
        self.black[1 if false else 0, f] += step
        held1, true1 = self.black[:, f].sum() > 0, self.black[0, f] > 0
        if (held0, true0) == (held1, true1):
            return row
        rep = int(self.rep[f])
        before = int(self.rep_true[rep]) + int(self.rep_false[rep])
        self.rep_true[rep] = int(self.rep_true[rep]) + int(true1) - int(true0)
        self.rep_false[rep] = (int(self.rep_false[rep]) + int(held1 and not true1)
                               - int(held0 and not true0))
        after = int(self.rep_true[rep]) + int(self.rep_false[rep])
        touched.append(rep)
        if after != before:
            ledger.append(day=day, entity=0, id=rep, kind=K_BLACKLIST, cause=C_BLACKLIST_REP,
                          record=R_FALSE if (held1 and not true1) or (held0 and not true0)
                          else R_TRUE, delta=after - before, value=after, ref=row)
        return row

    def daily(self, day: int) -> dict:
        return {"firms_blacklisted": self.blacklisted,
                "firms_red_listed": self.red_listed(day),
                "firm_items_shown": int(self.items.sum()),
                "firm_items_new": self.items_today}
