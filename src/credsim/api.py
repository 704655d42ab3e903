"""credsim from Python: load a scenario, run it, read, audit, look up, compare.

Everything the command line does is reachable from here; the command line is a
thin layer over the same functions. Every bad input raises
`credsim.InputError` with one clear message.

    import credsim
    sc = credsim.load("rongcheng", set={"safeguards.review_capacity": 200}, people=20_000)
    run = credsim.run(sc)              # into a temporary folder the Run owns
    run.audit().table()                # a pyarrow.Table
    run.lookup(12)                     # one person's record
    run.save("runs/rc")                # keep the folder
"""

from __future__ import annotations

import io
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from rich.console import Console

from credsim.errors import InputError
from credsim.scenario import load as _load
from credsim.scenario.model import Scenario
from credsim.scenario.values import set_value, toml_value

Source = str | Path | Scenario

__all__ = ["Audit", "Calibration", "Comparison", "Record", "Run", "compare", "load", "open", "plan",
           "presets", "run", "sweep"]


# ---------------------------------------------------------------- scenarios


def presets() -> list[tuple[str, str]]:
    """The presets, credsim's own and those of installed packages: (name, one-line
    description), by name."""
    return _load.preset_summaries()


def load(source: Source, *, set: Mapping[str, Any] | None = None,  # noqa: A002
         people: int | None = None, days: int | None = None,
         seed: int | None = None) -> Scenario:
    """A validated scenario from a preset name, a TOML file or a Scenario, with `set`
    overrides ({"dotted.key": value}, values as Python objects) and the run's size.

    The scenario's attributes can be edited (each assignment is validated); `run()`
    validates the whole scenario again before it starts.
    """
    if isinstance(source, Scenario):
        label, data = "scenario", source.model_dump(mode="json")
    elif isinstance(source, str | Path):
        label, data = _load._read_source(str(source))
    else:
        raise InputError(f"load: expected a preset name, a TOML path or a Scenario, got "
                         f"{type(source).__name__}")
    for key, value in (set or {}).items():
        set_value(data, key, value, f"set[{key!r}]")
    return _load.validate_sized(data, label, seed=seed, days=days, people=people)


def plan(source: Source, *, set: Mapping[str, Any] | None = None  # noqa: A002
         ) -> list[dict[str, str]]:
    """The day of a scenario as the engine runs it: one dict per hook (phase, module,
    hook, what it does), in order, then each module's daily results (phase "record").
    As `credsim plan`."""
    from credsim.modules.plan import describe_plan

    rows, _ = describe_plan(load(source, set=set))
    return rows


# ---------------------------------------------------------------- runs


class _Folder:
    """A results folder, perhaps a temporary one this object owns: removed with the object
    (or at exit) unless save() keeps it."""

    path: Path

    def _own(self, root: Path | None) -> None:
        self._owned = root
        self._finalizer = (weakref.finalize(self, shutil.rmtree, str(root), True)
                           if root is not None else None)

    def save(self, path: str | Path):
        """Keep the folder at `path` (which must not exist): a temporary folder moves
        there, one opened from disk is copied. Returns self, now at `path`."""
        from credsim.results import outdir

        target = Path(path)
        outdir.check_target(target)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            if self._owned is not None:
                shutil.move(str(self.path), str(target))
                self._finalizer.detach()
                shutil.rmtree(self._owned, ignore_errors=True)
                self._owned = None
            else:
                shutil.copytree(self.path, target)
        except OSError as exc:
            raise InputError(f"{target}: cannot save the folder ({exc.strerror})") from None
        self.path = target
        return self


