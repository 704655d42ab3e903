"""Schooling: children enter school at `entry_age`, in a public, private or top school,
and their school sets part of their income when they come of age.

Children enter once a school year (every 365 days, from day 0), the cohort of those who
reached the entry age since the last entry:

1. Top schools have `top_share` of the cohort's places. The cohort is ranked by a merit
   draw (a standard normal) plus `top_income_weight` x the parents' log income in
   standard deviations; places go down the ranking, skipping a child a parent of whom
   meets `top_condition` (refused a top place, while places remain).
2. Of the rest, a child seeks a private place with probability
   population.private_school_share x the parents' income over the median (at most 0.9,
   as at the start); a parent who meets `private_condition` or the condition of a gate
   that reaches children (the private-school gate) has the child refused.
3. Everyone else goes to a public school.

A refused child goes to a public school. The school stays on the person after they come
of age (`people.school` is then the adult's schooling); at coming of age their income,
drawn by demography, is multiplied by the school's income factor (lost private places,
then public schooling, count as public). Each entry and refusal is a `school` ledger
row (value: the school state).
"""

from __future__ import annotations

import math

import numpy as np

from credsim.conditions import domain_code
from credsim.demography import YEAR
from credsim.families.kin import living_parents, mean_where
from credsim.ledger import NO_REF, R_NONE
from credsim.modules import Day, Hook, Module, PeopleChange, Result
from credsim.population.people import (
    CHILD,
    SCHOOL_NONE,
    SCHOOL_PRIVATE,
    SCHOOL_PUBLIC,
    SCHOOL_TOP,
    is_adult,
)
from credsim.rng import Stream, counter_uniform
from credsim.scenario.model import Schooling as SchoolingParams

SCHOOL_YEAR = 365  # days between entries


