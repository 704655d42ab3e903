"""Demography: a population that ages, dies and is born, one day at a time.

Each person's next life event is drawn once, when the person is created, as a time to
event under piecewise-constant hazards by age:

- death, from the life table: an annual death probability q per age group is a
  constant hazard mu = -ln(1 - q) over the group, so one year at age x is survived
  with probability exactly 1 - q(x);
- births, from age-specific fertility: a woman's births are a Poisson process in her
  age with rate f(a) births per woman-year (15 to 50), so she has f(a) births per year
  at age a on average, and after each birth her next one is drawn the same way;
- coming of age (CHILD -> ADULT) and retirement (ADULT -> ELDER), on the first day
  of the age.

Events wait in a calendar by day, so a day costs time in proportion to its events,
not to the population. Every draw is a counter-based uniform keyed by the person's
person's identity (and the woman's number of births): the slot for the people at the
start, a hash of the mother's identity and her number of births for the born. Each
person's life then depends only on the seed and who they are, not on which slot they
take: common random numbers across scenarios.

People are slots in arrays of a capacity fixed at the start (the people at the start
plus room for the births the run can have): the born take the next free slot; the
dead keep theirs (ABSENT from then on), so an id names one person for ever.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from credsim.families.kin import Kin
from credsim.ledger import NO_REF, R_NONE
from credsim.modules import Day, Hook, Module, PeopleChange, Result
from credsim.modules.columns import category
from credsim.population.people import (
    ABSENT,
    ADULT,
    CHILD,
    ELDER,
    FEMALE,
    MALE,
    NO_BIRTH_DAY,
    SCHOOL_PUBLIC,
    is_adult,
)
from credsim.rng import Stream, counter_uniform
from credsim.scenario.model import DEATH_AGES, FERTILITY_AGES
from credsim.scenario.model import Demography as DemographyParams

YEAR = 365.25  # days
OPEN_AGE = 130.0  # the life table's last group is open; nobody outlives this age [years]
NEVER = np.iinfo(np.int32).max  # the day of an event that does not happen
COUPLE_AGE_SD = 3.0  # spread of the age gap of a couple at the start [years] (assumed)
REDRAWS = 20  # draws of a partner's age at the start before keeping their own
MARGIN_SD = 8  # births beyond their expectation the capacity makes room for [sd]
PARTNERED_MARGIN = 1.25  # more room when births need a partner (rates rescaled yearly)
MIN_PARTNERED = 0.05  # the partnered share below which fertility is not scaled up further
SKIP_SHIFT = 40  # a woman's skipped birth draws are keyed above her births (slot * 256)


class LifeTable:
    """Piecewise-constant hazards by age: group lower bounds `ages` (years) and annual
    rates, with cumulative hazard H(a) = integral of the rate from 0 to a."""

    def __init__(self, ages: tuple[float, ...], rate: np.ndarray, end: float):
        self.lower = np.asarray(ages, dtype=np.float64)
        self.upper = np.r_[self.lower[1:], end]
        self.rate = np.asarray(rate, dtype=np.float64)
        self.cum = np.r_[0.0, np.cumsum(self.rate * (self.upper - self.lower))]

    @classmethod
    def deaths(cls, q: list[float]) -> LifeTable:
        return cls(DEATH_AGES, -np.log1p(-np.asarray(q, dtype=np.float64)), OPEN_AGE)

    @classmethod
    def births(cls, f: list[float]) -> LifeTable:
        """Fertility as a hazard over all ages (zero outside 15-50)."""
        ages = (0.0, *FERTILITY_AGES)
        return cls(ages, np.r_[0.0, f], FERTILITY_AGES[-1] + 5.0)

    def H(self, age: np.ndarray) -> np.ndarray:
        """The cumulative hazard at each age."""
        a = np.clip(np.asarray(age, dtype=np.float64), 0.0, self.upper[-1])
        g = np.clip(np.searchsorted(self.lower, a, side="right") - 1, 0, len(self.rate) - 1)
        return self.cum[g] + self.rate[g] * (a - self.lower[g])

    def age_at(self, h: np.ndarray) -> np.ndarray:
        """The age at which the cumulative hazard reaches `h` (inf beyond the table)."""
        h = np.asarray(h, dtype=np.float64)
        g = np.clip(np.searchsorted(self.cum, h, side="right") - 1, 0, len(self.rate) - 1)
        rate = self.rate[g]
        with np.errstate(divide="ignore", invalid="ignore"):
            a = self.lower[g] + np.where(rate > 0, (h - self.cum[g]) / rate, np.inf)
        return np.where(h > self.cum[-1], np.inf, a)

    def survival(self, age: np.ndarray) -> np.ndarray:
        """l(x): the share of the born who live to each age."""
        return np.exp(-self.H(age))


class Calendar:
    """Slots waiting for an event, by day: O(events) to add and to take a day's."""

    def __init__(self) -> None:
        self.due: dict[int, list[np.ndarray]] = {}

    def add(self, days: np.ndarray, slots: np.ndarray, horizon: int) -> None:
        keep = days < horizon
        days, slots = days[keep], slots[keep]
        if len(days) == 0:
            return
        order = np.argsort(days, kind="stable")
        days, slots = days[order], slots[order].astype(np.int32)
        starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
        for lo, hi in zip(starts, np.r_[starts[1:], len(days)], strict=True):
            self.due.setdefault(int(days[lo]), []).append(slots[lo:hi])

    def take(self, day: int) -> np.ndarray:
        parts = self.due.pop(day, None)
        if not parts:
            return np.zeros(0, np.int32)
        return np.sort(np.concatenate(parts)) if len(parts) > 1 else parts[0]


