"""Headline figures of a run, optionally against a baseline run.

Each figure is one of the harm audit's measures (docs/measures.md), computed the same
way from the time series alone, with its label and unit from `credsim.labels`: flows
per million people per year, stocks per million people, person-days per million
person-days. The wrongful-sanction rate comes first, before the wrongful share.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from credsim.labels import measure_label
from credsim.results.run_dir import open_run, reading
from credsim.scenario.model import GRADES


@dataclass
class Figure:
    name: str  # the label, in plain words (with the key: "sanctions applied: flights")
    value: float | None
    unit: str
    measure: str = ""  # the measure of docs/measures.md
    key: str = ""


def _figure(measure: str, value: float | None, key: str = "") -> Figure:
    lab = measure_label(measure, key)
    return Figure(lab.label, value, lab.unit, measure, key)


def summarize(run: Path, baseline: Path | None = None) -> tuple[dict, list[Figure]]:
    manifest = open_run(run)
    with reading(run):
        ts = pq.read_table(run / "timeseries.parquet").to_pydict()
    n, days = manifest["people"], manifest["days"]
    person_days = n * days
    last = {k: v[-1] for k, v in ts.items()} if ts["day"] else {}
    n_last = n
    if "people_alive" in ts:  # a population that changes: only the living count
        person_days = sum(ts["people_alive"])
        n, n_last = person_days / days, last["people_alive"]
    per_m, year = 1e6 / n, 365.0 / days
    sanctioned, wrongful = sum(ts["sanctioned"]), sum(ts["sanctioned_wrongful"])
    figs = [
        _figure("wrongful_person_days_per_million", wrongful / person_days * 1e6),
        _figure("sanctioned_person_days_per_million", sanctioned / person_days * 1e6),
        _figure("wrongful_share", wrongful / sanctioned if sanctioned else None),
    ]
    if "listed" in ts:
        figs += [
            _figure("listed_per_million_last_day", last["listed"] * (1e6 / n_last)),
            _figure("listed_per_million", sum(ts["listed"]) / days * per_m),
            _figure("new_listings_per_million", sum(ts["new_listings"]) * year * per_m),
        ]
    for g, v in manifest["scenario"]["gates"].items():
        what = "perks_per_million" if v["effect"] == "perk" else "sanctions_per_million"
        figs.append(_figure(what, sum(ts[f"gate_{g}"]) * year * per_m, f"gate={g}"))
    points = manifest["scenario"]["points"]
    if points["enabled"]:
        adults = manifest["adults"]  # children are not scored
        figs += [_figure("grade_share", last[f"grade_{g}"] / adults if adults else None,
                         f"grade={g}") for g in points.get("grades", GRADES)]
    figs.append(_figure("false_records_per_million_person_days",
                        sum(ts["records_false"]) / person_days * 1e6))
    figs.append(_figure("ties_dropped_per_1000", sum(ts["ties_dropped"]) / n * 1e3))
    voice = sum(ts["voice_events"]) / person_days
    if baseline is not None:
        from credsim.audit.measures import check_baseline

        check_baseline(run, manifest, baseline, open_run(baseline))
        with reading(baseline):
            bts = pq.read_table(baseline / "timeseries.parquet", columns=["voice_events"])
        bvoice = sum(bts.column("voice_events").to_pylist()) / person_days
        figs.append(_figure("voice_vs_baseline", voice / bvoice if bvoice else None))
    else:
        figs.append(_figure("voice_per_1000_person_days", voice * 1e3))
    return manifest, figs
