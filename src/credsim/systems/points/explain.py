"""How `credsim lookup` explains a points system's ledger rows: deductions and
additions, warnings (warn before punishing, replayed for the true score), the
reversals of deductions by safeguards and threats, instant grade caps and
their ends, and grade changes. A further points system's rows are explained
with its own parameters and say which system they are of."""

from __future__ import annotations

from credsim.modules import Explaining
from credsim.results.lookup import RECORD_LABELS, UNTRUE, LedgerEntry, link
from credsim.reversals import REVERSAL_CAUSES, explain_reversals
from credsim.scenario.model import PointsSystem

ENDING_CAUSES = frozenset({*REVERSAL_CAUSES, "instant_grade_expiry"})


def explain(entries: list[LedgerEntry], ctx: Explaining) -> None:
    params: PointsSystem = ctx.instance.params or ctx.scenario.points
    score, grade, warning = (ctx.kind(k) for k in ("score", "grade", "warning"))
    own = [e for e in entries if e.kind in (score, grade, warning)]
    link(own, ctx.by_row, ENDING_CAUSES)
    _warnings(own, ctx, params, score, warning)  # before the reversals: they read the true deltas
    explain_reversals(own, ctx, score)
    _caps(own, ctx, params, grade)
    for e in own:
        if e.note:
            continue
        if e.kind == score:
            e.note = "deduction" if e.delta < 0 else "addition"
        elif e.kind == grade:
            e.note = "grade follows the score"
    if not ctx.instance.primary:
        for e in own:
            e.note += f" ({ctx.instance.name})"


def _warnings(entries: list[LedgerEntry], ctx: Explaining, p: PointsSystem, score: str,
              warning: str) -> None:
    """Warn before punishing: a small deduction is a warning if no warning counts yet.

    The held and the true score keep their own warnings (a false record can use up the held
    one), so the true score's changes are replayed here from the true records, as the engine
    does; they differ from the true records' held deltas when the two warnings fall apart."""
    s, days = ctx.scenario, ctx.days
    for e in entries:
        if e.kind == score:
            e.true_delta = e.delta if e.record == "true" else 0
    if p.warn_max <= 0:
        return
    cap = s.safeguards.proportionality_cap
    held_from = true_from = None  # day of the warning counting now, held and true
    for e in entries:
        if e.kind not in (score, warning) or e.cause not in s.behaviours:
            continue
        size = p.deltas.get(e.cause, 0)
        if not -p.warn_max <= size < 0:  # judged before the cap: a capped offence is no minor one
            continue
        if cap > 0:
            size = max(size, -cap)
        until = p.warning_days
        true_warned_before = true_from is not None and e.day < true_from + until
        if e.record == "true":
            if true_warned_before:
                e.true_delta = size
            else:
                true_from, e.true_delta = e.day, 0
        if e.kind == warning:
            held_from = e.day
            e.note = (f"WARNING instead of a {size:+d} deduction (warn before punishing: "
                      f"deductions of up to {p.warn_max} points); it counts until day "
                      f"{e.day + until}, and small deductions until then are made")
            if e.record in UNTRUE:
                e.note += (f"; a {RECORD_LABELS[e.record]} record used up the warning, "
                           "which the true score still has")
            elif e.true_delta:
                e.note += (f"; the true score's own warning (day {true_from}) still counted, "
                           f"so without false records this was deducted ({size:+d})")
                expiry = s.safeguards.expiry_days
                if expiry > 0 and e.day + expiry < days:
                    # The expiry gives the true score its deduction back; having no held
                    # change, it writes no row.
                    e.true_delta = 0
                    e.note += f", until it expired on day {e.day + expiry}"
            continue
        if held_from is not None and e.day < held_from + until:
            e.note = f"deduction (the warning of day {held_from} still counted)"
        else:
            e.note = "deduction (unexpected: no warning in the ledger counts now)"
        if e.record == "true" and e.true_delta == 0:
            e.note += ("; on the true score this was only a warning: its own warning had "
                       "not been used (a false record used the held one)")


def _caps(entries: list[LedgerEntry], ctx: Explaining, p: PointsSystem, grade: str) -> None:
    """Instant grade caps (e.g. drunk driving -> C) and their ends."""
    caps, cap_days, days = p.instant_grade, p.instant_grade_days, ctx.days
    for e in entries:
        if e.kind == grade and e.cause in caps and e.delta > 0:
            due = e.day + cap_days
            e.note = f"grade capped at {caps[e.cause]} for {cap_days} days"
            if e.ended_by is not None:
                later = ("" if e.ended_day == due
                         else f" (extended by a later record from day {due})")
                e.note += f"; cap ended on day {e.ended_day}{later}"
            elif due < days:
                e.note += (f"; the cap ended without a grade change of its own (on day {due}, "
                           "or later if a record extended it)")
            else:
                e.note += f"; cap in force until day {due} (or later, if a record extends it)"
        elif e.kind == grade and e.cause == "instant_grade_expiry":
            cap = ctx.by_row.get(e.ref)
            e.note = "instant grade cap ended" + (
                f" (set on day {cap.day})" if cap is not None
                else " (its records changed no grade when they came)"
            ) + "; grade follows the score again"
