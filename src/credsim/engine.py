"""The simulation: builds the society and runs the fixed daily loop.

One day is: behave -> observe -> review -> score -> list -> consequences ->
adapt -> record. Each phase is timed so a user can see
where the time goes. Every per-day step costs time in proportion to the
day's events, not to the population, except what the scenario asks of
everyone (none of the shipped presets do).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from credsim.adaptation import Adapt
from credsim.behaviour import D_VOICE, Behaviour, compile_catalogue
from credsim.consequences import Consequences, SystemState
from credsim.economy import Economy
from credsim.ledger import (
    C_AUDIT,
    C_LISTING,
    C_MARK_EXPIRY,
    K_BLACKLIST,
    K_LIST,
    R_INSIDER,
    Ledger,
)
from credsim.observation import S_COLLUSION, S_INFORMANT, S_INSIDER, Observation, Records
from credsim.population.firms import build_firms
from credsim.population.graph import build_graph
from credsim.population.people import CHILD, build_people
from credsim.rng import Streams
from credsim.safeguards import Safeguarding
from credsim.scenario.model import DOMAINS, GRADES, Scenario
from credsim.systems.composite import Composite
from credsim.systems.court_list import CourtList
from credsim.systems.firm_lists import FirmLists
from credsim.systems.peer_rating import PeerRatings
from credsim.systems.points import Points
from credsim.threats import Threats

PHASES = ("behave", "observe", "review", "score", "list", "consequences", "adapt", "record")
SETUP_PHASES = ("population", "graph", "firms")


class Simulation:
    def __init__(self, scenario: Scenario, ledger_path: Path | None = None):
        self.scenario = s = scenario
        self.timings: dict[str, float] = {k: 0.0 for k in SETUP_PHASES + PHASES}
        self.streams = Streams(s.run.seed)
        n = s.run.people
        with self._phase("population"):
            self.people = build_people(s.population, n, self.streams)
        with self._phase("graph"):
            self.graph = build_graph(self.people, s.graph, self.streams.int_seed("graph"))
        with self._phase("firms"):
            n_firms = int(round(s.population.firms_per_thousand * n / 1000))
            self.firms = build_firms(n_firms, self.people, s.population.firm_compliance,
                                     self.streams)
        self.cat = cat = compile_catalogue(s)
        self.economy = Economy(self.people, s.feedback)
        self.behaviour = Behaviour(cat, self.people, self.firms, self.economy, self.streams)
        self.observation = Observation(cat, self.people, self.streams)
        self.ledger = Ledger(ledger_path, cat.names, cat.channel_names)
        self.adults = int(np.count_nonzero(self.people.age != CHILD))
        self.points = (
            Points(s.points, n, cat.names, self.adults) if s.points.enabled else None
        )
        self.court = None
        if s.court_list.enabled:
            triggers = np.array([cat.index(b) for b in s.court_list.triggers], dtype=np.int16)
            debt = np.array([s.behaviours[b].debt_months for b in cat.names])
            self.court = CourtList(s.court_list, self.people, self.firms, self.economy,
                                   self.streams, triggers, debt)
        self.composite = None
        if s.composite.enabled:
            listed = (self.court.n_list_true, self.court.n_list_false) if self.court else None
            self.composite = Composite(s.composite, self.people, self.graph, self.economy,
                                       self.streams, cat, listed)
            if s.composite.opt_in < 1 and not s.points.enabled:
                # An opt-in system changes the conduct of those who take part only.
                self.behaviour.exempt_people(~self.composite.opted)
        self.rating = (PeerRatings(s.rating, self.people, self.graph, self.streams)
                       if s.rating.enabled else None)
        self.firm_lists = None
        if s.firm_lists.enabled:
            self.firm_lists = FirmLists(s.firm_lists, self.firms, n, cat.names, cat.rate,
                                        self.ledger.behaviour_cause(0), self.streams)
        nb = len(cat.names)
        noticed = cat.penalised  # what review and notice act on
        court = np.isin(np.arange(nb), self.court.triggers) if self.court else np.zeros(nb, bool)
        self.safeguards = Safeguarding(s.safeguards, noticed | court, noticed, n, self.streams)
        self.proportionality_cap = s.safeguards.proportionality_cap
        expiry = s.safeguards.expiry_days
        floor = 0
        if self.points is not None:
            floor = int(s.points.grade_floors.get(s.threats.collusion_target, 0))
        self.threats = Threats(s.threats, cat.names, self.people, self.graph, self.streams,
                               max_delay=expiry if expiry > 0 else None, collusion_floor=floor)
        self.consequences = Consequences(s, self.people, self.economy, self.streams,
                                         self._system_state())
        if self.composite is not None:
            self.consequences.update_score_candidates()
        self.adapt = Adapt(s.adaptation, cat, self.behaviour, self.graph, self.streams)
        self.voice_behaviours = np.flatnonzero(cat.driver == D_VOICE)
        self.scored = (cat.delta != 0) | (
            self.points.cap_by_behaviour >= 0 if self.points else False
        )
        self.rows: list[dict] = []
        self.domains_used = np.isin(np.arange(len(DOMAINS)), cat.domain)
        self.marks_expired_today = 0
        self.day = 0

    def _system_state(self) -> SystemState:
        st = SystemState(self.people.n)
        if self.points is not None:
            pts = self.points
            st.has_points = True
            st.grade, st.grade_true, st.points_domain = pts.grade, pts.grade_true, (
                pts.last_neg_domain)
            st.initial_grade = int(pts.grade[0])
        if self.court is not None:
            st.has_list = True
            st.n_list_true, st.n_list_false = self.court.n_list_true, self.court.n_list_false
        if self.composite is not None:
            c = self.composite
            st.score, st.score_true, st.composite_domain = c.score, c.score_true, (
                c.last_neg_domain)
        if self.rating is not None:
            st.rating, st.rating_true = self.rating.rating, self.rating.rating_true
        if self.firm_lists is not None:
            st.has_black = True
            st.n_black_true, st.n_black_false = self.firm_lists.rep_true, (
                self.firm_lists.rep_false)
        return st

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.timings[name] += time.perf_counter() - t0

    def run(self, on_day: Callable[[int], None] | None = None) -> None:
        for day in range(self.scenario.run.days):
            self.step(day)
            if on_day is not None:
                on_day(day + 1)
        self.economy.finalize(self.scenario.run.days)
        self.ledger.close()

    def step(self, day: int) -> None:
        cat, ledger = self.cat, self.ledger
        self.day = day
        with self._phase("behave"):
            events = self.behaviour.step(day)
        with self._phase("observe"):
            records = self.observation.step(events, day)
            n_observed = int((~records.is_false).sum())
            n_false = len(records) - n_observed  # channel errors (threats counted apart)
            if self.threats.active:
                score = self.points.score if self.points is not None else None
                records = Records.concat([records, self.threats.step(day, score)])
        with self._phase("review"):
            records = self.safeguards.review(records, day)
        since = ledger.n
        acted_who = np.zeros(0, np.int32)
        acted_beh = np.zeros(0, np.int16)
        touched = []  # people whose held or true state may have moved today
        with self._phase("score"):
            if self.points is not None:
                touched.append(self.points.expire_caps(ledger, day))
                touched.append(self._expire_marks(day))
                touched.append(self._reverse_caught_edits(day))
                sel = ~records.is_firm & self.scored[records.behaviour]
                acted_who, acted_beh = records.who[sel], records.behaviour[sel]
                touched.append(acted_who)
                b = acted_beh
                delta = cat.delta[b]
                # Whether a deduction is minor enough to warn about is judged before the
                # proportionality cap: a capped serious offence is no minor one.
                warnable = (delta < 0) & (delta >= -self.points.params.warn_max)
                if self.proportionality_cap > 0:
                    delta = np.maximum(delta, -self.proportionality_cap)
                acted = records.subset(sel)
                rec = acted.ledger_record()
                self.points.warnings_today = 0
                delta, delta_true = self.points.apply(
                    ledger, day, acted_who, delta, self.points.cap_by_behaviour[b],
                    b.astype(np.int32) + ledger.behaviour_cause(0), self._channel_codes(acted),
                    rec, cat.domain[b], warnable,
                )
                # An edit an audit will catch is reversed once, by the audit, not also
                # by expiry.
                caught = self.threats.schedule_audits(acted_who, delta, acted.source, day)
                self.safeguards.schedule_expiry(acted_who[~caught], delta[~caught],
                                                delta_true[~caught], rec[~caught], day)
            if self.composite is not None:
                c = self.composite
                person = records.subset(~records.is_firm)
                counted = c.mark(ledger, day, person.who, person.behaviour,
                                 person.behaviour.astype(np.int32) + ledger.behaviour_cause(0),
                                 self._channel_codes(person), person.ledger_record())
                acted_who = np.concatenate([acted_who, person.who[counted]])
                acted_beh = np.concatenate([acted_beh, person.behaviour[counted]])
                if self.consequences.separate:
                    # Trigger domains moved; scores themselves move only at refreshes.
                    touched.append(person.who[counted])
                if c.due(day):
                    touched.append(c.refresh(day, self.consequences.score_thresholds))
                    self.consequences.update_score_candidates()
            if self.rating is not None:
                touched.append(self.rating.step(ledger, day))
        with self._phase("list"):
            if self.court is not None:
                listed, lifted = self.court.step(records, day, ledger)
                if self.points is not None and self.points.params.listing_delta:
                    self._listing_points(listed, lifted, day)
            if self.firm_lists is not None:
                reps = self.firm_lists.step(records, self._channel_codes(records), day, ledger)
                touched.append(np.asarray(reps, dtype=np.int64))
        with self._phase("consequences"):
            rows = ledger.rows(since)
            # Rows that can move a sanction (scores, grades, lists); composite and rating
            # changes come from their systems, limited to those that cross a gate's line.
            status = (rows["entity"] == 0) & (
                (rows["kind"] <= K_LIST) | (rows["kind"] == K_BLACKLIST))
            touched.append(rows["id"][status])
            self.consequences.refresh(_distinct(touched, self.people.n))
            self.consequences.step(ledger, since, day)
        with self._phase("adapt"):
            fallen = []
            if self.composite is not None and len(self.composite.fallen):
                fallen.append((self.composite.fallen, self.scenario.composite.prune_prob))
                self.composite.fallen = self.composite.fallen[:0]
            if self.rating is not None and len(self.rating.fallen):
                fallen.append((self.rating.fallen, self.scenario.rating.prune_prob))
                self.rating.fallen = self.rating.fallen[:0]
            self.adapt.step(acted_who, acted_beh, ledger, since, day, fallen)
        with self._phase("record"):
            self.rows.append(self._daily_row(day, events, n_observed, n_false))
            ledger.flush()
            if self.composite is not None:
                self.composite.write_pending(ledger)

    def _channel_codes(self, r) -> np.ndarray:
        """Ledger channel codes: the behaviour's channel, or informant / insider."""
        n_ch = len(self.cat.channel_names)
        return np.select(
            [r.source == S_INFORMANT, r.source == S_INSIDER, r.source == S_COLLUSION],
            [n_ch + 1, n_ch + 2, n_ch + 3], self.cat.channel[r.behaviour] + 1,
        )

    def _reverse_caught_edits(self, day: int) -> np.ndarray:
        """Reverse the insider edits an audit caught; return who they touch."""
        who, delta = self.threats.caught(day)
        if len(who):
            k = len(who)
            self.points.apply(
                self.ledger, day, who, -delta, np.full(k, -1), np.full(k, C_AUDIT),
                np.full(k, len(self.cat.channel_names) + 2), np.full(k, R_INSIDER),
                np.zeros(k),
            )
        return who

    def _expire_marks(self, day: int) -> np.ndarray:
        """Reverse the deductions that expire today (safeguard); return who they touch."""
        who, delta, delta_true, record = self.safeguards.expire(day)
        self.marks_expired_today = len(who)
        if len(who):
            k = len(who)
            self.points.apply(
                self.ledger, day, who, -delta, np.full(k, -1), np.full(k, C_MARK_EXPIRY),
                np.zeros(k), record, np.zeros(k), delta_true=-delta_true,
            )
        return who

    def _listing_points(self, listed: list, lifted: list, day: int) -> None:
        """The points deduction for each case listing a person, and its reversal when
        a false case's listing is lifted by correction or appeal."""
        delta = self.points.params.listing_delta
        if self.proportionality_cap > 0:
            delta = max(delta, -self.proportionality_cap)
        who = [p for p, _ in listed] + [p for p, _ in lifted]
        if not who:
            return
        k = len(who)
        self.points.apply(
            self.ledger, day, np.array(who, dtype=np.int32),
            np.array([delta] * len(listed) + [-delta] * len(lifted)), np.full(k, -1),
            np.array([C_LISTING] * len(listed) + [c for _, c in lifted]), np.zeros(k),
            np.array([int(f) for _, f in listed] + [1] * len(lifted)),  # R_FALSE = 1
            np.full(k, DOMAINS.index("court")),
        )

    def _daily_row(self, day, events, n_observed, n_false) -> dict:
        row: dict = {"day": day}
        if self.points is not None:
            for g, c in zip(GRADES, self.points.grade_counts, strict=True):
                row[f"grade_{g}"] = int(c)
        if self.points is not None and self.points.params.warn_max > 0:
            row["warnings"] = self.points.warnings_today
        if self.composite is not None:
            row.update(self.composite.daily())
        if self.rating is not None:
            row.update(self.rating.daily())
        if self.firm_lists is not None:
            row.update(self.firm_lists.daily(day))
        if self.court is not None:
            row["listed"] = self.court.listed_count
            row["listed_firms"] = int(np.count_nonzero(self.court.firm_listed))
            row["open_cases"] = self.court.open_cases
            row["new_listings"] = self.court.person_listings_today
            row["new_firm_listings"] = self.court.firm_listings_today
            row["payments"] = self.court.payments_today
        cons = self.consequences
        row["sanctioned"] = int(cons.counts[0])
        row["sanctioned_wrongful"] = int(cons.counts[1])
        for g in range(cons.n_groups):
            row[f"sanctioned_group{g}"] = int(cons.by_group[0, 1 + g])
            row[f"sanctioned_wrongful_group{g}"] = int(cons.by_group[1, 1 + g])
        for gi, g in enumerate(cons.gates):
            row[f"gate_{g.name}"] = int(cons.applied_today[gi])
            row[f"gate_{g.name}_wrongful"] = int(cons.wrongful_today[gi])
        if self.threats.active:
            row["insider_edits"] = self.threats.edits_today
            row["informant_reports"] = self.threats.reports_today
            row["audit_catches"] = self.threats.caught_today
            if len(self.threats.colluders):
                row["collusion_certificates"] = self.threats.certified_today
        if self.safeguards.active:
            row["records_reviewed"] = self.safeguards.reviewed_today
            row["records_struck"] = self.safeguards.struck_today
            row["marks_expired"] = self.marks_expired_today
        row["events_true"] = len(events.who)
        # True events by domain: the claimed benefits are measured on these.
        by_domain = np.bincount(self.cat.domain[events.behaviour], minlength=len(DOMAINS))
        for d in np.flatnonzero(self.domains_used):
            row[f"events_{DOMAINS[d]}"] = int(by_domain[d])
        row["events_observed"] = n_observed
        row["records_false"] = n_false
        row["voice_events"] = int(np.isin(events.behaviour, self.voice_behaviours).sum())
        row["ties_dropped"] = self.adapt.ties_dropped_today
        return row

    @property
    def person_days(self) -> int:
        return self.scenario.run.people * self.scenario.run.days

    def memory_bytes(self) -> dict[str, int]:
        return {"people": self.people.nbytes(), "graph": self.graph.nbytes()}


def _distinct(parts: list[np.ndarray], n: int) -> np.ndarray:
    """The distinct ids in parts, sorted. Many ids (a composite refresh touches nearly
    everyone): a mask over the population is cheaper than sorting them."""
    total = sum(len(x) for x in parts)
    if total > n // 16:
        mask = np.zeros(n, dtype=bool)
        for x in parts:
            mask[x] = True
        return np.flatnonzero(mask)
    return np.unique(np.concatenate([x.astype(np.int64) for x in parts]))
