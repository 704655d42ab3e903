"""A composite score's figure in the run report: the share of participants in each
band, day by day ("scores" section)."""

from __future__ import annotations

from typing import Any

import numpy as np

from credsim.audit.report import percent_axis
from credsim.modules import Instance

BAND_COLOURS = ["#D55E00", "#E69F00", "#F0E442", "#56B4E9", "#0072B2", "#009E73", "#999999"]


def report_figures(section: str, run: Any, figs: Any, instance: Instance) -> list[str]:
    ts = run.ts
    bands = [k for k in ts if k.startswith("band_")]
    if section != "scores" or not bands:
        return []
    fig, ax = figs.new(1, height=3.2)
    n = np.maximum(ts["composite_participants"].astype(float), 1)
    ax[0][0].stackplot(ts["day"], [ts[b] / n for b in bands],
                       labels=[b.removeprefix("band_") for b in bands],
                       colors=BAND_COLOURS[:len(bands)])
    ax[0][0].set_ylim(0, 1)
    ax[0][0].set_xlabel("day of the run")
    ax[0][0].set_ylabel("share of participants")
    ax[0][0].yaxis.set_major_formatter(percent_axis())
    ax[0][0].set_title("share of participants in each band of the composite score")
    ax[0][0].legend(ncols=len(bands), fontsize=8, frameon=False, loc="upper center",
                    bbox_to_anchor=(0.5, -0.16))
    return [figs.figure(fig, "Composite score bands over time (counts change on "
                        "refresh days).")]
