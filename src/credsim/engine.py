"""The simulation: builds the society and runs the daily loop of its modules.

One day is: (life ->) behave -> observe -> review -> score -> list ->
consequences -> adapt -> record; life runs only where a module changes the
population (demography), whose changes the engine passes to every module's
people_changed hook, in person arrays sized once to a capacity. The engine
knows no system by name: it builds the modules the scenario asks for
(credsim.modules.registry), and each day runs their hooks
phase by phase, in the order the modules declare, timing each (phase, module)
pair so a user can see where the time goes. Every per-day step costs time in
proportion to the day's events, not to the population, except what the
scenario asks of everyone (none of the shipped presets do).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pyarrow as pa

from credsim.behaviour import compile_catalogue
from credsim.ledger import KINDS, SPECIAL_CAUSES, Ledger
from credsim.modules import PHASES, Day, Module, PeopleChange
from credsim.modules.plan import Step, build_plan, builds_graph, module_instances
from credsim.population.firms import build_firms
from credsim.population.graph import Graph, build_graph
from credsim.population.people import TRAITS, build_people, is_adult
from credsim.rng import Stream, Streams
from credsim.scenario.model import Scenario

SETUP_PHASES = ("population", "graph", "firms")
POPULATION_STREAMS = (
    *(Stream(f"population.{k}", "numpy", "once") for k in ("households", "economy", "traits",
                                                          "firms")),
    Stream("graph", "numpy", "once: the seed of a splitmix64 stream per person"),
)


class Simulation:
    def __init__(self, scenario: Scenario, ledger_path: Path | None = None):
        self.scenario = s = scenario
        self.timings: dict[str, float] = {k: 0.0 for k in SETUP_PHASES + PHASES}
        self.streams = Streams(s.run.seed)
        instances = module_instances(s)
        classes = list(dict.fromkeys(inst.cls for inst in instances))
        for stream in POPULATION_STREAMS:
            self.streams.register("population", stream)
        for inst in instances:
            for stream in inst.cls.random_streams:
                # A further instance draws from streams of its own (its module names
                # them with Module.column).
                if not inst.primary:
                    stream = Stream(inst.column(stream.name), stream.scheme, stream.identity)
                self.streams.register(inst.name, stream)
        n = s.run.people
        # The social graph is built only when some module reads ties, and sociability
        # (which shapes the graph, and peer ratings, which read ties) only then.
        ties = builds_graph(s, classes)
        with self._phase("population"):
            traits = TRAITS if ties else tuple(t for t in TRAITS if t != "sociability")
            self.people = build_people(s.population, n, self.streams, traits)
        self.graph: Graph | None = None
        if ties:
            with self._phase("graph"):
                self.graph = build_graph(self.people, s.graph, self.streams.int_seed("graph"))
        with self._phase("firms"):
            n_firms = int(round(s.population.firms_per_thousand * n / 1000))
            self.firms = build_firms(n_firms, self.people, s.population.firm_compliance,
                                     self.streams)
        # Room for the people a module may add (births): every array is sized once.
        extra = sum(c.extra_slots(s, n) for c in classes)
        if extra:
            self.people = self.people.with_capacity(n + extra)
            if self.graph is not None:
                self.graph = self.graph.with_capacity(n + extra)
        self.cat = cat = compile_catalogue(s)
        # Kinds and causes of credsim's own modules are numbered in credsim.ledger; those
        # of packages' modules and of further instances (named after them) follow.
        extra_kinds = [inst.column(k) for inst in instances for k in inst.cls.ledger_kinds
                       if inst.column(k) not in KINDS]
        extra_causes = list(dict.fromkeys(k for c in classes for k in c.ledger_causes
                                          if k not in SPECIAL_CAUSES))
        self.ledger = Ledger(ledger_path, cat.names, cat.channel_names,
                             extra_kinds=tuple(extra_kinds), extra_causes=tuple(extra_causes))
        self.adults = int(np.count_nonzero(is_adult(self.people.age)))
        # Modules in build order: each may look up those built before it.
        self.modules: dict[str, Module] = {}
        for inst in instances:
            self.modules[inst.name] = inst.cls.build(self, inst)
        for m in self.modules.values():
            m.setup()
        self.plan: list[Step] = build_plan(instances)
        self._loop = [(st, getattr(self.modules[st.module], st.method)) for st in self.plan]
        self.module_timings: dict[str, float] = {st.key: 0.0
                                                 for st in self.plan}
        self._recorders = sorted(self.modules.values(), key=lambda m: m.record_order)
        self._listeners = [m for m in self.modules.values()
                           if type(m).people_changed is not Module.people_changed]
        self.rows = Timeseries()
        self.day = 0
        # The slots anyone has lived in: the people at the start and those born so far.
        self.people_rows = n

    def __getitem__(self, name: str) -> Module:
        """The module of this name: a kind (its first instance) or a [systems.<name>]
        table's name (KeyError if the scenario runs none)."""
        return self.modules[name]

    def get(self, name: str) -> Module | None:
        """The module of this name, or None if the scenario runs none."""
        return self.modules.get(name)

    def provider(self, standing: str) -> Module | None:
        """The module that lends `standing` (grade, listed, province.grade ...), if any."""
        found = self.standing_owner(standing)
        return None if found is None else found[0]

    def standing_owner(self, standing: str) -> tuple[Module, str] | None:
        """(module, the module's own name of the standing) of a standing as gate
        conditions name it, if a module lends it."""
        for m in self.modules.values():
            for own in m.standings:
                if m.instance.standing(own) == standing:
                    return m, own
        return None

    def people_changed(self, d: Day, change: PeopleChange) -> None:
        """Tell every module of the day's births, deaths and band changes (called by the
        module that made them, in the life phase), and keep the count of adults."""
        d.change = change
        self.adults += len(change.came_of_age) - len(change.adults_out())
        if len(change.born):
            self.people_rows = max(self.people_rows, int(change.born.max()) + 1)
        for m in self._listeners:
            m.people_changed(d, change)

    @property
    def economy(self):
        return self.modules["economy"]

    @property
    def gates(self):
        return self.modules["gates"]

    @contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        yield
        self.timings[name] += time.perf_counter() - t0

    def run(self, on_day: Callable[[int], None] | None = None) -> None:
        for day in range(self.scenario.run.days):
            self.step(day)
            if on_day is not None:
                on_day(day + 1)
        for m in self.modules.values():
            m.finalize(self.scenario.run.days)
        self.ledger.close()

    def step(self, day: int) -> None:
        self.day = day
        d = Day(day, self.ledger.n)
        clock = time.perf_counter
        t_phase = clock()
        phase = PHASES[0]
        for st, hook in self._loop:
            if st.phase != phase:
                now = clock()
                self.timings[phase] += now - t_phase
                t_phase, phase = now, st.phase
            t0 = clock()
            hook(d)
            self.module_timings[st.key] += clock() - t0
        self.timings[phase] += clock() - t_phase
        with self._phase("record"):
            row: dict = {"day": day}
            for m in self._recorders:
                m.record(d, row)
            self.rows.append(row)
            self.ledger.flush()
            for m in self.modules.values():
                m.end_day(d)

    @property
    def person_days(self) -> int:
        return self.scenario.run.people * self.scenario.run.days

    @property
    def n_ties(self) -> int | None:
        return None if self.graph is None else self.graph.n_ties

    def memory_bytes(self) -> dict[str, int]:
        out = {"people": self.people.nbytes()}
        if self.graph is not None:
            out["graph"] = self.graph.nbytes()
        return out


