"""The closed form: with adaptation and feedback off, a points
score at day T is a compound sum of independent observed events, so its mean
and variance across citizens follow in closed form.

The expected rates are recomputed here from the people's traits and the
scenario, independently of the engine's own multiplier code. Given the
traits, person i's count of records of behaviour b is Poisson(T * lam_ib);
across people the score therefore has

    mean = initial + avg_i sum_b d_b T lam_ib
    var  = avg_i sum_b d_b^2 T lam_ib  +  var_i(sum_b d_b T lam_ib)

(law of total variance). Tolerances are 4 standard errors of the sample
mean and sample variance, the latter from the sample's fourth moment.
"""

from __future__ import annotations

import numpy as np
import pytest

from credsim.engine import Simulation
from credsim.scenario.load import load_scenario

N, T = 40_000, 150


def _scenario(**extra):
    overrides = [
        "adaptation.enabled=false", "feedback.enabled=false", "court_list.enabled=false",
        "gates={}",
        # A warning makes a deduction depend on the person's past: off, as adaptation is.
        "points.warn_max=0",
    ] + [f"{k}={v}" for k, v in extra.items()]
    return load_scenario("rongcheng", overrides, people=N, days=T, seed=11)


def _closed_form(sim: Simulation) -> tuple[float, float]:
    s, p = sim.scenario, sim.people
    adult = p.age != 0
    stress0 = sim.economy.stress0()
    groups = len(s.population.group_shares)

    def per_group(vals):
        return np.asarray(vals * groups if len(vals) == 1 else vals)

    drivers = {
        "noncompliance": 2.0 * (1.0 - p.compliance.astype(np.float64)),
        "voice": 2.0 * p.voice.astype(np.float64),
        "generosity": 2.0 * p.generosity.astype(np.float64),
        "none": np.ones(p.n),
    }
    mean_i = np.zeros(p.n)  # sum_b d_b T lam_ib
    second_i = np.zeros(p.n)  # sum_b d_b^2 T lam_ib
    for name, b in s.behaviours.items():
        d = s.points.deltas.get(name, 0)
        if d == 0 or b.actor != "person":
            continue
        ch = s.channels[b.channel]
        det = ch.detection * per_group(ch.detection_by_group)[p.group]
        lam = b.rate * drivers[b.driver] * (1.0 + b.stress_elasticity * stress0) * det
        # False records of this channel, shared among its person behaviours by base rate.
        same = [x for x in s.behaviours.values()
                if x.channel == b.channel and x.actor == "person" and x.rate > 0]
        share = b.rate / sum(x.rate for x in same)
        lam = lam + ch.false_rate * per_group(ch.false_rate_by_group)[p.group] * share
        lam = np.where(adult, lam, 0.0)
        mean_i += d * T * lam
        second_i += d * d * T * lam
    mean = s.points.initial + mean_i.mean()
    var = second_i.mean() + mean_i.var()
    return float(mean), float(var)


def _check(sim: Simulation) -> None:
    score = sim["points"].score.astype(np.float64)
    mean, var = _closed_form(sim)
    n = len(score)
    m4 = np.mean((score - score.mean()) ** 4)
    se_mean = np.sqrt(var / n)
    se_var = np.sqrt(max(m4 - var**2, 0.0) / n)
    assert abs(score.mean() - mean) < 4 * se_mean, (score.mean(), mean, se_mean)
    assert abs(score.var() - var) < 4 * se_var, (score.var(), var, se_var)


def test_points_mean_and_variance_match_closed_form():
    sim = Simulation(_scenario())
    sim.run()
    _check(sim)


def test_closed_form_holds_with_false_records_and_group_bias():
    # Raise false matches and their group bias so they matter to the total.
    sim = Simulation(_scenario(**{
        "channels.traffic_camera.false_rate": 2e-4,
        "channels.traffic_camera.false_rate_by_group": "[1.0, 4.0]",
        "channels.bank.detection_by_group": "[1.0, 0.5]",
    }))
    sim.run()
    _check(sim)


def test_closed_form_check_detects_a_wrong_rate():
    """The check has power: halving a behaviour's true rate moves the score outside it."""
    sim = Simulation(_scenario(**{"behaviours.traffic_violation.rate": 2e-3}))
    sim.run()
    sim.scenario.behaviours["traffic_violation"].rate = 1e-3  # the closed form now disagrees
    with pytest.raises(AssertionError):
        _check(sim)
