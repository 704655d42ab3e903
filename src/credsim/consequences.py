"""Consequences phase: service providers' gates and their economic effects.

A gate with a use rate is met when a person seeks the service (sampled by
thinning, like behaviours); a gate with no use rate is applied once, when a
person enters its condition (e.g. a child loses a private-school place when
a parent is listed). Every application is kept with the gate's domain and
the domain of the record that triggered it, and whether it would have
happened without false records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit, prange

from credsim.ledger import K_BLACKLIST, K_GRADE, K_LIST, Ledger
from credsim.modules import Day, Hook, Module, Result
from credsim.population.people import CHILD, SCHOOL_LOST, SCHOOL_PRIVATE
from credsim.rng import Stream, counter_uniform, counter_uniform_one, day_key
from credsim.scenario.model import DOMAINS, parse_condition

COURT_DOMAIN = DOMAINS.index("court")
FIRM_DOMAIN = DOMAINS.index("firm")
SOCIAL_DOMAIN = DOMAINS.index("social")
S_SANCTIONED, S_WRONGFUL = 1, 2
# Sanction kinds of the status kernel.
G_LISTED, G_GRADE, G_SCORE, G_RATING, G_BLACK = range(5)
KERNEL_KIND = {"listed": G_LISTED, "le": G_GRADE, "score_lt": G_SCORE, "rating_lt": G_RATING,
               "blacklisted": G_BLACK}


def _none(dtype) -> np.ndarray:
    return np.zeros(1, dtype)


@dataclass
class SystemState:
    """The per-person arrays gates read: (held, true) pairs from each running system."""

    n: int
    grade: np.ndarray = field(default_factory=lambda: _none(np.uint8))
    grade_true: np.ndarray = field(default_factory=lambda: _none(np.uint8))
    initial_grade: int = 0
    points_domain: np.ndarray = field(default_factory=lambda: _none(np.uint8))
    n_list_true: np.ndarray = field(default_factory=lambda: _none(np.uint8))
    n_list_false: np.ndarray = field(default_factory=lambda: _none(np.uint8))
    score: np.ndarray = field(default_factory=lambda: _none(np.int16))
    score_true: np.ndarray = field(default_factory=lambda: _none(np.int16))
    composite_domain: np.ndarray = field(default_factory=lambda: _none(np.uint8))
    rating: np.ndarray = field(default_factory=lambda: _none(np.float32))
    rating_true: np.ndarray = field(default_factory=lambda: _none(np.float32))
    n_black_true: np.ndarray = field(default_factory=lambda: _none(np.uint8))
    n_black_false: np.ndarray = field(default_factory=lambda: _none(np.uint8))
    has_points: bool = False
    has_list: bool = False
    has_black: bool = False


@dataclass
class GateSpec:
    name: str
    kind: str  # see scenario.model.parse_condition
    grade: float  # the threshold: a grade index, a score or a rating
    sanction: bool
    use_rate: float
    income_driven: bool
    loss_days: float
    children: bool
    domain: int


class Consequences(Module):
    """The gates of service providers: who meets a gate's condition and seeks the
    service, and what that costs them."""

    kind = "gates"
    build_order = 90
    record_order = 60
    hooks = (Hook("consequences", "consequences", 50),)
    results = (
        Result("sanctioned"),
        Result("sanctioned_wrongful"),
        Result("sanctioned_group<group>"),
        Result("sanctioned_wrongful_group<group>"),
        Result("gate_<gate>"),
        Result("gate_<gate>_wrongful"),
    )

    random_streams = (Stream("gate.<gate>", "counter+numpy",
                             "person (a use of the gate); numpy: the day's number of candidate "
                             "uses of a gate sampled over everyone"),
                      Stream("gate.<gate>.everyone", "counter",
                             "2j: candidate j's person, 2j + 1: its thinning"))

    def __init__(self, sim) -> None:
        super().__init__(sim)
        s, people, economy, streams = sim.scenario, sim.people, sim.economy, sim.streams
        state = SystemState(people.n)
        for m in sim.modules.values():
            m.gate_state(state)
        self.people, self.economy, self.streams = people, economy, streams
        self.st = state
        self.separate = s.safeguards.domain_separation
        self.gates: list[GateSpec] = []
        for name, g in s.gates.items():
            kind, k = parse_condition(g.condition)
            self.gates.append(GateSpec(
                name, kind, k, g.effect != "perk", g.use_rate, g.income_driven, g.loss_days,
                g.reaches_children, DOMAINS.index(g.domain),
            ))
        # Sanction gates as arrays for the status kernel: kind, threshold, domain. A
        # person is sanctioned when some gate can apply to them.
        sanction = [g for g in self.gates if g.sanction]
        self.g_kind = np.array([KERNEL_KIND[g.kind] for g in sanction], np.int8)
        self.g_value = np.array([g.grade for g in sanction], np.float64)
        self.g_domain = np.array([g.domain for g in sanction], np.int64)
        self.status = np.zeros(people.n, dtype=np.uint8)
        # Sanctioned and wrongfully sanctioned people now, in all (column 0) and per
        # audit group (column 1 + group): summed over days, person-days.
        self.n_groups = int(people.group.max()) + 1 if people.n else 1
        self.by_group = np.zeros((2, 1 + self.n_groups), dtype=np.int64)
        self.counts = self.by_group[:, 0]
        # Sparse set of people out of the initial state (listed, blacklisted or grade
        # moved): the only people a listing or grade gate whose condition excludes the
        # initial state can apply to.
        self.initial_grade = state.initial_grade
        self.members = np.zeros(people.n, dtype=np.int32)
        self.pos = np.full(people.n, -1, dtype=np.int32)
        self.size = np.zeros(1, dtype=np.int64)
        self.keys = [streams.key(f"gate.{g.name}") for g in self.gates]
        self.everyone_keys = [streams.key(f"gate.{g.name}.everyone")
                              for g in self.gates]
        self.seen = np.zeros(people.n, dtype=np.bool_)  # scratch for _sample_uses
        self.score_candidates: dict[int, np.ndarray] = {}
        self.score_pools: dict[int, np.ndarray] = {}
        self.score_thresholds = np.unique(
            [g.grade for g in self.gates if g.kind.startswith("score")])
        everyone = ((self.g_kind == G_GRADE) & (self.g_value <= self.initial_grade)) | np.isin(
            self.g_kind, (G_SCORE, G_RATING))
        if np.any(everyone):
            # A sanction may hold in the initial state: check every adult now.
            self.refresh(np.flatnonzero(people.age != CHILD))
        adults = people.income[people.age != CHILD]
        self.median_income = float(np.median(adults)) if len(adults) else 1.0
        self.applied_today = np.zeros(len(self.gates), dtype=np.int64)
        self.wrongful_today = np.zeros(len(self.gates), dtype=np.int64)
        self._rows: list[dict[str, np.ndarray]] = []

        if sim.provider("score") is not None:
            self.update_score_candidates()

    # Hooks -------------------------------------------------------------------
    def consequences(self, d: Day) -> None:
        """Apply the gates to those who meet a condition and seek the service."""
        rows = self.sim.ledger.rows(d.since)
        # Rows that can move a sanction (scores, grades, lists); composite and rating
        # changes come from their systems, limited to those that cross a gate's line.
        status = (rows["entity"] == 0) & (
            (rows["kind"] <= K_LIST) | (rows["kind"] == K_BLACKLIST))
        d.touched.append(rows["id"][status])
        self.refresh(_distinct(d.touched, self.people.n))
        self.step(self.sim.ledger, d.since, d.day)

    def record(self, d: Day, row: dict) -> None:
        row["sanctioned"] = int(self.counts[0])
        row["sanctioned_wrongful"] = int(self.counts[1])
        for g in range(self.n_groups):
            row[f"sanctioned_group{g}"] = int(self.by_group[0, 1 + g])
            row[f"sanctioned_wrongful_group{g}"] = int(self.by_group[1, 1 + g])
        for gi, g in enumerate(self.gates):
            row[f"gate_{g.name}"] = int(self.applied_today[gi])
            row[f"gate_{g.name}_wrongful"] = int(self.wrongful_today[gi])

    def people_columns(self, part: slice) -> dict:
        status = self.status[part]
        return {"sanctioned": (status & 1) > 0, "sanctioned_wrongful": (status & 2) > 0}

    def refresh(self, persons: np.ndarray) -> None:
        """Recompute sanctioned / wrongful status of persons whose state moved."""
        if len(persons):
            st = self.st
            _refresh(persons.astype(np.int64), self.g_kind, self.g_value, self.g_domain,
                     self.separate, st.has_points, st.has_list, st.has_black,
                     st.points_domain, st.grade, st.grade_true, st.n_list_true,
                     st.n_list_false, st.score, st.score_true, st.composite_domain,
                     st.rating, st.rating_true, st.n_black_true, st.n_black_false,
                     self.status, self.by_group, self.people.group, self.initial_grade,
                     self.members, self.pos, self.size)

    def step(self, ledger: Ledger, since: int, day: int) -> None:
        self.applied_today[:] = 0
        self.wrongful_today[:] = 0
        rows = ledger.rows(since)
        person = rows["entity"] == 0
        shared: dict = {}  # the members meeting each condition today
        for gi, g in enumerate(self.gates):
            cands = self.score_candidates.get(gi)
            if cands is not None:
                self._use_gate(gi, g, day, cands)  # few people meet it: ask each of them
            elif gi in self.score_pools:
                self._use_gate_thinned(gi, g, day, self.score_pools[gi])
            elif g.use_rate > 0 and self._initial_meets(g):
                self._use_gate_thinned(gi, g, day)
            elif g.use_rate > 0:
                self._use_gate(gi, g, day, self.members[: self.size[0]], shared)
            else:
                self._once_gate(gi, g, rows, person, day)

    def update_score_candidates(self) -> None:
        """After a composite refresh: the people who meet each score gate. Scores hold
        until the next refresh, so a gate met by few (fewer than N x use_rate) visits
        each of those who meet it under the held or the true score every day; a gate
        met by many samples its uses over the pool of those who meet it under the held
        score (gates with the same condition share one pool)."""
        self.score_candidates.clear()
        self.score_pools.clear()
        by_range: dict[tuple[float, float], list[int]] = {}
        for gi, g in enumerate(self.gates):
            if g.kind.startswith("score") and g.use_rate > 0:
                by_range.setdefault(self._condition(g)[2:4], []).append(gi)
        if not by_range:
            return
        # Scores are whole numbers: lo <= v < hi as integer bounds.
        bounds = np.array([[math.ceil(min(max(b, -(2.0**31)), 2.0**31 - 1)) for b in r]
                           for r in by_range], dtype=np.int64)
        v, vt = self.st.score, self.st.score_true
        counts = _count_in_ranges(v, vt, bounds)  # per chunk: held, either per range
        totals = counts.sum(axis=0)
        want = np.zeros(2 * len(bounds), dtype=np.bool_)
        choice: dict[int, int] = {}  # gate -> column: 2r held (pool), 2r + 1 either
        for r, gates in enumerate(by_range.values()):
            for gi in gates:
                few = totals[2 * r + 1] < self.people.n * self.gates[gi].use_rate
                choice[gi] = 2 * r + few
                want[2 * r + few] = True
        sizes = np.where(want, totals, 0)
        offsets = np.concatenate([[0], np.cumsum(sizes)])
        flat = _list_in_ranges(v, vt, bounds, want, counts, offsets)
        for gi, col in choice.items():
            lst = flat[offsets[col]:offsets[col + 1]]
            (self.score_candidates if col % 2 else self.score_pools)[gi] = lst

    def _meets(self, g: GateSpec, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(meets the condition, would meet it without false records). Under domain
        separation a sanction also needs a trigger in the gate's own domain."""
        st = self.st
        if g.kind == "listed":
            t = st.n_list_true[idx] > 0
            held = t | (st.n_list_false[idx] > 0)
        elif g.kind == "blacklisted":
            t = st.n_black_true[idx] > 0
            held = t | (st.n_black_false[idx] > 0)
        else:
            v, vt, lo, hi, _, _, separate = self._condition(g)
            x, xt = v[idx], vt[idx]
            held, t = (x >= lo) & (x < hi), (xt >= lo) & (xt < hi)
            if not separate:
                return held, t
        if self.separate and g.sanction:
            same = self._trigger_domain(g, idx) == g.domain
            held, t = held & same, t & same
        return held, t

    def _trigger_domain(self, g: GateSpec, idx: np.ndarray) -> np.ndarray:
        fixed = {"listed": COURT_DOMAIN, "blacklisted": FIRM_DOMAIN,
                 "rating_lt": SOCIAL_DOMAIN, "rating_ge": SOCIAL_DOMAIN}
        if g.kind in fixed:
            return np.full(len(idx), fixed[g.kind], dtype=np.uint8)
        if g.kind.startswith("score"):
            return self.st.composite_domain[idx]
        return self.st.points_domain[idx]

    def _initial_meets(self, g: GateSpec) -> bool:
        """May someone in the initial state (unlisted, initial grade) meet the condition?
        Composite scores and ratings differ from the start: anyone may."""
        if g.kind in ("listed", "blacklisted"):
            return False
        if g.kind == "le":
            return self.initial_grade >= g.grade
        if g.kind == "ge":
            return self.initial_grade <= g.grade
        return True

    def _use_gate(self, gi: int, g: GateSpec, day: int, idx: np.ndarray,
                  shared: dict | None = None) -> None:
        """People among idx (all who may meet the condition) who meet it and seek the
        service today. `shared`: the day's adults meeting each condition among the
        members, kept for the other gates with that condition (a dozen gates restrict
        the listed); only without domain separation, which makes it depend on the gate."""
        p = self.people
        key = (g.kind, g.grade)
        if shared is not None and not self.separate and key in shared:
            idx, meets_true, factor = shared[key]
        else:
            idx = idx.astype(np.int64)
            meets, meets_true = self._meets(g, idx)
            adult = meets & (p.age[idx] != CHILD)
            idx, meets_true = idx[adult], meets_true[adult]
            factor = np.minimum(p.income[idx] / self.median_income, 3.0)
            if shared is not None and not self.separate:
                shared[key] = idx, meets_true, factor
        rate = g.use_rate * factor if g.income_driven else g.use_rate
        # P(at least one use today) = 1 - exp(-rate), as in the thinning path below.
        seeks = counter_uniform(self.keys[gi], day, idx) < -np.expm1(-rate)
        self._record(gi, g, idx[seeks], ~meets_true[seeks], day, distinct=True)

    def _condition(self, g: GateSpec):
        """A grade, score or rating condition as held and true values in [lo, hi), with
        the trigger domains it checks: (v, vt, lo, hi, domain, fixed domain or -1,
        whether the domain is checked)."""
        st = self.st
        if g.kind in ("le", "ge"):
            v, vt = st.grade, st.grade_true
            # Grades are coded from AAA (0) down: "le" C is grade >= C, "ge" AA grade <= AA.
            lo, hi = (g.grade, math.inf) if g.kind == "le" else (-math.inf, g.grade + 0.5)
            domain, fixed = st.points_domain, -1
        else:
            rating = g.kind.startswith("rating")
            v, vt = (st.rating, st.rating_true) if rating else (st.score, st.score_true)
            # Only those who take part (value >= 0) can meet a score or rating condition.
            lo, hi = (max(g.grade, 0.0), math.inf) if g.kind.endswith("_ge") else (0.0, g.grade)
            domain, fixed = ((st.composite_domain, -1) if not rating
                             else (np.zeros(0, np.uint8), SOCIAL_DOMAIN))
        # As in _meets: domain separation restricts sanctions, not perks or "at least".
        separate = self.separate and g.sanction and g.kind not in ("ge", "score_ge",
                                                                   "rating_ge")
        return v, vt, float(lo), float(hi), domain, fixed, separate

    def _use_gate_thinned(self, gi: int, g: GateSpec, day: int,
                           pool: np.ndarray | None = None) -> None:
        """A gate everyone may meet: sample its uses by thinning over the population, or
        over `pool` (all who meet the condition, held), in one pass over the candidates
        (a day's candidates number in the hundreds of thousands at national scale)."""
        p = self.people
        cap = 3.0 if g.income_driven else 1.0
        slots = p.n if pool is None else len(pool)
        k = int(self.streams.get(f"gate.{g.name}", day).poisson(slots * g.use_rate * cap))
        v, vt, lo, hi, domain, fixed, separate = self._condition(g)
        who, wrongful = _sample_uses(
            k, day_key(self.everyone_keys[gi], day), p.n,
            pool if pool is not None else np.zeros(0, np.int32), pool is not None, cap,
            g.income_driven, p.income, self.median_income, p.age, v, vt, lo, hi, separate,
            domain, fixed, g.domain, self.seen)
        self._record(gi, g, who, wrongful, day, distinct=True)

    def _once_gate(self, gi: int, g: GateSpec, rows: dict, person: np.ndarray,
                   day: int) -> None:
        if g.kind in ("listed", "blacklisted"):
            k = K_LIST if g.kind == "listed" else K_BLACKLIST
            sel = person & (rows["kind"] == k) & (rows["delta"] > 0) & (rows["value"] == 1)
            who = rows["id"][sel].astype(np.int64)
            true = (self.st.n_list_true if g.kind == "listed" else self.st.n_black_true)
            wrongful = true[who] == 0
            own = COURT_DOMAIN if g.kind == "listed" else FIRM_DOMAIN
            if self.separate and g.domain != own:
                who, wrongful = who[:0], wrongful[:0]
        else:
            sel = person & (rows["kind"] == K_GRADE)
            new = rows["value"][sel]
            old = new - rows["delta"][sel]
            if g.kind == "le":
                enter = (new >= g.grade) & (old < g.grade)
            else:
                enter = (new <= g.grade) & (old > g.grade)
            who = rows["id"][sel][enter].astype(np.int64)
            held, true = self._meets(g, who)  # held: domain separation may exclude some
            who, wrongful = who[held], ~true[held]
        payer = None
        if g.children:
            who, wrongful, payer = self._private_school_children(who, wrongful)
        self._record(gi, g, who, wrongful, day, payer)

    def _private_school_children(self, parents: np.ndarray, wrongful: np.ndarray):
        """Children in a parent's household who hold a private-school place lose it."""
        p = self.people
        kids, flags, payers = [], [], []
        for parent, w in zip(parents.tolist(), wrongful.tolist(), strict=True):
            h = p.household[parent]
            for c in range(p.household_start[h], p.household_start[h + 1]):
                if (p.age[c] == CHILD and p.school[c] == SCHOOL_PRIVATE
                        and (p.parent1[c] == parent or p.parent2[c] == parent)):
                    p.school[c] = SCHOOL_LOST
                    kids.append(c)
                    flags.append(w)
                    payers.append(parent)
        return (np.asarray(kids, dtype=np.int64), np.asarray(flags, dtype=bool),
                np.asarray(payers, dtype=np.int64))

    def _record(self, gi: int, g: GateSpec, who: np.ndarray, wrongful: np.ndarray,
                day: int, payer: np.ndarray | None = None, distinct: bool = False) -> None:
        """Count applications to `who`; `payer` bears the cost (a child's parent).
        `distinct`: nobody appears twice (a use gate's day)."""
        if len(who) == 0:
            return
        self.applied_today[gi] += len(who)
        self.wrongful_today[gi] += int(wrongful.sum())
        payer = who if payer is None else payer
        if g.loss_days != 0:
            self.economy.charge(payer, g.loss_days * self.economy.daily_income(payer), day,
                                distinct=distinct)
        trigger = self._trigger_domain(g, payer)
        self._rows.append({
            "day": np.full(len(who), day, dtype=np.int32),
            "id": who.astype(np.int32),
            "gate": np.full(len(who), gi, dtype=np.int16),
            "wrongful": wrongful.astype(bool),
            "trigger_domain": trigger.astype(np.uint8),
        })

    def applications(self) -> dict[str, np.ndarray]:
        cols = ("day", "id", "gate", "wrongful", "trigger_domain")
        if not self._rows:
            return {
                "day": np.zeros(0, np.int32), "id": np.zeros(0, np.int32),
                "gate": np.zeros(0, np.int16), "wrongful": np.zeros(0, bool),
                "trigger_domain": np.zeros(0, np.uint8),
            }
        return {c: np.concatenate([r[c] for r in self._rows]) for c in cols}


