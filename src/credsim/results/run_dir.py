"""Run folders: written under a temporary name, renamed when complete, checked on open.

A run folder holds manifest.json, timeseries.parquet, ledger.parquet,
people.parquet, firms.parquet and sanctions.parquet.
"""

from __future__ import annotations

import json
import math
import platform
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from credsim import __version__
from credsim.engine import Simulation
from credsim.errors import InputError, first_line
from credsim.modules.columns import category
from credsim.modules.plan import builds_graph, module_classes
from credsim.modules.registry import kinds
from credsim.population.firms import SECTORS
from credsim.population.people import ABSENT, AGE_BANDS, SCHOOL_STATES, SCHOOLING_STATES
from credsim.results import outdir
from credsim.scenario.load import scenario_to_toml
from credsim.scenario.model import DOMAINS, Scenario
from credsim.threads import kernel_threads

FORMAT_VERSION = 3  # 2: composite, ratings, firm lists, warnings, audit columns; 3: ledger ref
# What a folder of an older format lacks, to say why it is refused.
OLDER_FORMATS = {2: "its ledger has no ref column (what each entry ends or reverses)"}
TABLES = ("timeseries", "ledger", "people", "firms", "sanctions")
EFFECTS = ("perk", "sanction")  # the sanctions table's effect: code 1 for a sanction


