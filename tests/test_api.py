"""The Python API: the same runs, tables, audits and records as the command line."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import credsim
from credsim.scenario.load import load_scenario
from credsim.scenario.values import toml_value

SMALL = {"people": 2000, "days": 30, "seed": 5}


@pytest.fixture(scope="module")
def api_run():
    return credsim.run("rongcheng", **SMALL)


def test_presets_name_and_describe_every_shipped_preset():
    got = dict(credsim.presets())
    assert {"rongcheng", "baseline", "sesame", "nosedive"} <= set(got)
    assert all(isinstance(d, str) and d for d in got.values())


def test_load_applies_python_values_like_the_command_lines_set():
    sc = credsim.load("rongcheng", set={"safeguards.review_capacity": 200,
                                        "channels.court.false_rate_by_group": [1.0, 3.0]},
                      people=20_000, days=90, seed=3)
    same = load_scenario("rongcheng", ["safeguards.review_capacity=200",
                                       "channels.court.false_rate_by_group=[1.0, 3.0]"],
                         people=20_000, days=90, seed=3)
    assert sc == same
    assert (sc.run.people, sc.run.days, sc.run.seed) == (20_000, 90, 3)


@pytest.mark.parametrize("bad", [{"run.dayz": 3}, {"run.days": 0}, {"run.days.x": 1},
                                 {"": 1}, {"run.days": object()}])
def test_load_raises_input_error_for_bad_overrides(bad):
    with pytest.raises(credsim.InputError):
        credsim.load("rongcheng", set=bad)


def test_an_edited_scenario_is_validated_on_assignment():
    sc = credsim.load("rongcheng")
    sc.run.days = 40
    assert sc.run.days == 40
    with pytest.raises(Exception, match="days"):
        sc.run.days = -1


def test_run_gives_the_same_results_as_the_command_line(api_run, cli, tmp_path):
    out = tmp_path / "cli"
    r = cli("run", "rongcheng", "--people", "2000", "--days", "30", "--seed", "5",
            "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    for name in ("timeseries", "ledger", "people", "sanctions"):
        assert api_run.table(name).equals(pq.read_table(out / f"{name}.parquet")), name


def test_a_run_table_is_arrow_and_unknown_tables_are_refused(api_run):
    people = api_run.table("people")
    assert isinstance(people, pa.Table) and people.num_rows == 2000
    with pytest.raises(credsim.InputError, match="tables: "):
        api_run.table("nosuch")


def test_a_temporary_run_is_removed_with_its_object_unless_saved(tmp_path):
    run = credsim.run("baseline", people=500, days=3)
    folder = run.path.parent
    assert (run.path / "manifest.json").is_file()
    del run
    gc.collect()
    assert not folder.exists()
    kept = credsim.run("baseline", people=500, days=3)
    temp = kept.path.parent
    kept.save(tmp_path / "kept")
    del kept
    gc.collect()
    assert not temp.exists()
    assert json.loads((tmp_path / "kept" / "manifest.json").read_text())["complete"]
    assert credsim.open(tmp_path / "kept").manifest["people"] == 500


def test_save_refuses_an_existing_folder(api_run, tmp_path):
    (tmp_path / "there").mkdir()
    with pytest.raises(credsim.InputError, match="already exists"):
        api_run.save(tmp_path / "there")


def test_the_audit_matches_the_command_lines(api_run, cli, tmp_path):
    saved = tmp_path / "r"
    credsim.open(api_run.path).save(saved)  # a copy, so the audit file lands there
    r = cli("audit", str(saved))
    assert r.returncode == 0, r.stderr
    from_cli = pq.read_table(saved / "measures.parquet")
    audit = api_run.audit()
    assert audit.table().select(["measure", "key", "value", "unit"]).equals(
        from_cli.select(["measure", "key", "value", "unit"]))
    assert audit.value("wrongful_marks") == from_cli.filter(
        pa.compute.equal(from_cli["measure"], "wrongful_marks"))["value"][0].as_py()
    assert "<table" in audit._repr_html_()


def test_lookup_gives_the_portal_view_and_the_entries(api_run):
    ledger = api_run.table("ledger").to_pylist()
    pid = next(r["id"] for r in ledger if r["entity"] == "person" and r["kind"] == "score")
    rec = api_run.lookup(pid)
    assert rec.kind == "person" and rec.id == pid
    assert f"Person {pid}" in str(rec)
    mine = [r for r in ledger if r["entity"] == "person" and r["id"] == pid]
    assert rec.entries.num_rows == len(mine) > 0
    html = rec._repr_html_()
    assert "<svg" in html and f"person {pid}" in html
    with pytest.raises(credsim.InputError, match="out of range"):
        api_run.lookup(10**6)
    with pytest.raises(credsim.InputError):
        api_run.lookup(True)


def test_a_report_is_written_where_asked(api_run, tmp_path):
    path = api_run.report(tmp_path / "rc.html")
    assert path == tmp_path / "rc.html" and "<html" in path.read_text()[:200]


def test_the_run_shows_its_headline_figures(api_run):
    html = api_run._repr_html_()
    assert "rongcheng" in html and "2,000 people" in html
    names = [n for n, _, _ in api_run.summary()]
    assert any("sanctioned" in n for n in names)


def test_open_refuses_what_is_not_a_run_folder(tmp_path):
    with pytest.raises(credsim.InputError):
        credsim.open(tmp_path / "nowhere")


@pytest.mark.parametrize("value", [0, -3, 2.5, 1e-4, True, False, "x y\"z\\", [1.0, 5.0],
                                   {"a": 1, "b c": [True, "q"]}, float("inf")])
def test_toml_values_read_back_as_written(value):
    import tomllib

    assert tomllib.loads(f"v = {toml_value(value)}")["v"] == value


def test_import_credsim_is_light():
    code = ("import sys, credsim; "
            "print(any(m.startswith(('numba', 'duckdb', 'matplotlib')) for m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip() == "False", r.stderr


def test_every_public_name_is_documented():
    doc = (Path(__file__).parents[1] / "docs" / "api.md").read_text()
    for name in credsim.__all__:
        if not name.startswith("_"):
            assert f"`credsim.{name}" in doc or f"`{name}" in doc, name


def test_a_scenario_writes_toml_that_loads_back_to_itself(tmp_path):
    sc = credsim.load("sesame", set={"composite.refresh_days": 20}, people=3000)
    path = tmp_path / "s.toml"
    path.write_text(sc.to_toml())
    assert credsim.load(path) == sc


def test_frames_through_arrow_or_a_clear_hint(api_run, monkeypatch):
    import builtins

    audit = api_run.audit()
    real_import = builtins.__import__

    def no_frames(name, *args, **kwargs):
        if name.split(".")[0] in ("pandas", "polars"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    try:
        import pandas  # noqa: F401
        assert list(audit.to_pandas().columns)[:4] == ["measure", "key", "value", "unit"]
    except ImportError:
        pass
    monkeypatch.setattr(builtins, "__import__", no_frames)
    for convert in (audit.to_pandas, audit.to_polars):
        with pytest.raises(credsim.InputError, match=r"credsim\[notebook\]"):
            convert()


@pytest.fixture(scope="module")
def api_comparison():
    base = credsim.load("rongcheng", people=1500, days=40, seed=3)
    reviewed = credsim.load(base, set={"safeguards.review_capacity": 400})
    reviewed.name = "reviewed"
    return credsim.compare([base, reviewed], replicates=3, workers=1)


def test_compare_takes_scenario_objects_and_pairs_them(api_comparison):
    cmp = api_comparison
    assert cmp.kind == "compare" and cmp.labels == ["rongcheng", "reviewed"]
    rows = cmp.table().to_pylist()
    second = [r for r in rows if r["scenario"] == "reviewed"]
    assert second and all(r["versus"] == "rongcheng" for r in second)
    assert {r["n"] for r in rows if r["measure"] == "voice_per_1000_person_days"} == {3}
    assert cmp.runs().num_rows == 6 * len({(r["measure"], r["key"]) for r in rows
                                           if r["point"] == 0})
    html = cmp._repr_html_()
    assert "<table" in html and "reviewed" in html
    series = cmp.series()
    assert series.num_rows > 0 and set(series.column("scenario").to_pylist()) == {
        "rongcheng", "reviewed"}


def test_a_comparison_is_saved_and_reopened(api_comparison, tmp_path):
    temp = api_comparison.path.parent
    api_comparison.save(tmp_path / "cmp")
    assert not temp.exists()
    again = credsim.Comparison(tmp_path / "cmp")
    assert again.table().equals(api_comparison.table())
    a_run = credsim.run("baseline", people=300, days=2)
    with pytest.raises(credsim.InputError, match="not a compare or sweep folder"):
        credsim.Comparison(a_run.path)


def test_sweep_takes_python_values(tmp_path):
    sw = credsim.sweep("rongcheng", vary={"safeguards.review_capacity": [0, 400]},
                       replicates=2, people=1500, days=30, workers=1, out=tmp_path / "sw")
    assert sw.kind == "sweep" and sw.path == tmp_path / "sw"
    assert sw.labels == ["safeguards.review_capacity=0", "safeguards.review_capacity=400"]
    assert set(sw.table().column("safeguards.review_capacity").to_pylist()) == {0.0, 400.0}


def test_failed_replicates_raise_instead_of_exiting(monkeypatch):
    from credsim.audit import replicates as rep

    def boom(task):
        raise ZeroDivisionError("division by zero")

    class InProcess:  # runs each task here, so the patched simulation is the one used
        description = "this process"

        def map_unordered(self, fn, tasks):
            for t in tasks:
                yield t, fn(t)

        def close(self, cancel=False):
            pass

    monkeypatch.setattr(rep, "_simulate_and_measure", boom)
    monkeypatch.setattr(rep, "make_executor", lambda *a, **k: InProcess())
    with pytest.raises(credsim.RunsFailed, match="ZeroDivisionError: division by zero"):
        credsim.compare(["rongcheng", "baseline"], replicates=2, people=500, days=5)
