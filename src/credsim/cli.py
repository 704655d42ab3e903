"""The credsim command line."""

from __future__ import annotations

import csv
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand, TyperGroup

from credsim import __version__
from credsim import formatting as fm
from credsim.errors import InputError, RunsFailed, Stopped


class _Commands(TyperGroup):
    """Every command: Ctrl-C that the command does not handle itself ends in one line and
    exit code 130; a closed pipe (`credsim query ... | head`) ends quietly."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            err.print("interrupted", highlight=False)
            raise typer.Exit(130) from None
        except (click.exceptions.Exit, click.ClickException):
            raise
        except BrokenPipeError:
            # Nothing more can reach the reader; later flushes must not fail either.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(1) from None
        except Exception:
            if not _ctrl_c.seen:  # DuckDB turns Ctrl-C into RuntimeError('Query interrupted')
                raise
            err.print("interrupted", highlight=False)
            raise typer.Exit(130) from None


class _ctrl_c:  # noqa: N801 - a flag, read as `_ctrl_c.seen`
    """Whether Ctrl-C was pressed, even if a library turned the KeyboardInterrupt into an
    error of its own."""

    seen = False


def _on_ctrl_c(signum, frame) -> None:
    _ctrl_c.seen = True
    signal.default_int_handler(signum, frame)  # raises KeyboardInterrupt, as usual


class _Command(TyperCommand):
    """A command whose help names arguments by their metavar alone (SCENARIO, RUN_DIR):
    no Python types such as <list[str]>."""

    def collect_usage_pieces(self, ctx):
        pieces = [self.options_metavar] if self.options_metavar else []
        return pieces + [_argument_name(p, usage=True) for p in self.get_params(ctx)
                         if p.param_type_name == "argument"]

    def format_options(self, ctx, formatter) -> None:
        params = [p for p in self.get_params(ctx) if not getattr(p, "hidden", False)]
        args = [(_argument_name(p), (p.help or "") + ("  [required]" if p.required else ""))
                for p in params if p.param_type_name == "argument"]
        opts = [r for p in params if p.param_type_name == "option"
                if (r := p.get_help_record(ctx)) is not None]
        for title, rows in (("Arguments", args), ("Options", opts)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _argument_name(param, usage: bool = False) -> str:
    name = param.metavar or param.name.upper()
    if param.nargs != 1 and not name.endswith("..."):
        name += "..."
    return f"[{name}]" if usage and not param.required else name


app = typer.Typer(
    cls=_Commands,
    rich_markup_mode=None,
    add_completion=False,
    no_args_is_help=True,
    help="credsim: simulate social credit systems on synthetic societies and audit their harms.",
)


def _out_width() -> int | None:
    """Standard output's width: the terminal's, or COLUMNS; piped without COLUMNS, wide
    enough that no table is wrapped or cut."""
    if sys.stdout.isatty() or os.environ.get("COLUMNS", "").isdigit():
        return None
    return 10_000


out = Console(width=_out_width())
err = Console(stderr=True)

# Options shared by several commands, with one name, metavar and meaning everywhere.
_Set = Annotated[list[str] | None, typer.Option(
    "--set", metavar="KEY=VALUE", help="Override: key.path=value (repeatable).")]
_Seed = Annotated[int | None, typer.Option(
    metavar="N", help="Base seed (run.seed); for compare and sweep, replicate r uses N + r.")]
_Days = Annotated[int | None, typer.Option(metavar="N", help="Days to simulate (run.days).")]
_People = Annotated[int | None, typer.Option(
    metavar="N", help="Number of citizens (run.people).")]
_Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print no progress and no table; "
                                      "errors are still printed.")]
_Format = Annotated[str, typer.Option(
    "--format", metavar="FORMAT", help="table, csv, json or markdown (csv and json: full "
    "precision, units in their own column).")]
_RunDir = Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A results folder.")]
_Scenario = Annotated[str, typer.Argument(metavar="SCENARIO", help="Preset name or TOML file.")]


def _fail(message: str) -> None:
    # Messages quote user input (names, paths): printed as text, never as Rich markup.
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def _version(value: bool) -> None:
    if value:
        out.print(f"credsim {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show version.")
    ] = False,
) -> None:
    pass


@app.command(cls=_Command)
def presets() -> None:
    """List the presets, one line each: credsim's own and those of installed packages."""
    from credsim.scenario.load import preset_origin, preset_summaries

    try:
        rows = preset_summaries()
    except InputError as exc:
        _fail(str(exc))
    width = max(len(name) for name, _ in rows)
    for name, desc in rows:
        origin = preset_origin(name)
        # A package's description is its own text: printed as text, never as markup.
        line = f"{desc} (from the package {origin})" if origin else desc
        out.print(f"[bold]{name:<{width}}[/]  {escape(line)}", highlight=False)


