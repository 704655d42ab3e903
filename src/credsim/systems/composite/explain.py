"""How `credsim lookup` explains a composite score's ledger rows: marks (records
entering the score) and the refreshes that show them."""

from __future__ import annotations

from credsim.modules import Explaining
from credsim.results.lookup import RECORD_LABELS, UNTRUE, LedgerEntry


def explain(entries: list[LedgerEntry], ctx: Explaining) -> None:
    c, days = ctx.scenario.composite, ctx.days
    every = c.refresh_days
    refreshed = {e.day for e in entries if e.kind == "composite"}
    marks = [e for e in entries if e.kind == "mark"]
    lists = [(e.day, e.value) for e in entries if e.kind == "list"]

    def log_odds(cause: str) -> tuple[float, float]:
        return c.history_marks.get(cause, 0.0), c.behaviour_marks.get(cause, 0.0)

    def listed_at(day: int) -> int:
        """Active listings at a refresh: the score phase computes it before the day's
        listings."""
        return next((v for d, v in reversed(lists) if d < day), 0)

    for e in marks:
        h, b = log_odds(e.cause)
        dims = ", ".join(f"{name} {x:+.2f}" for name, x in (("history", h), ("behaviour", b))
                         if x) or "no dimension"
        at = every * max(1, -(-e.day // every))  # refreshes fall on multiples of the cadence
        if at >= days:
            when = f"counts from the next refresh (day {at}, after the run)"
        elif at in refreshed:
            when = f"shows at the refresh of day {at}"
        else:
            when = f"entered the refresh of day {at}, which left the score unchanged"
        e.note = f"record enters the composite ({dims} log-odds); score then {e.value}; {when}"
        if e.record in UNTRUE:
            e.note += (f"; a {RECORD_LABELS[e.record]} record: counts in the held score only, "
                       "not in the true one")
    for e in entries:
        if e.kind != "composite":
            continue
        last = e.day - every if e.day - every > 0 else -1  # no refresh on day 0
        since = [m for m in marks if last < m.day <= e.day]
        why = (f"{len(since)} record(s) since the last refresh, net "
               f"{sum(sum(log_odds(m.cause)) for m in since):+.2f} log-odds; fading marks, "
               "capacity and contacts' scores move it too"
               if since else "no new record since the last refresh: fading marks, capacity "
               "(income, savings) or contacts' scores moved it")
        e.note = f"{e.value - e.delta} -> {e.value} at the refresh (every {every} days); {why}"
        now, before = listed_at(e.day), listed_at(e.day - every)
        if c.listing_penalty and (now or before):
            state = ("listed since the last refresh" if now and not before else
                     "delisted since the last refresh: penalty lifted" if before and not now
                     else "still on the court list")
            e.note += f"; listing penalty -{c.listing_penalty} while listed ({state})"
