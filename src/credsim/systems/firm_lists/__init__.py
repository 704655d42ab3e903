"""Firm lists: public records, blacklists and red lists of firms (Credit China)."""

from credsim.systems.firm_lists.system import FirmLists

__all__ = ["FirmLists"]
