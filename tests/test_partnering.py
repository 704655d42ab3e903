"""Partnering against its closed forms (fixed seeds, tolerances from the variance): new
couples per single woman-year at the meeting rate, homophily shares, births to partnered
women at the rescaled rates; households that form and split; the dating platform off
equal to no platform, its common random numbers, and its sorting of couples by score."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from credsim.demography import YEAR, LifeTable
from credsim.engine import Simulation
from credsim.population.people import ADULT, FEMALE
from credsim.results import run_dir
from credsim.scenario.load import load_scenario
from credsim.scenario.model import Scenario

SD = 4  # tolerance of every statistical check [standard deviations]


def _scenario(preset: str = "rongcheng", people: int = 4_000, days: int = 730,
              seed: int = 1, **partnering) -> Scenario:
    s = load_scenario(preset)
    s.run.people, s.run.days, s.run.seed = people, days, seed
    data = s.model_dump()
    data["demography"]["enabled"] = True
    data["partnering"].update(enabled=True, **partnering)
    return Scenario.model_validate(data)


def _run(s: Scenario) -> Simulation:
    sim = Simulation(s)
    sim.run()
    return sim


def _total(sim: Simulation, col: str) -> int:
    return int(sum(r[col] for r in sim.rows))


def test_new_couples_per_single_woman_year_is_the_meeting_rate():
    """Without homophily a single woman meets a partner at the meeting rate whenever a
    single man exists: couples formed against rate x single woman-years (Poisson)."""
    rate = 1.0
    sim = _run(_scenario(meeting_rate=rate, homophily_region=0.0, homophily_group=0.0,
                         homophily_school=0.0))
    woman_years = sum(r["single_women"] for r in sim.rows) / YEAR
    expected = rate * woman_years
    formed = _total(sim, "couples_formed")
    assert expected > 100  # enough couples for the check to mean something
    assert abs(formed - expected) < SD * np.sqrt(expected)


def test_homophily_shares_of_new_couples():
    """A woman keeps her region with probability h: the share of new couples of one
    region is h + (1 - h) x the chance a single man drawn at random shares it; a
    homophily of 1 keeps every couple in its group."""
    h = 0.5
    sim = _run(_scenario(people=6_000, meeting_rate=1.0, homophily_region=h,
                         homophily_group=1.0, homophily_school=0.0))
    p = sim.people
    women = np.flatnonzero((p.sex == FEMALE) & (p.partner >= 0) & (sim["partnering"].met
                                                                  > 0))
    men = p.partner[women]
    assert len(women) > 100
    assert (p.group[women] == p.group[men]).all()
    # The chance of a shared region by chance, from the singles at the end (the pools
    # change little over the run).
    single = p.alive & (p.age == ADULT) & (p.partner < 0)
    w_share = np.bincount(p.region[single & (p.sex == FEMALE)], minlength=p.urban.size)
    m_share = np.bincount(p.region[single & (p.sex != FEMALE)], minlength=p.urban.size)
    chance = float((w_share / w_share.sum() * m_share / m_share.sum()).sum())
    expected = h + (1 - h) * chance
    same = float((p.region[women] == p.region[men]).mean())
    sd = np.sqrt(expected * (1 - expected) / len(women))
    assert abs(same - expected) < SD * sd + 0.02  # + the drift of the pools


def test_births_need_a_partner_at_the_rescaled_rates():
    """Births happen to partnered women only, at the table's rate over the partnered
    share of their age group at the start: the count over a year against the sum of
    those rates over partnered woman-days (Poisson)."""
    sim = Simulation(_scenario(days=365, people=6_000))
    demo = sim["demography"]
    share = demo.partnered_share.copy()
    table = LifeTable.births(list(np.asarray(sim.scenario.demography.fertility) / share))
    p = sim.people
    expected = 0.0
    for day in range(sim.scenario.run.days):
        women = np.flatnonzero(p.alive & (p.sex == FEMALE) & (p.partner >= 0))
        age = (day + 0.5 - p.birth_day[women].astype(np.int64)) / YEAR
        g = np.clip(np.searchsorted(table.lower, age, side="right") - 1, 0, None)
        expected += float(table.rate[g].sum()) / YEAR
        sim.step(day)
    n0 = sim.scenario.run.people
    born = np.arange(n0, sim.people_rows)
    assert abs(len(born) - expected) < SD * np.sqrt(expected)
    assert (p.parent2[born] >= 0).all()  # every birth has a father


def test_couples_share_a_household_and_a_split_separates_them():
    sim = _run(_scenario(meeting_rate=0.5, divorce_rate=0.1))
    p = sim.people
    couple = np.flatnonzero(p.alive & (p.partner >= 0))
    assert (p.household[couple] == p.household[p.partner[couple]]).all()
    assert _total(sim, "couples_split") > 20
    # After a split the man lives alone (until he partners again).
    part = sim["partnering"]
    men = np.flatnonzero(p.alive & (p.sex != FEMALE) & (p.partner < 0) & part.ever)
    members = np.bincount(p.household[p.alive], minlength=int(p.household.max()) + 1)
    assert len(men) > 0
    split_men = men[part.met[men] > 0]
    assert (members[p.household[split_men]] == 1).all()
    # Nobody who partnered in the run lives with a parent, nor partnered with kin.
    new = np.flatnonzero(p.alive & (part.met > 0))
    assert not part._with_parent(new).any()
    paired = new[p.partner[new] >= 0]
    assert not part._kin(paired, p.partner[paired]).any()
    # Couples counted as they are.
    assert sim.rows[-1]["couples"] == int(np.count_nonzero(p.alive & (p.partner >= 0)
                                                           & (p.sex == FEMALE)))


def _platform(**kw) -> dict:
    return {"platform": {"enabled": True, **kw}}


def test_platform_off_equals_no_platform(tmp_path):
    """A platform table that is switched off runs exactly what no table runs: the same
    tables, byte for byte."""
    s_none = _scenario(people=2_000, days=365)
    s_off = _scenario(people=2_000, days=365, platform={
        "enabled": False, "user_share": 0.9, "display_share": 1.0, "ranking_strength": 1.0})
    for name, s in (("none", s_none), ("off", s_off)):
        (tmp_path / name).mkdir()
        run_dir.simulate(s, tmp_path / name)
    for table in ("timeseries", "people", "ledger"):
        a = pq.read_table(tmp_path / "none" / f"{table}.parquet")
        b = pq.read_table(tmp_path / "off" / f"{table}.parquet")
        assert a.equals(b), table


def test_platform_leaves_demography_draws_unchanged(tmp_path):
    """Common random numbers: with the platform on, the people at the start die on the
    same days, and a woman whose union is the same in both runs throughout has her
    children on the same days."""
    runs = []
    for name, extra in (("off", {}), ("on", _platform(user_share=1.0))):
        tmp = tmp_path / name
        tmp.mkdir()
        runs.append(run_dir.simulate(_scenario(days=730, **extra), tmp))
    n0 = runs[0].scenario.run.people
    deaths = []
    for name in ("off", "on"):
        life = pq.read_table(tmp_path / name / "ledger.parquet",
                             filters=[("kind", "==", "life"), ("delta", "==", -1),
                                      ("id", "<", n0)], columns=["id", "day"])
        deaths.append(set(zip(*(life.column(c).to_pylist() for c in ("id", "day")),
                              strict=True)))
    assert len(deaths[0]) > 20
    assert deaths[0] == deaths[1]
    births = []
    for sim in runs:
        p = sim.people
        born = np.arange(n0, sim.people_rows)
        births.append({(int(m), int(d)) for m, d in zip(p.parent1[born], p.birth_day[born],
                                                        strict=True)})
    part = [sim["partnering"] for sim in runs]
    p0, p1 = runs[0].people, runs[1].people
    # Women partnered at the start to the same man in both runs who never split nor
    # partnered again (one union each): their partner state was the same every day.
    steady = np.flatnonzero((p0.sex[:n0] == FEMALE) & (part[0].unions[:n0] == 1)
                            & (part[1].unions[:n0] == 1) & (part[0].met[:n0] == 0)
                            & (part[1].met[:n0] == 0) & (p0.partner[:n0] >= 0)
                            & (p0.partner[:n0] == p1.partner[:n0]))
    steady = set(steady.tolist())
    mine = [{b for b in bs if b[0] in steady} for bs in births]
    assert len(mine[0]) > 20
    assert mine[0] == mine[1]
    _same_children(runs)
    # The platform did change who partnered with whom.
    assert _total(runs[1], "couples_formed_platform") > 0


def _same_children(runs: list[Simulation], at_least: int = 50) -> int:
    """A child born in both runs (the same mother, the same day) has the same sex and
    is alive at the end in both, whichever slot it took; the number who took another
    slot."""
    p0, p1 = runs[0].people, runs[1].people
    n0 = runs[0].scenario.run.people
    slot = []
    for sim in runs:
        p = sim.people
        born = np.arange(n0, sim.people_rows)
        slot.append({(int(m), int(d)): int(c) for m, d, c in
                     zip(p.parent1[born], p.birth_day[born], born, strict=True)})
    common = slot[0].keys() & slot[1].keys()
    assert len(common) > at_least
    a = np.array([slot[0][k] for k in sorted(common)])
    b = np.array([slot[1][k] for k in sorted(common)])
    np.testing.assert_array_equal(p0.sex[a], p1.sex[b])
    np.testing.assert_array_equal(p0.alive[a], p1.alive[b])
    return int(np.count_nonzero(a != b))


def test_a_child_born_in_both_runs_lives_the_same_life_in_another_slot():
    """More splits change who bears (births need a partner), so the born take other
    slots; the people at the start die as they did, and a child born in both runs to
    the same mother on the same day lives the same life (one year: the birth rates are
    rescaled at its end)."""
    runs = [_run(_scenario(people=8_000, days=365, divorce_rate=rate))
            for rate in (0.01, 0.5)]
    n0 = runs[0].scenario.run.people
    np.testing.assert_array_equal(runs[0].people.alive[:n0], runs[1].people.alive[:n0])
    assert _same_children(runs, at_least=20) > 5


@pytest.fixture(scope="module")
def dating_pairs():
    """Sesame (its gates left out, for speed) with demography, with and without a strong
    platform, over five seeds: the score correlation of the couples formed in the run."""
    out = []
    for seed in range(1, 6):
        pair = []
        for on in (False, True):
            s = load_scenario("sesame")
            s.run.people, s.run.days, s.run.seed = 3_000, 730, seed
            data = s.model_dump()
            data["gates"] = {}
            data["demography"]["enabled"] = True
            data["partnering"].update(enabled=True, meeting_rate=0.5, platform={
                "enabled": on, "user_share": 1.0, "display_share": 1.0,
                "ranking_strength": 1.0})
            sim = _run(Scenario.model_validate(data))
            pair.append(_new_couple_correlation(sim))
        out.append(pair)
    return np.array(out)


def _new_couple_correlation(sim: Simulation) -> float:
    comp, p = sim["composite"], sim.people
    w = np.flatnonzero(p.alive & (p.sex == FEMALE) & (p.partner >= 0)
                       & (sim["partnering"].met > 0))
    m = p.partner[w]
    both = comp.opted[w] & comp.opted[m] & p.alive[m]
    return float(np.corrcoef(comp.score[w[both]], comp.score[m[both]])[0, 1])


def test_platform_raises_the_couple_score_correlation(dating_pairs):
    """Paired over seeds (the same society with and without the platform): the mean
    difference of the couples' score correlation, with a 99 % t interval, is above 0."""
    diff = dating_pairs[:, 1] - dating_pairs[:, 0]
    t99 = 4.604  # two-sided 99 %, 4 degrees of freedom
    assert diff.mean() - t99 * diff.std(ddof=1) / np.sqrt(len(diff)) > 0


