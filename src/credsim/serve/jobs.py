"""Jobs: runs and comparisons asked for by browsers, queued behind a concurrency limit and
run in worker processes, so that a long run never blocks the server, a cancel can end it,
and its memory is given back when it ends.

Each job owns a folder under the server's data folder, named by its id (made here, never
taken from a request). A job is `finished` only when its worker exited cleanly after
writing results.json; a cancelled or failed job's folder is removed.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import queue
import secrets
import shutil
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from credsim.errors import InputError
from credsim.serve import worker

QUEUED, RUNNING, FINISHED, FAILED, CANCELLED = (
    "queued", "running", "finished", "failed", "cancelled")
ENDED = (FINISHED, FAILED, CANCELLED)
DOWNLOADS = {"report": "report.html", "scenario": "scenario.toml", "zip": "run.zip"}
TERMINATE_WAIT_SECONDS = 10.0
YEAR = 365.25  # days, as demography counts them


@dataclass(frozen=True)
class Limits:
    """What one server accepts; each is a `credsim serve` option."""

    max_people: int = 1_000_000
    max_days: int = 18_263  # 50 years: decades of demography
    # People x days: a long run must be small, a large run short (1M people x 5 years).
    max_person_days: int = 1_825_000_000
    max_replicates: int = 10
    max_queued: int = 32  # jobs waiting, over all sessions
    max_per_session: int = 3  # jobs queued or running for one browser
    concurrency: int = 1  # jobs running at once


class LimitError(InputError):
    """A request that is valid but over one of the server's limits."""


