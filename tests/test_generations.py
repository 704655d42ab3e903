"""The generations' measures: the Gini coefficient, percentile ranks, the rank-rank slope
and the class persistence matrix on cases computed by hand; the measures of a tiny
people table whose slope and matrix are worked out below; the parents' snapshot and the
days lived in a simulated run; and a decades run whose measures come with intervals
across replicates."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rich.console import Console

from credsim.audit import replicates as rep
from credsim.audit.measures import RunTables
from credsim.engine import Simulation
from credsim.generations import audit as gen_audit
from credsim.generations.inequality import gini, percentile_ranks, rank_rank_slope, row_shares
from credsim.population.people import CHILD
from credsim.scenario.load import load_scenario
from credsim.scenario.model import Demography

# Gini --------------------------------------------------------------------------------------


def _gini_by_pairs(x: list[float]) -> float:
    """The Gini as the mean absolute difference over all ordered pairs / (2 x mean)."""
    x = np.asarray(x, dtype=float)
    return float(np.abs(x[:, None] - x[None, :]).mean() / (2 * x.mean()))


def test_gini_by_hand():
    assert gini(np.array([5.0, 5.0, 5.0])) == 0.0
    # One holds all of four: (n - 1) / n.
    assert gini(np.array([0.0, 0.0, 0.0, 4.0])) == pytest.approx(0.75)
    # 1, 2, 3, 4: (-3*1 - 1*2 + 1*3 + 3*4) / (4 * 10) = 10 / 40.
    assert gini(np.array([4.0, 1.0, 3.0, 2.0])) == pytest.approx(0.25)
    assert gini(np.array([4.0, 1.0, 3.0, 2.0])) == pytest.approx(_gini_by_pairs([1, 2, 3, 4]))
    # Negative values (debts) are shifted so the smallest is 0: as 0, 1, 2, 3, that is
    # (-3*0 - 1*1 + 1*2 + 3*3) / (4 * 6) = 10 / 24.
    assert gini(np.array([-2.0, -1.0, 0.0, 1.0])) == pytest.approx(10 / 24)
    assert gini(np.array([])) is None
    assert gini(np.zeros(3)) == 0.0


def test_gini_agrees_with_the_pairwise_definition_on_random_values():
    x = np.random.default_rng(3).lognormal(0, 1, 200)
    assert gini(x) == pytest.approx(_gini_by_pairs(list(x)), rel=1e-12)


# Ranks, slopes and matrices ----------------------------------------------------------------


def test_percentile_ranks_give_ties_their_mean_rank():
    np.testing.assert_allclose(percentile_ranks(np.array([30.0, 10.0, 20.0, 20.0])),
                               [1.0, 0.25, 0.625, 0.625])


def test_rank_rank_slope_by_hand():
    parents = np.array([1.0, 2.0, 3.0, 4.0])
    # Ranks 1/4 .. 1 for both; the children of the middle two swap places: the covariance
    # of the ranks is 0.0625 and the parents' variance 0.078125, a slope of 0.8.
    assert rank_rank_slope(np.array([10.0, 30.0, 20.0, 40.0]), parents) == pytest.approx(0.8)
    assert rank_rank_slope(parents * 7, parents) == pytest.approx(1.0)
    assert rank_rank_slope(-parents, parents) == pytest.approx(-1.0)
    # Only ranks count: any increasing transformation leaves the slope as it is.
    assert rank_rank_slope(np.exp(np.array([10.0, 30.0, 20.0, 40.0])), parents ** 3) == (
        pytest.approx(0.8))
    assert rank_rank_slope(np.array([1.0]), np.array([2.0])) is None
    assert rank_rank_slope(np.array([1.0, 2.0]), np.array([3.0, 3.0])) is None


def test_row_shares_by_hand():
    shares, totals = row_shares(np.array([0, 0, 0, 1]), np.array([0, 1, 1, 1]), 3, 2)
    np.testing.assert_allclose(shares[:2], [[1 / 3, 2 / 3], [0.0, 1.0]])
    assert np.isnan(shares[2]).all()
    np.testing.assert_array_equal(totals, [3, 1, 0])


# The measures of a tiny people table ---------------------------------------------------------

GRADES = ("AAA", "AA", "A", "B", "C", "D")


def _tiny_run(tmp_path: Path, schools: bool = True) -> RunTables:
    """Eight people: four grown children (came of age in the run, alive), one grown child
    who died, two minors at the end and one adult of the first generation. The grown
    children are born in years -20 (days -7000) and -19 (day -6600)."""
    rows = [
        # income, parents_income, score, parents_score, grade, parents_grade, parents_at,
        # age_band, school, birth_day, voice
        (100.0, 10.0, 1000.0, 900.0, "A", "A", "coming_of_age", "adult", "none", -7000, 0.1),
        (300.0, 20.0, 1030.0, 990.0, "A", "A", "coming_of_age", "adult", "none", -7000, 0.3),
        (200.0, 30.0, 960.0, 1000.0, "B", "C", "coming_of_age", "adult", "none", -7000, 0.2),
        (400.0, 40.0, 1100.0, 1010.0, "AA", "C", "coming_of_age", "adult", "none", -6600, 0.4),
        (999.0, 50.0, 999.0, 999.0, "A", "A", "coming_of_age", None, "none", -7000, 0.9),
        (0.0, 15.0, None, 950.0, None, "A", "end", "child", "top", -700, 0.5),
        (0.0, 25.0, None, 950.0, None, "C", "end", "child", "public", -600, 0.7),
        (500.0, None, 990.0, None, "A", None, None, "adult", "none", -20000, 0.6),
    ]
    names = ["income", "parents_income", "score", "parents_score", "grade", "parents_grade",
             "parents_at", "age_band", "school", "birth_day", "voice"]
    people = pa.table({k: [r[i] for r in rows] for i, k in enumerate(names)})
    if not schools:  # no top schools: every minor in a public school
        people = people.set_column(names.index("school"), "school",
                                   pa.array(["none"] * 5 + ["public"] * 2 + ["none"]))
    timeseries = pa.table({"day": [0, 1], "gini_income": [0.5, 0.5],
                           "gini_savings": [0.25, 0.3]})
    con = duckdb.connect()
    con.register("people", people)
    con.register("timeseries", timeseries)
    s = load_scenario("rongcheng")
    s.demography = Demography(enabled=True)
    return RunTables(tmp_path, {"people": 8, "days": 2, "adults": 5}, s, con)


def _by_key(measures) -> dict[tuple[str, str], float | None]:
    return {(m.measure, m.key): m.value for m in measures}


def test_rank_rank_slope_ranks_within_cohorts_by_hand():
    """Two birth years. Year 0: parents 1, 2, 3 rank 1/3, 2/3, 1, their children 5, 6, 4
    rank 2/3, 1, 1/3. Year 1: parents 7, 8 rank 1/2, 1, their children 9, 8 rank 1, 1/2.
    Pooled, both means are 7/10; in thirtieths the parents' deviations are -11, -1, 9,
    -6, 9 and the children's -1, 9, -11, 9, -6: covariance -205 over variance 320, a
    slope of -41/64. Ranked all together (parents .2 .. 1, children .4, .6, .2, 1, .8)
    the slope is 0.24 / 0.4 = 0.6."""
    child = np.array([5.0, 6.0, 4.0, 9.0, 8.0])
    parents = np.array([1.0, 2.0, 3.0, 7.0, 8.0])
    cohort = np.array([0, 0, 0, 1, 1])
    assert rank_rank_slope(child, parents, cohort) == pytest.approx(-41 / 64)
    assert rank_rank_slope(child, parents) == pytest.approx(0.6)


def test_mobility_of_a_tiny_table_by_hand(tmp_path):
    """Grown children alive at the end: the first four, three born in year -20, one in
    year -19 (alone: rank 1 as child and as parents). Year -20: parents' incomes 10, 20,
    30 rank 1/3, 2/3, 1, the children's 100, 300, 200 rank 1/3, 1, 2/3. Pooled, in
    twelfths: parents 4, 8, 12, 12 and children 4, 12, 8, 12, both of mean 9; deviations
    -5, -1, 3, 3 and -5, 3, -1, 3: covariance 28 over variance 44, a slope of 7/11.
    Scores: parents 900, 990, 1000 (and 1010 alone) rank as the incomes; the children's
    1000, 1030, 960 rank 8, 12, 4 (and 12): deviations -1, 3, -5, 3, covariance
    5 - 3 - 15 + 9 = -4, a slope of -1/11."""
    m = _by_key(gen_audit.audit(_tiny_run(tmp_path), "generations", None))
    assert m["rank_rank_slope_income", ""] == pytest.approx(7 / 11)
    assert m["rank_rank_slope_score", ""] == pytest.approx(-1 / 11)
    assert m["rank_rank_n", "of=income"] == 4
    assert m["rank_rank_n", "of=score"] == 4


def test_class_persistence_of_a_tiny_table_by_hand(tmp_path):
    """Parents at A: two children, both A. Parents at C: one child at B, one at AA.
    The dead child (parents A) does not count."""
    m = _by_key(gen_audit.audit(_tiny_run(tmp_path), "generations", None))
    assert m["class_persistence_n", "parents=A"] == 2
    assert m["class_persistence", "parents=A;child=A"] == 1.0
    assert m["class_persistence_n", "parents=C"] == 2
    assert m["class_persistence", "parents=C;child=B"] == 0.5
    assert m["class_persistence", "parents=C;child=AA"] == 0.5
    assert m["class_persistence", "parents=C;child=C"] == 0.0
    for g in GRADES:  # every row sums to 1, or is empty
        row = [m["class_persistence", f"parents={g};child={c}"] for c in GRADES]
        if m["class_persistence_n", f"parents={g}"]:
            assert sum(row) == pytest.approx(1.0)
        else:
            assert row == [None] * len(GRADES)


def test_access_voice_and_inequality_of_a_tiny_table(tmp_path):
    m = _by_key(gen_audit.audit(_tiny_run(tmp_path), "generations", None))
    # The minor of parents at A is in a top school, the one of parents at C is not.
    assert m["top_school_share_by_parents_grade", "parents=A"] == 1.0
    assert m["top_school_share_by_parents_grade", "parents=C"] == 0.0
    assert m["top_school_share_by_parents_grade", "parents=B"] is None
    # Birth years -20 and -19 (day -7000, -6600) fall in the cohort of years -20 to -16;
    # the dead child's voice (0.9) is left out.
    assert m["voice_by_cohort", "cohort=-20"] == pytest.approx(np.mean([0.1, 0.3, 0.2, 0.4]))
    assert m["cohort_people", "cohort=-20"] == 4
    assert m["voice_by_cohort", "cohort=-5"] == pytest.approx(0.6)  # days -700 and -600
    assert m["voice_by_cohort", "cohort=-55"] == pytest.approx(0.6)  # day -20000: year -55
    # Incomes of the living adults at the end: 100, 300, 200, 400, 500.
    assert m["gini_income", ""] == pytest.approx(gini(np.array([100, 300, 200, 400, 500.0])))
    assert m["gini_income", "at=start"] == 0.5
    assert m["gini_savings", "at=start"] == 0.25


def test_no_top_schools_leaves_access_empty(tmp_path):
    m = _by_key(gen_audit.audit(_tiny_run(tmp_path, schools=False), "generations", None))
    assert m["top_school_share_by_parents_grade", "parents=A"] is None


# A simulated run ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def decade(tmp_path_factory) -> tuple[Simulation, Path]:
    """Ten years of 3,000 people under the Rongcheng points system, with demography."""
    from credsim.results import run_dir

    s = load_scenario("rongcheng")
    s.run.people, s.run.days = 3000, 3653
    s.demography = Demography(enabled=True)
    out = tmp_path_factory.mktemp("gen") / "run"
    tmp = run_dir.prepare(out)
    sim = run_dir.simulate(s, tmp)
    run_dir.commit(tmp, out)
    return sim, out


def test_parents_snapshot_at_coming_of_age(decade):
    """A grown child whose parents are both alive at the end holds their mean income (an
    adult's income does not change); a minor at the end holds the worse of the grades
    its living parents hold at the end; no one else holds a snapshot."""
    sim, out = decade
    con = duckdb.connect()
    con.execute(f"CREATE VIEW people AS SELECT * FROM '{out}/people.parquet'")
    grown, off = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE abs(c.parents_income - (a.income + b.income)"
        " / 2) > 1e-3 * c.parents_income) FROM people c JOIN people a ON a.id = c.parent1 "
        "JOIN people b ON b.id = c.parent2 WHERE c.parents_at = 'coming_of_age' "
        "AND a.age_band IS NOT NULL AND b.age_band IS NOT NULL").fetchone()
    assert grown > 100 and off == 0  # about a twentieth of the children each year
    order = "['AAA', 'AA', 'A', 'B', 'C', 'D']"
    minors, wrong = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE list_position({order}, "
        f"CAST(c.parents_grade AS VARCHAR)) != greatest(list_position({order}, "
        f"CAST(a.grade AS VARCHAR)), list_position({order}, CAST(b.grade AS VARCHAR)))) "
        "FROM people c JOIN people a ON a.id = c.parent1 JOIN people b ON b.id = c.parent2 "
        "WHERE c.age_band = 'child' AND a.grade IS NOT NULL AND b.grade IS NOT NULL"
    ).fetchone()
    assert minors > 100 and wrong == 0
    (not_end,) = con.execute("SELECT count(*) FROM people WHERE age_band = 'child' AND "
                             "parents_at IS DISTINCT FROM 'end'").fetchone()
    assert not_end == 0
    never = con.execute("SELECT id FROM people WHERE parents_at IS NULL").fetchnumpy()["id"]
    (with_income,) = con.execute("SELECT count(*) FROM people WHERE parents_at IS NULL AND "
                                 "parents_income IS NOT NULL").fetchone()
    assert len(never) > 0 and with_income == 0
    assert (sim.people.age[never] != CHILD).all()


def test_days_lived_add_up_to_the_time_series(decade):
    """The audit's denominators: the days each person lived (and lived as an adult) add
    up to the daily counts of the living (and of living adults)."""
    _, out = decade
    con = duckdb.connect()
    alive, adult = con.execute(
        f"SELECT sum(days_alive), sum(days_adult) FROM '{out}/people.parquet'").fetchone()
    ts_alive, ts_adult = con.execute(
        f"SELECT sum(people_alive), sum(adults_alive) FROM '{out}/timeseries.parquet'"
    ).fetchone()
    assert (alive, adult) == (ts_alive, ts_adult)


def test_yearly_gini_in_the_time_series(decade):
    """Taken on days 0, 365, ..., and carried between; the first equals the Gini of the
    living adults' incomes at the start."""
    _, out = decade
    ts = pq.read_table(out / "timeseries.parquet").sort_by("day")
    for col in ("gini_income", "gini_savings"):
        values = ts.column(col).to_numpy()
        assert np.isfinite(values).all() and ((values > 0) & (values < 1)).all()
        changes = np.flatnonzero(np.diff(values) != 0) + 1
        assert set(changes) <= set(range(365, len(values), 365))


def test_rates_count_only_the_living(decade):
    """With demography the sanctioned person-days are over the person-days of the living,
    not over every slot anyone lived in times the days."""
    from credsim.audit.measures import compute

    _, out = decade
    m = {(x.measure, x.key): x.value for x in compute(out)}
    con = duckdb.connect()
    sanctioned, lived = con.execute(
        f"SELECT sum(sanctioned), sum(people_alive) FROM '{out}/timeseries.parquet'"
    ).fetchone()
    assert m["sanctioned_person_days_per_million", ""] == pytest.approx(
        sanctioned / lived * 1e6)
    for key in ("rank_rank_slope_income", "rank_rank_slope_score", "gini_income"):
        assert math.isfinite(m[key, ""])


# Decades with replicates --------------------------------------------------------------------


def _summary(folder: Path) -> dict[tuple, dict]:
    return {(r["point"], r["measure"], r["key"]): r
            for r in pq.read_table(folder / "summary.parquet").to_pylist()}


def test_decades_measures_have_intervals_across_replicates(tmp_path):
    """20 years of 2,000 people, 2 replicates of the Rongcheng points system and of its
    baseline (no system), both with demography: every generations measure is there,
    finite, with an interval that holds its mean; and the comparison with the baseline
    gives each birth cohort's paired difference in mean voice (without trait
    inheritance the traits of the born do not depend on the system: exactly 0)."""
    folder = rep.compare_command(["baseline", "rongcheng"], replicates=2, out=tmp_path / "c",
                                 overrides=["demography.enabled=true"], seed=1,
                                 days=20 * 365, people=2000, workers=2,
                                 console=Console(quiet=True))
    summary = _summary(folder)
    for measure in ("rank_rank_slope_income", "rank_rank_slope_score", "gini_income"):
        r = summary[1, measure, ""]
        assert r["n"] == 2
        assert math.isfinite(r["mean"])
        assert r["ci_low"] <= r["mean"] <= r["ci_high"]
    r = summary[1, "gini_income", "at=start"]
    assert 0 < r["ci_low"] <= r["mean"] <= r["ci_high"] < 1
    persistence = [r for (p, m, k), r in summary.items() if p == 1 and r["n"] == 2
                   and m == "class_persistence"]
    assert persistence and all(0 <= r["ci_low"] <= r["ci_high"] <= 1 for r in persistence)
    cohorts = [r for (p, m, k), r in summary.items() if p == 1 and m == "voice_by_cohort"]
    assert len(cohorts) >= 15  # 20 years of births and the cohorts before them
    assert all(0 <= r["ci_low"] <= r["mean"] <= r["ci_high"] <= 1 for r in cohorts
               if r["n"] == 2)
    assert all(r["versus"] == "baseline" and r["diff_n"] == 2 and r["diff_mean"] == 0
               for r in cohorts)
    series = set(pq.read_table(folder / "series.parquet").column("series").to_pylist())
    assert {"gini_income", "gini_savings", "people_alive"} <= series


def test_run_report_draws_the_generations(decade, tmp_path):
    """The run report has a Generations section with the cohort and generation charts;
    a run without demography has none."""
    from credsim.audit.report import write_report

    _, out = decade
    page = write_report(out, tmp_path / "report.html").read_text("utf-8")
    section = page[page.index("<h2>Generations</h2>"):]
    section = section[:section.index("<h2>", 4)]
    for caption in ("People alive at the start of each year", "Births (blue), deaths",
                    "The Gini coefficient of income", "Mean voice of the people alive",
                    "Where the children who came of age", "no top schools"):
        assert caption in section, caption
    assert section.count("<svg") == 5


def test_run_report_without_demography_has_no_generations(simulate, tmp_path):
    from credsim.audit.report import write_report

    run = simulate(tmp_path / "run", people=2000, days=30)
    assert "<h2>Generations</h2>" not in write_report(
        run.path, tmp_path / "report.html").read_text("utf-8")


def test_voice_by_cohort_against_a_baseline_run(decade, tmp_path):
    """`compute(run, baseline)` with the same society without the system: each cohort's
    voice over the baseline's (1 without trait inheritance: the traits of the born do
    not depend on the system)."""
    from credsim.audit.measures import compute
    from credsim.results import run_dir

    _, out = decade
    s = load_scenario("baseline")
    s.run.people, s.run.days = 3000, 3653
    s.demography = Demography(enabled=True)
    base = tmp_path / "base"
    tmp = run_dir.prepare(base)
    run_dir.simulate(s, tmp)
    run_dir.commit(tmp, base)
    m = compute(out, base)
    ratios = [x for x in m if x.measure == "voice_by_cohort_vs_baseline"]
    cohorts = [x for x in m if x.measure == "voice_by_cohort"]
    assert len(ratios) == len(cohorts) > 10
    assert all(x.value == pytest.approx(1.0) for x in ratios)


def test_a_baseline_with_other_demography_is_refused(decade):
    from credsim.audit.measures import society_differences
    from credsim.results.run_dir import open_run

    _, out = decade
    manifest = open_run(out)
    base = {**manifest, "scenario": {**manifest["scenario"],
                                     "demography": {"enabled": False}}}
    base["scenario"] = {**base["scenario"], "points": {"enabled": False},
                        "court_list": {"enabled": False}, "gates": {}}
    diffs = society_differences(manifest, base)
    assert any(d.startswith("demography.enabled: False in the baseline") for d in diffs)
    assert not any("runs a system" in d for d in diffs)


def test_summary_figures_agree_with_the_audit(decade):
    """`credsim summary` counts the living as the audit does."""
    from credsim.audit.measures import compute
    from credsim.results.summary import summarize

    _, out = decade
    audit = {(x.measure, x.key): x.value for x in compute(out)}
    _, figures = summarize(out)
    compared = 0
    for f in figures:
        if (f.measure, f.key) in audit and f.value is not None:
            assert f.value == pytest.approx(audit[f.measure, f.key], rel=1e-9), f.measure
            compared += 1
    assert compared >= 5
