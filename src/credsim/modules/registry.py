"""The registry of module kinds: credsim's own, then those that installed packages
declare under the Python entry-point group `credsim.systems`.

An entry point names a Module subclass (`name = "package.module:Class"`); its
`kind` must be new. A package may also declare presets under the group
`credsim.presets` (`name = "package:presets_folder"` naming an importable
package whose folder holds `<name>.toml` files).
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from importlib.metadata import entry_points

from pydantic import BaseModel

from credsim.errors import InputError
from credsim.modules.base import Module

SYSTEMS_GROUP = "credsim.systems"
PRESETS_GROUP = "credsim.presets"

# credsim's own modules, as "module:Class".
BUILTIN = (
    "credsim.demography:Demography",
    "credsim.families.partnering:Partnering",
    "credsim.families.inheritance:Inheritance",
    "credsim.families.schooling:Schooling",
    "credsim.population.firms:FirmDynamics",
    "credsim.economy:Economy",
    "credsim.society:Society",
    "credsim.systems.points:Points",
    "credsim.systems.court_list:CourtList",
    "credsim.systems.composite:Composite",
    "credsim.systems.peer_rating:PeerRatings",
    "credsim.systems.firm_lists:FirmLists",
    "credsim.safeguards:Safeguarding",
    "credsim.threats:Threats",
    "credsim.consequences:Consequences",
    "credsim.adaptation:Adapt",
    "credsim.generations.module:Generations",
)


class RegistryError(InputError):
    """An installed package declares a module kind that cannot be used: shown as one
    message, exit code 2, like any bad input (the fix is to repair or remove it)."""


_registered: list[type[Module]] = []  # added from Python with register()


def register(cls: type[Module]) -> type[Module]:
    """Add a module kind from Python (a notebook, a test), as an entry point would; usable
    as a class decorator. Its kind must be new."""
    if not (isinstance(cls, type) and issubclass(cls, Module)) or not cls.kind:
        raise RegistryError(f"{cls!r} is not a credsim Module subclass with a kind")
    if cls.kind in kinds():
        raise RegistryError(f"module kind {cls.kind!r} is already registered "
                            f"(by {kinds()[cls.kind].__module__})")
    _registered.append(cls)
    kinds.cache_clear()
    return cls


def unregister(kind: str) -> None:
    """Remove a kind added with register()."""
    _registered[:] = [c for c in _registered if c.kind != kind]
    kinds.cache_clear()


def _load(target: str) -> type[Module]:
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    if not (isinstance(cls, type) and issubclass(cls, Module)) or not cls.kind:
        raise RegistryError(f"{target} is not a credsim Module subclass with a kind")
    return cls


@cache
def kinds() -> dict[str, type[Module]]:
    """Every registered module kind, credsim's own first, in build order."""
    found: dict[str, type[Module]] = {}

    def add(cls: type[Module], origin: str) -> None:
        if cls.kind in found:
            raise RegistryError(f"{origin}: module kind {cls.kind!r} is already registered "
                                f"(by {found[cls.kind].__module__})")
        found[cls.kind] = cls

    for target in BUILTIN:
        add(_load(target), target)
    for ep in sorted(entry_points(group=SYSTEMS_GROUP), key=lambda e: e.name):
        origin = f"entry point {ep.name} = {ep.value} ({SYSTEMS_GROUP})"
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plug-in is named, not a traceback
            raise RegistryError(f"{origin} fails to load: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Module)) or not cls.kind:
            raise RegistryError(f"{origin}: not a credsim Module subclass with a kind")
        _check_plugin(cls, origin)
        add(cls, origin)
    # Registered from Python: its session asked for it, so it may run without Params
    # (then in every scenario of that session).
    for cls in _registered:
        add(cls, f"{cls.__module__}.{cls.__qualname__}")
    _check_measures(found)
    return dict(sorted(found.items(), key=lambda kv: kv[1].build_order))


KIND_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
MEASURE_RE = re.compile(r"[a-z][a-z0-9_]{0,47}")


def _check_plugin(cls: type[Module], origin: str) -> None:
    """What a kind from a package must declare: a plain kind name, and the Pydantic
    model of its parameters (a plug-in runs only where a scenario's [systems.<name>]
    table names its kind, so installing a package never changes another scenario)."""
    if not KIND_RE.fullmatch(cls.kind):
        raise RegistryError(f"{origin}: kind {cls.kind!r} must be lower-case letters, digits "
                            "and '_', starting with a letter, at most 32 characters")
    params = cls.Params
    if not (isinstance(params, type) and issubclass(params, BaseModel)):
        raise RegistryError(f"{origin}: {cls.__name__}.Params must be a Pydantic model of "
                            "its parameters (subclass credsim.modules.StrictParams)")
    if "kind" in params.model_fields:
        raise RegistryError(f"{origin}: {params.__name__} may not have a parameter named "
                            "'kind' (it names the system's kind in the scenario)")


def _check_measures(found: dict[str, type[Module]]) -> None:
    """Every module's audit measures have a new name and a known kind of value."""
    from credsim.labels import KINDS, MEASURES

    owner: dict[str, str] = {}
    for kind, cls in found.items():
        for m in cls.audit_measures:
            where = f"module {kind} ({cls.__module__}): audit measure {m.name!r}"
            if not MEASURE_RE.fullmatch(m.name):
                raise RegistryError(f"{where}: use lower-case letters, digits and '_', "
                                    "starting with a letter, at most 48 characters")
            if m.name in MEASURES or m.name in owner:
                by = "credsim's own" if m.name in MEASURES else f"module {owner[m.name]}'s"
                raise RegistryError(f"{where} is already {by}; rename it")
            if m.kind not in KINDS:
                raise RegistryError(f"{where}: kind {m.kind!r} is not one of "
                                    f"{', '.join(KINDS)}")
            owner[m.name] = kind


def module_measures() -> dict[str, tuple[str, type[Module]]]:
    """Every audit measure that modules declare: name -> (module kind, module class)."""
    return {m.name: (kind, cls) for kind, cls in kinds().items() for m in cls.audit_measures}


def plugin_kinds() -> dict[str, type[Module]]:
    """The kinds that installed packages add."""
    own = {t.partition(":")[2] for t in BUILTIN}
    return {k: c for k, c in kinds().items()
            if not (c.__module__.startswith("credsim.") and c.__name__ in own)}
