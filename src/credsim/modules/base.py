"""The module protocol.

A module is one part of the simulated world that acts on its own schedule: a
credit system (points, court list, composite score, peer rating, firm lists),
or a cross-cutting part (the society's behaviour and observation, the
economy, safeguards, threats, the gates of service providers, adaptation).

A module class declares, as class attributes, everything the rest of credsim
needs to know of it, so that knowledge lives in one place:

- `kind`: its name in the registry and the scenario;
- `hooks`: which of its methods run in which phase of the day, and in what
  order within the phase (lower first);
- `record_order`: where its daily results go in the timeseries table;
- `results`: its daily results (name, dtype, label, unit);
- `random_streams`: the random streams it draws from (credsim.rng.Stream: name, scheme,
  identity); the engine registers them, refuses a name two modules declare, and
  writes them to the manifest's seed entropy;
- `ledger_kinds`, `ledger_causes`: what its ledger rows say changed and why;
- `standings`: the per-person standings that gate conditions may read (name ->
  `credsim.conditions.Standing`: operators, values, trigger domain, initial
  state), whose arrays the module lends through `standing_arrays`,
  `standing_values` and `standing_domains`;
- `reads_ties`: whether it reads the social graph (the graph is built only
  when some module does);
- `explain`, `audit`, `report_figures`: how a module explains its ledger rows in
  `credsim lookup`, which of credsim's audit measures it computes, and which figures
  of the run report it draws (each imports its code lazily from the module's folder);
- `Params`, `audit_measures`: for a system from an installed package, the
  Pydantic model of its parameters (a `[systems.<name>]` table of the
  scenario) and the measures its `measures` classmethod computes from a run
  folder (docs/plugins.md);
- `several`, `further`: whether a scenario may run several instances of the
  kind side by side, each a `[systems.<name>]` table (for a built-in kind,
  `further` is the model of such a table; its first instance is its own
  section).

Each module the engine builds is an `Instance` of its class: a name, its
parameters, and whether it is the first of its kind. The first keeps plain
names; a further instance's columns and ledger kinds carry its name
(`province_grade_A`, `province_score`) and so do its standings in gate
conditions (`province.grade<=C`).

and implements the hooks it names. Every hook takes the `Day` (the day's
shared data: events, records, who was touched) and returns nothing; the
engine times each (phase, module) pair.

A population that changes size (credsim.demography) keeps every array at a
capacity fixed at the start: a module that adds people declares how many slots
it may need (`extra_slots`), so that every other module allocates once. Slots
not yet born or no longer alive hold the age band ABSENT and take no part. The
day's changes reach every module through one lifecycle hook, `people_changed`,
called in the "life" phase before anyone acts.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
from pydantic import BaseModel

from credsim.conditions import Standing
from credsim.rng import Stream, name_matches

if TYPE_CHECKING:
    from credsim.audit.measures import RunTables
    from credsim.modules.day import Day, PeopleChange
    from credsim.scenario.model import Scenario

# The parts of the audit (credsim.audit.measures) where a module's own measures go, in
# the order of measures.parquet, and the sections of the run report where its figures go.
AUDIT_PARTS = ("distributions", "spirals", "stratification", "generations")
REPORT_SECTIONS = ("scores", "flows", "generations")

# "life": births, deaths and ageing (only a module that changes the population runs
# there); then the day of everyone alive.
PHASES = ("life", "behave", "observe", "review", "score", "list", "consequences", "adapt", "record")


@dataclass(frozen=True)
class Hook:
    """Method `method` of a module runs in `phase`, after the hooks of lower `order`."""

    phase: str
    method: str
    order: int = 50

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"hook {self.method}: unknown phase {self.phase!r} "
                             f"(one of {', '.join(PHASES)})")


@dataclass(frozen=True)
class Result:
    """A daily result: a column of the timeseries table. A `<x>` in the name stands for
    each of a set of names (grades, bands, gates). credsim's own columns take their
    label, unit and kind from credsim.labels, where every label is declared once; a
    module from a package gives its own."""

    name: str
    dtype: str = "int64"
    label: str = ""
    unit: str = ""
    kind: str = "count"  # one of credsim.labels.KINDS

    def matches(self, column: str) -> bool:
        return name_matches(self.name, column)


class lazy_hook:  # noqa: N801 - used like a decorator-made function, in class bodies
    """A class hook (explain, audit, report_figures) implemented by `function` of
    another module of the system's folder, "package.module:function", imported at the
    first call: so that `credsim lookup` or the report, which call these hooks, do not
    import what they do not use, and a system's module does not import its lookup and
    report code."""

    def __init__(self, target: str) -> None:
        self.target = target

    def __call__(self, *args: Any) -> Any:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)(*args)


@dataclass(frozen=True)
class Explaining:
    """What a module's `explain` hook reads beside the ledger entries of one person or
    firm: the run's scenario and length, every entry by its ledger row (the person's and
    those of the firms they represent, which `ref`s may point at), the firms' names, whose
    record it is ("person" or "firm"), and the instance being explained."""

    scenario: Scenario
    days: int
    by_row: dict[int, Any]  # ledger row -> credsim.results.lookup.LedgerEntry
    firm_names: dict[int, str]
    entity: str
    instance: Instance

    def kind(self, name: str) -> str:
        """This instance's ledger kind `name` (a further instance's carry its name)."""
        return self.instance.column(name)


@dataclass(frozen=True)
class Measured:
    """One value of a measure credsim declares (credsim.labels), as a module's `audit`
    hook gives it: its key ('grade=C', ...) and, where the registry's unit is too loose
    for this run, a more precise unit."""

    measure: str
    value: float | None
    key: str = ""
    unit: str | None = None


class World(Protocol):
    """What a module may use of the simulation that builds it (credsim.engine)."""

    scenario: Scenario
    people: Any  # credsim.population.people.People
    graph: Any  # credsim.population.graph.Graph, or None when no module reads ties
    firms: Any
    cat: Any  # the behaviour catalogue
    ledger: Any
    streams: Any
    adults: int  # living adults (and elders), kept in step with the population
    people_rows: int  # the person slots anyone has lived in
    modules: dict[str, Module]  # those built so far, by kind
    economy: Any  # the economy module: savings and stress
    gates: Any  # the gates module (built after the systems)

    def __getitem__(self, kind: str) -> Module: ...
    def get(self, kind: str) -> Module | None: ...
    def provider(self, standing: str) -> Module | None: ...
    def people_changed(self, d: Day, change: PeopleChange) -> None: ...


@dataclass(frozen=True)
class Instance:
    """One module a scenario runs: its name (its kind, or the name of its
    [systems.<name>] table), its class, its parameters, and whether it is the first of
    its kind (whose names stay plain)."""

    name: str
    cls: type[Module]
    params: BaseModel | None = None
    primary: bool = True

    def column(self, name: str) -> str:
        """A results column (or ledger kind) of this instance: a further instance's
        carry its name."""
        return name if self.primary else f"{self.name}_{name}"

    def standing(self, name: str) -> str:
        """How gate conditions name this instance's standing `name`."""
        return name if self.primary else f"{self.name}.{name}"

    def standings(self) -> dict[str, Standing]:
        """This instance's standings, by the names gate conditions use."""
        own = self.cls.standings_for(self.params)
        return {self.standing(k): st for k, st in own.items()}


