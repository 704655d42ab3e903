"""Reference benchmark: the rongcheng preset for 365 days at 1 and 10 million people.

Prints person-days per second (graph generation included), seconds per
phase, peak RSS and bytes per person / per tie. Each size runs in its own
process so that peak memory is its own. Usage:

    python benchmarks/run_reference.py                 # 1e6 and 1e7 people
    python benchmarks/run_reference.py --people 1e5 --scenario baseline --write
    python benchmarks/run_reference.py --people 1e8 --set graph.mean_degree=10
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


def one(people: int, days: int, scenario: str, write: bool, overrides: list[str]) -> dict:
    from credsim.engine import Simulation
    from credsim.results import run_dir, use_system_allocator
    from credsim.scenario.load import load_scenario

    use_system_allocator()  # as the command line does

    s = load_scenario(scenario, overrides, people=people, days=days)
    # Compile (or load cached) kernels on a tiny run so they are not timed.
    Simulation(load_scenario(scenario, people=1000, days=2)).run()
    with tempfile.TemporaryDirectory() as d:
        ledger = Path(d) / "ledger.parquet" if write else None
        t0 = time.perf_counter()
        sim = Simulation(s, ledger_path=ledger)
        sim.run()
        wall = time.perf_counter() - t0
        write_s = 0.0
        if write:
            t1 = time.perf_counter()
            run_dir.write_results(sim, Path(d), wall)
            write_s = time.perf_counter() - t1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "scenario": scenario, "people": people, "days": days, "ties": sim.n_ties or 0,
        "wall_seconds": wall, "write_seconds": write_s,
        "person_days_per_second": people * days / wall,
        "phases": sim.timings, "module_phases": sim.module_timings, "peak_rss_bytes": peak,
        "state_bytes": sim.memory_bytes(),
        "ledger_rows": sim.ledger.rows_written,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--people", type=float, nargs="*", default=[1e6, 1e7])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--scenario", default="rongcheng")
    ap.add_argument("--write", action="store_true", help="Also write the results folder.")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="Scenario override, as in 'credsim run --set'.")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        r = one(int(args.people[0]), args.days, args.scenario, args.write, args.set)
        print(json.dumps(r))
        return
    for n in args.people:
        cmd = [sys.executable, __file__, "--child", "--people", str(n), "--days",
               str(args.days), "--scenario", args.scenario] + (["--write"] if args.write else [])
        cmd += [f"--set={kv}" for kv in args.set]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            print(res.stderr, file=sys.stderr)
            sys.exit(res.returncode)
        r = json.loads(res.stdout.strip().splitlines()[-1])
        _report(r)


def _report(r: dict) -> None:
    n, ties, peak = r["people"], r["ties"], r["peak_rss_bytes"]
    budget = 150 * n + 10 * ties
    graph = f"{ties:,} ties ({ties * 2 / n:.1f} per person)" if ties else "no graph built"
    print(f"\n{r['scenario']}: {n:,} people, {r['days']} days, {graph}")
    print(f"  wall (graph included)  {r['wall_seconds']:8.2f} s")
    print(f"  person-days per second {r['person_days_per_second']:14,.0f}")
    if r["write_seconds"]:
        print(f"  writing results        {r['write_seconds']:8.2f} s")
    for k, v in r["phases"].items():
        print(f"    {k:<14} {v:8.2f} s")
        for pair, s in r.get("module_phases", {}).items():
            if pair.startswith(k + "/") and s >= 0.005:
                print(f"      {pair.split('/')[1]:<14} {s:6.2f} s")
    print(f"  peak RSS               {peak / 2**30:8.2f} GiB "
          f"({peak / n:.0f} B/person; budget 150 B/person + 10 B/tie = {budget / 2**30:.2f} GiB)")
    sb = r["state_bytes"]
    print(f"  people state           {sb['people'] / n:8.1f} B/person")
    if "graph" in sb:
        print(f"  graph                  {sb['graph'] / max(ties, 1):8.1f} B/tie")
    print(f"  ledger rows            {r['ledger_rows']:,}")


if __name__ == "__main__":
    main()