@app.command(cls=_Command)
def show(
    scenario: _Scenario,
    set_: _Set = None,
    seed: _Seed = None,
    days: _Days = None,
    people: _People = None,
    plain: Annotated[bool, typer.Option(
        "--plain", help="Plain TOML, without the comments giving each key's meaning, unit "
        "and range.")] = False,
) -> None:
    """Print the fully resolved scenario as TOML, each key with its meaning, unit and range
    as a comment (save, edit and run it)."""
    from credsim.scenario.load import load_scenario, scenario_to_toml
    from credsim.scenario.reference import annotated_toml

    try:
        s = load_scenario(scenario, set_, seed=seed, days=days, people=people)
    except InputError as exc:
        _fail(str(exc))
    sys.stdout.write(scenario_to_toml(s) if plain else annotated_toml(s))


@app.command(cls=_Command)
def plan(
    scenario: _Scenario,
    set_: _Set = None,
    fmt: _Format = "table",
) -> None:
    """Print the day's plan of a scenario: phase, order within the phase, module and hook,
    in the order they run, and whether the social graph is built."""
    from credsim.modules.plan import describe_plan
    from credsim.scenario.load import load_scenario

    fmt = _check_format(fmt)
    try:
        s = load_scenario(scenario, set_)
        steps, ties = describe_plan(s)
    except InputError as exc:
        _fail(str(exc))
    o = fm.Output(f"The day of {s.name}", [fm.Column("phase"), fm.Column("order", True),
                                          fm.Column("module"), fm.Column("hook"),
                                          fm.Column("what it does")])
    for st in steps:
        o.add([st["phase"], str(st["order"]), st["module"], st["hook"], st["does"]], st)
    fm.emit(o, fmt, out)
    if fmt == "table":
        out.print("social graph: " + ("built (read by " + ", ".join(ties) + ")" if ties
                                      else "not built (no module reads ties)"))


@app.command(cls=_Command)
def params(
    prefix: Annotated[str | None, typer.Argument(
        metavar="PREFIX", help="Only the keys that start with this (e.g. safeguards, "
        "court_list.appeal, channels.court).")] = None,
    fmt: _Format = "table",
    markdown: Annotated[bool, typer.Option(
        "--markdown", help="The reference page docs/parameters.md (every key, as Markdown).")
    ] = False,
) -> None:
    """List every scenario parameter with its default, allowed range, unit and meaning."""
    from credsim.scenario import reference as ref

    fmt = _check_format(fmt)
    if markdown:
        if prefix:
            _fail("--markdown prints the whole reference page; for some keys use PREFIX "
                  "--format markdown")
        sys.stdout.write(ref.markdown())
        return
    try:
        rows = ref.parameters(prefix)
    except InputError as exc:
        _fail(str(exc))
    o = fm.Output("", [fm.Column("key"), fm.Column("default"), fm.Column("allowed"),
                       fm.Column("unit"), fm.Column("description")])
    for p in rows:
        o.add([p.key, p.default, p.allowed, p.unit, p.description],
              {"key": p.key, "type": p.type, "default": p.default, "allowed": p.allowed,
               "unit": p.unit, "description": p.description})
    fm.emit(o, fmt, out)


