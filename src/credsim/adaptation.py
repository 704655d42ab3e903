"""Adapt phase: personal deterrence, chilling of voice, pruning ties to low scorers.

The population-wide parts of adaptation (general deterrence under published
rules, chilling where speech is watched, performative good acts) are
constant factors on the rates, set in the behaviour catalogue; this phase
moves the personal ones after each person's own records.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from credsim.behaviour import day_seed
from credsim.ledger import K_GRADE, Ledger
from credsim.modules import Day, Hook, Module, Result
from credsim.population.graph import _GOLDEN, DROPPED, FAMILY, find_entry
from credsim.rng import Stream


class Adapt(Module):
    kind = "adaptation"
    build_order = 95
    record_order = 95
    hooks = (Hook("adapt", "adapt", 50),)
    results = (Result("ties_dropped"),)
    random_streams = (Stream("adapt.prune", "numba-person", "day and person"),)

    @classmethod
    def needs_ties(cls, scenario, classes) -> bool:
        a = scenario.adaptation
        # Pruning ties to those whose grade fell: only where some module grades people.
        graded = any("grade" in c.standings for c in classes)
        return a.enabled and a.prune_prob > 0 and graded

    def __init__(self, sim) -> None:
        super().__init__(sim)
        params, cat, behaviour, graph, streams = (
            sim.scenario.adaptation, sim.cat, sim["society"].behaviour, sim.graph,
            sim.streams)
        self.p, self.cat, self.behaviour, self.graph = params, cat, behaviour, graph
        self.seed = streams.int_seed("adapt.prune")
        grades = sim.scenario.points.grades  # the main points system's
        self.prune_grade = (grades.index(params.prune_grade) if params.prune_grade in grades
                            else len(grades))  # not a grade: nobody falls to it
        self.ties_dropped_today = 0

    def adapt(self, d: Day) -> None:
        """Deter and chill those the systems acted on; prune ties to the fallen."""
        who, behaviour = d.acted_on()
        self.step(who, behaviour, self.sim.ledger, d.since, d.day, d.fallen)

    def record(self, d: Day, row: dict) -> None:
        row["ties_dropped"] = self.ties_dropped_today

    def step(self, who: np.ndarray, behaviour: np.ndarray, ledger: Ledger, since: int,
             day: int, extra_fallen: tuple = ()) -> None:
        """`who`/`behaviour`: today's person records that the systems acted on.
        `extra_fallen`: (people, prune probability) pairs from systems where
        relationships count (composite score or peer rating crossing a line)."""
        self.ties_dropped_today = 0
        if not self.p.enabled:
            return
        floor = np.float32(self.p.floor)
        # Deductions, grade caps and negative marks alike deter, as far as people can
        # tell what counted (under a black box they can only guess).
        bad = self.cat.penalised[behaviour]
        voice = bad & (self.cat.adapt_kind[behaviour] == 2)
        clarity = self.cat.clarity[behaviour]
        b = self.behaviour
        d = ~voice & bad
        if d.any() and self.p.deterrence > 0:
            _scale(b.deter, who[d], 1 - self.p.deterrence * clarity[d], floor)
        if voice.any() and self.p.personal_chilling > 0:
            _scale(b.chill, who[voice], 1 - self.p.personal_chilling * clarity[voice], floor)
        for fallen, prob in extra_fallen:
            self.ties_dropped_today += self._prune(fallen, prob, day)
        if self.p.prune_prob > 0:
            rows = ledger.rows(since)
            sel = (rows["entity"] == 0) & (rows["kind"] == K_GRADE)
            new = rows["value"][sel]
            old = new - rows["delta"][sel]
            fallen = rows["id"][sel][(new >= self.prune_grade) & (old < self.prune_grade)]
            self.ties_dropped_today += self._prune(fallen, self.p.prune_prob, day)

    def _prune(self, fallen: np.ndarray, prob: float, day: int) -> int:
        if len(fallen) == 0 or prob <= 0 or self.graph is None:
            return 0
        g = self.graph
        return _prune(np.asarray(fallen, dtype=np.int64), g.indptr, g.indices, g.kind, prob,
                      self.seed, day)


def _scale(mult: np.ndarray, who: np.ndarray, factor: np.ndarray, floor: np.float32) -> None:
    """mult[who] *= factor once per person (their first record of the day), >= floor."""
    w, first = np.unique(who, return_index=True)
    mult[w] = np.maximum(mult[w] * factor[first].astype(np.float32), floor)


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
