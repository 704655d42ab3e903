"""Every timeseries column, measure and calibration target has a label, a unit and (for
measures) a kind, declared once in credsim.labels; names made from the scenario's names
get labels made from those names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from credsim.audit import calibrate as cal
from credsim.audit.measures import compute
from credsim.labels import KINDS, MEASURES, TARGETS, column_label, measure_label
from credsim.scenario.load import preset_names

DOCS = Path(__file__).resolve().parents[1] / "docs"
PEOPLE, DAYS = 2000, 30
# Small runs write no threat columns (their insiders round to none); these do.
EXTRA = {"threats": ("rongcheng", ("threats.insiders_per_million=2000",
                                   "threats.colluders_per_million=2000",
                                   "threats.informant_rate=1e-4"))}


@pytest.fixture(scope="module")
def runs(simulate, tmp_path_factory) -> dict[str, Path]:
    cases = {name: (name, ()) for name in preset_names()} | EXTRA
    return {case: simulate(tmp_path_factory.mktemp(case) / "run", source, overrides,
                           people=PEOPLE, days=DAYS, seed=1).path
            for case, (source, overrides) in cases.items()}


def _has_words(label) -> None:
    assert label.label.strip() and label.unit.strip(), label
    assert label.kind in KINDS, label


def test_every_column_of_every_preset_has_a_label_and_unit(runs):
    seen: set[str] = set()
    for run in runs.values():
        gates = list(json.loads((run / "manifest.json").read_text())["scenario"]["gates"])
        for col in pq.read_schema(run / "timeseries.parquet").names:
            _has_words(column_label(col, gates))
            seen.add(col)
    # the runs reach the threat, safeguard, composite, rating and firm columns
    assert {"insider_edits", "collusion_certificates", "records_reviewed", "band_good",
            "rating_mean", "firms_red_listed", "sanctioned_group1"} <= seen


def test_every_measure_of_every_preset_has_a_label_unit_and_a_value_of_its_kind(runs):
    for case, run in runs.items():
        for m in compute(run):
            lab = measure_label(m.measure, m.key)
            _has_words(lab)
            assert m.label == lab.label and m.unit.startswith(lab.unit.split(" (")[0]), m
            v = m.value
            if v is None:
                continue
            if lab.kind == "share":
                assert 0 <= v <= 1, (case, m)
            elif lab.kind == "flag":
                assert v in (0, 1), (case, m)
            elif lab.kind == "verdict":
                assert v in (0, 1, 2), (case, m)
            elif lab.kind in ("count", "rate", "ratio"):
                assert v >= 0, (case, m)
            elif lab.kind == "correlation":
                assert -1 <= v <= 1, (case, m)


def test_the_measures_file_has_the_labels(simulate, tmp_path, cli):
    run = simulate(tmp_path / "r", "rongcheng", (), people=PEOPLE, days=DAYS).path
    r = cli("audit", str(run))
    assert r.returncode == 0, r.stderr
    t = pq.read_table(run / "measures.parquet")
    assert t.column_names == ["measure", "key", "value", "unit", "label"]
    for m, k, lab in zip(t["measure"].to_pylist(), t["key"].to_pylist(),
                         t["label"].to_pylist(), strict=True):
        assert lab == measure_label(m, k).label


def test_names_from_the_scenario_make_the_labels():
    assert column_label("gate_flights").label.endswith(": flights")
    assert "on a false record" in column_label("gate_flights_wrongful").label
    # a gate named x_wrongful is told from the wrongful column of a gate x
    assert "false record" not in column_label("gate_x_wrongful", ["x_wrongful"]).label
    assert column_label("band_good").label.endswith("band good")
    assert "audit group 1" in column_label("sanctioned_group1").label
    assert "false record" in column_label("sanctioned_wrongful_group0").label
    assert "court domain" in column_label("events_court").label
    assert measure_label("sanctions_per_million", "gate=flights").label == (
        "sanctions applied: flights")
    assert measure_label("wrongful_share", "group=1").label.endswith(": audit group 1")
    assert measure_label("grade_transition", "A->C").label.endswith("to grade C")
    with pytest.raises(KeyError):
        column_label("no_such_column")
    with pytest.raises(KeyError):
        measure_label("no_such_measure")


def test_per_million_units_say_their_denominator():
    """Every "per million" unit names people per year, people, or person-days."""
    units = {lab.unit for lab in (*MEASURES.values(), *TARGETS.values())}
    for unit in units:
        if "per million" in unit:
            assert unit in ("per million people per year", "per million people",
                            "per million person-days"), unit


def test_every_measure_and_column_is_documented():
    measures_doc = (DOCS / "measures.md").read_text()
    documented = set(re.findall(r"`([a-z0-9_]+)`", measures_doc))
    assert set(MEASURES) <= documented, set(MEASURES) - documented
    outputs_doc = (DOCS / "outputs.md").read_text()
    from credsim.labels import COLUMNS

    for col, lab in COLUMNS.items():
        if col.startswith("grade_"):
            continue  # one row for the six grade columns
        row = next((ln for ln in outputs_doc.splitlines() if ln.startswith(f"| `{col}`")),
                   None)
        assert row is not None, col
        assert lab.label in row and lab.unit in row, (col, row)


def test_every_calibration_target_has_a_label():
    assert {t.key for t in cal.TARGETS} == set(TARGETS)
    for t in cal.TARGETS:
        _has_words(TARGETS[t.key])
        assert t.unit == TARGETS[t.key].unit


def test_a_measures_file_without_labels_is_still_read(simulate, tmp_path):
    """Files written before measures had labels keep working: the labels are the
    registry's."""
    from credsim.audit.measures import SCHEMA, to_table, write_measures
    from credsim.audit.report import _load_measures, write_report

    run = simulate(tmp_path / "r", "rongcheng", (), people=PEOPLE, days=DAYS).path
    write_measures(compute(run), run)
    old = pq.read_table(run / "measures.parquet").select(SCHEMA.names)
    pq.write_table(old, run / "measures.parquet")
    assert write_report(run).is_file()
    loaded = _load_measures(run)
    assert all(m.label == measure_label(m.measure, m.key).label for m in loaded)
    assert to_table(loaded).column_names == [*SCHEMA.names, "label"]
