"""Partnering: singles who meet and form couples, couples who split, and the dating
platform that ranks profiles by score.

A single adult woman meets a partner at `meeting_rate` a year: her next meeting is drawn
when she becomes single (coming of age, a split, widowhood, or a meeting that came to
nothing), as a time to event keyed by her slot and her number of single spells, so it
depends on nothing else. Meeting offline, she keeps each homophily (region, group,
school) with its probability and meets a single man drawn uniformly from those who share
every trait she keeps; the share of new couples of the same region is then
h + (1 - h) x the chance two people share a region. A platform user meets through the
platform instead: she is shown `profiles_seen` profiles of single men who use it and
pairs with the one whose rank is nearest hers, where a profile's rank mixes the shown
score (for those who opt in to show it) and the rest of its appeal, by
`ranking_strength`: a market where all rank alike pairs people of like rank, so couples
sort by score. Couples split at `divorce_rate` a year, drawn when they form.

A new couple lives in the woman's household unless she lives with a parent, else in the
man's unless he does, else in a household of their own; whoever moves takes their
children living with them. At a split the man leaves for a household of his own; the
children stay with their mother (assumed). Households are kept as an id per person:
`People.household_start` describes the households at the start only (the social graph is
built from them then).

Every draw is counter-based (credsim.rng.counter_uniform) keyed by people, never by the
order of the day's events, so switching the platform on changes only what it decides.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from credsim.demography import NEVER, YEAR, Calendar
from credsim.ledger import NO_REF, R_NONE
from credsim.modules import Day, Hook, Module, PeopleChange, Result, lazy_hook
from credsim.modules.columns import category
from credsim.population.people import ADULT, CHILD, FEMALE
from credsim.population.sets import PeopleSet
from credsim.rng import Stream, counter_uniform
from credsim.scenario.model import Partnering as PartneringParams

TRIES = 1024  # draws a woman makes from the single men to find one sharing her traits
CHUNK = 32  # tries drawn at once
NORM_DAYS = 30  # how often the platform restates what a score's rank is [days]
HOMOPHILY_TRAITS = ("region", "group", "school")
MET_OFFLINE, MET_ON_PLATFORM = 1, 2
MET_HOW = ("never", "offline", "platform")


class Partnering(Module):
    kind = "partnering"
    build_order = -8  # after demography, before anyone who reads households
    record_order = 6
    hooks = (Hook("life", "partner", 60),)
    random_streams = (
        Stream("partnering.meet", "counter", "woman and her single spell: her next meeting"),
        Stream("partnering.insist", "counter",
               "woman, spell and trait: which homophily she keeps at a meeting"),
        Stream("partnering.choose", "counter", "woman, spell and try: the man she meets"),
        Stream("partnering.split", "counter", "woman and her union: when the couple splits"),
        Stream("partnering.platform.use", "counter", "person: whether they use the platform"),
        Stream("partnering.platform.display", "counter",
               "person: whether they show their score"),
        Stream("partnering.platform.appeal", "counter", "person: the rest of a profile's appeal"),
        Stream("partnering.platform.profiles", "counter",
               "woman, spell and profile: the profiles she is shown"),
    )
    results = (Result("couples"), Result("couples_formed"), Result("couples_formed_platform"),
               Result("couples_split"), Result("single_women"), Result("single_men"))
    ledger_kinds = ("union",)
    ledger_causes = ("union_offline", "union_platform", "split")
    audit = lazy_hook("credsim.families.audit:audit")

    @classmethod
    def present(cls, scenario) -> bool:
        return scenario.demography.enabled and scenario.partnering.enabled

    @classmethod
    def required_columns(cls, scenario) -> dict[str, set[str]]:
        return {"timeseries": {r.name for r in cls.results},
                "people": {"ever_partnered", "met_partner", "platform_user"}}

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.p: PartneringParams = sim.scenario.partnering
        self.platform = self.p.platform if self.p.platform.enabled else None
        self.horizon = sim.scenario.run.days
        people = self.people = sim.people
        n = people.n
        keys = {k: sim.streams.key(f"partnering.{k}") for k in (
            "meet", "insist", "choose", "split", "platform.use", "platform.display",
            "platform.appeal", "platform.profiles")}
        self.keys = keys
        ledger = sim.ledger
        self.k_union = ledger.kind_code("union")
        self.c_offline, self.c_platform, self.c_split = (
            ledger.cause_code(c) for c in ("union_offline", "union_platform", "split"))
        self.meet_cal, self.split_cal = Calendar(), Calendar()
        self.meet_day = np.full(n, NEVER, dtype=np.int32)
        self.split_day = np.full(n, NEVER, dtype=np.int32)
        self.spell = np.zeros(n, dtype=np.uint16)  # single spells so far, per woman
        self.unions = np.zeros(n, dtype=np.uint8)  # unions so far, per woman
        self.met = np.zeros(n, dtype=np.uint8)  # how each person last met a partner
        self.ever = people.partner >= 0  # ever partnered (the couples at the start)
        self.women, self.men, self.men_users = PeopleSet(n), PeopleSet(n), PeopleSet(n)
        self.next_household = int(people.household.max()) + 1 if n else 0
        # The women in a union (so that a couple ended by a death is counted once).
        self.wife = (people.partner >= 0) & (people.sex == FEMALE)
        self.couples = int(np.count_nonzero(self.wife))
        self.today = dict.fromkeys(("couples_formed", "couples_formed_platform",
                                    "couples_split"), 0)
        self.rank_norm: tuple[float, float] | None = None

    def setup(self) -> None:
        """Singles and couples at the start: every single woman's first meeting, every
        couple's split."""
        self.kin = self.sim["demography"].kin
        people = self.people
        alive = np.flatnonzero(people.alive).astype(np.int32)
        self._refresh(alive)
        single_women = self.women.members.copy()
        self._schedule_meeting(np.sort(single_women), 0)
        wives = alive[(people.sex[alive] == FEMALE) & (people.partner[alive] >= 0)]
        self._schedule_split(wives, 0)

    # Who is single -------------------------------------------------------------------
    def _refresh(self, ids: np.ndarray) -> None:
        """Put people `ids` (distinct) in the sets of single adult women, men and men on
        the platform, or out of them, as they are now."""
        p = self.people
        single = p.alive[ids] & (p.age[ids] == ADULT) & (p.partner[ids] < 0)
        woman = p.sex[ids] == FEMALE
        self.women.update(ids, single & woman)
        self.men.update(ids, single & ~woman)
        self.men_users.update(ids, single & ~woman & self._uses_platform(ids))

    def _uses_platform(self, ids: np.ndarray) -> np.ndarray:
        if self.platform is None:
            return np.zeros(len(ids), dtype=bool)
        return counter_uniform(self.keys["platform.use"], 0, ids) < self.platform.user_share

    def people_changed(self, d: Day, change: PeopleChange) -> None:
        """Those who came of age, retired, died or were widowed today join or leave the
        singles; women who became single draw their next meeting."""
        moved = np.unique(np.concatenate([change.came_of_age, change.retired, change.died,
                                          change.widowed]).astype(np.int32))
        if len(moved) == 0:
            return
        self._refresh(moved)
        p = self.people
        fresh = np.unique(np.concatenate([change.came_of_age, change.widowed]))
        fresh = fresh[(p.sex[fresh] == FEMALE) & (p.age[fresh] == ADULT)
                      & (p.partner[fresh] < 0)]
        self._schedule_meeting(fresh.astype(np.int32), d.day)
        ended = np.concatenate([change.died, change.widowed])
        ended = ended[self.wife[ended]]
        self.wife[ended] = False
        self.couples -= len(ended)

    # Draws --------------------------------------------------------------------------
    def _schedule_meeting(self, women: np.ndarray, day: int) -> None:
        """Each woman's next meeting, from `day` on: a fresh exponential draw."""
        if len(women) == 0 or self.p.meeting_rate <= 0:
            self.meet_day[women] = NEVER
            return
        identity = women.astype(np.int64) * 65536 + self.spell[women]
        self.spell[women] += 1
        wait = -np.log1p(-counter_uniform(self.keys["meet"], 0, identity)) * (
            YEAR / self.p.meeting_rate)
        when = np.minimum(day + 1 + np.floor(wait), NEVER).astype(np.int64)
        self.meet_day[women] = when
        self.meet_cal.add(when, women, self.horizon)

    def _schedule_split(self, women: np.ndarray, day: int) -> None:
        """The day each woman's new union ends in a split (if none ends it first)."""
        if len(women) == 0:
            return
        identity = women.astype(np.int64) * 256 + self.unions[women]
        self.unions[women] = np.minimum(self.unions[women].astype(np.int32) + 1, 255)
        if self.p.divorce_rate <= 0:
            self.split_day[women] = NEVER
            return
        wait = -np.log1p(-counter_uniform(self.keys["split"], 0, identity)) * (
            YEAR / self.p.divorce_rate)
        when = np.minimum(day + 1 + np.floor(wait), NEVER).astype(np.int64)
        self.split_day[women] = when
        self.split_cal.add(when, women, self.horizon)

    # The day ------------------------------------------------------------------------
    def partner(self, d: Day) -> None:
        """The day's splits, then the day's meetings and the couples they form."""
        self.today = dict.fromkeys(self.today, 0)
        self._splits(d.day)
        p = self.people
        due = self.meet_cal.take(d.day)
        due = due[(self.meet_day[due] == d.day) & p.alive[due] & (p.age[due] == ADULT)
                  & (p.partner[due] < 0)]
        if len(due) == 0:
            return
        # Users meet on the platform while a single man uses it; the others offline.
        on = self._uses_platform(due) & (len(self.men_users) > 0)
        men = np.full(len(due), -1, dtype=np.int64)
        if on.any():
            men[on] = self._platform_choice(due[on], d.day)
        men[~on] = self._offline_choice(due[~on])
        men = _first_claim(men)
        met = men >= 0
        self._form(due[met], men[met], np.where(on[met], MET_ON_PLATFORM, MET_OFFLINE), d.day)
        self._schedule_meeting(due[~met], d.day)

    def _offline_choice(self, women: np.ndarray) -> np.ndarray:
        """For each woman, a single man drawn uniformly from those sharing every trait
        she keeps today (-1: none found within TRIES draws)."""
        out = np.full(len(women), -1, dtype=np.int64)
        pool = self.men.members
        if len(women) == 0 or len(pool) == 0:
            return out
        p = self.people
        base = (women.astype(np.int64) * 65536 + self.spell[women] - 1) * 4
        keep = [counter_uniform(self.keys["insist"], 0, base + t) < h for t, h in
                enumerate((self.p.homophily_region, self.p.homophily_group,
                           self.p.homophily_school))]
        traits = [getattr(p, t) for t in HOMOPHILY_TRAITS]
        left = np.arange(len(women))
        for start in range(0, TRIES, CHUNK):
            if len(left) == 0:
                break
            tries = np.arange(start, start + CHUNK, dtype=np.int64)
            ident = (base[left, None] // 4 * TRIES + tries[None, :]).ravel()
            u = counter_uniform(self.keys["choose"], 0, ident).reshape(len(left), CHUNK)
            cand = pool[np.minimum((u * len(pool)).astype(np.int64), len(pool) - 1)]
            w = women[left]
            ok = ~self._kin(w[:, None], cand)
            for k, arr in zip(keep, traits, strict=True):
                ok &= ~k[left, None] | (arr[cand] == arr[w][:, None])
            found = ok.any(axis=1)
            first = np.argmax(ok, axis=1)
            out[left[found]] = cand[found, first[found]]
            left = left[~found]
        return out

    # The platform ---------------------------------------------------------------------
    def _scores(self) -> tuple[np.ndarray, np.ndarray]:
        """The score profiles show and who has one: the composite score of its
        participants, else the points score of adults."""
        composite = self.sim.get("composite")
        if composite is not None:
            return composite.score, composite.opted
        points = self.sim["points"]
        return points.score, self.people.age == ADULT

    def _rank(self, ids: np.ndarray, day: int) -> np.ndarray:
        """Each profile's rank on the platform, in [0, 1]: the shown score's place among
        the scored (a normal approximation restated every NORM_DAYS days) weighed by
        ranking_strength, and the rest of the person's appeal. A hidden score counts as
        none, so profiles that show theirs rank higher."""
        pl = self.platform
        score, scored = self._scores()
        if self.rank_norm is None or day % NORM_DAYS == 0:
            s = score[scored & self.people.alive].astype(np.float64)
            self.rank_norm = (float(s.mean()), float(s.std()) or 1.0) if len(s) else (0.0, 1.0)
        mean, sd = self.rank_norm
        z = (score[ids].astype(np.float64) - mean) / sd
        place = 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))
        shown = scored[ids] & (counter_uniform(self.keys["platform.display"], 0, ids)
                               < pl.display_share)
        appeal = counter_uniform(self.keys["platform.appeal"], 0, ids)
        return pl.ranking_strength * np.where(shown, place, 0.0) + (
            1.0 - pl.ranking_strength) * appeal

    def _platform_choice(self, women: np.ndarray, day: int) -> np.ndarray:
        """For each woman on the platform, of the profiles she is shown the man whose rank
        is nearest hers (-1: no single man uses the platform)."""
        pool = self.men_users.members
        if len(pool) == 0:
            return np.full(len(women), -1, dtype=np.int64)
        k = self.platform.profiles_seen
        base = (women.astype(np.int64) * 65536 + self.spell[women] - 1) * 1024
        ident = (base[:, None] + np.arange(k, dtype=np.int64)[None, :]).ravel()
        u = counter_uniform(self.keys["platform.profiles"], 0, ident).reshape(len(women), k)
        shown = pool[np.minimum((u * len(pool)).astype(np.int64), len(pool) - 1)]
        gap = np.abs(self._rank(shown.ravel(), day).reshape(shown.shape)
                     - self._rank(women, day)[:, None])
        gap[self._kin(women[:, None], shown)] = np.inf  # (-1 if she is shown only kin)
        best = shown[np.arange(len(women)), np.argmin(gap, axis=1)].astype(np.int64)
        return np.where(np.isfinite(gap).any(axis=1), best, -1)

    def _kin(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether a and b (broadcast) are parent and child or siblings: never a couple."""
        p1, p2 = self.people.parent1, self.people.parent2
        return ((p1[a] == b) | (p2[a] == b) | (p1[b] == a) | (p2[b] == a)
                | ((p1[a] >= 0) & (p1[a] == p1[b])) | ((p2[a] >= 0) & (p2[a] == p2[b])))

    # Couples and households -------------------------------------------------------------
    def _form(self, women: np.ndarray, men: np.ndarray, how: np.ndarray, day: int) -> None:
        if len(women) == 0:
            return
        p = self.people
        p.partner[women], p.partner[men] = men, women
        self.wife[women] = True
        self.meet_day[women] = NEVER
        self.met[women], self.met[men] = how, how
        self.ever[women], self.ever[men] = True, True
        self._move_in(women, men)
        self._schedule_split(women, day)
        self._refresh(np.concatenate([women, men]).astype(np.int32))
        cause = np.where(how == MET_ON_PLATFORM, self.c_platform, self.c_offline)
        self._ledger(women, men, cause, 1, day)
        self.couples += len(women)
        self.today["couples_formed"] += len(women)
        self.today["couples_formed_platform"] += int(np.count_nonzero(how == MET_ON_PLATFORM))

    def _splits(self, day: int) -> None:
        p = self.people
        due = self.split_cal.take(day)
        due = due[(self.split_day[due] == day) & p.alive[due] & (p.partner[due] >= 0)]
        if len(due) == 0:
            return
        men = p.partner[due].astype(np.int64)
        p.partner[due], p.partner[men] = -1, -1
        self.wife[due] = False
        self.split_day[due] = NEVER
        self._move(men, self._new_households(len(men)), children=False)
        self._refresh(np.concatenate([due, men]).astype(np.int32))
        self._ledger(due, men, self.c_split, -1, day)
        self.couples -= len(due)
        self.today["couples_split"] += len(due)
        self._schedule_meeting(due[p.age[due] == ADULT], day)

    def _new_households(self, k: int) -> np.ndarray:
        ids = np.arange(self.next_household, self.next_household + k, dtype=np.int32)
        self.next_household += k
        return ids

    def _with_parent(self, ids: np.ndarray) -> np.ndarray:
        """Whether each person lives in a household with a living parent."""
        p = self.people
        out = np.zeros(len(ids), dtype=bool)
        for parent in (p.parent1[ids], p.parent2[ids]):
            has = parent >= 0
            out[has] |= p.alive[parent[has]] & (p.household[parent[has]]
                                                == p.household[ids[has]])
        return out

    def _move_in(self, women: np.ndarray, men: np.ndarray) -> None:
        """The couple's home: the woman's, unless she lives with a parent; else the
        man's, unless he does; else a new one."""
        p = self.people
        w_home, m_home = self._with_parent(women), self._with_parent(men)
        home = np.where(~w_home, p.household[women], np.where(~m_home, p.household[men], -1))
        new = home < 0
        home[new] = self._new_households(int(new.sum()))
        for who in (women, men):
            moving = p.household[who] != home
            self._move(who[moving], home[moving], children=True)

    def _move(self, who: np.ndarray, to: np.ndarray, children: bool) -> None:
        """People `who` move to households `to`, with the children living with them."""
        p = self.people
        if children and len(who):
            kids, parent = self.kin.children(who)
            at_home = (p.age[kids] == CHILD) & (p.household[kids] == p.household[parent])
            dest = dict(zip(who.tolist(), to.tolist(), strict=True))
            kids, parent = kids[at_home], parent[at_home]
            p.household[kids] = np.array([dest[int(x)] for x in parent], dtype=np.int32)
        p.household[who] = to

    def _ledger(self, women: np.ndarray, men: np.ndarray, cause: Any, delta: int,
                day: int) -> None:
        """One `union` row per couple formed (delta +1) or split (delta -1): the woman's
        id, the man's as its value."""
        self.sim.ledger.append(day=day, entity=0, id=women, kind=self.k_union, cause=cause,
                               channel=0, record=R_NONE, delta=delta, value=men, ref=NO_REF)

    # Results ----------------------------------------------------------------------------
    def record(self, d: Day, row: dict[str, Any]) -> None:
        row["couples"] = self.couples
        row.update(self.today)
        row["single_women"], row["single_men"] = len(self.women), len(self.men)

    def people_columns(self, part: slice) -> dict:
        return {"ever_partnered": self.ever[part],
                "met_partner": category(self.met[part], MET_HOW),
                "platform_user": self._uses_platform(np.arange(
                    *part.indices(self.people.n), dtype=np.int64))}


def _first_claim(men: np.ndarray) -> np.ndarray:
    """Two women of a day who meet the same man: the first keeps him, the other meets no
    one today (-1)."""
    out = men.copy()
    chosen = np.flatnonzero(men >= 0)
    _, first = np.unique(men[chosen], return_index=True)
    dup = np.ones(len(chosen), dtype=bool)
    dup[first] = False
    out[chosen[dup]] = -1
    return out


def _erf(x: np.ndarray) -> np.ndarray:
    """The error function, to float64 precision enough for a rank (Abramowitz-Stegun
    7.1.26, |error| < 1.5e-7)."""
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736)
               * t + 0.254829592) * t * np.exp(-a * a)
    return s * y
