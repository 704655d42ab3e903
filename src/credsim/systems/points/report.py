"""A points system's figures in the run report: its grades over time ("scores"
section) and where adults starting at the initial grade ended ("flows")."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.ticker import FuncFormatter

from credsim.audit.report import e, grade_colours, html_table, num, pct, percent_axis
from credsim.modules import Instance

DOMINANT_SHARE = 0.99  # one grade holding this share of adults every day: no stacked chart


def report_figures(section: str, run: Any, figs: Any, instance: Instance) -> list[str]:
    if not instance.primary:  # its grades are in the measures table
        return []
    if section == "scores":
        return grades_over_time(run.ts, tuple(instance.params.grades), figs)
    if section == "flows":
        return grade_flows(run.m, figs)
    return []


def grades_over_time(ts: dict, grades: tuple[str, ...], figs: Any) -> list[str]:
    """Shares of adults in each grade (left out when one grade holds nearly everyone) and
    the counts of the other grades, day by day."""
    day = ts["day"]
    colours = grade_colours(len(grades))
    grade_cols = [f"grade_{g}" for g in grades]
    if not all(c in ts for c in grade_cols):
        return []
    counts = np.vstack([ts[c] for c in grade_cols]).astype(float)
    shares = counts / np.maximum(counts.sum(axis=0), 1)
    # A stacked share chart says nothing when one grade holds nearly everyone.
    dominant = int(np.argmax(shares.min(axis=1))) if shares.size else 0
    stacked = not (shares.size and shares[dominant].min() >= DOMINANT_SHARE)
    fig, ax = figs.new(2 if stacked else 1, height=3.2, width=9.0 if stacked else 6.0)
    lines = ax[0][-1]
    if stacked:
        ax[0][0].stackplot(day, shares, labels=grades, colors=colours)
        ax[0][0].set_ylim(0, 1)
        ax[0][0].set_title("share of adults in each grade")
        ax[0][0].set_xlabel("day of the run")
        ax[0][0].set_ylabel("share of adults")
        ax[0][0].yaxis.set_major_formatter(percent_axis())
        ax[0][0].legend(ncols=6, fontsize=8, frameon=False, loc="upper center",
                        bbox_to_anchor=(0.5, -0.2))
    # Lines for all grades but the one most hold (A at the start under AAA..D).
    base = grades[dominant] if not stacked else grades[min(2, len(grades) - 1)]
    for g, c, col in zip(grades, grade_cols, colours, strict=True):
        if g != base:
            lines.plot(day, ts[c], label=g, color=col)
    lines.set_yscale("symlog", linthresh=10)
    lines.set_title(f"adults in each grade other than {base} (log scale)")
    lines.set_xlabel("day of the run")
    lines.set_ylabel("adults (log scale)")
    lines.set_ylim(bottom=0)
    lines.legend(ncols=5, fontsize=8, frameon=False, loc="upper center",
                 bbox_to_anchor=(0.5, -0.2))
    note = "" if stacked else (
        f" Grade {grades[dominant]} held at least {DOMINANT_SHARE:.0%} of adults on "
        "every day, so the share chart is left out; the other grades are counted.")
    return [figs.figure(fig, "Points grades over time (held grades, adults). "
                        "Everyone starts at the grade of the initial score." + note)]


def grade_flows(m: Any, figs: Any) -> list[str]:
    """The transition row from the initial grade (measure grade_transition), drawn and
    tabulated."""
    flows = m.keyed("grade_transition")
    if not flows:
        return []
    start = flows[0].key.split("->")[0]
    fig, ax = figs.new(1, height=3.0, width=7.0)
    a = ax[0][0]
    labels = [f.key.split("->")[1] for f in flows]
    vals = [f.value or 0.0 for f in flows]
    bars = a.bar(labels, vals, color=grade_colours(len(labels)))
    a.set_yscale("log")
    positive = [v for v in vals if v > 0]
    a.set_ylim(min(positive + [1.0]) / 3, 3)
    for b, v in zip(bars, vals, strict=True):
        a.annotate(pct(v) if v >= 0.001 else (f"{100 * v:.3f} %" if v > 0 else "0"),
                   (b.get_x() + b.get_width() / 2, max(v, a.get_ylim()[0])),
                   ha="center", va="bottom", fontsize=8)
    a.set_title(f"where adults starting at {start} ended the run (log scale)")
    a.set_xlabel("grade on the last day")
    a.set_ylabel("share of adults (log scale)")
    # Log-scale ticks go down to 0.01 %: written with their own digits, not rounded to 0.
    a.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{100 * v:g} %"))
    rows = [[e(f.key), pct(f.value), num(f.value)] for f in flows]
    return [figs.figure(fig, f"Grade flows: the transition row from {e(start)}, the grade "
                        "everyone starts at (measure grade_transition).") + html_table(
        ["from → to", "share", "value"], rows, {1, 2})]
