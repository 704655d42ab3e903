"""The credsim command line."""

from __future__ import annotations

import csv
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from credsim import __version__
from credsim.errors import InputError, RunsFailed, Stopped

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="credsim: simulate social credit systems on synthetic societies and audit their harms.",
)
out = Console()
err = Console(stderr=True)


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


@app.command()
def presets() -> None:
    """List the shipped presets, one line each."""
    from credsim.scenario.load import preset_summaries

    rows = preset_summaries()
    width = max(len(name) for name, _ in rows)
    for name, desc in rows:
        out.print(f"[bold]{name:<{width}}[/]  {desc}", highlight=False)


@app.command()
def show(
    scenario: Annotated[str, typer.Argument(help="Preset name or TOML file.")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override: key.path=value (repeatable).")
    ] = None,
) -> None:
    """Print the fully resolved scenario as TOML (save, edit and run it)."""
    from credsim.scenario.load import load_scenario, scenario_to_toml

    try:
        s = load_scenario(scenario, set_)
    except InputError as exc:
        _fail(str(exc))
    sys.stdout.write(scenario_to_toml(s))


@app.command()
def params(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print as a Markdown table.")
    ] = False,
) -> None:
    """List every scenario parameter with its default, allowed range and meaning."""
    from credsim.scenario.reference import markdown as as_markdown
    from credsim.scenario.reference import parameter_rows

    if markdown:
        sys.stdout.write(as_markdown())
        return
    t = Table("key", "default", "allowed", "description")
    for key, _typ, default, allowed, desc in parameter_rows():
        t.add_row(escape(key), escape(default), escape(allowed), escape(desc))
    out.print(t)


@app.command()
def run(
    scenario: Annotated[str, typer.Argument(help="Preset name or TOML file.")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override: key.path=value (repeatable).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Base seed (run.seed).")] = None,
    days: Annotated[int | None, typer.Option(help="Days to simulate (run.days).")] = None,
    people: Annotated[int | None, typer.Option(help="Number of citizens (run.people).")] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Results folder (must not exist).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary.")] = False,
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


@app.command()
def summary(
    run_path: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A results folder.")],
    baseline: Annotated[
        Path | None, typer.Option(help="Results folder of the counterfactual run.")
    ] = None,
) -> None:
    """Print a run's headline figures."""
    try:
        _print_summary(run_path, baseline)
    except InputError as exc:
        _fail(str(exc))


@app.command()
def query(
    run_path: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A results folder.")],
    sql: Annotated[str, typer.Argument(help="One read-only query (SELECT, WITH, EXPLAIN, "
                                            "DESCRIBE, SHOW) over timeseries, ledger, "
                                            "people, firms, sanctions.")],
    fmt: Annotated[str, typer.Option("--format", help="table or csv.")] = "table",
    limit: Annotated[int, typer.Option(help="Most rows shown as a table (at least 1); csv "
                                            "prints every row.", min=1)] = 50,
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


@app.command()
def lookup(
    run_path: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A results folder.")],
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


@app.command()
def audit(
    run_path: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A results folder.")],
    baseline: Annotated[
        Path | None, typer.Option(help="Results folder of the same society without the "
                                  "system (same people, days and seed).")
    ] = None,
    bound_days: Annotated[
        float, typer.Option(help="Proportionality bound: a sanction costing more than this "
                            "many days of income is disproportionate.", min=0)
    ] = 30.0,
) -> None:
    """Compute the harm audit's measures, print them and write RUN_DIR/measures.parquet."""
    from credsim.audit.measures import compute, write_measures

    try:
        measures = compute(run_path, baseline, bound_days)
        path = write_measures(measures, run_path)
    except InputError as exc:
        _fail(str(exc))
    t = Table(title=f"harm audit of {escape(str(run_path))}")
    # Names and values stay whole on a narrow terminal; the units wrap.
    for c, j, whole in (("measure", "left", True), ("key", "left", True),
                        ("value", "right", True), ("unit", "left", False)):
        t.add_column(c, justify=j, no_wrap=whole, min_width=6 if not whole else None)
    for m in measures:
        t.add_row(m.measure, escape(m.key), "n/a" if m.value is None else f"{m.value:,.4g}",
                  escape(m.unit))
    out.print(t)
    out.print(f"measures: [bold]{escape(str(path))}[/] (definitions: docs/measures.md)",
              highlight=False)


_Workers = Annotated[
    int | None, typer.Option(help="Local worker processes (default: the number of cores).", min=1)
]
_Force = Annotated[bool, typer.Option(
    "--force", help="Start even if the memory estimate for the workers' runs side by side "
    "exceeds the memory available.")]
_Scheduler = Annotated[
    str | None, typer.Option(help="Dask scheduler address (e.g. tcp://host:8786): run on that "
                             "cluster instead of local processes.")
]


@app.command()
def compare(
    scenarios: Annotated[list[str], typer.Argument(help="Two or more presets or TOML files.")],
    replicates: Annotated[int, typer.Option(help="Runs per scenario.", min=2)] = 10,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Results folder.")] = None,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Override for every scenario "
                                       "(repeatable).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Base seed: replicate r uses seed + r.")] = None,
    days: Annotated[int | None, typer.Option(help="Days to simulate.")] = None,
    people: Annotated[int | None, typer.Option(help="Number of citizens.")] = None,
    workers: _Workers = None,
    scheduler: _Scheduler = None,
    force: _Force = False,
) -> None:
    """Run scenarios R times each with common random numbers; report every measure with a
    95 % interval and the paired differences from the first scenario."""
    try:
        from credsim.audit import replicates as rep

        rep.compare_command(scenarios, replicates=replicates, out=out_dir, overrides=set_,
                            seed=seed, days=days, people=people, workers=workers,
                            scheduler=scheduler, console=out, force=force)
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


@app.command()
def sweep(
    scenario: Annotated[str | None, typer.Argument(help="Preset or TOML file.")] = None,
    vary: Annotated[
        list[str] | None, typer.Option("--vary", help="key=v1,v2,... (repeatable: a grid).")
    ] = None,
    replicates: Annotated[int, typer.Option(help="Runs per grid point.", min=1)] = 10,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Results folder.")] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Resume the interrupted sweep in this folder.")
    ] = None,
    set_: Annotated[list[str] | None, typer.Option("--set", help="Override (repeatable).")] = None,
    seed: Annotated[int | None, typer.Option(help="Base seed: replicate r uses seed + r.")] = None,
    days: Annotated[int | None, typer.Option(help="Days to simulate.")] = None,
    people: Annotated[int | None, typer.Option(help="Number of citizens.")] = None,
    workers: _Workers = None,
    scheduler: _Scheduler = None,
    force: _Force = False,
) -> None:
    """Run a grid of parameter values, R replicates each; resumable."""
    try:
        from credsim.audit import replicates as rep

        rep.sweep_command(scenario, vary=vary, replicates=replicates, out=out_dir,
                          resume=resume, overrides=set_, seed=seed, days=days, people=people,
                          workers=workers, scheduler=scheduler, console=out, force=force)
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


