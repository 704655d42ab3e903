"""Demography against its closed forms: the survival curve and stationary age structure
of the life table, expected deaths and births a year from the tables and the
population's ages (tolerances from the variance, fixed seeds), and a fixed population
left as it was when demography is off."""

from __future__ import annotations

import numpy as np
import pytest

from credsim.demography import YEAR, LifeTable, initial_ages
from credsim.engine import Simulation
from credsim.memory import person_slots
from credsim.population.people import ABSENT, ADULT, CHILD, ELDER, FEMALE, is_adult
from credsim.scenario.load import load_scenario
from credsim.scenario.model import CHINA_2020_DEATH, DEATH_AGES, Demography

SD = 4  # tolerance of every statistical check [standard deviations]


def _scenario(preset: str = "rongcheng", people: int = 20_000, days: int = 365, **demo):
    s = load_scenario(preset)
    s.run.people, s.run.days = people, days
    s.demography = Demography(enabled=True, **demo)
    return s


@pytest.fixture(scope="module")
def year_run():
    """One year of 20,000 people under the Rongcheng points system."""
    sim = Simulation(_scenario())
    start = {"birth_day": sim.people.birth_day.copy(), "sex": sim.people.sex.copy(),
             "age": sim.people.age.copy()}
    sim.run()
    return sim, start


def _life_expectancy(table: LifeTable) -> float:
    ages = np.arange(0, 130, 0.005)
    return float(table.survival(ages + 0.0025).sum() * 0.005)


def test_survival_curve_is_the_product_of_yearly_survival():
    table = LifeTable.deaths(list(CHINA_2020_DEATH))
    q = np.repeat(CHINA_2020_DEATH, np.diff([*DEATH_AGES, 101]))  # by single year, 0-100
    l_closed = np.r_[1.0, np.cumprod(1 - q)]  # l(0), ..., l(101)
    np.testing.assert_allclose(table.survival(np.arange(102)), l_closed, rtol=1e-12)


def test_default_life_table_gives_china_2020_life_expectancy():
    assert _life_expectancy(LifeTable.deaths(list(CHINA_2020_DEATH))) == pytest.approx(
        77.9, abs=0.05)


def test_ages_at_death_follow_the_survival_curve():
    """Ages at death drawn as the module draws them (inverse cumulative hazard of an
    exponential) survive to each age with probability l(x): binomial tolerance."""
    table = LifeTable.deaths(list(CHINA_2020_DEATH))
    rng = np.random.default_rng(5)
    n = 200_000
    at = table.age_at(table.H(np.zeros(n)) + rng.exponential(size=n))
    for x in (1, 20, 50, 70, 85, 100):
        l_x = float(table.survival(np.array([x]))[0])
        sd = np.sqrt(l_x * (1 - l_x) / n)
        assert abs(np.mean(at > x) - l_x) < SD * sd + 1e-12, x


def test_initial_ages_are_the_stationary_population_within_each_band():
    """The people at the start take ages from the stationary population of the life
    table (density l(x)) within their band: the mean age of each band against its
    closed form, within SD standard errors."""
    p = Demography()
    table = LifeTable.deaths(p.death_probability)
    n = 30_000
    band = np.repeat(np.array([CHILD, ADULT, ELDER], np.uint8), n)
    age = initial_ages(band, table, p, np.random.default_rng(3))
    grid = np.arange(0, 130, 0.01) + 0.005
    l_x = table.survival(grid)
    for b, lo, hi in ((CHILD, 0, p.adult_age), (ADULT, p.adult_age, p.retirement_age),
                      (ELDER, p.retirement_age, 130)):
        w = np.where((grid >= lo) & (grid < hi), l_x, 0)
        mean = (w * grid).sum() / w.sum()
        sd = np.sqrt((w * (grid - mean) ** 2).sum() / w.sum())
        mine = age[band == b]
        assert lo <= mine.min() and mine.max() < hi
        assert abs(mine.mean() - mean) < SD * sd / np.sqrt(n), b