class Demography(Module):
    kind = "demography"
    build_order = -10  # first: every other module reads who is alive
    record_order = 5
    hooks = (Hook("life", "live"),)
    random_streams = (
        Stream("demography.ages", "numpy", "once: ages of the people at the start"),
        Stream("demography.sex", "counter", "person (slot; the born: mother and parity): sex"),
        Stream("demography.death", "counter", "person: a person's age at death"),
        Stream("demography.birth", "counter", "person and the woman's number of births"),
        Stream("demography.newborn", "numpy", "day: the traits of the day's born"),
        Stream("demography.income", "numpy", "day: the income of those who come of age"),
    )
    results = (Result("people_alive"), Result("adults_alive"), Result("births"),
               Result("deaths"), Result("came_of_age"))
    ledger_kinds = ("life",)
    ledger_causes = ("birth", "death")

    @classmethod
    def present(cls, scenario) -> bool:
        return scenario.demography.enabled

    @classmethod
    def required_columns(cls, scenario) -> dict[str, set[str]]:
        # The audit and calibration divide by the people alive each day: a folder without
        # these columns must be refused, not read as a fixed population.
        return {"timeseries": {r.name for r in cls.results},
                "people": {"birth_day", "alive", "sex", "partner"}}

    @classmethod
    def extra_slots(cls, scenario, people: int) -> int:
        """Room for the births: a bound from the fertility table and the years
        (expected_births_bound)."""
        bound = expected_births_bound(scenario.demography, people, scenario.run.days)
        # Births to partnered women run ahead of the tables while the partnered shares
        # they are rescaled by catch up (see _rescaled_births).
        return int(bound * PARTNERED_MARGIN) if scenario.partnering.enabled else bound

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.p: DemographyParams = sim.scenario.demography
        self.horizon = sim.scenario.run.days
        self.deaths_table = LifeTable.deaths(self.p.death_probability)
        self.births_table = LifeTable.births(self.p.fertility)
        streams = sim.streams
        self.k_sex, self.k_death, self.k_birth = (
            streams.key(f"demography.{k}") for k in ("sex", "death", "birth"))
        self.k_life = sim.ledger.kind_code("life")
        self.c_birth, self.c_death = (sim.ledger.cause_code(c) for c in ("birth", "death"))
        people = sim.people
        n0 = sim.scenario.run.people
        self.used = n0  # slots taken so far: the born take the next
        self.parity = np.zeros(people.n, dtype=np.uint8)  # births so far, per woman
        # Whom a person's draws are keyed by: the slot for the people at the start, the
        # mother's identity and number of births for the born, so that a child born to
        # the same mother at the same parity in two scenarios lives the same life
        # whichever slot it takes.
        self.identity = np.arange(people.n, dtype=np.uint64)
        # Where births need a partner (partnering runs), a woman's due birth happens only
        # if she has one; otherwise it is skipped and her next one drawn (a fresh draw).
        self.need_partner = sim.scenario.partnering.enabled
        self.skips = np.zeros(people.n, dtype=np.uint16) if self.need_partner else None
        self.deaths_cal, self.births_cal, self.ageing_cal = Calendar(), Calendar(), Calendar()
        self.today = {"births": 0, "deaths": 0, "came_of_age": 0}
        self.alive_count = n0
        self._start(people, n0)

    # The people at the start -----------------------------------------------------
    def _start(self, people, n0: int) -> None:
        p = self.p
        ids = np.arange(n0, dtype=np.int32)
        rng = self.sim.streams.get("demography.ages")
        age = initial_ages(people.age[:n0], self.deaths_table, p, rng)
        family_ages(age, people, n0, p, rng)
        people.birth_day = np.full(people.n, NO_BIRTH_DAY, dtype=np.int32)
        people.birth_day[:n0] = -np.floor(age * YEAR).astype(np.int32)
        people.alive = np.zeros(people.n, dtype=bool)
        people.alive[:n0] = True
        people.sex = np.zeros(people.n, dtype=np.uint8)
        people.sex[:n0] = self._sex(ids)
        people.partner = np.full(people.n, -1, dtype=np.int32)
        # The first two members of a household, both grown up, are a couple (assumed);
        # the second takes the other sex.
        first = people.household_start[:-1]
        size = np.diff(people.household_start)
        a, b = first[size >= 2], first[size >= 2] + 1
        couple = is_adult(people.age[a]) & is_adult(people.age[b])
        a, b = a[couple], b[couple]
        people.sex[b] = 1 - people.sex[a]
        people.partner[a], people.partner[b] = b, a
        self.kin = Kin(people.parent1, people.parent2, people.n)
        if self.need_partner:
            self.births_table = self._rescaled_births(0)
        self._schedule(ids, day=0)

    def _sex(self, ids: np.ndarray) -> np.ndarray:
        girl = counter_uniform(self.k_sex, 0, self.identity[ids]) < self.p.female_share_at_birth
        return np.where(girl, FEMALE, MALE).astype(np.uint8)

    def _schedule(self, ids: np.ndarray, day: int) -> None:
        """Draw the death, the next birth and the band changes of people `ids`, alive
        on `day`."""
        people = self.sim.people
        born = people.birth_day[ids].astype(np.int64)
        age = (day - born) / YEAR
        # Death: H(age at death) = H(age now) + an exponential draw.
        e = -np.log1p(-counter_uniform(self.k_death, 0, self.identity[ids]))
        at = self.deaths_table.age_at(self.deaths_table.H(age) + e)
        self.deaths_cal.add(_day_of(born, np.minimum(at, OPEN_AGE), day), ids, self.horizon)
        self._schedule_birth(ids[people.sex[ids] == FEMALE], day, earliest=day)
        self._schedule_ageing(ids, day)

    def _schedule_ageing(self, ids: np.ndarray, day: int) -> None:
        """The day each child comes of age, or each adult retires (on the first day of
        the age)."""
        people, p = self.sim.people, self.p
        for band, years in ((CHILD, p.adult_age), (ADULT, p.retirement_age)):
            sel = ids[people.age[ids] == band]
            when = people.birth_day[sel].astype(np.int64) + math.ceil(years * YEAR)
            self.ageing_cal.add(np.maximum(when, day), sel, self.horizon)

    def _schedule_birth(self, women: np.ndarray, day: int, earliest: int) -> None:
        """Draw each woman's next birth from her age on `day`, on `earliest` or later
        (a birth falls on a later day than the one before it)."""
        if len(women) == 0:
            return
        born = self.sim.people.birth_day[women].astype(np.int64)
        age = (day - born) / YEAR
        identity = self.identity[women] * np.uint64(256) + self.parity[women]
        if self.skips is not None:
            identity += self.skips[women].astype(np.uint64) << np.uint64(SKIP_SHIFT)
        e = -np.log1p(-counter_uniform(self.k_birth, 0, identity))
        at = self.births_table.age_at(self.births_table.H(age) + e)
        self.births_cal.add(_day_of(born, at, earliest), women, self.horizon)

    # The day ------------------------------------------------------------------------
    def live(self, d: Day) -> None:
        """Births, then deaths, then coming of age and retirement, of the day."""
        people = self.sim.people
        day = d.day
        mothers = self.births_cal.take(day)
        mothers = mothers[people.alive[mothers]]
        if self.need_partner:
            mothers = self._partnered(mothers, day)
        born = self._births(mothers, day)
        died = self.deaths_cal.take(day)
        died = died[people.alive[died]]
        died_band = people.age[died].copy()
        widowed = self._deaths(died, day)
        ageing = self.ageing_cal.take(day)
        ageing = ageing[people.alive[ageing]]
        came = ageing[people.age[ageing] == CHILD]
        retired = ageing[people.age[ageing] == ADULT]
        people.age[came] = ADULT
        people.age[retired] = ELDER
        self._come_of_age(came, day)
        self._schedule_ageing(came, day)  # their retirement
        self.today = {"births": len(born), "deaths": len(died), "came_of_age": len(came)}
        self.alive_count += len(born) - len(died)
        if len(born) or len(died) or len(ageing):
            self.sim.people_changed(d, PeopleChange(born, died, died_band, came, retired,
                                                    widowed))

    def _partnered(self, mothers: np.ndarray, day: int) -> np.ndarray:
        """The women due to give birth today who have a partner; the others' births are
        skipped and their next drawn. Once a year, the fertility of partnered women is
        rescaled to the partnered shares of the day."""
        if day > 0 and day % 365 == 0:
            self.births_table = self._rescaled_births(day)
        single = self.sim.people.partner[mothers] < 0
        skipped = mothers[single]
        self.skips[skipped] += 1
        self._schedule_birth(skipped, day, earliest=day + 1)
        return mothers[~single]

    def _rescaled_births(self, day: int) -> LifeTable:
        """Fertility of partnered women: the table's rate in each age group over the
        share of living women of that group who have a partner (at least MIN_PARTNERED),
        so that the births per woman stay those of the table (few births in China are
        outside marriage)."""
        people = self.sim.people
        women = np.flatnonzero(people.alive & (people.sex == FEMALE))
        age = (day - people.birth_day[women].astype(np.int64)) / YEAR
        group = np.searchsorted(FERTILITY_AGES, age, side="right") - 1
        inside = (group >= 0) & (age < FERTILITY_AGES[-1] + 5)
        k = len(FERTILITY_AGES)
        all_ = np.bincount(group[inside], minlength=k)
        has = (people.partner[women][inside] >= 0).astype(np.float64)
        partnered = np.bincount(group[inside], weights=has, minlength=k)
        share = np.maximum(partnered / np.maximum(all_, 1), MIN_PARTNERED)
        self.partnered_share = share
        return LifeTable.births(list(np.asarray(self.p.fertility) / share))

    def _births(self, mothers: np.ndarray, day: int) -> np.ndarray:
        people = self.sim.people
        k = len(mothers)
        if k == 0:
            return np.zeros(0, np.int32)
        if self.used + k > people.n:
            raise RuntimeError(f"demography: {self.used + k:,} people born over a capacity "
                               f"of {people.n:,} (raise MARGIN_SD)")
        born = np.arange(self.used, self.used + k, dtype=np.int32)
        self.used += k
        self.kin.add(born, mothers, people.partner[mothers])
        self.identity[born] = child_identity(self.identity[mothers], self.parity[mothers])
        for name in ("household", "region", "group"):
            getattr(people, name)[born] = getattr(people, name)[mothers]
        people.age[born] = CHILD
        people.parent1[born] = mothers
        people.parent2[born] = people.partner[mothers]
        people.school[born] = SCHOOL_PUBLIC
        people.birth_day[born] = day
        people.alive[born] = True
        people.sex[born] = self._sex(born)
        self._newborn_traits(born, day)
        self.parity[mothers] = np.minimum(self.parity[mothers].astype(np.int32) + 1, 255)
        self._ledger(born, self.c_birth, day, mothers)
        self._schedule(born, day)
        self._schedule_birth(mothers, day, earliest=day + 1)
        return born

    def _newborn_traits(self, born: np.ndarray, day: int) -> None:
        """Traits from the population's distributions (where inheritance runs, its module
        then passes voice and compliance from the parents and peers: these draws are made
        all the same, so that every other draw stays as it is)."""
        people, pop = self.sim.people, self.sim.scenario.population
        rng = self.sim.streams.get("demography.newborn", day)
        for name in ("compliance", "voice", "sociability", "generosity"):
            a, b = getattr(pop, name)
            x = rng.beta(a, b, size=len(born)).astype(np.float32)
            arr = getattr(people, name)
            if arr is not None:
                arr[born] = x

    def _come_of_age(self, came: np.ndarray, day: int) -> None:
        """A child who comes of age earns an income from the population's distribution
        and starts with no savings (where schooling runs, its module then scales the
        income by the school's factor)."""
        if len(came) == 0:
            return
        people, pop = self.sim.people, self.sim.scenario.population
        rng = self.sim.streams.get("demography.income", day)
        urban = people.urban[people.region[came]]
        log = (pop.income_log_mean + pop.income_log_sd * rng.standard_normal(len(came))
               + np.where(urban, 0.0, math.log(pop.rural_income_factor))
               + np.log(np.asarray(pop.group_income_factor))[people.group[came]])
        people.income[came] = np.exp(log).astype(np.float32)
        people.savings[came] = 0.0

    def _deaths(self, died: np.ndarray, day: int) -> np.ndarray:
        """The dead leave; their partners, widowed, are returned."""
        people = self.sim.people
        if len(died) == 0:
            return np.zeros(0, np.int32)
        people.age[died] = ABSENT
        people.alive[died] = False
        partner = people.partner[died]
        widowed = partner[partner >= 0]
        people.partner[widowed] = -1
        people.partner[died] = -1
        self._ledger(died, self.c_death, day, day - people.birth_day[died])
        return widowed[people.alive[widowed]].astype(np.int32)

    def _ledger(self, who: np.ndarray, cause: int, day: int, value: np.ndarray) -> None:
        """One `life` row per birth (delta +1, value: the mother's id) or death (delta
        -1, value: the age in days)."""
        self.sim.ledger.append(day=day, entity=0, id=who, kind=self.k_life, cause=cause,
                               channel=0, record=R_NONE, delta=1 if cause == self.c_birth
                               else -1, value=value, ref=NO_REF)

    def record(self, d: Day, row: dict[str, Any]) -> None:
        row["people_alive"] = self.alive_count
        row["adults_alive"] = int(self.sim.adults)
        row.update(self.today)

    def people_columns(self, part: slice) -> dict:
        p = self.sim.people
        return {"birth_day": p.birth_day[part], "alive": p.alive[part],
                "sex": category(p.sex[part], ("female", "male")),
                "partner": p.partner[part]}