@app.command()
def report(
    path: Annotated[Path, typer.Argument(metavar="RUN_OR_COMPARISON_DIR",
                                         help="A results folder or a compare/sweep folder.")],
    out_file: Annotated[Path | None, typer.Option("--out", help="HTML file to write "
                                                  "(default: report.html in the folder).")]
    = None,
    baseline: Annotated[Path | None, typer.Option(
        help="A run's baseline: the same society (people, days, seed, population, graph) "
             "without the system.")] = None,
) -> None:
    """Write one self-contained HTML report that opens offline."""
    from credsim.audit import report as rpt

    try:
        written = rpt.write_report(path, out_file, baseline)
    except InputError as exc:
        _fail(str(exc))
    out.print(f"report: [bold]{escape(str(written))}[/]", highlight=False)


@app.command()
def calibrate(
    run_path: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="A results folder.")],
) -> None:
    """Compare a run's per-capita listing and travel-ban rates with published aggregates."""
    from credsim.audit import calibrate as cal

    try:
        cal.calibrate_command(run_path, console=out)
    except InputError as exc:
        _fail(str(exc))


@app.command(name="warmup")
def warmup_command() -> None:
    """Compile the kernels of every shipped system now (once per install), so that first
    runs start at once."""
    from credsim.warmup import warm_all

    warm_all(lambda name, secs: out.print(f"{name:<16} {secs:5.1f} s", highlight=False))


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return "" if v is None else str(v)


def _print_summary(run_path: Path, baseline: Path | None) -> None:
    from credsim.results.summary import summarize

    manifest, figs = summarize(run_path, baseline)
    t = Table(title=f"{escape(manifest['scenario_name'])}: {manifest['people']:,} people, "
                    f"{manifest['days']} days, seed {manifest['scenario']['run']['seed']}")
    t.add_column("figure")
    t.add_column("value", justify="right")
    t.add_column("unit")
    for f in figs:
        t.add_row(escape(f.name), "n/a" if f.value is None else f"{f.value:,.4g}", f.unit)
    out.print(t)
    pds, wall = manifest.get("person_days_per_second"), manifest.get("wall_seconds")
    if pds and wall is not None:
        out.print(f"{wall:.1f} s, {pds:,.0f} person-days/s", highlight=False)


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
    try:
        app()
    except _Terminated:
        err.print("terminated; no results folder was left behind")
        raise
