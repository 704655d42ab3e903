"""The court list of dishonest judgment debtors (SPC provisions, 2017 revision).

A recorded judgment default opens an enforcement case. Unpaid after the
grace period, the debtor is listed: with no fixed term when able but
refusing, for `term_days` on the other grounds. Listing ends within 3
working days of payment, on a successful correction (false cases only), or
at the end of the term; it stays in force while a correction is pending.
A failed correction can be appealed to the higher court; the listing stays
in force meanwhile. A listed firm's listing reaches its legal representative.

The case of a debtor unable to pay also ends without payment: enforcement is
terminated for this time when no assets are found (delisted after two
fruitless asset searches), the debtor settles with the creditor, or the
debtor dies with no estate (enforcement terminated); the last two delist
within 3 working days, like a payment (SPC provisions, art. 10).
"""

from __future__ import annotations

import numpy as np

from credsim.conditions import Standing
from credsim.ledger import (
    C_APPEAL,
    C_CORRECTION,
    C_DEATH,
    C_EXPIRY,
    C_LEGAL_REP,
    C_LISTING,
    C_NO_ASSETS,
    C_PAID,
    C_SETTLEMENT,
    K_LIST,
    NO_REF,
    R_FALSE,
    R_TRUE,
    Ledger,
)
from credsim.modules import Day, Hook, Module, Result, lazy_hook
from credsim.observation import Records
from credsim.rng import Stream, counter_uniform, occurrence

CASE_COLUMNS = {
    "key": np.uint64,  # (start day, firm flag, slot): the case's identity for its draws
    "is_firm": bool, "who": np.int32, "debt": np.float32, "listable": bool, "has_term": bool,
    "is_false": bool, "start": np.int32, "contest_at": np.int32, "succeeds": bool,
    "appeal_at": np.int32, "appeal_succeeds": bool,
    "listed_day": np.int32, "delist_at": np.int32, "delay": np.int32,
    "end_cause": np.int16,  # ledger cause of the delisting scheduled at delist_at
    "extension": np.int32,  # days added to a fixed term (at most once)
    # Ledger rows of the listing, which the delisting refers to: the person's row (the
    # debtor's, or a firm's legal representative's) and the firm's.
    "person_row": np.int64, "firm_row": np.int64,
    # The person the listing reached: the debtor, or the firm's legal representative then.
    "rep": np.int32,
}


