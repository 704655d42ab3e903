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
from numba import njit

from credsim.economy import Economy, lazy_savings, stress_of_one
from credsim.population.firms import Firms
from credsim.population.people import People
from credsim.rng import Streams
from credsim.scenario.model import DOMAINS, Scenario

DRIVERS = ("noncompliance", "voice", "generosity", "none")
D_NONCOMPLIANCE, D_VOICE, D_GENEROSITY, D_NONE = range(4)
DRIVER_MAX = 2.0  # trait multipliers lie in [0, 2], mean 1 for a symmetric trait
GUESS = 0.5  # under a black box, the chance a person believes a behaviour counts


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
    penalised: np.ndarray  # bool: a deduction, grade cap or negative composite mark
    clarity: np.ndarray  # how well people see that it counts: t + GUESS x (1 - t)
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
    c = s.composite
    mark = np.array([c.history_marks.get(k, 0.0) + c.behaviour_marks.get(k, 0.0)
                     if c.enabled else 0.0 for k in names])
    by_points = (delta != 0) | np.array([k in capped for k in names], dtype=bool)
    scored_bad = (delta < 0) | np.array([k in capped for k in names], dtype=bool) | (mark < 0)
    rewarded = (delta > 0) | ((mark > 0) & ~by_points)
    # What people can see of the rules: the points system's for what it scores, the
    # composite's for the rest. Under a black box people can only guess what counts.
    t_points = s.points.transparency if points_on else 1.0
    t_comp = c.transparency if c.enabled else 1.0
    transparency = np.where(by_points, t_points, t_comp)
    opacity = 1.0 - min(t_points, t_comp)
    a = s.adaptation
    gf = np.ones(len(names))
    adapt_kind = np.zeros(len(names), dtype=np.int8)
    if a.enabled:
        ch_det = {ch: s.channels[ch].detection for ch in chans}
        for i, b in enumerate(bs):
            t = transparency[i]
            # A guess: under opacity each misbehaviour is believed to count half the time.
            guess = GUESS * (1.0 - t)
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
                gf[i] = 1.0 - a.general_deterrence * (t + guess)
                adapt_kind[i] = 1
            elif rewarded[i]:
                gf[i] = 1.0 + a.performative * t
            elif b.driver == "voice" and opacity > 0:
                gf[i] = 1.0 - a.chilling * ch_det[b.channel] * GUESS * opacity
            elif b.driver == "noncompliance" and opacity > 0 and b.actor == "person":
                gf[i] = 1.0 - a.general_deterrence * GUESS * opacity
    def per_group(vals: list[float]) -> np.ndarray:
        return np.asarray(vals * n_groups if len(vals) == 1 else vals, dtype=np.float64)

    return Catalogue(
        names=names,
        domain=np.array([DOMAINS.index(b.domain) for b in bs], dtype=np.int16),
        channel=np.array([chans.index(b.channel) for b in bs], dtype=np.int16),
        rate=np.array([b.rate for b in bs], dtype=np.float64),
        driver=driver,
        elasticity=np.array([b.stress_elasticity for b in bs], dtype=np.float64),
        is_firm=np.array([b.actor == "firm" for b in bs], dtype=bool),
        delta=delta,
        global_factor=gf,
        adapt_kind=adapt_kind,
        penalised=scored_bad,
        clarity=transparency + GUESS * (1.0 - transparency),
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
        # The envelope may exceed one event a day: counts are Poisson, not Bernoulli.
        # Stress moves people's rates only: a firm behaviour's envelope leaves it out.
        self.rmax = (
            cat.rate * np.where(cat.driver == D_NONE, 1.0, DRIVER_MAX)
            * np.where(cat.is_firm, 1.0, 1.0 + cat.elasticity)
            * np.maximum(cat.global_factor, 1.0)
        )
        self.rmax[cat.global_factor <= 0] = 0.0  # fully deterred or chilled: never happens
        self.gf = cat.global_factor
        self.keys = np.array(
            [streams.key(f"behave.{name}") for name in cat.names], dtype=np.uint64
        )
        self._buf = (np.zeros(0, np.int32), np.zeros(0, np.int16), np.zeros(0))
        self.exempt = _NO_BOOL  # people the system's global factors do not reach

    def exempt_people(self, exempt: np.ndarray) -> None:
        """Let the global factors (general deterrence, chilling, performative acts, guesses)
        reach only people outside `exempt`: those who take part in an opt-in system.
        Exempt people act at their rates without the system."""
        self.exempt = exempt
        cat = self.cat
        self.rmax = (
            cat.rate * np.where(cat.driver == D_NONE, 1.0, DRIVER_MAX)
            * (1.0 + cat.elasticity) * np.maximum(cat.global_factor, 1.0)
        )
        # A factor of 0 (never happens) still lets exempt people act: keep it positive.
        self.gf = np.maximum(cat.global_factor, 1e-9)

    def step(self, day: int) -> Events:
        cat, p, f, e = self.cat, self.people, self.firms, self.economy
        parts = []
        for firm in (False, True):
            sel = np.flatnonzero((cat.is_firm == firm) & (self.rmax > 0))
            pop = f.n if firm else p.n
            if len(sel) == 0 or pop == 0:
                continue
            expected = float(np.sum(self.rmax[sel])) * pop
            cap = int(expected + 10 * np.sqrt(expected) + 64)
            while True:
                who, beh, ud = self._buffers(cap)
                if firm:
                    k = _sample(sel, self.keys, day, pop, self.rmax, cat.rate, cat.driver,
                                cat.elasticity, cat.adapt_kind, self.gf,
                                f.compliance, f.compliance, f.compliance, _NO_AGE, _ONE,
                                _ONE, False, True, _ZERO, _ZERO16, _ZERO, 0.0, 0.0, _ZERO,
                                _NO_BOOL, False, who, beh, ud)
                else:
                    k = _sample(sel, self.keys, day, pop, self.rmax, cat.rate, cat.driver,
                                cat.elasticity, cat.adapt_kind, self.gf,
                                p.compliance, p.voice, p.generosity, p.age, self.deter,
                                self.chill, e.enabled, False, e.savings, e.updated, e.income,
                                e.buffer_factor, float(e.recovery), e.initial_stress,
                                self.exempt, len(self.exempt) > 0, who, beh, ud)
                if k >= 0:
                    break
                cap *= 2  # more candidates than room: extremely rare, try again
            parts.append((who[:k].copy(), beh[:k].copy(), ud[:k].copy()))
        if not parts:
            return Events(np.zeros(0, np.int32), np.zeros(0, np.int16), np.zeros(0))
        return Events(*(np.concatenate(c) for c in zip(*parts, strict=True)))

    def _buffers(self, cap: int):
        if len(self._buf[0]) < cap:
            self._buf = (np.zeros(cap, np.int32), np.zeros(cap, np.int16), np.zeros(cap))
        return self._buf


_NO_AGE = np.zeros(0, np.uint8)
_ONE = np.ones(0, np.float32)
_ZERO = np.zeros(0, np.float32)
_ZERO16 = np.zeros(0, np.int16)
_NO_BOOL = np.zeros(0, np.bool_)


BATCH = 2048


@njit(cache=True)
def _sample(sel, keys, day, pop, rmax, rate, driver, elasticity, adapt_kind, gf, compliance,
            voice, generosity, age, deter, chill, econ_on, is_firm, savings, updated, income,
            buffer_factor, recovery, stress0, exempt, has_exempt, out_who, out_beh,
            out_u):  # pragma: no cover
    """Thinning for the behaviours in `sel`; returns the number of events, or -1 if the
    output arrays were too small. Each (behaviour, day) has its own seeded stream.

    Candidates are drawn in batches and filtered in stages, each stage a tight loop
    of independent reads (age, then trait, then stress and adaptation) on the
    survivors of the last, so that many cache misses are in flight at once.
    """
    k = 0
    cap = len(out_who)
    idx = np.empty(BATCH, dtype=np.int64)
    thr = np.empty(BATCH)
    ud = np.empty(BATCH)
    m = np.empty(BATCH)
    for b in sel:
        np.random.seed(day_seed(keys[b], day))
        remaining = np.random.poisson(pop * rmax[b])
        d = driver[b]
        scale = rmax[b] / (rate[b] * gf[b])
        stress_max = 1.0 + elasticity[b]
        while remaining > 0:
            nb = min(remaining, BATCH)
            remaining -= nb
            for j in range(nb):
                idx[j] = np.random.randint(0, pop)
                thr[j] = np.random.random() * scale  # accept if multiplier > thr
                ud[j] = np.random.random()
            if not is_firm:  # stage 1: only living adults and elders emit behaviours
                w = 0
                for j in range(nb):
                    a = age[idx[j]]
                    if a == 1 or a == 2:
                        idx[w], thr[w], ud[w] = idx[j], thr[j], ud[j]
                        w += 1
                nb = w
            w = 0  # stage 2: the trait, with the other factors at their upper bound
            bound = 1.0 if is_firm else stress_max
            if has_exempt and gf[b] < 1.0:
                bound /= gf[b]  # an exempt person escapes the global factor
            for j in range(nb):
                i = idx[j]
                if d == 0:
                    mj = 2.0 * (1.0 - compliance[i])
                elif d == 1:
                    mj = 2.0 * voice[i]
                elif d == 2:
                    mj = 2.0 * generosity[i]
                else:
                    mj = 1.0
                if mj * bound > thr[j]:
                    idx[w], thr[w], ud[w], m[w] = i, thr[j], ud[j], mj
                    w += 1
            nb = w
            for j in range(nb):  # stage 3: stress and adaptation
                i = idx[j]
                mj = m[j]
                if not is_firm:
                    if elasticity[b] > 0:
                        if econ_on:
                            s = lazy_savings(savings[i], income[i], updated[i], day,
                                             buffer_factor, recovery)
                            st = stress_of_one(s, income[i], buffer_factor)
                        else:
                            st = stress0[i]
                        mj *= 1.0 + elasticity[b] * st
                    if has_exempt and exempt[i]:
                        mj /= gf[b]
                    if adapt_kind[b] == 1:
                        mj *= deter[i]
                    elif adapt_kind[b] == 2:
                        mj *= chill[i]
                if mj > thr[j]:
                    if k >= cap:
                        return -1
                    out_who[k] = i
                    out_beh[k] = b
                    out_u[k] = ud[j]
                    k += 1
    return k


@njit(cache=True, inline="always")
def day_seed(key, day):  # pragma: no cover
    """A 32-bit seed for (stream key, day), mixed with splitmix64."""
    z = key + np.uint64(day + 1) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.uint32(z >> np.uint64(32))
