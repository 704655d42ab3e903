"""Term extensions of the court list (SPC provisions: extendable by 1-3 years)."""

from __future__ import annotations

import numpy as np
import pytest

from credsim.engine import Simulation
from credsim.errors import InputError
from credsim.ledger import C_EXPIRY, C_LISTING, K_LIST
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
