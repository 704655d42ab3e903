"""Headline figures of a run, optionally against a baseline run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from credsim.errors import InputError
from credsim.results.run_dir import open_run, reading
from credsim.scenario.model import GRADES


@dataclass
class Figure:
    name: str
    value: float | None
    unit: str


def summarize(run: Path, baseline: Path | None = None) -> tuple[dict, list[Figure]]:
    manifest = open_run(run)
    with reading(run):
        ts = pq.read_table(run / "timeseries.parquet").to_pydict()
    n, days = manifest["people"], manifest["days"]
    person_days = n * days
    figs: list[Figure] = []
    last = {k: v[-1] for k, v in ts.items()} if ts["day"] else {}
    if "listed" in ts:
        figs.append(Figure("listed per million (last day)", last["listed"] / n * 1e6, "per 1e6"))
        figs.append(Figure("listed per million (mean over days)",
                           sum(ts["listed"]) / days / n * 1e6, "per 1e6"))
        figs.append(Figure("new listings per million", sum(ts["new_listings"]) / n * 1e6,
                           "per 1e6 per run"))
    effects = {g: v["effect"] for g, v in manifest["scenario"]["gates"].items()}
    for g, effect in effects.items():
        what = "perks" if effect == "perk" else "sanctions"
        figs.append(Figure(f"{what} per million: {g}", sum(ts[f"gate_{g}"]) / n * 1e6,
                           "per 1e6 per run"))
    sanctioned = sum(ts["sanctioned"])
    wrongful = sum(ts["sanctioned_wrongful"])
    figs.append(Figure("sanctioned person-days per million person-days",
                       sanctioned / person_days * 1e6, "per 1e6"))
    figs.append(Figure("share of sanctioned person-days resting on a false record",
                       wrongful / sanctioned if sanctioned else None, "share"))
    if "grade_A" in ts:
        adults = manifest["adults"]  # children are not scored
        for g in GRADES:
            figs.append(Figure(f"grade {g} share of adults (last day)",
                               last[f"grade_{g}"] / adults if adults else None, "share"))
    figs.append(Figure("false records per million person-days",
                       sum(ts["records_false"]) / person_days * 1e6, "per 1e6"))
    figs.append(Figure("ties dropped per thousand people", sum(ts["ties_dropped"]) / n * 1e3,
                       "per 1e3"))
    voice = sum(ts["voice_events"]) / person_days
    if baseline is not None:
        bm = open_run(baseline)
        if (bm["people"], bm["days"], bm["scenario"]["run"]["seed"]) != (
            n, days, manifest["scenario"]["run"]["seed"]
        ):
            raise InputError(
                f"{baseline}: baseline must have the same people, days and seed as {run}"
            )
        with reading(baseline):
            bts = pq.read_table(baseline / "timeseries.parquet", columns=["voice_events"])
        bvoice = sum(bts.column("voice_events").to_pylist()) / person_days
        figs.append(Figure("voice relative to baseline", voice / bvoice if bvoice else None,
                           "ratio"))
    else:
        figs.append(Figure("voice events per thousand person-days", voice * 1e3, "per 1e3"))
    return manifest, figs
