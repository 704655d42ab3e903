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

    def daily_income(self, idx: np.ndarray) -> np.ndarray:
        return self.income[idx] / np.float32(365.0)

    def buffer(self, idx: np.ndarray) -> np.ndarray:
        """Savings below this many units of currency cause stress."""
        return self.income[idx] * np.float32(self.buffer_factor)

    def savings_now(self, idx: np.ndarray, day: int) -> np.ndarray:
        s = self.savings[idx]
        if not self.enabled:
            return s
        gap = self.buffer(idx) - s
        gain = self.recovery * self.daily_income(idx) * (day - self.updated[idx])
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

    def finalize(self, day: int, chunk: int = 1 << 20) -> None:
        """Bring everyone's savings up to `day` (in chunks: no population-sized temporaries)."""
        for lo in range(0, len(self.savings), chunk):
            idx = np.arange(lo, min(lo + chunk, len(self.savings)))
            self.savings[idx] = self.savings_now(idx, day)
            self.updated[idx] = day

    def _stress(self, savings: np.ndarray, idx: np.ndarray) -> np.ndarray:
        buf = self.buffer(idx)
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(buf > 0, 1.0 - savings / buf, 0.0)
        return np.clip(s, 0.0, 1.0).astype(np.float32)