@app.command(cls=_Command)
def run(
    scenario: _Scenario,
    set_: _Set = None,
    seed: _Seed = None,
    days: _Days = None,
    people: _People = None,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", metavar="DIR", help="Results folder to write; must not exist (default: "
        "runs/NAME-seedSEED).")] = None,
    quiet: _Quiet = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Run even if the memory estimate exceeds the memory available.")
    ] = False,
) -> None:
    """Run a scenario and write a results folder."""
    from credsim import warmup
    from credsim.memory import check_fits
    from credsim.progress import DayProgress
    from credsim.results import outdir, run_dir
    from credsim.scenario.load import load_scenario

    try:
        s = load_scenario(scenario, set_, seed=seed, days=days, people=people)
        check_fits(s, force=force)
        if out_dir is None:
            target, tmp = run_dir.prepare_default(s.name, s.run.seed)
        else:
            target, tmp = out_dir, run_dir.prepare(out_dir)
    except InputError as exc:
        _fail(str(exc))
    # A terminated run cleans up like an interrupted one (the except below).
    signal.signal(signal.SIGTERM, _terminate)
    cold = warmup.is_cold(s)
    if cold and not quiet:
        err.print(f"compiling the kernels of {', '.join(warmup.systems_of(s))} (once per "
                  "install, 10-30 s; `credsim warmup` compiles every system)", highlight=False)
    try:
        with DayProgress(s.run.days, s.run.people, enabled=not quiet) as progress:
            run_dir.simulate(s, tmp, on_day=progress.update)
        run_dir.commit(tmp, target)
        # From here the folder is complete: a SIGTERM just ends the process, and says
        # nothing about a folder left behind.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if cold:
            warmup.mark_warm(s)
    except KeyboardInterrupt:
        run_dir.abort(tmp)
        err.print("interrupted; no results folder was left behind")
        raise typer.Exit(130) from None
    except OSError as exc:  # a full disk, or the folder removed under our feet
        run_dir.abort(tmp)
        _fail(str(outdir.write_error(target, exc)))
    except InputError as exc:
        run_dir.abort(tmp)
        _fail(str(exc))
    except BaseException:
        run_dir.abort(tmp)
        raise
    if not quiet:
        _print_summary(target, None)
        out.print(f"results: [bold]{target}[/]", highlight=False)


@app.command(cls=_Command)
def summary(
    run_path: _RunDir,
    baseline: Annotated[Path | None, typer.Option(
        metavar="RUN_DIR", help="Results folder of the counterfactual run.")] = None,
    fmt: _Format = "table",
) -> None:
    """Print a run's headline figures."""
    fmt = _check_format(fmt)
    try:
        _print_summary(run_path, baseline, fmt)
    except InputError as exc:
        _fail(str(exc))


@app.command(cls=_Command)
def query(
    run_path: _RunDir,
    sql: Annotated[str, typer.Argument(metavar="SQL", help="One read-only query (SELECT, "
                                       "WITH, EXPLAIN, DESCRIBE, SHOW) over timeseries, "
                                       "ledger, people, firms, sanctions.")],
    fmt: Annotated[str, typer.Option("--format", metavar="FORMAT",
                                     help="table or csv.")] = "table",
    limit: Annotated[int, typer.Option(metavar="N", help="Most rows shown as a table (at "
                                       "least 1); csv prints every row.", min=1)] = 50,
) -> None:
    """Run one read-only SQL query (DuckDB) over a run's tables; nothing else is read or
    written."""
    from credsim.results.query import stream

    if fmt not in ("table", "csv"):
        _fail(f"--format {fmt!r}: allowed: table, csv")
    try:
        with stream(run_path, sql) as result:
            if fmt == "csv":
                w = csv.writer(sys.stdout)
                w.writerow(result.columns)
                for batch in result.batches():
                    w.writerows(batch)
                return
            rows = result.fetch(limit + 1)  # one more than shown: are there more?
    except InputError as exc:
        _fail(str(exc))
    t = Table(*(escape(c) for c in result.columns))
    for r in rows[:limit]:
        t.add_row(*(escape(_fmt(v)) for v in r))
    out.print(t)
    if len(rows) > limit:
        out.print(f"(more rows than the {limit:,} shown; use --limit N or --format csv)",
                  highlight=False)


@app.command(cls=_Command)
def lookup(
    run_path: _RunDir,
    key: Annotated[str, typer.Argument(metavar="ID_OR_USCC",
                                       help="A person's id (digits) or a firm's 18-character "
                                       "Unified Social Credit Code.")],
) -> None:
    """A person's or firm's record as a credit portal shows it, with the full explanation."""
    from credsim.results.lookup import lookup as find
    from credsim.results.lookup import render

    try:
        render(find(run_path, key), out)
    except InputError as exc:
        _fail(str(exc))


