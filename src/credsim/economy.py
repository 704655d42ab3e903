"""Savings and economic stress, updated lazily.

Savings drift back towards a buffer at a fixed share of income, a rule that
is deterministic between shocks, so a person's savings are brought up to
date only when something touches them: the daily loop never sweeps everyone.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from credsim.modules import Module


class Economy(Module):
    """Savings and stress of everyone; other modules charge and read them."""

    kind = "economy"
    build_order = 0

    def __init__(self, sim) -> None:
        super().__init__(sim)
        people, feedback = sim.people, sim.scenario.feedback
        self.enabled = feedback.enabled
        # Daily income and the savings buffer are income times a constant: derived
        # on demand rather than stored, to keep per-person memory small.
        self.income = people.income
        self.buffer_factor = float(feedback.buffer_months) / 12.0
        self.recovery = np.float32(feedback.recovery)
        self.savings = people.savings  # shared with People: its final value is the result
        # The day each person's savings were last brought up to date.
        self.updated = np.zeros(people.n, dtype=np.int16)
        # Stress is frozen at its initial value when feedback is off (kept only then).
        self.initial_stress = (
            np.zeros(0, np.float32) if self.enabled
            else self._stress(self.savings, np.arange(people.n))
        )

    def people_changed(self, d, change) -> None:
        """Those who came of age start their savings today (their income is set)."""
        came = change.came_of_age
        self.updated[came] = d.day
        if not self.enabled:
            self.initial_stress[came] = self._stress(self.savings, came)

    def daily_income(self, idx: np.ndarray) -> np.ndarray:
        return self.income[idx] / np.float32(365.0)

    def savings_now(self, idx: np.ndarray, day: int) -> np.ndarray:
        if not self.enabled:
            return self.savings[idx]
        return _savings_now(np.asarray(idx, dtype=np.int64), self.savings, self.income,
                            self.updated, day, self.buffer_factor, float(self.recovery))

    def stress0(self) -> np.ndarray:
        """Everyone's stress on day 0."""
        return self._stress(self.savings, np.arange(len(self.savings)))

    def charge(self, idx: np.ndarray, amount: np.ndarray, day: int,
               distinct: bool = False) -> None:
        """Take `amount` from savings (may go negative: debt). Repeated idx accumulate;
        `distinct` says there are none, which saves sorting a day's many perks."""
        if not self.enabled or len(idx) == 0:
            return
        if distinct:
            uniq, total = idx, np.asarray(amount, dtype=np.float32)
        else:
            uniq, inv = np.unique(idx, return_inverse=True)
            total = np.bincount(inv, weights=amount, minlength=len(uniq)).astype(np.float32)
        self.savings[uniq] = self.savings_now(uniq, day) - total
        self.updated[uniq] = day

    def finalize(self, day: int, chunk: int = 1 << 20) -> None:
        """Bring everyone's savings up to `day` (in chunks: no population-sized temporaries)."""
        for lo in range(0, len(self.savings), chunk):
            idx = np.arange(lo, min(lo + chunk, len(self.savings)))
            self.savings[idx] = self.savings_now(idx, day)
            self.updated[idx] = day

    def _stress(self, savings: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return _stress_of(np.asarray(savings, dtype=np.float32), self.income[idx],
                          self.buffer_factor)


# The rule itself, once, as scalar Numba functions: the behave kernel calls them per
# candidate and the vectorised methods above call them per person.
@njit(cache=True, inline="always")
def lazy_savings(savings, income, updated, day, buffer_factor, recovery):  # pragma: no cover
    """Savings on `day`: they regain `recovery` of daily income per day up to the buffer."""
    buf = np.float32(income * buffer_factor)
    gain = min(recovery * (income / np.float32(365.0)) * (day - updated), buf - savings)
    return savings + gain if gain > 0 else savings


@njit(cache=True, inline="always")
def stress_of_one(savings, income, buffer_factor):  # pragma: no cover
    """Economic stress in [0, 1]: 1 - savings / buffer (0 without income)."""
    buf = np.float32(income * buffer_factor)
    if buf <= 0:
        return 0.0
    return min(max(1.0 - savings / buf, 0.0), 1.0)


@njit(cache=True)
def _savings_now(idx, savings, income, updated, day, buffer_factor,
                 recovery):  # pragma: no cover
    out = np.empty(len(idx), dtype=np.float32)
    for r in range(len(idx)):
        i = idx[r]
        out[r] = lazy_savings(savings[i], income[i], updated[i], day, buffer_factor, recovery)
    return out


@njit(cache=True)
def _stress_of(savings, income, buffer_factor):  # pragma: no cover
    out = np.empty(len(savings), dtype=np.float32)
    for r in range(len(savings)):
        out[r] = stress_of_one(savings[r], income[r], buffer_factor)
    return out
