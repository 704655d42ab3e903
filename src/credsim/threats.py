"""Threats: insiders who fabricate records, audits that catch them, and malicious
informants.

Insiders are adults with edit rights. Each day they make a Poisson number of
edits, each recording the scenario's `insider_behaviour` against a target:
anyone, a critic (the most vocal tenth of adults), or one of the insider's
few personal enemies. An edit enters like any record (so review and notice
can strike it) and is flagged `insider` in the ledger; an audit catches it
with `audit_prob` and reverses it `audit_days` after it took effect.
Malicious informants report a random contact (a non-family tie) for
`informant_behaviour`: a false record that came through no channel.
Colluders certify good deeds (`collusion_behaviour`) for each other, each at
`collusion_rate` while their score is below the floor of `collusion_target`:
false rewards meant to cross a threshold.
"""

from __future__ import annotations

import numpy as np

from credsim.ledger import C_AUDIT, R_INSIDER
from credsim.modules import Day, Hook, Module, Result
from credsim.modules.day import by_owner
from credsim.observation import S_COLLUSION, S_INFORMANT, S_INSIDER, Records
from credsim.population.graph import DROPPED, FAMILY
from credsim.population.people import is_adult
from credsim.rng import Stream, counter_uniform, occurrence

CRITIC_QUANTILE = 0.9


