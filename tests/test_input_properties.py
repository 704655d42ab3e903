"""Property-based tests of scenario input: every preset's resolved scenario, mutated at
random (values made non-finite, huge or of the wrong type; keys added, deleted or
renamed; names and texts made hostile), is either a valid Scenario with finite numbers and
safe names or an InputError, never anything else; and `credsim run` on it either writes a
complete run with finite numbers or exits 2 with a message, writing nothing elsewhere."""

from __future__ import annotations

import copy
import json
import math
import os
import signal
import unicodedata
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import tomli_w
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from credsim.cli import app
from credsim.errors import InputError
from credsim.results.run_dir import TABLES
from credsim.scenario.load import MAX_ERRORS, load_scenario, preset_names, validate
from credsim.scenario.model import NAME_RE, Scenario, named_columns

# The bigger profiles: marked slow, and skipped unless CREDSIM_SLOW=1.
SKIP_UNLESS_SLOW = pytest.mark.skipif(not os.environ.get("CREDSIM_SLOW"),
                                      reason="set CREDSIM_SLOW=1")
RESOLVED = {name: load_scenario(name).model_dump(mode="json") for name in preset_names()}

BAD_VALUES = st.sampled_from([
    math.nan, math.inf, -math.inf, 1e308, -1e308, 2**63, 2**64, -(2**70), 10**30,
    True, False, "30", "x", "", [], [1, "a"], [math.nan], {}, {"a": 1}, 0, -1, 0.5,
])
HOSTILE_TEXT = st.sampled_from([
    'x"; DROP TABLE people; --', "<script>alert(1)</script>", "O'Brien", 'say "hi"',
    "信用分", "é", "\u202eevil", "a\nb", "a\rb", "\x1b[31mred", "\x00", "tab\there",
    "a" * 300, "x" * 48, "x" * 49, "", " ", "1abc", "_x", "a-b", "a.b", "below_lowest",
    "ok_name", "Upper",
]) | st.text(max_size=60)

# Generous for a fast default run, more under CREDSIM_SLOW=1.
VALIDATION = settings(max_examples=300, deadline=None)
VALIDATION_SLOW = settings(max_examples=5000, deadline=None)
END_TO_END = settings(max_examples=10, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture,
                                             HealthCheck.too_slow])
END_TO_END_SLOW = settings(END_TO_END, max_examples=60)


# --- mutations -------------------------------------------------------------------------


