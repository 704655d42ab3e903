"""Where replicate and sweep runs execute: one interface, two implementations.

An executor takes a picklable module-level function and an iterable of tasks
and yields `(task, result)` pairs as tasks finish, in any order. It pulls
tasks from the iterable lazily, only when it has room to start one, so the
caller learns when each task is handed over (and can log it) and a long
sweep never queues more than it can run.

- `LocalExecutor`: a pool of local worker processes (started with 'spawn', so
  no worker inherits Numba's threads or open files from the parent), also for
  a single worker.
- `DaskExecutor`: the workers of a Dask distributed cluster, given the address
  of its scheduler. It never waits for ever: a cluster with no worker for
  $CREDSIM_DASK_WORKER_TIMEOUT seconds (default 60), or a lost scheduler,
  ends the run with ExecutorError, and Dask's own log messages are silenced
  while the client is in use (the caller reports every failure itself).

Results never depend on the executor: each task must be fully determined by
its own contents (for credsim, a scenario's text and a seed), and every task
runs in a worker process whose BLAS and OpenMP libraries use one thread, as
Dask's nanny sets up its workers (a multi-threaded BLAS sums a dot product in
an order that depends on its thread count, so the last bits of a result
could otherwise depend on where it ran). Errors inside
the function propagate; the caller decides what a failed task means (credsim's
run function returns its errors as values instead of raising).
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import os
import queue
import signal
import sys
import time
import types
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from credsim import __version__
from credsim.errors import InputError


class ExecutorError(RuntimeError):
    """A task could not be run: its worker died (out of memory, killed) or the cluster
    lost it. `task` is the task concerned."""

    def __init__(self, task: Any, message: str):
        super().__init__(message)
        self.task = task


class Executor(Protocol):
    """Runs `fn(task)` for every task and yields `(task, result)` as they finish."""

    description: str

    def map_unordered(self, fn: Callable[[Any], Any],
                      tasks: Iterable[Any]) -> Iterator[tuple[Any, Any]]: ...

    def close(self, cancel: bool = False) -> None:
        """Release the workers; with cancel=True, abandon whatever is still running."""
        ...


class _ClosesOnce:
    """close() releases the workers once, however often it is called (the commands
    close on every exit path)."""

    _closed = False

    def close(self, cancel: bool = False) -> None:
        if self._closed:
            return
        self._closed = True
        self._release(cancel)

    def _release(self, cancel: bool) -> None:
        raise NotImplementedError


WORKER_TIMEOUT_ENV = "CREDSIM_DASK_WORKER_TIMEOUT"
DEFAULT_WORKER_TIMEOUT = 60.0  # seconds a Dask cluster may have no worker before we give up
CLOSE_TIMEOUT = 5.0  # seconds to wait for a Dask client to close


def worker_timeout_seconds() -> float:
    """$CREDSIM_DASK_WORKER_TIMEOUT in seconds (> 0), else the default."""
    raw = os.environ.get(WORKER_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_WORKER_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise InputError(f"{WORKER_TIMEOUT_ENV}={raw!r}: expected a number of seconds "
                         "greater than 0")
    return value


class _QuietLoggers:
    """Silences a logger and its children until restore() (their levels are restored)."""

    def __init__(self, name: str):
        names = [name, *(n for n in logging.root.manager.loggerDict
                         if n.startswith(name + "."))]
        self._saved = {n: logging.getLogger(n).level for n in names}
        for n in names:
            logging.getLogger(n).setLevel(logging.CRITICAL + 1)

    def restore(self) -> None:
        saved, self._saved = self._saved, {}
        for n, level in saved.items():
            logging.getLogger(n).setLevel(level)


# What Dask's nanny sets in its workers' environment (distributed.nanny.pre-spawn-environ).
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


class LocalExecutor(_ClosesOnce):
    """A pool of `workers` local processes started with 'spawn'.

    `initializer(workers)` runs once in each worker (credsim's sets Numba's thread
    count from the number of workers, and the workers' signal handling).
    """

    def __init__(self, workers: int, initializer: Callable[[int], None] | None = None):
        if workers < 1:
            raise InputError(f"--workers {workers}: must be at least 1")
        self.workers = workers
        self.description = f"{workers} local worker process{'es' if workers > 1 else ''}"
        # Workers start when tasks arrive and inherit this process's environment then;
        # the variables are restored on close.
        self._saved_env = {k: os.environ.get(k) for k in WORKER_ENV}
        os.environ.update(WORKER_ENV)
        self._initializer = initializer
        self._pool = ProcessPoolExecutor(max_workers=workers,
                                         mp_context=multiprocessing.get_context("spawn"),
                                         initializer=initializer, initargs=(workers,))

    def map_unordered(self, fn, tasks):
        main_needed = any(getattr(f, "__module__", None) == "__main__"
                          for f in (fn, self._initializer))
        it = iter(tasks)
        running: dict[Future, Any] = {}

        def fill() -> None:
            while len(running) < self.workers:
                try:
                    task = next(it)
                except StopIteration:
                    return
                with _starting_workers(main_needed):  # a worker may start here
                    running[self._pool.submit(fn, task)] = task

        fill()
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                task = running.pop(fut)
                try:
                    result = fut.result()
                except BrokenProcessPool as exc:
                    raise ExecutorError(task, "a local worker process died while running "
                                        f"it (out of memory, or killed?): {exc}") from None
                yield task, result
            fill()

    def _release(self, cancel: bool) -> None:
        try:
            self._shutdown(cancel)
        finally:
            for k, v in self._saved_env.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def _shutdown(self, cancel: bool) -> None:
        if not cancel:
            self._pool.shutdown(wait=True)
            return
        # Abandon running tasks: stop the workers (each removes its temporary run folder
        # on SIGTERM, see credsim.audit.replicates), kill any that do not stop.
        procs = list((getattr(self._pool, "_processes", None) or {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)


@contextlib.contextmanager
def _starting_workers(main_needed: bool):
    """While local workers may start:

    - SIGINT is blocked, and the workers inherit the block: Ctrl-C in a terminal
      signals every process of the group, and a worker still importing would print a
      KeyboardInterrupt traceback (Ctrl-C is the parent's to handle; it gets the
      signal as soon as the block ends).
    - A spawned worker first runs the caller's __main__ module again, to find the
      functions defined there. That fails for a program read from standard input
      (`python - < script.py`), and a script without an `if __name__ == "__main__":`
      guard would start its work again in every worker. Unless the worker's
      functions live there, __main__ is a bare module meanwhile, so workers skip it.
    """
    main = sys.modules.get("__main__")
    hide = not main_needed and main is not None
    mask = (signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            if hasattr(signal, "pthread_sigmask") else None)
    if hide:
        sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        if hide:
            sys.modules["__main__"] = main
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


class DaskExecutor(_ClosesOnce):
    """The workers of the Dask distributed cluster whose scheduler is at `address`.

    The workers must run the same version of credsim (checked on connecting). Tasks are
    handed to the scheduler a few at a time (twice the cluster's threads), so a sweep
    never floods it and an interrupted sweep leaves little behind. If the cluster has
    no worker for `worker_timeout` seconds (default: $CREDSIM_DASK_WORKER_TIMEOUT, else
    60), connecting fails with InputError and running with ExecutorError, instead of
    waiting for ever.
    """

    def __init__(self, address: str, connect_timeout: float = 10.0,
                 worker_timeout: float | None = None):
        self.worker_timeout = worker_timeout_seconds() if worker_timeout is None \
            else worker_timeout
        try:
            from distributed import Client
            from distributed.comm import resolve_address
        except ImportError:  # pragma: no cover - a dependency of credsim
            raise InputError("--scheduler needs the 'distributed' package") from None
        try:
            # A malformed address fails here, before a Client exists: a Client that fails
            # in its constructor complains again from its finaliser.
            resolve_address(address)
        except (ValueError, OSError) as exc:
            raise InputError(f"--scheduler {address}: not a Dask scheduler address "
                             f"({exc}); expected e.g. tcp://host:8786") from None
        self._quiet = _QuietLoggers("distributed")
        try:
            self.client = _quiet_client_class(Client)(address, timeout=connect_timeout,
                                                      set_as_default=False)
        except Exception as exc:  # OSError, TimeoutError
            self._quiet.restore()
            raise InputError(f"--scheduler {address}: cannot connect to a Dask scheduler "
                             f"({type(exc).__name__}: {exc})") from None
        self.address = address
        try:
            self._check_workers()
        except BaseException:
            self._close_client()
            raise
        n = len(self.client.nthreads())
        self.description = (f"Dask scheduler {address} ({n} worker{'s' if n != 1 else ''} "
                            "connected now)")
        self._futures: dict = {}

    def _check_workers(self) -> None:
        """At least one worker, each running this version of credsim."""
        try:
            self.client.wait_for_workers(1, timeout=self.worker_timeout)
        except TimeoutError:
            raise InputError(f"--scheduler {self.address}: no worker connected to the "
                             f"scheduler within {self.worker_timeout:g} s (start one with "
                             f"`dask worker {self.address}`; {WORKER_TIMEOUT_ENV} sets how "
                             "long to wait)") from None
        try:
            versions = self.client.run(_credsim_version)
        except Exception as exc:
            raise InputError(f"--scheduler {self.address}: the workers cannot run credsim "
                             f"({type(exc).__name__}: {exc}); install credsim "
                             f"{__version__} on every worker") from None
        wrong = sorted({v for v in versions.values() if v != __version__})
        if wrong:
            raise InputError(f"--scheduler {self.address}: workers run credsim "
                             f"{', '.join(wrong)}, this is credsim {__version__}; the "
                             "results would differ, so install the same version everywhere")

    def _window(self) -> int:
        try:
            threads = sum(self.client.nthreads().values())
        except Exception:  # pragma: no cover - scheduler gone; the wait below says so
            threads = 0
        return max(2, 2 * threads)

    def map_unordered(self, fn, tasks):
        it = iter(tasks)
        running = self._futures
        finished: queue.Queue = queue.Queue()

        def fill() -> None:
            window = self._window()
            while len(running) < window:
                try:
                    task = next(it)
                except StopIteration:
                    return
                fut = self.client.submit(fn, task, pure=False)
                running[fut] = task
                fut.add_done_callback(finished.put)

        fill()
        while running:
            fut = self._next_finished(finished, running)
            task = running.pop(fut)
            try:
                result = fut.result()
            except Exception as exc:  # KilledWorker, a lost scheduler, a cancelled future
                if not self._connected():
                    raise ExecutorError(task, self._lost()) from None
                raise ExecutorError(task, f"the Dask cluster could not run it: "
                                    f"{type(exc).__name__}: {exc}") from None
            fut.release()
            yield task, result
            fill()

    def _next_finished(self, finished: queue.Queue, running: dict):
        """The next future to finish; ExecutorError if the scheduler is lost or the
        cluster has had no worker for `worker_timeout` seconds."""
        poll = min(1.0, max(0.05, self.worker_timeout / 5))
        alone_since: float | None = None
        while True:
            try:
                fut = finished.get(timeout=poll)
            except queue.Empty:
                pass
            else:
                if fut in running:
                    return fut
                continue
            task = next(iter(running.values()))
            if not self._connected():
                raise ExecutorError(task, self._lost())
            try:
                workers = len(self.client.nthreads())
            except Exception:
                raise ExecutorError(task, self._lost()) from None
            if workers:
                alone_since = None
                continue
            now = time.monotonic()
            alone_since = now if alone_since is None else alone_since
            if now - alone_since >= self.worker_timeout:
                raise ExecutorError(task, f"the Dask scheduler {self.address} has had no "
                                    f"worker for {self.worker_timeout:g} s "
                                    f"({WORKER_TIMEOUT_ENV} sets how long to wait)")

    def _connected(self) -> bool:
        return self.client.status == "running"

    def _lost(self) -> str:
        return f"lost the connection to the Dask scheduler {self.address}"

    def _release(self, cancel: bool) -> None:
        try:
            if cancel and self._futures and self._connected():
                with contextlib.suppress(Exception):
                    self.client.cancel(list(self._futures))
            self._futures.clear()
        finally:
            self._close_client()

    def _close_client(self) -> None:
        """Close without a word: the command reports what went wrong itself, and a client
        whose scheduler is gone would otherwise log tracebacks while it gives up."""
        try:
            with contextlib.suppress(Exception):
                self.client.close(timeout=CLOSE_TIMEOUT)
        finally:
            self._quiet.restore()


def _quiet_client_class(client_class: type) -> type:
    """A Dask Client that, when it cannot connect, gives up at once: a plain Client left
    half-started tries to close from its finaliser, waits twice the connect timeout and
    prints a traceback ("Exception ignored in Client.__del__")."""

    class QuietClient(client_class):
        def start(self, **kwargs):
            try:
                super().start(**kwargs)
            except BaseException:
                self.status = "closed"  # never connected: nothing to close but the loop
                with contextlib.suppress(Exception):
                    self._loop_runner.stop()
                raise

    return QuietClient


def _credsim_version() -> str:
    return __version__


def make_executor(workers: int | None, scheduler: str | None, *, tasks: int,
                  initializer: Callable[[int], None] | None = None,
                  worker_timeout: float | None = None) -> Executor:
    """The executor for `--workers` / `--scheduler`: Dask if a scheduler is given, else
    local processes (default: one per core, at most one per task)."""
    if scheduler is not None:
        if workers is not None:
            raise InputError("--workers applies to local processes; with --scheduler the "
                             "cluster's workers run the tasks (leave out --workers)")
        return DaskExecutor(scheduler, worker_timeout=worker_timeout)
    if workers is not None and workers < 1:
        raise InputError(f"--workers {workers}: must be at least 1")
    return LocalExecutor(min(workers or os.cpu_count() or 1, max(tasks, 1)), initializer)
