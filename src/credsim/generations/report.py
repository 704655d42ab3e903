"""The generations' figures in the run report (section "generations"): the population
by age over the years, births and deaths per year, inequality over time, voice by birth
cohort, the class persistence matrix and access to top schools by the parents' grade."""

from __future__ import annotations

from typing import Any

import numpy as np

from credsim.audit.report import (
    BLUE,
    GREY,
    ORANGE,
    VERMILION,
    e,
    grade_colours,
    html_table,
    num,
    pct,
    percent_axis,
)
from credsim.generations.audit import COHORT_YEARS, YEAR
from credsim.generations.module import GINI_EVERY
from credsim.modules import Instance
from credsim.results.query import connect

AGE_GROUPS = ((0, 18), (18, 40), (40, 60), (60, 80), (80, 200))  # years


def report_figures(section: str, run: Any, figs: Any, instance: Instance) -> list[str]:
    if section != "generations":
        return []
    out = [population_by_age(run, figs), births_and_deaths(run.ts, figs),
           inequality(run.ts, figs), voice_by_cohort(run.m, figs),
           persistence(run.m, figs), access(run.m, figs)]
    return [x for x in out if x]


def _years(days: int) -> np.ndarray:
    """The days the year starts fall on: 0, 365, ..., and the last day."""
    return np.unique(np.r_[np.arange(0, days, GINI_EVERY), days - 1])


def population_by_age(run: Any, figs: Any) -> str:
    """People alive at the start of each year by age group, from each person's birth
    day and days lived (people.parquet)."""
    con = connect(run.path)
    try:
        cols = {r[0] for r in con.execute("DESCRIBE people").fetchall()}
        if not {"birth_day", "days_alive"} <= cols:
            return ""
        p = con.execute("SELECT birth_day, days_alive FROM people").fetchnumpy()
    finally:
        con.close()
    born = np.asarray(p["birth_day"], dtype=np.int64)
    start = np.maximum(born, 0)
    stop = start + np.asarray(p["days_alive"], dtype=np.int64)
    days = _years(int(run.manifest["days"]))
    counts = np.zeros((len(AGE_GROUPS), len(days)))
    for k, t in enumerate(days):
        alive = (start <= t) & (t < stop)
        age = (t - born[alive]) / YEAR
        for i, (lo, hi) in enumerate(AGE_GROUPS):
            counts[i, k] = np.count_nonzero((age >= lo) & (age < hi))
    fig, ax = figs.new(1, height=3.2, width=7.5)
    a = ax[0][0]
    labels = [f"{lo}–{hi - 1}" if hi < 200 else f"{lo}+" for lo, hi in AGE_GROUPS]
    colours = [BLUE, "#56B4E9", "#009E73", ORANGE, VERMILION]
    a.stackplot(days / YEAR, counts, labels=labels, colors=colours)
    a.set_xlabel("year of the run")
    a.set_ylabel("people alive")
    a.set_title("population by age group")
    a.legend(title="age", fontsize=8, frameon=False, loc="upper left",
             bbox_to_anchor=(1.0, 1.0))
    return figs.figure(fig, "People alive at the start of each year of the run, by age "
                       "group (and on the last day).")


def births_and_deaths(ts: dict, figs: Any) -> str:
    if "births" not in ts:
        return ""
    year = ts["day"] // GINI_EVERY
    n = int(year.max()) + 1
    if n > 1 and np.count_nonzero(year == n - 1) < GINI_EVERY // 2:
        n -= 1  # a last part-year of under half a year would read as a fall: not drawn
    births, deaths, came = (np.bincount(year, weights=ts[c], minlength=n + 1)[:n]
                            for c in ("births", "deaths", "came_of_age"))
    fig, ax = figs.new(1, height=3.0, width=7.5)
    a = ax[0][0]
    x = np.arange(n)
    a.bar(x - 0.27, births, width=0.27, color=BLUE, label="births")
    a.bar(x, deaths, width=0.27, color=VERMILION, label="deaths")
    a.bar(x + 0.27, came, width=0.27, color=GREY, label="came of age")
    a.set_xlabel("year of the run (a last part-year of over half a year counts its days)")
    a.set_ylabel("people per year")
    a.set_title("births, deaths and coming of age per year")
    a.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figs.figure(fig, "Births (blue), deaths (vermilion) and children who came of "
                       "age (grey) in each year of the run.")


