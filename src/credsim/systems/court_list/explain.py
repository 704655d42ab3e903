"""How `credsim lookup` explains the court list's ledger rows: listings (own case or
as legal representative of a listed firm) and delistings, and the points deductions
for listings and their give-backs."""

from __future__ import annotations

from credsim.modules import Explaining
from credsim.results.lookup import LedgerEntry, firm_name, link

DELISTING_CAUSES = {
    "delisting_payment": "payment",
    "delisting_correction": "correction",
    "delisting_appeal": "appeal",
    "delisting_expiry": "end of term",
    "delisting_settlement": "settlement with the creditor",
    "delisting_no_assets": "enforcement terminated, no assets found",
    "delisting_death": "the debtor died, enforcement terminated",
}
LISTING_CAUSES = ("court_listing", "legal_rep_of_listed_firm")


def explain(entries: list[LedgerEntry], ctx: Explaining) -> None:
    """Listings and delistings, and the deductions for listings (a points system's score
    rows of the listing causes: their notes replace the points system's plain one)."""
    link(entries, ctx.by_row, DELISTING_CAUSES)
    days = ctx.days
    for e in entries:
        target = ctx.by_row.get(e.ref)
        if e.kind == "list" and e.delta > 0:
            if e.cause == "legal_rep_of_listed_firm":
                e.firm = target.firm if target is not None else None
                e.note = "listed as legal representative of listed firm " + (
                    firm_name(e.firm, ctx.firm_names) if e.firm is not None
                    else "(not in this record)")
            else:
                e.note = "put on the court list" + (
                    " (own case)" if ctx.entity == "person" else "")
            e.note += (f"; delisted on day {e.ended_day} ({DELISTING_CAUSES[e.ended_by]})"
                       if e.ended_by is not None
                       else f"; still listed at the end of the run (day {days - 1})")
        elif e.kind == "list":
            how = DELISTING_CAUSES.get(e.cause, e.cause)
            if target is None:
                e.note = f"delisted ({how}); its listing is not in the ledger"
                continue
            e.firm = target.firm
            e.note = f"ends the listing of day {target.day} ({how})"
        elif e.kind == "score" and e.cause in LISTING_CAUSES:
            e.note = _listing_deduction_note(e, target)
        elif e.kind == "score" and e.cause in ("delisting_correction", "delisting_appeal"):
            e.note = ("restores the listing deduction"
                      + (f" of day {target.day}" if target is not None else "")
                      + f" ({DELISTING_CAUSES[e.cause]})")


def _listing_deduction_note(e: LedgerEntry, listing: LedgerEntry | None) -> str:
    if e.ended_by is not None:  # given back
        return (f"listing deduction; restored on day {e.ended_day} "
                f"({DELISTING_CAUSES[e.ended_by]})")
    if listing is None:
        return "listing deduction"
    if listing.ended_by is not None:
        return (f"listing deduction; not restored when delisted on day {listing.ended_day} "
                f"({DELISTING_CAUSES[listing.ended_by]})")
    return "listing deduction; the listing is still in force"
