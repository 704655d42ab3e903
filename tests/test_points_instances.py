"""Points systems as named instances: grade names that belong to each system, and a
further points system ([systems.<name>] of kind "points") beside the main one, with its
own catalogue, grades and floors, whose columns, ledger kinds and standings carry its
name.

The checks are exact: renaming grades must change no number, and a further system's
state must be what its own ledger rows add up to.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import credsim
from credsim.modules.plan import plan_of

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "city-and-province.toml"
SMALL = {"people": 6000, "days": 200, "seed": 3}
RENAMED = ["S1", "S2", "S3", "S4", "S5", "S6"]  # AAA..D under other names


def _renamed_rongcheng() -> dict:
    """Overrides that give rongcheng's points system other grade names, and everything
    that names a grade the same grade under its new name."""
    new = dict(zip(credsim.load("rongcheng").points.grades, RENAMED, strict=True))
    s = credsim.load("rongcheng")
    return {
        "points.grades": RENAMED,
        "points.grade_floors": {new[g]: v for g, v in s.points.grade_floors.items()},
        "points.instant_grade": {b: new[g] for b, g in s.points.instant_grade.items()},
        "adaptation.prune_grade": new[s.adaptation.prune_grade],
        "threats.collusion_target": new[s.threats.collusion_target],
        **{f"gates.{name}.condition": _rename(g.condition, new)
           for name, g in s.gates.items()},
    }


def _rename(condition: str, new: dict[str, str]) -> str:
    for op in ("<=", ">="):
        if f"grade{op}" in condition:
            old = condition.split(op)[1]
            return condition.replace(f"grade{op}{old}", f"grade{op}{new[old]}")
    return condition


def test_renaming_the_grades_changes_no_number(tmp_path):
    base = credsim.run("rongcheng", out=tmp_path / "base", **SMALL)
    renamed = credsim.run("rongcheng", set=_renamed_rongcheng(), out=tmp_path / "renamed",
                          **SMALL)
    ts, ts2 = base.table("timeseries"), renamed.table("timeseries")
    for old, new in zip(credsim.load("rongcheng").points.grades, RENAMED, strict=True):
        assert ts[f"grade_{old}"].equals(ts2[f"grade_{new}"])
    for col in ("sanctioned", "sanctioned_wrongful", "gate_bank_loans", "gate_aaa_perks"):
        assert ts[col].equals(ts2[col])
    people, people2 = base.table("people"), renamed.table("people")
    assert people["score"].equals(people2["score"])
    mapping = dict(zip(credsim.load("rongcheng").points.grades, RENAMED, strict=True))
    held = [None if g is None else mapping[g] for g in people["grade"].to_pylist()]
    assert held == people2["grade"].to_pylist()
    assert base.table("ledger").drop(["kind"]).equals(renamed.table("ledger").drop(["kind"]))
    summary = {m: v for m, v, _ in renamed.summary()}
    assert any(m.endswith("grade S3") for m in summary)


def test_a_further_points_system_runs_beside_the_main_one(tmp_path):
    run = credsim.run(EXAMPLE, out=tmp_path / "run", **SMALL)
    s = run.scenario
    steps = [(st.phase, st.module, st.method) for st in plan_of(s)]
    assert ("score", "province", "score_records") in steps
    ts, people, ledger = run.table("timeseries"), run.table("people"), run.table("ledger")
    grades = s.systems["province"]["grades"]
    # Every adult holds one province grade each day.
    counts = np.sum([ts[f"province_grade_{g}"].to_numpy() for g in grades], axis=0)
    assert set(counts.tolist()) == {run.manifest["adults"]}
    # Each person's province score is its start plus the province's score rows.
    rows = ledger.filter(pc.equal(ledger["kind"], "province_score"))
    moved = dict.fromkeys(range(people.num_rows), 0)
    for pid, delta in zip(rows["id"].to_pylist(), rows["delta"].to_pylist(), strict=True):
        moved[pid] += delta
    initial = s.systems["province"]["initial"]
    adult = np.asarray(pc.not_equal(people["age_band"], "child"))
    score = people["province_score"].to_numpy(zero_copy_only=False)
    expected = np.array([initial + moved[i] for i in range(people.num_rows)])
    assert np.array_equal(score[adult], expected[adult])
    assert rows.num_rows > 0
    # The province deducts only for its own catalogue, by its own deltas.
    deltas = s.systems["province"]["deltas"]
    own = [(c, d) for c, d in zip(rows["cause"].to_pylist(), rows["delta"].to_pylist(),
                                  strict=True) if c in s.behaviours]
    assert own and all(deltas[c] == d for c, d in own)


def test_a_gate_on_the_further_system_reads_its_grade(tmp_path):
    """Everyone the provincial gate sanctions held province grade Fair or below that day
    (replayed from the province's grade rows); nobody is reached through the city grade."""
    run = credsim.run(EXAMPLE, out=tmp_path / "run", people=20000, days=365, seed=1)
    grades = run.scenario.systems["province"]["grades"]
    line = grades.index("Fair")
    start = _grade_of(run.scenario.systems["province"])
    uses = run.sql("SELECT id, day FROM sanctions WHERE gate = 'provincial_tenders'")
    assert uses.num_rows > 0
    # The ledger is in the order written: a person's rows in day order.
    grade_rows = run.sql("SELECT id, day, value FROM ledger "
                         "WHERE kind = 'province_grade'").to_pylist()
    by_person: dict[int, list[tuple[int, int]]] = {}
    for r in grade_rows:
        by_person.setdefault(r["id"], []).append((r["day"], r["value"]))
    for pid, day in zip(uses["id"].to_pylist(), uses["day"].to_pylist(), strict=True):
        held = start
        for d, v in by_person.get(pid, []):
            if d <= day:
                held = v
        assert held >= line, (pid, day, held)


def _grade_of(params: dict) -> int:
    floors = [params["grade_floors"][g] for g in params["grades"][:-1]]
    return next((i for i, f in enumerate(floors) if params["initial"] >= f), len(floors))


def test_lookup_explains_the_further_systems_rows(tmp_path):
    run = credsim.run(EXAMPLE, out=tmp_path / "run", **SMALL)
    pid = run.sql("SELECT min(id) AS id FROM ledger WHERE kind = 'province_grade'")["id"][0]
    record = run.lookup(pid.as_py())
    rows = [e for e in record.record.ledger if e.kind == "province_grade"]
    grades = run.scenario.systems["province"]["grades"]
    assert rows and all(e.change.split(" -> ")[1] in grades for e in rows)
    assert all(e.note.endswith("(province)") for e in rows)


def test_a_further_systems_rows_are_explained_with_its_own_parameters(tmp_path):
    """The points explanation explains the province's rows with the province's rules:
    its warnings (warn before punishing, up to its own warn_max), its grade caps, and its
    deductions, whose replay of warnings agrees with what the engine did."""
    run = credsim.run(EXAMPLE, out=tmp_path / "run", **SMALL, set={
        "systems.province.warn_max": 5, "systems.province.warning_days": 60,
        "systems.province.instant_grade": {"judgment_default": "Poor"},
        "behaviours.judgment_default.rate": 2e-3})
    ids = run.sql("SELECT id FROM ledger WHERE kind IN ('province_warning', 'province_grade') "
                  "AND cause IN ('loan_arrears', 'judgment_default') GROUP BY id "
                  "ORDER BY id LIMIT 12")["id"].to_pylist()
    rows = [e for pid in ids for e in run.lookup(pid).record.ledger
            if e.kind.startswith("province_")]
    warnings = [e for e in rows if e.kind == "province_warning"]
    caps = [e for e in rows if e.kind == "province_grade" and e.cause == "judgment_default"
            and e.delta > 0]
    assert warnings and caps
    assert all(e.note.startswith("WARNING instead of a") and "up to 5 points" in e.note
               for e in warnings)
    assert all(e.note.startswith("grade capped at Poor for 365 days") for e in caps)
    assert all(e.note.endswith(" (province)") for e in rows)
    # The engine warned exactly where the replay says a warning counted.
    assert not [e.note for e in rows if "unexpected" in e.note]


def test_a_further_system_has_its_grade_shares_keyed_by_its_name(tmp_path):
    from credsim.audit.measures import compute

    run = credsim.run(EXAMPLE, out=tmp_path / "run", people=3000, days=60, seed=3)
    grades = run.scenario.systems["province"]["grades"]
    shares = {m.key: m for m in compute(run.path) if m.measure == "grade_share"}
    last = run.sql("SELECT * FROM timeseries ORDER BY day DESC LIMIT 1").to_pylist()[0]
    adults = sum(last[f"province_grade_{g}"] for g in grades)
    for g in grades:
        m = shares[f"province:grade={g}"]
        assert m.value == last[f"province_grade_{g}"] / adults
        assert m.label.endswith(f"grade {g} (province)")
    assert {k for k in shares if ":" not in k} == {f"grade={g}" for g in run.scenario.points.grades}


# Bad input ---------------------------------------------------------------------------
def _write(tmp_path: Path, body: str) -> Path:
    f = tmp_path / "s.toml"
    f.write_text('extends = "rongcheng"\n' + body)
    return f


@pytest.mark.parametrize(("body", "words"), [
    ('[points]\nenabled = false\n[systems.province]\nkind = "points"\n',
     ["systems.province", "points.enabled = true"]),
    ('[systems.court_list]\nkind = "points"\n', ["systems.court_list", "name of a module kind"]),
    ('[systems.points]\nkind = "points"\n', ["systems.points", "name of a module kind"]),
    ('[systems.province]\nkind = "points"\ngrades = ["Good", "Bad"]\n',
     ["systems.province", "grade_floors.AAA", "Good"]),
    ('[systems.province]\nkind = "points"\ngrades = ["Good", "Bad"]\n'
     '[systems.province.grade_floors]\nGood = 900\n[gates.x]\ndomain = "finance"\n'
     'condition = "province.grade<=C"\nuse_rate = 0.01\n',
     ["gates.x.condition", "Good, Bad", "'C'"]),
    ('[systems.province]\nkind = "points"\ngrades = ["Good", "good"]\n',
     ["systems.province", "grades", "ignoring case"]),
    ('[systems.province]\nkind = "points"\n[systems.province.instant_grade]\n'
     'drunk_driving = "Z"\n', ["systems.province", "instant_grade.drunk_driving", "'Z'"]),
    # The file's floors merge into the preset's, whose grades it no longer has.
    ('[points]\ngrades = ["Top", "Mid", "Low"]\n[points.grade_floors]\nTop = 1010\n'
     'Mid = 900\n', ["points.grade_floors.AAA", "Top, Mid (Low has none)"]),
])
def test_bad_grades_and_instances_are_refused_naming_the_key(tmp_path, body, words):
    with pytest.raises(credsim.InputError) as err:
        credsim.load(_write(tmp_path, body))
    text = str(err.value)
    assert "s.toml" in text
    for w in words:
        assert w in text, (w, text)


GRADE = st.from_regex(r"[A-Za-z][A-Za-z0-9]{0,11}", fullmatch=True)
HOSTILE = st.text(min_size=0, max_size=20).filter(
    lambda x: not __import__("re").fullmatch(r"[A-Za-z][A-Za-z0-9]{0,11}", x))


@settings(max_examples=40, deadline=None)
@given(names=st.lists(GRADE, min_size=2, max_size=6, unique_by=str.lower))
def test_any_valid_grade_names_name_the_columns_and_conditions(names):
    floors = {g: 1000 - 10 * i for i, g in enumerate(names[:-1])}
    s = credsim.load("baseline", set={
        "points.enabled": True, "points.grades": names, "points.grade_floors": floors,
        "points.instant_grade": {}, "adaptation.prune_grade": names[-1],
        "gates.x.domain": "finance", "gates.x.condition": f"grade<={names[-1]}",
        "gates.x.use_rate": 0.01})
    term = s.gates["x"].parsed
    assert (term.standing, term.value, term.text) == ("grade", len(names) - 1, names[-1])
    assert s.points.grades == names


@settings(max_examples=60, deadline=None)
@given(bad=HOSTILE)
def test_hostile_grade_names_are_refused(bad):
    with pytest.raises(credsim.InputError) as err:
        credsim.load("baseline", set={"points.grades": [bad, "Low"], "points.instant_grade": {},
                                      "points.grade_floors": {bad: 900} if bad else {}})
    assert "points.grades" in str(err.value) or "points.grade_floors" in str(err.value)


def test_the_example_runs_from_the_command_line(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "cli"
    done = subprocess.run([sys.executable, "-m", "credsim", "run", str(EXAMPLE), "--people",
                           "3000", "--days", "60", "--out", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    cols = pq.read_schema(out / "people.parquet").names
    assert {"province_score", "province_grade", "score", "grade"} <= set(cols)


def test_a_condition_assigned_after_loading_is_the_one_the_engine_reads():
    from credsim.engine import Simulation

    s = credsim.load("rongcheng", people=2000, days=5)
    s.gates["flights"].condition = "grade<=D"
    assert str(s.gates["flights"].parsed) == "grade<=D"
    sim = Simulation(s)
    flights = next(g for g in sim.gates.gates if g.name == "flights")
    assert str(flights.condition) == "grade<=D"
    s.gates["flights"].condition = "grade<=Q"  # refused when read, naming what is allowed
    with pytest.raises(credsim.InputError, match="grade takes one of AAA"):
        _ = s.gates["flights"].parsed
