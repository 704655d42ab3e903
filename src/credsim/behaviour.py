"""Event sampling (the Behave phase) and the rate multipliers that adaptation moves.

Events are sampled in time proportional to their number by thinning: each
day, for each behaviour, candidates arrive at the behaviour's maximum
possible rate (a Poisson count, then uniform slots), and a candidate becomes
an event with probability (the person's current rate / the maximum rate).
Candidates and their uniforms depend only on (seed, behaviour, day), so a
change in one person's rate changes only that person's events: common
random numbers at the level of each event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from credsim.economy import Economy
from credsim.population.firms import Firms
from credsim.population.people import CHILD, People
from credsim.rng import Streams
from credsim.scenario.model import DOMAINS, Scenario

DRIVERS = ("noncompliance", "voice", "generosity", "none")
D_NONCOMPLIANCE, D_VOICE, D_GENEROSITY, D_NONE = range(4)
DRIVER_MAX = 2.0  # trait multipliers lie in [0, 2], mean 1 for a symmetric trait


@dataclass
class Catalogue:
    """The scenario's behaviours and channels compiled into arrays."""

    names: list[str]
    domain: np.ndarray  # int, index into DOMAINS
    channel: np.ndarray  # int, index into channel_names
    rate: np.ndarray
    driver: np.ndarray
    elasticity: np.ndarray
    is_firm: np.ndarray  # bool
    delta: np.ndarray  # int32 points delta (0 without a points system)
    global_factor: np.ndarray  # deterrence / chilling / performative factor, constant in time
    adapt_kind: np.ndarray  # 0 none, 1 deterred (scored bad), 2 voice
    channel_names: list[str]
    detection: np.ndarray  # per channel
    detection_by_group: np.ndarray  # (channels, groups)
    false_rate: np.ndarray
    false_rate_by_group: np.ndarray  # (channels, groups)

    def index(self, name: str) -> int:
        return self.names.index(name)


def compile_catalogue(s: Scenario) -> Catalogue:
    names = list(s.behaviours)
    chans = list(s.channels)
    n_groups = len(s.population.group_shares)
    bs = [s.behaviours[k] for k in names]
    points_on = s.points.enabled
    delta = np.array([s.points.deltas.get(k, 0) if points_on else 0 for k in names], np.int32)
    capped = {k for k in s.points.instant_grade} if points_on else set()
    driver = np.array([DRIVERS.index(b.driver) for b in bs], dtype=np.int8)
    scored_bad = (delta < 0) | np.array([k in capped for k in names])
    transparency = s.points.transparency if points_on else 0.0
    a = s.adaptation
    gf = np.ones(len(names))
    adapt_kind = np.zeros(len(names), dtype=np.int8)
    if a.enabled:
        ch_det = {c: s.channels[c].detection for c in chans}
        for i, b in enumerate(bs):
            if b.driver == "voice" and scored_bad[i]:
                # Speech that is penalised falls in proportion to how often it is seen.
                gf[i] = 1.0 - a.chilling * ch_det[b.channel]
                adapt_kind[i] = 2
            elif b.driver == "voice" and any(
                scored_bad[j] and bs[j].driver == "voice" for j in range(len(bs))
            ):
                gf[i] = 1.0 - a.chilling * ch_det[b.channel]  # watched speech chills too
                adapt_kind[i] = 2
            elif scored_bad[i]:
                gf[i] = 1.0 - a.general_deterrence * transparency
                adapt_kind[i] = 1
            elif delta[i] > 0:
                gf[i] = 1.0 + a.performative * transparency
    def per_group(vals: list[float]) -> np.ndarray:
        return np.asarray(vals * n_groups if len(vals) == 1 else vals, dtype=np.float64)

    return Catalogue(
        names=names,
        domain=np.array([DOMAINS.index(b.domain) for b in bs], dtype=np.int16),
        channel=np.array([chans.index(b.channel) for b in bs], dtype=np.int16),
        rate=np.array([b.rate for b in bs]),
        driver=driver,
        elasticity=np.array([b.stress_elasticity for b in bs]),
        is_firm=np.array([b.actor == "firm" for b in bs], dtype=bool),
        delta=delta,
        global_factor=gf,
        adapt_kind=adapt_kind,
        channel_names=chans,
        detection=np.array([s.channels[c].detection for c in chans]),
        detection_by_group=np.array(
            [per_group(s.channels[c].detection_by_group) for c in chans]
        ).reshape(len(chans), n_groups),
        false_rate=np.array([s.channels[c].false_rate for c in chans]),
        false_rate_by_group=np.array(
            [per_group(s.channels[c].false_rate_by_group) for c in chans]
        ).reshape(len(chans), n_groups),
    )