class Threats(Module):
    kind = "threats"
    build_order = 85
    record_order = 70
    ledger_causes = ("audit_reversal",)
    hooks = (Hook("observe", "fabricate", 60), Hook("score", "reverse_caught", 25),
             Hook("score", "schedule_audits", 40))
    results = (
        Result("insider_edits"),
        Result("informant_reports"),
        Result("audit_catches"),
        Result("collusion_certificates"),
    )

    random_streams = (Stream("threats.setup", "numpy", "once: insiders, colluders"),
                      Stream("threats.insider", "numpy", "day"),
                      Stream("threats.informant", "numpy", "day"),
                      Stream("threats.collusion", "numpy", "day"),
                      Stream("threats.audit", "counter", "edit: day and person"))

    @classmethod
    def present(cls, scenario) -> bool:
        t = scenario.threats
        return t.insiders_per_million > 0 or t.informant_rate > 0 or (
            t.colluders_per_million > 0)

    @classmethod
    def needs_ties(cls, scenario, classes) -> bool:
        return scenario.threats.informant_rate > 0  # informants report their contacts

    def people_changed(self, d, change) -> None:
        """Informants and their targets are living adults: the list follows those who
        come of age and die (insiders and colluders are drawn once, at the start)."""
        if len(change.came_of_age) or len(change.died):
            alive = self.adults[is_adult(self.people.age[self.adults])]
            self.adults = np.union1d(alive, change.came_of_age).astype(alive.dtype)

    def __init__(self, sim) -> None:
        super().__init__(sim)
        params, behaviour_names, people, graph, streams = (
            sim.scenario.threats, sim.cat.names, sim.people, sim.graph, sim.streams)
        # An edit caught by audit is reversed no later than the expiry of marks, which
        # would otherwise have reversed it first.
        expiry = sim.scenario.safeguards.expiry_days
        max_delay = expiry if expiry > 0 else None
        # Colluders aim for the floor of a grade, of the system that grades people.
        self.graded = sim.provider("grade")
        collusion_floor = (self.graded.floor_of(params.collusion_target)
                           if self.graded is not None else 0)
        self.p, self.people, self.graph, self.streams = params, people, graph, streams
        self.audit_delay = min(params.audit_days, max_delay or params.audit_days)
        rng = streams.get("threats.setup")
        adults = np.flatnonzero(is_adult(people.age))
        k = int(round(params.insiders_per_million * people.n / 1e6))
        self.insiders = rng.choice(adults, size=min(k, len(adults)), replace=False)
        self.critics = adults
        if len(adults):
            voice = people.voice[adults]
            self.critics = adults[voice >= np.quantile(voice, CRITIC_QUANTILE)]
        self.enemies = np.zeros((0, 1), np.int64)
        if len(adults) and len(self.insiders):
            self.enemies = rng.choice(adults, size=(len(self.insiders), params.enemies_per_insider))
        names = behaviour_names
        self.b_insider = names.index(params.insider_behaviour) if params.insider_behaviour in (
            names) else -1
        self.b_informant = names.index(params.informant_behaviour) if (
            params.informant_behaviour in names) else -1
        self.adults = adults
        k = int(round(params.colluders_per_million * people.n / 1e6))
        self.colluders = np.sort(rng.choice(adults, size=min(k, len(adults)), replace=False))
        self.b_collusion = names.index(params.collusion_behaviour) if (
            params.collusion_behaviour in names) else -1
        self.collusion_floor = collusion_floor
        self.audit_key = streams.key("threats.audit")
        self.audits: dict[int, list[tuple]] = {}  # day -> [(owner, ids, deltas, rows)]
        self.edits_today = self.reports_today = self.caught_today = self.certified_today = 0

    # Hooks -------------------------------------------------------------------
    def fabricate(self, d: Day) -> None:
        """Add insiders' edits, malicious reports and colluders' certificates."""
        if self.active:
            score = self.graded.score if self.graded is not None else None
            d.records = Records.concat([d.records, self.step(d.day, score)])

    def reverse_caught(self, d: Day) -> None:
        """Reverse the insider edits an audit caught, by the module that made them."""
        due = self.audits.pop(d.day, [])
        self.caught_today = sum(len(w) for _, w, _, _ in due)
        n_ch = len(self.sim.cat.channel_names)
        for owner, who, delta, rows in by_owner(due):
            k = len(who)
            owner.reverse(d, who, delta, np.zeros(k, np.int32), np.full(k, R_INSIDER),
                          C_AUDIT, n_ch + 2, rows)

    def schedule_audits(self, d: Day) -> None:
        """Decide which of today's insider edits an audit will catch, and when."""
        for a in d.applied:
            a.caught[:] = self._schedule_audits(a.owner, a.who, a.delta, a.source, a.rows,
                                                d.day)

    def record(self, d: Day, row: dict) -> None:
        if self.active:
            row["insider_edits"] = self.edits_today
            row["informant_reports"] = self.reports_today
            row["audit_catches"] = self.caught_today
            if len(self.colluders):
                row["collusion_certificates"] = self.certified_today

    @property
    def active(self) -> bool:
        return len(self.insiders) > 0 or self.p.informant_rate > 0 or len(self.colluders) > 0

    def step(self, day: int, score: np.ndarray | None = None) -> Records:
        """Today's fabricated records (insider edits, malicious reports, then colluders'
        certificates; `score`: the points system's held scores)."""
        self.edits_today = self.reports_today = self.certified_today = 0
        parts = [self._edits(day), self._reports(day), self._collusion(day, score)]
        return Records.concat([r for r in parts if r is not None] or [_empty()])

    def _collusion(self, day: int, score: np.ndarray | None) -> Records | None:
        if len(self.colluders) == 0 or self.b_collusion < 0 or score is None:
            return None
        rng = self.streams.get("threats.collusion", day)
        # Every colluder draws, so one ring member's score never shifts another's draws.
        k = rng.poisson(self.p.collusion_rate, size=len(self.colluders))
        k[score[self.colluders] >= self.collusion_floor] = 0
        who = np.repeat(self.colluders, k)
        self.certified_today = len(who)
        return _records(who, self.b_collusion, S_COLLUSION)

    def _edits(self, day: int) -> Records | None:
        if len(self.insiders) == 0 or self.b_insider < 0:
            return None
        rng = self.streams.get("threats.insider", day)
        k = rng.poisson(len(self.insiders) * self.p.insider_edit_rate)
        who_edits = rng.integers(0, len(self.insiders), size=k)
        if self.p.insider_target == "critics" and len(self.critics):
            target = self.critics[rng.integers(0, len(self.critics), size=k)]
        elif self.p.insider_target == "enemies":
            target = self.enemies[who_edits, rng.integers(0, self.enemies.shape[1], size=k)]
        else:
            target = self.adults[rng.integers(0, len(self.adults), size=k)]
        self.edits_today = k
        return _records(target, self.b_insider, S_INSIDER)

    def _reports(self, day: int) -> Records | None:
        if self.p.informant_rate <= 0 or self.b_informant < 0:
            return None
        rng = self.streams.get("threats.informant", day)
        k = rng.poisson(len(self.adults) * self.p.informant_rate)
        informant = self.adults[rng.integers(0, len(self.adults), size=k)]
        g = self.graph
        start = g.indptr[informant]
        deg = g.indptr[informant + 1] - start
        # A random live, non-family tie to an adult: draw again (up to 8 times)
        # otherwise; an informant who finds none reports no one.
        pick = np.full(k, -1, dtype=np.int64)
        for _ in range(8):
            todo = (pick < 0) & (deg > 0)
            if not todo.any():
                break
            cand = start[todo] + (rng.random(int(todo.sum())) * deg[todo]).astype(np.int64)
            ok = (g.kind[cand] & DROPPED) == 0
            ok &= (g.kind[cand] & 0x7F) != FAMILY
            ok &= is_adult(self.people.age[g.indices[cand]])
            pick[np.flatnonzero(todo)[ok]] = cand[ok]
        target = g.indices[pick[pick >= 0]]
        self.reports_today = len(target)
        return _records(target, self.b_informant, S_INFORMANT)

    def _schedule_audits(self, owner: Module, who: np.ndarray, delta: np.ndarray,
                         source: np.ndarray, rows: np.ndarray, day: int) -> np.ndarray:
        """Insider edits that took effect today (`rows`: their ledger rows): the caught
        ones are reversed later, referring to them. Returns which of the given records
        an audit caught."""
        edit = (source == S_INSIDER) & (delta != 0)  # a warning gives nothing back
        caught = np.zeros(len(who), dtype=bool)
        if self.p.audit_prob <= 0 or not edit.any():
            return caught
        key = (np.uint64(day) << np.uint64(36)) | (who[edit].astype(np.uint64) << np.uint64(8))
        key |= occurrence(key) << np.uint64(52)  # two edits of one person's record draw apart
        caught[edit] = counter_uniform(self.audit_key, day, key) < self.p.audit_prob
        if caught.any():
            self.audits.setdefault(day + self.audit_delay, []).append(
                (owner, who[caught], delta[caught], rows[caught]))
        return caught


def _records(who: np.ndarray, behaviour: int, source: int) -> Records:
    k = len(who)
    return Records(who.astype(np.int32), np.full(k, behaviour, np.int16), np.ones(k, bool),
                   np.zeros(k, bool), np.full(k, source, np.uint8))


def _empty() -> Records:
    return _records(np.zeros(0, np.int32), 0, S_INSIDER)
