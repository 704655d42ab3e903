"""The cost of the module protocol itself: what one hook call costs the engine.

Runs a small scenario for many days (so per-day work is small and the loop's own
cost shows) with and without extra modules whose hooks do nothing, and prints
the extra time per hook call, and the hook calls a day of the scenario makes.
Usage:

    python benchmarks/module_overhead.py                  # rongcheng, 1,000 people, 3,650 days
    python benchmarks/module_overhead.py --scenario sesame --extra 40
"""

from __future__ import annotations

import argparse
import time

from credsim.engine import Simulation
from credsim.modules import PHASES, Hook, Module, register, unregister
from credsim.scenario.load import load_scenario


def _idle_module(i: int) -> type[Module]:
    """A module with one hook in every phase but record, each doing nothing."""

    def idle(self, d) -> None:
        pass

    attrs = {"kind": f"idle_{i}", "build_order": 70,
             "hooks": tuple(Hook(p, "idle") for p in PHASES if p != "record"), "idle": idle}
    return type(f"Idle{i}", (Module,), attrs)


def loop_seconds(scenario: str, people: int, days: int, repeats: int) -> tuple[float, int]:
    """The best of `repeats` timings of the daily loop alone, and hook calls per day."""
    best = float("inf")
    for _ in range(repeats):
        sim = Simulation(load_scenario(scenario, people=people, days=days))
        t0 = time.perf_counter()
        sim.run()
        best = min(best, time.perf_counter() - t0)
    return best, len(sim.plan) + len(sim.modules)  # hooks, then record/end_day calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="rongcheng")
    ap.add_argument("--people", type=int, default=1000)
    ap.add_argument("--days", type=int, default=3650)
    ap.add_argument("--extra", type=int, default=20, help="idle modules added")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    Simulation(load_scenario(args.scenario, people=1000, days=2)).run()  # compile first
    base, calls = loop_seconds(args.scenario, args.people, args.days, args.repeats)
    idle = [register(_idle_module(i)) for i in range(args.extra)]
    try:
        more, more_calls = loop_seconds(args.scenario, args.people, args.days, args.repeats)
    finally:
        for cls in idle:
            unregister(cls.kind)
    per_call = (more - base) / ((more_calls - calls) * args.days)
    print(f"{args.scenario}: {args.people:,} people, {args.days:,} days")
    print(f"  loop alone                 {base:.3f} s ({calls} module calls a day)")
    print(f"  with {args.extra} idle modules      {more:.3f} s ({more_calls} calls a day)")
    print(f"  cost of one module call    {per_call * 1e6:.2f} µs")
    print(f"  the protocol's share of a day: {calls * per_call * 1e6:.0f} µs of "
          f"{base / args.days * 1e6:.0f} µs")


if __name__ == "__main__":
    main()
