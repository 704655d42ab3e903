"""The module protocol: what a system (or a safeguard, a threat, the gates, ...)
declares so that the engine can run it without knowing it by name."""

from credsim.modules.base import (
    AUDIT_PARTS,
    PHASES,
    REPORT_SECTIONS,
    AuditMeasure,
    Explaining,
    Hook,
    Instance,
    Measured,
    Module,
    Result,
    lazy_hook,
)
from credsim.modules.day import Applied, Day, PeopleChange, by_owner
from credsim.modules.registry import register, unregister
from credsim.rng import Stream

# The base of a system's Params: strict (no `true` for 1, no "30" for 30), unknown keys,
# NaN and infinities refused, like every section of a scenario.
from credsim.scenario.model import Strict as StrictParams

__all__ = ["AUDIT_PARTS", "PHASES", "REPORT_SECTIONS", "Applied", "AuditMeasure", "Day",
           "Explaining", "Hook", "Instance", "Measured", "Module", "PeopleChange", "Result",
           "Stream", "StrictParams", "by_owner", "lazy_hook", "register", "unregister"]
