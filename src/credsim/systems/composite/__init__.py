"""A composite score (Sesame, Honest Shanghai, City Brain)."""

from credsim.systems.composite.system import Composite

__all__ = ["Composite"]
