"""Synthetic citizens: households, parents, regions, groups, income, savings, traits.

People are slots in NumPy arrays. Households occupy contiguous slots and
regions contiguous runs of households, which the graph generator relies on.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from credsim.rng import Streams
from credsim.scenario.model import PopulationParams

CHILD, ADULT, ELDER = 0, 1, 2
# A slot with no living person (not yet born, or dead: only when demography runs). It
# takes no part in anything: no events, not sampled, not counted as a child or an adult.
ABSENT = 3
AGE_BANDS = ("child", "adult", "elder")
FEMALE, MALE = 0, 1
NO_BIRTH_DAY = np.iinfo(np.int32).min  # birth_day of a slot not yet born
SCHOOL_NONE, SCHOOL_PUBLIC, SCHOOL_PRIVATE, SCHOOL_LOST = 0, 1, 2, 3
SCHOOL_STATES = ("none", "public", "private", "lost_private_place")
# A top school: only where schooling runs (credsim.families.schooling), whose column of
# people.parquet then names the five states.
SCHOOL_TOP = 4
SCHOOLING_STATES = (*SCHOOL_STATES, "top")
MAX_HOUSEHOLD = 8


@dataclass
class People:
    household: np.ndarray  # int32, household id
    household_start: np.ndarray  # int64, first slot of each household (+ sentinel)
    region: np.ndarray  # int16
    region_start: np.ndarray  # int64, first slot of each region (+ sentinel)
    urban: np.ndarray  # bool per region
    group: np.ndarray  # uint8
    age: np.ndarray  # uint8: CHILD, ADULT, ELDER
    parent1: np.ndarray  # int32, -1 if none
    parent2: np.ndarray  # int32, -1 if none
    income: np.ndarray  # float32, annual income
    savings: np.ndarray  # float32
    compliance: np.ndarray  # float32 in [0, 1]
    voice: np.ndarray
    sociability: np.ndarray | None  # None when no social graph is built (nothing reads it)
    generosity: np.ndarray
    school: np.ndarray  # uint8 school state of children
    # Set only when demography runs (None otherwise, so a fixed population costs nothing):
    birth_day: np.ndarray | None = None  # int32 day of birth (relative to day 0)
    alive: np.ndarray | None = None  # bool
    sex: np.ndarray | None = None  # uint8 FEMALE / MALE
    partner: np.ndarray | None = None  # int32, -1 if none

    @property
    def n(self) -> int:
        """The number of slots: the people at the start, plus room for those born."""
        return len(self.group)

    def adult(self, ids: np.ndarray | slice | None = None) -> np.ndarray:
        """Whether each person (all, or `ids`) is a living adult or elder."""
        return is_adult(self.age if ids is None else self.age[ids])

    def with_capacity(self, capacity: int) -> People:
        """These people in arrays of `capacity` slots; the new slots are ABSENT (no one
        lives there yet), so that modules can allocate once for the whole run."""
        extra = capacity - self.n
        if extra <= 0:
            return self
        fill = {"household": -1, "parent1": -1, "parent2": -1, "partner": -1,
                "age": ABSENT, "birth_day": NO_BIRTH_DAY, "alive": False}
        grown = {}
        for f in fields(self):
            a = getattr(self, f.name)
            if a is None or f.name in ("household_start", "region_start", "urban"):
                grown[f.name] = a
                continue
            pad = np.full(extra, fill.get(f.name, 0), dtype=a.dtype)
            grown[f.name] = np.concatenate([a, pad])
        return People(**grown)

    def nbytes(self) -> int:
        return sum(getattr(self, f.name).nbytes for f in fields(self)
                   if getattr(self, f.name) is not None)


TRAITS = ("compliance", "voice", "sociability", "generosity")


def is_adult(age: np.ndarray) -> np.ndarray:
    """Whether each age band is that of a living adult or elder (not a child, not an
    empty slot)."""
    return (age == ADULT) | (age == ELDER)


def build_people(p: PopulationParams, n: int, streams: Streams,
                 keep: tuple[str, ...] = TRAITS) -> People:
    """The population. Traits not in `keep` are drawn (so the others' draws stay as
    they are) but not kept: no module reads them."""
    # float32 draws and int32 indices throughout: the temporaries of a national
    # population are then no larger than its final state.
    rng = streams.get("population.households")
    sizes = _household_sizes(rng, p.household_size_mean, n)
    n_h = len(sizes)
    hstart = np.zeros(n_h + 1, dtype=np.int64)
    np.cumsum(sizes, out=hstart[1:])
    household = np.repeat(np.arange(n_h, dtype=np.int32), sizes)
    first = hstart[:-1].astype(np.int32)[household]  # slot of the household's first member
    member = np.arange(n, dtype=np.int32)
    member -= first
    member = np.minimum(member, 255).astype(np.uint8)

    # Regions: contiguous runs of households with uneven sizes.
    shares = rng.dirichlet(np.full(p.regions, 4.0))
    h_region = np.minimum(
        np.searchsorted(np.cumsum(shares), (np.arange(n_h) + 0.5) / n_h), p.regions - 1
    ).astype(np.int16)
    region = h_region[household]
    region_start = np.searchsorted(region, np.arange(p.regions + 1)).astype(np.int64)
    # The most populous regions are the urban ones, up to urban_share of people.
    pop = np.diff(region_start)
    order = np.argsort(-pop, kind="stable")
    urban = np.zeros(p.regions, dtype=bool)
    if p.urban_share > 0:
        urban[order[np.cumsum(pop[order]) - pop[order] < p.urban_share * n]] = True

    h_group = rng.choice(len(p.group_shares), size=n_h, p=np.asarray(p.group_shares))
    group = h_group.astype(np.uint8)[household]
    del h_region, h_group

    # Members 0 and 1 are the adults (or elders); later members are mostly children.
    age = np.full(n, ADULT, dtype=np.uint8)
    u = rng.random(n, dtype=np.float32)
    age[(member < 2) & (u < p.elder_share)] = ELDER
    later = member >= 2
    age[later & (u < 0.85)] = CHILD
    age[later & (u >= 0.85)] = ELDER
    del u, later
    child = age == CHILD
    parent1 = np.where(child, first, -1).astype(np.int32)
    has_second = (sizes >= 2)[household]
    parent2 = np.where(child & has_second, first + 1, -1).astype(np.int32)
    del has_second, member

    rng = streams.get("population.economy")
    region_lf = np.where(urban, 0.0, np.log(p.rural_income_factor)).astype(np.float32)
    group_lf = np.log(np.asarray(p.group_income_factor)).astype(np.float32)
    income = rng.standard_normal(n, dtype=np.float32)
    income *= np.float32(p.income_log_sd)
    income += region_lf[region]
    income += group_lf[group]
    income += np.float32(p.income_log_mean)
    np.exp(income, out=income)
    income[age == ELDER] *= np.float32(p.elder_income_factor)
    income[child] = 0.0
    savings = rng.standard_normal(n, dtype=np.float32)
    savings *= np.float32(p.savings_log_sd)
    np.exp(savings, out=savings)
    savings *= income * np.float32(p.savings_months / 12)

    # Private schooling rises with the household head's income.
    school = np.where(child, SCHOOL_PUBLIC, SCHOOL_NONE).astype(np.uint8)
    med = float(np.median(income[~child])) if not child.all() else 1.0
    kids = np.flatnonzero(child)
    p_private = p.private_school_share * income[first[kids]] / np.float32(max(med, 1e-9))
    school[kids[rng.random(len(kids), dtype=np.float32) < np.minimum(p_private, 0.9)]] = (
        SCHOOL_PRIVATE
    )
    del kids, p_private, first, child

    rng = streams.get("population.traits")
    traits = {}
    for name in TRAITS:
        x = _beta32(rng, *getattr(p, name), n)
        traits[name] = x if name in keep else None
    return People(
        household=household,
        household_start=hstart,
        region=region,
        region_start=region_start,
        urban=urban,
        group=group,
        age=age,
        parent1=parent1,
        parent2=parent2,
        income=income,
        savings=savings,
        school=school,
        **traits,
    )


def _beta32(rng: np.random.Generator, a: float, b: float, n: int) -> np.ndarray:
    """Beta(a, b) as X / (X + Y) with X ~ Gamma(a), Y ~ Gamma(b), in float32."""
    x = rng.standard_gamma(a, size=n, dtype=np.float32)
    y = rng.standard_gamma(b, size=n, dtype=np.float32)
    y += x
    x /= y
    return x


def _household_sizes(rng: np.random.Generator, mean: float, n: int) -> np.ndarray:
    draws = int(n / mean * 1.2) + 16
    sizes = np.minimum(1 + rng.poisson(mean - 1, size=draws), MAX_HOUSEHOLD)
    total = np.cumsum(sizes)
    while total[-1] < n:  # pragma: no cover - the 20 % margin makes this rare
        sizes = np.concatenate([sizes, sizes])
        total = np.cumsum(sizes)
    k = int(np.searchsorted(total, n))
    sizes = sizes[: k + 1].astype(np.int64)
    sizes[-1] -= total[k] - n
    return sizes
