"""Savings and economic stress, updated lazily.

Savings drift back towards a buffer at a fixed share of income, a rule that
is deterministic between shocks, so a person's savings are brought up to
date only when something touches them: the daily loop never sweeps everyone.
"""

from __future__ import annotations

import numpy as np

from credsim.population.people import People
from credsim.scenario.model import Feedback


class Economy:
    def __init__(self, people: People, feedback: Feedback):
        self.enabled = feedback.enabled
        self.daily_income = people.income / np.float32(365.0)
        self.buffer = (people.income / np.float32(12.0)) * np.float32(feedback.buffer_months)
        self.recovery = np.float32(feedback.recovery)
        self.savings = people.savings  # shared with People: its final value is the result
        # The day each person's savings were last brought up to date.
        self.updated = np.zeros(people.n, dtype=np.int16)
        # Stress is frozen at its initial value when feedback is off (kept only then).
        self.initial_stress = (
            np.zeros(0, np.float32) if self.enabled
            else self._stress(self.savings, np.arange(people.n))
        )

    def savings_now(self, idx: np.ndarray, day: int) -> np.ndarray:
        s = self.savings[idx]
        if not self.enabled:
            return s
        gap = self.buffer[idx] - s
        gain = self.recovery * self.daily_income[idx] * (day - self.updated[idx])
        return s + np.clip(np.minimum(gain, gap), 0, None)

    def stress(self, idx: np.ndarray, day: int) -> np.ndarray:
        """Economic stress in [0, 1]: 1 - savings / buffer (constant when feedback is off)."""
        if not self.enabled:
            return self.initial_stress[idx]
        return self._stress(self.savings_now(idx, day), idx)

    def stress0(self) -> np.ndarray:
        """Everyone's stress on day 0."""
        return self._stress(self.savings, np.arange(len(self.savings)))

    def charge(self, idx: np.ndarray, amount: np.ndarray, day: int) -> None:
        """Take `amount` from savings (may go negative: debt). Repeated idx accumulate."""
        if not self.enabled or len(idx) == 0:
            return
        uniq, inv = np.unique(idx, return_inverse=True)
        total = np.bincount(inv, weights=amount, minlength=len(uniq)).astype(np.float32)
        self.savings[uniq] = self.savings_now(uniq, day) - total
        self.updated[uniq] = day

    def finalize(self, day: int) -> None:
        everyone = np.arange(len(self.savings))
        self.savings[:] = self.savings_now(everyone, day)
        self.updated[:] = day

    def _stress(self, savings: np.ndarray, idx: np.ndarray) -> np.ndarray:
        buf = self.buffer[idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(buf > 0, 1.0 - savings / buf, 0.0)
        return np.clip(s, 0.0, 1.0).astype(np.float32)
