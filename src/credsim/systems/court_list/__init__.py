"""The court list of dishonest judgment debtors, with joint punishment."""

from credsim.systems.court_list.system import CourtList

__all__ = ["CourtList"]
