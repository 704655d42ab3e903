"""The day's plan: which module hooks run in which phase, in order.

The same plan drives the engine and `credsim plan`, so what is printed is what
runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from credsim.modules.base import PHASES, Module
from credsim.modules.registry import kinds
from credsim.scenario.model import Scenario


@dataclass(frozen=True)
class Step:
    """One hook of the day: module `kind`'s `method`, in `phase` at `order`."""

    phase: str
    kind: str
    method: str
    order: int

    @property
    def key(self) -> str:
        return f"{self.phase}/{self.kind}"


def module_classes(scenario: Scenario) -> list[type[Module]]:
    """The module kinds `scenario` runs, in build order."""
    return [cls for cls in kinds().values() if cls.present(scenario)]


def builds_graph(scenario: Scenario, classes: list[type[Module]] | None = None) -> bool:
    """Whether a run of `scenario` builds the social graph: only if a module reads ties."""
    classes = module_classes(scenario) if classes is None else classes
    return any(c.needs_ties(scenario, classes) for c in classes)


def build_plan(classes: list[type[Module]]) -> list[Step]:
    """Every hook of the modules, by phase, then by its order within the phase, then
    by the modules' build order."""
    steps = []
    for rank, cls in enumerate(classes):
        for h in cls.hooks:
            if not callable(getattr(cls, h.method, None)):
                raise TypeError(f"module {cls.kind}: hook {h.method} is not a method")
            steps.append((PHASES.index(h.phase), h.order, rank,
                          Step(h.phase, cls.kind, h.method, h.order)))
    return [st for *_, st in sorted(steps, key=lambda t: t[:3])]


def plan_of(scenario: Scenario) -> list[Step]:
    """The day's hooks of `scenario`, in the order the engine runs them."""
    return build_plan(module_classes(scenario))


def describe_plan(scenario: Scenario) -> tuple[list[dict[str, str]], list[str]]:
    """The plan as rows (phase, module, hook, the first line of the hook's docstring),
    the record phase included, and the modules that read ties."""
    classes = module_classes(scenario)
    rows = []
    for st in build_plan(classes):
        cls = kinds()[st.kind]
        rows.append({"phase": st.phase, "order": st.order, "module": st.kind,
                     "hook": st.method, "does": _first_line(getattr(cls, st.method))})
    for cls in sorted(classes, key=lambda c: c.record_order):
        if cls.record is not Module.record:
            rows.append({"phase": "record", "order": cls.record_order, "module": cls.kind,
                         "hook": "record",
                         "does": "its daily results: " + ", ".join(r.name for r in cls.results)
                         if cls.results else "its daily results"})
    ties = [c.kind for c in classes if c.needs_ties(scenario, classes)]
    return rows, ties


def _first_line(fn) -> str:
    doc = " ".join((fn.__doc__ or "").split())
    return doc.split(". ")[0].rstrip(".")
