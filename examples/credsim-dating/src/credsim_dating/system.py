"""A dating platform that ranks profiles by displayed credit score (Baihe, 2015).

In 2015 Baihe.com, a large Chinese dating site, showed the Sesame Credit scores
of members who agreed, and gave high scorers more prominent places in the
matches it showed (Hatton, "China 'social credit': Beijing sets up huge system",
BBC News, 26 October 2015). This module models that ranking and nothing else:

- Some adults are members (`members`, a share). Where the scenario runs a
  composite score, members are drawn from the people who take part in it and
  the platform shows that score; otherwise it shows a score of its own,
  350 + 600 x the member's income percentile among adults.
- Each day members search `seek_rate` times a member on average (a Poisson
  number of searches, each by a member drawn at random). For a search the
  platform draws `pool` members at random (with replacement, so one may be
  drawn twice; never the seeker) and shows the `shown` of them with the
  highest displayed scores: the ranking.
- A shown candidate becomes a match with probability `match_prob`, times
  exp(-(candidate's score - seeker's score) / `pickiness`) when the seeker
  scores lower (pickiness 0: the candidate looks at no score).

So any gap between high and low scorers comes from the ranking (and from
pickiness); with `pool` equal to `shown` the platform shows candidates at
random. A match is recorded, as a count by the partners' score fifths and in
sums of their scores, and does not become a tie of the social graph: this
module reads and changes nothing else of the simulation, so every other figure
of a scenario is the same with it or without it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field, model_validator

from credsim.modules import AuditMeasure, Day, Hook, Module, Result, Stream, StrictParams
from credsim.population.people import CHILD

QUINTILES = 5
OWN_LOW, OWN_RANGE = 350.0, 600.0  # the module's own score: 350 + 600 x income percentile
SUMS = ("dating_score_sum", "dating_score_sq_sum", "dating_score_cross_sum")


class DatingParams(StrictParams):
    members: float = Field(
        0.2, gt=0, le=1,
        description="Share of adults (of composite participants, where a composite score "
        "runs) who are members of the platform.",
    )
    seek_rate: float = Field(
        0.05, ge=0, le=1, description="Searches per member per day [1/day]."
    )
    pool: int = Field(
        20, ge=1, le=1000,
        description="Members the platform draws at random for one search [candidates].",
    )
    shown: int = Field(
        5, ge=1, le=1000,
        description="Candidates shown, the highest displayed scores of the pool "
        "[candidates].",
    )
    match_prob: float = Field(
        0.1, ge=0, le=1, description="Probability a shown candidate becomes a match."
    )
    pickiness: float = Field(
        100.0, ge=0, le=10_000,
        description="A candidate scoring d points above the seeker accepts with "
        "exp(-d / pickiness) of match_prob (0 = scores do not matter to candidates) "
        "[points].",
    )

    @model_validator(mode="after")
    def _check(self) -> DatingParams:
        if self.shown > self.pool:
            raise ValueError(f"shown: at most pool ({self.pool}), got {self.shown}")
        return self


class Dating(Module):
    """Baihe-style ranking of dating profiles by displayed credit score."""

    kind = "dating"
    Params = DatingParams
    build_order = 90  # after the composite score it displays
    record_order = 90
    hooks = (Hook("consequences", "match", 90),)
    random_streams = (Stream("dating.members", "numpy", "once: who is a member"),
                      Stream("dating.search", "numpy", "day: searches, pools, matches"))
    results = (
        Result("dating_searches", "int64", "searches on the dating platform", "searches"),
        Result("dating_matches", "int64", "matches made on the dating platform", "matches"),
        Result("dating_matches_q<quintile>", "int64",
               "members matched, by fifth of displayed score (q1 lowest)", "match ends"),
        Result("dating_score_sum", "float64", "sum of matched partners' scores", "points"),
        Result("dating_score_sq_sum", "float64", "sum of their squares", "points^2"),
        Result("dating_score_cross_sum", "float64", "sum of partners' score products",
               "points^2"),
    )
    audit_measures = (
        AuditMeasure("dating_match_ratio", "matches per member, top fifth of displayed "
                     "score over bottom fifth", "ratio of match rates", "ratio"),
        AuditMeasure("dating_score_assortativity", "how alike the displayed scores of "
                     "matched partners are", "correlation across matches", "correlation"),
        AuditMeasure("dating_matches_per_member", "matches per member per year",
                     "matches per member per year", "rate"),
    )

    @classmethod
    def required_columns(cls, scenario) -> dict[str, set[str]]:
        fifths = {f"dating_matches_q{q}" for q in range(1, QUINTILES + 1)}
        return {"timeseries": {"dating_matches", *fifths, *SUMS},
                "people": {"dating_member", "dating_matches"}}

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.p = p = self.params_of(sim.scenario)
        people = sim.people
        self.composite = sim.get("composite")
        adult = people.age != CHILD
        eligible = adult.copy()
        if self.composite is not None:
            eligible &= self.composite.opted
        rng = sim.streams.get("dating.members")
        self.member = eligible & (rng.random(people.n) < p.members)
        self.members = np.flatnonzero(self.member)
        self.tie_break = rng.random(len(self.members))  # fixed order among equal scores
        self.own_score = _income_score(people.income, adult)
        self.matches = np.zeros(people.n, dtype=np.int32)
        self.ranked: np.ndarray | None = None  # members' scores when last put in fifths
        self.fifth = np.zeros(len(self.members), dtype=np.int8)  # by member index
        self.today: dict[str, Any] = {}

    def displayed(self, ids: np.ndarray) -> np.ndarray:
        """The displayed scores of people `ids` today: the composite's (refreshed on its
        cadence), or the module's own."""
        if self.composite is not None:
            return self.composite.score[ids].astype(np.float64)
        return self.own_score[ids]

    # Hooks -----------------------------------------------------------------------
    def match(self, d: Day) -> None:
        """Today's searches: the platform shows each seeker the top-scored of a random
        pool; shown candidates become matches."""
        p, m = self.p, len(self.members)
        score = self.displayed(self.members)  # by member index, not by person
        self._rank(score)
        rng = self.sim.streams.get("dating.search", d.day)
        k = int(rng.poisson(m * p.seek_rate)) if m > 1 else 0  # one member cannot match
        seeker = rng.integers(0, max(m, 1), k)
        pool = rng.integers(0, max(m, 1), (k, p.pool))
        pool_score = np.where(pool == seeker[:, None], -np.inf, score[pool])
        top = np.argsort(-pool_score, axis=1, kind="stable")[:, :p.shown]
        shown = np.take_along_axis(pool, top, axis=1)
        gap = np.maximum(score[shown] - score[seeker][:, None], 0.0)
        accept = p.match_prob * (np.exp(-gap / p.pickiness) if p.pickiness > 0 else 1.0)
        hit = (rng.random(shown.shape) < accept) & np.isfinite(
            np.take_along_axis(pool_score, top, axis=1))
        a, b = np.broadcast_to(seeker[:, None], shown.shape)[hit], shown[hit]
        self._count(a, b, score)
        self.today["dating_searches"] = k

    def _rank(self, score: np.ndarray) -> None:
        """Put members in fifths of displayed score (equal sizes, ties in a fixed random
        order), again only when some member's score has moved."""
        if self.ranked is not None and np.array_equal(score, self.ranked):
            return
        order = np.lexsort((self.tie_break, score))
        self.fifth[order] = np.arange(len(order)) * QUINTILES // max(len(order), 1)
        self.ranked = score

    def _count(self, a: np.ndarray, b: np.ndarray, score: np.ndarray) -> None:
        """Count today's matches between members a[i] and b[i] (member indices)."""
        ends = np.concatenate([a, b])
        np.add.at(self.matches, self.members[ends], 1)
        by_fifth = np.bincount(self.fifth[ends], minlength=QUINTILES)
        sa, sb = score[a], score[b]
        self.today = {"dating_matches": len(a),
                      **{f"dating_matches_q{q + 1}": int(by_fifth[q]) for q in range(QUINTILES)},
                      "dating_score_sum": float((sa + sb).sum()),
                      "dating_score_sq_sum": float((sa * sa + sb * sb).sum()),
                      "dating_score_cross_sum": float((sa * sb).sum())}

    def record(self, d: Day, row: dict) -> None:
        row.update(self.today)

    def people_columns(self, part: slice) -> dict:
        ids = np.arange(part.start, part.stop)
        shown = np.full(len(ids), np.nan)
        mine = self.member[part]
        shown[mine] = self.displayed(ids[mine])
        return {"dating_member": self.member[part].astype(np.uint8),
                "dating_matches": self.matches[part],
                "dating_score": shown.astype(np.float32)}

    # Audit -------------------------------------------------------------------------
    @classmethod
    def measures(cls, run) -> dict[str, float | None]:
        fifths = [f"sum(dating_matches_q{q})" for q in range(1, QUINTILES + 1)]
        (pairs, *by_fifth, s1, s2, cross), = run.sql(
            f"SELECT sum(dating_matches), {', '.join(fifths)}, sum(dating_score_sum), "
            "sum(dating_score_sq_sum), sum(dating_score_cross_sum) FROM timeseries")
        (members,), = run.sql("SELECT count(*) FILTER (WHERE dating_member = 1) FROM people")
        low, high = by_fifth[0], by_fifth[-1]
        return {
            # Fifths are of equal size, so the ratio of counts is that of rates.
            "dating_match_ratio": high / low if low else None,
            "dating_score_assortativity": _pair_correlation(pairs, s1, s2, cross),
            "dating_matches_per_member": (2 * pairs / members * 365 / run.days
                                          if members else None),
        }


def _pair_correlation(pairs: float, s1: float, s2: float, cross: float) -> float | None:
    """Pearson correlation of partners' scores, each match counted both ways round:
    from the sums of both scores (s1), of their squares (s2) and of their products."""
    if not pairs:
        return None
    mean = s1 / (2 * pairs)
    var = s2 / (2 * pairs) - mean * mean
    cov = cross / pairs - mean * mean
    return cov / var if var > 0 and math.isfinite(var) else None


def _income_score(income: np.ndarray, adult: np.ndarray) -> np.ndarray:
    """The module's own score: 350 + 600 x income percentile among adults (0 for
    children, who are never members)."""
    out = np.zeros(len(income))
    ids = np.flatnonzero(adult)
    ranks = np.argsort(np.argsort(income[ids], kind="stable"), kind="stable")
    out[ids] = OWN_LOW + OWN_RANGE * ranks / max(len(ids) - 1, 1)
    return out
