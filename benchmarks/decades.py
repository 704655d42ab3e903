"""Decades benchmark: a preset with demography on for 30 years, at 200,000 and 1 million
people, as `credsim run` does it (results folder written, ledger and sanctions streamed).

Prints person-days per second for the whole run (set-up, daily loop and writing) and
for the loop alone, seconds per phase in each decade, the highest resident memory
sampled after a day in each decade, the peak, and the estimate of credsim.memory the
peak is held to. Person-days are the days lived by the people alive on each day. Each
size runs in its own process, so that its peak is its own. Usage:

    python benchmarks/decades.py                          # 200,000 and 1e6 people, 30 years
    python benchmarks/decades.py --people 2e5 --years 10
    python benchmarks/decades.py --scenario sesame --json
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

YEAR = 365.25


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def one(people: int, years: float, scenario: str, overrides: list[str]) -> dict:
    from credsim.engine import Simulation
    from credsim.memory import estimate_peak_bytes, person_slots
    from credsim.results import run_dir, use_system_allocator
    from credsim.scenario.load import load_scenario
    from credsim.threads import kernel_threads

    use_system_allocator()  # as the command line does
    days = int(round(years * YEAR))
    sets = ["demography.enabled=true", *overrides]
    s = load_scenario(scenario, sets, people=people, days=days)
    # Compile (or load cached) kernels on a tiny run so they are not timed.
    Simulation(load_scenario(scenario, sets, people=1000, days=30)).run()
    ends = {min(int(round(10 * k * YEAR)), days) for k in range(1, int(years // 10) + 1)}
    ends.add(days)  # a last part decade, if any
    decades: list[dict] = []
    high = 0  # the highest resident memory sampled in the current decade
    with tempfile.TemporaryDirectory() as d, kernel_threads(people):
        t0 = time.perf_counter()
        sim = Simulation(s, ledger_path=Path(d) / "ledger.parquet")
        run_dir.stream_sanctions(sim, Path(d) / "sanctions.parquet")
        setup = time.perf_counter() - t0
        last = dict(sim.timings)

        def on_day(done: int) -> None:
            nonlocal last, high
            high = max(high, _rss_bytes())
            if done in ends:
                now = dict(sim.timings)
                decades.append({"days": done, "rss_bytes": high,
                                "phases": {k: now[k] - last[k] for k in now}})
                last, high = now, 0

        t1 = time.perf_counter()
        sim.run(on_day=on_day)
        loop = time.perf_counter() - t1
        t2 = time.perf_counter()
        run_dir.write_results(sim, Path(d), t2 - t0)
        write = time.perf_counter() - t2
    lived = sum(r.get("people_alive", people) for r in sim.rows)
    return {
        "scenario": scenario, "people": people, "days": days, "ties": sim.n_ties or 0,
        "slots": person_slots(s), "born": sim.people_rows - people,
        "alive_at_end": sim.rows[-1].get("people_alive", people),
        "person_days": lived, "setup_seconds": setup, "loop_seconds": loop,
        "write_seconds": write, "wall_seconds": setup + loop + write,
        "decades": decades, "peak_rss_bytes": resource.getrusage(
            resource.RUSAGE_SELF).ru_maxrss * 1024,
        "estimate_bytes": estimate_peak_bytes(s), "ledger_rows": sim.ledger.rows_written,
        "applications": sim.gates.applied.rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=float, nargs="*", default=[2e5, 1e6])
    ap.add_argument("--years", type=float, default=30.0)
    ap.add_argument("--scenario", default="rongcheng")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="Scenario override, as in 'credsim run --set'.")
    ap.add_argument("--json", action="store_true", help="Print each result as JSON too.")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(one(int(args.people[0]), args.years, args.scenario, args.set)))
        return
    for n in args.people:
        cmd = [sys.executable, __file__, "--child", "--people", str(n), "--years",
               str(args.years), "--scenario", args.scenario, *(f"--set={kv}" for kv in args.set)]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            sys.exit(res.returncode)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        _report(r)
        if args.json:
            print(json.dumps(r))


def _report(r: dict) -> None:
    gib = 2**30
    print(f"\n{r['scenario']} with demography: {r['people']:,} people, {r['days']:,} days "
          f"({r['days'] / YEAR:.0f} years), {r['ties']:,} ties")
    print(f"  born {r['born']:,}; alive at the end {r['alive_at_end']:,}; "
          f"person slots {r['slots']:,}")
    print(f"  person-days lived       {r['person_days']:16,}")
    print(f"  whole run               {r['wall_seconds']:8.1f} s "
          f"{r['person_days'] / r['wall_seconds']:14,.0f} person-days/s")
    print(f"    set-up                {r['setup_seconds']:8.1f} s")
    print(f"    daily loop            {r['loop_seconds']:8.1f} s "
          f"{r['person_days'] / r['loop_seconds']:14,.0f} person-days/s")
    print(f"    writing results       {r['write_seconds']:8.1f} s")
    print(f"  ledger rows {r['ledger_rows']:,}; gate applications {r['applications']:,}")
    phases = [k for k in r["decades"][0]["phases"]
              if any(dec["phases"][k] >= 0.05 for dec in r["decades"])]
    print("  seconds per phase, by decade:")
    print("    " + "".join(f"{k:>13}" for k in ["to day", *phases, "max RSS (GiB)"]))
    for dec in r["decades"]:
        cells = [f"{dec['days']:>13,}", *(f"{dec['phases'][k]:13.1f}" for k in phases),
                 f"{dec['rss_bytes'] / gib:13.2f}"]
        print("    " + "".join(cells))
    print(f"  peak RSS                {r['peak_rss_bytes'] / gib:8.2f} GiB "
          f"(credsim.memory's estimate {r['estimate_bytes'] / gib:.2f} GiB)")


if __name__ == "__main__":
    main()