def test_deaths_in_a_year_match_the_life_table(year_run):
    """Deaths among the people alive at the start: each dies within the year with
    probability 1 - exp(-(H(a + 1) - H(a))) at her age a; the count against the sum of
    those probabilities, with the binomial variance."""
    sim, start = year_run
    table = LifeTable.deaths(sim.scenario.demography.death_probability)
    n0 = sim.scenario.run.people
    age = -start["birth_day"][:n0] / YEAR
    p = 1 - np.exp(-(table.H(age + 1) - table.H(age)))
    dead = int(np.count_nonzero(~sim.people.alive[:n0]))
    assert abs(dead - p.sum()) < SD * np.sqrt((p * (1 - p)).sum())


def test_births_in_a_year_match_the_fertility_table(year_run):
    """Births to the women alive at the start: a woman aged a bears at rate f(a + t) while
    alive; her expected births in the year, summed, against the count (Poisson
    variance)."""
    sim, start = year_run
    d = sim.scenario.demography
    deaths, births = LifeTable.deaths(d.death_probability), LifeTable.births(d.fertility)
    n0 = sim.scenario.run.people
    women = np.flatnonzero((start["sex"][:n0] == FEMALE) & (start["age"][:n0] != ABSENT))
    age = -start["birth_day"][women] / YEAR
    t = (np.arange(365) + 0.5) / YEAR  # mid-day times of the year [years]
    a = age[:, None] + t[None, :]
    alive = np.exp(-(deaths.H(a) - deaths.H(age)[:, None]))
    rate = births.rate[np.clip(np.searchsorted(births.lower, a, side="right") - 1, 0, None)]
    expected = float((rate * alive).sum() / YEAR)
    born = sim.people.parent1[n0:sim.people_rows]
    assert len(born) == int(sum(r["births"] for r in sim.rows))
    assert abs(len(born) - expected) < SD * np.sqrt(expected)
    assert np.isin(born, women).all()  # mothers are women alive at the start


def test_counts_follow_the_population(year_run):
    """The points system's grade counts are of living adults every day; the dead hold the
    band ABSENT; children who came of age hold the starting score."""
    sim, _ = year_run
    pts = sim["points"]
    assert int(pts.grade_counts.sum()) == sim.adults == int(np.count_nonzero(
        is_adult(sim.people.age)))
    assert sim.rows[-1]["adults_alive"] == sim.adults
    dead = ~sim.people.alive[:sim.people_rows]
    assert (sim.people.age[:sim.people_rows][dead] == ABSENT).all()
    # The dead are sanctioned no longer, and their own court cases end.
    gates = sim.gates
    gone = np.flatnonzero(~sim.people.alive[:sim.people_rows])
    assert (gates.status[gone] == 0).all()
    assert int(gates.counts[0]) == int(np.count_nonzero(gates.status & 1))
    cases = sim["court_list"].cases
    dead_cases = ~cases["is_firm"] & np.isin(cases["who"], gone)
    assert (cases["delist_at"][dead_cases] >= 0).all()
    alive_total = sim.rows[-1]["people_alive"]
    assert alive_total == int(np.count_nonzero(sim.people.alive))
    assert sum(r["came_of_age"] for r in sim.rows) > 0


def test_life_ledger_rows_in_a_run_folder(tmp_path):
    import pyarrow.parquet as pq

    from credsim.results import run_dir

    s = _scenario("baseline", people=5_000, days=365)
    out = tmp_path / "run"
    out.mkdir()
    run_dir.simulate(s, out)
    run_dir.read_manifest(out, "missing", "no manifest")  # passes the readers' checks
    led = pq.read_table(out / "ledger.parquet", columns=["kind", "cause"]).to_pydict()
    ts = pq.read_table(out / "timeseries.parquet", columns=["births", "deaths"]).to_pydict()
    life = [c for k, c in zip(led["kind"], led["cause"], strict=True) if k == "life"]
    assert life.count("birth") == sum(ts["births"]) > 0
    assert life.count("death") == sum(ts["deaths"]) > 0


