"""Shared fixtures: small simulated runs written as results folders, and the CLI.

The session runs are small (at most 10,000 people and 120 days) so the whole
suite stays quick. `BUSY` raises the rates of the rare behaviours that drive
the court list, instant grade caps and false records, and shortens the court
and cap periods, so a small run exercises every kind of ledger row (score,
grade, listing, delisting by payment, expiry and correction, cap expiry,
firm listings and false records).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from credsim.engine import Simulation
from credsim.results import run_dir
from credsim.scenario.load import load_scenario

# No example database, and Hypothesis' caches go to the temporary directory: the suite
# writes nothing into the working tree.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "credsim-tests-hypothesis")
settings.register_profile("credsim", database=None)
settings.load_profile("credsim")

# A suite started in the background of a non-interactive shell inherits SIGINT ignored,
# and so would every command the tests run: the Ctrl-C tests would see no Ctrl-C. A
# handler (not an ignore) is reset to the default in each child, as a terminal has it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

BUSY = (
    "behaviours.judgment_default.rate=2e-3",
    "behaviours.firm_judgment_default.rate=3e-3",
    "behaviours.traffic_violation.rate=1e-2",
    "behaviours.drunk_driving.rate=3e-4",
    "behaviours.rumour.rate=2e-3",
    "channels.court.false_rate=5e-5",
    "channels.traffic_camera.false_rate=2e-4",
    "channels.bank.false_rate=5e-5",
    "court_list.grace_days=10",
    "court_list.term_days=40",
    "court_list.correction_days=12",
    "points.instant_grade_days=30",
    "adaptation.prune_grade='B'",
)


@dataclass
class Run:
    path: Path
    sim: Simulation


def _simulate(out: Path, source: str = "rongcheng", overrides: Sequence[str] = (), *,
              people: int, days: int, seed: int = 7) -> Run:
    """Run a scenario in-process and write its results folder the way `credsim run` does."""
    scenario = load_scenario(source, list(overrides), people=people, days=days, seed=seed)
    tmp = run_dir.prepare(out)
    sim = run_dir.simulate(scenario, tmp)
    run_dir.commit(tmp, out)
    return Run(out, sim)


@pytest.fixture(scope="session")
def busy() -> tuple[str, ...]:
    return BUSY


@pytest.fixture(scope="session")
def simulate() -> Callable[..., Run]:
    return _simulate


@pytest.fixture(scope="session")
def busy_run(tmp_path_factory) -> Run:
    """Busy rongcheng: 10,000 people, 120 days, seed 7."""
    out = tmp_path_factory.mktemp("busy") / "run"
    return _simulate(out, "rongcheng", BUSY, people=10_000, days=120)


def _cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `python -m credsim ARGS` in a fresh process, wide terminal, text output."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "credsim", *args], cwd=cwd, env=env, capture_output=True,
        text=True, timeout=timeout,
    )


@pytest.fixture(scope="session")
def cli() -> Callable[..., subprocess.CompletedProcess]:
    return _cli


def _one_error(r: subprocess.CompletedProcess) -> str:
    """The single `error:` line of a command that refused its input with exit code 2."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture(scope="session")
def one_error() -> Callable[[subprocess.CompletedProcess], str]:
    return _one_error


def _cli_preset_run(tmp_path_factory, preset: str) -> Path:
    """`credsim run PRESET --people 2000 --days 30 --out DIR --quiet`."""
    out = tmp_path_factory.mktemp("cli") / f"{preset}-run"
    r = _cli("run", preset, "--people", "2000", "--days", "30", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="session")
def cli_run(tmp_path_factory) -> Path:
    return _cli_preset_run(tmp_path_factory, "rongcheng")


@pytest.fixture(scope="session")
def cli_baseline(tmp_path_factory) -> Path:
    """The baseline preset at the same people, days and seed as `cli_run`."""
    return _cli_preset_run(tmp_path_factory, "baseline")
