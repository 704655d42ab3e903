"""Adapt phase: personal deterrence, chilling of voice, pruning ties to low scorers.

The population-wide parts of adaptation (general deterrence under published
rules, chilling where speech is watched, performative good acts) are
constant factors on the rates, set in the behaviour catalogue; this phase
moves the personal ones after each person's own records.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from credsim.behaviour import Behaviour, Catalogue, day_seed
from credsim.ledger import K_GRADE, Ledger
from credsim.population.graph import _GOLDEN, DROPPED, FAMILY, Graph, find_entry
from credsim.rng import Streams
from credsim.scenario.model import GRADES, Adaptation


class Adapt:
    def __init__(self, params: Adaptation, cat: Catalogue, behaviour: Behaviour, graph: Graph,
                 streams: Streams):
        self.p, self.cat, self.behaviour, self.graph = params, cat, behaviour, graph
        self.seed = streams.int_seed("adapt.prune")
        self.prune_grade = GRADES.index(params.prune_grade)
        self.ties_dropped_today = 0

    def step(self, who: np.ndarray, behaviour: np.ndarray, ledger: Ledger, since: int,
             day: int) -> None:
        """`who`/`behaviour`: today's person records that the systems acted on."""
        self.ties_dropped_today = 0
        if not self.p.enabled:
            return
        floor = np.float32(self.p.floor)
        # Deductions and grade caps alike deter (the catalogue's scored misbehaviour).
        bad = (self.cat.delta[behaviour] < 0) | (self.cat.adapt_kind[behaviour] == 1)
        voice = bad & (self.cat.adapt_kind[behaviour] == 2)
        deter = who[bad & ~voice]
        if len(deter) and self.p.deterrence > 0:
            b = self.behaviour
            b.deter[deter] = np.maximum(b.deter[deter] * np.float32(1 - self.p.deterrence), floor)
        chilled = who[voice]
        if len(chilled) and self.p.personal_chilling > 0:
            b = self.behaviour
            b.chill[chilled] = np.maximum(
                b.chill[chilled] * np.float32(1 - self.p.personal_chilling), floor
            )
        if self.p.prune_prob > 0:
            rows = ledger.rows(since)
            sel = (rows["entity"] == 0) & (rows["kind"] == K_GRADE)
            new = rows["value"][sel]
            old = new - rows["delta"][sel]
            fallen = rows["id"][sel][(new >= self.prune_grade) & (old < self.prune_grade)]
            if len(fallen):
                g = self.graph
                self.ties_dropped_today = _prune(
                    fallen.astype(np.int64), g.indptr, g.indices, g.kind, self.p.prune_prob,
                    self.seed, day,
                )


@njit(cache=True)
def _prune(fallen, indptr, indices, kind, prob, seed, day):  # pragma: no cover
    """Each non-family contact of a fallen person drops the tie with probability prob."""
    dropped = 0
    for r in range(len(fallen)):
        p = fallen[r]
        # A stream per (seed, day, person): independent of the order people fall in.
        np.random.seed(day_seed(np.uint64(seed) ^ (np.uint64(p) * _GOLDEN), day))
        for a in range(indptr[p], indptr[p + 1]):
            t = kind[a]
            if t & DROPPED or t == FAMILY:
                continue
            if np.random.random() < prob:
                q = indices[a]
                kind[a] = t | DROPPED
                b = find_entry(indptr, indices, q, p)
                if b >= 0:
                    kind[b] = kind[b] | DROPPED
                dropped += 1
    return dropped
