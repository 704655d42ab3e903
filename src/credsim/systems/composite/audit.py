"""A composite score's audit measures (docs/measures.md): participation, the share of
participants in each band, the score's mean, spread and Gini coefficient."""

from __future__ import annotations

from credsim.audit.measures import RunTables, gini, ratio
from credsim.modules import Instance, Measured

PARTICIPANTS = "composite >= 0"  # those who take no part hold -1


def audit(run: RunTables, part: str, instance: Instance) -> list[Measured]:
    if part == "distributions":
        n_in = run.ts_last("composite_participants")
        mean, sd = run.sql("SELECT avg(composite), stddev_pop(composite) FROM people "
                           f"WHERE {PARTICIPANTS}")[0]
        return [Measured("composite_participation", ratio(n_in, run.adults)),
                *(Measured("band_share", ratio(run.ts_last(f"band_{name}"), n_in),
                           f"band={name}") for name in run.scenario.composite.bands),
                Measured("composite_mean", mean), Measured("composite_sd", sd)]
    if part == "stratification":
        return [Measured("gini_composite", gini(run.column("composite", PARTICIPANTS)))]
    return []
