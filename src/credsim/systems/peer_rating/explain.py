"""How `credsim lookup` explains peer ratings' ledger rows: changes of the shown
rating, and the gate thresholds they cross."""

from __future__ import annotations

from credsim.modules import Explaining
from credsim.results.lookup import LedgerEntry


def explain(entries: list[LedgerEntry], ctx: Explaining) -> None:
    lines = []
    for name, g in ctx.scenario.gates.items():
        for t in g.parsed.terms():
            if t.standing == "rating":
                lines.append((name, t.value, round(t.value * 100)))
    for e in entries:
        if e.kind != "rating":
            continue
        old = e.value - e.delta
        e.note = (f"shown rating {old / 100:.1f} -> {e.value / 100:.1f} after the day's "
                  "ratings by contacts")
        crossed = [f"fell below {k:g} ({name})" if e.delta < 0 else f"reached {k:g} ({name})"
                   for name, k, t in lines if min(old, e.value) < t <= max(old, e.value)]
        if crossed:
            e.note += "; " + ", ".join(crossed) + " (gates read the unrounded rating)"