class Run(_Folder):
    """A complete run folder: its tables, SQL over them, its audit, lookups, reports.

    A Run made by `credsim.run(..., out=None)` lives in a temporary folder that is
    removed when the Run is garbage-collected or the interpreter exits, unless
    `save(path)` moves it somewhere first.
    """

    def __init__(self, path: str | Path, *, _owned_root: Path | None = None):
        from credsim.results.run_dir import open_run

        self.path = Path(path)
        self.manifest = open_run(self.path)
        self._own(_owned_root)

    # Reading
    @property
    def scenario(self) -> Scenario:
        return _load.validate(self.manifest["scenario"], f"{self.path / 'manifest.json'}")

    @property
    def tables(self) -> list[str]:
        return list(self.manifest["tables"])

    def table(self, name: str) -> pa.Table:
        """One of the run's tables (see docs/outputs.md) as a pyarrow.Table."""
        if name not in self.tables:
            raise InputError(f"{self.path}: no table {name!r}; tables: {', '.join(self.tables)}")
        try:
            return pq.read_table(self.path / f"{name}.parquet")
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{self.path / f'{name}.parquet'}: unreadable ({exc})") from None

    def sql(self, query: str) -> pa.Table:
        """DuckDB SQL over the run's tables, confined as `credsim query` is."""
        from credsim.results.query import query_arrow

        return query_arrow(self.path, query)

    # The harm audit, records, reports
    def audit(self, baseline: Run | str | Path | None = None,
              bound_days: float = 30.0) -> Audit:
        """Every measure of the harm audit (docs/measures.md); `baseline`: the same society
        run without the system, for the measures relative to it."""
        from credsim.audit.measures import compute

        base = baseline.path if isinstance(baseline, Run) else (
            Path(baseline) if baseline is not None else None)
        return Audit(compute(self.path, base, bound_days), self.path)

    def lookup(self, key: int | str) -> Record:
        """A person's record (by id) or a firm's (by USCC), as `credsim lookup` shows it."""
        from credsim.results.lookup import lookup

        if isinstance(key, bool) or not isinstance(key, int | str):
            raise InputError(f"lookup: expected a person id or a USCC, got {key!r}")
        return Record(lookup(self.path, str(key)))

    def report(self, out: str | Path | None = None) -> Path:
        """Write the self-contained HTML report; return its path."""
        from credsim.audit.report import write_report

        return write_report(self.path, Path(out) if out is not None else None)

    def calibrate(self) -> Calibration:
        """The run's court list against the published national figures, as `credsim
        calibrate` compares them (docs/presets.md, Calibration)."""
        from credsim.audit import calibrate as cal
        from credsim.audit import series as ser

        return Calibration(cal.calibrate(self.path), ser.calibrate_series(self.path),
                           self.path)

    def summary(self) -> list[tuple[str, float | None, str]]:
        """The headline figures: (name, value, unit)."""
        from credsim.results.summary import summarize

        _, figs = summarize(self.path)
        return [(f.name, f.value, f.unit) for f in figs]

    # Display
    def __repr__(self) -> str:
        m = self.manifest
        return (f"<credsim.Run {m['scenario_name']!r}: {m['people']:,} people, "
                f"{m['days']} days, seed {m['scenario']['run']['seed']} at {self.path}>")

    def _repr_html_(self) -> str:
        from credsim.notebook import run_html

        return run_html(self)


def run(source: Source, *, set: Mapping[str, Any] | None = None,  # noqa: A002
        people: int | None = None, days: int | None = None, seed: int | None = None,
        out: str | Path | None = None, progress: bool = False, force: bool = False) -> Run:
    """Run a scenario (a Scenario, a preset name or a TOML path, with the same overrides
    as `load`) and return the Run. `out=None` runs into a temporary folder the Run owns;
    `progress=True` shows a progress bar (also in a notebook); `force=True` skips the
    memory check."""
    from credsim.memory import check_fits
    from credsim.progress import DayProgress
    from credsim.results import outdir, run_dir

    scenario = load(source, set=set, people=people, days=days, seed=seed)
    check_fits(scenario, force=force)
    owned = None
    if out is None:
        owned = Path(tempfile.mkdtemp(prefix="credsim-run-"))
        target = owned / "run"
    else:
        target = Path(out)
    try:
        tmp = run_dir.prepare(target)
    except BaseException:
        if owned is not None:
            shutil.rmtree(owned, ignore_errors=True)
        raise
    try:
        with DayProgress(scenario.run.days, scenario.run.people, enabled=progress,
                         always=progress) as bar:
            run_dir.simulate(scenario, tmp, on_day=bar.update)
        run_dir.commit(tmp, target)
    except OSError as exc:
        run_dir.abort(tmp)
        raise outdir.write_error(target, exc) from None
    except BaseException:
        run_dir.abort(tmp)
        if owned is not None:
            shutil.rmtree(owned, ignore_errors=True)
        raise
    return Run(target, _owned_root=owned)


