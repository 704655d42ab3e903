"""The systems over years of births and deaths: composite participation and peer ratings
follow who comes of age and who dies."""

from __future__ import annotations

import numpy as np
import pytest

from credsim.population.people import ADULT, CHILD, ELDER
from credsim.results.query import connect

DEMOGRAPHY = ("demography.enabled=true",)


def _people(run) -> dict[str, np.ndarray]:
    con = connect(run.path)
    try:
        t = con.execute("SELECT * FROM people ORDER BY id").arrow()
    finally:
        con.close()
    return {c: t.column(c).to_numpy(zero_copy_only=False) for c in t.column_names}


@pytest.fixture(scope="module")
def sesame(tmp_path_factory, simulate):
    """Sesame (opt-in composite, monthly refresh) with demography: 3,000 people, 2 years."""
    out = tmp_path_factory.mktemp("sesame") / "run"
    return simulate(out, "sesame", DEMOGRAPHY, people=3000, days=730, seed=3)


def test_composite_participants_are_living_adults_who_opted(sesame):
    sim, comp = sesame.sim, sesame.sim.get("composite")
    people = sim.people
    alive = people.alive
    assert not comp.opted[~alive].any()  # the dead take no part
    assert not comp.opted[people.age == CHILD].any()
    # the count kept day by day is the count of living participants
    assert comp.participants == int(comp.opted.sum())
    con = connect(sesame.path)
    try:
        last = con.execute("SELECT composite_participants FROM timeseries ORDER BY day DESC "
                           "LIMIT 1").fetchone()[0]
    finally:
        con.close()
    # people may come of age after the last refresh: they take part from the next one
    assert last == comp.participants
    # band counts are of living participants' scores
    assert int(comp.band_counts.sum()) == comp.participants
    assert (comp.score[~alive] == -1).all()


def test_who_comes_of_age_joins_by_the_opt_in_rule(sesame):
    sim, comp = sesame.sim, sesame.sim.get("composite")
    p = sim.people
    n0 = sim.scenario.run.people
    started_child = np.zeros(p.n, dtype=bool)
    # children at the start who are adults (or elders) at the end came of age in the run
    started_child[:n0] = p.birth_day[:n0] > -18 * 365.25
    came = np.flatnonzero(started_child & p.alive & np.isin(p.age, (ADULT, ELDER)))
    assert len(came) > 40
    joined = came[comp.opted[came] | np.isin(came, comp.joining)]
    share = len(joined) / len(came)
    # young adults' incomes are drawn as everyone's: about the share of the people at the
    # start who are adults under 60 and take part (binomial tolerance, 4 sd)
    start_adults = np.flatnonzero(p.age[:n0] == ADULT)
    base = comp.opted[start_adults][p.alive[start_adults]].mean()
    sd = np.sqrt(base * (1 - base) / len(came))
    assert abs(share - base) < 4 * sd + 0.02, (share, base)
    # a participant who came of age before the last refresh has a score
    scored = joined[~np.isin(joined, comp.joining)]
    assert (comp.score[scored] >= sim.scenario.composite.low).all()


def test_newborns_parents_hold_the_parent_bonus(sesame):
    sim, comp = sesame.sim, sesame.sim.get("composite")
    p = sim.people
    born = np.flatnonzero(p.birth_day >= 0)
    assert len(born) > 20
    assert comp.is_parent[p.parent1[born]].all()


@pytest.fixture(scope="module")
def nosedive(tmp_path_factory, simulate):
    out = tmp_path_factory.mktemp("nosedive") / "run"
    return simulate(out, "nosedive", DEMOGRAPHY, people=3000, days=730, seed=3)


def test_peer_ratings_follow_births_and_deaths(nosedive):
    sim, r = nosedive.sim, nosedive.sim.get("rating")
    p = sim.people
    adult = np.isin(p.age, (ADULT, ELDER))
    assert np.isnan(r.rating[~p.alive]).all()  # the dead hold no rating
    assert not np.isnan(r.rating[adult]).any()  # every living adult holds one
    assert np.isnan(r.rating[p.age == CHILD]).all()
    assert r.adults == int(adult.sum())
    n0 = sim.scenario.run.people
    came = np.flatnonzero((p.birth_day[:n0] > -18 * 365.25) & adult[:n0])
    assert len(came) > 50
    lo, hi = 1.0, 5.0
    assert ((r.rating[came] >= lo) & (r.rating[came] <= hi)).all()


def test_a_dead_representatives_firm_names_a_new_one_and_its_listing_follows(simulate,
                                                                              tmp_path):
    """Many firm cases, long listings, four years of deaths: every firm's representative is
    alive at the end, and every person's count of active listings is the number of open
    listed cases that reach them."""
    over = (*DEMOGRAPHY, "behaviours.firm_judgment_default.rate=2e-3",
            "court_list.grace_days=10", "court_list.pay_hazard=0.0001",
            "court_list.no_assets_hazard=0.0", "court_list.term_days=3000",
            "population.firms_per_thousand=200")
    run = simulate(tmp_path / "cb", "court-blacklist", over, people=3000, days=1460, seed=2)
    sim = run.sim
    firms, people, court = sim.firms, sim.people, sim.get("court_list")
    succession = sim.get("firm_dynamics")
    assert succession.replaced > 5
    assert people.alive[firms.legal_rep].all()
    c = court.cases
    listed = c["listed_day"] >= 0
    assert not np.isin(c["rep"][listed & c["is_firm"]], np.flatnonzero(~people.alive)).any()
    reached = np.bincount(c["rep"][listed], minlength=people.n)
    held = court.n_list_true.astype(int) + court.n_list_false
    assert (held == reached).all()
    assert court.listed_count == int((held > 0).sum())
    assert (c["rep"][listed & c["is_firm"]] == firms.legal_rep[c["who"][listed & c["is_firm"]]]
            ).all()
    con = connect(run.path)
    try:
        passed = con.execute(
            "SELECT count(*) FROM ledger WHERE kind = 'list' AND entity = 'person' AND "
            "cause = 'delisting_death' AND ref IN (SELECT file_row_number FROM ledger "
            "WHERE cause = 'legal_rep_of_listed_firm')").fetchone()[0]
    finally:
        con.close()
    assert passed > 0  # some listings left a dead representative