def child_identity(mother: np.ndarray, parity: np.ndarray) -> np.ndarray:
    """The identity a child's draws are keyed by: a hash (splitmix64) of its mother's
    identity and her births before it, with the top bit set (apart from any slot)."""
    with np.errstate(over="ignore"):
        z = mother.astype(np.uint64) * np.uint64(256) + parity.astype(np.uint64)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return z | np.uint64(1 << 63)


def _day_of(born: np.ndarray, age: np.ndarray, day: int) -> np.ndarray:
    """The day a person born on `born` reaches `age` (NEVER if never), not before `day`."""
    with np.errstate(invalid="ignore", over="ignore"):
        t = born + np.floor(np.where(np.isfinite(age), age, 0.0) * YEAR)
    t = np.where(np.isfinite(age), np.maximum(t, day), NEVER)
    return np.minimum(t, NEVER).astype(np.int64)


def initial_ages(band: np.ndarray, table: LifeTable, p: DemographyParams,
                 rng: np.random.Generator) -> np.ndarray:
    """Ages of the people at the start, within their band, from the stationary
    population of the life table (the age structure whose density is l(x)): assumed, as
    the population has no ages of its own."""
    grid = np.arange(0.0, OPEN_AGE, 1 / 12)
    density = table.survival(grid + 1 / 24)
    out = np.zeros(len(band))
    for b, lo, hi in ((CHILD, 0, p.adult_age), (ADULT, p.adult_age, p.retirement_age),
                      (ELDER, p.retirement_age, OPEN_AGE)):
        sel = np.flatnonzero(band == b)
        w = np.where((grid >= lo) & (grid < hi), density, 0.0)
        cdf = np.cumsum(w) / w.sum()
        u = rng.random(len(sel))
        k = np.minimum(np.searchsorted(cdf, u, side="right"), len(grid) - 1)
        out[sel] = grid[k] + rng.random(len(sel)) / 12
    return out


