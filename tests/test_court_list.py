"""Term extensions of the court list (SPC provisions: extendable by 1-3 years), and how the
cases of debtors unable to pay end (SPC provisions, art. 10)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from credsim.engine import Simulation
from credsim.errors import InputError
from credsim.ledger import C_DEATH, C_EXPIRY, C_LISTING, C_NO_ASSETS, C_SETTLEMENT, K_LIST
from credsim.scenario.load import load_scenario

FAST = [
    "behaviours.judgment_default.rate=2e-3", "court_list.grace_days=5",
    "court_list.term_days=30", "court_list.pay_hazard=0.0005",
    "court_list.other_grounds_share=1.0",
]


def _list_rows(extra: list[str]) -> dict[str, np.ndarray]:
    sim = Simulation(load_scenario("court-blacklist", FAST + extra, people=4000, days=300,
                                   seed=2))
    sim.run()
    n = sim.ledger.n
    rows = {k: v[:n] for k, v in sim.ledger.cols.items()}
    sel = (rows["kind"] == K_LIST) & (rows["entity"] == 0)
    return {k: v[sel] for k, v in rows.items()}


def test_without_extensions_fixed_terms_end_on_time():
    rows = _list_rows(["court_list.extension_prob=0"])
    assert np.sum(rows["cause"] == C_EXPIRY) > 20


def test_an_extended_term_runs_a_year_longer():
    rows = _list_rows(["court_list.extension_prob=1", "court_list.extension_years=[1, 1]"])
    assert np.sum(rows["cause"] == C_LISTING) > 20
    # Every fixed term is extended by a year: nothing listed in a 300-day run can expire
    # (30-day term + 365 days).
    assert np.sum(rows["cause"] == C_EXPIRY) == 0


def test_extension_range_is_checked():
    with pytest.raises(InputError, match="court_list.extension_years"):
        load_scenario("court-blacklist", ["court_list.extension_years=[3, 1]"])


# ------------------------------------------------ how cases of unable debtors end

ENDS = {"court_list.no_assets_hazard": 0.01, "court_list.settlement_hazard": 0.004,
        "court_list.death_hazard": 0.004, "court_list.no_assets_delist_days": 40}
NO_ENDS = {"court_list.no_assets_hazard": 0, "court_list.settlement_hazard": 0,
           "court_list.death_hazard": 0}


def _sim(over: dict, days: int = 300, seed: int = 4) -> Simulation:
    sets = FAST + [f"{k}={v}" for k, v in over.items()]
    return Simulation(load_scenario("court-blacklist", sets, people=4000, days=days, seed=seed))


def test_unable_debtors_cases_end_at_the_hazards_set():
    """Each day an open, unscheduled case of an unable debtor dies (persons only), settles or
    is terminated for this time with the probabilities set: the counts are binomial in the
    case-days at risk."""
    sim = _sim({**ENDS, "court_list.other_grounds_share": 0.5})
    court, end_unable = sim["court_list"], sim["court_list"]._end_unable
    at_risk = {"person": 0, "all": 0}
    ended = dict.fromkeys(court.ends_today, 0)

    def counting(day, listed, closed):
        c = court.cases
        risk = ~closed & (~c["listable"] | c["has_term"]) & (c["delist_at"] < 0)
        at_risk["person"] += int((risk & ~c["is_firm"]).sum())
        at_risk["all"] += int(risk.sum())
        out = end_unable(day, listed, closed)
        for cause, k in court.ends_today.items():
            ended[cause] += k
        return out

    court._end_unable = counting
    sim.run()
    for cause, n, h in ((C_DEATH, at_risk["person"], ENDS["court_list.death_hazard"]),
                        (C_SETTLEMENT, at_risk["all"], ENDS["court_list.settlement_hazard"]),
                        (C_NO_ASSETS, at_risk["all"], ENDS["court_list.no_assets_hazard"])):
        mean, sd = n * h, math.sqrt(n * h * (1 - h))
        assert mean > 100, (cause, n)  # enough events for the normal approximation
        assert abs(ended[cause] - mean) < 4 * sd, (cause, ended[cause], mean, sd)


def test_closed_cases_no_longer_accumulate():
    """Without the hazards the cases of unable debtors stay open and their number grows for
    ever; with them it levels off (at inflow / hazard)."""
    def unable_open(over: dict) -> np.ndarray:
        sim = _sim({**over, "court_list.other_grounds_share": 0.0}, days=400)  # never listed
        counts: list[int] = []

        def count(day: int) -> None:
            c = sim["court_list"].cases
            counts.append(int(np.sum((~c["listable"] | c["has_term"]) & (c["delist_at"] < 0))))

        sim.run(on_day=count)
        return np.array(counts)

    ends, kept = unable_open(ENDS), unable_open(NO_ENDS)
    assert kept[-1] > 1.6 * kept[199]  # still growing
    # Levelled off: the mean time to an end is 1 / 0.018 = 56 days, well within 200 days.
    assert ends[-1] < 1.2 * ends[199]
    assert ends[-1] < kept[-1] / 3


def test_new_delistings_have_their_own_causes_and_delays():
    """A listing of an unable debtor ends by settlement, death (after the payment delay) or
    termination for this time (after no_assets_delist_days); each writes its own cause, and
    initial + deltas = final for every person."""
    sim = _sim({**ENDS, "court_list.other_grounds_share": 1.0,
                "court_list.term_days": 1000})
    sim.run()
    n = sim.ledger.n
    rows = {k: v[:n] for k, v in sim.ledger.cols.items()}
    sel = (rows["kind"] == K_LIST) & (rows["entity"] == 0)
    rows = {k: v[sel] for k, v in rows.items()}
    counts = {c: int(np.sum(rows["cause"] == c)) for c in (C_SETTLEMENT, C_DEATH, C_NO_ASSETS)}
    assert min(counts.values()) > 5, counts
    assert np.sum(rows["cause"] == C_EXPIRY) == 0  # no term ends within the run
    final = sim["court_list"].n_list_true + sim["court_list"].n_list_false
    assert np.array_equal(np.bincount(rows["id"], weights=rows["delta"], minlength=len(final)),
                          final)
    # Every termination's delisting comes at least no_assets_delist_days + 1 after listing
    # (a case is terminated the day after its listing at the earliest).
    lag = ENDS["court_list.no_assets_delist_days"]
    for i in np.flatnonzero(rows["cause"] == C_NO_ASSETS)[:50]:
        who, day = rows["id"][i], rows["day"][i]
        listed = rows["day"][(rows["id"] == who) & (rows["delta"] > 0) & (rows["day"] <= day)]
        assert listed.min() + lag + 1 <= day


def test_the_sum_of_the_end_hazards_is_checked():
    with pytest.raises(InputError, match="no_assets_hazard"):
        load_scenario("court-blacklist", ["court_list.no_assets_hazard=0.7",
                                          "court_list.settlement_hazard=0.4"])


def test_a_fulfilled_settlement_counts_as_a_payment():
    """With no other payment and no other end, the day's payments are its settlements."""
    sim = _sim({**NO_ENDS, "court_list.settlement_hazard": 0.01, "court_list.pay_hazard": 0},
               days=120)
    settled: list[int] = []
    sim.run(on_day=lambda day: settled.append(sim["court_list"].ends_today[C_SETTLEMENT]))
    payments = [r["payments"] for r in sim.rows]
    assert sum(settled) > 50
    assert payments == settled


