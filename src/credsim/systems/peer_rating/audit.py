"""Peer ratings' audit measures (docs/measures.md): the mean and spread of adults'
held ratings."""

from __future__ import annotations

from credsim.audit.measures import RunTables
from credsim.modules import Instance, Measured


def audit(run: RunTables, part: str, instance: Instance) -> list[Measured]:
    if part != "distributions":
        return []
    mean, sd = run.sql("SELECT avg(rating), stddev_pop(rating) FROM people "
                       "WHERE age_band != 'child'")[0]
    return [Measured("rating_mean", mean), Measured("rating_sd", sd)]
