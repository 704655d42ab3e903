"""Each safeguard moves its measures in the expected direction, and none increases
wrongful sanctions.

Runs are paired by common random numbers: the same seed gives the same
candidate events, detections and false records with and without the lever,
so a difference is the lever's doing. Each claim is checked on three seeds.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from credsim.engine import Simulation
from credsim.observation import Records
from credsim.rng import counter_uniform, occurrence
from credsim.scenario.load import load_scenario

# Deductions decide who is sanctioned (a bank surcharge from grade B down), and
# false records are frequent, so every lever has something to act on.
POINTS_DRIVEN = [
    "court_list.enabled=false", "gates={}",
    "gates.loans.domain='finance'", "gates.loans.condition='grade<=B'",
    "gates.loans.effect='surcharge'", "gates.loans.use_rate=0.01",
    "gates.flights.domain='travel'", "gates.flights.condition='grade<=B'",
    "gates.flights.use_rate=0.01",
    "behaviours.traffic_violation.rate=2e-2", "channels.traffic_camera.detection=0.9",
    "channels.traffic_camera.false_rate=2e-3", "behaviours.utility_arrears.rate=2e-3",
    "channels.utilities.false_rate=5e-4", "points.deltas.traffic_violation=-15",
    "points.instant_grade={}",
]
SEEDS = (1, 2, 3)


def _run(extra: list[str], seed: int) -> dict[str, np.ndarray]:
    sim = Simulation(load_scenario("rongcheng", POINTS_DRIVEN + extra, people=6000, days=150,
                                   seed=seed))
    sim.run()
    keys = sim.rows[-1].keys()
    ts = {k: np.array([r[k] for r in sim.rows]) for k in keys}
    a = sim.gates.applications()
    gates = sim.gates.gates
    ts["applications"] = np.array([len(a["id"])])
    domains = np.array([g.domain for g in gates])[a["gate"]]
    ts["cross_domain"] = np.array([int(np.sum(a["trigger_domain"] != domains))])
    ts["min_delta"] = np.array([_min_delta(sim)])
    return ts


def _min_delta(sim: Simulation) -> int:
    led = sim.ledger.cols
    n = sim.ledger.n
    score = led["kind"][:n] == 0
    return int(led["delta"][:n][score].min()) if score.any() else 0


@pytest.fixture(scope="module")
def plain() -> dict[int, dict]:
    return {s: _run([], s) for s in SEEDS}


def _total(ts: dict, key: str) -> int:
    return int(ts[key].sum())


@pytest.mark.parametrize("seed", SEEDS)
def test_human_review_lowers_wrongful_sanctions(plain, seed):
    base = plain[seed]
    with_review = _run(["safeguards.review_capacity=20000"], seed)
    assert _total(base, "sanctioned_wrongful") > 0
    assert _total(with_review, "records_struck") > 0
    assert _total(with_review, "sanctioned_wrongful") < _total(base, "sanctioned_wrongful")
    share = _total(with_review, "sanctioned_wrongful") / max(_total(with_review, "sanctioned"), 1)
    assert share < _total(base, "sanctioned_wrongful") / _total(base, "sanctioned")


@pytest.mark.parametrize("seed", SEEDS)
def test_review_capacity_limits_what_review_can_do(seed):
    small = _run(["safeguards.review_capacity=300"], seed)  # two reviews a day
    large = _run(["safeguards.review_capacity=20000"], seed)
    assert _total(small, "records_reviewed") < _total(large, "records_reviewed")
    assert _total(small, "sanctioned_wrongful") > _total(large, "sanctioned_wrongful")


@pytest.mark.parametrize("seed", SEEDS)
def test_notice_lets_people_strike_false_records_and_delays_sanctions(plain, seed):
    base = plain[seed]
    noticed = _run(["safeguards.notice_days=30"], seed)
    assert _total(noticed, "records_struck") > 0
    assert _total(noticed, "sanctioned_wrongful") < _total(base, "sanctioned_wrongful")
    # Nothing takes effect in the notice period: no one is sanctioned in the first 30 days.
    assert noticed["sanctioned"][:30].sum() == 0 < base["sanctioned"][:30].sum()


@pytest.mark.parametrize("seed", SEEDS)
def test_expiry_of_marks_shortens_sanctions(plain, seed):
    base = plain[seed]
    expiring = _run(["safeguards.expiry_days=30"], seed)
    assert _total(expiring, "marks_expired") > 0
    assert _total(expiring, "sanctioned") < _total(base, "sanctioned")
    assert expiring["grade_A"][-1] > base["grade_A"][-1]


@pytest.mark.parametrize("seed", SEEDS)
def test_proportionality_cap_bounds_every_deduction(plain, seed):
    base = plain[seed]
    capped = _run(["safeguards.proportionality_cap=5"], seed)
    assert base["min_delta"][0] < -5 <= capped["min_delta"][0]
    assert _total(capped, "sanctioned") < _total(base, "sanctioned")


@pytest.mark.parametrize("seed", SEEDS)
def test_domain_separation_removes_cross_context_sanctions(plain, seed):
    base = plain[seed]
    separated = _run(["safeguards.domain_separation=true"], seed)
    assert base["cross_domain"][0] > 0
    assert separated["cross_domain"][0] == 0
    assert separated["applications"][0] < base["applications"][0]
    # Finance deductions still reach the finance gate.
    assert _total(separated, "gate_loans") > 0
    assert _total(separated, "gate_flights") == 0


def test_no_safeguard_changes_the_events_themselves(plain):
    """Common random numbers: the levers act after behaviour, so true events agree on
    day 0 (before any consequence can feed back)."""
    for extra in (["safeguards.review_capacity=20000"], ["safeguards.notice_days=30"],
                  ["safeguards.domain_separation=true"]):
        other = _run(extra, SEEDS[0])
        assert other["events_true"][0] == plain[SEEDS[0]]["events_true"][0]


@pytest.mark.parametrize("lever", [
    "safeguards.review_capacity=20000", "safeguards.notice_days=30",
    "safeguards.expiry_days=30", "safeguards.proportionality_cap=5",
    "safeguards.domain_separation=true",
])
def test_no_safeguard_increases_wrongful_sanctions(plain, lever):
    """No safeguard increases wrongful sanctions in expectation, over the paired seeds."""
    with_lever = sum(_total(_run([lever], s), "sanctioned_wrongful") for s in SEEDS)
    without = sum(_total(plain[s], "sanctioned_wrongful") for s in SEEDS)
    assert with_lever <= without


@given(st.lists(st.integers(0, 5), max_size=60))
def test_occurrence_counts_the_earlier_entries_with_the_same_key(keys):
    got = occurrence(np.array(keys, dtype=np.uint64))
    assert got.tolist() == [keys[:i].count(k) for i, k in enumerate(keys)]


def test_records_with_the_same_identity_draw_apart():
    """Two records of one behaviour against one person on one day are reviewed and
    contested on draws of their own, not on one shared draw."""
    sim = Simulation(load_scenario("safeguarded", people=1000, days=1))
    sg = sim["safeguards"]
    twice = Records(np.array([7, 7, 7, 8], np.int32), np.array([2, 2, 2, 2], np.int16),
                    np.ones(4, bool), np.zeros(4, bool), np.zeros(4, np.uint8))
    u = sg._u("contest", 3, twice)
    assert len(set(u[:3].tolist())) == 3
    # The first record of an identity keeps the plain key (day << 36 | person << 8 |
    # behaviour); the k-th further one adds k << 52.
    plain = np.array([(3 << 36) | (7 << 8) | 2, (3 << 36) | (8 << 8) | 2], np.uint64)
    assert u[[0, 3]].tolist() == counter_uniform(sg.keys["contest"], 3, plain).tolist()
    second = plain[:1] | np.uint64(1 << 52)
    assert u[1] == counter_uniform(sg.keys["contest"], 3, second)[0]
