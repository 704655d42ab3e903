"""Consequences phase: service providers' gates and their economic effects.

A gate with a use rate is met when a person seeks the service (sampled by
thinning, like behaviours); a gate with no use rate is applied once, when a
person enters its condition (e.g. a child loses a private-school place when
a parent is listed). Every application is kept with the gate's domain and
the domain of the record that triggered it, and whether it would have
happened without false records.

Conditions (credsim.conditions) are evaluated one way, by `Evaluation`, on
the standings the running modules lend; the samplers below only choose whom
to evaluate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

from credsim.conditions import (
    Both,
    Condition,
    Evaluation,
    Source,
    Standing,
    Term,
    domain_code,
    initially_meets,
    standings_of,
)
from credsim.ledger import K_BLACKLIST, K_LIST, Ledger
from credsim.modules import Day, Hook, Module, Result
from credsim.population.people import (
    ADULT,
    CHILD,
    ELDER,
    SCHOOL_LOST,
    SCHOOL_PRIVATE,
    is_adult,
)
from credsim.population.sets import put
from credsim.rng import Stream, counter_uniform, counter_uniform_one, day_key

S_SANCTIONED, S_WRONGFUL = 1, 2


class Standings:
    """The standings of the running modules, as a conditions.Source, by the names gate
    conditions use (a further instance's qualified: `province.grade`)."""

    def __init__(self, modules) -> None:
        # name in conditions -> (module, the module's own name of the standing)
        self.providers = {m.instance.standing(own): (m, own) for m in modules
                          for own in m.standings}
        self.declared: dict[str, Standing] = {name: m.standings[own]
                                              for name, (m, own) in self.providers.items()}

    def values(self, standing: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m, own = self.providers[standing]
        return m.standing_values(own, ids)

    def domains(self, standing: str, ids: np.ndarray) -> np.ndarray:
        m, own = self.providers[standing]
        return m.standing_domains(own)[ids]

    def arrays(self, standing: str) -> tuple[np.ndarray, np.ndarray] | None:
        m, own = self.providers[standing]
        return m.standing_arrays(own)

    def initial(self, standing: str) -> float | None:
        m, own = self.providers[standing]
        return m.standing_initial(own)


class _HeldAs:
    """A source whose held values of one standing are given (a ledger row's value before
    or after it), for whether a row enters a condition."""

    def __init__(self, source: Source, standing: str, held: np.ndarray) -> None:
        self.source, self.standing, self.held = source, standing, held

    def values(self, standing: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if standing == self.standing:
            return self.held, self.held
        return self.source.values(standing, ids)

    def domains(self, standing: str, ids: np.ndarray) -> np.ndarray:
        return self.source.domains(standing, ids)


@dataclass
class GateSpec:
    name: str
    condition: Condition
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

    def setup(self) -> None:
        """Once every module is built, so that the standings of all of them are read."""
        sim = self.sim
        s, people, economy, streams = sim.scenario, sim.people, sim.economy, sim.streams
        self.people, self.economy, self.streams = people, economy, streams
        self.source = Standings(sim.modules.values())
        self.standings = self.source.declared
        self.separate = s.safeguards.domain_separation
        self.gates = [GateSpec(name, g.parsed, g.effect != "perk", g.use_rate,
                               g.income_driven, g.loss_days, g.reaches_children,
                               domain_code(g.domain)) for name, g in s.gates.items()]
        # A person is sanctioned when some sanction gate can apply to them.
        self.sanctions = [g for g in self.gates if g.sanction]
        # The held value everyone starts with, of each standing that has one: a gate
        # whose condition excludes that state reaches only people out of it.
        self.initial = {name: x for name in self.standings
                        if (x := self.source.initial(name)) is not None}
        self.initially_met = [initially_meets(g.condition, self.initial.get, self.standings)
                              for g in self.gates]
        self.status = np.zeros(people.n, dtype=np.uint8)
        # Sanctioned and wrongfully sanctioned people now, in all (column 0) and per
        # audit group (column 1 + group): summed over days, person-days.
        self.n_groups = int(people.group.max()) + 1 if people.n else 1
        self.by_group = np.zeros((2, 1 + self.n_groups), dtype=np.int64)
        self.counts = self.by_group[:, 0]
        # Sparse set of people out of the initial state (listed, blacklisted or grade
        # moved): the only people a gate whose condition excludes the initial state can
        # apply to.
        self.members = np.zeros(people.n, dtype=np.int32)
        self.pos = np.full(people.n, -1, dtype=np.int32)
        self.size = np.zeros(1, dtype=np.int64)
        self.keys = [streams.key(f"gate.{g.name}") for g in self.gates]
        self.everyone_keys = [streams.key(f"gate.{g.name}.everyone")
                              for g in self.gates]
        self.seen = np.zeros(people.n, dtype=np.bool_)  # scratch for _first_of_each
        self.score_candidates: dict[int, np.ndarray] = {}
        self.score_pools: dict[int, np.ndarray] = {}
        self._track_met(people.n)
        # The lines of score conditions, whose crossing at a refresh moves a status.
        # The lines of conditions on standings refreshed on a cadence: their holders
        # report who crossed one at a refresh (only their status can move).
        for name, st in self.standings.items():
            provider, own = self.source.providers[name]
            if st.refreshed:
                provider.watch_lines(own, np.unique(
                    [t.value for g in self.gates for t in g.condition.terms()
                     if t.standing == name]))
        met = [m for g, m in zip(self.gates, self.initially_met, strict=True) if g.sanction]
        if any(met):
            # A sanction may hold in the initial state: check every adult now.
            self.refresh(np.flatnonzero(is_adult(people.age)))
        adults = people.income[is_adult(people.age)]
        self.median_income = float(np.median(adults)) if len(adults) else 1.0
        self.applied_today = np.zeros(len(self.gates), dtype=np.int64)
        self.wrongful_today = np.zeros(len(self.gates), dtype=np.int64)
        self.applied = Applications()
        self.update_score_candidates()

    # Hooks -------------------------------------------------------------------
    def consequences(self, d: Day) -> None:
        """Apply the gates to those who meet a condition and seek the service."""
        if d.refreshed:
            self.update_score_candidates()
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

    # Conditions --------------------------------------------------------------
    def evaluation(self, ids: np.ndarray, source: Source | None = None) -> Evaluation:
        """Gate conditions on people `ids` (from the running modules, or `source`)."""
        return Evaluation(ids, source or self.source, self.standings, self.separate)

    def meets(self, g: GateSpec, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(meets the condition, would meet it without false records). Under domain
        separation a sanction also needs a trigger in the gate's own domain."""
        return self.evaluation(ids).meets(g.condition, g.domain, g.sanction)

    def people_changed(self, d: Day, change) -> None:
        """The dead are sanctioned no longer: they leave the counts of sanctioned
        people (and so accrue no sanctioned person-days). Members who come of age may
        now meet a use gate (which reaches adults only)."""
        came = change.came_of_age
        self.refresh(np.concatenate([change.died, came[self.pos[came] >= 0]]))

    def refresh(self, persons: np.ndarray) -> None:
        """Recompute sanctioned / wrongful status of persons whose state moved (the dead
        hold none), whether they are out of the initial state, and which use gates
        sampled among those out of it they meet."""
        if not len(persons):
            return
        persons = persons.astype(np.int64)
        alive = self.people.alive
        if alive is not None and not alive[persons].all():
            dead = persons[~alive[persons]]
            none = np.zeros(len(dead), dtype=np.bool_)
            _refresh(dead, none, none, none, self.status, self.by_group, self.people.group,
                     self.members, self.pos, self.size)
            if self.met is not None:
                self.met.update(dead, np.zeros(len(dead), dtype=np.int64))
            persons = persons[alive[persons]]
            if not len(persons):
                return
        ev = self.evaluation(persons)
        held = np.zeros(len(persons), dtype=np.bool_)
        true = np.zeros(len(persons), dtype=np.bool_)
        for g in self.sanctions:
            h, t = ev.meets(g.condition, g.domain, sanction=True)
            held |= h
            true |= t
        out = np.zeros(len(persons), dtype=np.bool_)
        for name, x in self.initial.items():
            out |= ev.values(name)[0] != x
        _refresh(persons, held, true, out, self.status, self.by_group, self.people.group,
                 self.members, self.pos, self.size)
        if self.met is not None:
            self.met.update(persons, self.met.meeting(ev, is_adult(self.people.age[persons])))

    def _track_met(self, n: int) -> None:
        """The use gates sampled among the people out of the initial state (conditions
        that exclude it, on standings that move at any time), and a bit per person for
        each of their conditions (MetSets)."""
        self.met_bit: dict[int, int] = {}  # gate -> its condition's bit
        keys: dict[tuple[str, int], int] = {}
        conditions: list[tuple[Condition, int]] = []
        for gi, g in enumerate(self.gates):
            if (g.use_rate <= 0 or self.initially_met[gi] or self._samples_refreshed(g)):
                continue
            # Domain separation makes a sanction's condition depend on the gate's domain.
            domain = g.domain if self.separate and g.sanction else -1
            key = (str(g.condition), domain)
            if key not in keys and len(keys) == MetSets.MAX_CONDITIONS:
                continue  # so many conditions: this gate evaluates every member daily
            if key not in keys:
                keys[key] = len(conditions)
                conditions.append((g.condition, domain))
            self.met_bit[gi] = keys[key]
        self.met = MetSets(conditions, n) if conditions else None

    def _samples_refreshed(self, g: GateSpec) -> bool:
        """A use gate on one term of a standing that moves only at refreshes: sampled
        among those update_score_candidates lists."""
        t = g.condition
        return isinstance(t, Term) and self._listable(t.standing)

    def step(self, ledger: Ledger, since: int, day: int) -> None:
        self.applied_today[:] = 0
        self.wrongful_today[:] = 0
        rows = ledger.rows(since)
        person = rows["entity"] == 0
        shared: dict = {}  # the members meeting each condition today
        met: dict = {}  # the same, of the conditions whose bit the members keep
        for gi, g in enumerate(self.gates):
            cands = self.score_candidates.get(gi)
            if cands is not None:
                self._use_gate(gi, g, day, cands)  # few people meet it: ask each of them
            elif gi in self.score_pools:
                self._use_gate_thinned(gi, g, day, self.score_pools[gi])
            elif g.use_rate > 0 and self.initially_met[gi]:
                self._use_gate_thinned(gi, g, day)
            elif gi in self.met_bit:
                self._use_gate_met(gi, g, day, met)
            elif g.use_rate > 0:
                self._use_gate(gi, g, day, self.members[: self.size[0]], shared)
            else:
                self._once_gate(gi, g, rows, person, day)

    def update_score_candidates(self) -> None:
        """After a refresh of the standings that move only at refreshes (composite
        scores): the people who meet each use gate on one such term. The values hold
        until the next refresh, so a gate met by few (fewer than N x use_rate) visits
        each of those who meet it under the held or the true value every day; a gate met
        by many samples its uses over the pool of those who meet it under the held value
        (gates with the same term share one pool)."""
        self.score_candidates.clear()
        self.score_pools.clear()
        by_range: dict[str, dict[tuple[float, float], list[int]]] = {}
        for gi, g in enumerate(self.gates):
            t = g.condition
            if g.use_rate > 0 and isinstance(t, Term) and self._listable(t.standing):
                r = self.standings[t.standing].interval(t.op, t.value)
                by_range.setdefault(t.standing, {}).setdefault(r, []).append(gi)
        for standing, ranges in by_range.items():
            v, vt = self.source.arrays(standing)
            self._list_ranges(v, vt, ranges)

    def _listable(self, standing: str) -> bool:
        """Whether the people meeting a term on `standing` are listed at its refreshes:
        whole-number values that move only then."""
        arrays = self.source.arrays(standing)
        return (self.standings[standing].refreshed and arrays is not None
                and np.issubdtype(arrays[0].dtype, np.integer))

    def _list_ranges(self, v: np.ndarray, vt: np.ndarray,
                     by_range: dict[tuple[float, float], list[int]]) -> None:
        # Whole numbers: lo <= v < hi as integer bounds.
        bounds = np.array([[math.ceil(min(max(b, -(2.0**31)), 2.0**31 - 1)) for b in r]
                           for r in by_range], dtype=np.int64)
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

    # Samplers ----------------------------------------------------------------
    def _use_gate(self, gi: int, g: GateSpec, day: int, idx: np.ndarray,
                  shared: dict | None = None) -> None:
        """People among idx (all who may meet the condition) who meet it and seek the
        service today. `shared`: the day's adults meeting each condition among the
        members, kept for the other gates with that condition (a dozen gates restrict
        the listed); only without domain separation, which makes it depend on the gate."""
        p = self.people
        key = (str(g.condition), g.sanction)
        if shared is not None and not self.separate and key in shared:
            idx, meets_true, factor = shared[key]
        else:
            idx = idx.astype(np.int64)
            meets, meets_true = self.meets(g, idx)
            adult = meets & is_adult(p.age[idx])
            idx, meets_true = idx[adult], meets_true[adult]
            factor = np.minimum(p.income[idx] / self.median_income, 3.0)
            if shared is not None and not self.separate:
                shared[key] = idx, meets_true, factor
        self._seek(gi, g, day, idx, meets_true, factor)

    def _use_gate_met(self, gi: int, g: GateSpec, day: int, met: dict) -> None:
        """As _use_gate over the members, on those of them MetSets finds to be adults who
        meet the condition (found once a day per condition, in `met`): the same draws,
        and the same people recorded in the same order (that of the members)."""
        bit = self.met_bit[gi]
        if bit not in met:
            met[bit] = [self.met.meeting_now(bit), None]  # who, and their income factor
        idx, factor = met[bit]
        if g.income_driven:
            if factor is None:
                factor = met[bit][1] = np.minimum(
                    self.people.income[idx] / self.median_income, 3.0)
            threshold = -np.expm1(-(g.use_rate * factor))
        else:
            threshold = -np.expm1(-g.use_rate)
        who = _seekers(idx, day_key(self.keys[gi], day), np.atleast_1d(threshold))
        if not len(who):
            return
        who = self.members[np.sort(self.pos[who])].astype(np.int64)  # the members' order
        _, meets_true = self.meets(g, who)
        self._record(gi, g, who, ~meets_true, day, distinct=True)

    def _seek(self, gi: int, g: GateSpec, day: int, idx: np.ndarray, meets_true: np.ndarray,
              factor: np.ndarray) -> None:
        """Which of `idx` (adults who meet the condition) seek the service today."""
        rate = g.use_rate * factor if g.income_driven else g.use_rate
        # P(at least one use today) = 1 - exp(-rate), as in the thinning path below.
        seeks = counter_uniform(self.keys[gi], day, idx) < -np.expm1(-rate)
        self._record(gi, g, idx[seeks], ~meets_true[seeks], day, distinct=True)

    def _prefilter(self, g: GateSpec) -> tuple[np.ndarray, float, float] | None:
        """A term every person meeting the condition meets under the held state, on a
        standing kept as an array, for the sampler to check first: (held values, lo,
        hi), or None. A condition of one term or one 'and' of terms has one."""
        c = g.condition
        terms = [c] if isinstance(c, Term) else list(c.parts) if isinstance(c, Both) else []
        for t in terms:
            if isinstance(t, Term) and (arrays := self.source.arrays(t.standing)) is not None:
                lo, hi = self.standings[t.standing].interval(t.op, t.value)
                return arrays[0], lo, hi
        return None

    def _use_gate_thinned(self, gi: int, g: GateSpec, day: int,
                          pool: np.ndarray | None = None) -> None:
        """A gate everyone may meet: sample its uses by thinning over the population, or
        over `pool` (all who meet the condition, held), in one pass over the candidates
        (a day's candidates number in the hundreds of thousands at national scale); the
        condition is then evaluated on the candidates kept."""
        p = self.people
        cap = 3.0 if g.income_driven else 1.0
        slots = p.n if pool is None else len(pool)
        k = int(self.streams.get(f"gate.{g.name}", day).poisson(slots * g.use_rate * cap))
        pre = None if pool is not None else self._prefilter(g)
        v, lo, hi = pre if pre is not None else (np.zeros(1, np.float64), -math.inf, math.inf)
        kept = _sample_uses(
            k, day_key(self.everyone_keys[gi], day), p.n,
            pool if pool is not None else np.zeros(0, np.int32), pool is not None, cap,
            g.income_driven, p.income, self.median_income, p.age, v, float(lo), float(hi),
            pre is not None)
        who = kept[kept >= 0]
        held, true = self.meets(g, who)
        who, wrongful = who[held], ~true[held]
        first = _first_of_each(who, self.seen)  # a person drawn twice uses it once
        self._record(gi, g, who[first], wrongful[first], day, distinct=True)

    def _once_gate(self, gi: int, g: GateSpec, rows: dict, person: np.ndarray,
                   day: int) -> None:
        """Apply a gate to those who entered its condition today and meet it now."""
        who = rows["id"][self._entering(g, rows, person)].astype(np.int64)
        held, true = self.meets(g, who)  # held: domain separation may exclude some
        who, wrongful = who[held], ~true[held]
        payer = None
        if g.children:
            who, wrongful, payer = self._private_school_children(who, wrongful)
        self._record(gi, g, who, wrongful, day, payer)

    def _entering(self, g: GateSpec, rows: dict, person: np.ndarray) -> np.ndarray:
        """Today's ledger rows by which a person enters the condition: a row changing
        one of its standings (value after, delta) after which the held state meets it
        and before which it did not (the other standings as they are now)."""
        enter = np.zeros(len(person), dtype=np.bool_)
        for name in standings_of(g.condition):
            sel = np.flatnonzero(person & (rows["kind"] == self.standings[name].ledger_kind))
            ids = rows["id"][sel].astype(np.int64)
            after = rows["value"][sel]
            before = after - rows["delta"][sel]
            now, _ = self.evaluation(ids, _HeldAs(self.source, name, after)).meets(g.condition)
            was, _ = self.evaluation(ids, _HeldAs(self.source, name, before)).meets(
                g.condition)
            enter[sel[now & ~was]] = True
        return enter

    def _private_school_children(self, parents: np.ndarray, wrongful: np.ndarray):
        """A parent's children who hold a private-school place lose it."""
        p = self.people
        # Where people are born and move, households are no longer the slot ranges of
        # the start: a parent's children are found through demography's kin.
        kin = getattr(self.sim.get("demography"), "kin", None)
        kids, flags, payers = [], [], []
        for parent, w in zip(parents.tolist(), wrongful.tolist(), strict=True):
            h = p.household[parent]
            for c in (range(p.household_start[h], p.household_start[h + 1]) if kin is None
                      else kin.children(np.array([parent]))[0].tolist()):
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
        trigger = self.evaluation(payer.astype(np.int64)).trigger(
            g.condition, g.domain, g.sanction)
        self.applied.append(day=day, id=who, gate=gi, wrongful=wrongful, trigger_domain=trigger)

    def applications(self) -> dict[str, np.ndarray]:
        """Every application of a gate so far, in order (those kept in memory: none have
        been streamed to a file)."""
        return self.applied.arrays()


class Applications:
    """The gates' applications (one row each), in column buffers of `group_rows` rows.

    A full buffer goes to the sink, when one is set (a results file, written as the run
    goes: a decades run applies gates hundreds of millions of times), or is kept. Rows
    are 12 bytes, kept in whole buffers, not in a day's small arrays."""

    COLUMNS = {"day": np.int32, "id": np.int32, "gate": np.int16, "wrongful": np.bool_,
               "trigger_domain": np.uint8}
    FIRST = 1 << 12  # a buffer's first capacity: it doubles up to group_rows

    def __init__(self, group_rows: int = 1 << 20) -> None:
        self.group_rows = group_rows
        self.cols = self._buffers(min(self.FIRST, group_rows))
        self.n = 0  # rows in the buffers
        self.full: list[dict[str, np.ndarray]] = []  # full buffers kept (no sink)
        self.sink: Callable[[dict[str, np.ndarray]], None] | None = None
        self.rows = 0  # rows appended in all

    def _buffers(self, cap: int) -> dict[str, np.ndarray]:
        return {k: np.empty(cap, dtype=t) for k, t in self.COLUMNS.items()}

    def append(self, **values) -> None:
        """Rows from arrays (or scalars broadcast to them) of the COLUMNS."""
        m = len(values["id"])
        lo = 0
        while lo < m:
            hi = min(m, lo + self.group_rows - self.n)
            self._reserve(self.n + hi - lo)
            for k, v in values.items():
                self.cols[k][self.n: self.n + hi - lo] = v[lo:hi] if np.ndim(v) else v
            self.n += hi - lo
            self.rows += hi - lo
            lo = hi
            if self.n == self.group_rows:
                self._pass_on()

    def _reserve(self, need: int) -> None:
        cap = len(self.cols["id"])
        if need > cap:
            grown = self._buffers(min(max(need, 2 * cap), self.group_rows))
            for k, v in self.cols.items():
                grown[k][: self.n] = v[: self.n]
            self.cols = grown

    def _pass_on(self) -> None:
        """A full buffer to the sink, or kept."""
        part = {k: v[: self.n] for k, v in self.cols.items()}
        if self.sink is not None:
            self.sink(part)  # written now: the buffer is reused
        else:
            self.full.append(part)
            self.cols = self._buffers(self.group_rows)
        self.n = 0

    def stream_to(self, sink: Callable[[dict[str, np.ndarray]], None],
                  group_rows: int | None = None) -> None:
        """Pass every full buffer of `group_rows` rows to `sink` (those kept so far, now);
        `group_rows` may be set while no row is kept."""
        if group_rows is not None and group_rows != self.group_rows:
            if self.rows:
                raise ValueError("the size of a part changes only before the first row")
            self.group_rows = group_rows
            self.cols = self._buffers(min(self.FIRST, group_rows))
        for part in self.full:
            sink(part)
        self.full = []
        self.sink = sink

    def close(self) -> None:
        """Pass the last rows to the sink (at least one part: a file with no row still
        has its schema)."""
        if self.sink is not None and (self.n or not self.rows):
            self.sink({k: v[: self.n] for k, v in self.cols.items()})
            self.n = 0

    def arrays(self) -> dict[str, np.ndarray]:
        """The rows kept (all of them, unless a sink took some), in order."""
        parts = [*self.full, {k: v[: self.n] for k, v in self.cols.items()}]
        return {k: np.concatenate([p[k] for p in parts]) for k in self.COLUMNS}


class MetSets:
    """The adults who meet each of some conditions under the held state, among the
    people out of the initial state (the members), kept up to date from the people
    whose standing moves, so that a use gate costs in proportion to those it can
    reach, not to the members.

    Per person and condition two bits: meets it, and is on its list. A person who comes
    to meet a condition joins its list (once); the list is compacted when read, once a
    day, dropping those who no longer meet it. The list is in no particular order."""

    MAX_CONDITIONS = 31  # two bits each in a uint64, clear of its sign bit in int64

    def __init__(self, conditions: list[tuple[Condition, int]], n: int) -> None:
        self.conditions = conditions  # (condition, gate domain under separation or -1)
        width = next(b for b in (8, 16, 32, 64) if 2 * len(conditions) <= b)
        self.bits = np.zeros(n, dtype=f"uint{width}")
        self.lists = [np.zeros(64, dtype=np.int32) for _ in conditions]
        self.sizes = np.zeros(len(conditions), dtype=np.int64)

    def meeting(self, ev: Evaluation, adult: np.ndarray) -> np.ndarray:
        """Which conditions each person of `ev` meets as an adult: bit 2c for condition
        c (adult: whether each is one)."""
        out = np.zeros(len(adult), dtype=np.int64)
        for c, (cond, domain) in enumerate(self.conditions):
            held, _ = ev.meets(cond, domain, sanction=domain >= 0)
            out |= (held & adult).astype(np.int64) << (2 * c)
        return out

    def update(self, persons: np.ndarray, meets: np.ndarray) -> None:
        """Set which conditions `persons` meet (bits as from `meeting`); those who come
        to meet one join its list."""
        joined = _set_met(persons, meets, self.bits, len(self.conditions))
        for c in np.flatnonzero(joined.any(axis=0)):
            who = persons[joined[:, c]].astype(np.int32)
            n = int(self.sizes[c])
            if n + len(who) > len(self.lists[c]):
                grown = np.zeros(max(2 * len(self.lists[c]), n + len(who)), dtype=np.int32)
                grown[:n] = self.lists[c][:n]
                self.lists[c] = grown
            self.lists[c][n: n + len(who)] = who
            self.sizes[c] = n + len(who)

    def meeting_now(self, c: int) -> np.ndarray:
        """Who meets condition c now (a view, valid until the next update)."""
        self.sizes[c] = _compact(self.lists[c], int(self.sizes[c]), self.bits, c)
        return self.lists[c][: self.sizes[c]]


@njit(cache=True)
def _seekers(idx, dkey, threshold):  # pragma: no cover
    """Those of idx who seek the service today: counter_uniform(key, day, idx) <
    threshold (one for all, or one each), in one pass."""
    each = len(threshold) > 1
    out = np.empty(len(idx), dtype=np.int64)
    k = 0
    for r in range(len(idx)):
        p = idx[r]
        if counter_uniform_one(dkey, p) < threshold[r if each else 0]:
            out[k] = p
            k += 1
    return out[:k]


@njit(cache=True)
def _set_met(persons, meets, bits, n_conditions):  # pragma: no cover
    """Set the meets bits (2c) of persons; return who joins each list (list bit 2c + 1
    not yet set, and now set). Persons in order, so a person given twice joins once."""
    joined = np.zeros((len(persons), n_conditions), dtype=np.bool_)
    for r in range(len(persons)):
        p = persons[r]
        b = np.int64(bits[p])
        for c in range(n_conditions):
            meet, listed = np.int64(1) << (2 * c), np.int64(2) << (2 * c)
            if meets[r] & meet:
                b |= meet
                if not b & listed:
                    b |= listed
                    joined[r, c] = True
            else:
                b &= ~meet
        bits[p] = b
    return joined


@njit(cache=True)
def _compact(lst, n, bits, c):  # pragma: no cover
    """Keep, in place, the people of lst[:n] who meet condition c; those dropped leave
    the list (their list bit cleared). Returns how many are kept."""
    meet, listed = np.int64(1) << (2 * c), np.int64(2) << (2 * c)
    k = 0
    for i in range(n):
        p = lst[i]
        if np.int64(bits[p]) & meet:
            lst[k] = p
            k += 1
        else:
            bits[p] = np.int64(bits[p]) & ~listed
    return k


@njit(cache=True)
def _refresh(persons, held, true, out, status, counts, group, members, pos,
             size):  # pragma: no cover
    """Set the status of persons from whether some sanction gate applies under the held
    (`held`) and the true state (`true`), keeping the per-group counts; add to the set
    of members those `out` of the initial state and drop the others."""
    for r in range(len(persons)):
        p = persons[r]
        put(members, pos, size, p, out[r])
        s, t = held[r], true[r]
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
def _sample_uses(k, dkey, n, pool, pooled, cap, income_driven, income, median, age, v,
                 lo, hi, prefilter):  # pragma: no cover
    """Candidate uses of a gate sampled over everyone (or over `pool`): k candidate
    (slot, uniform) pairs from the day's counter stream, kept when the person is an
    adult who seeks the service (thinning: uniform x cap < min(income / median, cap),
    or < 1) and, with `prefilter`, has a held value lo <= v < hi that the condition
    needs. Returns each candidate's person, or -1, in candidate order; the caller
    evaluates the condition on them.

    Candidates are judged in parallel (each is a few reads at random slots). (Walking
    the slots in order by exponential gaps reads the arrays in order but costs a
    logarithm per candidate: slower.)"""
    slots = len(pool) if pooled else n
    kept = np.empty(k, dtype=np.int64)  # the candidate's person, or -1
    chunks = min(RANGE_CHUNKS, max(k, 1))
    size = (k + chunks - 1) // chunks
    for c in prange(chunks):
        for j in range(c * size, min(k, (c + 1) * size)):
            kept[j] = -1
            i = min(np.int64(counter_uniform_one(dkey, 2 * j) * slots), slots - 1)
            if pooled:
                i = np.int64(pool[i])
            elif prefilter:
                x = v[i]
                if not (x >= lo and x < hi):
                    continue
            if not (age[i] == ADULT or age[i] == ELDER):
                continue
            rate = min(income[i] / median, cap) if income_driven else 1.0
            if counter_uniform_one(dkey, 2 * j + 1) * cap < rate:
                kept[j] = i
    return kept


@njit(cache=True)
def _first_of_each(who, seen):  # pragma: no cover
    """Which entries of `who` are a person's first; leaves `seen` all False."""
    first = np.zeros(len(who), dtype=np.bool_)
    for j in range(len(who)):
        if not seen[who[j]]:
            seen[who[j]] = True
            first[j] = True
    for j in range(len(who)):
        seen[who[j]] = False
    return first


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
