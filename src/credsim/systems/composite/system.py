"""A composite score (Sesame, Honest Shanghai, City Brain).

The score of a person who takes part is low + (high - low) x the weighted mean
of five dimensions, each in [0, 1], minus a penalty while on the court list:

- history: logistic(history_bias + decayed sum of history marks)
- capacity: capacity_income_share x income percentile + rest x (1 - stress)
- behaviour: logistic(behaviour_bias + decayed sum of behaviour marks
  [+ parent_bonus for parents])
- identity: a fixed per-person completeness in [0, 1]
- relationships: the mean normalised score of one's live contacts who take part

Marks are added as records arrive; scores are recomputed on the cadence
(Sesame: monthly), so a mark shows only at the next refresh. As in the points
system, a true score is kept beside the held one, computed without false
records, false listings and contacts' false scores.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from credsim.behaviour import D_GENEROSITY, D_NONCOMPLIANCE, D_VOICE, Catalogue
from credsim.conditions import Standing
from credsim.economy import lazy_savings, stress_of_one
from credsim.ledger import C_REFRESH, K_COMPOSITE, K_MARK, R_NONE, R_TRUE, Ledger
from credsim.modules import Day, Hook, Module, Result, lazy_hook
from credsim.observation import channel_codes
from credsim.population.graph import DROPPED
from credsim.population.people import ELDER, People, is_adult
from credsim.rng import Stream, Streams, counter_uniform
from credsim.scenario.model import DIMENSIONS, CompositeSystem
from credsim.systems.points.system import NO_DOMAIN

NOT_SCORED = -1
PERCENTILES = 100  # income percentiles of the capacity dimension
KNOT_SLOTS = 128  # PERCENTILES + 1 knots, padded to a power of two
MARK_UNIT = 100  # ledger deltas of marks are in hundredths of log-odds


class Composite(Module):
    kind = "composite"
    # Its explanations in credsim lookup, audit measures and report figures, from
    # explain.py, audit.py and report.py (imported when asked).
    explain = lazy_hook("credsim.systems.composite.explain:explain")
    audit = lazy_hook("credsim.systems.composite.audit:audit")
    report_figures = lazy_hook("credsim.systems.composite.report:report_figures")
    build_order = 30
    record_order = 20
    hooks = (Hook("score", "mark_records", 50),)
    results = (
        Result("composite_participants"),
        Result("band_below_lowest"),
        Result("band_<band>"),
    )
    # Scores lie in [0, 10000] (the bounds of composite.low and high); -1 marks someone
    # who takes no part, who meets no score condition.
    standings = {"score": Standing(
        "score", "composite `score` (-1: takes no part)", "`score_true`", ops=("<", ">="),
        bounds=(0.0, 10_000.0), least=0.0, refreshed=True)}
    ledger_kinds = ("composite", "mark")
    ledger_causes = ("composite_refresh",)
    reads_ties = True  # the relationships dimension: contacts' scores
    random_streams = (Stream("composite.identity", "counter", "person: identity"),
                      Stream("composite.opt_in", "counter", "person: whether they take part"))

    @classmethod
    def present(cls, scenario) -> bool:
        return scenario.composite.enabled

    @classmethod
    def required_columns(cls, scenario) -> dict[str, set[str]]:
        bands = {f"band_{name}" for name in scenario.composite.bands}
        return {"timeseries": {"composite_participants"} | bands,
                "people": {"composite_participant", "composite_initial", "composite",
                           "composite_true"}}

    def __init__(self, sim) -> None:
        super().__init__(sim)
        params, people, graph, economy, streams, cat = (
            sim.scenario.composite, sim.people, sim.graph, sim.economy, sim.streams, sim.cat)
        self.params, self.people, self.graph, self.economy = params, people, graph, economy
        court = sim.provider("listed")
        # (true listings, false listings) per person, or None without a court list
        self.listed = (court.n_list_true, court.n_list_false) if court else None
        self.separate = sim.scenario.safeguards.domain_separation
        self.lines = np.zeros(0)  # the gates' lines on the score (watch_lines)
        n = people.n
        self.h_mark = np.array([params.history_marks.get(b, 0.0) for b in cat.names])
        self.b_mark = np.array([params.behaviour_marks.get(b, 0.0) for b in cat.names])
        self.marked = (self.h_mark != 0) | (self.b_mark != 0)
        self.domains = cat.domain
        w = np.array([params.weights.get(d, 0.0) for d in DIMENSIONS])
        self.weights = w / w.sum()
        self.opted = _opt_in(params, people, streams)
        self.participants = int(self.opted.sum())
        # Those who came of age and take part from the next refresh on (people_changed).
        self.joining = np.zeros(0, dtype=np.int32)
        adult_income = people.income[is_adult(people.age)]
        self.median_income = float(np.median(adult_income)) if len(adult_income) else 1.0
        # Identity completeness in [0, 1], fixed per person (stored in 1 byte).
        u = counter_uniform(streams.key("composite.identity"), 0, np.arange(n))
        self.identity = (u * 256).astype(np.uint8)
        self.is_parent = np.zeros(n, dtype=bool)
        for par in (people.parent1, people.parent2):
            self.is_parent[par[par >= 0]] = True
        adults = people.income[is_adult(people.age)]
        knots = (np.quantile(adults, np.linspace(0, 1, PERCENTILES + 1)) if len(adults)
                 else np.zeros(PERCENTILES + 1))
        # Padded with +inf to a power of two for the branch-free search in _capacity.
        self.income_knots = np.full(KNOT_SLOTS, np.inf)
        self.income_knots[:PERCENTILES + 1] = knots
        # Mark sums, history and behaviour, held. A person's past is taken to be the
        # steady state of their conduct: marks expected from their traits over the
        # memory of the system.
        self.acc = np.empty((2, n), dtype=np.float32)
        self.acc[0] = _expected_marks(self.h_mark, cat, people, params)
        self.acc[1] = _expected_marks(self.b_mark, cat, people, params)
        # The true sums (without false records) differ only for people who have had a
        # false record: kept for them alone, by sorted id (8 bytes a person saved).
        self.true_ids = np.zeros(0, dtype=np.int32)
        self.true_acc = np.zeros((2, 0), dtype=np.float32)
        self.has_true = np.zeros((n + 7) // 8, dtype=np.uint8)  # a bit per person: kept?
        self.last_neg_domain = np.full(n, NO_DOMAIN, dtype=np.uint8)
        self.score = np.full(n, NOT_SCORED, dtype=np.int16)
        self.score_true = self.score.copy()
        self._seen = np.zeros(n, dtype=np.bool_)  # scratch for _contacts_of
        # Two passes, so that the relationships dimension starts from contacts' scores.
        for _ in range(2):
            self.score[:], self.score_true[:] = self._compute(0)
        self.initial = self.score.copy()
        self.floors = np.array(sorted(params.bands.values()), dtype=np.int64)
        self.band_names = [k for k, _ in sorted(params.bands.items(), key=lambda kv: kv[1])]
        self.band_counts = self._band_counts()
        self.fallen: np.ndarray = np.zeros(0, np.int64)
        self.pending: tuple | None = None
        if params.opt_in < 1 and sim.provider("grade") is None:
            # An opt-in system changes the conduct of those who take part only.
            sim["society"].behaviour.exempt_people(~self.opted)

    # Hooks -------------------------------------------------------------------
    def mark_records(self, d: Day) -> None:
        """Today's marks; on the cadence, a refresh of every participant's score."""
        sim = self.sim
        ledger, records = sim.ledger, d.records
        person = records.subset(~records.is_firm)
        counted = self.mark(ledger, d.day, person.who, person.behaviour,
                            person.behaviour.astype(np.int32) + ledger.behaviour_cause(0),
                            channel_codes(sim.cat, person), person.ledger_record())
        d.acted.append((person.who[counted], person.behaviour[counted]))
        if self.separate:
            # Trigger domains moved; scores themselves move only at refreshes.
            d.touched.append(person.who[counted])
        if self.due(d.day):
            # Only those whose score crossed a gate's line can change status.
            d.touched.append(self.refresh(d.day, self.lines))
            d.refreshed.add("score")
        if len(self.fallen):
            d.fallen.append((self.fallen, self.params.prune_prob))
            self.fallen = self.fallen[:0]

    def people_changed(self, d: Day, change) -> None:
        """Who comes of age takes part by the opt-in rule of the people at the start and
        holds the marks expected from their traits, as the people at the start did; they
        are scored, and count, from the next refresh. The dead leave: no score, no
        count. A newborn's parents hold the parent bonus from then on."""
        p = self.people
        for par in (p.parent1[change.born], p.parent2[change.born]):
            self.is_parent[par[par >= 0]] = True
        came = change.came_of_age
        if len(came):
            joins = came[_opt_in_of(self.params, p, self.sim.streams, came,
                                    self.median_income)]
            marks = _expected_marks(self.h_mark, self.sim.cat, p, self.params, joins), \
                _expected_marks(self.b_mark, self.sim.cat, p, self.params, joins)
            self.acc[0, joins], self.acc[1, joins] = marks
            self.joining = np.concatenate([self.joining, joins.astype(np.int32)])
        died = change.died
        if len(died):
            gone = died[self.opted[died]]
            self.opted[died] = False
            self.participants -= len(gone)
            scored = gone[self.score[gone] != NOT_SCORED]
            bands = np.searchsorted(self.floors, self.score[scored], side="right")
            self.band_counts -= np.bincount(bands, minlength=len(self.band_counts))
            self.score[died] = self.score_true[died] = NOT_SCORED
            self.joining = self.joining[~np.isin(self.joining, died)]

    def watch_lines(self, standing: str, lines: np.ndarray) -> None:
        self.lines = np.asarray(lines, dtype=np.float64)

    def end_day(self, d: Day) -> None:
        self.write_pending(self.sim.ledger)

    def record(self, d: Day, row: dict) -> None:
        row.update(self.daily())

    def people_columns(self, part: slice) -> dict:
        return {"composite_participant": self.opted[part],
                "composite_initial": self.initial[part], "composite": self.score[part],
                "composite_true": self.score_true[part]}

    def final_scores(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {"composite": (self.score, self.opted)}

    def standing_arrays(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.score, self.score_true

    def standing_domains(self, name: str) -> np.ndarray:
        return self.last_neg_domain

    # Marks -----------------------------------------------------------------
    def mark(self, ledger: Ledger, day: int, who: np.ndarray, behaviour: np.ndarray,
             cause: np.ndarray, channel: np.ndarray, record: np.ndarray) -> np.ndarray:
        """Add today's records to the marks of those who take part; return which of the
        records counted."""
        sel = self.opted[who] & self.marked[behaviour]
        who, b, rec = who[sel], behaviour[sel], record[sel]
        if len(who) == 0:
            return sel
        true = rec == R_TRUE
        new = _new_true_ids(self.true_ids, self.has_true, who, true)
        if len(new):
            # People's first false record: their true sums start as their held ones.
            at = np.searchsorted(self.true_ids, new)
            self.true_ids = np.insert(self.true_ids, at, new)
            self.true_acc = np.insert(self.true_acc, at, self.acc[:, new], axis=1)
            np.bitwise_or.at(self.has_true, new >> 3, (1 << (new & 7)).astype(np.uint8))
        _add_marks(self.acc, self.true_ids, self.has_true, self.true_acc, who, b, true,
                   self.h_mark.astype(np.float32), self.b_mark.astype(np.float32))
        neg = (self.h_mark[b] + self.b_mark[b]) < 0
        self.last_neg_domain[who[neg]] = self.domains[b[neg]]
        ledger.append(day=day, entity=0, id=who, kind=K_MARK, cause=cause[sel],
                      channel=channel[sel], record=rec,
                      delta=np.rint((self.h_mark[b] + self.b_mark[b]) * MARK_UNIT),
                      value=self.score[who])
        return sel

    # Refresh ---------------------------------------------------------------
    def due(self, day: int) -> bool:
        return day > 0 and day % self.params.refresh_days == 0

    def refresh(self, day: int, thresholds: np.ndarray) -> np.ndarray:
        """Fade marks and recompute every participant's score. The changes wait in
        `pending` for the ledger (written at the end of the day, in chunks: a refresh
        can move most scores). Returns the people whose held or true score crossed one
        of `thresholds` (the score gates' lines): only their sanction status can move."""
        if len(self.joining):  # those who came of age since the last refresh
            self.opted[self.joining] = True
            self.participants += len(self.joining)
            self.joining = self.joining[:0]
        fade = np.float32(math.exp(-self.params.refresh_days / self.params.memory_days))
        self.acc *= fade
        self.true_acc *= fade
        new, new_true = self._compute(day)
        changed, crossed = _changes(self.score, self.score_true, new, new_true,
                                    np.asarray(thresholds, dtype=np.float64))
        # The old scores of those who changed: the new ones are in self.score by the time
        # the ledger rows are written (fewer bytes held than deltas and values).
        self.pending = (day, changed, self.score[changed])
        if self.params.prune_below > 0:
            t = self.params.prune_below
            self.fallen = changed[(new[changed] < t) & (self.score[changed] >= t)]
        # In place: the consequences phase holds references to these arrays.
        self.score[:] = new
        self.score_true[:] = new_true
        self.band_counts = self._band_counts()
        return crossed

    def write_pending(self, ledger: Ledger) -> None:
        """Log the last refresh's score changes (after the day's other rows)."""
        if self.pending is None:
            return
        day, who, old = self.pending
        value = self.score[who]
        delta = value.astype(np.int32) - old
        # A refresh mixes every mark, true or not: it rests on no one record.
        ledger.append_chunked(day=day, entity=0, id=who, kind=K_COMPOSITE, cause=C_REFRESH,
                              record=R_NONE, delta=delta, value=value)
        self.pending = None

    def _compute(self, day: int) -> tuple[np.ndarray, np.ndarray]:
        p, e, g, c = self.people, self.economy, self.graph, self.params
        if self.listed is not None:
            n_true, n_false = self.listed
        else:
            n_true = n_false = np.zeros(1, np.uint8)
        stress0 = e.initial_stress if not e.enabled else np.zeros(1, np.float32)
        # One 32-bit word per person: first the contacts' score sum and count, packed
        # (_contact_sums), then the new held and true scores in its two halves.
        words = np.empty(len(self.score), dtype=np.int32)
        halves = words.view(np.int16)
        new, new_true = halves[0::2], halves[1::2]
        args = (self.opted, self.acc, self.true_ids, self.has_true, self.true_acc,
                self.is_parent, self.identity, p.income, self.income_knots, e.enabled,
                e.savings, e.updated, e.buffer_factor, float(e.recovery), stress0, day,
                g.indptr, g.indices, g.kind, self.listed is not None, n_true, n_false)
        tail = (self.weights, float(c.low), float(c.high), c.history_bias, c.behaviour_bias,
                c.parent_bonus, c.capacity_income_share, float(c.listing_penalty))
        # One pass reads only contacts' held scores (half the random reads, and an array
        # that stays in cache longer); the few people with a contact whose true score
        # differs get their true score again from contacts' true scores. The contacts
        # are summed in a pass of their own: alone, the scattered reads overlap far
        # better than between the other dimensions' arithmetic (0.35 s against 0.55 s
        # a refresh at 10 million people). Before the first pass no contact has a
        # score: every relationships dimension is the neutral 0.5.
        contacts_scored = len(self.score) > 0 and int(self.score.max()) != NOT_SCORED
        if contacts_scored:
            _contact_sums(self.opted, g.indptr, g.indices, g.kind, self.score, words)
        else:
            words[:] = _packed(0, 0)
        _scores(*args, self.score, words, *tail, new, new_true)
        if len(self.true_ids):  # their true sums: held contacts, as for everyone
            _true_scores(self.true_ids, *args, self.score, *tail, new_true)
        differ = np.flatnonzero(self.score != self.score_true)
        if len(differ):
            targets = _contacts_of(differ, g.indptr, g.indices, self._seen)
            _true_scores(targets, *args, self.score_true, *tail, new_true)
        return new, new_true

    def _band_counts(self) -> np.ndarray:
        """Participants below the lowest floor, then in each band (-1, the score of
        those who take no part, lies below every floor)."""
        at_least = [self.participants] + list(_at_least(self.score, self.floors))
        return -np.diff(np.array(at_least + [0]))

    def daily(self) -> dict:
        row = {"composite_participants": self.participants}
        if len(self.floors):
            if self.floors[0] > self.params.low:  # a score can lie below every band
                row["band_below_lowest"] = int(self.band_counts[0])
            for name, count in zip(self.band_names, self.band_counts[1:], strict=True):
                row[f"band_{name}"] = int(count)
        return row


def _expected_marks(marks: np.ndarray, cat: Catalogue, p: People,
                    c: CompositeSystem, ids: np.ndarray | None = None) -> np.ndarray:
    """Marks a person would hold in the steady state: memory x sum over behaviours of
    mark x base rate x detection x trait multiplier (no stress, no adaptation); of
    everyone, or of the people `ids`."""
    sel = slice(None) if ids is None else ids
    out = np.zeros(p.n if ids is None else len(ids), dtype=np.float32)
    traits = {D_NONCOMPLIANCE: 2 * (1 - p.compliance[sel]), D_VOICE: 2 * p.voice[sel],
              D_GENEROSITY: 2 * p.generosity[sel]}
    for b in np.flatnonzero(marks):
        k = c.memory_days * marks[b] * cat.rate[b] * cat.detection[cat.channel[b]]
        out += np.float32(k) * traits.get(int(cat.driver[b]), np.float32(1.0))
    out[~is_adult(p.age[sel])] = 0
    return out


def _opt_in(c: CompositeSystem, p: People, streams: Streams) -> np.ndarray:
    """Who takes part: all adults if mandatory, else more of the rich, fewer elders."""
    adult = is_adult(p.age)
    if c.opt_in >= 1.0:
        return adult
    if c.opt_in <= 0.0:
        return np.zeros(p.n, dtype=bool)
    med = float(np.median(p.income[adult])) if adult.any() else 1.0
    logit = math.log(c.opt_in / (1 - c.opt_in)) + c.opt_in_income_elasticity * np.log(
        np.maximum(p.income, 1e-6) / med)
    logit = logit + np.where(p.age == ELDER, math.log(max(c.opt_in_elder_factor, 1e-9)), 0.0)
    u = counter_uniform(streams.key("composite.opt_in"), 0, np.arange(p.n))
    return adult & (u < 1 / (1 + np.exp(-logit)))


def _opt_in_of(c: CompositeSystem, p: People, streams: Streams, ids: np.ndarray,
               median_income: float) -> np.ndarray:
    """Whether each of the adults `ids` takes part, by the rule of _opt_in (the median
    income of the adults at the start, the uniform of the slot)."""
    if c.opt_in >= 1.0:
        return np.ones(len(ids), dtype=bool)
    if c.opt_in <= 0.0:
        return np.zeros(len(ids), dtype=bool)
    logit = math.log(c.opt_in / (1 - c.opt_in)) + c.opt_in_income_elasticity * np.log(
        np.maximum(p.income[ids], 1e-6) / median_income)
    logit = logit + np.where(p.age[ids] == ELDER,
                             math.log(max(c.opt_in_elder_factor, 1e-9)), 0.0)
    u = counter_uniform(streams.key("composite.opt_in"), 0, ids)
    return u < 1 / (1 + np.exp(-logit))


@njit(cache=True, parallel=True)
def _at_least(score, floors):  # pragma: no cover
    """For each floor, how many scores are at or above it, in one parallel pass."""
    chunks = 64
    size = (len(score) + chunks - 1) // chunks
    counts = np.zeros((chunks, len(floors)), dtype=np.int64)
    for c in prange(chunks):
        for i in range(c * size, min(len(score), (c + 1) * size)):
            for j in range(len(floors)):
                counts[c, j] += score[i] >= floors[j]
    return counts.sum(axis=0)


@njit(cache=True, inline="always")
def _true_index(true_ids, has_true, p):  # pragma: no cover
    """Where p's true sums are kept in the sorted true_ids, or -1 (they are the held).
    The bit set has_true spares the search for the many who keep none."""
    if not (has_true[p >> 3] >> (p & 7)) & 1:
        return -1
    r = np.searchsorted(true_ids, p)
    return r if r < len(true_ids) and true_ids[r] == p else -1


@njit(cache=True)
def _new_true_ids(true_ids, has_true, who, true):  # pragma: no cover
    """The people with a false record among who (true: whether each record is true) who
    keep no true sums yet, sorted and distinct."""
    found = np.empty(len(who), dtype=np.int32)
    k = 0
    for r in range(len(who)):
        if not true[r] and _true_index(true_ids, has_true, who[r]) < 0:
            found[k] = who[r]
            k += 1
    return np.unique(found[:k])


@njit(cache=True)
def _add_marks(acc, true_ids, has_true, true_acc, who, behaviour, true, h_mark,
               b_mark):  # pragma: no cover
    """Add each record's history and behaviour marks to the held sums and, if the record
    is true, to the true sums of those who keep them apart, in record order."""
    for r in range(len(who)):
        p, b = who[r], behaviour[r]
        acc[0, p] += h_mark[b]
        acc[1, p] += b_mark[b]
        if true[r]:
            t = _true_index(true_ids, has_true, p)
            if t >= 0:
                true_acc[0, t] += h_mark[b]
                true_acc[1, t] += b_mark[b]


@njit(cache=True, inline="always")
def _logistic(x):  # pragma: no cover
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, inline="always")
def _relationships(p, indptr, indices, kind, scores, low, span):  # pragma: no cover
    """Mean normalised score of p's live contacts who take part (0.5 if none)."""
    total, k = _contact_total(p, indptr, indices, kind, scores)
    return (total - k * low) / span / k if k > 0 else 0.5


@njit(cache=True, inline="always")
def _contact_total(p, indptr, indices, kind, scores):  # pragma: no cover
    """(sum, number) of the scores of p's live contacts who take part. Branch-free:
    whether a contact counts (a live tie, a score) is unpredictable, and mispredicted
    branches would stall the scattered score reads that bound this loop."""
    total = 0
    k = 0
    for a in range(indptr[p], indptr[p + 1]):
        v = np.int64(scores[indices[a]])
        counts = np.int64((kind[a] & DROPPED) == 0) & np.int64(v >= 0)
        total += counts * v
        k += counts
    return total, k


@njit(cache=True, inline="always")
def _capacity(p, income, knots, econ_on, savings, updated, buffer_factor, recovery, stress0,
              day, cap_share):  # pragma: no cover
    """Person p's fulfilment capacity: income percentile and (1 - economic stress)."""
    # The number of knots below the income (np.searchsorted's left side) by a branch-free
    # binary search: unpredictable branches cost more than the arithmetic.
    x = income[p]
    pos = 0
    step = KNOT_SLOTS // 2
    while step > 0:
        pos += step * (knots[pos + step - 1] < x)
        step //= 2
    pct = min(max(pos / PERCENTILES, 0.0), 1.0)
    if econ_on:
        s = lazy_savings(savings[p], income[p], updated[p], day, buffer_factor, recovery)
        st = stress_of_one(s, income[p], buffer_factor)
    else:
        st = stress0[p]
    return cap_share * pct + (1.0 - cap_share) * (1.0 - st)


@njit(cache=True, inline="always")
def _score_of(p, truth, rel, capacity, h, b, is_parent, identity, has_list, n_true, n_false,
              w, low, high, hb, bb, parent_bonus, penalty):  # pragma: no cover
    """Person p's held (truth = 0) or true (truth = 1) score, given the relationships
    dimension rel, the capacity dimension and the history and behaviour mark sums."""
    pb = parent_bonus if is_parent[p] else 0.0
    v = (w[0] * _logistic(hb + h) + w[1] * capacity
         + w[2] * _logistic(bb + pb + b) + w[3] * identity[p] / 255.0
         + w[4] * rel)
    sc = low + (high - low) * v
    if has_list and (n_true[p] > 0 or (truth == 0 and n_false[p] > 0)):
        sc -= penalty
    return int(round(min(max(sc, low), high)))


SUM_BITS = 23  # a packed word: the contacts' score sum above 8 bits of their count


@njit(cache=True, inline="always")
def _packed(total, k):  # pragma: no cover
    """A contact sum and count in one int32, or -1 if they do not fit."""
    if k < 256 and total < (1 << SUM_BITS):
        return np.int32((total << 8) | k)
    return np.int32(-1)


@njit(cache=True, parallel=True)
def _contact_sums(opted, indptr, indices, kind, scores, words):  # pragma: no cover
    """words[p]: the sum and number of p's live contacts' scores (those taking part),
    packed."""
    for p in prange(len(opted)):
        if opted[p]:
            total, k = _contact_total(p, indptr, indices, kind, scores)
            words[p] = _packed(total, k)


@njit(cache=True, parallel=True)
def _scores(opted, acc, true_ids, has_true, true_acc, is_parent, identity, income, knots,
            econ_on, savings, updated, buffer_factor, recovery, stress0, day, indptr,
            indices, kind, has_list, n_true, n_false, prev, words, w, low, high, hb, bb,
            parent_bonus, cap_share, penalty, out, out_true):  # pragma: no cover
    """Everyone's held and true score, with the relationships dimension of both taken
    from contacts' held scores, summed in `words` (see _true_scores for those with a
    differing contact). out and out_true are the halves of words: each person's word
    is read before it is overwritten. Most people have no false mark or listing: their
    true score is their held one (those with true sums of their own get it from
    _true_scores next)."""
    for p in prange(len(opted)):
        if not opted[p]:
            out[p] = -1
            out_true[p] = -1
            continue
        word = words[p]
        if word >= 0:
            k = word & 255
            rel = ((word >> 8) - k * low) / (high - low) / k if k > 0 else 0.5
        else:  # a sum or count too large to pack: read the contacts again
            rel = _relationships(p, indptr, indices, kind, prev, low, high - low)
        cap = _capacity(p, income, knots, econ_on, savings, updated, buffer_factor,
                        recovery, stress0, day, cap_share)
        sc = _score_of(p, 0, rel, cap, acc[0, p], acc[1, p], is_parent, identity, has_list,
                       n_true, n_false, w, low, high, hb, bb, parent_bonus, penalty)
        out[p] = sc
        if not (has_list and n_true[p] == 0 and n_false[p] > 0):
            out_true[p] = sc
        else:
            out_true[p] = _score_of(p, 1, rel, cap, acc[0, p], acc[1, p], is_parent,
                                    identity, has_list, n_true, n_false, w, low, high, hb,
                                    bb, parent_bonus, penalty)


@njit(cache=True, parallel=True)
def _true_scores(targets, opted, acc, true_ids, has_true, true_acc, is_parent, identity,
                 income, knots, econ_on, savings, updated, buffer_factor, recovery, stress0,
                 day, indptr, indices, kind, has_list, n_true, n_false, prev_true, w, low,
                 high, hb, bb, parent_bonus, cap_share, penalty,
                 out_true):  # pragma: no cover
    """The true score again for targets, from the contacts' scores prev_true (true
    scores; or held ones, for people with true sums of their own, as in _scores)."""
    for r in prange(len(targets)):
        p = targets[r]
        if opted[p]:
            rel = _relationships(p, indptr, indices, kind, prev_true, low, high - low)
            cap = _capacity(p, income, knots, econ_on, savings, updated, buffer_factor,
                            recovery, stress0, day, cap_share)
            t = _true_index(true_ids, has_true, p)
            h, b = (true_acc[0, t], true_acc[1, t]) if t >= 0 else (acc[0, p], acc[1, p])
            out_true[p] = _score_of(p, 1, rel, cap, h, b, is_parent, identity, has_list,
                                    n_true, n_false, w, low, high, hb, bb, parent_bonus,
                                    penalty)


@njit(cache=True)
def _contacts_of(people, indptr, indices, seen):  # pragma: no cover
    """The distinct contacts of people (seen: scratch, left all False)."""
    room = 0
    for p in people:
        room += indptr[p + 1] - indptr[p]
    out = np.empty(room, dtype=np.int64)
    k = 0
    for p in people:
        for a in range(indptr[p], indptr[p + 1]):
            q = indices[a]
            if not seen[q]:
                seen[q] = True
                out[k] = q
                k += 1
    for j in range(k):
        seen[out[j]] = False
    return out[:k].copy()


def _changes(old, old_true, new, new_true, thresholds) -> tuple[np.ndarray, np.ndarray]:
    """(people whose held score changed, people whose held or true score crossed one
    of the thresholds): flags in a parallel pass, then the two lists."""
    flags = np.empty(len(old), dtype=np.uint8)
    _change_flags(old, old_true, new, new_true, thresholds, flags)
    return _flagged(flags, 1), _flagged(flags, 2)


@njit(cache=True, parallel=True)
def _change_flags(old, old_true, new, new_true, thresholds, flags):  # pragma: no cover
    """flags[p]: 1 if the held score changed, + 2 if held or true crossed a threshold.
    Branch-free: whether a score moved is unpredictable."""
    for p in prange(len(old)):
        o, n, ot, nt = old[p], new[p], old_true[p], new_true[p]
        crossed = False
        for t in thresholds:
            crossed |= ((o < t) != (n < t)) | ((ot < t) != (nt < t))
        flags[p] = np.uint8(o != n) | (np.uint8(crossed) << np.uint8(1))


@njit(cache=True, parallel=True)
def _flagged(flags, bit):  # pragma: no cover
    """The people whose flags have `bit`, as int32, with no population-sized temporary:
    counted, then listed, chunk by chunk in parallel."""
    chunks = 64
    size = (len(flags) + chunks - 1) // chunks
    counts = np.zeros(chunks + 1, dtype=np.int64)
    for c in prange(chunks):
        k = 0
        for p in range(c * size, min(len(flags), (c + 1) * size)):
            k += (flags[p] & bit) != 0
        counts[c + 1] = k
    starts = np.cumsum(counts)
    out = np.empty(starts[-1], dtype=np.int32)
    for c in prange(chunks):
        k = starts[c]
        for p in range(c * size, min(len(flags), (c + 1) * size)):
            if flags[p] & bit:
                out[k] = p
                k += 1
    return out
