"""Compiling the kernels once, and saying so.

credsim's inner loops are Numba kernels, compiled on first use and cached on
disk (next to the package, or in Numba's user-wide cache where the package
folder cannot be written). The first run of each system after an install
therefore spends 10-30 s compiling; later runs start at once. A stamp file per
combination of systems records that its kernels have been compiled, so
`credsim run` can say once that it is compiling, and `credsim warmup` (which
`make demo` runs) compiles every shipped system ahead of time.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

from credsim import __version__
from credsim.scenario.model import Scenario

WARMUP_PEOPLE = 500
WARMUP_DAYS = 400  # past a year, so that expiries, term ends and refreshes all happen


def systems_of(scenario: Scenario) -> list[str]:
    on = [name for name in ("points", "court_list", "composite", "rating", "firm_lists")
          if getattr(scenario, name).enabled]
    return on or ["none"]


def _stamp_dir() -> Path:
    here = Path(__file__).parent / "__pycache__"
    if os.access(here if here.exists() else here.parent, os.W_OK):
        return here
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "credsim"


def _stamp(scenario: Scenario) -> Path:
    import numba

    key = f"{__version__}|{numba.__version__}|{'+'.join(systems_of(scenario))}"
    return _stamp_dir() / f"warm-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def is_cold(scenario: Scenario) -> bool:
    """True if this combination of systems has not yet run since install."""
    return not _stamp(scenario).exists()


def mark_warm(scenario: Scenario) -> None:
    stamp = _stamp(scenario)
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.touch()
    except OSError:  # a read-only install: the message just shows again next time
        pass


def warm_all(on_preset: Callable[[str, float], None] | None = None) -> None:
    """Run every shipped preset briefly so that all their kernels are compiled and
    cached; `on_preset(name, seconds)` after each."""
    import tempfile
    import time

    from credsim.results import run_dir
    from credsim.scenario.load import load_scenario, preset_names

    with tempfile.TemporaryDirectory(prefix="credsim-warmup-") as work:
        for name in preset_names():
            t0 = time.perf_counter()
            s = load_scenario(name, people=WARMUP_PEOPLE, days=WARMUP_DAYS)
            out = Path(work) / name
            tmp = run_dir.prepare(out)
            run_dir.simulate(s, tmp)
            run_dir.commit(tmp, out)
            mark_warm(s)
            if on_preset is not None:
                on_preset(name, time.perf_counter() - t0)
