"""Run folders: written under a temporary name, renamed when complete, checked on open.

A run folder holds manifest.json, timeseries.parquet, ledger.parquet,
people.parquet, firms.parquet and sanctions.parquet.
"""

from __future__ import annotations

import json
import platform
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from credsim import __version__
from credsim.engine import Simulation
from credsim.errors import InputError
from credsim.population.firms import SECTORS
from credsim.population.people import AGE_BANDS, CHILD, SCHOOL_STATES
from credsim.results import outdir
from credsim.scenario.load import scenario_to_toml
from credsim.scenario.model import DOMAINS, GRADES, Scenario
from credsim.threads import kernel_threads

FORMAT_VERSION = 2  # 2: composite, ratings, firm lists, warnings, audit columns
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


def _cat(codes: np.ndarray, labels) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(
        pa.array(np.asarray(codes).astype(np.int16)), pa.array(list(labels), pa.string())
    )


def _write(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, compression="zstd")


def simulate(scenario: Scenario, tmp: Path,
             on_day: Callable[[int], None] | None = None) -> Simulation:
    """Run `scenario` and write its results into the folder `tmp` (from prepare), the
    ledger streamed during the run; `on_day(days_done)` after each day."""
    t0 = time.perf_counter()
    with kernel_threads(scenario.run.people):
        sim = Simulation(scenario, ledger_path=tmp / "ledger.parquet")
        sim.run(on_day=on_day)
    write_results(sim, tmp, time.perf_counter() - t0)
    return sim


def write_results(sim: Simulation, tmp: Path, wall_seconds: float) -> None:
    """Write the tables of a finished simulation and, last, its manifest."""
    t0 = time.perf_counter()
    _write(pa.Table.from_pylist(sim.rows), tmp / "timeseries.parquet")
    _write_people(sim, tmp / "people.parquet")
    f = sim.firms
    firm_listed = sim.court.firm_listed if sim.court else np.zeros(f.n, np.uint8)
    firm_cols = {
        "id": np.arange(f.n, dtype=np.int32), "uscc": pa.array(f.uscc.tolist(), pa.string()),
        "legal_rep": f.legal_rep, "region": f.region, "sector": _cat(f.sector, SECTORS),
        "compliance": f.compliance, "listed": firm_listed,
    }
    if sim.firm_lists is not None:
        fl = sim.firm_lists
        firm_cols.update({
            "items_shown": fl.items, "blacklisted": fl.black.sum(axis=0) > 0,
            "blacklisted_true": fl.black[0] > 0,
            "red_listed": fl.red_listed_mask(sim.scenario.run.days - 1),
        })
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
        "people": s.run.people,
        "adults": sim.adults,
        "days": s.run.days,
        "firms": f.n,
        "ties": sim.graph.n_ties,
        "ledger_rows": sim.ledger.rows_written,
        "timings_seconds": {**{k: round(v, 4) for k, v in sim.timings.items()},
                            "write": round(write_seconds, 4)},
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
    """sanctions.parquet in row groups: a national run applies gates millions of times."""
    a = sim.consequences.applications()
    gates = sim.consequences.gates
    gate_domain = np.array([g.domain for g in gates], dtype=np.int16)
    effect = np.array([g.sanction for g in gates], dtype=np.int16)  # EFFECTS codes
    names = [g.name for g in gates]

    def table_of(part: slice) -> pa.Table:
        gate = a["gate"][part]
        trig = a["trigger_domain"][part].astype(np.int16)
        return pa.table({
            "day": a["day"][part], "id": a["id"][part], "gate": _cat(gate, names),
            "effect": _cat(effect[gate] if gates else gate, EFFECTS),
            "gate_domain": _cat(gate_domain[gate] if gates else gate, DOMAINS),
            "trigger_domain": _cat(np.where(trig < len(DOMAINS), trig, len(DOMAINS)),
                                   list(DOMAINS) + ["none"]),
            "wrongful": a["wrongful"][part],
        })

    _write_in_groups(path, len(a["id"]), SANCTIONS_ROW_GROUP, table_of)


