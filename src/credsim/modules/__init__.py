"""The module protocol: what a system (or a safeguard, a threat, the gates, ...)
declares so that the engine can run it without knowing it by name."""

from credsim.modules.base import PHASES, Hook, Module, Result
from credsim.modules.day import Day
from credsim.modules.registry import register, unregister

__all__ = ["PHASES", "Day", "Hook", "Module", "Result", "register", "unregister"]