def _paths(node: Any, here: tuple = ()) -> list[tuple]:
    """The path (keys and indices) of every node below `node`."""
    out = []
    if isinstance(node, dict):
        for k, v in node.items():
            out.append(here + (k,))
            out.extend(_paths(v, here + (k,)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.append(here + (i,))
            out.extend(_paths(v, here + (i,)))
    return out


def _tables(node: Any, here: tuple = ()) -> list[tuple]:
    """The path of every table, the top level included."""
    out = [here] if isinstance(node, dict) else []
    if isinstance(node, dict):
        for k, v in node.items():
            out.extend(_tables(v, here + (k,)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.extend(_tables(v, here + (i,)))
    return out


def _at(node: Any, path: tuple) -> Any:
    for p in path:
        node = node[p]
    return node


def _fresh(value: Any) -> Any:
    # sampled_from gives the same list or table object each time: copy it, or a later
    # mutation could change it in place (or put it inside itself).
    return copy.deepcopy(value)


@st.composite
def mutated(draw) -> dict:
    """A preset's resolved scenario with up to four mutations (none: the run must work)."""
    data = copy.deepcopy(RESOLVED[draw(st.sampled_from(sorted(RESOLVED)))])
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["value", "value", "add", "delete", "rename", "text"]))
        if kind == "text":
            data[draw(st.sampled_from(["name", "description"]))] = draw(HOSTILE_TEXT)
            continue
        if kind == "value":
            paths = _paths(data)
            if paths:
                path = draw(st.sampled_from(paths))
                _at(data, path[:-1])[path[-1]] = _fresh(draw(BAD_VALUES))
            continue
        table = _at(data, draw(st.sampled_from(_tables(data))))
        if kind == "add":
            table[draw(HOSTILE_TEXT)] = _fresh(draw(BAD_VALUES))
        elif table:
            key = draw(st.sampled_from(sorted(table, key=str)))
            value = table.pop(key)
            if kind == "rename":
                table[draw(HOSTILE_TEXT)] = value
    return data


# --- what a valid scenario guarantees ----------------------------------------------------


def _numbers(node: Any):
    if isinstance(node, bool | str) or node is None:
        return
    if isinstance(node, int | float):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _numbers(v)
    elif isinstance(node, list | tuple):
        for v in node:
            yield from _numbers(v)


def _keys(node: Any):
    if isinstance(node, dict):
        for k, v in node.items():
            yield k
            yield from _keys(v)
    elif isinstance(node, list | tuple):
        for v in node:
            yield from _keys(v)


def _is_plain_text(text: str) -> bool:
    """No character that ends a line, moves the cursor or reorders text."""
    return not any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp")
                   or "\u202a" <= ch <= "\u202e" or "\u2066" <= ch <= "\u2069" for ch in text)


def assert_safe(s: Scenario) -> None:
    dump = s.model_dump(mode="json")
    assert all(math.isfinite(x) for x in _numbers(dump))
    assert all(isinstance(k, str) and NAME_RE.fullmatch(k) for k in _keys(dump))
    assert len(s.name) <= 100 and len(s.description) <= 500
    assert _is_plain_text(s.name) and _is_plain_text(s.description)
    cols = [c.lower() for c, _ in named_columns(s)]
    assert len(cols) == len(set(cols))


def assert_clear_message(exc: InputError, label: str) -> None:
    lines = str(exc).splitlines()
    assert 1 <= len(lines) <= MAX_ERRORS + 1
    for line in lines:
        assert line.startswith(f"{label}: ")
        assert _is_plain_text(line), line


def _check_validation(data: dict) -> None:
    try:
        s = validate(data, "mutant")
    except InputError as exc:
        event("refused")
        assert_clear_message(exc, "mutant")
    else:
        event("valid")
        assert_safe(s)


@VALIDATION
@given(mutated())
def test_validation_gives_a_safe_scenario_or_an_input_error(data):
    _check_validation(data)


@pytest.mark.slow
@SKIP_UNLESS_SLOW
@VALIDATION_SLOW
@given(mutated())
def test_validation_gives_a_safe_scenario_or_an_input_error_many(data):
    _check_validation(data)


@pytest.mark.parametrize("name", sorted(RESOLVED))
def test_every_resolved_preset_is_safe(name):
    assert_safe(validate(copy.deepcopy(RESOLVED[name]), name))


# --- end to end: the command line on a mutated scenario file -------------------------------


def _listing(root: Path, skip: Path | None = None) -> set[str]:
    """Every path under root, except under `skip`."""
    return {str(p.relative_to(root)) for p in root.rglob("*")
            if skip is None or not (p == skip or skip in p.parents)}


def _strings(node: Any):
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield str(k)
            yield from _strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from _strings(v)


def _small(data: dict) -> dict:
    run = data.get("run")
    if isinstance(run, dict):  # a mutation may have made `run` something else
        run.update(people=300, days=20)
    return data


def _check_run(data: dict, base: Path, monkeypatch) -> None:
    try:
        text = tomli_w.dumps(_small(data))
    except (TypeError, ValueError):  # None, or a key TOML cannot hold
        assume(False)
    k = len(list(base.iterdir()))
    case = base / f"case{k}"
    cwd = case / "cwd"
    cwd.mkdir(parents=True)
    scenario = case / "mutant.toml"
    scenario.write_text(text, "utf-8")
    out = case / "out"
    before = _listing(base.parent, skip=base)
    monkeypatch.chdir(cwd)
    handler = signal.getsignal(signal.SIGTERM)  # `run` installs its own
    try:
        result = CliRunner().invoke(app, ["run", str(scenario), "--out", str(out), "--quiet"])
    finally:
        signal.signal(signal.SIGTERM, handler)
    monkeypatch.chdir(base)
    event(f"exit code {result.exit_code}")
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.exception)
    assert "Traceback" not in result.stderr
    if result.exit_code == 0:
        for table in TABLES:
            assert (out / f"{table}.parquet").is_file()
        assert json.loads((out / "manifest.json").read_text("utf-8"))["complete"] is True
        ts = pq.read_table(out / "timeseries.parquet").to_pydict()
        for col, values in ts.items():
            assert all(math.isfinite(v) for v in values if isinstance(v, float)), col
    else:
        assert result.exit_code == 2, (result.exit_code, result.stderr)
        assert result.stderr.startswith("error: "), result.stderr
        assert result.stderr.count("error: ") == 1, result.stderr  # one message
        assert not out.exists()
    assert _listing(cwd) == set()
    assert _listing(case) <= {"cwd", "mutant.toml", "out"} | {
        f"out/{name}" for name in _listing(out)}
    assert _listing(base.parent, skip=base) == before


@END_TO_END
@given(data=mutated())
def test_run_completes_with_finite_numbers_or_exits_2(data, tmp_path, monkeypatch):
    _check_run(data, tmp_path, monkeypatch)


@pytest.mark.slow
@SKIP_UNLESS_SLOW
@END_TO_END_SLOW
@given(data=mutated())
def test_run_completes_with_finite_numbers_or_exits_2_many(data, tmp_path, monkeypatch):
    _check_run(data, tmp_path, monkeypatch)
