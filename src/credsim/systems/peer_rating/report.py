"""Peer ratings' figure in the run report: the mean held rating of adults, day by day
("scores" section)."""

from __future__ import annotations

from typing import Any

from credsim.audit.report import BLUE
from credsim.modules import Instance


def report_figures(section: str, run: Any, figs: Any, instance: Instance) -> list[str]:
    if section != "scores" or "rating_mean" not in run.ts:
        return []
    fig, ax = figs.new(1, height=3.0)
    ax[0][0].plot(run.ts["day"], run.ts["rating_mean"], color=BLUE)
    ax[0][0].set_xlabel("day of the run")
    ax[0][0].set_ylabel("mean rating (stars)")
    ax[0][0].set_title("mean held peer rating of adults")
    return [figs.figure(fig, "Peer ratings over time.")]
