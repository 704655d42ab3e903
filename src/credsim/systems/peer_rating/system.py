"""Peer ratings (Nosedive, Peeple): people rate each other 1-5 after interactions.

Each day a Poisson number of interactions starts at random people, each with
a random live tie; both sides rate the other. A rating is the ratee's
pleasantness (3 + 2 x sociability) plus noise plus a status bias: stars
added per star the ratee stands above the rater, so people rate up those
above them and down those who have fallen. A person's rating is the running
mean of the ratings received, weighted by each rater's own rating, fading
with `memory_days`, and starting from `prior_weight` ratings of `initial`.

The true rating is the same running mean of the unbiased ratings (same
noise) weighted by raters' true ratings: a sanction that holds under the
held rating and not the true one rests on status bias.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from credsim.behaviour import day_seed
from credsim.conditions import Standing
from credsim.ledger import C_RATINGS, K_RATING, R_NONE, Ledger
from credsim.modules import Day, Hook, Module, Result, lazy_hook
from credsim.population.graph import DROPPED
from credsim.population.people import ADULT, ELDER, is_adult
from credsim.rng import Stream

SHOWN = 10  # the rating is shown to one decimal; the ledger logs changes of that


class PeerRatings(Module):
    kind = "rating"
    # Its explanations in credsim lookup, audit measures and report figures, from
    # explain.py, audit.py and report.py (imported when asked).
    explain = lazy_hook("credsim.systems.peer_rating.explain:explain")
    audit = lazy_hook("credsim.systems.peer_rating.audit:audit")
    report_figures = lazy_hook("credsim.systems.peer_rating.report:report_figures")
    build_order = 40
    record_order = 30
    hooks = (Hook("score", "rate", 60),)
    results = (
        Result("rating_mean", "float64"),
        Result("ratings_given"),
    )
    # Ratings lie in [1, 5]; a child's is NaN and meets no rating condition.
    standings = {"rating": Standing(
        "rating", "unrounded peer `rating` (NaN for a child)", "`rating_true`",
        ops=("<", ">="), bounds=(0.0, 5.0), least=0.0, domain="social")}
    ledger_kinds = ("rating",)
    ledger_causes = ("peer_ratings",)
    reads_ties = True  # people rate their contacts
    random_streams = (Stream("rating.interactions", "numba", "day"),)

    @classmethod
    def present(cls, scenario) -> bool:
        return scenario.rating.enabled

    @classmethod
    def required_columns(cls, scenario) -> dict[str, set[str]]:
        return {"people": {"rating", "rating_true", "rating_shown"}}

    def __init__(self, sim) -> None:
        super().__init__(sim)
        params, people, graph, streams = (sim.scenario.rating, sim.people, sim.graph,
                                          sim.streams)
        self.p, self.people, self.graph = params, people, graph
        n = people.n
        adult = is_adult(people.age)
        w0 = params.prior_weight * params.initial
        # Weight sums and weighted sums of ratings received: held, then true.
        self.sums = np.zeros((4, n), dtype=np.float32)
        self.sums[0] = self.sums[2] = w0
        self.sums[1] = self.sums[3] = w0 * params.initial
        self.last = np.zeros(n, dtype=np.int16)  # day the sums were last faded
        nan = np.float32(np.nan)
        self.rating = np.where(adult, np.float32(params.initial), nan).astype(np.float32)
        self.rating_true = self.rating.copy()
        self.shown = np.where(adult, _shown(self.rating), 0).astype(np.int16)
        self.key = streams.key("rating.interactions")
        self.adults = int(adult.sum())
        self.fallen: np.ndarray = np.zeros(0, np.int64)
        self.ratings_today = 0

    def step(self, ledger: Ledger, day: int) -> np.ndarray:
        """Today's interactions; log changes of shown ratings; return who was rated."""
        p, g, pe = self.p, self.graph, self.people
        k = 2 * int(pe.n * p.interactions * 1.5 + 64)  # room for every rating
        rated = np.empty(k, dtype=np.int64)
        m = _interact(day_seed(np.uint64(self.key), day), pe.n, p.interactions, pe.age,
                      pe.sociability, g.indptr, g.indices, g.kind, self.sums, self.last,
                      self.rating, self.rating_true, day,
                      math.exp(-1.0 / p.memory_days), p.noise, p.status_bias, rated)
        self.ratings_today = m
        who = np.unique(rated[:m])
        new = _shown(self.rating[who])
        moved = new != self.shown[who]
        changed = who[moved]
        old = self.shown[changed]
        self.shown[changed] = new[moved]
        ledger.append(day=day, entity=0, id=changed, kind=K_RATING, cause=C_RATINGS,
                      record=R_NONE, delta=(new[moved] - old) * SHOWN,
                      value=new[moved] * SHOWN)
        if p.prune_below > 0:
            line = int(round(p.prune_below * SHOWN))
            self.fallen = changed[(new[moved] < line) & (old >= line)]
        return who

    # Hooks -------------------------------------------------------------------
    def rate(self, d: Day) -> None:
        """The day's interactions, each rating both people."""
        d.touched.append(self.step(self.sim.ledger, d.day))
        if len(self.fallen):
            d.fallen.append((self.fallen, self.p.prune_prob))
            self.fallen = self.fallen[:0]

    def people_changed(self, d: Day, change) -> None:
        """Who comes of age starts as everyone did, from `prior_weight` ratings of
        `initial`; the dead are rated no more and hold no rating (NaN: no condition)."""
        came, died = change.came_of_age, change.died
        p = self.p
        w0 = np.float32(p.prior_weight * p.initial)
        self.sums[0, came] = self.sums[2, came] = w0
        self.sums[1, came] = self.sums[3, came] = w0 * np.float32(p.initial)
        self.last[came] = d.day
        self.rating[came] = self.rating_true[came] = np.float32(p.initial)
        self.shown[came] = _shown(self.rating[came])
        self.rating[died] = self.rating_true[died] = np.float32(np.nan)
        self.shown[died] = 0
        self.adults += len(came) - len(change.adults_out())

    def record(self, d: Day, row: dict) -> None:
        row.update(self.daily())

    def people_columns(self, part: slice) -> dict:
        return {"rating": self.rating[part], "rating_true": self.rating_true[part],
                "rating_shown": self.shown[part].astype(np.float32) / 10}

    def final_scores(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {"rating": (np.nan_to_num(self.rating), is_adult(self.sim.people.age))}

    def standing_arrays(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.rating, self.rating_true

    def daily(self) -> dict:
        r = self.rating[~np.isnan(self.rating)]
        return {"rating_mean": float(r.mean()) if len(r) else float("nan"),
                "ratings_given": self.ratings_today}


def _shown(r: np.ndarray) -> np.ndarray:
    return np.rint(np.nan_to_num(r) * SHOWN).astype(np.int16)


@njit(cache=True)
def _fade(sums, last, p, day, decay):  # pragma: no cover
    if last[p] != day:
        f = decay ** (day - last[p])
        for r in range(4):
            sums[r, p] *= f
        last[p] = day


@njit(cache=True)
def _rate(sums, rating, rating_true, ratee, w, wt, x, x_true):  # pragma: no cover
    """Count a rating x (x_true without bias) from a rater of standing w (true: wt)."""
    sums[0, ratee] += w
    sums[1, ratee] += w * x
    sums[2, ratee] += wt
    sums[3, ratee] += wt * x_true
    rating[ratee] = sums[1, ratee] / sums[0, ratee]
    rating_true[ratee] = sums[3, ratee] / sums[2, ratee]


@njit(cache=True)
def _stars(v):  # pragma: no cover
    return min(max(round(v), 1.0), 5.0)


@njit(cache=True)
def _interact(seed, n, rate, age, sociability, indptr, indices, kind, sums, last, rating,
              rating_true, day, decay, noise, bias, rated):  # pragma: no cover
    np.random.seed(seed)
    k = np.random.poisson(n * rate)
    m = 0
    for _ in range(k):
        i = np.random.randint(0, n)
        deg = indptr[i + 1] - indptr[i]
        if not (age[i] == ADULT or age[i] == ELDER) or deg == 0:
            continue
        j = -1
        for _try in range(8):  # a random live tie to an adult
            a = indptr[i] + np.random.randint(0, deg)
            if not (kind[a] & DROPPED) and (age[indices[a]] == ADULT
                                                 or age[indices[a]] == ELDER):
                j = indices[a]
                break
        if j < 0 or m + 2 > len(rated):
            continue
        e1 = np.random.normal(0.0, noise) if noise > 0 else 0.0
        e2 = np.random.normal(0.0, noise) if noise > 0 else 0.0
        _fade(sums, last, i, day, decay)
        _fade(sums, last, j, day, decay)
        # Both ratings are formed before either is counted: they see the same standing.
        ri, rj = rating[i], rating[j]
        ti, tj = rating_true[i], rating_true[j]
        q_i = 3.0 + 2.0 * sociability[i]
        q_j = 3.0 + 2.0 * sociability[j]
        x_j = _stars(q_j + bias * (rj - ri) + e1)  # i rates j
        x_i = _stars(q_i + bias * (ri - rj) + e2)  # j rates i
        _rate(sums, rating, rating_true, j, ri, ti, x_j, _stars(q_j + e1))
        _rate(sums, rating, rating_true, i, rj, tj, x_i, _stars(q_i + e2))
        rated[m] = j
        rated[m + 1] = i
        m += 2
    return m