@dataclass
class Events:
    """True events of one day, in a fixed order (behaviour by behaviour)."""

    who: np.ndarray  # int32 person or firm slot
    behaviour: np.ndarray  # int16
    u_detect: np.ndarray  # float64 uniform drawn with the candidate


class Behaviour:
    """Behave phase: per-person rates = base x trait x stress x adaptation."""

    def __init__(self, cat: Catalogue, people: People, firms: Firms, economy: Economy,
                 streams: Streams):
        self.cat, self.people, self.firms, self.economy, self.streams = (
            cat, people, firms, economy, streams
        )
        n = people.n
        self.deter = np.ones(n, dtype=np.float32)  # personal multiplier on scored misbehaviour
        self.chill = np.ones(n, dtype=np.float32)  # personal multiplier on voice
        self.rmax = (
            cat.rate * np.where(cat.driver == D_NONE, 1.0, DRIVER_MAX)
            * (1.0 + cat.elasticity) * np.maximum(cat.global_factor, 1.0)
        )

    def person_multiplier(self, b: int, idx: np.ndarray, day: int) -> np.ndarray:
        """Rate of behaviour b for persons idx, relative to its base rate."""
        cat, p = self.cat, self.people
        d = cat.driver[b]
        if d == D_NONCOMPLIANCE:
            m = 2.0 * (1.0 - p.compliance[idx])
        elif d == D_VOICE:
            m = 2.0 * p.voice[idx]
        elif d == D_GENEROSITY:
            m = 2.0 * p.generosity[idx]
        else:
            m = np.ones(len(idx), dtype=np.float32)
        m = m * np.float32(cat.global_factor[b])
        if cat.elasticity[b] > 0:
            m = m * (1.0 + np.float32(cat.elasticity[b]) * self.economy.stress(idx, day))
        if cat.adapt_kind[b] == 1:
            m = m * self.deter[idx]
        elif cat.adapt_kind[b] == 2:
            m = m * self.chill[idx]
        return np.where(p.age[idx] == CHILD, 0.0, m)

    def firm_multiplier(self, b: int, idx: np.ndarray) -> np.ndarray:
        if self.cat.driver[b] == D_NONCOMPLIANCE:
            return 2.0 * (1.0 - self.firms.compliance[idx])
        return np.ones(len(idx))

    def step(self, day: int) -> Events:
        whos, bhs, uds = [], [], []
        for b, name in enumerate(self.cat.names):
            pop = self.firms.n if self.cat.is_firm[b] else self.people.n
            rmax = self.rmax[b]
            if rmax <= 0 or pop == 0:
                continue
            rng = self.streams.get(f"behave.{name}", day)
            k = rng.poisson(pop * min(rmax, 1.0))
            idx = rng.integers(0, pop, size=k, dtype=np.int64)
            u_accept = rng.random(k)
            u_detect = rng.random(k)
            if self.cat.is_firm[b]:
                m = self.firm_multiplier(b, idx)
            else:
                m = self.person_multiplier(b, idx, day)
            keep = u_accept * rmax < self.cat.rate[b] * m
            whos.append(idx[keep].astype(np.int32))
            bhs.append(np.full(int(keep.sum()), b, dtype=np.int16))
            uds.append(u_detect[keep])
        if not whos:
            return Events(np.zeros(0, np.int32), np.zeros(0, np.int16), np.zeros(0))
        return Events(np.concatenate(whos), np.concatenate(bhs), np.concatenate(uds))

    def expected_daily_rate(self, b: int, idx: np.ndarray) -> np.ndarray:
        """Day-0 rate per person (used by the closed-form checks)."""
        return self.cat.rate[b] * self.person_multiplier(b, idx, 0)
