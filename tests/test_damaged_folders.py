"""Damaged and wrong folders: every command that reads a folder either works and prints
what it prints for the intact folder, or exits 2 with one message; never a traceback,
and nothing is written outside the folder.

One small run folder is made per module and copied, then damaged in ways Hypothesis
draws: its Parquet files truncated, emptied, replaced by random bytes or deleted; its
manifest's fields deleted, changed or given another type; the manifest replaced by
invalid JSON or bytes that are not UTF-8.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from credsim.audit.replicates import FORMAT_VERSION as COMPARISON_FORMAT_VERSION
from credsim.cli import app
from credsim.results.run_dir import TABLES

PEOPLE, DAYS = 2000, 40
# Every command that reads a run folder, with its arguments after the folder.
COMMANDS = {
    "summary": (), "audit": (), "report": (), "lookup": ("5",), "calibrate": (),
    "query": ("select count(*) AS n from people",),
}
WRITTEN = {"audit": {"measures.parquet"}, "report": {"report.html"}}  # inside the folder
SLOW = os.environ.get("CREDSIM_SLOW") == "1"


def _invoke(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture(scope="module")
def pristine(simulate, tmp_path_factory) -> Path:
    return simulate(tmp_path_factory.mktemp("pristine") / "run", "rongcheng",
                    people=PEOPLE, days=DAYS).path


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """The folder every damaged copy is made in, always at the same path, so that the
    output of a command on it can be compared with its output on the intact copy."""
    return tmp_path_factory.mktemp("work")


def _fresh(pristine: Path, work: Path) -> Path:
    folder = work / "run"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(pristine, folder)
    return folder


class Outputs(dict):
    def __repr__(self) -> str:  # Hypothesis prints its arguments: keep it short
        return "<outputs of the intact folder>"


@pytest.fixture(scope="module")
def expected(pristine, work) -> dict[str, tuple[str, str | None]]:
    """Each command's output on an intact copy (and the report it wrote)."""
    out = Outputs()
    for name, args in COMMANDS.items():
        folder = _fresh(pristine, work)
        r = _invoke(name, str(folder), *args)
        assert r.exit_code == 0, (name, r.stderr, r.exception)
        report = folder / "report.html"
        out[name] = (r.stdout, report.read_text("utf-8") if report.exists() else None)
    return out


def _run_all(folder: Path, work: Path, expected, damage: str, exact: bool = True) -> None:
    """Every command on the damaged folder: exit 0 (with the intact folder's output if
    `exact`: the damage left every checked value as it was), or exit 2 with one `error:`
    line; no file written but the command's own, inside the folder."""
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    for name, args in COMMANDS.items():
        r = _invoke(name, str(folder), *args)
        assert r.exception is None or isinstance(r.exception, SystemExit), (
            name, damage, repr(r.exception))
        assert r.exit_code in (0, 2), (name, damage, r.exit_code, r.stderr)
        assert "Traceback" not in r.stderr
        if r.exit_code == 2:
            lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: "), (name, damage, r.stderr)
        elif exact:
            stdout, report = expected[name]
            assert r.stdout == stdout, (name, damage)
            if report is not None:
                assert (folder / "report.html").read_text("utf-8") == report, (name, damage)
        assert sorted(p.name for p in work.iterdir()) == ["run"], (name, damage)
        changed = {p.name for p in folder.iterdir()
                   if before.get(p.name) != p.stat().st_mtime_ns}
        allowed = WRITTEN.get(name, set()) if r.exit_code == 0 else set()
        assert changed <= allowed, (name, damage, changed)
        before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def _settings(n: int):
    return settings(max_examples=n * 5 if SLOW else n, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


# Damaged tables --------------------------------------------------------------------------

table_damage = st.tuples(
    st.sampled_from(TABLES),
    st.sampled_from(["truncate", "empty", "random", "delete"]),
    st.floats(0, 1, exclude_max=True),
    st.binary(min_size=1, max_size=256),
)


def _damage_table(folder: Path, table: str, how: str, where: float, noise: bytes) -> None:
    f = folder / f"{table}.parquet"
    data = f.read_bytes()
    if how == "truncate":
        f.write_bytes(data[:int(where * len(data))])
    elif how == "empty":
        f.write_bytes(b"")
    elif how == "random":
        f.write_bytes(noise)
    else:
        f.unlink()


@_settings(12)
@given(damage=table_damage)
def test_damaged_tables(pristine, work, expected, damage):
    folder = _fresh(pristine, work)
    _damage_table(folder, *damage)
    _run_all(folder, work, expected, repr(damage[:3]))


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("how", ["truncate", "empty", "random", "delete"])
def test_each_damaged_table_is_named(pristine, work, expected, table, how):
    folder = _fresh(pristine, work)
    _damage_table(folder, table, how, 0.5, b"PAR1 not a parquet file")
    for name, args in COMMANDS.items():
        r = _invoke(name, str(folder), *args)
        assert r.exit_code == 2, (name, r.stdout)
        assert f"{table}.parquet" in r.stderr and str(folder) in r.stderr, r.stderr


def test_a_table_without_a_column_the_readers_need_is_named(pristine, work):
    folder = _fresh(pristine, work)
    t = pq.read_table(folder / "people.parquet")
    pq.write_table(t.drop_columns(["age_band"]), folder / "people.parquet")
    for name, args in COMMANDS.items():
        r = _invoke(name, str(folder), *args)
        assert r.exit_code == 2 and "people.parquet" in r.stderr and "age_band" in r.stderr


def test_a_column_of_the_wrong_type_is_an_input_error(pristine, work, expected):
    folder = _fresh(pristine, work)
    t = pq.read_table(folder / "people.parquet")
    i = t.column_names.index("savings")
    t = t.set_column(i, "savings", pa.array(["lots"] * t.num_rows))
    pq.write_table(t, folder / "people.parquet")
    _run_all(folder, work, expected, "savings as text")


# Damaged manifests -----------------------------------------------------------------------

# Fields checked against the tables or each other: a value that passes is the true one.
CHECKED = ("people", "adults", "days", "firms", "tables", "complete", "format_version",
           "ledger_rows")
# Fields another valid value of which changes what is shown (the scenario, its name).
FREE = ("scenario", "scenario_name", "scenario.gates", "scenario.run")
values = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**7), st.floats(allow_nan=False),
    st.text(max_size=8), st.lists(st.integers(0, 3), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
    st.sampled_from([str(PEOPLE), PEOPLE + 1, PEOPLE * 2, PEOPLE - 1, -1, 0, float(PEOPLE),
                     "garbage", ["people", "x"], list(TABLES) + ["people; DROP"]]),
)
manifest_damage = st.one_of(
    st.tuples(st.just("delete"), st.sampled_from(CHECKED + FREE)),
    st.tuples(st.just("set"), st.sampled_from(CHECKED + FREE), values),
    st.tuples(st.just("bytes"), st.binary(max_size=64)),
    st.tuples(st.just("text"), st.sampled_from(["", "{", "[]", "null", "42", '"x"',
                                                '{"format_version": 2}'])),
)