def _write_people(sim: Simulation, path: Path) -> None:
    """people.parquet in row groups, so writing needs no population-sized copies."""
    _write_in_groups(path, sim.people.n, PEOPLE_ROW_GROUP,
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


def _people_table(sim: Simulation, part: slice) -> pa.Table:
    p, g = sim.people, sim.graph
    cols: dict = {
        "id": np.arange(part.start, part.stop, dtype=np.int32), "household": p.household[part],
        "region": p.region[part], "urban": p.urban[p.region[part]], "group": p.group[part],
        "age_band": _cat(p.age[part], AGE_BANDS),
        "parent1": p.parent1[part], "parent2": p.parent2[part], "income": p.income[part],
        "savings": sim.economy.savings[part], "compliance": p.compliance[part],
        "voice": p.voice[part], "sociability": p.sociability[part],
        "generosity": p.generosity[part], "school": _cat(p.school[part], SCHOOL_STATES),
        "degree": g.degree(active_only=True, rows=part), "contacts": g.contacts(rows=part),
        "ties_dropped": g.dropped(rows=part),
        "deterrence": sim.behaviour.deter[part], "chill": sim.behaviour.chill[part],
    }
    if sim.points is not None:
        pts = sim.points
        cols.update({
            "score": pts.score[part], "score_true": pts.score_true[part],
            "grade": _cat(pts.grade[part], GRADES),
            "grade_true": _cat(pts.grade_true[part], GRADES),
        })
    if sim.court is not None:
        c = sim.court
        cols.update({
            "listings": c.n_list_true[part] + c.n_list_false[part],
            "listings_false": c.n_list_false[part], "ever_listed": c.ever_listed[part],
        })
    if sim.composite is not None:
        comp = sim.composite
        cols.update({
            "composite_participant": comp.opted[part],
            "composite_initial": comp.initial[part], "composite": comp.score[part],
            "composite_true": comp.score_true[part],
        })
    if sim.rating is not None:
        r = sim.rating
        cols.update({"rating": r.rating[part], "rating_true": r.rating_true[part],
                     "rating_shown": r.shown[part].astype(np.float32) / 10})
    if sim.firm_lists is not None:
        fl = sim.firm_lists
        cols.update({"blacklisted_firms": fl.rep_true[part] + fl.rep_false[part],
                     "blacklisted_firms_false": fl.rep_false[part]})
    status = sim.consequences.status[part]
    cols["sanctioned"] = (status & 1) > 0
    cols["sanctioned_wrongful"] = (status & 2) > 0
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


def open_run(path: Path) -> dict:
    """Read and check a run folder's manifest; raise InputError if it is not usable."""
    manifest = read_manifest(path, "no such run folder",
                             "not a complete run folder (no manifest.json)")
    mf = path / "manifest.json"
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise InputError(
            f"{mf}: format_version {version!r} is not supported by credsim {__version__} "
            f"(expects {FORMAT_VERSION}); re-run the scenario with this version"
        )
    if not manifest.get("complete"):
        raise InputError(f"{mf}: the run is not marked complete")
    for t in manifest.get("tables", TABLES):
        if not (path / f"{t}.parquet").is_file():
            raise InputError(f"{path}: {t}.parquet is missing")
    return manifest


def _assortativity(sim: Simulation) -> dict[str, float | None]:
    """Correlation of each system's score across the ends of active ties, at the end."""
    adult = sim.people.age != CHILD
    out: dict[str, float | None] = {}
    if sim.points is not None:
        out["points"] = sim.graph.assortativity(sim.points.score, adult)
    if sim.composite is not None:
        out["composite"] = sim.graph.assortativity(sim.composite.score, sim.composite.opted)
    if sim.rating is not None:
        out["rating"] = sim.graph.assortativity(np.nan_to_num(sim.rating.rating), adult)
    return {k: (None if np.isnan(v) else round(v, 6)) for k, v in out.items()}
