"""Inheritance: a newborn's voice and compliance taken from the parents and peers.

A newborn's trait is

    h x (the parents' mean) + w x (the peers' mean) + (1 - h - w) x a population draw,

with h the heritability and w the peer weight; the peers are the adults of the child's
region (their mean restated every PEER_DAYS days). The voice a child takes is the voice
its parents and peers express: their voice times their chilling (the personal factor
on voice of credsim.behaviour), so a system that chills speech lowers the voice of the
next generation: the "selective breeding" the cohort measures look for. The population
draw is demography's own (made all the same), so every other draw stays as it is.
"""

from __future__ import annotations

import numpy as np

from credsim.families.kin import living_parents, mean_where
from credsim.modules import Day, Module, PeopleChange
from credsim.population.people import is_adult
from credsim.scenario.model import Inheritance as InheritanceParams

PEER_DAYS = 30  # how often the peers' means are restated [days]
TRAITS = ("voice", "compliance")


class Inheritance(Module):
    kind = "inheritance"
    build_order = -7  # before anyone reads a newborn's traits

    @classmethod
    def present(cls, scenario) -> bool:
        return scenario.demography.enabled and scenario.inheritance.enabled

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.p: InheritanceParams = sim.scenario.inheritance
        self.people = sim.people
        self.peers: dict[str, np.ndarray] = {}
        self.peers_day = -PEER_DAYS

    def setup(self) -> None:
        society = self.sim.get("society")
        self.chill = (society.behaviour.chill if society is not None and self.p.chilled_voice
                      else None)

    def expressed(self, trait: str, ids: np.ndarray) -> np.ndarray:
        """The trait people `ids` show: their voice times their chilling, or their
        compliance."""
        x = getattr(self.people, trait)[ids].astype(np.float64)
        if trait == "voice" and self.chill is not None:
            x *= self.chill[ids]
        return x

    def _restate_peers(self, day: int) -> None:
        p = self.people
        adults = np.flatnonzero(is_adult(p.age))
        regions = len(p.region_start) - 1
        count = np.maximum(np.bincount(p.region[adults], minlength=regions), 1)
        for t in TRAITS:
            self.peers[t] = np.bincount(p.region[adults], weights=self.expressed(t, adults),
                                        minlength=regions) / count
        self.peers_day = day

    def people_changed(self, d: Day, change: PeopleChange) -> None:
        """The day's newborns take their parents' and peers' voice and compliance."""
        born = change.born
        if len(born) == 0:
            return
        if d.day - self.peers_day >= PEER_DAYS:
            self._restate_peers(d.day)
        p, h, w = self.people, self.p.heritability, self.p.peer_weight
        for t in TRAITS:
            arr = getattr(p, t)
            arr[born] = (h * self.parents_mean(t, born) + w * self.peers[t][p.region[born]]
                         + (1.0 - h - w) * arr[born]).astype(arr.dtype)

    def parents_mean(self, trait: str, born: np.ndarray) -> np.ndarray:
        """The mean expressed trait of each newborn's living parents (the peers' mean for
        a child with none)."""
        who, living = living_parents(self.people, born)
        mean = mean_where(self.expressed(trait, who.ravel()).reshape(who.shape), living)
        peers = self.peers[trait][self.people.region[born]]
        return np.where(np.isnan(mean), peers, mean)