def _stem(stem: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip("-.")[:100] or "results"


def default_out(stem: str, seed: int) -> Path:
    """runs/<stem>-seed<seed>, with -2, -3, ... appended while that exists."""
    base = Path("runs") / f"{_stem(stem)}-seed{seed}"
    path, k = base, 2
    while path.exists() or path.is_symlink():
        path = base.with_name(f"{base.name}-{k}")
        k += 1
    return path


def prepare_default(stem: str, seed: int) -> tuple[Path, Path]:
    """Claim the first free default folder (see default_out), passing over those another
    credsim process is writing; return it and its temporary folder."""
    base = Path("runs") / f"{_stem(stem)}-seed{seed}"
    for k in range(1, 10_000):
        path = base if k == 1 else base.with_name(f"{base.name}-{k}")
        if path.exists() or path.is_symlink():
            continue
        try:
            return path, prepare(path)
        except outdir.TargetBusy:
            continue
    raise InputError(f"{base}: no free folder name; give --out")


def prepare(out: Path) -> Path:
    """Check and claim `out` (see credsim.results.outdir); return the temporary folder
    beside it to write the results into."""
    return outdir.claim(out)


def commit(tmp: Path, out: Path) -> None:
    outdir.commit(tmp, out)


def abort(tmp: Path) -> None:
    outdir.abort(tmp)


_cat = category


def _write(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd")


def simulate(scenario: Scenario, tmp: Path,
             on_day: Callable[[int], None] | None = None) -> Simulation:
    """Run `scenario` and write its results into the folder `tmp` (from prepare), the
    ledger streamed during the run; `on_day(days_done)` after each day."""
    t0 = time.perf_counter()
    with kernel_threads(scenario.run.people):
        sim = Simulation(scenario, ledger_path=tmp / "ledger.parquet")
        stream_sanctions(sim, tmp / "sanctions.parquet")
        sim.run(on_day=on_day)
    write_results(sim, tmp, time.perf_counter() - t0)
    return sim


def write_results(sim: Simulation, tmp: Path, wall_seconds: float) -> None:
    """Write the tables of a finished simulation and, last, its manifest."""
    t0 = time.perf_counter()
    _write(sim.rows.table(), tmp / "timeseries.parquet")
    _write_people(sim, tmp / "people.parquet")
    f = sim.firms
    firm_cols = {
        "id": np.arange(f.n, dtype=np.int32), "uscc": pa.array(f.uscc.tolist(), pa.string()),
        "legal_rep": f.legal_rep, "region": f.region, "sector": _cat(f.sector, SECTORS),
        "compliance": f.compliance, "listed": np.zeros(f.n, np.uint8),
    }
    for m in sim.modules.values():
        firm_cols.update(m.firm_columns())
    _write(pa.table(firm_cols), tmp / "firms.parquet")
    _write_sanctions(sim, tmp / "sanctions.parquet")
    write_seconds = time.perf_counter() - t0
    s = sim.scenario
    manifest = {
        "format_version": FORMAT_VERSION,
        "credsim_version": __version__,
        "complete": True,
        "scenario_name": s.name,
        "scenario": s.model_dump(mode="json"),
        "scenario_toml": scenario_to_toml(s),
        "seed_entropy": sim.streams.entropy(),
        "people": sim.people_rows,
        "adults": sim.adults,
        "days": s.run.days,
        "firms": f.n,
        "ties": sim.n_ties,
        "modules": list(dict.fromkeys(m.kind for m in sim.modules.values())),
        "ledger_rows": sim.ledger.rows_written,
        "timings_seconds": {**{k: round(v, 4) for k, v in sim.timings.items()},
                            "write": round(write_seconds, 4)},
        "module_timings_seconds": {k: round(v, 4) for k, v in sim.module_timings.items()},
        "wall_seconds": round(wall_seconds + write_seconds, 3),
        "person_days_per_second": round(sim.person_days / max(wall_seconds, 1e-9)),
        "python": platform.python_version(),
        "tables": list(TABLES),
        "score_assortativity": _assortativity(sim),
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2), "utf-8")


PEOPLE_ROW_GROUP = 1 << 20
SANCTIONS_ROW_GROUP = 1 << 20


def _write_sanctions(sim: Simulation, path: Path) -> None:
    """sanctions.parquet in row groups: a national run applies gates millions of times
    (written as the run went if stream_sanctions set it up)."""
    applied = sim.gates.applied
    if applied.sink is not None:
        applied.close()
        applied.sink.close()
        return
    a = applied.arrays()
    table_of = _sanctions_table(sim)
    _write_in_groups(path, len(a["id"]), SANCTIONS_ROW_GROUP,
                     lambda part: table_of({k: v[part] for k, v in a.items()}))


def stream_sanctions(sim: Simulation, path: Path) -> None:
    """Write sanctions.parquet as the run goes, a row group each time the gates have
    applied SANCTIONS_ROW_GROUP times, so that their applications are not all kept in
    memory (the file is the same as written at the end)."""
    sim.gates.applied.stream_to(_GroupWriter(path, _sanctions_table(sim)),
                                group_rows=SANCTIONS_ROW_GROUP)


class _GroupWriter:
    """Writes each part it is called with as a row group of a Parquet file."""

    def __init__(self, path: Path, table_of: Callable[[dict], pa.Table]) -> None:
        self.path, self.table_of = path, table_of
        self.writer: pq.ParquetWriter | None = None

    def __call__(self, part: dict[str, np.ndarray]) -> None:
        table = self.table_of(part)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self.writer.write_table(table)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _sanctions_table(sim: Simulation) -> Callable[[dict], pa.Table]:
    """The table of sanctions.parquet for some applications (columns as the gates keep
    them)."""
    gates = sim.gates.gates
    gate_domain = np.array([g.domain for g in gates], dtype=np.int16)
    effect = np.array([g.sanction for g in gates], dtype=np.int16)  # EFFECTS codes
    names = [g.name for g in gates]

    def table_of(a: dict) -> pa.Table:
        gate = a["gate"]
        trig = a["trigger_domain"].astype(np.int16)
        return pa.table({
            "day": a["day"], "id": a["id"], "gate": _cat(gate, names),
            "effect": _cat(effect[gate] if gates else gate, EFFECTS),
            "gate_domain": _cat(gate_domain[gate] if gates else gate, DOMAINS),
            "trigger_domain": _cat(np.where(trig < len(DOMAINS), trig, len(DOMAINS)),
                                   list(DOMAINS) + ["none"]),
            "wrongful": a["wrongful"],
        })

    return table_of


def _write_people(sim: Simulation, path: Path) -> None:
    """people.parquet in row groups, so writing needs no population-sized copies."""
    _write_in_groups(path, sim.people_rows, PEOPLE_ROW_GROUP,
                     lambda part: _people_table(sim, part))


def _write_in_groups(path: Path, rows: int, group: int, table_of) -> None:
    """Write a table of `rows` rows in row groups of `group`, each made by
    table_of(slice) only when it is written (at least one group, so an empty table
    still has its schema)."""
    writer = None
    try:
        for lo in range(0, max(rows, 1), group):
            table = table_of(slice(lo, min(lo + group, rows)))
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema, compression="zstd")
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()


