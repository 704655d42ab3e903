"""Will a run fit in memory? An estimate made before anything is allocated.

The figures are the memory budget that docs/performance.md measures against:
150 bytes per person slot (the people at the start and room for the births) and 10
bytes per tie (both directions of the CSR graph), plus the Python runtime with NumPy,
Numba, pyarrow and DuckDB and the buffers that stream the ledger and the gates'
applications to their files (row groups of 2^20 rows, filled within a few years of a
decades run whatever its size). Measured peaks
lie below the budget (1.94 GiB of 2.09 GiB at 10 million people), so the
estimate errs on the safe side; a run that is refused can still be started
with --force.
"""

from __future__ import annotations

import os
from pathlib import Path

from credsim.errors import InputError
from credsim.scenario.model import Scenario

BYTES_PER_PERSON = 150
BYTES_PER_TIE = 10
# The interpreter and its libraries (about 0.24 GiB) and the streaming buffers (about
# 0.05 GiB: the ledger's 31-byte and the applications' 12-byte rows, 2^20 of each).
RUNTIME_BYTES = 320 * 2**20
GIB = 2**30
MAX_SLOTS = 2**31 - 1  # person ids are 32-bit integers


def estimate_peak_bytes(scenario: Scenario) -> int:
    """Estimated peak resident memory of one run of `scenario`."""
    from credsim.modules.plan import builds_graph

    people = scenario.run.people
    ties = people * scenario.graph.mean_degree / 2 if builds_graph(scenario) else 0
    return int(RUNTIME_BYTES + BYTES_PER_PERSON * person_slots(scenario)
               + BYTES_PER_TIE * ties)


def person_slots(scenario: Scenario) -> int:
    """The person slots a run allocates: the people at the start and room for the births
    it can have (the born have no ties at first)."""
    from credsim.modules.plan import module_classes

    people = scenario.run.people
    return people + sum(c.extra_slots(scenario, people) for c in module_classes(scenario))


def available_bytes() -> int | None:
    """Memory this process can still take: MemAvailable, capped by a cgroup's limit;
    None where neither can be read (then no check is made)."""
    avail = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None and hasattr(os, "sysconf"):
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            avail = None
    limit = _cgroup_room()
    if limit is not None:
        avail = limit if avail is None else min(avail, limit)
    return avail


def _cgroup_room() -> int | None:
    """What a cgroup v2 memory limit still allows, if this process runs under one."""
    base = Path("/sys/fs/cgroup")
    try:
        raw = (base / "memory.max").read_text().strip()
        if raw == "max":
            return None
        return max(0, int(raw) - int((base / "memory.current").read_text().strip()))
    except (OSError, ValueError):
        return None


def check_fits(scenario: Scenario, *, runs_at_once: int = 1, force: bool = False) -> None:
    """Refuse, with the estimate and what is available, a scenario that will not fit in
    memory (`runs_at_once` runs side by side); --force skips the check, but not that of
    the person ids, which no memory can lift."""
    slots = person_slots(scenario)
    if slots > MAX_SLOTS:
        raise InputError(
            f"run.people: {scenario.run.people:,} people and room for "
            f"{slots - scenario.run.people:,} births (demography.fertility over run.days) "
            f"need {slots:,} person ids, past the {MAX_SLOTS:,} a run can hold; use fewer "
            "people, fewer days or a lower fertility")
    if force:
        return
    need = estimate_peak_bytes(scenario) * runs_at_once
    have = available_bytes()
    if have is None or need <= have:
        return
    side = f" × {runs_at_once} runs at once" if runs_at_once > 1 else ""
    # Where births add slots, they may be most of the need (a high fertility over decades):
    # say so, or the message would blame the people at the start alone.
    births = person_slots(scenario) - scenario.run.people
    room = (f" and room for {births:,} births (demography.fertility over run.days)"
            if births > 0 else "")
    raise InputError(
        f"run.people: {scenario.run.people:,} people{room} with mean degree "
        f"{scenario.graph.mean_degree:g} need about {need / GIB:.1f} GiB of memory{side} "
        f"({BYTES_PER_PERSON} B per person + {BYTES_PER_TIE} B per tie + "
        f"{RUNTIME_BYTES / GIB:.1f} GiB; see docs/performance.md), and "
        f"{have / GIB:.1f} GiB is available; use fewer people, or --force to try anyway"
    )
