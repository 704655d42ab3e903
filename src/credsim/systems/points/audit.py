"""A points system's audit measures (docs/measures.md): the share of adults in each
grade, the score's mean, spread and Gini coefficient, grade transitions, the fall to
C within a year and the recovery from deductions on false records or insider edits.
A further points system gives its grade shares, keyed by its name."""

from __future__ import annotations

import numpy as np

from credsim.audit.measures import RunTables, gini, ratio
from credsim.modules import Instance, Measured
from credsim.scenario.model import PointsSystem

ADULTS = "age_band != 'child'"


def audit(run: RunTables, part: str, instance: Instance) -> list[Measured]:
    p: PointsSystem = instance.params or run.scenario.points
    if not instance.primary:  # its grade shares only, keyed by its name
        return _grade_shares(run, p, instance, f"{instance.name}:") if (
            part == "distributions") else []
    if part == "distributions":
        mean, sd = run.sql(f"SELECT avg(score), stddev_pop(score) FROM people WHERE {ADULTS}")[0]
        return [*_grade_shares(run, p, instance), Measured("score_mean", mean),
                Measured("score_sd", sd)]
    if part == "spirals":
        return [*_transitions(run, p), *_recovery(run)]
    if part == "stratification":
        return [Measured("gini_score", gini(run.column("score", ADULTS)))]
    return []


def _grade_shares(run: RunTables, p: PointsSystem, instance: Instance, prefix: str = ""
                  ) -> list[Measured]:
    return [Measured("grade_share", ratio(run.ts_last(instance.column(f"grade_{g}")),
                                          run.adults), f"{prefix}grade={g}")
            for g in p.grades]


def _transitions(run: RunTables, p: PointsSystem) -> list[Measured]:
    """Where adults end, all starting at the grade of the initial score; and the fall to
    C within the first year, where the system has a grade C (Rongcheng's "warned" grade)."""
    grades = p.grades
    floors = [p.grade_floors[g] for g in grades[:-1]]
    g0 = next((i for i, f in enumerate(floors) if p.initial >= f), len(floors))
    finals = dict(run.sql(f"SELECT grade, count(*) FROM people WHERE {ADULTS} GROUP BY 1"))
    starting = f"share of adults starting at {grades[g0]}"
    out = [Measured("grade_transition", ratio(finals.get(g, 0), run.adults),
                    f"{grades[g0]}->{g}", starting) for g in grades]
    c_index = grades.index("C") if "C" in grades else -1
    if 0 <= g0 < c_index:
        fallen = run.sql("SELECT count(DISTINCT id) FROM ledger WHERE entity = 'person' "
                         "AND kind = 'grade' AND value >= ? AND day < 365", [c_index])[0][0]
        out.append(Measured("fall_to_c_within_year", ratio(fallen, run.adults),
                            unit=starting))
    return out


def _recovery(run: RunTables) -> list[Measured]:
    """Days until a person's score is back where it stood before a deduction resting on
    a false record or an insider edit (censored at the end of the run)."""
    rows = run.sql(
        "WITH s AS (SELECT id, day, delta, value, record, row_number() OVER () AS r "
        "FROM ledger WHERE entity = 'person' AND kind = 'score'), "
        "marks AS (SELECT id, day, r, value - delta AS before FROM s "
        "WHERE delta < 0 AND record IN ('false', 'insider')) "
        "SELECT m.id, m.day, min(s.day) FROM marks m LEFT JOIN s ON s.id = m.id "
        "AND s.r > m.r AND s.value >= m.before GROUP BY m.id, m.day, m.r")
    if not rows:
        return [Measured("wrongful_marks", 0)]
    waits = np.array([(d2 - d) if d2 is not None else np.nan for _, d, d2 in rows])
    done = ~np.isnan(waits)
    return [Measured("wrongful_marks", len(rows)), Measured("recovered_share", done.mean()),
            Measured("recovery_days_median",
                     float(np.median(waits[done])) if done.any() else None)]
