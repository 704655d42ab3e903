"""Every preset's numbers are guarded: a content hash of each table and the value of
each audit measure, at a small size, against tests/golden/presets.json. A change there
is intended and explained in its commit (regenerate with benchmarks/golden.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from credsim.scenario.load import preset_names

HERE = Path(__file__).parent
_spec = importlib.util.spec_from_file_location("golden", HERE.parent / "benchmarks" /
                                               "golden.py")
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)
GOLDEN = json.loads(golden.GOLDEN_FILE.read_text())


def test_the_golden_file_covers_every_preset_at_its_stated_size():
    assert sorted(GOLDEN["presets"]) == preset_names()
    assert (GOLDEN["people"], GOLDEN["days"], GOLDEN["decades_days"], GOLDEN["seed"]) == (
        golden.GOLDEN_PEOPLE, golden.GOLDEN_DAYS, golden.GOLDEN_DECADES_DAYS, 1)


@pytest.mark.parametrize("name", preset_names())
def test_preset_numbers_match_the_golden_figures(name, tmp_path):
    now = golden.preset_figures(name, tmp_path)
    then = GOLDEN["presets"][name]
    changed = [t for t in then["tables"] if now["tables"].get(t) != then["tables"][t]]
    assert not changed, (f"{name}: tables {changed} differ from the golden figures; if "
                         "intended, run benchmarks/golden.py and explain it in the commit")
    moved, added = golden.same_measures(then["measures"], now["measures"])
    assert not moved and not added, (f"{name}: measures (golden, now) {moved}, new {added}")


def test_the_hash_sees_a_changed_value_and_a_changed_type():
    import pyarrow as pa

    t = pa.table({"a": [1, 2, 3]})
    assert golden.table_hash(t) == golden.table_hash(pa.table({"a": [1, 2, 3]}))
    assert golden.table_hash(t) != golden.table_hash(pa.table({"a": [1, 2, 4]}))
    assert golden.table_hash(t) != golden.table_hash(
        pa.table({"a": pa.array([1, 2, 3], pa.int32())}))


def test_measures_compare_exactly_but_for_the_last_bits():
    assert golden.same_measures({"a|": 1.0, "b|": None}, {"a|": 1.0 + 1e-15, "b|": None}) == (
        {}, [])
    moved, added = golden.same_measures({"a|": 1.0}, {"a|": 1.001, "c|": 2.0})
    assert moved == {"a|": (1.0, 1.001)} and added == ["c|"]
