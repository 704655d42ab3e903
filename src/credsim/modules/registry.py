"""The registry of module kinds: credsim's own, then those that installed packages
declare under the Python entry-point group `credsim.systems`.

An entry point names a Module subclass (`name = "package.module:Class"`); its
`kind` must be new. A package may also declare presets under the group
`credsim.presets` (`name = "package:presets_folder"` naming an importable
package whose folder holds `<name>.toml` files).
"""

from __future__ import annotations

import importlib
from functools import cache
from importlib.metadata import entry_points

from credsim.modules.base import Module

SYSTEMS_GROUP = "credsim.systems"
PRESETS_GROUP = "credsim.presets"

# credsim's own modules, as "module:Class".
BUILTIN = (
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
)


class RegistryError(Exception):
    pass


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
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plug-in is named, not a traceback
            raise RegistryError(f"entry point {ep.name} = {ep.value} "
                                f"({SYSTEMS_GROUP}) fails to load: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Module)) or not cls.kind:
            raise RegistryError(f"entry point {ep.name} = {ep.value}: not a credsim "
                                "Module subclass with a kind")
        add(cls, f"entry point {ep.name}")
    for cls in _registered:
        add(cls, f"{cls.__module__}.{cls.__qualname__}")
    return dict(sorted(found.items(), key=lambda kv: kv[1].build_order))


def plugin_kinds() -> dict[str, type[Module]]:
    """The kinds that installed packages add."""
    own = {t.partition(":")[2] for t in BUILTIN}
    return {k: c for k, c in kinds().items()
            if not (c.__module__.startswith("credsim.") and c.__name__ in own)}
