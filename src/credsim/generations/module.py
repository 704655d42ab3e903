"""Generations: what the measures of mobility, class persistence and access need to
know about each child's parents, and the yearly inequality of the living adults.

At each coming of age (people_changed) it keeps the parents' standing at that moment:
their mean income and mean score, the worst (lowest) grade either holds in the main
graded system, and whether either is on the court list. Only parents alive at that
moment count; a child with no living parent has none. Children still minors at the end
of the run get their parents' standing at the end instead (`parents_at` says which).
Once a year (days 0, 365, 730, ...) it records the Gini coefficient of income and of
savings among the living adults, carried between the yearly values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from credsim.families.kin import living_parents, mean_where
from credsim.generations.inequality import gini
from credsim.modules import Day, Module, PeopleChange, Result, lazy_hook
from credsim.modules.columns import category
from credsim.population.people import CHILD, NO_BIRTH_DAY, is_adult

GINI_EVERY = 365  # days between the yearly Gini values of the time series
NO_GRADE = -1
# When the parents' standing was taken: at the child's coming of age, or at the end for a
# child still a minor.
SNAPSHOT_AT = ("coming_of_age", "end")
NOT_TAKEN = -1
NEVER = np.iinfo(np.int32).max  # a day that never comes (not yet born, adult, dead)


class Generations(Module):
    kind = "generations"
    build_order = 96  # last: reads the standings of every system
    record_order = 6  # beside the counts of the population
    results = (Result("gini_income", "float64", kind="score"),
               Result("gini_savings", "float64", kind="score"))
    audit = lazy_hook("credsim.generations.audit:audit")
    report_figures = lazy_hook("credsim.generations.report:report_figures")

    @classmethod
    def present(cls, scenario) -> bool:
        return scenario.demography.enabled

    @classmethod
    def required_columns(cls, scenario) -> dict[str, set[str]]:
        return {"timeseries": {r.name for r in cls.results},
                "people": {"parents_at", "parents_income", "parents_score", "days_alive",
                           "days_adult"}}

    def __init__(self, sim) -> None:
        super().__init__(sim)
        n = sim.people.n
        self.parents_income = np.full(n, np.nan, dtype=np.float32)
        self.parents_score = np.full(n, np.nan, dtype=np.float32)
        self.parents_grade = np.full(n, NO_GRADE, dtype=np.int8)
        self.parents_listed = np.zeros(n, dtype=bool)
        self.snapshot_at = np.full(n, NOT_TAKEN, dtype=np.int8)
        self.gini_income = self.gini_savings = float("nan")
        # The days each person lived (from the day of birth or 0), and lived as an adult,
        # during the run: the denominators of the audit's rates.
        self.adult_from = np.where(is_adult(sim.people.age), 0, NEVER).astype(np.int32)
        self.died_on = np.full(n, NEVER, dtype=np.int32)
        self.end = 0

    def setup(self) -> None:
        """The main graded system (its grades and scores) and the court list, if run."""
        self.graded = self.sim.provider("grade")
        self.grades: tuple[str, ...] = (
            self.graded.standings["grade"].names if self.graded is not None else ())
        self.lister = self.sim.provider("listed")

    # Snapshots of the parents -------------------------------------------------------------
    def people_changed(self, d: Day, change: PeopleChange) -> None:
        self.snapshot(change.came_of_age, SNAPSHOT_AT.index("coming_of_age"))
        self.adult_from[change.came_of_age] = d.day
        self.died_on[change.died] = d.day

    def finalize(self, days: int) -> None:
        self.end = days
        people = self.sim.people
        rows = np.arange(self.sim.people_rows)
        minors = rows[people.age[rows] == CHILD]
        self.snapshot(minors, SNAPSHOT_AT.index("end"))

    def snapshot(self, children: np.ndarray, at: int) -> None:
        """Keep the standing of the living parents of `children` now."""
        if len(children) == 0:
            return
        people = self.sim.people
        who, living = living_parents(people, children)
        self.snapshot_at[children] = at
        self.parents_income[children] = mean_where(people.income[who], living)
        score = self._scores(who)
        if score is not None:
            self.parents_score[children] = mean_where(score, living)
        if self.graded is not None:
            held, _ = self.graded.standing_values("grade", who.ravel())
            worst = np.where(living, held.reshape(who.shape).astype(np.int16), NO_GRADE)
            self.parents_grade[children] = worst.max(axis=0)
        if self.lister is not None:
            held, _ = self.lister.standing_values("listed", who.ravel())
            self.parents_listed[children] = (living & (held.reshape(who.shape) > 0)).any(axis=0)

    def _scores(self, who: np.ndarray) -> np.ndarray | None:
        """The held scores of the main graded system of the people `who`."""
        if self.graded is None:
            return None
        scores = self.graded.final_scores().get(self.graded.name)
        return None if scores is None else scores[0][who].astype(np.float64)

    # The yearly inequality ------------------------------------------------------------
    def record(self, d: Day, row: dict[str, Any]) -> None:
        if d.day % GINI_EVERY == 0:
            self.gini_income, self.gini_savings = self.ginis(d.day)
        row["gini_income"] = self.gini_income
        row["gini_savings"] = self.gini_savings

    def ginis(self, day: int) -> tuple[float, float]:
        """The Gini of income and of savings (brought up to `day`) of the living adults."""
        rows = np.arange(self.sim.people_rows)
        adults = rows[is_adult(self.sim.people.age[rows])]
        income = gini(self.sim.people.income[adults])
        savings = gini(self.sim.economy.savings_now(adults, day))
        return (float("nan") if income is None else income,
                float("nan") if savings is None else savings)

    def people_columns(self, part: slice) -> dict:
        taken = self.snapshot_at[part] != NOT_TAKEN
        known = taken & ~np.isnan(self.parents_income[part])  # a parent was alive then
        cols = {
            "parents_at": category(np.maximum(self.snapshot_at[part], 0), SNAPSHOT_AT,
                                   mask=~taken),
            "parents_income": pa.array(self.parents_income[part], mask=~known),
            "parents_score": pa.array(self.parents_score[part],
                                      mask=~known | np.isnan(self.parents_score[part])),
        }
        last = np.minimum(self.died_on[part], self.end).astype(np.int64)
        born = self.sim.people.birth_day[part].astype(np.int64)
        first = np.where(born == NO_BIRTH_DAY, NEVER, np.maximum(born, 0))
        cols["days_alive"] = np.maximum(last - first, 0).astype(np.int32)
        cols["days_adult"] = np.maximum(last - self.adult_from[part], 0).astype(np.int32)
        if self.graded is not None:
            cols["parents_grade"] = category(np.maximum(self.parents_grade[part], 0),
                                             self.grades, mask=~known)
        if self.lister is not None:
            cols["parents_listed"] = pa.array(self.parents_listed[part], mask=~known)
        return cols


