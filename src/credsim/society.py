"""The society module: what people do each day (behave) and what the systems'
channels record of it (observe), with the day's counts of both."""

from __future__ import annotations

from typing import Any

import numpy as np

from credsim.behaviour import D_VOICE, Behaviour
from credsim.modules import Day, Hook, Module, Result
from credsim.observation import Observation
from credsim.rng import Stream
from credsim.scenario.model import DOMAINS


class Society(Module):
    kind = "society"
    build_order = 1
    record_order = 90
    hooks = (Hook("behave", "behave"), Hook("observe", "observe"))
    random_streams = (Stream("behave.<behaviour>", "numba", "behaviour and day"),
                      Stream("false.<channel>", "numpy", "channel and day: its false records"))
    results = (
        Result("events_true"),
        Result("events_<domain>"),
        Result("events_observed"),
        Result("records_false"),
        Result("voice_events"),
    )

    def __init__(self, sim) -> None:
        super().__init__(sim)
        cat = sim.cat
        self.behaviour = Behaviour(cat, sim.people, sim.firms, sim.economy, sim.streams)
        self.observation = Observation(cat, sim.people, sim.streams)
        self.voice_behaviours = np.flatnonzero(cat.driver == D_VOICE)
        self.domains_used = np.isin(np.arange(len(DOMAINS)), cat.domain)

    def behave(self, d: Day) -> None:
        """Sample the day's true events of every behaviour."""
        d.events = self.behaviour.step(d.day)

    def observe(self, d: Day) -> None:
        """Record the events each channel detects, and its false records."""
        records = self.observation.step(d.events, d.day)
        d.n_observed = int((~records.is_false).sum())
        d.n_false = len(records) - d.n_observed  # channel errors (threats counted apart)
        d.records = records

    def record(self, d: Day, row: dict[str, Any]) -> None:
        events = d.events
        row["events_true"] = len(events.who)
        # True events by domain: the claimed benefits are measured on these.
        by_domain = np.bincount(self.sim.cat.domain[events.behaviour], minlength=len(DOMAINS))
        for k in np.flatnonzero(self.domains_used):
            row[f"events_{DOMAINS[k]}"] = int(by_domain[k])
        row["events_observed"] = d.n_observed
        row["records_false"] = d.n_false
        row["voice_events"] = int(np.isin(events.behaviour, self.voice_behaviours).sum())

    def people_columns(self, part: slice) -> dict[str, Any]:
        return {"deterrence": self.behaviour.deter[part], "chill": self.behaviour.chill[part]}