def _age_bands(age: np.ndarray) -> pa.DictionaryArray:
    """Age bands; null for a slot no one lives in (someone who has died)."""
    absent = age == ABSENT
    if not absent.any():
        return _cat(age, AGE_BANDS)
    return _cat(np.minimum(age, len(AGE_BANDS) - 1), AGE_BANDS, mask=absent)


def _people_table(sim: Simulation, part: slice) -> pa.Table:
    p, g = sim.people, sim.graph
    cols: dict = {
        "id": np.arange(part.start, part.stop, dtype=np.int32), "household": p.household[part],
        "region": p.region[part], "urban": p.urban[p.region[part]], "group": p.group[part],
        "age_band": _age_bands(p.age[part]),
        "parent1": p.parent1[part], "parent2": p.parent2[part], "income": p.income[part],
        "savings": sim.economy.savings[part], "compliance": p.compliance[part],
        "voice": p.voice[part],
        "sociability": None if p.sociability is None else p.sociability[part],
        "generosity": p.generosity[part],
        # Top schools are a state only where schooling runs.
        "school": _cat(p.school[part], SCHOOLING_STATES if sim.get("schooling")
                       else SCHOOL_STATES),
    }
    if p.sociability is None:
        del cols["sociability"]  # no graph: nothing read it
    if g is not None:
        cols.update({"degree": g.degree(active_only=True, rows=part),
                     "contacts": g.contacts(rows=part), "ties_dropped": g.dropped(rows=part)})
    for m in sim.modules.values():
        cols.update(m.people_columns(part))
    return pa.table(cols)