@app.command(cls=_Command)
def audit(
    run_path: _RunDir,
    baseline: Annotated[Path | None, typer.Option(
        metavar="RUN_DIR", help="Results folder of the same society without the system "
        "(same people, days and seed).")] = None,
    bound_days: Annotated[float, typer.Option(
        metavar="N", help="Proportionality bound: a sanction costing more than this many "
        "days of income is disproportionate.", min=0)] = 30.0,
    fmt: _Format = "table",
) -> None:
    """Compute the harm audit's measures, print them and write RUN_DIR/measures.parquet."""
    from credsim.audit.measures import compute, write_measures

    fmt = _check_format(fmt)
    try:
        measures = compute(run_path, baseline, bound_days)
        path = write_measures(measures, run_path)
    except InputError as exc:
        _fail(str(exc))
    o = fm.Output(f"harm audit of {run_path}", [
        fm.Column("measure [identifier key]"), fm.Column("value", numeric=True),
        fm.Column("unit")])
    for m in measures:
        o.add([_measure_text(m), fm.value(m.value, m.unit), m.unit],
              {"measure": m.measure, "key": m.key, "value": m.value, "unit": m.unit,
               "label": getattr(m, "label", "")})
    fm.emit(o, fmt, out)
    # With a machine-readable format, standard output holds the data alone.
    (out if fmt == "table" else err).print(
        f"measures: [bold]{escape(str(path))}[/] (definitions: docs/measures.md)",
        highlight=False)


def _measure_text(m: Any) -> str:
    """How a measure is named in tables for people: in words (credsim.labels, the key
    included), with its identifier and key beneath, as docs/measures.md and
    measures.parquet name them."""
    ident = f"[{m.measure} {m.key}]" if m.key else f"[{m.measure}]"
    label = getattr(m, "label", "")
    return f"{label}\n{ident}" if label else ident


_Workers = Annotated[int | None, typer.Option(
    metavar="N", help="Local worker processes (default: the number of cores).", min=1)]
_Force = Annotated[bool, typer.Option(
    "--force", help="Start even if the memory estimate for the workers' runs side by side "
    "exceeds the memory available.")]
_Scheduler = Annotated[str | None, typer.Option(
    metavar="ADDRESS", help="Dask scheduler address (e.g. tcp://host:8786): run on that "
    "cluster instead of local processes.")]


@app.command(cls=_Command)
def compare(
    scenarios: Annotated[list[str], typer.Argument(
        metavar="SCENARIO...", help="Two or more presets or TOML files.")],
    replicates: Annotated[int, typer.Option(metavar="R", help="Runs per scenario.", min=2)] = 10,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", metavar="DIR", help="Results folder to write; must not exist (default: "
        "runs/compare-NAMES-seedSEED).")] = None,
    set_: _Set = None,
    seed: _Seed = None,
    days: _Days = None,
    people: _People = None,
    workers: _Workers = None,
    scheduler: _Scheduler = None,
    force: _Force = False,
    quiet: _Quiet = False,
    fmt: _Format = "table",
) -> None:
    """Run scenarios R times each with common random numbers; report every measure with a
    95 % interval and the paired differences from the first scenario."""
    fmt = _check_format(fmt)
    with _replicates_ended():
        from credsim.audit import replicates as rep

        folder = rep.compare_command(
            scenarios, replicates=replicates, out=out_dir, overrides=set_, seed=seed,
            days=days, people=people, workers=workers, scheduler=scheduler,
            console=_progress_console(quiet, fmt), force=force)
        if fmt != "table":  # asked for explicitly: printed even with --quiet
            fm.emit(rep.compare_output(folder), fmt, out)


@contextmanager
def _replicates_ended() -> Iterator[None]:
    """How compare and sweep end when they do not finish: bad input (exit 2), failed runs
    (1), or Ctrl-C / SIGTERM (130 / 143), each in one line."""
    try:
        yield
    except InputError as exc:
        _fail(str(exc))
    except RunsFailed as exc:
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    except Stopped as stop:
        err.print(escape(stop.message), highlight=False, soft_wrap=True)
        raise typer.Exit(128 + stop.signum) from None
    except KeyboardInterrupt:  # while importing, before the command handles Ctrl-C itself
        _interrupted_early()


