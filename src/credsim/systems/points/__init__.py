"""The points system (Rongcheng)."""

from credsim.systems.points.system import NO_DOMAIN, Points, grade_of

__all__ = ["NO_DOMAIN", "Points", "grade_of"]