def open(path: str | Path) -> Run:  # noqa: A001 - credsim.open, as the docs name it
    """A Run from an existing run folder."""
    return Run(path)


# ---------------------------------------------------------------- results


def _to_pandas(table: pa.Table):
    try:
        return table.to_pandas()
    except ImportError:
        raise InputError("to_pandas() needs pandas: pip install 'credsim[notebook]'") from None


def _to_polars(table: pa.Table):
    try:
        import polars
    except ImportError:
        raise InputError("to_polars() needs Polars: pip install 'credsim[notebook]'") from None
    return polars.from_arrow(table)


class _Frames:
    """to_pandas() and to_polars() of the object's table(), through Arrow."""

    def table(self) -> pa.Table:  # pragma: no cover - each class defines it
        raise NotImplementedError

    def to_pandas(self):
        return _to_pandas(self.table())

    def to_polars(self):
        return _to_polars(self.table())


class Audit(_Frames):
    """The harm audit's measures of one run."""

    def __init__(self, measures: list, path: Path):
        self.measures = measures
        self.path = path

    def table(self) -> pa.Table:
        """measure, key, value, unit: one row per measure (docs/measures.md)."""
        from credsim.audit.measures import to_table

        return to_table(self.measures)

    def value(self, measure: str, key: str = "") -> float | None:
        for m in self.measures:
            if m.measure == measure and m.key == key:
                return m.value
        raise InputError(f"audit: no measure {measure!r} with key {key!r} in this run")

    def save(self) -> Path:
        """Write measures.parquet into the run folder (as `credsim audit` does)."""
        from credsim.audit.measures import write_measures

        return write_measures(self.measures, self.path)

    def __repr__(self) -> str:
        return f"<credsim.Audit of {self.path}: {len(self.measures)} measures>"

    def _repr_html_(self) -> str:
        from credsim.notebook import audit_html

        return audit_html(self)


class Calibration(_Frames):
    """A run's court list against published figures: `targets` (per-capita rates), `points`
    (the published series, point by point, from the list's opening on 1 October 2013) and
    `years` (the points' distance per calendar year)."""

    def __init__(self, targets: list, points: list, path: Path):
        from credsim.audit.series import by_year

        self.targets, self.points, self.path = targets, points, path
        self.years = by_year(points)

    def table(self) -> pa.Table:
        """The series: date, year, metric, bound, published, run, unit, log_ratio, within,
        note, source (one row per published point)."""
        return pa.Table.from_pylist([
            {"date": p.date, "year": p.year, "metric": p.metric, "bound": p.bound,
             "published": p.published, "run": p.run, "unit": p.unit,
             "log_ratio": p.log_ratio, "within": p.within, "note": p.note,
             "source": p.source} for p in self.points])

    def targets_table(self) -> pa.Table:
        """The per-capita targets: target, run, published, unit, log_ratio, within, note,
        source."""
        return pa.Table.from_pylist([
            {"target": r.key, "run": r.run, "published": r.published, "unit": r.unit,
             "log_ratio": r.log_ratio, "within": r.within, "note": r.note,
             "source": r.source} for r in self.targets])

    def years_table(self) -> pa.Table:
        """year, points, judged, within, mean_abs_log_ratio, max_abs_log_ratio."""
        return pa.Table.from_pylist([vars(y) for y in self.years])

    @property
    def within_range(self) -> bool | None:
        """Whether every judged point of the series lies within its published range;
        None when no point is judged (a run too small or too short), rather than a
        True that would read as a calibrated run."""
        judged = [p.within for p in self.points if p.within is not None]
        return all(judged) if judged else None

    def __repr__(self) -> str:
        judged = [p for p in self.points if p.within is not None]
        inside = sum(1 for p in judged if p.within)
        return (f"<credsim.Calibration of {self.path}: {inside} of {len(judged)} judged "
                "points of the published series within range>")