@app.command(cls=_Command)
def sweep(
    scenario: Annotated[str | None, typer.Argument(
        metavar="SCENARIO", help="Preset name or TOML file (none with --resume).")] = None,
    vary: Annotated[list[str] | None, typer.Option(
        "--vary", metavar="KEY=V1,V2,...", help="One grid dimension: a key and its values "
        "(repeatable: a grid).")] = None,
    replicates: Annotated[int, typer.Option(
        metavar="R", help="Runs per grid point.", min=1)] = 10,
    out_dir: Annotated[Path | None, typer.Option(
        "--out", metavar="DIR", help="Results folder to write; must not exist (default: "
        "runs/sweep-NAME-seedSEED).")] = None,
    resume: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Finish the interrupted sweep in this folder.")] = None,
    set_: _Set = None,
    seed: _Seed = None,
    days: _Days = None,
    people: _People = None,
    workers: _Workers = None,
    scheduler: _Scheduler = None,
    force: _Force = False,
    quiet: _Quiet = False,
    fmt: _Format = "table",
) -> None:
    """Run a grid of parameter values, R replicates each; resumable."""
    fmt = _check_format(fmt)
    with _replicates_ended():
        from credsim.audit import replicates as rep

        folder = rep.sweep_command(
            scenario, vary=vary, replicates=replicates, out=out_dir, resume=resume,
            overrides=set_, seed=seed, days=days, people=people, workers=workers,
            scheduler=scheduler, console=_progress_console(quiet, fmt), force=force)
        if fmt != "table":  # asked for explicitly: printed even with --quiet
            fm.emit(rep.sweep_output(folder), fmt, out)


@app.command(cls=_Command)
def report(
    path: Annotated[Path, typer.Argument(metavar="RUN_OR_COMPARISON_DIR",
                                         help="A results folder or a compare/sweep folder.")],
    out_file: Annotated[Path | None, typer.Option(
        "--out", metavar="FILE", help="HTML file to write (default: report.html in the "
        "folder).")] = None,
    baseline: Annotated[Path | None, typer.Option(
        metavar="RUN_DIR", help="A run's baseline: the same society (people, days, seed, "
        "population, graph) without the system.")] = None,
) -> None:
    """Write one self-contained HTML report that opens offline."""
    from credsim.audit import report as rpt

    try:
        written = rpt.write_report(path, out_file, baseline)
    except InputError as exc:
        _fail(str(exc))
    out.print(f"report: [bold]{escape(str(written))}[/]", highlight=False)


@app.command(cls=_Command)
def calibrate(
    run_path: _RunDir,
    fmt: _Format = "table",
    by_year: Annotated[bool, typer.Option(
        "--by-year", help="Only the published series, point by point and year by year "
        "(in any format).")] = False,
) -> None:
    """Compare a run's court list with published national figures: per-capita rates, and
    year by year the published series since the list opened (day 0: 1 October 2013)."""
    from credsim.audit import calibrate as cal
    from credsim.audit import series as ser
    from credsim.results.run_dir import open_run

    fmt = _check_format(fmt)
    try:
        manifest = open_run(run_path)
        rows = [] if by_year else cal.calibrate(run_path)
        points = (ser.calibrate_series(run_path)
                  if by_year or (fmt == "table" and ser.reaches_series(int(manifest["days"])))
                  else None)
    except InputError as exc:
        _fail(str(exc))
    if not by_year:
        _calibration_targets(run_path, manifest, rows, fmt)
    if points is not None:
        if not by_year:
            out.print()
        _calibration_series(run_path, manifest, points, fmt)


def _calibration_targets(run_path: Path, manifest: dict, rows: list, fmt: str) -> None:
    from credsim.audit import calibrate as cal

    o = fm.Output(f"calibration of {run_path}: {manifest['people']:,} people, "
                  f"{manifest['days']:,} days, against published figures", [
                      fm.Column("target"), fm.Column("run", numeric=True),
                      fm.Column("published", numeric=True), fm.Column("unit"),
                      fm.Column("ln(run/pub)", numeric=True), fm.Column("within ×2")])
    for r in rows:
        lr = fm.NOT_AVAILABLE if r.log_ratio is None else fm.fixed(r.log_ratio, 2)
        flag = fm.NOT_AVAILABLE if r.within is None else ("yes" if r.within else "NO")
        o.add([r.key, fm.number(r.run), fm.number(r.published), r.unit, lr, flag],
              {"target": r.key, "run": r.run, "published": r.published, "unit": r.unit,
               "log_ratio": r.log_ratio, "within": r.within, "note": r.note,
               "source": r.source})
    fm.emit(o, fmt, out)
    if fmt != "table":
        return
    for r, tg in zip(rows, cal.TARGETS, strict=True):
        line = f"{r.key}: {tg.source} ({tg.derivation}); run: {tg.run_figure}"
        out.print(escape(line + (f". {r.note}" if r.note else "")), highlight=False,
                  soft_wrap=True)
    out.print(f"Per capita: population of China {fm.number(cal.POPULATION)}; per listed "
              f"person: {fm.number(cal.LISTED_2018)} listed (end 2018). Within range: "
              f"within a factor of {cal.RANGE_FACTOR:g} either way.", highlight=False,
              soft_wrap=True)


