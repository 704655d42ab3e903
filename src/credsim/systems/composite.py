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
from credsim.economy import Economy, lazy_savings, stress_of_one
from credsim.ledger import C_REFRESH, K_COMPOSITE, K_MARK, R_TRUE, Ledger
from credsim.population.graph import DROPPED, Graph
from credsim.population.people import CHILD, ELDER, People
from credsim.rng import Streams, counter_uniform, stream_key
from credsim.scenario.model import DIMENSIONS, CompositeSystem
from credsim.systems.points import NO_DOMAIN

NOT_SCORED = -1
MARK_UNIT = 100  # ledger deltas of marks are in hundredths of log-odds


class Composite:
    def __init__(self, params: CompositeSystem, people: People, graph: Graph,
                 economy: Economy, streams: Streams, cat: Catalogue,
                 listed: tuple[np.ndarray, np.ndarray] | None):
        self.params, self.people, self.graph, self.economy = params, people, graph, economy
        self.listed = listed  # (true listings, false listings) per person, or None
        n = people.n
        self.h_mark = np.array([params.history_marks.get(b, 0.0) for b in cat.names])
        self.b_mark = np.array([params.behaviour_marks.get(b, 0.0) for b in cat.names])
        self.marked = (self.h_mark != 0) | (self.b_mark != 0)
        self.domains = cat.domain
        w = np.array([params.weights.get(d, 0.0) for d in DIMENSIONS])
        self.weights = w / w.sum()
        self.opted = _opt_in(params, people, streams)
        self.participants = int(self.opted.sum())
        # Identity completeness in [0, 1], fixed per person (stored in 1 byte).
        u = counter_uniform(stream_key(f"{streams.seed}/composite.identity"), 0, np.arange(n))
        self.identity = (u * 256).astype(np.uint8)  # completeness in [0, 1]
        self.is_parent = np.zeros(n, dtype=bool)
        for par in (people.parent1, people.parent2):
            self.is_parent[par[par >= 0]] = True
        adults = people.income[people.age != CHILD]
        self.income_knots = (np.quantile(adults, np.linspace(0, 1, 101)).astype(np.float64)
                             if len(adults) else np.zeros(101))
        # Mark sums: history, history true, behaviour, behaviour true. A person's past is
        # taken to be the steady state of their conduct: marks expected from their traits
        # over the memory of the system.
        self.acc = np.empty((4, n), dtype=np.float32)
        self.acc[0] = self.acc[1] = _expected_marks(self.h_mark, cat, people, params)
        self.acc[2] = self.acc[3] = _expected_marks(self.b_mark, cat, people, params)
        self.last_neg_domain = np.full(n, NO_DOMAIN, dtype=np.uint8)
        self.score = np.full(n, NOT_SCORED, dtype=np.int16)
        self.score_true = self.score.copy()
        # Two passes, so that the relationships dimension starts from contacts' scores.
        for _ in range(2):
            self.score[:], self.score_true[:] = self._compute(0)
        self.initial = self.score.copy()
        self.floors = np.array(sorted(params.bands.values()), dtype=np.int64)
        self.band_names = [k for k, _ in sorted(params.bands.items(), key=lambda kv: kv[1])]
        self.band_counts = self._band_counts()
        self.fallen: np.ndarray = np.zeros(0, np.int64)

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
        for row, marks, only_true in ((0, self.h_mark, False), (1, self.h_mark, True),
                                      (2, self.b_mark, False), (3, self.b_mark, True)):
            m = marks[b].astype(np.float32)
            if only_true:
                np.add.at(self.acc[row], who[true], m[true])
            else:
                np.add.at(self.acc[row], who, m)
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

    def refresh(self, ledger: Ledger, day: int) -> np.ndarray:
        """Fade marks, recompute every participant's score, log the changes; return the
        people whose held or true score moved."""
        self.acc *= np.float32(math.exp(-self.params.refresh_days / self.params.memory_days))
        new, new_true = self._compute(day)
        moved = np.flatnonzero((new != self.score) | (new_true != self.score_true))
        changed = moved[new[moved] != self.score[moved]]
        ledger.append(day=day, entity=0, id=changed, kind=K_COMPOSITE, cause=C_REFRESH,
                      record=R_TRUE, delta=new[changed].astype(np.int32) - self.score[changed],
                      value=new[changed])
        if self.params.prune_below > 0:
            t = self.params.prune_below
            self.fallen = changed[(new[changed] < t) & (self.score[changed] >= t)]
        # In place: the consequences phase holds references to these arrays.
        self.score[:] = new
        self.score_true[:] = new_true
        self.band_counts = self._band_counts()
        return moved

    def _compute(self, day: int) -> tuple[np.ndarray, np.ndarray]:
        p, e, g, c = self.people, self.economy, self.graph, self.params
        if self.listed is not None:
            n_true, n_false = self.listed
        else:
            n_true = n_false = np.zeros(1, np.uint8)
        stress0 = e.initial_stress if not e.enabled else np.zeros(1, np.float32)
        new = np.empty_like(self.score)
        new_true = np.empty_like(self.score)
        _scores(self.opted, self.acc, self.is_parent, self.identity, p.income,
                self.income_knots, e.enabled, e.savings, e.updated, e.buffer_factor,
                float(e.recovery), stress0, day, g.indptr, g.indices, g.kind,
                self.listed is not None, n_true, n_false, self.score, self.score_true,
                self.weights, float(c.low), float(c.high), c.history_bias, c.behaviour_bias,
                c.parent_bonus, c.capacity_income_share, float(c.listing_penalty),
                new, new_true)
        return new, new_true

    def _band_counts(self) -> np.ndarray:
        s = self.score[self.opted]
        return np.bincount(np.searchsorted(self.floors, s, side="right"),
                           minlength=len(self.floors) + 1)

    def daily(self) -> dict:
        row = {"composite_participants": self.participants}
        if len(self.floors):
            below = int(self.band_counts[0])
            if below:
                row["band_below_lowest"] = below
            for name, count in zip(self.band_names, self.band_counts[1:], strict=True):
                row[f"band_{name}"] = int(count)
        return row


