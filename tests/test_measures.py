"""The harm audit's measures against small cases computed by hand.

A run folder is written by hand (manifest and five tiny tables) so that every
expected value can be worked out on paper; one real run checks the command
line and the agreement with the time series.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from credsim.audit.measures import compute, gini
from credsim.errors import InputError
from credsim.results.run_dir import FORMAT_VERSION
from credsim.scenario.load import load_scenario

DAYS = 4
GATES = ("flights", "bank_loans", "aaa_perks")


def _by_key(measures) -> dict[tuple[str, str], float | None]:
    return {(m.measure, m.key): m.value for m in measures}


def _write(folder: Path, name: str, cols: dict) -> None:
    pq.write_table(pa.table(cols), folder / f"{name}.parquet")


@pytest.fixture()
def hand_run(tmp_path) -> Path:
    """Eight people: six adults (ids 0-5; group 0: 0-3, group 1: 4-5) and two children
    (6, 7; parent1 = 0 and 4). Four days."""
    s = load_scenario("rongcheng", ["gates={}"], people=100, days=DAYS)
    scen = s.model_dump(mode="json")
    scen["gates"] = {
        "flights": {"domain": "travel", "provider": "", "condition": "listed",
                    "effect": "deny", "use_rate": 0.01, "income_driven": False,
                    "loss_days": 2.0, "reaches_children": False},
        "bank_loans": {"domain": "finance", "provider": "", "condition": "grade<=C",
                       "effect": "surcharge", "use_rate": 0.01, "income_driven": False,
                       "loss_days": 45.0, "reaches_children": False},
        "aaa_perks": {"domain": "consumption", "provider": "", "condition": "grade>=AA",
                      "effect": "perk", "use_rate": 0.01, "income_driven": False,
                      "loss_days": -0.2, "reaches_children": False},
    }
    run = tmp_path / "hand"
    run.mkdir()
    manifest = {"format_version": FORMAT_VERSION, "complete": True, "scenario": scen,
                "scenario_name": "hand", "people": 8, "adults": 6, "days": DAYS, "firms": 0,
                "tables": ["timeseries", "ledger", "people", "firms", "sanctions"],
                "score_assortativity": {"points": 0.25}}
    (run / "manifest.json").write_text(json.dumps(manifest))
    # Sanctioned people per day: group 0 has 1, 1, 2, 2 (wrongful 0, 1, 1, 1);
    # group 1 has 1, 1, 1, 1 (wrongful 1, 1, 1, 1).
    ts = {
        "day": list(range(DAYS)),
        "sanctioned": [2, 2, 3, 3], "sanctioned_wrongful": [1, 2, 2, 2],
        "sanctioned_group0": [1, 1, 2, 2], "sanctioned_wrongful_group0": [0, 1, 1, 1],
        "sanctioned_group1": [1, 1, 1, 1], "sanctioned_wrongful_group1": [1, 1, 1, 1],
        "listed": [1, 1, 2, 2], "new_listings": [1, 0, 1, 0],
        "gate_flights": [1, 0, 1, 0], "gate_bank_loans": [0, 1, 1, 0],
        "gate_aaa_perks": [2, 0, 0, 0],
        "voice_events": [4, 0, 0, 4], "ties_dropped": [0, 2, 0, 0],
        "events_court": [1, 0, 0, 1], "events_finance": [0, 0, 0, 0],
        "events_traffic": [3, 3, 3, 3],
        "records_false": [0] * DAYS, "new_firm_listings": [0] * DAYS, "payments": [0] * DAYS,
    }
    for g, n in zip(("AAA", "AA", "A", "B", "C", "D"), (0, 1, 3, 0, 2, 0), strict=True):
        ts[f"grade_{g}"] = [n] * DAYS
    _write(run, "timeseries", ts)
    # Scores: person 1 loses 50 to a false record on day 0 and gets 30 back on day 2
    # (not yet recovered); person 2 loses 20 to an insider edit on day 1 and is back
    # on day 3 (recovered after 2 days). Person 3 falls to C on day 2.
    _write(run, "ledger", {
        "day": [0, 1, 2, 2, 3], "entity": ["person"] * 5, "id": [1, 2, 1, 3, 2],
        "kind": ["score", "score", "score", "grade", "score"],
        "cause": ["x"] * 5, "channel": ["-"] * 5,
        "record": ["false", "insider", "true", "true", "true"],
        "delta": [-50, -20, 30, 2, 25], "value": [950, 980, 980, 4, 1005],
        "ref": [-1] * 5,  # later additions, not reversals: no entry ends another
    })
    _write(run, "people", {
        "id": list(range(8)), "group": [0, 0, 0, 0, 1, 1, 0, 1],
        "age_band": ["adult"] * 6 + ["child"] * 2,
        "score": [1000, 980, 1005, 700, 1000, 1040, 1000, 1000],
        "grade": ["A", "A", "A", "C", "C", "AA", "A", "A"],
        "savings": [0.0, 1.0, 1.0, 1.0, 1.0, 2.0, 0.0, 0.0],
        "voice": [0.1, 0.2, 0.3, 0.4, 0.5, 0.9, 0.0, 0.0],
        "contacts": [3, 2, 2, 1, 4, 0, 0, 0],
        "school": ["none"] * 6 + ["lost_private_place", "private"],
        "parent1": [-1] * 6 + [0, 4], "listings": [0, 0, 0, 1, 1, 0, 0, 0],
        # Columns the other readers need; the measures do not depend on them.
        "household": list(range(8)), "region": [0] * 8, "parent2": [-1] * 8,
        "sanctioned": [False] * 8, "sanctioned_wrongful": [False] * 8,
        "score_true": [1000] * 8, "grade_true": ["A"] * 8, "listings_false": [0] * 8,
        "ever_listed": [False] * 3 + [True] * 2 + [False] * 3,
    })
    _write(run, "firms", {"id": pa.array([], pa.int32()), "uscc": pa.array([], pa.string()),
                          "legal_rep": pa.array([], pa.int32()),
                          "region": pa.array([], pa.int32()),
                          "sector": pa.array([], pa.string()),
                          "listed": pa.array([], pa.uint8())})
    # Five sanction applications, one perk: two outside their trigger's domain; the
    # bank_loans ones (45 days of income) exceed a 30-day bound.
    _write(run, "sanctions", {
        "day": [0, 1, 2, 2, 3, 0], "id": [3, 4, 3, 4, 3, 5],
        "gate": ["flights", "bank_loans", "flights", "bank_loans", "bank_loans", "aaa_perks"],
        "effect": ["sanction"] * 5 + ["perk"],
        "gate_domain": ["travel", "finance", "travel", "finance", "finance", "consumption"],
        "trigger_domain": ["court", "finance", "court", "finance", "finance", "none"],
        "wrongful": [False, True, False, True, True, False],
    })
    return run


def test_wrongful_shares_and_disparate_impact_by_hand(hand_run):
    m = _by_key(compute(hand_run))
    assert m["wrongful_share", ""] == pytest.approx(7 / 10)
    assert m["wrongful_share", "group=0"] == pytest.approx(3 / 6)
    assert m["wrongful_share", "group=1"] == pytest.approx(4 / 4)
    # Adult person-days: group 0 has 4 adults x 4 days, group 1 has 2 x 4.
    assert m["sanction_rate", "group=0"] == pytest.approx(6 / 16)
    assert m["sanction_rate", "group=1"] == pytest.approx(4 / 8)
    assert m["sanction_impact_ratio", "group=0"] == pytest.approx(1.0)
    assert m["sanction_impact_ratio", "group=1"] == pytest.approx((6 / 16) / (4 / 8))
    assert m["sanction_four_fifths_flag", "group=1"] == 1.0  # 0.75 < 0.8
    assert m["sanction_four_fifths_flag", "group=0"] == 0.0


def test_no_sanction_in_any_group_leaves_impact_ratios_undefined(hand_run, tmp_path):
    """Nobody sanctioned anywhere is no evidence of parity: the ratios and flags are n/a."""
    run = tmp_path / "run"
    shutil.copytree(hand_run, run)
    ts = pq.read_table(run / "timeseries.parquet").to_pydict()
    for col in ("sanctioned", "sanctioned_wrongful", "sanctioned_group0", "sanctioned_group1",
                "sanctioned_wrongful_group0", "sanctioned_wrongful_group1"):
        ts[col] = [0] * len(ts["day"])
    _write(run, "timeseries", ts)
    m = _by_key(compute(run))
    for g in ("group=0", "group=1"):
        assert m["sanction_rate", g] == 0.0
        assert m["sanction_impact_ratio", g] is None
        assert m["sanction_four_fifths_flag", g] is None
        assert m["sanction_impact_ratio_low", g] is m["sanction_impact_ratio_high", g] is None
        assert m["sanction_four_fifths", g] is None


def test_sanctions_and_listings_per_million_per_year_by_hand(hand_run):
    m = _by_key(compute(hand_run))
    year = 365 / DAYS
    assert m["sanctions_per_million", "gate=flights"] == pytest.approx(2 * year / 8 * 1e6)
    assert m["perks_per_million", "gate=aaa_perks"] == pytest.approx(2 * year / 8 * 1e6)
    assert m["listed_per_million", ""] == pytest.approx(6 / DAYS / 8 * 1e6)
    assert m["new_listings_per_million", ""] == pytest.approx(2 * year / 8 * 1e6)
    assert m["sanctioned_person_days_per_million", ""] == pytest.approx(10 / 32 * 1e6)


def test_cross_context_and_proportionality_by_hand(hand_run):
    m = _by_key(compute(hand_run))
    assert m["cross_context_share", ""] == pytest.approx(2 / 5)
    assert m["disproportionate_share", ""] == pytest.approx(3 / 5)
    m = _by_key(compute(hand_run, bound_days=60))
    assert m["disproportionate_share", ""] == 0.0


def test_spirals_recovery_and_stratification_by_hand(hand_run):
    m = _by_key(compute(hand_run))
    assert m["grade_transition", "A->C"] == pytest.approx(2 / 6)
    assert m["grade_transition", "A->AA"] == pytest.approx(1 / 6)
    assert m["fall_to_c_within_year", ""] == pytest.approx(1 / 6)
    assert m["wrongful_marks", ""] == 2
    assert m["recovered_share", ""] == pytest.approx(1 / 2)
    assert m["recovery_days_median", ""] == pytest.approx(2)
    assert m["gini_savings", ""] == pytest.approx(gini(np.array([0, 1, 1, 1, 1, 2.0])))
    # Child 6 (parent 0, grade A) lost a private place; child 7 (parent 4, C) kept it.
    assert m["private_school_lost_share", "parent=A"] == 1.0
    assert m["private_school_lost_share", "parent=C"] == 0.0


def _without_system(run: Path) -> None:
    """Switch every system off in the manifest of `run`, as in a baseline run."""
    mf = json.loads((run / "manifest.json").read_text())
    for system in ("points", "court_list", "composite", "rating", "firm_lists"):
        mf["scenario"][system]["enabled"] = False
    mf["scenario"]["gates"] = {}
    (run / "manifest.json").write_text(json.dumps(mf))


def test_chilling_and_benefits_by_hand(hand_run, tmp_path):
    m = _by_key(compute(hand_run))
    assert m["voice_per_1000_person_days", ""] == pytest.approx(8 / 32 * 1e3)
    assert m["ties_dropped_per_1000", ""] == pytest.approx(2 / 8 * 1e3)
    # Critics: voice at or above the 90th percentile of adults' voice (person 5 only,
    # who has no tie outside the family).
    assert m["isolated_critics_share", ""] == 1.0
    assert m["score_assortativity", "system=points"] == 0.25
    assert m["true_event_rate", "domain=traffic"] == pytest.approx(12 / 24 * 1e3)
    # Against a baseline with twice the traffic events and the same voice.
    base = tmp_path / "base"
    base.mkdir()
    for f in hand_run.iterdir():
        (base / f.name).write_bytes(f.read_bytes())
    ts = pq.read_table(base / "timeseries.parquet").to_pydict()
    ts["events_traffic"] = [6] * DAYS
    _write(base, "timeseries", ts)
    _without_system(base)
    m = _by_key(compute(hand_run, base))
    assert m["true_events_vs_baseline", "domain=traffic"] == pytest.approx(0.5)
    assert m["voice_vs_baseline", ""] == pytest.approx(1.0)


def test_gini_by_hand():
    assert gini(np.array([1.0, 1.0, 1.0])) == 0.0
    assert gini(np.array([0.0, 0.0, 0.0, 4.0])) == pytest.approx(0.75)
    assert gini(np.array([-1.0, -1.0, 3.0])) == pytest.approx(gini(np.array([0, 0, 4.0])))


def test_a_baseline_of_another_society_is_refused(hand_run, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for f in hand_run.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    _without_system(other)
    compute(hand_run, other)  # the same society without the system: accepted
    mf = json.loads((other / "manifest.json").read_text())
    mf["scenario"]["run"]["seed"] += 1
    (other / "manifest.json").write_text(json.dumps(mf))
    with pytest.raises(InputError, match="same people, days and seed") as err:
        compute(hand_run, other)
    assert "seed: " in str(err.value) and "population" not in str(err.value).split(";", 1)[1]


@pytest.mark.parametrize(("change", "named"), [
    (lambda mf: mf["scenario"]["population"].update(group_shares=[0.5, 0.5]),
     "population.group_shares"),
    (lambda mf: mf["scenario"]["graph"].update(mean_degree=3.0), "graph.mean_degree"),
    (lambda mf: mf["scenario"]["points"].update(enabled=True),
     "the baseline runs a system (points)"),
])
def test_a_baseline_that_is_not_the_same_society_is_refused_naming_what_differs(
        hand_run, tmp_path, change, named):
    """A rongcheng run audited against a sesame run (a system at work) or a society of
    another population or graph is refused, and the message says why (another size:
    test_cli's summary test and the seed test above)."""
    other = tmp_path / "other"
    shutil.copytree(hand_run, other)
    _without_system(other)
    mf = json.loads((other / "manifest.json").read_text())
    change(mf)
    (other / "manifest.json").write_text(json.dumps(mf))
    with pytest.raises(InputError) as err:
        compute(hand_run, other)
    assert named in str(err.value)


def test_audit_command_writes_measures_that_match_the_time_series(cli, busy_run):
    r = cli("audit", str(busy_run.path))
    assert r.returncode == 0, r.stderr
    assert "wrongful_share" in r.stdout and "measures.parquet" in r.stdout
    t = pq.read_table(busy_run.path / "measures.parquet").to_pydict()
    got = {(m, k): v for m, k, v in zip(t["measure"], t["key"], t["value"], strict=True)}
    ts = pq.read_table(busy_run.path / "timeseries.parquet").to_pydict()
    assert got["wrongful_share", ""] == pytest.approx(
        sum(ts["sanctioned_wrongful"]) / sum(ts["sanctioned"]))
    # The groups' sanctioned person-days add up to everyone's.
    groups = [k for k in ts if k.startswith("sanctioned_group")]
    assert sum(sum(ts[k]) for k in groups) == sum(ts["sanctioned"]) > 0
    assert not list(busy_run.path.glob(".measures*")), "no temporary file left"


def test_audit_of_a_missing_folder_fails_cleanly(cli, tmp_path):
    r = cli("audit", str(tmp_path / "nope"))
    assert r.returncode == 2 and "no such run folder" in r.stderr


# Small populations: counts that round to zero ------------------------------------------

ROUNDS_TO_ZERO = {
    # the shipped preset's 50 insiders per million are 0.25 people at 5,000
    "safeguarded_insiders": ("safeguarded", ()),
    "insiders": ("rongcheng", ("threats.insiders_per_million=50",)),
    "insiders_with_informants": ("rongcheng", ("threats.insiders_per_million=50",
                                               "threats.informant_rate=1e-4")),
    "colluders": ("rongcheng", ("threats.colluders_per_million=50",)),
    "no_firms": ("rongcheng", ("population.firms_per_thousand=0",)),
    "no_children": ("rongcheng", ("population.household_size_mean=1",)),
    "no_gates": ("rongcheng", ("gates={}",)),
    "no_system": ("baseline", ()),
}


@pytest.mark.parametrize("case", sorted(ROUNDS_TO_ZERO))
def test_small_populations_where_counts_round_to_zero(simulate, tmp_path, case):
    """Every reader works on a run whose insiders, colluders, firms, children or gates
    are none; the insider measures then say no edits were made."""
    from typer.testing import CliRunner

    from credsim.audit.report import write_report
    from credsim.cli import app

    source, overrides = ROUNDS_TO_ZERO[case]
    run = simulate(tmp_path / "run", source, overrides, people=5000, days=30).path
    m = _by_key(compute(run))
    s = load_scenario(source, list(overrides), people=5000, days=30)
    if s.threats.insiders_per_million > 0:
        assert m["insider_edits", ""] == 0
        assert m["audit_catch_share", ""] is None
        assert m["insider_reach_points", ""] is None
    assert write_report(run).is_file()
    for args in (("summary",), ("audit",), ("calibrate",), ("lookup", "0"),
                 ("query", "select count(*) from firms")):
        r = CliRunner().invoke(app, [args[0], str(run), *args[1:]])
        assert r.exception is None or isinstance(r.exception, SystemExit), (args, r.exception)
        # calibrate refuses, with one message, a run that has no court list
        assert r.exit_code == 0 or (args[0] == "calibrate" and not s.court_list.enabled
                                    and "no court list" in r.stderr), (args, r.stderr)


# Wrongful rate first; impact ratios with their n and interval ---------------------------

def test_wrongful_rate_per_million_person_days_by_hand_and_before_the_share(hand_run):
    ms = compute(hand_run)
    m = _by_key(ms)
    # 7 wrongful sanctioned person-days of 8 people x 4 days; per group, of all people in
    # the group (group 0: 5 people, group 1: 3, children included) x 4 days.
    assert m["wrongful_person_days_per_million", ""] == pytest.approx(7 / 32 * 1e6)
    assert m["wrongful_person_days_per_million", "group=0"] == pytest.approx(3 / 20 * 1e6)
    assert m["wrongful_person_days_per_million", "group=1"] == pytest.approx(4 / 12 * 1e6)
    order = [x.measure for x in ms]
    assert order.index("wrongful_person_days_per_million") < order.index("wrongful_share")


def test_impact_ratio_n_interval_and_verdict_by_hand(hand_run):
    from credsim.audit.measures import FLAGGED, INCONCLUSIVE, NOT_FLAGGED, katz_interval

    m = _by_key(compute(hand_run))
    assert m["sanction_impact_n", "group=0"] == 4 and m["sanction_impact_n", "group=1"] == 2
    # Group 0 is the least burdened: mean sanctioned a day 6/4 of 4 adults; group 1: 4/4 of 2.
    ratio, lo, hi = katz_interval(6 / 4, 4, 4 / 4, 2)
    assert ratio == pytest.approx(0.75)
    se = math.sqrt(1 / 1.5 - 1 / 4 + 1 / 1 - 1 / 2)
    assert lo == pytest.approx(0.75 * math.exp(-1.959964 * se))
    assert hi == pytest.approx(0.75 * math.exp(1.959964 * se))
    assert m["sanction_impact_ratio_low", "group=1"] == pytest.approx(lo)
    assert m["sanction_impact_ratio_high", "group=1"] == pytest.approx(hi)
    assert m["sanction_impact_ratio_low", "group=0"] == m["sanction_impact_ratio_high",
                                                          "group=0"] == 1.0
    # Six adults cannot show more: 0.75 is below 0.8 but the interval spans it.
    assert m["sanction_four_fifths_flag", "group=1"] == 1.0
    assert m["sanction_four_fifths", "group=1"] == INCONCLUSIVE
    assert m["sanction_four_fifths", "group=0"] == NOT_FLAGGED
    assert FLAGGED == 2.0


def test_four_fifths_verdict_needs_the_whole_interval():
    from credsim.audit.measures import four_fifths_verdict as v

    assert v(0.5, 0.79) == 2.0 and v(0.5, 0.81) == 1.0 and v(0.8, 1.2) == 0.0
    assert v(None, None) is None


def test_katz_interval_coverage_is_95_percent():
    """Draws of two binomial groups: the share of 95 % intervals that hold the true ratio
    lies within 3 standard errors of 0.95, the standard error being that of a share of
    `draws` Bernoulli(0.95) outcomes."""
    from credsim.audit.measures import katz_interval

    rng = np.random.default_rng(20261202)
    draws = 20_000
    for n_ref, p_ref, n, p in ((2000, 0.05, 600, 0.08), (10_000, 0.01, 1500, 0.02),
                               (400, 0.3, 400, 0.3)):
        x_ref, x = rng.binomial(n_ref, p_ref, draws), rng.binomial(n, p, draws)
        _, lo, hi = katz_interval(x_ref, n_ref, x, n)
        truth = p_ref / p
        coverage = np.mean((lo <= truth) & (truth <= hi))
        tolerance = 3 * math.sqrt(0.95 * 0.05 / draws)
        assert abs(coverage - 0.95) <= tolerance, (n_ref, p_ref, n, p, coverage)


def test_summary_and_audit_give_the_same_figures_under_the_same_units(busy_run):
    """`summary` and `audit` agree: every headline figure that is also a measure has the
    audit's value and unit (flows per year, stocks and person-days as labelled)."""
    from credsim.results.summary import summarize

    audit = {(m.measure, m.key): m for m in compute(busy_run.path)}
    _, figures = summarize(busy_run.path)
    shared = [f for f in figures if (f.measure, f.key) in audit]
    assert {"new_listings_per_million", "listed_per_million", "sanctions_per_million",
            "wrongful_person_days_per_million"} <= {f.measure for f in shared}
    for f in shared:
        m = audit[f.measure, f.key]
        assert f.unit == m.unit and f.name == m.label, f
        assert f.value == pytest.approx(m.value), f
    assert figures[0].measure == "wrongful_person_days_per_million"