class Timeseries(Sequence[dict]):
    """The daily rows of the results: a sequence of dicts (one per day, column ->
    value), kept as columns in blocks of CHUNK days, so that decades of days do not
    hold a Python dict each."""

    CHUNK = 1024

    def __init__(self) -> None:
        self.blocks: list[pa.Table] = []
        self.tail: list[dict] = []  # the rows since the last block
        self.columns: list[str] | None = None  # the first row's keys, as for the table

    def append(self, row: dict) -> None:
        if self.columns is None:
            self.columns = list(row)
        self.tail.append(row)
        if len(self.tail) == self.CHUNK:
            self.blocks.append(self._block(self.tail))
            self.tail = []

    def _block(self, rows: list[dict]) -> pa.Table:
        # The columns of pa.Table.from_pylist(rows): the first row's keys, a missing key
        # read as null, each column's type inferred from its values.
        assert self.columns is not None
        return pa.table({k: [r.get(k) for r in rows] for k in self.columns})

    def __len__(self) -> int:
        return self.CHUNK * len(self.blocks) + len(self.tail)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError("timeseries index out of range")
        b, j = divmod(i, self.CHUNK)
        if b == len(self.blocks):
            return self.tail[j]
        return self.blocks[b].slice(j, 1).to_pylist()[0]

    def __eq__(self, other: object) -> bool:
        """Equal to a sequence of the same rows (another Timeseries, or a list of dicts)."""
        if not isinstance(other, Timeseries | list):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other,
                                                                      strict=True))

    __hash__ = None  # type: ignore[assignment]  # mutable, as a list

    def __iter__(self) -> Iterator[dict]:
        for block in self.blocks:
            yield from block.to_pylist()
        yield from self.tail

    def table(self) -> pa.Table:
        """Every row, as pa.Table.from_pylist would make it of them (a column's type
        widened where blocks differ: whole numbers in one, fractions in another)."""
        parts = [*self.blocks, *([self._block(self.tail)] if self.tail else [])]
        if not parts:
            return pa.table({})
        return pa.concat_tables(parts, promote_options="permissive").combine_chunks()