class CourtList(Module):
    kind = "court_list"
    # Its explanations in credsim lookup, from explain.py (imported when asked).
    explain = lazy_hook("credsim.systems.court_list.explain:explain")
    build_order = 20
    record_order = 50
    hooks = (Hook("list", "list_debtors", 50),)
    results = (
        Result("listed"),
        Result("listed_firms"),
        Result("open_cases"),
        Result("new_listings"),
        Result("new_firm_listings"),
        Result("payments"),
    )
    standings = {"listed": Standing(
        "listed", "active listings, `n_list_true + n_list_false`", "`n_list_true`",
        domain="court", initial=0.0, ledger_kind=K_LIST)}
    ledger_kinds = ("list",)
    ledger_causes = ("court_listing", "legal_rep_of_listed_firm", "delisting_payment",
                     "delisting_expiry", "delisting_correction", "delisting_appeal",
                     "delisting_settlement", "delisting_no_assets", "delisting_death")
    random_streams = tuple(Stream(f"court.{k}", "counter", "case") for k in (
        "pay", "ground", "contest", "success", "appeal", "appeal_success", "delay", "extend",
        "extension", "end", "file"))

    @classmethod
    def present(cls, scenario) -> bool:
        return scenario.court_list.enabled

    @classmethod
    def required_columns(cls, scenario) -> dict[str, set[str]]:
        return {"timeseries": {"listed", "new_listings", "new_firm_listings", "payments"},
                "people": {"listings", "listings_false", "ever_listed"}}

    def __init__(self, sim) -> None:
        super().__init__(sim)
        s, cat = sim.scenario, sim.cat
        trigger_behaviours = np.array([cat.index(b) for b in s.court_list.triggers],
                                      dtype=np.int16)
        debt_months = np.array([s.behaviours[b].debt_months for b in cat.names])
        params, people, firms, economy, streams = (
            s.court_list, sim.people, sim.firms, sim.economy, sim.streams)
        self.p, self.people, self.firms, self.economy, self.streams = (
            params, people, firms, economy, streams
        )
        self.triggers = trigger_behaviours
        self._debt_months = debt_months  # per behaviour
        self.listed_count = 0  # people with at least one active listing
        # Draws are computed from (stream, day, case identity), not drawn in list
        # order, so a case's fate does not depend on which other cases exist.
        self.keys = {s.name.removeprefix("court."): streams.key(s.name)
                     for s in self.random_streams}
        self.n_list_true = np.zeros(people.n, dtype=np.uint8)  # active listings per person
        self.n_list_false = np.zeros(people.n, dtype=np.uint8)  # ... resting on a false case
        self.firm_listed = np.zeros(firms.n, dtype=np.uint8)
        self.ever_listed = np.zeros(people.n, dtype=bool)
        self.cases = {k: np.zeros(0, dtype=t) for k, t in CASE_COLUMNS.items()}
        self.payments_today = 0
        # Cases of unable debtors ended today without payment, by cause (C_DEATH, ...).
        self.ends_today = dict.fromkeys((C_DEATH, C_SETTLEMENT, C_NO_ASSETS), 0)
        self.person_listings_today = self.firm_listings_today = 0
        # Real deaths end cases when demography runs: the list's own hazard is then off.
        self.death_hazard = 0.0 if people.alive is not None else params.death_hazard
        self.filing, self.end_factor = 1.0, 1.0  # of today's period of the schedule

    # Hooks -------------------------------------------------------------------
    def list_debtors(self, d: Day) -> None:
        """Open cases from today's judgments; list, delist and end cases."""
        d.listings.append(self.step(d.records, d.day, self.sim.ledger))

    def people_changed(self, d: Day, change) -> None:
        """A debtor who dies ends their cases as a modelled death does (C_DEATH): a
        listed case is delisted after its delay, an unlisted one closes at once. (A
        firm's case outlives its legal representative.)"""
        c = self.cases
        if not len(change.died) or not len(c["who"]):
            return
        self._pass_on(d.day, change.died)
        mine = ~c["is_firm"] & np.isin(c["who"], change.died) & (c["delist_at"] < 0)
        listed = c["listed_day"] >= 0
        later = mine & listed
        c["delist_at"][later] = d.day + c["delay"][later]
        c["end_cause"][later] = C_DEATH
        keep = ~(mine & ~listed)
        if not keep.all():
            self.cases = {k: v[keep] for k, v in c.items()}

    def _pass_on(self, day: int, died: np.ndarray) -> None:
        """A listed firm whose legal representative died: its listing leaves the dead
        (delisting_death) and reaches the firm's new representative (named before this
        hook runs, credsim.population.firms.FirmDynamics)."""
        c, ledger = self.cases, self.sim.ledger
        moved = c["is_firm"] & (c["listed_day"] >= 0) & np.isin(c["rep"], died)
        for i in np.flatnonzero(moved):
            successor = int(self.firms.legal_rep[c["who"][i]])
            if successor == c["rep"][i]:
                continue
            self._release(i, day, ledger, C_DEATH)
            self._reach(i, successor, day, ledger, C_LEGAL_REP)

    def reviewed_behaviours(self) -> np.ndarray:
        """Behaviours whose records open cases: review checks them."""
        return np.isin(np.arange(len(self.sim.cat.names)), self.triggers)

    def record(self, d: Day, row: dict) -> None:
        row["listed"] = self.listed_count
        row["listed_firms"] = int(np.count_nonzero(self.firm_listed))
        row["open_cases"] = self.open_cases
        row["new_listings"] = self.person_listings_today
        row["new_firm_listings"] = self.firm_listings_today
        row["payments"] = self.payments_today

    def people_columns(self, part: slice) -> dict:
        return {"listings": self.n_list_true[part] + self.n_list_false[part],
                "listings_false": self.n_list_false[part],
                "ever_listed": self.ever_listed[part]}

    def firm_columns(self) -> dict:
        return {"listed": self.firm_listed}

    def standing_values(self, name: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Active listings held (true and false cases) and on true cases."""
        true = self.n_list_true[ids].astype(np.int32)
        return true + self.n_list_false[ids], true

    @property
    def open_cases(self) -> int:
        return len(self.cases["who"])

    def step(self, records: Records, day: int, ledger: Ledger) -> tuple[list, list]:
        """Run one day. Return (listed, lifted): (person, on_false_case, ledger row,
        cause) for each case listing that reaches a person, and (person, cause, the listing's ledger
        row) for each listing of a false case lifted by correction or appeal."""
        self._set_period(day)
        self._open(records, day)
        self.payments_today = self.person_listings_today = self.firm_listings_today = 0
        self.ends_today = dict.fromkeys(self.ends_today, 0)
        c = self.cases
        if len(c["who"]) == 0:
            return [], []
        u_pay = counter_uniform(self.keys["pay"], day, c["key"])
        listed = c["listed_day"] >= 0
        closed = np.zeros(len(c["who"]), dtype=bool)
        new_listings: list[tuple[int, bool, int, int]] = []
        lifted: list[tuple[int, int, int]] = []

        # A correction that succeeds ends a false case, listed or not.
        fix = c["is_false"] & (c["contest_at"] == day) & c["succeeds"]
        for i in np.flatnonzero(fix & listed):
            lifted.append((self._delist(i, day, ledger, C_CORRECTION), C_CORRECTION,
                           int(c["person_row"][i])))
        closed |= fix
        # ... and so does an appeal that succeeds after a failed correction.
        won = ~closed & c["is_false"] & (c["appeal_at"] == day) & c["appeal_succeeds"]
        for i in np.flatnonzero(won & listed):
            lifted.append((self._delist(i, day, ledger, C_APPEAL), C_APPEAL,
                           int(c["person_row"][i])))
        closed |= won
        # Delisting scheduled after a payment, a settlement, a death or a termination.
        due = ~closed & (c["delist_at"] == day)
        for i in np.flatnonzero(due):
            self._delist(i, day, ledger, int(c["end_cause"][i]))
        closed |= due
        # End of a fixed term: extended once with some probability, else delisted. A
        # delisting pending after termination for this time does not hold the term's end.
        end = c["listed_day"] + self.p.term_days + c["extension"]
        unscheduled = (c["delist_at"] < 0) | (c["end_cause"] == C_NO_ASSETS)
        expire = ~closed & listed & c["has_term"] & unscheduled & (day >= end)
        if self.p.extension_prob > 0 and expire.any():
            extend = expire & (c["extension"] == 0) & (
                counter_uniform(self.keys["extend"], day, c["key"]) < self.p.extension_prob)
            lo, hi = self.p.extension_years
            years = lo + np.floor(counter_uniform(self.keys["extension"], day, c["key"])
                                  * (max(hi, lo) - lo + 1)).astype(np.int32)
            c["extension"][extend] = 365 * years[extend]
            expire &= ~extend
        for i in np.flatnonzero(expire):
            self._delist(i, day, ledger, C_EXPIRY)
        closed |= expire
        closed |= self._end_unable(day, listed, closed)
        # Payments: pressure of the listing raises the hazard.
        able = c["listable"] & ~c["has_term"]
        hazard = self.p.pay_hazard * np.where(able, 1.0, self.p.unable_pay_factor)
        hazard = hazard * np.where(listed, self.p.listed_pay_factor, 1.0)
        compliance = np.where(
            c["is_firm"], self._firm_compliance(c), self.people.compliance[self._person(c)]
        )
        hazard = hazard * 2.0 * compliance * self.end_factor
        pays = ~closed & (c["delist_at"] < 0) & (u_pay < hazard)
        # A fulfilled settlement is a payment too (of the agreed part of the debt).
        self.payments_today = int(pays.sum()) + self.ends_today[C_SETTLEMENT]
        pay_persons = pays & ~c["is_firm"]
        self.economy.charge(c["who"][pay_persons], c["debt"][pay_persons].astype(np.float64), day)
        c["delist_at"][pays & listed] = day + c["delay"][pays & listed]
        c["end_cause"][pays & listed] = C_PAID
        closed |= pays & ~listed
        # Listing once the grace period is over.
        to_list = (
            ~closed & ~listed & c["listable"] & (c["delist_at"] < 0)
            & (day >= c["start"] + self.p.grace_days)
        )
        for i in np.flatnonzero(to_list):
            new_listings.append(self._list(i, day, ledger))
        self.firm_listings_today = int((to_list & c["is_firm"]).sum())
        self.person_listings_today = int((to_list & ~c["is_firm"]).sum())
        keep = ~closed
        self.cases = {k: v[keep] for k, v in c.items()}
        return new_listings, lifted

    def _end_unable(self, day: int, listed: np.ndarray, closed: np.ndarray) -> np.ndarray:
        """End today's cases of unable debtors that die, settle or are terminated for this
        time (competing hazards, one uniform per case and day); return the unlisted ones,
        closed at once. A settling person pays `settlement_share` of the debt. A listed case
        is delisted later: `delay` days after a death or a settlement, `no_assets_delist_days`
        after a termination."""
        c, p = self.cases, self.p
        u = counter_uniform(self.keys["end"], day, c["key"])
        death = np.where(c["is_firm"], 0.0, self.death_hazard)  # firms do not die
        settle = death + p.settlement_hazard * self.end_factor
        unable = ~c["listable"] | c["has_term"]
        at_risk = ~closed & unable & (c["delist_at"] < 0)
        dies = at_risk & (u < death)
        settles = at_risk & ~dies & (u < settle)
        no_assets = at_risk & ~dies & ~settles & (
            u < settle + p.no_assets_hazard * self.end_factor)
        settled_persons = settles & ~c["is_firm"]
        self.economy.charge(c["who"][settled_persons],
                            p.settlement_share * c["debt"][settled_persons].astype(np.float64),
                            day)
        for mask, cause, lag in ((dies, C_DEATH, c["delay"]), (settles, C_SETTLEMENT, c["delay"]),
                                 (no_assets, C_NO_ASSETS, p.no_assets_delist_days)):
            self.ends_today[cause] = int(mask.sum())
            later = mask & listed
            c["delist_at"][later] = day + (lag[later] if np.ndim(lag) else lag)
            c["end_cause"][later] = cause
        return (dies | settles | no_assets) & ~listed

    def _set_period(self, day: int) -> None:
        """Filing and the ending of cases from the schedule's period of `day`."""
        for period in self.p.schedule:
            if period.from_day > day:
                break
            self.filing, self.end_factor = period.filing, period.end_factor

    def _person(self, c: dict) -> np.ndarray:
        return np.where(c["is_firm"], 0, c["who"])

    def _firm_compliance(self, c: dict) -> np.ndarray:
        if self.firms.n == 0:
            return np.zeros(len(c["who"]), dtype=np.float32)
        return self.firms.compliance[np.where(c["is_firm"], c["who"], 0)]

    def _open(self, records: Records, day: int) -> None:
        mask = np.isin(records.behaviour, self.triggers)
        if not mask.any():
            return
        r = records.subset(mask)
        key = (np.uint64(day) << np.uint64(33)) | (
            r.is_firm.astype(np.uint64) << np.uint64(32)) | r.who.astype(np.uint64)
        # Two cases opened on one day against one debtor draw apart: the second and
        # later carry their ordinal above the day's bits.
        key |= occurrence(key) << np.uint64(50)
        if self.filing < 1.0:  # only a share of the judgments opens a case this period
            filed = counter_uniform(self.keys["file"], day, key) < self.filing
            r, key = r.subset(filed), key[filed]
            if not len(key):
                return
        k = len(r)

        def u(name: str) -> np.ndarray:
            return counter_uniform(self.keys[name], day, key)

        u_ground, u_contest, u_success = u("ground"), u("contest"), u("success")
        u_appeal, u_appeal_success = u("appeal"), u("appeal_success")
        lo, hi = self.p.delist_days
        delay = lo + np.floor(u("delay") * (max(hi, lo) - lo + 1)).astype(np.int32)
        person = np.where(r.is_firm, self._reps(r.who, r.is_firm), r.who)
        months = self._debt_months[r.behaviour]
        debt = months * self.people.income[person] / 12.0 * np.where(r.is_firm, 5.0, 1.0)
        able = self.economy.savings_now(person, day) >= debt
        other = ~able & (u_ground < self.p.other_grounds_share)
        contest = r.is_false & (u_contest < self.p.contest_prob)
        new = {
            "key": key, "is_firm": r.is_firm, "who": r.who, "debt": debt, "listable": able | other,
            "has_term": other, "is_false": r.is_false, "start": np.full(k, day),
            "contest_at": np.where(contest, day + self.p.correction_days, -1),
            "succeeds": u_success < self.p.correction_success,
            "appeal_at": np.where(
                contest & (u_success >= self.p.correction_success)
                & (u_appeal < self.p.appeal_prob),
                day + self.p.correction_days + self.p.appeal_days, -1,
            ),
            "appeal_succeeds": u_appeal_success < self.p.appeal_success,
            "listed_day": np.full(k, -1), "delist_at": np.full(k, -1), "delay": delay,
            "end_cause": np.full(k, -1),
            "extension": np.zeros(k),
            "person_row": np.full(k, NO_REF), "firm_row": np.full(k, NO_REF),
            "rep": np.full(k, -1),
        }
        self.cases = {
            col: np.concatenate([self.cases[col], np.asarray(new[col]).astype(t)])
            for col, t in CASE_COLUMNS.items()
        }

    def _reps(self, who: np.ndarray, is_firm: np.ndarray) -> np.ndarray:
        if self.firms.n == 0:
            return who
        return self.firms.legal_rep[np.where(is_firm, who, 0)]

    def _list(self, i: int, day: int, ledger: Ledger) -> tuple[int, bool, int, int]:
        """List case i; return the person it reaches, whether the case is false, the
        person's listing row and its cause (C_LISTING, or C_LEGAL_REP for a firm's)."""
        c = self.cases
        c["listed_day"][i] = day
        false = bool(c["is_false"][i])
        rec = R_FALSE if false else R_TRUE
        who = int(c["who"][i])
        if c["is_firm"][i]:
            self.firm_listed[who] += 1
            # The legal representative's listing refers to the firm's.
            c["firm_row"][i] = ledger.append(day=day, entity=1, id=who, kind=K_LIST,
                                             cause=C_LISTING, record=rec, delta=1,
                                             value=int(self.firm_listed[who]))
            person, cause = int(self.firms.legal_rep[who]), C_LEGAL_REP
        else:
            person, cause = who, C_LISTING
        row = self._reach(i, person, day, ledger, cause)
        return person, false, row, cause

    def _reach(self, i: int, person: int, day: int, ledger: Ledger, cause: int) -> int:
        """Case i's listing reaches `person`; return the person's listing row."""
        c = self.cases
        false = bool(c["is_false"][i])
        counts = self.n_list_false if false else self.n_list_true
        counts[person] += 1
        self.ever_listed[person] = True
        total = int(self.n_list_true[person]) + int(self.n_list_false[person])
        row = ledger.append(day=day, entity=0, id=person, kind=K_LIST, cause=cause,
                            record=R_FALSE if false else R_TRUE, delta=1, value=total,
                            ref=int(c["firm_row"][i]))
        c["person_row"][i], c["rep"][i] = row, person
        self.listed_count += total == 1
        return row

    def _delist(self, i: int, day: int, ledger: Ledger, cause: int) -> int:
        """End case i's listing (each delisting row refers to its listing row); return the
        person it reached."""
        c = self.cases
        false = bool(c["is_false"][i])
        rec = R_FALSE if false else R_TRUE
        who = int(c["who"][i])
        if c["is_firm"][i]:
            self.firm_listed[who] -= 1
            ledger.append(day=day, entity=1, id=who, kind=K_LIST, cause=cause, record=rec,
                          delta=-1, value=int(self.firm_listed[who]),
                          ref=int(c["firm_row"][i]))
        self._release(i, day, ledger, cause)
        return int(c["rep"][i])

    def _release(self, i: int, day: int, ledger: Ledger, cause: int) -> None:
        """Case i's listing no longer reaches the person it reached."""
        c = self.cases
        false = bool(c["is_false"][i])
        rec = R_FALSE if false else R_TRUE
        person = int(c["rep"][i])
        counts = self.n_list_false if false else self.n_list_true
        counts[person] -= 1
        total = int(self.n_list_true[person]) + int(self.n_list_false[person])
        ledger.append(day=day, entity=0, id=person, kind=K_LIST, cause=cause, record=rec,
                      delta=-1, value=total, ref=int(c["person_row"][i]))
        self.listed_count -= total == 0