def test_a_listed_parents_child_born_in_the_run_loses_a_private_place(simulate, tmp_path):
    """The private-school gate reaches children born during the run (their slots lie after
    the households of the start), as it reaches the children of the start."""
    from credsim.population.people import SCHOOL_LOST, SCHOOL_PRIVATE

    run = simulate(tmp_path / "cb", "court-blacklist", DEMOGRAPHY, people=3000, days=400,
                   seed=4)
    sim = run.sim
    p, gates = sim.people, sim.gates
    n0 = int(p.household_start[-1])
    assert n0 == sim.scenario.run.people
    born = np.flatnonzero(p.alive & (p.birth_day >= 0))
    assert len(born) > 5
    child = int(born[0])
    mother = int(p.parent1[child])
    p.school[child] = SCHOOL_PRIVATE
    # a child of the start in another household with a private place
    first = np.flatnonzero((p.school[:n0] == SCHOOL_PRIVATE) & (p.parent1[:n0] >= 0))
    assert len(first) > 0
    old = int(first[0])
    parents = np.array([mother, int(p.parent1[old])])
    kids, _, payers = gates._private_school_children(parents, np.zeros(2, dtype=bool))
    assert child in kids.tolist() and old in kids.tolist()
    assert payers[kids.tolist().index(child)] == mother
    assert p.school[child] == SCHOOL_LOST and p.school[old] == SCHOOL_LOST


def test_a_blacklisted_firms_successor_takes_over_its_blacklisting(simulate, tmp_path):
    """Credit China's blacklist over four years of deaths: each person's count of
    blacklisted firms represented is that of the firms whose representative they are
    now; nobody dead holds one."""
    over = (*DEMOGRAPHY, "population.firms_per_thousand=200",
            "behaviours.firm_judgment_default.rate=3e-3")
    run = simulate(tmp_path / "cc", "credit-china", over, people=3000, days=1460, seed=2)
    sim = run.sim
    fl, firms, people = sim.get("firm_lists"), sim.firms, sim.people
    assert sim.get("firm_dynamics").replaced > 5
    assert (fl.rep == firms.legal_rep).all() and people.alive[fl.rep].all()
    true = fl.black[0] > 0
    held = fl.black.sum(axis=0) > 0
    assert held.sum() > 50
    assert (fl.rep_true == np.bincount(fl.rep[true], minlength=people.n)).all()
    assert (fl.rep_false == np.bincount(fl.rep[held & ~true], minlength=people.n)).all()


def test_firms_close_at_the_exit_rate_and_are_replaced(simulate, tmp_path):
    """No system holds any firm: closures over two years are Binomial(firm-days, daily
    hazard), within 4 standard deviations; every firm stays valid and represented."""
    from credsim.population.firms import validate_uscc

    over = (*DEMOGRAPHY, "population.firms_per_thousand=200", "firms.exit_rate=0.1")
    days = 730
    run = simulate(tmp_path / "b", "baseline", over, people=3000, days=days, seed=5)
    sim, dyn = run.sim, run.sim.get("firm_dynamics")
    n = sim.firms.n
    assert n == 600
    h = -np.expm1(np.log1p(-0.1) / 365.25)
    expected, sd = n * days * h, np.sqrt(n * days * h * (1 - h))
    assert abs(dyn.closed - expected) < 4 * sd, (dyn.closed, expected)
    assert all(validate_uscc(u) is None for u in sim.firms.uscc)
    assert sim.people.alive[sim.firms.legal_rep].all()
    assert ((sim.firms.compliance > 0) & (sim.firms.compliance < 1)).all()


def test_a_firm_with_an_open_case_or_record_does_not_close(simulate, tmp_path):
    """With an exit rate of 1 every firm free to close closes each day: those with an
    open court case or an item on display keep their code and representative, the
    others are founded anew (and start with a clean record)."""
    from credsim.modules import Day

    over = (*DEMOGRAPHY, "population.firms_per_thousand=100", "firms.exit_rate=1.0",
            "behaviours.firm_judgment_default.rate=2e-3", "court_list.enabled=true")
    run = simulate(tmp_path / "c", "credit-china", over, people=2000, days=60, seed=6)
    sim, dyn = run.sim, run.sim.get("firm_dynamics")
    firms, court, lists = sim.firms, sim.get("court_list"), sim.get("firm_lists")
    held = np.zeros(firms.n, dtype=bool)
    held[court.cases["who"][court.cases["is_firm"]]] = True
    held |= lists.items > 0
    assert 0 < held.sum() < firms.n
    before = firms.uscc.copy(), firms.legal_rep.copy()
    dyn.turn_over(Day(day=60, since=0))
    same = firms.uscc == before[0]
    assert same[held].all() and (firms.legal_rep[held] == before[1][held]).all()
    assert not same[~held].any()
    assert (lists.clean_since[~held] == 60).all() and (lists.rep == firms.legal_rep).all()
