"""How `credsim lookup` explains the reversal of a deduction: by the expiry of marks
(a safeguard, credsim.safeguards) or by an audit that catches an insider's edit (a
threat, credsim.threats). A reversal row is written by the system whose deduction it
gives back (Module.reverse), so that system's explanation calls this for its score
kind; the notes combine both modules' parameters (when an audit is due, when a mark
expires), which is why they are explained in one place beside the two modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from credsim.modules import Explaining
    from credsim.results.lookup import LedgerEntry

# The causes of rows that reverse a deduction (safeguards', threats'), in plain words.
REVERSALS = {"mark_expiry": "mark expired", "audit_reversal": "insider edit caught by audit"}
REVERSAL_CAUSES = frozenset(REVERSALS)


def explain_reversals(entries: list[LedgerEntry], ctx: Explaining, score: str) -> None:
    """Deductions of ledger kind `score` reversed by mark expiry or by an audit of an
    insider edit, and, for those not reversed, when that would fall due."""
    s, days, by_row = ctx.scenario, ctx.days, ctx.by_row
    expiry = s.safeguards.expiry_days
    audit_days, audit_prob = s.threats.audit_days, s.threats.audit_prob
    if expiry > 0:  # a caught edit is reversed by the audit, at the latest when it would expire
        audit_days = min(audit_days, expiry)
    for e in entries:
        if e.kind == score and e.delta < 0 and e.record == "insider" and (
                e.cause in s.behaviours):
            e.note = "insider edit (fabricated record)" + (f"; {e.note}" if e.note else "")
    for r in entries:
        if r.kind != score or r.cause not in REVERSALS:
            continue
        d = by_row.get(r.ref)
        what = REVERSALS[r.cause]
        if d is None:
            r.note = f"reverses a deduction ({what}) that is not in the ledger"
            continue
        r.note = f"reverses the deduction of day {d.day} ({what})"
        # A reversal gives each score back what it lost: nothing to the true score if
        # the deduction was only a warning there.
        r.true_delta = -d.true_delta
        if d.record == "true" and d.true_delta == 0:
            r.note += "; the true score had only a warning, so it gets nothing back"
        d.note = (d.note + "; " if d.note else "deduction; ") + f"reversed on day {r.day} ({what})"
    for d in entries:
        if not (d.kind == score and d.delta < 0 and d.cause in s.behaviours) or (
                d.ended_by is not None):
            continue
        parts = [d.note or "deduction"]
        if d.record == "insider" and audit_prob > 0:
            due = d.day + audit_days
            parts.append(f"not caught by audit (audit due day {due})" if due < days
                         else f"audit outcome falls after the run (day {due})")
        if expiry > 0:
            due = d.day + expiry
            parts.append(f"expires on day {due}" if due >= days
                         else f"no expiry row on day {due}")
        d.note = "; ".join(parts)
