"""The generations' measures (audit part "generations", docs/measures.md): mobility
(rank-rank slopes), class persistence, access to top schools by the parents' grade,
voice by birth cohort and inequality at the start and the end."""

from __future__ import annotations

import math

import numpy as np

from credsim.audit.measures import RunTables
from credsim.generations.inequality import gini, rank_rank_slope, row_shares
from credsim.modules import Instance, Measured

COHORT_YEARS = 5
YEAR = 365.25  # days, as credsim.demography counts them
# The grown children the mobility measures compare with their parents: those who came of
# age during the run and are alive at the end.
GROWN = "parents_at = 'coming_of_age' AND age_band IS NOT NULL"
MINORS = "parents_at = 'end' AND age_band = 'child'"
# The 5-year birth cohorts of the people alive at the end (cohort K: born in years K to
# K + 4 of the run, year 0 its first), their mean voice and their number.
COHORT_VOICE = (
    f"SELECT CAST(floor(floor(birth_day / {YEAR}) / {COHORT_YEARS}) AS INTEGER) "
    f"* {COHORT_YEARS} AS cohort, avg(voice), count(*) FROM people "
    "WHERE age_band IS NOT NULL GROUP BY 1 ORDER BY 1")


def audit(run: RunTables, part: str, instance: Instance) -> list[Measured]:
    if part != "generations":
        return []
    cols = {r[0] for r in run.sql("DESCRIBE people")}
    grades = tuple(run.scenario.points.grades) if "parents_grade" in cols else ()
    return [*mobility(run, cols), *persistence(run, grades), *access(run, grades),
            *voice_by_cohort(run), *inequality(run)]


def mobility(run: RunTables, cols: set[str]) -> list[Measured]:
    """Rank-rank slopes of the grown children's income, and score, on their parents',
    ranked within birth years: pooled over cohorts, ranks would mix the time each child
    has had as an adult with the parents' standing."""
    score = "score" if "score" in cols else "NULL::DOUBLE"
    g = run.numpy(f"SELECT income, parents_income, {score} AS score, parents_score, "
                  f"floor(birth_day / {YEAR}) AS cohort "
                  f"FROM people WHERE {GROWN} AND parents_income IS NOT NULL")
    g = {k: _floats(v) for k, v in g.items()}
    n = len(g["income"])
    out = [Measured("rank_rank_slope_income", rank_rank_slope(g["income"], g["parents_income"],
                                                              g["cohort"])),
           Measured("rank_rank_n", float(n), "of=income")]
    if "score" in cols:
        both = np.isfinite(g["score"]) & np.isfinite(g["parents_score"])
        out += [Measured("rank_rank_slope_score", rank_rank_slope(
                    g["score"], g["parents_score"], g["cohort"])),
                Measured("rank_rank_n", float(both.sum()), "of=score")]
    return out


def persistence(run: RunTables, grades: tuple[str, ...]) -> list[Measured]:
    """The parents' worst grade (at the coming of age) x the grown child's grade at the
    end: row shares, and the children in each row."""
    if not grades or not _has_grade(run):
        return []
    rows = run.sql(f"SELECT CAST(parents_grade AS VARCHAR), CAST(grade AS VARCHAR) FROM people "
                   f"WHERE {GROWN} AND parents_grade IS NOT NULL AND grade IS NOT NULL")
    code = {g: i for i, g in enumerate(grades)}
    parents = np.array([code[p] for p, _ in rows], dtype=np.int64)
    child = np.array([code[c] for _, c in rows], dtype=np.int64)
    shares, totals = row_shares(parents, child, len(grades), len(grades))
    out = []
    for i, pg in enumerate(grades):
        out.append(Measured("class_persistence_n", float(totals[i]), f"parents={pg}"))
        for j, cg in enumerate(grades):
            v = shares[i, j]
            out.append(Measured("class_persistence", None if math.isnan(v) else float(v),
                                f"parents={pg};child={cg}"))
    return out


def access(run: RunTables, grades: tuple[str, ...]) -> list[Measured]:
    """The share of minors at the end in a top school, by their parents' worst grade at
    the end; undefined (empty) while the run has no top schools."""
    if not grades:
        return []
    schooling = _has_top_schools(run)
    found = dict((p, (top, n)) for p, top, n in run.sql(
        "SELECT CAST(parents_grade AS VARCHAR), count(*) FILTER (WHERE school = 'top'), "
        f"count(*) FROM people WHERE {MINORS} AND parents_grade IS NOT NULL GROUP BY 1"))
    out = []
    for g in grades:
        top, n = found.get(g, (0, 0))
        out.append(Measured("top_school_share_by_parents_grade",
                            top / n if schooling and n else None, f"parents={g}"))
    return out


def voice_by_cohort(run: RunTables) -> list[Measured]:
    """The mean voice of the people alive at the end, by 5-year birth cohort."""
    rows = run.sql(COHORT_VOICE)
    out = []
    for cohort, voice, n in rows:
        out += [Measured("voice_by_cohort", float(voice), f"cohort={cohort}"),
                Measured("cohort_people", float(n), f"cohort={cohort}")]
    return out


def inequality(run: RunTables) -> list[Measured]:
    """The Gini of income of the living adults at the end, and of income and savings at
    the start (the time series' first yearly value; the end of savings is gini_savings)."""
    income = run.column("income", "age_band IN ('adult', 'elder')")
    first = run.sql("SELECT gini_income, gini_savings FROM timeseries ORDER BY day LIMIT 1")
    start_income, start_savings = first[0] if first else (None, None)
    return [Measured("gini_income", gini(income)),
            Measured("gini_income", _number(start_income), "at=start"),
            Measured("gini_savings", _number(start_savings), "at=start")]


def _has_grade(run: RunTables) -> bool:
    return bool(run.sql("SELECT count(*) FROM (DESCRIBE people) WHERE column_name = 'grade'"
                        )[0][0])


def _has_top_schools(run: RunTables) -> bool:
    """Whether the run had top schools: its scenario sets schooling up, or a child held a
    place at one."""
    schooling = getattr(run.scenario, "schooling", None)
    if schooling is not None and getattr(schooling, "enabled", True):
        return True
    return bool(run.sql("SELECT count(*) FROM people WHERE school = 'top'")[0][0])


def _floats(x: np.ndarray) -> np.ndarray:
    return np.ma.filled(np.ma.asarray(x, dtype=np.float64), np.nan)


def _number(v) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
