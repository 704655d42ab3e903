"""How `credsim lookup` explains the firm lists' ledger rows: a firm's public record
items, the display expiries that end them and when the firm goes on or off the
blacklist; a legal representative's blacklistings through the firms they represent."""

from __future__ import annotations

from credsim.modules import Explaining
from credsim.results.lookup import BLACKLIST_REP, LedgerEntry, firm_name, link
from credsim.scenario.model import Scenario
from credsim.systems.firm_lists.system import SEVERITIES


def explain(entries: list[LedgerEntry], ctx: Explaining) -> None:
    link(entries, ctx.by_row, ("display_expiry",))
    if ctx.entity == "firm":
        _items(entries, ctx)
    else:
        _rep_blacklistings(entries, ctx)


def _display_range(s: Scenario, cause: str) -> tuple[int, int, int] | None:
    """(severity index, shortest, longest display) of a firm behaviour's item."""
    sev = s.firm_lists.severity.get(cause)
    if sev is None:
        return None
    lo, hi = s.firm_lists.display_days[sev]
    return SEVERITIES.index(sev), lo, hi


def _items(entries: list[LedgerEntry], ctx: Explaining) -> None:
    """A firm's public record items, the display expiries that ended them, and when the
    firm went on or off the blacklist."""
    s, days, by_row = ctx.scenario, ctx.days, ctx.by_row
    black_from = SEVERITIES.index(s.firm_lists.blacklist_from)
    held = true = 0  # blacklisting items shown: all, true ones
    for e in entries:
        if e.kind != "blacklist":
            continue
        item = e if e.delta > 0 else by_row.get(e.ref)
        rng = None if item is None else _display_range(s, item.cause)
        if e.delta < 0:
            if item is None:
                e.note = "display period ended; its item is not in the ledger"
                continue
            e.note = (f"ends the display of the {item.cause} item of day {item.day} "
                      f"(shown {e.day - item.day} days)")
        elif rng is None:
            e.note = "item shown (its behaviour has no severity in this scenario)"
            continue
        else:
            sev, lo, hi = rng
            e.note = f"{SEVERITIES[sev]} item shown on the public record (display {lo}-{hi} days)"
            if e.record == "false":
                e.note += "; a FALSE item (data-entry error)"
            if e.ended_by is not None:
                e.note += f"; display ended on day {e.ended_day}"
            else:
                e.note += (f"; still shown at the end of the run (display ends between day "
                           f"{max(e.day + lo, days)} and day {e.day + hi})")
        if rng is None or rng[0] < black_from:
            continue
        was, was_true = held > 0, true > 0
        held += e.delta
        true += e.delta if e.record == "true" else 0
        if (held > 0) != was:
            e.note += ("; puts the firm on the blacklist" if held > 0
                       else "; the firm leaves the blacklist")
            if held > 0 and true == 0:
                e.note += " (on false items only)"
        elif (true > 0) != was_true:
            e.note += ("; the firm stays blacklisted, now " + (
                "on a true item" if true > 0 else "on false items only"))


def _rep_blacklistings(entries: list[LedgerEntry], ctx: Explaining) -> None:
    """A legal representative's blacklist rows: each refers to the row of the represented
    firm that put it on the blacklist (an item shown) or took it off (a display expiry).
    A firm's rows for one representative alternate on, off: each off ends the last on."""
    by_row, firm_names = ctx.by_row, ctx.firm_names
    open_: dict[int, LedgerEntry] = {}  # firm -> its row putting the person on the list
    for e in entries:
        if e.kind != "blacklist" or e.cause != BLACKLIST_REP:
            continue
        cause = by_row.get(e.ref)  # the firm's row
        only_false = " (the firm is blacklisted on false items only)" if (
            e.record == "false") else ""
        if cause is None:
            e.note = ("blacklisted as legal representative of a blacklisted firm"
                      if e.delta > 0 else "a represented firm left the blacklist"
                      ) + " (firm not in this record)" + only_false
            continue
        e.firm = cause.firm
        firm = f"firm {firm_name(cause.firm, firm_names)}"
        if e.delta > 0:
            e.note = (f"blacklisted as legal representative of {firm}: its {cause.cause} "
                      f"item of day {cause.day}{only_false}")
            open_[cause.firm] = e
            continue
        item = by_row.get(cause.ref)
        e.note = f"{firm} left the blacklist: " + (
            f"the display of its {item.cause} item of day {item.day} ended"
            if item is not None else "an item's display ended")
        start = open_.pop(cause.firm, None)
        if start is not None:
            start.ended_day, start.ended_by = e.day, cause.cause
            start.note += f"; off the blacklist on day {e.day}"
            e.ended_day, e.ended_by = start.day, start.cause
    for e in open_.values():
        e.note += f"; still blacklisted at the end of the run (day {ctx.days - 1})"