def read_manifest(folder: Path, missing: str, no_manifest: str) -> dict:
    """The JSON object in folder/manifest.json of a run, compare or sweep folder. Raises
    InputError naming the folder with `missing` if there is no such folder, with
    `no_manifest` if it has no manifest, and naming the file if that is unreadable or
    not an object."""
    if not folder.is_dir():
        raise InputError(f"{folder}: {missing}")
    mf = folder / "manifest.json"
    if not mf.is_file():
        raise InputError(f"{folder}: {no_manifest}")
    try:
        manifest = json.loads(mf.read_text("utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: bad JSON or bad UTF-8
        raise InputError(f"{mf}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict):
        raise InputError(f"{mf}: not a credsim manifest (expected a JSON object)")
    return manifest


COMPARISON_KINDS = ("compare", "sweep")  # folders of credsim.audit.replicates


class RunManifest(BaseModel):
    """The manifest fields that the readers of a run folder use, with their types."""

    model_config = ConfigDict(strict=True, extra="allow")

    complete: Literal[True]
    scenario_name: str
    scenario: dict[str, Any]
    people: int = Field(ge=1)
    adults: int = Field(ge=0)
    days: int = Field(ge=1)
    firms: int = Field(ge=0)
    tables: list[Literal[TABLES]]  # type: ignore[valid-type]
    ledger_rows: int | None = Field(None, ge=0)
    score_assortativity: dict[str, float | None] = {}
    # The modules the run ran (None in folders written before they were recorded) and
    # its ties (None: no graph was built).
    modules: list[str] | None = None
    ties: int | None = None
    scenario_toml: str = ""
    wall_seconds: float | None = Field(None, ge=0)
    person_days_per_second: float | None = Field(None, ge=0)


def open_run(path: Path) -> dict:
    """Read and check a run folder: its manifest against RunManifest and the scenario
    model, and its tables (see check_tables). Returns the manifest; raises InputError
    with one message naming the folder or the file if the folder is not usable."""
    manifest = read_manifest(path, "no such run folder",
                             "not a complete run folder (no manifest.json)")
    mf = path / "manifest.json"
    kind = manifest.get("kind")
    if kind in COMPARISON_KINDS:
        raise InputError(
            f"{path} is a {kind} folder (written by credsim {kind}), not a run folder; "
            f"read it with `credsim report {path}` or its summary.parquet")
    if kind is not None:
        raise InputError(f"{mf}: kind {kind!r} is not a credsim folder kind (a run folder "
                         f"has no kind; compare and sweep folders have "
                         f"{' or '.join(COMPARISON_KINDS)})")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        lacks = OLDER_FORMATS.get(version) if isinstance(version, int) else None
        raise InputError(
            f"{mf}: format_version {version!r} is not supported by credsim {__version__} "
            f"(expects {FORMAT_VERSION}{'; ' + lacks if lacks else ''}); re-run the "
            "scenario with this version"
        )
    if manifest.get("complete") is not True:
        raise InputError(f"{mf}: the run is not marked complete")
    try:
        m = RunManifest.model_validate(manifest)
    except ValidationError as exc:
        raise InputError(f"{mf}: not a valid run manifest ({_first_error(exc)})") from None
    try:
        scenario = Scenario.model_validate(m.scenario)
    except ValidationError as exc:
        raise InputError(f"{mf}: the scenario is not valid "
                         f"({_first_error(exc, 'scenario')})") from None
    _check_consistent(mf, m)
    check_tables(path, m, scenario)
    # The readers see the scenario as validated: every key present, defaults filled in.
    return {**manifest, "scenario": scenario.model_dump(mode="json")}


def _first_error(exc: ValidationError, prefix: str = "") -> str:
    """The first validation error as `key: message` (and how many more there are)."""
    errors = exc.errors()
    first = errors[0]
    key = ".".join(([prefix] if prefix else []) + [str(x) for x in first["loc"]]) or "(top)"
    more = f"; and {len(errors) - 1} more" if len(errors) > 1 else ""
    return f"{key}: {first['msg']}{more}"


def _check_consistent(mf: Path, m: RunManifest) -> None:
    """The manifest lists every table and its counts agree with each other (the tables'
    row counts are checked against them in check_tables)."""
    if set(m.tables) != set(TABLES):
        raise InputError(f"{mf}: tables must list {', '.join(TABLES)} "
                         f"(it lists {', '.join(m.tables) or 'none'})")
    if m.adults > m.people:
        raise InputError(f"{mf}: adults ({m.adults}) is more than people ({m.people})")


# Columns each table must have for the readers (summary, audit, report, lookup,
# calibrate); check_tables adds those that depend on the scenario.
BASE_COLUMNS: dict[str, tuple[str, ...]] = {
    "timeseries": ("day", "sanctioned", "sanctioned_wrongful", "records_false",
                   "ties_dropped", "voice_events"),
    "ledger": ("entity", "id", "day", "kind", "cause", "channel", "record", "delta",
               "value", "ref"),
    "people": ("id", "household", "region", "group", "age_band", "parent1", "parent2",
               "savings", "voice", "school", "contacts", "sanctioned",
               "sanctioned_wrongful"),
    "firms": ("id", "uscc", "legal_rep", "region", "sector", "listed"),
    "sanctions": ("day", "id", "gate", "effect", "gate_domain", "trigger_domain",
                  "wrongful"),
}


# The required columns that hold labels or flags; every other one holds numbers.
TEXT_COLUMNS = {"entity", "kind", "cause", "channel", "record", "age_band", "school", "grade",
                "grade_true", "uscc", "sector", "gate", "effect", "gate_domain",
                "trigger_domain", "sex", "met_partner", "parents_at"}
FLAG_COLUMNS = {"sanctioned", "sanctioned_wrongful", "ever_listed", "wrongful",
                "composite_participant", "blacklisted", "blacklisted_true", "red_listed",
                "alive", "ever_partnered", "platform_user"}


def _type_ok(column: str, t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    if column in TEXT_COLUMNS:
        return pa.types.is_string(t) or pa.types.is_large_string(t)
    if column in FLAG_COLUMNS:
        return pa.types.is_boolean(t) or pa.types.is_integer(t)
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def _classes_of(m: RunManifest, s: Scenario) -> list:
    """The module kinds a run ran, as its manifest records them (a module no longer
    installed is left out: its own columns are not checked), so that what is
    installed now does not change what an old folder must hold."""
    if m.modules is None:
        return module_classes(s)
    known = kinds()
    return [known[k] for k in m.modules if k in known]


def required_columns(s: Scenario, m: RunManifest | None = None) -> dict[str, set[str]]:
    """The columns each table of a run of `s` (with manifest `m`) has and the readers
    use."""
    cols = {t: set(c) for t, c in BASE_COLUMNS.items()}
    ts, people = cols["timeseries"], cols["people"]
    ts.update(f"gate_{name}" for name in s.gates)
    classes = module_classes(s) if m is None else _classes_of(m, s)
    graph = builds_graph(s, classes) if m is None or m.modules is None else m.ties is not None
    if not graph:
        people.discard("contacts")  # no module read ties: the graph was not built
    for cls in classes:
        for table, names in cls.required_columns(s).items():
            cols[table].update(names)
    return cols


def check_tables(path: Path, m: RunManifest, s: Scenario) -> None:
    """Each table's Parquet file opens (its footer is read, not its data), has the
    columns the readers need, and people, days, firms and ledger rows agree with the
    manifest's counts."""
    rows = {"people": m.people, "timeseries": m.days, "firms": m.firms,
            "ledger": m.ledger_rows}
    for table, needed in required_columns(s, m).items():
        f = path / f"{table}.parquet"
        if not f.is_file():
            raise InputError(f"{path}: {table}.parquet is missing")
        try:
            meta = pq.ParquetFile(f).metadata
            schema = meta.schema.to_arrow_schema()
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{f}: not a readable Parquet file "
                             f"({first_line(exc)})") from None
        missing = sorted(needed - set(schema.names))
        if missing:
            raise InputError(f"{f}: missing column{'s' * (len(missing) > 1)} "
                             f"{', '.join(missing)} (this scenario's run writes them)")
        wrong = sorted(c for c in needed if not _type_ok(c, schema.field(c).type))
        if wrong:
            raise InputError(f"{f}: column {wrong[0]} has the wrong type "
                             f"({schema.field(wrong[0]).type})")
        expected = rows.get(table)
        if expected is not None and meta.num_rows != expected:
            raise InputError(f"{f}: {meta.num_rows:,} rows but the manifest says "
                             f"{expected:,} ({'days' if table == 'timeseries' else table})")
    for cls in _classes_of(m, s):
        cls.check_tables(path, m, s)


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn an error from reading a run's tables (a file damaged beyond its footer, a
    column of the wrong type) into an InputError naming the folder."""
    import duckdb

    try:
        yield
    except (duckdb.Error, pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: cannot read the run's tables "
                         f"({first_line(exc)})") from None


def _assortativity(sim: Simulation) -> dict[str, float | None]:
    """Correlation of each system's score across the ends of active ties, at the end."""
    # Without a graph (no module read ties) there are no ties: it is undefined.
    out: dict[str, float] = {}
    for m in sim.modules.values():
        for name, (values, scored) in m.final_scores().items():
            out[name] = (math.nan if sim.graph is None
                         else sim.graph.assortativity(values, scored))
    return {k: (None if np.isnan(v) else round(v, 6)) for k, v in out.items()}