def test_two_cases_against_one_debtor_on_one_day_draw_apart():
    """Cases are keyed by (day, debtor); a second case opened the same day against the
    same debtor carries its ordinal, so its fate is drawn apart from the first's."""
    from credsim.observation import Records

    sim = Simulation(load_scenario("court-blacklist", people=2000, days=1))
    court = sim["court_list"]
    b = int(court.triggers[0])
    twice = Records(np.array([5, 5, 9], np.int32), np.full(3, b, np.int16),
                    np.ones(3, bool), np.zeros(3, bool), np.zeros(3, np.uint8))
    court._open(twice, 4)
    keys = court.cases["key"][-3:]
    assert len(set(keys.tolist())) == 3
    assert keys[0] == (4 << 33) | 5  # the first case keeps its plain key


def test_a_legal_representatives_listing_deduction_carries_their_listings_cause(tmp_path):
    """The points deduction for a listing carries the listing's cause: a debtor's own
    listing (court_listing) or a firm's reaching its legal representative
    (legal_rep_of_listed_firm), and refers to that listing."""
    import pyarrow.parquet as pq

    from credsim.results import run_dir

    s = load_scenario("rongcheng", ["behaviours.firm_judgment_default.rate=0.01"],
                      people=4000, days=200)
    out = tmp_path / "run"
    tmp = run_dir.prepare(out)
    run_dir.simulate(s, tmp)
    run_dir.commit(tmp, out)
    led = pq.read_table(out / "ledger.parquet").to_pydict()
    kinds, causes, refs = led["kind"], led["cause"], led["ref"]
    seen = set()
    for i, (k, c, r) in enumerate(zip(kinds, causes, refs, strict=True)):
        if k == "score" and r >= 0 and kinds[r] == "list":
            assert c == causes[r], (i, c, causes[r])
            seen.add(c)
    assert seen == {"court_listing", "legal_rep_of_listed_firm"}
