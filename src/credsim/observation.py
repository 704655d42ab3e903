"""Observe and Review phases: detection of true events, false records, review.

A channel records a true event with its detection probability (which can
differ by group) and also creates false records: misattributions at a rate
per adult person-day (which can differ by group), each naming a behaviour
the channel observes, drawn in proportion to the behaviours' base rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from credsim.behaviour import Catalogue, Events
from credsim.ledger import R_COLLUSION, R_FALSE, R_INSIDER, R_TRUE
from credsim.population.people import People, is_adult
from credsim.rng import Streams

SOURCES = ("observed", "channel_error", "informant", "insider", "collusion")
S_OBSERVED, S_CHANNEL_ERROR, S_INFORMANT, S_INSIDER, S_COLLUSION = range(5)


@dataclass
class Records:
    """Recorded items of one day: detected true events, then false records."""

    who: np.ndarray  # int32
    behaviour: np.ndarray  # int16
    is_false: np.ndarray  # bool: the record does not describe a true event
    is_firm: np.ndarray  # bool
    source: np.ndarray  # uint8, one of SOURCES

    def __len__(self) -> int:
        return len(self.who)

    def subset(self, mask: np.ndarray) -> Records:
        return Records(self.who[mask], self.behaviour[mask], self.is_false[mask],
                       self.is_firm[mask], self.source[mask])

    def ledger_record(self) -> np.ndarray:
        """Ledger record codes: true, false, insider (an edit, not an error) or
        collusion (a good deed certified by a ring of colluders)."""
        return np.select(
            [self.source == S_INSIDER, self.source == S_COLLUSION, self.is_false],
            [R_INSIDER, R_COLLUSION, R_FALSE], R_TRUE,
        ).astype(np.uint8)

    @staticmethod
    def concat(parts: list[Records]) -> Records:
        return Records(*(np.concatenate([getattr(r, f) for r in parts]) for f in (
            "who", "behaviour", "is_false", "is_firm", "source")))


def channel_codes(cat: Catalogue, r: Records) -> np.ndarray:
    """Ledger channel codes of records: the behaviour's channel (from 1), or informant /
    insider / collusion for records that came through no channel (0 is no channel)."""
    n_ch = len(cat.channel_names)
    return np.select(
        [r.source == S_INFORMANT, r.source == S_INSIDER, r.source == S_COLLUSION],
        [n_ch + 1, n_ch + 2, n_ch + 3], cat.channel[r.behaviour] + 1,
    )


class Observation:
    def __init__(self, cat: Catalogue, people: People, streams: Streams):
        self.cat, self.people, self.streams = cat, people, streams
        # Behaviours a channel can misattribute: person behaviours it observes.
        self.false_choices: list[tuple[np.ndarray, np.ndarray]] = []
        for c in range(len(cat.channel_names)):
            bs = np.flatnonzero((cat.channel == c) & ~cat.is_firm & (cat.rate > 0))
            w = cat.rate[bs] / cat.rate[bs].sum() if len(bs) else np.zeros(0)
            self.false_choices.append((bs.astype(np.int16), np.cumsum(w)))

    def detect(self, ev: Events) -> np.ndarray:
        cat = self.cat
        ch = cat.channel[ev.behaviour]
        firm = cat.is_firm[ev.behaviour]
        group = self.people.group[np.where(firm, 0, ev.who)]
        # Firms have no audit group: they are detected at the channel's base rate.
        p = cat.detection[ch] * np.where(firm, 1.0, cat.detection_by_group[ch, group])
        return ev.u_detect < p

    def false_records(self, day: int) -> tuple[np.ndarray, np.ndarray]:
        cat, people = self.cat, self.people
        whos, bhs = [], []
        for c, name in enumerate(cat.channel_names):
            bs, cum = self.false_choices[c]
            gmax = cat.false_rate_by_group[c].max()
            rmax = cat.false_rate[c] * gmax
            if rmax <= 0 or len(bs) == 0:
                continue
            rng = self.streams.get(f"false.{name}", day)
            k = rng.poisson(people.n * rmax)
            idx = rng.integers(0, people.n, size=k, dtype=np.int64)
            u_accept = rng.random(k)
            u_behaviour = rng.random(k)
            keep = (u_accept * gmax < cat.false_rate_by_group[c][people.group[idx]]) & (
                is_adult(people.age[idx])
            )
            whos.append(idx[keep].astype(np.int32))
            pick = np.minimum(np.searchsorted(cum, u_behaviour[keep]), len(bs) - 1)
            bhs.append(bs[pick])
        if not whos:
            return np.zeros(0, np.int32), np.zeros(0, np.int16)
        return np.concatenate(whos), np.concatenate(bhs)

    def step(self, ev: Events, day: int) -> Records:
        seen = self.detect(ev)
        fw, fb = self.false_records(day)
        n_true = int(seen.sum())
        who = np.concatenate([ev.who[seen], fw])
        beh = np.concatenate([ev.behaviour[seen], fb])
        is_false = np.zeros(len(who), dtype=bool)
        is_false[n_true:] = True
        source = np.where(is_false, S_CHANNEL_ERROR, S_OBSERVED).astype(np.uint8)
        return Records(who, beh, is_false, self.cat.is_firm[beh], source)