class Module:
    """Base class of every module; see the module docstring for what to declare."""

    kind: ClassVar[str] = ""
    hooks: ClassVar[tuple[Hook, ...]] = ()
    record_order: ClassVar[int] = 50
    build_order: ClassVar[int] = 50
    results: ClassVar[tuple[Result, ...]] = ()
    # Random streams, declared once: a name two modules declare is refused.
    random_streams: ClassVar[tuple[Stream, ...]] = ()
    # Ledger kinds and special causes (beyond behaviours) this module writes and owns;
    # those of credsim's own modules are numbered in credsim.ledger, others after them.
    ledger_kinds: ClassVar[tuple[str, ...]] = ()
    ledger_causes: ClassVar[tuple[str, ...]] = ()
    # Standings gate conditions can read: name -> declaration.
    standings: ClassVar[dict[str, Standing]] = {}
    reads_ties: ClassVar[bool] = False

    # Several instances of the kind may run side by side ([systems.<name>] tables).
    several: ClassVar[bool] = False
    # For a built-in kind set in its own section that may run several times: the model
    # of each further instance's [systems.<name>] table.
    further: ClassVar[type[BaseModel] | None] = None
    instance: Instance

    def __init__(self, sim: World) -> None:
        self.sim = sim
        if not hasattr(self, "instance"):  # built directly, not by the engine
            self.instance = Instance(self.kind, type(self))

    @classmethod
    def build(cls, sim: World, instance: Instance) -> Module:
        """The module of `instance`. The instance is set before the constructor runs, so
        that constructors keep their one-argument form and may read it."""
        m = cls.__new__(cls)
        m.instance = instance
        m.__init__(sim)
        return m

    @property
    def name(self) -> str:
        """This module's name: its kind, or the name of its [systems.<name>] table."""
        return self.instance.name

    def column(self, name: str) -> str:
        """The name of this module's results column (or ledger kind) `name`."""
        return self.instance.column(name)

    @classmethod
    def instances(cls, scenario: Scenario) -> list[Instance]:
        """The instances of this kind that `scenario` runs: for a kind with Params, one
        per [systems.<name>] table of the kind, in the scenario's order."""
        if cls.Params is None:
            return [Instance(cls.kind, cls)] if cls.present(scenario) else []
        tables = [(name, e) for name, e in scenario.systems.items() if e.get("kind") == cls.kind]
        return [Instance(name, cls, cls.Params.model_validate(_params(e)), i == 0)
                for i, (name, e) in enumerate(tables)]

    @classmethod
    def table_model(cls) -> type[BaseModel] | None:
        """The model of a [systems.<name>] table of this kind (None: it has none)."""
        return cls.Params if cls.Params is not None else cls.further

    @classmethod
    def standings_for(cls, params: BaseModel | None) -> dict[str, Standing]:
        """The standings an instance with `params` declares (by default the class's;
        a kind whose standings take their names from its parameters, such as grade
        names, builds them here)."""
        return cls.standings

    # What the scenario asks of this kind --------------------------------------
    @classmethod
    def present(cls, scenario: Scenario) -> bool:
        """Whether `scenario` runs this module (a kind with Params: where a
        [systems.<name>] table names it)."""
        return cls.Params is None or cls.entry_of(scenario) is not None

    @classmethod
    def needs_ties(cls, scenario: Scenario, classes: list[type[Module]]) -> bool:
        """Whether this module, as `scenario` sets it and beside the other modules
        `classes` the scenario runs, reads the social graph."""
        return cls.reads_ties

    @classmethod
    def required_columns(cls, scenario: Scenario) -> dict[str, set[str]]:
        """The columns of each results table that a run of `scenario` writes for this
        module and that the readers rely on."""
        return {}

    @classmethod
    def check_tables(cls, folder: Any, manifest: Any, scenario: Scenario) -> None:
        """Check what this module wrote to a run folder (of `scenario`, with `manifest`)
        beyond its columns (raise InputError naming the file)."""

    @classmethod
    def extra_slots(cls, scenario: Scenario, people: int) -> int:
        """How many people this module may add over a run of `scenario` that starts with
        `people` (births): the engine sizes every person array for them at the start."""
        return 0

    # Hooks every module may implement -----------------------------------------
    def people_changed(self, d: Day, change: PeopleChange) -> None:
        """The day's changes of the population (births, deaths, coming of age,
        retirement), before anyone acts that day: update what this module counts (only
        runs where a module changes the population)."""

    def firms_founded(self, d: Day, firms: np.ndarray) -> None:
        """New firms in the slots `firms` (each closed today and founded anew, with a new
        legal representative, credsim.population.firms.FirmDynamics): reset what this
        module holds about them (a firm that closes has no open case or record item)."""

    def setup(self) -> None:
        """Once every module is built (in build order): read what the others declare."""

    def record(self, day: Day, row: dict[str, Any]) -> None:
        """Add this module's daily results to the timeseries row."""

    def end_day(self, day: Day) -> None:
        """After the day's ledger rows are flushed."""

    def finalize(self, days: int) -> None:
        """After the last day."""

    def people_columns(self, part: slice) -> dict[str, Any]:
        """Columns of people.parquet for the people in `part`."""
        return {}

    def firm_columns(self) -> dict[str, Any]:
        """Columns of firms.parquet."""
        return {}

    def final_scores(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """This module's scores at the end, for their assortativity across live ties:
        name -> (value per person, who is scored)."""
        return {}

    def reverse(self, d: Day, who: np.ndarray, delta: np.ndarray, delta_true: np.ndarray,
                record: np.ndarray, cause: int, channel: int, rows: np.ndarray) -> None:
        """Give back entries this module made (`rows`: their ledger rows), when a mark
        expires or an audit catches an insider's edit. Only a module that puts
        deductions in `Day.applied` is asked."""
        raise NotImplementedError(f"module {self.kind} makes no entry that can be reversed")

    def watch_lines(self, standing: str, lines: np.ndarray) -> None:
        """The values at which gate conditions on `standing` (one this module declares,
        refreshed on a cadence) change: report who crosses them at a refresh."""

    def reviewed_behaviours(self) -> np.ndarray | None:
        """Per behaviour, whether human review should check its records (beyond
        deductions and grade caps), or None."""
        return None

    # The arrays behind this module's standings, for the gates --------------------
    def standing_arrays(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """The held and true values of everyone, when the module stores them as arrays
        (compiled fast paths read them; None: only `standing_values` gives them)."""
        return None

    def standing_values(self, name: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The held and true values of people `ids`."""
        arrays = self.standing_arrays(name)
        if arrays is None:
            raise NotImplementedError(f"{self.kind}: no values for standing {name!r}")
        return arrays[0][ids], arrays[1][ids]

    def standing_domains(self, name: str) -> np.ndarray | None:
        """Each person's trigger domain for a standing without a fixed one."""
        return None

    def standing_initial(self, name: str) -> float | None:
        """The held value everyone starts with (None: values differ from the start)."""
        return self.standings[name].initial

    # Systems from installed packages ------------------------------------------------
    # A kind that declares `Params`, the Pydantic model of its parameters, is set in a
    # scenario by a table `[systems.<name>]` with `kind = "<its kind>"` and its
    # parameters; it runs where such a table names it. Built-in systems keep their own
    # sections and declare no Params.
    Params: ClassVar[type[BaseModel] | None] = None
    # Its audit measures, computed by `measures` from a run folder's tables.
    audit_measures: ClassVar[tuple[AuditMeasure, ...]] = ()

    @classmethod
    def entry_of(cls, scenario: Scenario) -> tuple[str, BaseModel] | None:
        """(name, parameters) of the scenario's first [systems.<name>] table of this
        kind, or None if it has none."""
        if cls.Params is None:
            return None
        for name, entry in scenario.systems.items():
            if entry.get("kind") == cls.kind:
                return name, cls.Params.model_validate(_params(entry))
        return None

    @classmethod
    def params_of(cls, scenario: Scenario) -> BaseModel:
        """This kind's parameters in `scenario`: those of its first [systems.<name>]
        table (KeyError if no table names the kind)."""
        found = cls.entry_of(scenario)
        if found is None:
            raise KeyError(f"the scenario has no [systems.*] table of kind {cls.kind!r}")
        return found[1]

    @classmethod
    def measures(cls, run: RunTables) -> dict[str, float | None]:
        """This module's audit measures of one run folder, by the names declared in
        `audit_measures` (None: not defined for this run)."""
        return {}

    # Explaining, auditing and drawing a run: hooks of every module ------------------
    @classmethod
    def explain(cls, entries: list[Any], context: Explaining) -> None:
        """Fill in the `note` (and what ended them) of the ledger entries (LedgerEntry,
        credsim.results.lookup) whose kinds or causes this instance writes. `credsim
        lookup` calls it for each instance the run ran, in build order, after an entry's
        `ended_*` links are set (docs/architecture.md)."""

    @classmethod
    def audit(cls, run: RunTables, part: str, instance: Instance) -> list[Measured]:
        """The values of credsim's own measures (declared in credsim.labels) that this
        instance computes in audit part `part` (one of AUDIT_PARTS), in their order in
        measures.parquet. A system from a package declares `audit_measures` instead."""
        return []

    @classmethod
    def report_figures(cls, section: str, run: Any, figs: Any, instance: Instance
                       ) -> list[str]:
        """HTML (figures, tables, notes) this instance draws in section `section` (one of
        REPORT_SECTIONS) of the run report; `run`: the report's view of the run folder
        (its time series, scenario and measures), `figs`: its figure maker."""
        return []


def _params(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "kind"}


@dataclass(frozen=True)
class AuditMeasure:
    """An audit measure a module computes: its identifier, what it counts in plain
    words, its unit, and the kind of value (one of credsim.labels.KINDS: share, ratio,
    correlation, ...), which decides how replicate runs are summarised."""

    name: str
    label: str
    unit: str
    kind: str