class Record:
    """One person's or firm's record: str() is the portal view with its explanation."""

    def __init__(self, record):
        self.record = record

    @property
    def kind(self) -> str:
        return self.record.kind

    @property
    def entries(self) -> pa.Table:
        """Every ledger entry of the record, with what ended it and its explanation."""
        rows = [{"day": e.day, "kind": e.kind, "cause": e.cause, "channel": e.channel,
                 "record": e.record, "delta": e.delta, "value": e.value, "change": e.change,
                 "ended_day": e.ended_day, "ended_by": e.ended_by, "note": e.note}
                for e in self.record.ledger]
        schema = pa.schema([("day", pa.int32()), ("kind", pa.string()), ("cause", pa.string()),
                            ("channel", pa.string()), ("record", pa.string()),
                            ("delta", pa.int64()), ("value", pa.int64()),
                            ("change", pa.string()), ("ended_day", pa.int32()),
                            ("ended_by", pa.string()), ("note", pa.string())])
        return pa.Table.from_pylist(rows, schema=schema)

    def to_pandas(self):
        """The entries as a pandas DataFrame."""
        return _to_pandas(self.entries)

    def to_polars(self):
        """The entries as a Polars DataFrame."""
        return _to_polars(self.entries)

    def __getattr__(self, name: str):
        if name == "record":
            raise AttributeError(name)
        return getattr(self.record, name)

    def __str__(self) -> str:
        from credsim.results.lookup import render

        buf = io.StringIO()
        render(self.record, Console(file=buf, width=100, no_color=True, highlight=False))
        return buf.getvalue()

    def __repr__(self) -> str:
        r = self.record
        who = f"person {r.id}" if r.kind == "person" else f"firm {r.uscc}"
        return f"<credsim.Record {who}: {len(r.ledger)} ledger entries>"

    def _repr_html_(self) -> str:
        from credsim.notebook import record_html

        return record_html(self)


class Comparison(_Frames, _Folder):
    """A compare or sweep folder: every measure's mean and 95 % interval per scenario or
    grid point, and the paired difference from the first one."""

    def __init__(self, path: str | Path, *, _owned_root: Path | None = None):
        from credsim.results.run_dir import read_manifest

        self.path = Path(path)
        self.manifest = read_manifest(self.path, "no such compare or sweep folder",
                                      "not a compare or sweep folder (no manifest.json)")
        if self.manifest.get("kind") not in ("compare", "sweep"):
            raise InputError(f"{self.path}: not a compare or sweep folder; a run folder opens "
                             "with credsim.open")
        self._own(_owned_root)

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def labels(self) -> list[str]:
        return [p["label"] for p in self.manifest["points"]]

    def table(self) -> pa.Table:
        """summary.parquet: scenario, point, measure, key, unit, kind, n, mean, sd,
        ci_low, ci_high (on the scale `interval` names), and versus, diff_* and
        unpaired_* for points after the first."""
        try:
            return pq.read_table(self.path / "summary.parquet")
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{self.path / 'summary.parquet'}: unreadable ({exc})") from None

    def runs(self) -> pa.Table:
        """Every replicate's measures, one row per run and measure."""
        files = sorted(f for f in (self.path / "runs").glob("*.parquet")
                       if not f.name.endswith(".series.parquet"))
        return pa.concat_tables([pq.read_table(f) for f in files])

    def series(self) -> pa.Table:
        """series.parquet: per scenario and day, the mean over replicates of the daily
        series (people sanctioned, sanctioned on a false record, listed) and its 95 %
        interval."""
        try:
            return pq.read_table(self.path / "series.parquet")
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"{self.path / 'series.parquet'}: unreadable ({exc})") from None

    def report(self, out: str | Path | None = None) -> Path:
        from credsim.audit.report import write_report

        return write_report(self.path, Path(out) if out is not None else None)

    def __repr__(self) -> str:
        return (f"<credsim.Comparison ({self.kind}) of {', '.join(self.labels)}: "
                f"{self.manifest['replicates']} replicates at {self.path}>")

    def _repr_html_(self) -> str:
        from credsim.notebook import comparison_html

        return comparison_html(self)


def _console(progress: bool) -> Console:
    return Console(stderr=True) if progress else Console(file=io.StringIO())


