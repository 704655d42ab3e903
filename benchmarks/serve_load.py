"""A bounded load test of `credsim serve`, on loopback only (not part of the test suite).

30 simulated browsers (each with its own session cookie) start a small run at the same
moment and poll it until it ends, while a probe times a cheap endpoint (/api/health) every
0.2 s. The script records that the server stays responsive, queues the excess, loses no
finished result, and gives memory back when the workers end (its resident memory before
and after, and no worker process left). docs/dashboard.md quotes the figures.

    PYTHONPATH=$PWD/src python benchmarks/serve_load.py [--clients 30] [--people 2000]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def workers(pid: int) -> list[int]:
    """The server's job worker processes (not multiprocessing's resource tracker)."""
    try:
        kids = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    out = []
    for kid in kids:
        try:
            cmd = Path(f"/proc/{kid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmd:
            out.append(kid)
    return out


def start_server(port: int, data: Path, clients: int) -> subprocess.Popen:
    src = str(Path(__file__).parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "credsim", "serve", "--no-browser",
                             "--port", str(port), "--data", str(data),
                             "--max-queued", str(clients + 2), "--max-per-browser", "1"],
                            env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def client(base: str, body: dict, out: dict, start: threading.Barrier) -> None:
    with httpx.Client(base_url=base, timeout=30) as c:
        c.get("/")  # the session cookie, as a browser gets it
        start.wait()
        r = c.post("/api/jobs", json=body)
        out["submit_status"] = r.status_code
        if r.status_code != 201:
            out["error"] = r.text
            return
        job = r.json()
        out["id"], out["first_state"] = job["id"], job["state"]
        while True:
            status = c.get(f"/api/jobs/{job['id']}").json()
            if status["state"] in ("finished", "failed", "cancelled"):
                break
            time.sleep(0.5)
        out["state"] = status["state"]
        out["error"] = status["error"]
        if status["state"] == "finished":
            res = status["results"]
            out["days_in_result"] = len(res["timeseries"]["day"])
            out["report_bytes"] = len(c.get(f"/api/jobs/{job['id']}/download/report").content)


def probe(base: str, stop: threading.Event, latencies: list[float], queued: list[int]) -> None:
    with httpx.Client(base_url=base, timeout=30) as c:
        while not stop.is_set():
            t0 = time.perf_counter()
            counts = c.get("/api/health").json()["jobs"]
            latencies.append(time.perf_counter() - t0)
            queued.append(counts["queued"])
            time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, default=30)
    ap.add_argument("--people", type=int, default=2000)
    ap.add_argument("--days", type=int, default=30)
    args = ap.parse_args()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="credsim-load-") as tmp:
        server = start_server(port, Path(tmp), args.clients)
        try:
            idle = [httpx.get(f"{base}/api/health").elapsed.total_seconds() for _ in range(20)]
            rss_start = rss_mib(server.pid)
            body = {"preset": "rongcheng",
                    "set": {"run.people": args.people, "run.days": args.days}}
            # One job first: the server's own imports (the schema, Numba via the plan) are
            # made once; the figure after it is the one to compare with the end.
            client(base, body, {}, threading.Barrier(1))
            rss_before = rss_mib(server.pid)
            results = [{} for _ in range(args.clients)]
            barrier = threading.Barrier(args.clients)
            stop = threading.Event()
            latencies: list[float] = []
            queued: list[int] = []
            prober = threading.Thread(target=probe, args=(base, stop, latencies, queued))
            prober.start()
            t0 = time.perf_counter()
            threads = [threading.Thread(target=client, args=(base, body, results[i], barrier))
                       for i in range(args.clients)]
            for t in threads:
                t.start()
            peak_workers = 0
            while any(t.is_alive() for t in threads):
                peak_workers = max(peak_workers, len(workers(server.pid)))
                time.sleep(0.25)
            wall = time.perf_counter() - t0
            stop.set()
            prober.join()
            time.sleep(1.0)
            rss_after = rss_mib(server.pid)
            left = workers(server.pid)
        finally:
            server.terminate()
            server.wait(30)
    finished = [r for r in results if r.get("state") == "finished"]
    intact = [r for r in finished if r.get("days_in_result") == args.days
              and r.get("report_bytes", 0) > 0]
    lat = sorted(latencies)

    def q(p: float) -> float:
        return 1000 * lat[min(len(lat) - 1, int(p * len(lat)))]

    print(f"clients: {args.clients}, each one run of rongcheng, {args.people:,} people, "
          f"{args.days} days; concurrency 1 (the default)")
    print(f"accepted: {sum(r.get('submit_status') == 201 for r in results)}; queued on "
          f"arrival: {sum(r.get('first_state') == 'queued' for r in results)}; most waiting "
          f"at once: {max(queued, default=0)}")
    print(f"finished: {len(finished)}, with their whole timeseries and report: {len(intact)}; "
          f"failed: {sum(r.get('state') == 'failed' for r in results)}")
    print(f"wall time: {wall:.1f} s ({wall / max(len(finished), 1):.1f} s per run)")
    print(f"/api/health latency idle: median {1000 * statistics.median(idle):.1f} ms; under "
          f"load ({len(lat)} probes): median {q(0.5):.1f} ms, 95th percentile {q(0.95):.1f} "
          f"ms, max {1000 * lat[-1]:.1f} ms")
    print(f"worker processes: at most {peak_workers} at once, {len(left)} left afterwards")
    print(f"server resident memory: {rss_start:.0f} MiB at start, {rss_before:.0f} MiB after "
          f"a first job, {rss_after:.0f} MiB after the {args.clients} jobs")


if __name__ == "__main__":
    main()