def _log_ratio_cell(log_ratio: float | None) -> str:
    if log_ratio is None:
        return fm.NOT_AVAILABLE
    return "-inf" if log_ratio == float("-inf") else fm.fixed(log_ratio, 2)


def _within_cell(within: bool | None) -> str:
    return fm.NOT_AVAILABLE if within is None else ("yes" if within else "NO")


def _calibration_series(run_path: Path, manifest: dict, points: list, fmt: str) -> None:
    from credsim.audit import series as ser

    o = fm.Output(f"the published series against {run_path} (day 0 = 2013-10-01; the run "
                  f"scaled to {ser.POPULATION / 1e9:g} billion people)", [
                      fm.Column("date"), fm.Column("metric"), fm.Column("bound"),
                      fm.Column("published", numeric=True), fm.Column("run", numeric=True),
                      fm.Column("unit"), fm.Column("ln(run/pub)", numeric=True),
                      fm.Column("within")])
    for p in points:
        o.add([p.date.isoformat(), p.metric, p.bound, fm.number(p.published),
               fm.number(p.run), p.unit, _log_ratio_cell(p.log_ratio), _within_cell(p.within)],
              {"date": p.date.isoformat(), "year": p.year, "metric": p.metric,
               "bound": p.bound, "published": p.published, "run": p.run, "unit": p.unit,
               "log_ratio": p.log_ratio, "within": p.within, "note": p.note,
               "source": p.source})
    fm.emit(o, fmt, out)
    if fmt != "table":
        return
    years = fm.Output("distance per year", [
        fm.Column("year"), fm.Column("points", numeric=True), fm.Column("judged", numeric=True),
        fm.Column("within", numeric=True), fm.Column("mean |ln|", numeric=True),
        fm.Column("max |ln|", numeric=True)])
    for y in ser.by_year(points):
        years.add([str(y.year), str(y.points), str(y.judged), str(y.within),
                   _abs_cell(y.mean_abs_log_ratio), _abs_cell(y.max_abs_log_ratio)])
    fm.emit(years, fmt, out)
    for p in points:
        if p.note:
            out.print(escape(f"{p.date} {p.metric}: {p.note}"), highlight=False,
                      soft_wrap=True)
    judged = [p for p in points if p.within is not None]
    out.print(f"{sum(1 for p in judged if p.within)} of {len(judged)} judged points within "
              f"range ({len(points) - len(judged)} not judged). Within range: within a "
              f"factor of {ser.RANGE_FACTOR:g} either way; for a lower bound (\"more "
              f"than\"), at least the figure / {ser.RANGE_FACTOR:g}. Sources: the source "
              "column of --by-year --format csv.", highlight=False, soft_wrap=True)


def _abs_cell(v: float | None) -> str:
    return fm.NOT_AVAILABLE if v is None else ("inf" if v == float("inf") else fm.fixed(v, 2))


@app.command(name="warmup", cls=_Command)
def warmup_command() -> None:
    """Compile the kernels of every shipped system now (once per install), so that first
    runs start at once."""
    from credsim.warmup import warm_all

    warm_all(lambda name, secs: out.print(f"{name:<16} {secs:5.1f} s", highlight=False))


