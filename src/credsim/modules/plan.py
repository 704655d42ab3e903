"""The day's plan: which module hooks run in which phase, in order.

The same plan drives the engine and `credsim plan`, so what is printed is what
runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from credsim.modules.base import PHASES, Instance, Module
from credsim.modules.registry import kinds
from credsim.scenario.model import Scenario


@dataclass(frozen=True)
class Step:
    """One hook of the day: module `module`'s `method`, in `phase` at `order`."""

    phase: str
    module: str  # the module's name: its kind, or its [systems.<name>] table's name
    method: str
    order: int

    @property
    def key(self) -> str:
        return f"{self.phase}/{self.module}"


def module_instances(scenario: Scenario) -> list[Instance]:
    """The modules `scenario` runs, in build order (the instances of one kind together,
    the first of them first)."""
    return [inst for cls in kinds().values() for inst in cls.instances(scenario)]


def module_classes(scenario: Scenario) -> list[type[Module]]:
    """The module kinds `scenario` runs, in build order."""
    return list(dict.fromkeys(inst.cls for inst in module_instances(scenario)))


def builds_graph(scenario: Scenario, classes: list[type[Module]] | None = None) -> bool:
    """Whether a run of `scenario` builds the social graph: only if a module reads ties."""
    classes = module_classes(scenario) if classes is None else classes
    return any(c.needs_ties(scenario, classes) for c in classes)


def build_plan(instances: list[Instance]) -> list[Step]:
    """Every hook of the modules, by phase, then by its order within the phase, then
    by the modules' build order."""
    steps = []
    for rank, inst in enumerate(instances):
        for h in inst.cls.hooks:
            if not callable(getattr(inst.cls, h.method, None)):
                raise TypeError(f"module {inst.cls.kind}: hook {h.method} is not a method")
            steps.append((PHASES.index(h.phase), h.order, rank,
                          Step(h.phase, inst.name, h.method, h.order)))
    return [st for *_, st in sorted(steps, key=lambda t: t[:3])]


def plan_of(scenario: Scenario) -> list[Step]:
    """The day's hooks of `scenario`, in the order the engine runs them."""
    return build_plan(module_instances(scenario))


def describe_plan(scenario: Scenario) -> tuple[list[dict[str, str]], list[str]]:
    """The plan as rows (phase, module, hook, the first line of the hook's docstring),
    the record phase included, and the modules that read ties."""
    instances = module_instances(scenario)
    classes = list(dict.fromkeys(inst.cls for inst in instances))
    by_name = {inst.name: inst.cls for inst in instances}
    rows = []
    for st in build_plan(instances):
        cls = by_name[st.module]
        rows.append({"phase": st.phase, "order": st.order, "module": st.module,
                     "hook": st.method, "does": _first_line(getattr(cls, st.method))})
    for inst in sorted(instances, key=lambda i: i.cls.record_order):
        cls = inst.cls
        if cls.record is not Module.record:
            rows.append({"phase": "record", "order": cls.record_order, "module": inst.name,
                         "hook": "record",
                         "does": "its daily results: " + ", ".join(inst.column(r.name)
                                                                   for r in cls.results)
                         if cls.results else "its daily results"})
    ties = [c.kind for c in classes if c.needs_ties(scenario, classes)]
    return rows, ties


def _first_line(fn) -> str:
    doc = " ".join((fn.__doc__ or "").split())
    return doc.split(". ")[0].rstrip(".")