@njit(cache=True)
def _refresh(persons, g_kind, g_value, g_domain, separate, has_points, has_list, has_black,
             points_domain, grade, grade_true, n_true, n_false, score, score_true,
             composite_domain, rating, rating_true, b_true, b_false, status, counts,
             group, initial_grade, members, pos, size):  # pragma: no cover
    for r in range(len(persons)):
        p = persons[r]
        s = False  # some sanction gate can apply under the held state ...
        t = False  # ... and under the true state
        for k in range(len(g_kind)):
            kind = g_kind[k]
            v = g_value[k]
            if kind == G_LISTED:
                if separate and g_domain[k] != COURT_DOMAIN:
                    continue
                s = s or (n_true[p] + n_false[p]) > 0
                t = t or n_true[p] > 0
            elif kind == G_BLACK:
                if separate and g_domain[k] != FIRM_DOMAIN:
                    continue
                s = s or (b_true[p] + b_false[p]) > 0
                t = t or b_true[p] > 0
            elif kind == G_GRADE:
                if separate and g_domain[k] != points_domain[p]:
                    continue
                s = s or grade[p] >= v
                t = t or grade_true[p] >= v
            elif kind == G_SCORE:
                if separate and g_domain[k] != composite_domain[p]:
                    continue
                s = s or (score[p] >= 0 and score[p] < v)
                t = t or (score_true[p] >= 0 and score_true[p] < v)
            else:
                if separate and g_domain[k] != SOCIAL_DOMAIN:
                    continue
                s = s or rating[p] < v
                t = t or rating_true[p] < v
        out = False
        if has_list:
            out = out or (n_true[p] + n_false[p]) > 0
        if has_black:
            out = out or (b_true[p] + b_false[p]) > 0
        if has_points:
            out = out or grade[p] != initial_grade
        if out and pos[p] < 0:
            pos[p] = size[0]
            members[size[0]] = p
            size[0] += 1
        elif not out and pos[p] >= 0:
            last = members[size[0] - 1]
            members[pos[p]] = last
            pos[last] = pos[p]
            pos[p] = -1
            size[0] -= 1
        new = (S_SANCTIONED if s else 0) | (S_WRONGFUL if (s and not t) else 0)
        old = status[p]
        if new != old:
            ds = (new & S_SANCTIONED) - (old & S_SANCTIONED)
            dw = ((new & S_WRONGFUL) - (old & S_WRONGFUL)) // S_WRONGFUL
            for col in (0, 1 + group[p]):
                counts[0, col] += ds
                counts[1, col] += dw
            status[p] = new


