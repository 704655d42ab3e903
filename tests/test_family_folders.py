"""Run folders of a population that changes: a folder missing a column that demography,
partnering, schooling or the generations write is refused by audit and calibrate,
naming the file and the column, instead of being read as a fixed population."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest

import credsim
from credsim.demography import Demography
from credsim.families.partnering import Partnering
from credsim.families.schooling import Schooling
from credsim.generations.module import Generations
from credsim.results.run_dir import open_run, required_columns
from credsim.scenario.load import load_scenario

MODULES = (Demography, Partnering, Schooling, Generations)


@pytest.fixture(scope="module")
def family_run(tmp_path_factory):
    """A small run with demography, partnering, schooling and a court list."""
    folder = tmp_path_factory.mktemp("family") / "run"
    credsim.run("sesame-dating", set={"run.people": 400, "run.days": 40}).save(folder)
    return folder


def _declared() -> list[tuple[str, str]]:
    scenario = load_scenario("sesame-dating")
    return sorted({(table, col) for cls in MODULES
                   for table, cols in cls.required_columns(scenario).items() for col in cols})


def test_the_family_columns_are_required():
    needed = required_columns(load_scenario("sesame-dating"))
    for table, col in _declared():
        assert col in needed[table], (table, col)


def test_a_whole_folder_opens(family_run):
    open_run(family_run)  # the declared columns, with their types, are those written


@pytest.mark.parametrize(("table", "column"), _declared())
def test_a_folder_missing_a_family_column_is_refused(family_run, tmp_path, table, column):
    damaged = tmp_path / "damaged"
    shutil.copytree(family_run, damaged)
    f = damaged / f"{table}.parquet"
    pq.write_table(pq.read_table(f).drop_columns([column]), f)
    for read in (lambda: credsim.open(damaged).audit(), lambda: open_run(damaged)):
        with pytest.raises(credsim.InputError) as exc:
            read()
        assert str(exc.value) == f"{f}: missing column {column} (this scenario's run writes them)"
