"""A progress bar for long runs: days done, person-days per second, time left.

Shown only on a terminal, not with --quiet, and only once a run has taken
more than a second, so short runs and pipes stay quiet.
"""

from __future__ import annotations

import sys
import time

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

SHOW_AFTER_SECONDS = 1.0


class DayProgress:
    def __init__(self, days: int, people: int, enabled: bool = True, always: bool = False):
        """`always`: show the bar even when standard error is not a terminal (a notebook
        asked for it)."""
        self.days, self.people = days, people
        self.enabled = enabled and (always or sys.stderr.isatty())
        self.progress: Progress | None = None
        self.t0 = 0.0

    def __enter__(self) -> DayProgress:
        self.t0 = time.perf_counter()
        return self

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        if self.progress is None:
            if elapsed < SHOW_AFTER_SECONDS:
                return
            self.progress = Progress(
                TextColumn("day {task.completed:>5.0f}/{task.total:.0f}"),
                BarColumn(),
                TextColumn("{task.fields[rate]} person-days/s"),
                TimeRemainingColumn(),
                transient=True,
            )
            self.progress.start()
            self.task = self.progress.add_task("run", total=self.days, rate="-")
        rate = done * self.people / max(elapsed, 1e-9)
        self.progress.update(self.task, completed=done, rate=f"{rate:,.0f}")

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()
