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
- `streams`: the random streams it draws from, by name;
- `standings`: the per-person standings that gate conditions may read (name ->
  `credsim.conditions.Standing`: operators, values, trigger domain, initial
  state), whose arrays the module lends through `standing_arrays`,
  `standing_values` and `standing_domains`;
- `reads_ties`: whether it reads the social graph (the graph is built only
  when some module does).

and implements the hooks it names. Every hook takes the `Day` (the day's
shared data: events, records, who was touched) and returns nothing; the
engine times each (phase, module) pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from credsim.conditions import Standing

if TYPE_CHECKING:
    from credsim.engine import Simulation
    from credsim.modules.day import Day
    from credsim.scenario.model import Scenario

PHASES = ("behave", "observe", "review", "score", "list", "consequences", "adapt", "record")


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
    """A daily result: a column of the timeseries table (a `{}` in the name stands for
    each of a set of names, such as grades or bands)."""

    name: str
    dtype: str
    label: str
    unit: str


class Module:
    """Base class of every module; see the module docstring for what to declare."""

    kind: ClassVar[str] = ""
    hooks: ClassVar[tuple[Hook, ...]] = ()
    record_order: ClassVar[int] = 50
    build_order: ClassVar[int] = 50
    results: ClassVar[tuple[Result, ...]] = ()
    streams: ClassVar[tuple[str, ...]] = ()
    # Standings gate conditions can read: name -> declaration.
    standings: ClassVar[dict[str, Standing]] = {}
    reads_ties: ClassVar[bool] = False

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim

    # What the scenario asks of this kind --------------------------------------
    @classmethod
    def present(cls, scenario: Scenario) -> bool:
        """Whether `scenario` runs this module."""
        return True

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
    def check_tables(cls, folder: Any, manifest: Any) -> None:
        """Check what this module wrote to a run folder beyond its columns (raise
        InputError naming the file)."""

    # Hooks every module may implement -----------------------------------------
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

    def assortativity(self) -> dict[str, float]:
        """Correlation of this module's score across the ends of live ties, at the end."""
        return {}

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

    def memory_bytes(self) -> int:
        return sum(v.nbytes for v in vars(self).values() if isinstance(v, np.ndarray))