def family_ages(age: np.ndarray, people, n0: int, p: DemographyParams,
                rng: np.random.Generator) -> None:
    """Make the ages of each household at the start fit its family (in place). The
    children keep their stationary ages; the first member, their parent, is the oldest
    child's age plus an age at birth drawn from the fertility table, and the other member
    of a couple is within a few years of the first (normal, sd COUPLE_AGE_SD, assumed)
    and older than the oldest child by the earliest age at birth. Each is redrawn until
    the age lies within the person's band, so that no age is clipped to a band's edge;
    after REDRAWS the person keeps their own age, raised to the earliest age at birth
    over the oldest child if need be (an elder with young children, as the population's
    households have them, stays an elder)."""
    table = LifeTable.births(list(p.fertility))
    earliest = float(FERTILITY_AGES[0])
    first = people.household_start[:-1].astype(np.int64)
    size = np.diff(people.household_start)
    kids = np.flatnonzero((people.parent1[:n0] >= 0) & (people.age[:n0] == CHILD))
    oldest = np.full(len(first), -np.inf)
    np.maximum.at(oldest, people.household[kids], age[kids])
    band_lo = np.array([0.0, p.adult_age, p.retirement_age, 0.0])
    band_hi = np.array([p.adult_age, p.retirement_age, OPEN_AGE, 0.0])
    total = float(table.H(np.array([OPEN_AGE]))[0])

    def redraw(who: np.ndarray, floor: np.ndarray, draw) -> None:
        """Give each of `who` the first of `draw(k)`'s ages within their band and at
        least `floor`; else their own age, raised to `floor`."""
        lo = np.maximum(band_lo[people.age[who]], floor)
        hi = band_hi[people.age[who]]
        todo = np.ones(len(who), dtype=bool)
        for _ in range(REDRAWS):
            if not todo.any():
                break
            idx = np.flatnonzero(todo)
            want = draw(idx)
            ok = (want >= lo[idx]) & (want < hi[idx])
            age[who[idx[ok]]] = want[ok]
            todo[idx[ok]] = False
        rest = who[todo]
        age[rest] = np.maximum(age[rest], floor[todo])

    parents = np.flatnonzero(oldest > -np.inf)
    redraw(first[parents], oldest[parents] + earliest,
           lambda idx: oldest[parents[idx]] + table.age_at(total * rng.random(len(idx))))
    couple = np.flatnonzero((size >= 2)
                            & is_adult(people.age[np.minimum(first + 1, n0 - 1)]))
    redraw(first[couple] + 1, np.maximum(oldest[couple] + earliest, 0.0),
           lambda idx: age[first[couple[idx]]]
           + COUPLE_AGE_SD * rng.standard_normal(len(idx)))


def expected_births_bound(p: DemographyParams, people: int, days: int) -> int:
    """An upper bound on the births of a run, by generation: no woman dies, each has in
    expectation at most min(total fertility, the highest rate x the years left) births,
    and the girls among them bear children 15 years after their birth at the earliest.
    Then MARGIN_SD standard deviations more (the count of births is Poisson-like)."""
    years = days / YEAR
    tfr = 5.0 * sum(p.fertility)
    women = people * max(p.female_share_at_birth, 0.5) + MARGIN_SD * math.sqrt(people)
    total = 0.0
    for g in range(int(years // FERTILITY_AGES[0]) + 1):
        births = women * min(tfr, max(p.fertility) * (years - FERTILITY_AGES[0] * g))
        total += births
        women = births * p.female_share_at_birth
    return int(total + MARGIN_SD * math.sqrt(total) + 64)