@njit(cache=True, parallel=True)
def _sample_uses(k, dkey, n, pool, pooled, cap, income_driven, income, median, age, v, vt,
                 lo, hi, separate, domain, fixed_domain, gate_domain,
                 seen):  # pragma: no cover
    """Uses of a gate sampled over everyone (or over `pool`, people known to meet the
    condition under the held value): k candidate (slot, uniform) pairs from the day's
    counter stream, kept when the person meets the condition (lo <= v < hi; under
    domain separation, triggered in the gate's domain), is an adult and seeks the
    service (thinning: uniform x cap < min(income / median, cap), or < 1), at most
    once a person: the first candidate kept. Returns (people, whether the use rests on
    false records). Leaves `seen` all False.

    Candidates are judged in parallel (each is a few reads at random slots), then the
    first of each person kept in candidate order. (Walking the slots in order by
    exponential gaps reads the arrays in order but costs a logarithm per candidate:
    slower.)"""
    slots = len(pool) if pooled else n
    kept = np.empty(k, dtype=np.int64)  # the candidate's person, or -1
    false_use = np.empty(k, dtype=np.bool_)
    chunks = min(RANGE_CHUNKS, max(k, 1))
    size = (k + chunks - 1) // chunks
    for c in prange(chunks):
        for j in range(c * size, min(k, (c + 1) * size)):
            kept[j] = -1
            i = min(np.int64(counter_uniform_one(dkey, 2 * j) * slots), slots - 1)
            if pooled:
                i = np.int64(pool[i])
            else:
                x = v[i]
                if not (x >= lo and x < hi):
                    continue
            if separate:
                d = fixed_domain if fixed_domain >= 0 else domain[i]
                if d != gate_domain:
                    continue
            if age[i] == CHILD:
                continue
            rate = min(income[i] / median, cap) if income_driven else 1.0
            if counter_uniform_one(dkey, 2 * j + 1) * cap < rate:
                kept[j] = i
                xt = vt[i]
                false_use[j] = not (xt >= lo and xt < hi)
    who = np.empty(k, dtype=np.int64)
    wrongful = np.empty(k, dtype=np.bool_)
    m = 0
    for j in range(k):
        i = kept[j]
        if i >= 0 and not seen[i]:
            seen[i] = True
            who[m] = i
            wrongful[m] = false_use[j]
            m += 1
    for r in range(m):
        seen[who[r]] = False
    return who[:m].copy(), wrongful[:m].copy()


