"""Schooling: entry at the entry age, top places by cohort, the gates on the parents'
standing replayed day by day, the income factors at coming of age; and inheritance of
voice and compliance (its closed form, and chilling lowering the voice children take)."""

from __future__ import annotations

import numpy as np
import pytest

from credsim.demography import YEAR
from credsim.engine import Simulation
from credsim.population.people import (
    CHILD,
    SCHOOL_NONE,
    SCHOOL_PRIVATE,
    SCHOOL_PUBLIC,
    SCHOOL_TOP,
)
from credsim.scenario.load import load_scenario
from credsim.scenario.model import Scenario

SD = 4  # tolerance of every statistical check [standard deviations]
TOP_LINE, PRIVATE_LINE = 700, 660  # composite scores below which parents are refused


def _scenario(preset: str = "rongcheng", people: int = 4_000, days: int = 731,
              seed: int = 1, no_gates: bool = False, **sections) -> Scenario:
    s = load_scenario(preset)
    s.run.people, s.run.days, s.run.seed = people, days, seed
    data = s.model_dump()
    if no_gates:
        data["gates"] = {}  # faster; the school conditions are schooling's own
    data["demography"]["enabled"] = True
    for name, values in sections.items():
        data[name].update(values)
    return Scenario.model_validate(data)


@pytest.fixture(scope="module")
def gated():
    """Sesame with top and private places refused to children of parents scoring low,
    stepped day by day: on each entry day, the composite scores of that day."""
    s = _scenario("sesame", people=6_000, no_gates=True, schooling={
        "enabled": True, "top_share": 0.3,
        "top_condition": f"score<{TOP_LINE}", "private_condition": f"score<{PRIVATE_LINE}"},
        population={"private_school_share": 0.4})
    assert not s.safeguards.domain_separation
    sim = Simulation(s)
    seen = []
    for day in range(s.run.days):
        sim.step(day)
        if day % 365 == 0:
            seen.append((day, sim["composite"].score.copy(), sim.people.school.copy()))
    return sim, seen


def _parent_below(sim, score: np.ndarray, children: np.ndarray, line: float) -> np.ndarray:
    """Whether a living parent of each child takes part and scores below `line`."""
    p = sim.people
    out = np.zeros(len(children), dtype=bool)
    for parent in (p.parent1[children], p.parent2[children]):
        ok = parent >= 0
        ok[ok] = p.alive[parent[ok]]
        s = score[parent[ok]]
        out[ok] |= (s >= 0) & (s < line)
    return out


def test_refusals_replay_the_parents_scores_that_day(gated):
    """Every child refused a top or private place had a parent below the line that day;
    no child given one had."""
    sim, seen = gated
    school = sim["schooling"]
    refusals = {(day, kind): ids for day, ids, kind in school.refusals}
    checked = {"top": 0, "private": 0}
    for day, score, states in seen[1:]:
        for kind, line in (("top", TOP_LINE), ("private", PRIVATE_LINE)):
            refused = refusals[(day, kind)]
            assert _parent_below(sim, score, refused, line).all()
            checked[kind] += len(refused)
        entered = school.entered[day]
        top = entered[states[entered] == SCHOOL_TOP]
        private = entered[states[entered] == SCHOOL_PRIVATE]
        assert not _parent_below(sim, score, top, TOP_LINE).any()
        assert not _parent_below(sim, score, private, PRIVATE_LINE).any()
    assert checked["top"] > 5 and checked["private"] > 5


def test_top_places_are_a_share_of_each_cohort(gated):
    sim, seen = gated
    school = sim["schooling"]
    p = sim.people
    for day, _, states in seen[1:]:
        entered = school.entered[day]
        assert len(entered) > 30
        age = (day - p.birth_day[entered].astype(np.int64)) / YEAR
        entry_age = sim.scenario.schooling.entry_age
        assert ((age >= entry_age) & (age < entry_age + 1 + 1 / YEAR)).all()
        top = int(np.count_nonzero(states[entered] == SCHOOL_TOP))
        assert top == round(sim.scenario.schooling.top_share * len(entered))
        assert np.isin(states[entered], (SCHOOL_PUBLIC, SCHOOL_PRIVATE, SCHOOL_TOP)).all()
    # Children under the entry age on the last entry day have not entered.
    last = seen[-1][0]
    young = (p.age == CHILD) & ((last - p.birth_day.astype(np.int64)) / YEAR
                                < sim.scenario.schooling.entry_age)
    assert young.sum() > 100
    assert (p.school[young] == SCHOOL_NONE).all()


def test_income_factors_at_coming_of_age():
    """The same society with and without income factors: those who came of age earn the
    same draw times their school's factor (common random numbers make it exact)."""
    sims = []
    for private, top in ((1.0, 1.0), (2.0, 4.0)):
        s = _scenario(people=3_000, days=730, schooling={
            "enabled": True, "income_factor_private": private, "income_factor_top": top})
        sim = Simulation(s)
        sim.run()
        sims.append(sim)
    a, b = (sim.people for sim in sims)
    came = np.flatnonzero(_came_of_age(sims[0]))
    assert len(came) > 50
    np.testing.assert_array_equal(a.school[came], b.school[came])
    factor = np.select([a.school[came] == SCHOOL_PRIVATE, a.school[came] == SCHOOL_TOP],
                       [2.0, 4.0], 1.0)
    np.testing.assert_allclose(b.income[came], a.income[came] * factor, rtol=1e-6)
    assert (factor > 1).sum() > 3


def _came_of_age(sim) -> np.ndarray:
    """Who came of age during the run and is alive: children at the start, adults now."""
    p = sim.people
    n0 = sim.scenario.run.people
    at_start = np.zeros(p.n, dtype=bool)
    at_start[:n0] = -p.birth_day[:n0] < sim.scenario.demography.adult_age * YEAR
    return at_start & p.alive & (p.age == 1)


def test_inheritance_closed_form_and_chilling():
    """A newborn's voice is h x its parents' expressed voice (voice x chilling) + w x its
    region's adults' + (1 - h - w) x the population draw; with h = 1 it is exactly the
    parents' mean expressed voice, so chilling lowers it."""
    s = _scenario(people=4_000, days=365, partnering={"enabled": True},
                  inheritance={"enabled": True, "heritability": 1.0, "peer_weight": 0.0},
                  adaptation={"enabled": False})  # chilling stays as set
    sim = Simulation(s)
    chill = sim["society"].behaviour.chill
    chill[:] = 0.5  # everyone speaks at half their voice
    sim.run()
    p = sim.people
    n0 = s.run.people
    born = np.arange(n0, sim.people_rows)
    assert len(born) > 20
    mother, father = p.parent1[born], p.parent2[born]
    expected = (p.voice[mother] * 0.5 + p.voice[father] * 0.5) / 2
    np.testing.assert_allclose(p.voice[born], expected, rtol=1e-5)
    expected_c = (p.compliance[mother] + p.compliance[father]) / 2
    np.testing.assert_allclose(p.compliance[born], expected_c, rtol=1e-5)