@app.command(cls=_Command)
def serve(
    port: Annotated[int, typer.Option(metavar="N", help="Port to listen on.", min=1,
                                      max=65535)] = 8765,
    host: Annotated[str, typer.Option(metavar="HOST", help="Address to bind; anything but "
                                      "127.0.0.1 exposes the lab to the network.")
                    ] = "127.0.0.1",
    no_browser: Annotated[bool, typer.Option("--no-browser",
                                             help="Do not open a browser.")] = False,
    data: Annotated[Path | None, typer.Option(
        metavar="DIR", help="Keep the jobs' folders here (default: a temporary folder "
        "removed at exit).")] = None,
    max_people: Annotated[int, typer.Option(metavar="N", help="Most people per run.")
                          ] = 1_000_000,
    max_days: Annotated[int, typer.Option(metavar="N", help="Most days per run.")] = 18_263,
    max_person_days: Annotated[int, typer.Option(
        metavar="N", help="Most people x days per run.")] = 1_825_000_000,
    max_replicates: Annotated[int, typer.Option(
        metavar="R", help="Most replicates per setting in a comparison.")] = 10,
    max_queued: Annotated[int, typer.Option(
        metavar="N", help="Most jobs waiting, over all browsers.")] = 32,
    max_per_browser: Annotated[int, typer.Option(
        metavar="N", help="Most jobs queued or running for one browser.")] = 3,
    concurrency: Annotated[int, typer.Option(metavar="N", help="Jobs run at once.")] = 1,
    allow_host: Annotated[list[str] | None, typer.Option(
        metavar="NAME", help="Also answer to this Host name (repeatable), e.g. the name "
        "others reach this machine by.")] = None,
) -> None:
    """The lab in the browser: presets, levers, runs with live charts, the audit,
    comparisons, one person's story and the downloads (docs/dashboard.md)."""
    from credsim.serve.jobs import Limits
    from credsim.serve.server import serve as start

    def say(text: str, loud: bool = False) -> None:
        err.print(escape(text), style="bold red" if loud else None, highlight=False)

    limits = Limits(max_people=max_people, max_days=max_days,
                    max_person_days=max_person_days, max_replicates=max_replicates,
                    max_queued=max_queued, max_per_session=max_per_browser,
                    concurrency=concurrency)
    try:
        start(host, port, not no_browser, data, limits, say=say,
              allow_hosts=tuple(allow_host or ()))
    except InputError as exc:
        _fail(str(exc))


def _fmt(v) -> str:
    if isinstance(v, float):
        return fm.number(v, 6)
    return "" if v is None else str(v)


def _check_format(fmt: str) -> str:
    try:
        return fm.check_format(fmt)
    except ValueError as exc:
        _fail(str(exc))
    raise AssertionError("unreachable")


def _progress_console(quiet: bool, fmt: str) -> Console:
    """Where compare and sweep print their progress lines and table: nowhere if quiet;
    standard error if standard output is for data (csv, json, markdown)."""
    if quiet:
        return Console(quiet=True)
    return out if fmt == "table" else err


def _print_summary(run_path: Path, baseline: Path | None, fmt: str = "table") -> None:
    from credsim.results.summary import summarize

    manifest, figs = summarize(run_path, baseline)
    o = fm.Output(f"{manifest['scenario_name']}: {manifest['people']:,} people, "
                  f"{manifest['days']:,} days, seed {manifest['scenario']['run']['seed']}",
                  [fm.Column("figure"), fm.Column("value", numeric=True), fm.Column("unit")])
    for f in figs:
        o.add([f.name, fm.value(f.value, f.unit), f.unit],
              {"figure": f.name, "value": f.value, "unit": f.unit})
    fm.emit(o, fmt, out)
    pds, wall = manifest.get("person_days_per_second"), manifest.get("wall_seconds")
    if fmt == "table" and pds and wall is not None:
        out.print(f"{fm.fixed(wall, 1)} s, {fm.fixed(pds, 0)} person-days/s", highlight=False)


class _Terminated(SystemExit):
    """SIGTERM during `credsim run` (see _terminate)."""


def _terminate(signum, frame) -> None:
    """`credsim run`'s SIGTERM handler: unwinds like Ctrl-C, so the run's temporary folder
    is removed; main() then says so. Other commands print their own line and exit 143
    with a plain SystemExit."""
    raise _Terminated(128 + signum)


def _interrupted_early() -> None:
    err.print("interrupted; nothing was written", highlight=False)
    raise typer.Exit(130)


def main() -> None:
    from credsim.results import use_system_allocator

    use_system_allocator()
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, _on_ctrl_c)
    try:
        app()
    except _Terminated:
        err.print("terminated; no results folder was left behind")
        raise