RANGE_CHUNKS = 64  # work items of the parallel passes over the population


@njit(cache=True, parallel=True)
def _count_in_ranges(v, vt, bounds):  # pragma: no cover
    """Per chunk of people and range r (bounds[r] = lo, hi: lo <= value < hi), how many
    have the held value in range (column 2r) and the held or the true one (2r + 1)."""
    n, nr = len(v), len(bounds)
    size = (n + RANGE_CHUNKS - 1) // RANGE_CHUNKS
    counts = np.zeros((RANGE_CHUNKS, 2 * nr), dtype=np.int64)
    for c in prange(RANGE_CHUNKS):
        for i in range(c * size, min(n, (c + 1) * size)):
            x, xt = v[i], vt[i]
            for r in range(nr):
                held = (x >= bounds[r, 0]) & (x < bounds[r, 1])
                counts[c, 2 * r] += held
                counts[c, 2 * r + 1] += held | ((xt >= bounds[r, 0]) & (xt < bounds[r, 1]))
    return counts


@njit(cache=True, parallel=True)
def _list_in_ranges(v, vt, bounds, want, counts, offsets):  # pragma: no cover
    """The people counted by _count_in_ranges, for the wanted columns, as int32, each
    column's list at offsets[col] in one flat array, in order of person."""
    n, nr = len(v), len(bounds)
    size = (n + RANGE_CHUNKS - 1) // RANGE_CHUNKS
    out = np.empty(offsets[-1], dtype=np.int32)
    for c in prange(RANGE_CHUNKS):
        cursor = np.empty(2 * nr, dtype=np.int64)
        for col in range(2 * nr):
            cursor[col] = offsets[col] + counts[:c, col].sum()
        for i in range(c * size, min(n, (c + 1) * size)):
            x, xt = v[i], vt[i]
            for r in range(nr):
                held = (x >= bounds[r, 0]) & (x < bounds[r, 1])
                if want[2 * r] and held:
                    out[cursor[2 * r]] = i
                    cursor[2 * r] += 1
                if want[2 * r + 1] and (held or ((xt >= bounds[r, 0]) & (xt < bounds[r, 1]))):
                    out[cursor[2 * r + 1]] = i
                    cursor[2 * r + 1] += 1
    return out


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