def inequality(ts: dict, figs: Any) -> str:
    if "gini_income" not in ts:
        return ""
    days = _years(len(ts["day"]))
    fig, ax = figs.new(1, height=3.0, width=7.5)
    a = ax[0][0]
    a.plot(days / YEAR, ts["gini_income"][days], color=BLUE, marker="o", label="income")
    a.plot(days / YEAR, ts["gini_savings"][days], color=ORANGE, marker="s", label="savings")
    a.set_ylim(0, 1)
    a.set_xlabel("year of the run")
    a.set_ylabel("Gini coefficient")
    a.set_title("inequality among living adults")
    a.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figs.figure(fig, "The Gini coefficient of income (blue) and of savings (orange) "
                       "of the adults alive, taken once a year (0: all equal, 1: one holds "
                       "everything; negative savings are shifted to start at 0).")


def voice_by_cohort(m: Any, figs: Any) -> str:
    found = m.keyed("voice_by_cohort")
    if not found:
        return ""
    cohorts = [int(x.key.partition("=")[2]) for x in found]
    people = {x.key: x.value for x in m.keyed("cohort_people")}
    fig, ax = figs.new(1, height=3.0, width=7.5)
    a = ax[0][0]
    a.bar(cohorts, [x.value or 0.0 for x in found], width=COHORT_YEARS * 0.8, align="edge",
          color=BLUE)
    a.axvline(0, color=GREY, lw=1, ls=":")
    a.set_xlabel("birth year, relative to the run's start (0: born in its first year)")
    a.set_ylabel("mean voice trait")
    a.set_title("voice (inclination to speak out) by 5-year birth cohort")
    smallest = min((people.get(x.key) or 0 for x in found), default=0)
    return figs.figure(fig, "Mean voice of the people alive at the end, by 5-year birth "
                       "cohort; those born during the run are right of the dotted line. "
                       f"The smallest cohort has {num(smallest)} people (cohort_people in "
                       "the measures).")


def persistence(m: Any, figs: Any) -> str:
    found = m.keyed("class_persistence")
    if not found:
        return ""
    rows = list(dict.fromkeys(x.key.split(";")[0].partition("=")[2] for x in found))
    n = {x.key.partition("=")[2]: x.value or 0 for x in m.keyed("class_persistence_n")}
    matrix = np.full((len(rows), len(rows)), np.nan)
    for x in found:
        parent, child = (part.partition("=")[2] for part in x.key.split(";"))
        if x.value is not None:
            matrix[rows.index(parent), rows.index(child)] = x.value
    fig, ax = figs.new(1, height=3.4, width=5.2)
    a = ax[0][0]
    img = a.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(rows)):
        for j in range(len(rows)):
            if np.isfinite(matrix[i, j]):
                a.text(j, i, f"{matrix[i, j]:.0%}", ha="center", va="center", fontsize=7,
                       color="white" if matrix[i, j] > 0.6 else "black")
    a.set_xticks(range(len(rows)), rows)
    a.set_yticks(range(len(rows)), [f"{g} (n={num(n.get(g, 0))})" for g in rows])
    a.set_xlabel("child's own grade at the end")
    a.set_ylabel("parents' worst grade at the child's coming of age")
    a.set_title("class persistence (row shares)")
    fig.colorbar(img, ax=a, format=percent_axis(), shrink=0.8)
    return figs.figure(fig, "Where the children who came of age during the run (and are "
                       "alive at the end) stand, by their parents' worst grade when they "
                       "came of age: each row sums to 100 %; an empty row had no child.")


def access(m: Any, figs: Any) -> str:
    found = m.keyed("top_school_share_by_parents_grade")
    if not found:
        return ""
    if all(x.value is None for x in found):
        return ('<p class="note">Access to top schools by the parents\' grade: this run has '
                "no top schools, so the shares are empty.</p>")
    grades = [x.key.partition("=")[2] for x in found]
    fig, ax = figs.new(1, height=3.0, width=6.0)
    a = ax[0][0]
    a.bar(grades, [x.value or 0.0 for x in found], color=grade_colours(len(grades)))
    a.yaxis.set_major_formatter(percent_axis())
    a.set_xlabel("parents' worst grade at the end")
    a.set_ylabel("share of their children")
    a.set_title("children in a top school, by their parents' grade")
    table = html_table(["parents' grade", "share in a top school"],
                       [[e(g), pct(x.value)] for g, x in zip(grades, found, strict=True)],
                       {1})
    return figs.figure(fig, "Children who are minors at the end, in a top school, by their "
                       "parents' worst grade (an empty grade had no child).") + table
