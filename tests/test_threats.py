"""Insiders, audits and malicious informants paired with a run
without them by common random numbers."""

from __future__ import annotations

import numpy as np
import pytest

from credsim.engine import Simulation
from credsim.errors import InputError
from credsim.ledger import C_AUDIT, K_SCORE, K_WARNING, R_INSIDER
from credsim.scenario.load import load_scenario

N, DAYS, SEED = 8000, 90, 5
INSIDERS = ["threats.insiders_per_million=1000", "threats.insider_edit_rate=1"]


def _run(extra: list[str]) -> Simulation:
    sim = Simulation(load_scenario("rongcheng", extra, people=N, days=DAYS, seed=SEED))
    sim.run()
    return sim


@pytest.fixture(scope="module")
def base() -> Simulation:
    return _run([])


def _score_change(sim: Simulation, base: Simulation) -> np.ndarray:
    return sim["points"].score.astype(np.int64) - base["points"].score


def _ledger(sim: Simulation) -> dict[str, np.ndarray]:
    return {k: v[: sim.ledger.n] for k, v in sim.ledger.cols.items()}


def test_insiders_targeting_critics_lower_critics_scores_and_nobody_elses(base):
    sim = _run([*INSIDERS, "threats.insider_target='critics'"])
    critic = np.zeros(N, bool)
    critic[sim["threats"].critics] = True
    change = _score_change(sim, base)
    assert sum(r["insider_edits"] for r in sim.rows) > 100
    assert change[critic].mean() < -5
    assert np.count_nonzero(change[~critic]) == 0
    # Nobody else's behaviour moved either (a critic's may: edits deter them too).
    assert np.array_equal(sim["points"].score_true[~critic], base["points"].score_true[~critic])


def test_insiders_with_enemies_hit_only_their_enemies(base):
    sim = _run([*INSIDERS, "threats.insider_target='enemies'", "threats.enemies_per_insider=2"])
    enemy = np.zeros(N, bool)
    enemy[sim["threats"].enemies.ravel()] = True
    change = _score_change(sim, base)
    assert change[enemy].mean() < -20
    assert np.count_nonzero(change[~enemy]) == 0


def test_audits_catch_and_reverse_edits(base):
    plain = _run([*INSIDERS, "threats.insider_target='critics'"])
    audited = _run([*INSIDERS, "threats.insider_target='critics'", "threats.audit_prob=0.9",
                    "threats.audit_days=10"])
    critic = plain["threats"].critics
    assert sum(r["audit_catches"] for r in audited.rows) > 0
    fall_plain = _score_change(plain, base)[critic].mean()
    fall_audited = _score_change(audited, base)[critic].mean()
    assert fall_plain < fall_audited <= 0
    led = _ledger(audited)
    cause = led["cause"]
    reversals = (cause == C_AUDIT) & (led["kind"] == K_SCORE)
    assert reversals.any()
    assert np.all(led["record"][reversals] == R_INSIDER)
    assert np.all(led["delta"][reversals] > 0)


def test_ledger_explains_every_score_under_threats():
    sim = _run([*INSIDERS, "threats.insider_target='random'", "threats.audit_prob=0.5",
                "threats.audit_days=15", "threats.informant_rate=5e-4"])
    led = _ledger(sim)
    score_rows = (led["kind"] == K_SCORE) & (led["entity"] == 0)
    total = np.bincount(led["id"][score_rows], weights=led["delta"][score_rows], minlength=N)
    assert np.array_equal(sim["points"].params.initial + total.astype(np.int64),
                          sim["points"].score)
    labels = sim.ledger.channel_labels
    used = {labels[c] for c in np.unique(led["channel"][score_rows])}
    assert {"insider", "informant"} <= used


def test_malicious_informants_report_their_contacts(base):
    sim = _run(["threats.informant_rate=1e-3"])
    reports = sum(r["informant_reports"] for r in sim.rows)
    assert reports > 100
    led = _ledger(sim)
    informant = sim.ledger.channel_labels.index("informant")
    # Every report took effect, as a false record (a deduction, or a warning first).
    rows = (led["channel"] == informant) & np.isin(led["kind"], (K_SCORE, K_WARNING))
    assert rows.sum() == reports
    assert np.all(led["record"][rows] == 1)  # false
    targets = led["id"][rows]
    assert np.all(sim.people.age[targets] != 0)  # never a child
    assert np.all(sim.graph.degree(active_only=False)[targets] > 0)  # someone's contact


def test_review_strikes_insider_edits_too(base):
    plain = _run([*INSIDERS, "threats.insider_target='critics'"])
    reviewed = _run([*INSIDERS, "threats.insider_target='critics'",
                     "safeguards.review_capacity=1000000"])
    critic = plain["threats"].critics
    assert _score_change(reviewed, base)[critic].mean() > _score_change(plain, base)[critic].mean()


def test_a_threat_must_fabricate_a_deduction():
    with pytest.raises(InputError, match="threats.insider_behaviour"):
        load_scenario("rongcheng", ["threats.insiders_per_million=10",
                                    "threats.insider_behaviour='volunteering'"])
    with pytest.raises(InputError, match="threats.informant_behaviour"):
        load_scenario("baseline", ["threats.informant_rate=1e-3"])