def _expected_marks(marks: np.ndarray, cat: Catalogue, p: People,
                    c: CompositeSystem) -> np.ndarray:
    """Marks a person would hold in the steady state: memory x sum over behaviours of
    mark x base rate x detection x trait multiplier (no stress, no adaptation)."""
    out = np.zeros(p.n, dtype=np.float32)
    traits = {D_NONCOMPLIANCE: 2 * (1 - p.compliance), D_VOICE: 2 * p.voice,
              D_GENEROSITY: 2 * p.generosity}
    for b in np.flatnonzero(marks):
        k = c.memory_days * marks[b] * cat.rate[b] * cat.detection[cat.channel[b]]
        out += np.float32(k) * traits.get(int(cat.driver[b]), np.float32(1.0))
    out[p.age == CHILD] = 0
    return out


def _opt_in(c: CompositeSystem, p: People, streams: Streams) -> np.ndarray:
    """Who takes part: all adults if mandatory, else more of the rich, fewer elders."""
    adult = p.age != CHILD
    if c.opt_in >= 1.0:
        return adult
    if c.opt_in <= 0.0:
        return np.zeros(p.n, dtype=bool)
    med = float(np.median(p.income[adult])) if adult.any() else 1.0
    logit = math.log(c.opt_in / (1 - c.opt_in)) + c.opt_in_income_elasticity * np.log(
        np.maximum(p.income, 1e-6) / med)
    logit = logit + np.where(p.age == ELDER, math.log(max(c.opt_in_elder_factor, 1e-9)), 0.0)
    u = counter_uniform(stream_key(f"{streams.seed}/composite.opt_in"), 0, np.arange(p.n))
    return adult & (u < 1 / (1 + np.exp(-logit)))


@njit(cache=True, inline="always")
def _logistic(x):  # pragma: no cover
    return 1.0 / (1.0 + math.exp(-x))


@njit(cache=True, parallel=True)
def _scores(opted, acc, is_parent, identity, income, knots, econ_on, savings, updated,
            buffer_factor, recovery, stress0, day, indptr, indices, kind, has_list,
            n_true, n_false, prev, prev_true, w, low, high, hb, bb, parent_bonus,
            cap_share, penalty, out, out_true):  # pragma: no cover
    span = high - low
    for p in prange(len(opted)):
        if not opted[p]:
            out[p] = -1
            out_true[p] = -1
            continue
        pct = np.searchsorted(knots, income[p]) / (len(knots) - 1.0)
        pct = min(max(pct, 0.0), 1.0)
        if econ_on:
            s = lazy_savings(savings[p], income[p], updated[p], day, buffer_factor, recovery)
            st = stress_of_one(s, income[p], buffer_factor)
        else:
            st = stress0[p]
        capacity = cap_share * pct + (1.0 - cap_share) * (1.0 - st)
        ident = identity[p] / 255.0
        pb = parent_bonus if is_parent[p] else 0.0
        rel = 0.0
        rel_true = 0.0
        k = 0
        for a in range(indptr[p], indptr[p + 1]):
            q = indices[a]
            if kind[a] & DROPPED or prev[q] < 0:
                continue
            rel += (prev[q] - low) / span
            rel_true += (prev_true[q] - low) / span
            k += 1
        if k > 0:
            rel /= k
            rel_true /= k
        else:
            rel = rel_true = 0.5
        common = w[1] * capacity + w[3] * ident
        v = common + w[0] * _logistic(hb + acc[0, p]) + w[2] * _logistic(bb + pb + acc[2, p])
        vt = common + w[0] * _logistic(hb + acc[1, p]) + w[2] * _logistic(bb + pb + acc[3, p])
        v += w[4] * rel
        vt += w[4] * rel_true
        sc = low + span * v
        sct = low + span * vt
        if has_list:
            if n_true[p] + n_false[p] > 0:
                sc -= penalty
            if n_true[p] > 0:
                sct -= penalty
        out[p] = int(round(min(max(sc, low), high)))
        out_true[p] = int(round(min(max(sct, low), high)))