@dataclass
class Job:
    id: str
    share: str
    session: str
    spec: dict[str, Any]
    folder: Path
    people: int
    days: int
    demography: bool = False  # a run over years: progress counts them
    state: str = QUEUED
    error: str = ""
    phase: str = "waiting for a free worker"
    created: float = field(default_factory=time.time)
    started: float | None = None  # when the simulation's first day began
    ended: float | None = None
    done_days: int = 0
    runs_done: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    columns: dict[str, dict[str, str]] = field(default_factory=dict)
    process: Any = None
    finished_ok: bool = False
    cancelling: bool = False  # asked to stop; cancelled once its worker is gone
    zip_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def kind(self) -> str:
        return self.spec["kind"]

    @property
    def runs_total(self) -> int:
        return 2 * self.spec.get("replicates", 0)

    def progress(self) -> dict[str, Any]:
        """Days done, person-days per second and the time left (or replicate runs done)."""
        out: dict[str, Any] = {"id": self.id, "kind": self.kind, "state": self.state,
                               "phase": self.phase, "error": self.error,
                               "people": self.people, "days": self.days,
                               "preset": self.spec["preset"]}
        if self.kind == "run":
            out["done"] = self.done_days
            elapsed = (time.time() - self.started) if self.started else 0.0
            if self.done_days and elapsed > 0:
                rate = self.done_days / elapsed
                out["person_days_per_second"] = rate * self.people
                out["eta_seconds"] = (self.days - self.done_days) / rate
            if self.demography:
                out["years"] = self.days / YEAR
                out["year"] = min(int(self.done_days // YEAR) + 1, math.ceil(self.days / YEAR))
        else:
            out["runs_done"], out["runs_total"] = self.runs_done, self.runs_total
        return out

    def results(self) -> dict[str, Any] | None:
        if self.state != FINISHED:
            return None
        return json.loads((self.folder / worker.RESULTS).read_text("utf-8"))


class Jobs:
    """Every job of a server, its queue and its workers."""

    def __init__(self, data: Path, limits: Limits):
        self.data = data
        self.limits = limits
        self.jobs: dict[str, Job] = {}
        self.waiting: list[Job] = []
        self.lock = threading.RLock()
        self.ctx = multiprocessing.get_context("spawn")  # no inherited threads or files

    # ------------------------------------------------------------ asking
    def submit(self, session: str, spec: dict[str, Any]) -> Job:
        """Queue a job whose spec was validated (people, days checked by the caller)."""
        people, days = spec.pop("_people"), spec.pop("_days")
        demography = spec.pop("_demography", False)
        with self.lock:
            mine = sum(1 for j in self.jobs.values()
                       if j.session == session and j.state in (QUEUED, RUNNING))
            if mine >= self.limits.max_per_session:
                raise LimitError(f"this browser already has {mine} jobs queued or running "
                                 f"(at most {self.limits.max_per_session}: credsim serve "
                                 "--max-per-browser); cancel one or wait for it to finish")
            if len(self.waiting) >= self.limits.max_queued:
                raise LimitError(f"the queue is full ({self.limits.max_queued} jobs waiting); "
                                 "try again later")
            job_id = secrets.token_urlsafe(16)
            folder = self.data / job_id
            folder.mkdir(parents=True)
            job = Job(job_id, secrets.token_urlsafe(16), session, spec, folder, people, days,
                      demography)
            self.jobs[job_id] = job
            self.waiting.append(job)
            self._dispatch()
            return job

    def visible(self, job_id: str, session: str, share: str | None = None) -> Job | None:
        """The job if this session owns it or the share token is its own; else None (the
        same answer as for an id that does not exist)."""
        job = self.jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None:
            return None
        if secrets.compare_digest(job.session, session):
            return job
        if share and secrets.compare_digest(job.share, share):
            return job
        return None

    def of_session(self, session: str) -> list[Job]:
        return [j for j in self.jobs.values() if j.session == session]

    def cancel(self, job: Job) -> None:
        with self.lock:
            if job.state == QUEUED:
                self.waiting.remove(job)
                self._end(job, CANCELLED, "")
                return
            if job.state != RUNNING or job.cancelling:
                return
            job.cancelling, job.phase = True, "cancelling"
            proc = job.process
        proc.terminate()  # the reader thread removes the folder once the worker is gone

    def zip_path(self, job: Job) -> Path:
        """The run (or comparison) folder as a zip, made on first request."""
        target = job.folder / DOWNLOADS["zip"]
        with job.zip_lock:
            if not target.exists():
                inner = "run" if job.kind == "run" else "compare"
                tmp = shutil.make_archive(str(job.folder / ".run-zip"), "zip",
                                          root_dir=job.folder, base_dir=inner)
                Path(tmp).replace(target)
        return target

    def shutdown(self) -> None:
        """Stop every worker (the server is exiting); queued jobs are dropped."""
        with self.lock:
            for job in list(self.waiting):
                self.cancel(job)
            running = [j for j in self.jobs.values() if j.state == RUNNING]
        for job in running:
            self.cancel(job)
        for job in running:
            process = job.process
            if process is not None:
                process.join(TERMINATE_WAIT_SECONDS)
        # The follower threads remove an unfinished job's folder when its worker ends; the
        # process may exit first, so whatever is not finished is removed here too.
        deadline = time.monotonic() + TERMINATE_WAIT_SECONDS
        while any(j.state not in ENDED for j in running) and time.monotonic() < deadline:
            time.sleep(0.05)
        with self.lock:
            for job in self.jobs.values():
                if job.state != FINISHED:
                    shutil.rmtree(job.folder, ignore_errors=True)

    def counts(self) -> dict[str, int]:
        with self.lock:
            states = [j.state for j in self.jobs.values()]
        return {s: states.count(s) for s in (QUEUED, RUNNING, FINISHED, FAILED, CANCELLED)}

    # ------------------------------------------------------------ running
    def _dispatch(self) -> None:
        with self.lock:
            running = sum(1 for j in self.jobs.values() if j.state == RUNNING)
            while self.waiting and running < self.limits.concurrency:
                self._start(self.waiting.pop(0))
                running += 1

    def _start(self, job: Job) -> None:
        events = self.ctx.Queue()
        proc = self.ctx.Process(target=worker.main, args=(job.spec, str(job.folder), events),
                                name=f"credsim-job-{job.id[:6]}")
        job.state, job.phase, job.process = RUNNING, "building the society", proc
        proc.start()
        threading.Thread(target=self._follow, args=(job, events), daemon=True,
                         name=f"credsim-follow-{job.id[:6]}").start()

    def _follow(self, job: Job, events) -> None:
        """Apply the worker's events to the job until the worker has ended."""
        proc = job.process
        while True:
            try:
                self._apply(job, events.get(timeout=0.25))
            except queue.Empty:
                if not proc.is_alive():
                    break
            except (EOFError, OSError):  # the queue's pipe closed with a killed worker
                break
        proc.join(TERMINATE_WAIT_SECONDS)
        if proc.is_alive():
            proc.kill()
            proc.join()
        with self.lock:
            if job.cancelling:
                self._end(job, CANCELLED, "")
            elif (job.finished_ok and proc.exitcode == 0
                  and (job.folder / worker.RESULTS).exists()):
                self._end(job, FINISHED, "")
            else:
                self._end(job, FAILED, job.error or worker_stopped(proc.exitcode))
            self._dispatch()
        events.close()

    def _apply(self, job: Job, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "started":
            job.started, job.phase = time.time(), "running"
        elif kind == "day":
            job.done_days = event["done"]
            job.columns = event.get("columns") or job.columns
            job.rows.append(event["row"])
        elif kind == "runs":
            job.runs_done = event["done"]
            job.phase = f"{event['done']} of {event['total']} replicate runs done"
        elif kind == "phase":
            job.phase = event["phase"]
        elif kind == "failed":
            job.error = event["error"]
        elif kind == "finished":
            job.finished_ok = True

    def _end(self, job: Job, state: str, error: str) -> None:
        if state != FINISHED:  # removed before the job says it has ended
            shutil.rmtree(job.folder, ignore_errors=True)
        job.error = error if state == FAILED else ""
        job.phase = {FINISHED: "finished", FAILED: "failed", CANCELLED: "cancelled"}[state]
        job.rows = []  # the finished run's results.json holds its whole timeseries
        job.ended, job.process = time.time(), None
        job.state = state


def worker_stopped(exitcode: int | None) -> str:
    """Why a job failed when its worker ended without a result. A worker killed by
    SIGKILL has most often been stopped by the system for want of memory."""
    if exitcode is not None and exitcode < 0:
        what = f"the worker was stopped by signal {-exitcode}"
        if -exitcode == signal.SIGKILL:
            what += (" (most often the system stopping it for want of memory: try fewer "
                     "people or days)")
        return what
    return f"the worker stopped (exit code {exitcode})"
