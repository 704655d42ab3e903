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
  of its scheduler.

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

import multiprocessing
import os
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
        self._pool = ProcessPoolExecutor(max_workers=workers,
                                         mp_context=multiprocessing.get_context("spawn"),
                                         initializer=initializer, initargs=(workers,))

    def map_unordered(self, fn, tasks):
        it = iter(tasks)
        running: dict[Future, Any] = {}

        def fill() -> None:
            while len(running) < self.workers:
                try:
                    task = next(it)
                except StopIteration:
                    return
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


class DaskExecutor(_ClosesOnce):
    """The workers of the Dask distributed cluster whose scheduler is at `address`.

    The workers must run the same version of credsim (checked on connecting). Tasks are
    handed to the scheduler a few at a time (twice the cluster's threads), so a sweep
    never floods it and an interrupted sweep leaves little behind.
    """

    def __init__(self, address: str, connect_timeout: float = 10.0):
        try:
            from distributed import Client
        except ImportError:  # pragma: no cover - a dependency of credsim
            raise InputError("--scheduler needs the 'distributed' package") from None
        try:
            self.client = Client(address, timeout=connect_timeout, set_as_default=False)
        except Exception as exc:  # OSError, TimeoutError, ValueError for a bad address
            raise InputError(f"--scheduler {address}: cannot connect to a Dask scheduler "
                             f"({type(exc).__name__}: {exc})") from None
        try:
            versions = self.client.run(_credsim_version)
        except Exception as exc:
            self.client.close()
            raise InputError(f"--scheduler {address}: the workers cannot run credsim "
                             f"({type(exc).__name__}: {exc}); install credsim "
                             f"{__version__} on every worker") from None
        wrong = sorted({v for v in versions.values() if v != __version__})
        if wrong:
            self.client.close()
            raise InputError(f"--scheduler {address}: workers run credsim "
                             f"{', '.join(wrong)}, this is credsim {__version__}; the "
                             "results would differ, so install the same version everywhere")
        self.address = address
        n = len(versions)
        self.description = (f"Dask scheduler {address} ({n} worker{'s' if n != 1 else ''} "
                            "connected now)")
        self._futures: dict = {}

    def _window(self) -> int:
        try:
            threads = sum(self.client.nthreads().values())
        except Exception:  # pragma: no cover - scheduler gone; as_completed will say so
            threads = 0
        return max(2, 2 * threads)

    def map_unordered(self, fn, tasks):
        from distributed import as_completed

        it = iter(tasks)
        running = self._futures
        ac = as_completed(loop=self.client.loop)

        def fill() -> None:
            window = self._window()
            while len(running) < window:
                try:
                    task = next(it)
                except StopIteration:
                    return
                fut = self.client.submit(fn, task, pure=False)
                running[fut] = task
                ac.add(fut)

        fill()
        while running:
            fut = next(ac)
            task = running.pop(fut)
            try:
                result = fut.result()
            except Exception as exc:  # KilledWorker, a lost scheduler, a cancelled future
                raise ExecutorError(task, f"the Dask cluster could not run it: "
                                    f"{type(exc).__name__}: {exc}") from None
            fut.release()
            yield task, result
            fill()

    def _release(self, cancel: bool) -> None:
        try:
            if cancel and self._futures:
                self.client.cancel(list(self._futures))
            self._futures.clear()
        finally:
            self.client.close()


def _credsim_version() -> str:
    return __version__


def make_executor(workers: int | None, scheduler: str | None, *, tasks: int,
                  initializer: Callable[[int], None] | None = None) -> Executor:
    """The executor for `--workers` / `--scheduler`: Dask if a scheduler is given, else
    local processes (default: one per core, at most one per task)."""
    if scheduler is not None:
        if workers is not None:
            raise InputError("--workers applies to local processes; with --scheduler the "
                             "cluster's workers run the tasks (leave out --workers)")
        return DaskExecutor(scheduler)
    if workers is not None and workers < 1:
        raise InputError(f"--workers {workers}: must be at least 1")
    return LocalExecutor(min(workers or os.cpu_count() or 1, max(tasks, 1)), initializer)
