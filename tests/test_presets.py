"""Every shipped preset runs end to end at a small size and writes a usable folder."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from credsim.results.query import query
from credsim.results.run_dir import open_run
from credsim.results.summary import summarize
from credsim.scenario.load import preset_names

PEOPLE, DAYS = 3000, 30

@pytest.fixture(scope="module")
def preset_runs(simulate, tmp_path_factory):
    """One small run per preset, made on first use."""
    made = {}

    def get(name):
        if name not in made:
            made[name] = simulate(tmp_path_factory.mktemp(name) / "run", name,
                                  people=PEOPLE, days=DAYS, seed=1)
        return made[name]

    return get


@pytest.mark.parametrize("name", preset_names())
def test_preset_runs_end_to_end(name, preset_runs):
    run = preset_runs(name)
    manifest = open_run(run.path)
    assert manifest["complete"] is True and manifest["scenario_name"] == name
    # With demography the people are the slots anyone lived in: those born too.
    slots = json.loads((run.path / "manifest.json").read_text())["people"]
    born = 0
    ts = pq.read_table(run.path / "timeseries.parquet")
    if "births" in ts.column_names:
        born = sum(ts.column("births").to_pylist())
    assert slots == PEOPLE + born
    assert ts.num_rows == DAYS and ts.column("day").to_pylist() == list(range(DAYS))
    assert pq.read_table(run.path / "people.parquet").num_rows == slots
    n_firms = pq.read_table(run.path / "firms.parquet").num_rows
    assert n_firms == manifest["firms"] > 0
    assert sum(ts.column("events_true").to_pylist()) > 0
    _, rows = query(run.path, "select count(*) from ledger")
    assert rows[0][0] == manifest["ledger_rows"]
    _, figures = summarize(run.path)
    assert figures


@pytest.mark.parametrize("name", preset_names())
def test_preset_counts_and_figures_are_never_negative(name, preset_runs):
    run = preset_runs(name)
    ts = pq.read_table(run.path / "timeseries.parquet").to_pydict()
    for col, values in ts.items():
        assert min(values) >= 0, (col, min(values))
    _, figures = summarize(run.path)
    for f in figures:
        assert f.value is None or f.value >= 0, f