def _damage_manifest(folder: Path, damage: tuple) -> None:
    mf = folder / "manifest.json"
    if damage[0] == "bytes":
        mf.write_bytes(b"\xff\xfe" + damage[1])  # never UTF-8
        return
    if damage[0] == "text":
        mf.write_text(damage[1], "utf-8")
        return
    m = json.loads(mf.read_text("utf-8"))
    *parents, key = damage[1].split(".")
    target = m
    for p in parents:
        target = target[p]
    if damage[0] == "delete":
        target.pop(key, None)
    else:
        target[key] = damage[2]
    mf.write_text(json.dumps(m), "utf-8")


@_settings(25)
@given(damage=manifest_damage)
def test_damaged_manifests(pristine, work, expected, damage):
    folder = _fresh(pristine, work)
    _damage_manifest(folder, damage)
    exact = damage[0] not in ("set", "delete") or damage[1] not in FREE
    _run_all(folder, work, expected, repr(damage), exact)


@pytest.mark.parametrize("field,value", [("people", PEOPLE + 1), ("people", PEOPLE // 2),
                                         ("people", str(PEOPLE)), ("people", -1),
                                         ("days", DAYS + 5), ("adults", 10), ("firms", 3),
                                         ("tables", "garbage"), ("complete", "yes")])
def test_wrong_manifest_values_are_refused_naming_the_file(pristine, work, field, value):
    """A wrong `people` once gave exit 0 and wrong per-million figures."""
    folder = _fresh(pristine, work)
    _damage_manifest(folder, ("set", field, value))
    for name, args in COMMANDS.items():
        r = _invoke(name, str(folder), *args)
        assert r.exit_code == 2, (name, field, value, r.stdout)
        assert str(folder) in r.stderr, r.stderr


def test_missing_scenario_is_refused(pristine, work):
    folder = _fresh(pristine, work)
    _damage_manifest(folder, ("delete", "scenario"))
    for name, args in COMMANDS.items():
        r = _invoke(name, str(folder), *args)
        assert r.exit_code == 2 and "manifest.json" in r.stderr and "scenario" in r.stderr


# Folders of another kind ------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["compare", "sweep"])
def test_a_compare_or_sweep_folder_says_what_it_is(tmp_path, kind):
    folder = tmp_path / "cmp"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps(
        {"kind": kind, "format_version": COMPARISON_FORMAT_VERSION, "complete": True}))
    for name, args in COMMANDS.items():
        if name == "report":
            continue  # reads compare and sweep folders
        r = _invoke(name, str(folder), *args)
        assert r.exit_code == 2, (name, r.stdout)
        msg = " ".join(r.stderr.split())
        assert f"is a {kind} folder" in msg and f"credsim report {folder}" in msg, msg
        assert "format_version" not in msg


def test_an_unknown_folder_kind_is_named(tmp_path):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "manifest.json").write_text(json.dumps({"kind": "grid"}))
    r = _invoke("summary", str(folder))
    assert r.exit_code == 2 and "'grid'" in r.stderr


