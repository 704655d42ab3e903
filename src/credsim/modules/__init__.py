"""The module protocol: what a system (or a safeguard, a threat, the gates, ...)
declares so that the engine can run it without knowing it by name."""

from credsim.modules.base import PHASES, Hook, Module, Result
from credsim.modules.day import Applied, Day
from credsim.modules.registry import register, unregister

__all__ = ["PHASES", "Applied", "Day", "Hook", "Module", "Result", "register", "unregister"]
