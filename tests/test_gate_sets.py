"""The gates' bookkeeping for long runs: the sets of people who meet each use gate's
condition, kept up to date from the day's changes, give the same applications as
evaluating everyone out of the initial state every day; applications streamed to
sanctions.parquet as the run goes give the same file as writing them at the end; the
daily rows kept as column blocks read back as the rows they were."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from credsim.consequences import Applications, Consequences, MetSets
from credsim.engine import Simulation, Timeseries
from credsim.population.people import is_adult
from credsim.results import run_dir
from credsim.scenario.load import load_scenario

# Many volunteers reach grade AA within a few years and many debtors are listed, so
# that the sets of people out of the initial state grow large, as over decades.
BUSY = ["demography.enabled=true", "behaviours.volunteering.rate=0.02",
        "behaviours.judgment_default.rate=0.0005", "behaviours.loan_arrears.rate=0.002"]


def _sim(preset: str, overrides: list[str], people: int = 3000, days: int = 3 * 365,
         seed: int = 3) -> Simulation:
    return Simulation(load_scenario(preset, [*BUSY, *overrides], people=people, days=days,
                                    seed=seed))


def _run(sim: Simulation, each_day=None) -> Simulation:
    for day in range(sim.scenario.run.days):
        sim.step(day)
        if each_day is not None:
            each_day(sim, day)
    return sim


def _every_member_evaluated(self: Consequences, n: int) -> None:
    """Consequences._track_met that tracks nothing: every use gate on the members
    evaluates all of them each day, as before the sets were kept."""
    self.met_bit, self.met = {}, None


def _brute_force(c: Consequences, bit: int) -> np.ndarray:
    """The members who are adults meeting condition `bit` now, from scratch."""
    members = c.members[: c.size[0]].astype(np.int64)
    cond, domain = c.met.conditions[bit]
    held, _ = c.evaluation(members).meets(cond, domain, sanction=domain >= 0)
    return members[held & is_adult(c.people.age[members])]


@pytest.mark.parametrize("preset, extra", [
    ("rongcheng", []),
    # Domain separation: a sanction's condition depends on the gate's domain.
    ("safeguarded", []),
    ("rongcheng", ["demography.enabled=false"]),
])
def test_sets_of_those_meeting_a_condition_give_the_same_applications(monkeypatch, preset,
                                                                       extra):
    largest = []

    def check(sim: Simulation, day: int) -> None:
        c = sim.gates
        for bit in range(len(c.met.conditions)):
            kept = np.sort(c.met.meeting_now(bit))
            assert np.array_equal(kept, np.sort(_brute_force(c, bit))), (day, bit)
        largest.append(max(c.met.sizes))

    sim = _run(_sim(preset, extra), check)
    c = sim.gates
    assert c.met_bit and c.size[0] > 500  # the sets were used, and the members many
    assert max(largest) > c.size[0] / 2  # a condition most members meet (grade>=AA)
    with monkeypatch.context() as m:
        m.setattr(Consequences, "_track_met", _every_member_evaluated)
        plain = _run(_sim(preset, extra))
    assert not plain.gates.met_bit
    a, b = c.applications(), plain.gates.applications()
    assert len(a["id"]) > 10_000
    for col in a:
        assert np.array_equal(a[col], b[col]), col  # the same rows, in the same order
    assert sim.rows.table().equals(plain.rows.table())
    assert np.array_equal(sim.economy.savings, plain.economy.savings)
    assert np.array_equal(c.status, plain.gates.status)


def test_a_person_who_meets_a_condition_twice_in_one_update_joins_its_list_once():
    sets = MetSets([(None, -1), (None, -1)], 10)  # conditions are not read here
    persons = np.array([4, 4, 7], dtype=np.int64)
    sets.update(persons, np.array([1, 1, 4], dtype=np.int64))  # bits 2c: 4 meets 0, 7 meets 1
    assert sets.meeting_now(0).tolist() == [4] and sets.meeting_now(1).tolist() == [7]
    sets.update(np.array([4], dtype=np.int64), np.array([0], dtype=np.int64))  # 4 leaves
    sets.update(np.array([4], dtype=np.int64), np.array([1], dtype=np.int64))  # and is back
    assert sets.meeting_now(0).tolist() == [4]
    sets.update(np.array([4], dtype=np.int64), np.array([0], dtype=np.int64))
    assert sets.meeting_now(0).tolist() == [] and sets.meeting_now(1).tolist() == [7]


def _batches(rng: np.random.Generator, days: int) -> list[dict]:
    out = []
    for day in range(days):
        m = int(rng.integers(0, 40))
        out.append({"day": day, "id": rng.integers(0, 10**6, m), "gate": int(rng.integers(3)),
                    "wrongful": rng.random(m) < 0.1, "trigger_domain": rng.integers(0, 9, m)})
    return out


def test_applications_are_kept_whole_or_passed_on_in_parts_of_the_group_size():
    batches = _batches(np.random.default_rng(5), 200)
    expected = {k: np.concatenate([np.broadcast_to(b[k], len(b["id"])) for b in batches])
                for k in Applications.COLUMNS}
    kept = Applications(group_rows=64)
    parts: list[dict] = []
    streamed = Applications(group_rows=64)
    for i, b in enumerate(batches):
        kept.append(**b)
        streamed.append(**b)
        if i == 50:  # a sink set during the run first receives the parts kept so far
            streamed.stream_to(lambda part: parts.append({k: v.copy() for k, v in part.items()}))
    streamed.close()
    got = kept.arrays()
    for k, dtype in Applications.COLUMNS.items():
        assert got[k].dtype == dtype and np.array_equal(got[k], expected[k].astype(dtype))
        joined = np.concatenate([p[k] for p in parts])
        assert np.array_equal(joined, expected[k].astype(dtype))
    sizes = [len(p["id"]) for p in parts]
    assert sizes[:-1] == [64] * (len(sizes) - 1) and 0 < sizes[-1] <= 64
    assert sum(sizes) == kept.rows == len(expected["id"])


def test_no_application_still_writes_a_schema():
    parts: list[dict] = []
    a = Applications(group_rows=8)
    a.stream_to(parts.append)
    a.close()
    assert [len(p["id"]) for p in parts] == [0]


@pytest.mark.parametrize("group", [300, 1 << 20])
def test_sanctions_streamed_during_the_run_are_the_file_written_at_the_end(tmp_path,
                                                                          monkeypatch, group):
    monkeypatch.setattr(run_dir, "SANCTIONS_ROW_GROUP", group)
    files = []
    for stream in (True, False):
        out = tmp_path / f"stream{stream}"
        out.mkdir()
        sim = _sim("rongcheng", [], people=2000, days=365)
        if stream:
            run_dir.stream_sanctions(sim, out / "sanctions.parquet")
        sim.run()
        run_dir.write_results(sim, out, 1.0)
        files.append(out / "sanctions.parquet")
    rows = pq.read_metadata(files[0]).num_rows
    assert rows > 3 * 300  # several row groups when they hold 300 rows
    assert pq.read_metadata(files[0]).num_row_groups == -(-rows // group)
    assert files[0].read_bytes() == files[1].read_bytes()


def test_daily_rows_kept_in_column_blocks_read_back_as_the_rows(monkeypatch):
    monkeypatch.setattr(Timeseries, "CHUNK", 4)
    rows = [{"day": d, "count": 3 * d, "share": d / 7 if d % 5 else 1, "flag": d % 2 == 0}
            for d in range(11)]
    rows[6]["share"] = None
    del rows[9]["count"]  # a missing key: null, as in pa.Table.from_pylist
    rows[10]["extra"] = 1  # a key the first row lacks: not a column, as there
    ts = Timeseries()
    for r in rows:
        ts.append(dict(r))
    assert len(ts) == 11 and len(ts.blocks) == 2
    assert ts.table().equals(pa.Table.from_pylist(rows))
    assert ts[-1] == rows[10] and ts[1] == rows[1] and ts[-11] == rows[0]
    assert [r["day"] for r in ts] == list(range(11)) and ts[2:4] == rows[2:4]
    assert ts == rows and ts != rows[:-1] and ts != [*rows[:-1], {"day": 10}]
    with pytest.raises(IndexError):
        ts[11]