def test_a_run_inside_a_compare_folder_is_not_a_run(tmp_path):
    """A folder with no manifest at all (e.g. a compare folder's runs/): one message."""
    (tmp_path / "runs").mkdir()
    for name, args in COMMANDS.items():
        r = _invoke(name, str(tmp_path / "runs"), *args)
        assert r.exit_code == 2 and "manifest.json" in r.stderr


# Damaged compare and sweep folders ---------------------------------------------------------

def _comparison(folder: Path, kind: str = "compare") -> Path:
    """A compare (or sweep) folder as credsim.audit.replicates writes it, made-up numbers."""
    folder.mkdir()
    labels = ["baseline", "rongcheng"]
    (folder / "manifest.json").write_text(json.dumps({
        "kind": kind, "format_version": COMPARISON_FORMAT_VERSION, "complete": True,
        "replicates": 3, "seeds": "base seed + replicate: 1 to 3", "bound_days": 30.0,
        "vary": [{"key": "points.initial", "values": [900, 1000]}] if kind == "sweep" else [],
        "points": [{"point": i, "label": lab} for i, lab in enumerate(labels)]}))
    rows = []
    for pt, label in enumerate(labels):
        for measure, key in (("wrongful_share", ""), ("sanction_impact_ratio", "group=1"),
                             ("voice_per_1000_person_days", "")):
            mean = 0.5 + 0.1 * pt
            rows.append({"scenario": label, "point": pt, "measure": measure, "key": key,
                         "unit": "share", "n": 3, "mean": mean, "sd": 0.01,
                         "ci_low": mean - 0.02, "ci_high": mean + 0.02,
                         "versus": "baseline" if pt else None, "diff_n": 3 if pt else None,
                         "diff_mean": 0.1 * pt if pt else None, "diff_sd": None,
                         "diff_ci_low": 0.05 * pt if pt else None,
                         "diff_ci_high": 0.15 * pt if pt else None})
    pq.write_table(pa.Table.from_pylist(rows), folder / "summary.parquet")
    return folder


comparison_damage = st.one_of(
    st.tuples(st.just("file"), st.sampled_from(["truncate", "empty", "random", "delete"]),
              st.floats(0, 1, exclude_max=True), st.binary(min_size=1, max_size=64)),
    st.tuples(st.just("column"), st.sampled_from(["point", "mean", "ci_low", "measure",
                                                  "key", "scenario", "unit", "diff_mean"]),
              st.sampled_from(["text", "drop", "null"])),
    st.tuples(st.just("manifest"), st.sampled_from(["kind", "format_version", "complete",
                                                    "replicates", "seeds", "bound_days",
                                                    "vary", "points"]), values),
)


def _damage_comparison(folder: Path, damage: tuple) -> None:
    sp = folder / "summary.parquet"
    if damage[0] == "file":
        data = sp.read_bytes()
        how, where, noise = damage[1:]
        if how == "delete":
            sp.unlink()
        else:
            sp.write_bytes({"truncate": data[:int(where * len(data))], "empty": b"",
                            "random": noise}[how])
    elif damage[0] == "column":
        t = pq.read_table(sp)
        col, how = damage[1:]
        if how == "drop":
            t = t.drop_columns([col])
        else:
            i = t.column_names.index(col)
            new = (pa.array(["x"] * t.num_rows) if how == "text"
                   else pa.nulls(t.num_rows, t.schema.field(col).type))
            t = t.set_column(i, col, new)
        pq.write_table(t, sp)
    else:
        m = json.loads((folder / "manifest.json").read_text("utf-8"))
        m[damage[1]] = damage[2]
        (folder / "manifest.json").write_text(json.dumps(m), "utf-8")


@_settings(25)
@given(kind=st.sampled_from(["compare", "sweep"]), damage=comparison_damage)
def test_damaged_comparison_folders(tmp_path_factory, kind, damage):
    work = tmp_path_factory.mktemp("cmp")
    folder = _comparison(work / "cmp", kind)
    _damage_comparison(folder, damage)
    for name, args in COMMANDS.items():
        r = _invoke(name, str(folder), *args)
        assert r.exception is None or isinstance(r.exception, SystemExit), (
            name, damage, repr(r.exception))
        assert r.exit_code in (0, 2), (name, damage, r.stderr)
        if r.exit_code == 2:
            lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: "), (name, damage, r.stderr)
        else:
            assert name == "report", (name, damage)
    assert sorted(p.name for p in work.iterdir()) == ["cmp"]
    left = {p.name for p in folder.iterdir()} - {"manifest.json", "summary.parquet"}
    assert left <= {"report.html"}, left


def test_an_intact_comparison_folder_gets_its_report(tmp_path):
    for kind in ("compare", "sweep"):
        folder = _comparison(tmp_path / kind, kind)
        r = _invoke("report", str(folder))
        assert r.exit_code == 0, r.stderr
        assert (folder / "report.html").is_file()