class Schooling(Module):
    kind = "schooling"
    build_order = -6  # before the economy reads the income of those who come of age
    record_order = 7
    hooks = (Hook("consequences", "enter", 60),)  # after the day's gates
    random_streams = (
        Stream("schooling.merit", "counter", "child (two draws): the merit draw for top places"),
        Stream("schooling.private", "counter", "child: whether the family seeks a private place"),
    )
    results = (Result("school_entries"), Result("school_entries_top"),
               Result("school_entries_private"), Result("school_refused_top"),
               Result("school_refused_private"))
    ledger_kinds = ("school",)
    ledger_causes = ("school_entry", "school_refused")

    @classmethod
    def present(cls, scenario) -> bool:
        return scenario.demography.enabled and scenario.schooling.enabled

    @classmethod
    def required_columns(cls, scenario) -> dict[str, set[str]]:
        return {"timeseries": {r.name for r in cls.results}}

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.p: SchoolingParams = sim.scenario.schooling
        self.people = people = sim.people
        self.k_merit, self.k_private = (sim.streams.key(f"schooling.{k}")
                                        for k in ("merit", "private"))
        ledger = sim.ledger
        self.k_school = ledger.kind_code("school")
        self.c_entry, self.c_refused = (ledger.cause_code(c)
                                        for c in ("school_entry", "school_refused"))
        self.factor = np.ones(SCHOOL_TOP + 1, dtype=np.float32)
        self.factor[SCHOOL_PRIVATE] = self.p.income_factor_private
        self.factor[SCHOOL_TOP] = self.p.income_factor_top
        # Children under the entry age at the start have not entered school yet.
        age = -people.birth_day.astype(np.int64) / YEAR
        people.school[(people.age == CHILD) & (age < self.p.entry_age)] = SCHOOL_NONE
        self.today = dict.fromkeys((r.name for r in self.results), 0)
        # Each entry day's cohort and refusals (day, children, 'top' or 'private'), for
        # replays.
        self.entered: dict[int, np.ndarray] = {}
        self.refusals: list[tuple[int, np.ndarray, str]] = []

    def setup(self) -> None:
        """The conditions that refuse places (the gates' own are read at the first entry,
        once the gates module has set them up)."""
        self.gates = self.sim.get("gates")
        self.top_condition = self.sim.scenario.schooling.parsed("top")
        self.domain = domain_code("education")
        self._private_conditions: list | None = None

    @property
    def private_conditions(self) -> list:
        """The conditions refusing a private place: schooling's own and those of the
        sanctions that reach children."""
        if self._private_conditions is None:
            found = [self.sim.scenario.schooling.parsed("private")]
            if self.gates is not None:
                found += [g.condition for g in self.gates.gates if g.children and g.sanction]
            self._private_conditions = [c for c in found if c is not None]
        return self._private_conditions

    def people_changed(self, d: Day, change: PeopleChange) -> None:
        """Newborns have no school yet; those who come of age earn by their school."""
        p = self.people
        p.school[change.born] = SCHOOL_NONE
        came = change.came_of_age
        p.income[came] *= self.factor[p.school[came]]

    # Entry ------------------------------------------------------------------------------
    def enter(self, d: Day) -> None:
        """Once a school year, the children who reached the entry age enter school."""
        self.today = dict.fromkeys(self.today, 0)
        if d.day % SCHOOL_YEAR:
            return
        p = self.people
        age = (d.day - p.birth_day.astype(np.int64)) / YEAR
        cohort = np.flatnonzero((p.age == CHILD) & (p.school == SCHOOL_NONE)
                                & (age >= self.p.entry_age))
        if len(cohort) == 0:
            return
        income = self.parents_income(cohort)
        top, refused_top = self._top(cohort, income)
        p.school[top] = SCHOOL_TOP
        rest = np.setdiff1d(cohort, top, assume_unique=True)
        private, refused_private = self._private(rest, income[np.isin(cohort, rest)])
        p.school[private] = SCHOOL_PRIVATE
        public = np.setdiff1d(rest, private, assume_unique=True)
        p.school[public] = SCHOOL_PUBLIC
        self._ledger(cohort, self.c_entry, p.school[cohort], d.day)
        for refused, school in ((refused_top, SCHOOL_TOP), (refused_private, SCHOOL_PRIVATE)):
            self._ledger(refused, self.c_refused, np.full(len(refused), school), d.day)
        self.entered[d.day] = cohort
        self.refusals += [(d.day, refused_top, "top"), (d.day, refused_private, "private")]
        self.today.update(school_entries=len(cohort), school_entries_top=len(top),
                          school_entries_private=len(private),
                          school_refused_top=len(refused_top),
                          school_refused_private=len(refused_private))

    def parents_income(self, children: np.ndarray) -> np.ndarray:
        """The mean income of each child's living parents (0: none)."""
        who, living = living_parents(self.people, children)
        income = self.people.income[who].astype(np.float64)
        return np.nan_to_num(mean_where(income, living), nan=0.0)

    def refused_by(self, cond, children: np.ndarray) -> np.ndarray:
        """Whether a living parent of each child meets condition `cond` today."""
        p = self.people
        out = np.zeros(len(children), dtype=bool)
        if self.gates is None or len(children) == 0:
            return out
        for parent in (p.parent1[children], p.parent2[children]):
            has = parent >= 0
            has[has] = p.alive[parent[has]]
            held, _ = self.gates.evaluation(parent[has].astype(np.int64)).meets(
                cond, self.domain, True)
            out[has] |= held
        return out

    def _top(self, cohort: np.ndarray, income: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(children given a top place, children refused one while places remained)."""
        places = int(round(self.p.top_share * len(cohort)))
        if places == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        u1 = counter_uniform(self.k_merit, 0, cohort.astype(np.int64) * 2)
        u2 = counter_uniform(self.k_merit, 0, cohort.astype(np.int64) * 2 + 1)
        merit = np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * math.pi * u2)
        log_inc = np.log(np.maximum(income, 1.0))
        sd = float(log_inc.std()) or 1.0
        rank = merit + self.p.top_income_weight * (log_inc - log_inc.mean()) / sd
        order = np.argsort(-rank, kind="stable")
        refused = np.zeros(len(cohort), dtype=bool)
        if self.top_condition is not None:
            refused = self.refused_by(self.top_condition, cohort)
        ranked_ok = ~refused[order]
        before = np.cumsum(ranked_ok) - ranked_ok  # places taken before each child
        given = order[ranked_ok & (before < places)]
        turned = order[~ranked_ok & (before < places)]
        return cohort[np.sort(given)], cohort[np.sort(turned)]

    def _private(self, children: np.ndarray, income: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(children given a private place, children refused one)."""
        p = self.people
        adults = p.income[is_adult(p.age)]
        median = float(np.median(adults)) if len(adults) else 1.0
        share = self.sim.scenario.population.private_school_share
        seek = counter_uniform(self.k_private, 0, children) < np.minimum(
            share * income / max(median, 1e-9), 0.9)
        refused = np.zeros(len(children), dtype=bool)
        for cond in self.private_conditions:
            refused |= self.refused_by(cond, children)
        return children[seek & ~refused], children[seek & refused]

    def _ledger(self, who: np.ndarray, cause: int, school: np.ndarray, day: int) -> None:
        if len(who):
            self.sim.ledger.append(day=day, entity=0, id=who, kind=self.k_school,
                                   cause=cause, channel=0, record=R_NONE, delta=0,
                                   value=school.astype(np.int32), ref=NO_REF)

    def record(self, d: Day, row: dict) -> None:
        row.update(self.today)