def test_room_for_every_birth():
    """The capacity bounds the births: a 50-year run never runs out of slots, and the
    memory estimate counts them."""
    s = _scenario("baseline", people=2_000, days=18_263)
    sim = Simulation(s)
    assert sim.people.n == person_slots(s) > 2_000
    sim.run()
    assert sim.people_rows <= sim.people.n
    ages = (s.run.days - sim.people.birth_day[:sim.people_rows][
        sim.people.alive[:sim.people_rows]]) / YEAR
    assert ages.max() < 130
    # Bands follow the ages: children who came of age over the run retire in turn.
    band = sim.people.age[:sim.people_rows][sim.people.alive[:sim.people_rows]]
    d = s.demography
    day = s.run.days - 1
    edge = 1 / YEAR + 1e-9  # a band changes on the first day of its age
    ages = (day - sim.people.birth_day[:sim.people_rows][
        sim.people.alive[:sim.people_rows]]) / YEAR
    assert (ages[band == CHILD] < d.adult_age + edge).all()
    assert ((ages[band == ADULT] >= d.adult_age - edge)
            & (ages[band == ADULT] < d.retirement_age + edge)).all()
    assert (ages[band == ELDER] >= d.retirement_age - edge).all()
    born_adults = (sim.people.birth_day[:sim.people_rows] > -d.adult_age * YEAR)
    assert np.count_nonzero(born_adults & (sim.people.age[:sim.people_rows] == ELDER)) > 0


def test_demography_off_leaves_the_population_and_the_streams_as_they_were():
    """Common random numbers: turning demography on adds its own streams and leaves the
    other modules' declarations, and the people at the start, unchanged."""
    on = Simulation(_scenario(people=3_000))
    off_s = load_scenario("rongcheng")
    off_s.run.people = 3_000
    off = Simulation(off_s)
    assert off.people.birth_day is None and off.people.n == 3_000
    # (firm_dynamics runs only with demography: its streams are demography's too)
    streams_on = [s for s in on.streams.entropy()["streams"]
                  if s["module"] not in ("demography", "firm_dynamics")]
    assert streams_on == off.streams.entropy()["streams"]
    for name in ("household", "region", "group", "income", "compliance", "voice",
                 "generosity"):
        np.testing.assert_array_equal(getattr(on.people, name)[:3_000],
                                      getattr(off.people, name))
    np.testing.assert_array_equal(is_adult(on.people.age[:3_000]), is_adult(off.people.age))


def test_ages_at_the_start_fit_the_families(tmp_path):
    """Parents at the start are older than their children by at least the earliest age
    of the fertility table, couples' ages go together, and no age is clipped to the
    edge of its band."""
    import duckdb

    from credsim.api import run

    r = run("rongcheng", people=3000, days=2, seed=5, out=tmp_path / "r",
            set={"demography.enabled": True})
    con = duckdb.connect()
    people = str(r.path / "people.parquet")
    gaps = con.execute(
        "SELECT (c.birth_day - p.birth_day) / 365.25 FROM read_parquet(?) c "
        "JOIN read_parquet(?) p ON p.id IN (c.parent1, c.parent2)", [people, people]
    ).fetchnumpy()
    gap = next(iter(gaps.values()))
    assert len(gap) > 500 and gap.min() >= 15 - 1 / YEAR
    # Couples of one band are within a few years of each other (sd 3 years each way).
    corr, n = con.execute(
        "SELECT corr(a.birth_day, b.birth_day), count(*) FROM read_parquet(?) a "
        "JOIN read_parquet(?) b ON a.partner = b.id AND a.age_band = b.age_band",
        [people, people]).fetchone()
    assert n > 500 and corr > 0.8
    # No age piles up at a band's edge: the people at the start aged 59 (the year before
    # retirement) are no more than those aged 55 to 58, beyond binomial noise.
    ages = con.execute("SELECT floor(-birth_day / 365.25) FROM read_parquet(?) "
                       "WHERE birth_day < 0", [people]).fetchnumpy()
    age = next(iter(ages.values()))
    before = np.count_nonzero((age >= 55) & (age < 59)) / 4
    assert np.count_nonzero(age == 59) < before + 4 * np.sqrt(before)