def _settings_as_strings(set: Mapping[str, Any] | None) -> list[str]:  # noqa: A002
    """`set` overrides as the command line's key=value strings (TOML values)."""
    return [f"{k}={toml_value(v)}" for k, v in (set or {}).items()]


def _out_or_temp(out: str | Path | None, name: str) -> tuple[Path, Path | None]:
    if out is not None:
        return Path(out), None
    owned = Path(tempfile.mkdtemp(prefix=f"credsim-{name}-"))
    return owned / name, owned


def compare(scenarios: Sequence[Source], *, replicates: int = 10,
            set: Mapping[str, Any] | None = None,  # noqa: A002
            people: int | None = None, days: int | None = None, seed: int | None = None,
            workers: int | None = None, scheduler: str | None = None,
            out: str | Path | None = None, progress: bool = False) -> Comparison:
    """Run each scenario `replicates` times with common random numbers (replicate r uses
    seed + r) and return the Comparison."""
    from credsim.audit import replicates as rep

    def command(paths: list[str], target: Path) -> None:
        rep.compare_command(paths, replicates=replicates, out=target,
                            overrides=_settings_as_strings(set), seed=seed, days=days,
                            people=people, workers=workers, scheduler=scheduler,
                            console=_console(progress))

    return _replicated("compare", [_source_text(s) for s in scenarios], out, command)


def sweep(source: Source, *, vary: Mapping[str, Sequence[Any]], replicates: int = 10,
          set: Mapping[str, Any] | None = None,  # noqa: A002
          people: int | None = None, days: int | None = None, seed: int | None = None,
          workers: int | None = None, scheduler: str | None = None,
          out: str | Path | None = None, progress: bool = False) -> Comparison:
    """Run the grid of `vary` ({"dotted.key": [values]}), `replicates` runs per point."""
    from credsim.audit import replicates as rep

    if not isinstance(vary, Mapping) or not vary:
        raise InputError("sweep: vary needs at least one {'dotted.key': [values]}")
    items = []
    for key, values in vary.items():
        if isinstance(values, str | bytes) or not isinstance(values, Sequence) or not values:
            raise InputError(f"sweep: vary[{key!r}] must be a non-empty list of values")
        items.append(f"{key}=" + ",".join(toml_value(v) for v in values))
    def command(paths: list[str], target: Path) -> None:
        rep.sweep_command(paths[0], vary=items, replicates=replicates, out=target,
                          overrides=_settings_as_strings(set), seed=seed, days=days,
                          people=people, workers=workers, scheduler=scheduler,
                          console=_console(progress))

    return _replicated("sweep", [_source_text(source)], out, command)


def _replicated(kind: str, sources: list[str | tuple[str, str]], out: str | Path | None,
                command) -> Comparison:
    """Run a compare or sweep `command(paths, target)` into `out`, or into a temporary
    folder the Comparison owns (removed again if the command fails)."""
    target, owned = _out_or_temp(out, kind)
    try:
        with _as_files(sources) as paths:
            command(paths, target)
    except BaseException:
        if owned is not None:
            shutil.rmtree(owned, ignore_errors=True)
        raise
    return Comparison(target, _owned_root=owned)


def _source_text(source: Source) -> str | tuple[str, str]:
    """A preset name or path as it is, a Scenario as (name, TOML text)."""
    if isinstance(source, Scenario):
        return (source.name, _load.scenario_to_toml(_load.validate(
            source.model_dump(mode="json"), "scenario")))
    if isinstance(source, str | Path):
        return str(source)
    raise InputError(f"expected a preset name, a TOML path or a Scenario, got "
                     f"{type(source).__name__}")


@contextmanager
def _as_files(sources: list[str | tuple[str, str]]) -> Iterator[list[str]]:
    """Preset names and paths as they are; scenarios given as objects written to TOML
    files (for the commands' planners) in a temporary folder removed afterwards."""
    folder: Path | None = None
    try:
        paths = []
        for i, s in enumerate(sources):
            if isinstance(s, tuple):
                folder = folder or Path(tempfile.mkdtemp(prefix="credsim-scenarios-"))
                name, text = s
                path = folder / f"{i}-{_safe(name)}.toml"
                path.write_text(text, "utf-8")
                s = str(path)
            paths.append(s)
        yield paths
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40] or "scenario"