def test_partnering_needs_demography_and_the_platform_a_score():
    data = load_scenario("rongcheng").model_dump()
    data["partnering"]["enabled"] = True
    with pytest.raises(ValueError, match="partnering.enabled: needs demography.enabled"):
        Scenario.model_validate(data)
    data = load_scenario("court-blacklist").model_dump()
    data["demography"]["enabled"] = True
    data["partnering"].update(enabled=True, platform={"enabled": True})
    with pytest.raises(ValueError, match="needs composite.enabled or points.enabled"):
        Scenario.model_validate(data)


def test_families_from_the_command_line_and_python(one_error, cli, tmp_path):
    """A bad families setting is one message, exit code 2; the sesame-dating preset runs
    from Python and its audit gives the couples' measures."""
    import credsim

    msg = one_error(cli("show", "rongcheng", "--set", "schooling.enabled=true"))
    assert "schooling.enabled: needs demography.enabled" in msg
    msg = one_error(cli("show", "sesame-dating", "--set", "schooling.top_condition=grade<=C"))
    assert "schooling.top_condition" in msg and "points.enabled" in msg
    with pytest.raises(credsim.InputError, match="partnering.enabled: needs demography"):
        credsim.load("rongcheng", set={"partnering.enabled": True})
    run = credsim.run(credsim.load("sesame-dating", people=2_000, days=400), progress=False)
    audit = run.audit()
    corr = audit.value("couple_score_correlation")
    assert corr is None or -1 <= corr <= 1
    share = audit.value("couple_homophily_share", "trait=region")
    assert share is not None and 0 <= share <= 1
    assert audit.value("couple_platform_share") is not None
    people = run.table("people")
    assert {"ever_partnered", "met_partner", "platform_user"} <= set(people.column_names)
    assert "top" in people.column("school").combine_chunks().dictionary.to_pylist()
