"""The daily loop, judged by its output tables: ledger completeness, consistency of
grades, listings and sanctions, false records, common random numbers, reproducibility,
and the Behave / Observe / List rules against independent expectations.

Statistical checks use fixed seeds and tolerances of 4 standard errors.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from credsim.conditions import Term
from credsim.engine import Simulation
from credsim.errors import InputError
from credsim.ledger import Ledger
from credsim.population.people import CHILD
from credsim.scenario.load import load_scenario
from credsim.scenario.model import GRADES, PointsSystem, RunParams, parse_condition
from credsim.systems.points import grade_of

OFF = ("adaptation.enabled=false", "feedback.enabled=false")


def _table(path, name: str) -> dict[str, np.ndarray]:
    """A run table as numpy columns (dictionary columns decoded to strings). In the
    people table, children's score and grade are null (never scored): checked here,
    then read as the initial state, which is what the bookkeeping below replays."""
    t = pq.read_table(path / f"{name}.parquet")
    if name == "people" and "score" in t.column_names:
        t = _children_at_initial(path, t)
    out = {}
    for col in t.column_names:
        c = t.column(col).combine_chunks()
        if hasattr(c, "dictionary"):
            c = c.dictionary_decode()
        out[col] = np.asarray(c.to_numpy(zero_copy_only=False))
    return out


def _children_at_initial(path, t):
    import json

    import pyarrow as pa
    import pyarrow.compute as pc

    points = json.loads((path / "manifest.json").read_text())["scenario"]["points"]
    floors = np.array([points["grade_floors"][g] for g in GRADES[:-1]])
    initial_grade = GRADES[grade_of(points["initial"], floors)]
    child = np.asarray(t.column("age_band").to_pylist()) == "child"
    for col, initial in (("score", points["initial"]), ("score_true", points["initial"]),
                         ("grade", initial_grade), ("grade_true", initial_grade)):
        c = t.column(col).combine_chunks()
        if hasattr(c, "dictionary"):
            c = c.dictionary_decode()
        assert np.array_equal(np.asarray(c.is_null()), child), col
        t = t.set_column(t.column_names.index(col), col,
                         pc.fill_null(c, pa.scalar(initial, c.type)))
    return t


def _grade_index(labels: np.ndarray) -> np.ndarray:
    return np.array([GRADES.index(str(g)) for g in labels])


def _floor_grade(score: np.ndarray, floors: dict[str, int]) -> np.ndarray:
    """Grade index a score earns by the floors alone (0 = AAA ... 5 = D)."""
    f = np.array([floors[g] for g in GRADES[:-1]])
    return np.sum(score[:, None] < f[None, :], axis=1)


def _all_false_rates_zero(source: str = "rongcheng") -> list[str]:
    """No misattributions on any channel, no insider edits, no malicious informants."""
    return [f"channels.{c}.false_rate=0" for c in load_scenario(source).channels] + [
        "threats.insiders_per_million=0", "threats.informant_rate=0"]


# --- ledger completeness and consistency (busy rongcheng run) -----------------------


@pytest.fixture(scope="module")
def busy_tables(busy_run):
    return {t: _table(busy_run.path, t)
            for t in ("people", "ledger", "timeseries", "firms", "sanctions")}


def test_busy_run_exercises_every_kind_of_ledger_row(busy_tables):
    led = busy_tables["ledger"]
    kinds = set(zip(led["kind"], led["entity"], led["record"], strict=True))
    assert {("score", "person", "true"), ("score", "person", "false"),
            ("grade", "person", "true"), ("grade", "person", "false"),
            ("list", "person", "true"), ("list", "person", "false"),
            ("list", "firm", "true")} <= kinds
    causes = set(led["cause"].tolist())
    assert {"court_listing", "legal_rep_of_listed_firm", "delisting_payment",
            "delisting_expiry", "delisting_correction", "instant_grade_expiry"} <= causes


def test_score_and_grade_rows_belong_to_people(busy_tables):
    led = busy_tables["ledger"]
    assert set(led["entity"][led["kind"] != "list"].tolist()) == {"person"}


def test_ledger_is_complete_initial_plus_deltas_is_final_score(busy_run, busy_tables):
    p, led = busy_tables["people"], busy_tables["ledger"]
    initial = busy_run.sim.scenario.points.initial
    score = led["kind"] == "score"
    total = np.bincount(led["id"][score], weights=led["delta"][score], minlength=len(p["id"]))
    assert np.count_nonzero(score) > 1000
    assert np.array_equal(initial + total.astype(np.int64), p["score"].astype(np.int64))
    _assert_true_score_is_the_sum_of_true_rows(p, led, initial)


def _assert_true_score_is_the_sum_of_true_rows(p, led, initial):
    """score_true is the sum over the score rows resting on true records, for everyone
    never warned (a warning used up by a false record makes the true score's own
    warning fall on a later record: a counterfactual one delta per row cannot show)."""
    true = (led["kind"] == "score") & (led["record"] == "true")
    total_true = np.bincount(led["id"][true], weights=led["delta"][true],
                             minlength=len(p["id"]))
    warned = np.zeros(len(p["id"]), bool)
    warned[led["id"][led["kind"] == "warning"]] = True
    assert 100 < warned.sum() < len(warned) // 2
    assert np.array_equal((initial + total_true.astype(np.int64))[~warned],
                          p["score_true"].astype(np.int64)[~warned])


def test_ledger_values_chain_from_the_initial_state(busy_run, busy_tables):
    """Per (kind, entity, id), in file order: each row's value - delta is the previous
    row's value; the first row starts from the initial score / grade / no listing.
    Warnings change nothing (delta 0, value = the score then) and are left out."""
    led = busy_tables["ledger"]
    assert np.all(np.diff(led["day"]) >= 0), "append-only: days never go back"
    led = {k: v[led["kind"] != "warning"] for k, v in led.items()}
    pts = busy_run.sim.scenario.points
    start_grade = int(_floor_grade(np.array([pts.initial]), pts.grade_floors)[0])
    start = {"score": pts.initial, "grade": start_grade, "list": 0}
    order = np.lexsort((np.arange(len(led["id"])), led["id"], led["entity"], led["kind"]))
    key = np.char.add(np.char.add(led["kind"][order].astype(str), led["entity"][order]
                                  .astype(str)), led["id"][order].astype(str))
    value, delta = led["value"][order], led["delta"][order]
    first = np.ones(len(order), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    prev = np.empty_like(value)
    prev[1:] = value[:-1]
    prev[first] = [start[k] for k in led["kind"][order][first]]
    assert np.array_equal(value - delta, prev)


def test_last_grade_row_is_the_final_grade(busy_run, busy_tables):
    p, led = busy_tables["people"], busy_tables["ledger"]
    final = _grade_index(p["grade"])
    g = led["kind"] == "grade"
    last = np.full(len(final), -1)
    last[led["id"][g]] = led["value"][g]  # later rows overwrite earlier ones
    moved = last >= 0
    assert moved.sum() > 100
    assert np.array_equal(last[moved], final[moved])
    pts = busy_run.sim.scenario.points
    start = _floor_grade(np.array([pts.initial]), pts.grade_floors)[0]
    assert np.all(final[~moved] == start)


def test_grade_is_never_better_than_the_score_floors(busy_run, busy_tables):
    """Instant caps can only worsen a grade; without one the floors decide."""
    p = busy_tables["people"]
    floors = busy_run.sim.scenario.points.grade_floors
    assert np.all(_grade_index(p["grade"]) >= _floor_grade(p["score"], floors))
    assert np.all(_grade_index(p["grade_true"]) >= _floor_grade(p["score_true"], floors))


def test_grade_follows_the_floors_exactly_without_instant_caps(simulate, busy, tmp_path):
    run = simulate(tmp_path / "r", "rongcheng", [*busy, "points.instant_grade={}",
                                              "points.deltas.traffic_violation=-80"],
                   people=5000, days=60)
    p = _table(run.path, "people")
    floors = run.sim.scenario.points.grade_floors
    assert np.array_equal(_grade_index(p["grade"]), _floor_grade(p["score"], floors))
    assert len(set(p["grade"].tolist())) >= 3


def test_timeseries_grade_counts_match_final_grades_of_adults(busy_run, busy_tables):
    """Grade counts are of adults: children are never scored, have no ledger rows and
    keep the initial grade."""
    p, led = busy_tables["people"], busy_tables["ledger"]
    last = {k: v[-1] for k, v in busy_tables["timeseries"].items()}
    adult = p["age_band"] != "child"
    for g in GRADES:
        assert last[f"grade_{g}"] == np.count_nonzero((p["grade"] == g) & adult), g
    child_ids = set(p["id"][~adult].tolist())
    assert not child_ids & set(led["id"][led["entity"] == "person"].tolist())
    pts = busy_run.sim.scenario.points
    start = _floor_grade(np.array([pts.initial]), pts.grade_floors)[0]
    assert np.all(_grade_index(p["grade"][~adult]) == start)
    assert np.array_equal(p["score"][~adult], np.full((~adult).sum(), pts.initial))


def test_daily_counts_replay_from_the_ledger(busy_run, busy_tables):
    """The time series' daily listed, new-listing and grade counts follow from the
    ledger's rows alone, day by day."""
    led, ts = busy_tables["ledger"], busy_tables["timeseries"]
    days = len(ts["day"])
    n = np.count_nonzero(busy_tables["people"]["age_band"] != "child")
    day, kind, delta, value = led["day"], led["kind"], led["delta"], led["value"]

    def per_day(mask):
        return np.bincount(day[mask], minlength=days)

    person_list = (kind == "list") & (led["entity"] == "person")
    on = per_day(person_list & (delta > 0) & (value == 1))
    off = per_day(person_list & (delta < 0) & (value == 0))
    assert np.array_equal(np.cumsum(on - off), ts["listed"])
    # A case listing writes one row for its own entity with cause court_listing (a firm
    # case also reaches its legal representative, under another cause).
    new = (kind == "list") & (delta > 0) & (led["cause"] == "court_listing")
    assert np.array_equal(per_day(new & (led["entity"] == "person")), ts["new_listings"])
    assert np.array_equal(per_day(new & (led["entity"] == "firm")), ts["new_firm_listings"])
    pts = busy_run.sim.scenario.points
    start = _floor_grade(np.array([pts.initial]), pts.grade_floors)[0]
    g = kind == "grade"
    for k, name in enumerate(GRADES):
        moved = np.cumsum(per_day(g & (value == k)) - per_day(g & (value - delta == k)))
        assert np.array_equal((n if k == start else 0) + moved, ts[f"grade_{name}"]), name
    assert np.all(ts["events_observed"] <= ts["events_true"])


def test_listed_count_matches_people_and_firms(busy_tables):
    p, f, led = busy_tables["people"], busy_tables["firms"], busy_tables["ledger"]
    last = {k: v[-1] for k, v in busy_tables["timeseries"].items()}
    assert last["listed"] == np.count_nonzero(p["listings"] > 0) > 0
    assert last["listed_firms"] == np.count_nonzero(f["listed"] > 0)
    for entity, table, col in (("person", p, "listings"), ("firm", f, "listed")):
        sel = (led["kind"] == "list") & (led["entity"] == entity)
        total = np.bincount(led["id"][sel], weights=led["delta"][sel], minlength=len(table["id"]))
        assert np.array_equal(total.astype(np.int64), table[col].astype(np.int64)), entity
    assert np.all(p["listings_false"] <= p["listings"])
    assert np.all(p["ever_listed"][p["listings"] > 0])


def test_corrections_only_delist_false_cases(busy_tables):
    led = busy_tables["ledger"]
    fixed = led["cause"] == "delisting_correction"
    assert fixed.any()
    assert set(led["record"][fixed].tolist()) == {"false"}


def test_wrongful_never_exceeds_sanctioned(busy_tables):
    ts = busy_tables["timeseries"]
    assert np.all(ts["sanctioned_wrongful"] <= ts["sanctioned"])
    assert ts["sanctioned"].max() > 0 and ts["sanctioned_wrongful"].max() > 0
    for col in ts:
        if col.startswith("gate_") and col.endswith("_wrongful"):
            assert np.all(ts[col] <= ts[col[: -len("_wrongful")]]), col


def test_sanctions_table_matches_daily_gate_counts(busy_run, busy_tables):
    ts, sa = busy_tables["timeseries"], busy_tables["sanctions"]
    assert len(sa["day"]) > 100
    for col in ts:
        if not col.startswith("gate_") or col.endswith("_wrongful"):
            continue
        gate = col[len("gate_"):]
        sel = sa["gate"] == gate
        per_day = np.bincount(sa["day"][sel], minlength=len(ts["day"]))
        wrong = np.bincount(sa["day"][sel & sa["wrongful"]], minlength=len(ts["day"]))
        assert np.array_equal(per_day, ts[col]), gate
        assert np.array_equal(wrong, ts[f"{col}_wrongful"]), gate
    gates = busy_run.sim.scenario.gates
    listed = np.isin(sa["gate"], [n for n, g in gates.items() if g.condition == "listed"])
    assert listed.any() and np.all(sa["trigger_domain"][listed] == "court")
    for name, g in gates.items():
        assert np.all(sa["gate_domain"][sa["gate"] == name] == g.domain), name
        effect = "perk" if g.effect == "perk" else "sanction"
        assert np.all(sa["effect"][sa["gate"] == name] == effect), name


def _expected_status(sim, p):
    """Sanctioned / wrongful status implied by the final state and the sanction gates."""
    sanction_gates = [g for g in sim.scenario.gates.values() if g.effect != "perk"]
    conds = [parse_condition(g.condition) for g in sanction_gates]
    use_listed = Term("listed") in conds
    le = min([c.value for c in conds if isinstance(c, Term) and c.standing == "grade"
              and c.op == "<="], default=99)
    listed = p["listings"] > 0
    listed_true = (p["listings"] - p["listings_false"]) > 0
    adult = p["age_band"] != "child"  # children are never scored nor sanctioned
    sanctioned = adult & ((use_listed & listed) | (_grade_index(p["grade"]) >= le))
    held_true = (use_listed & listed_true) | (_grade_index(p["grade_true"]) >= le)
    return sanctioned, sanctioned & ~held_true


def test_final_sanction_status_follows_from_final_state(busy_run, busy_tables):
    p = busy_tables["people"]
    sanctioned, wrongful = _expected_status(busy_run.sim, p)
    assert sanctioned.sum() > 50 and wrongful.sum() > 0
    assert np.array_equal(p["sanctioned"], sanctioned)
    assert np.array_equal(p["sanctioned_wrongful"], wrongful)
    last = {k: v[-1] for k, v in busy_tables["timeseries"].items()}
    assert last["sanctioned"] == sanctioned.sum()
    assert last["sanctioned_wrongful"] == wrongful.sum()


def test_wrongful_status_follows_a_true_record_that_confirms_a_false_cap(simulate, busy,
                                                                        tmp_path):
    """Regression: a true instant-grade record that leaves the grade unchanged (already C
    from a false one) still moves the true grade, so the person is no longer wrongfully
    sanctioned (the status used to be refreshed only for people with a ledger row)."""
    run = simulate(tmp_path / "r", "rongcheng", [
        *busy, "channels.traffic_police.false_rate=5e-3", "channels.traffic_police.detection=1",
        "behaviours.drunk_driving.rate=5e-3",
    ], people=3000, days=60)
    p = _table(run.path, "people")
    sanctioned, wrongful = _expected_status(run.sim, p)
    assert np.array_equal(p["sanctioned"], sanctioned)
    assert np.array_equal(p["sanctioned_wrongful"], wrongful)


def test_false_records_reach_the_ledger_marked_false(busy_run, busy_tables):
    led, p = busy_tables["ledger"], busy_tables["people"]
    ts = busy_tables["timeseries"]
    false = led["record"] == "false"
    assert false.sum() > 50 and ts["records_false"].sum() > 0
    s = busy_run.sim.scenario
    noisy = {c for c, ch in s.channels.items() if ch.false_rate > 0}
    assert set(led["channel"][false].tolist()) <= noisy | {"-"}
    # Score rows caused by a record name its channel (listing rows have none).
    from_records = false & (led["kind"] == "score") & np.isin(led["cause"], list(s.behaviours))
    assert from_records.any() and set(led["channel"][from_records].tolist()) <= noisy
    # False records are misattributions to adults: never to children.
    who = led["id"][false & (led["entity"] == "person")]
    assert np.all(p["age_band"][who] != "child")
    # ... and every false score row moves the score but not the true score.
    assert np.any(p["score"] != p["score_true"])


def test_no_false_records_means_no_wrongful_sanctions(simulate, busy, tmp_path):
    run = simulate(tmp_path / "r", "rongcheng", [*busy, *_all_false_rates_zero()],
                   people=10_000, days=120)
    ts, led = _table(run.path, "timeseries"), _table(run.path, "ledger")
    p, sa = _table(run.path, "people"), _table(run.path, "sanctions")
    assert ts["sanctioned"].max() > 0, "the check needs sanctions to happen"
    assert ts["records_false"].sum() == 0
    assert ts["sanctioned_wrongful"].sum() == 0
    assert not np.any(sa["wrongful"])
    assert "false" not in set(led["record"].tolist())
    assert np.array_equal(p["score"], p["score_true"])
    assert np.all(p["listings_false"] == 0) and not np.any(p["sanctioned_wrongful"])


def test_baseline_writes_no_score_grade_or_list_rows(simulate, tmp_path):
    run = simulate(tmp_path / "b", "baseline", people=3000, days=30)
    led, ts = _table(run.path, "ledger"), _table(run.path, "timeseries")
    assert len(led["id"]) == 0
    assert not any(c.startswith(("grade_", "gate_")) or c == "listed" for c in ts)
    assert ts["sanctioned"].sum() == 0
    assert ts["events_true"].sum() > 0, "people still behave without a system"
    p = _table(run.path, "people")
    assert "score" not in p and not np.any(p["sanctioned"])
    assert len(_table(run.path, "sanctions")["id"]) == 0


# --- the same bookkeeping under threats and safeguards ----------------------------

VARIANTS = {
    "insiders and informants": [
        "threats.insiders_per_million=2000", "threats.audit_prob=0.5", "threats.audit_days=10",
        "threats.informant_rate=0.001",
    ],
    "notice, review, expiry and a proportionality cap": [
        "safeguards.notice_days=5", "safeguards.review_capacity=5000",
        "safeguards.expiry_days=20", "safeguards.proportionality_cap=10",
    ],
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_bookkeeping_holds_under_threats_and_safeguards(variant, simulate, busy, tmp_path):
    run = simulate(tmp_path / "r", "rongcheng", [*busy, *VARIANTS[variant]],
                   people=10_000, days=120)
    t = {name: _table(run.path, name) for name in ("people", "ledger", "timeseries")}
    p, led, ts = t["people"], t["ledger"], t["timeseries"]
    n = len(p["id"])
    pts = run.sim.scenario.points
    score = led["kind"] == "score"
    total = np.bincount(led["id"][score], weights=led["delta"][score], minlength=n)
    assert np.array_equal(pts.initial + total.astype(np.int64), p["score"].astype(np.int64))
    _assert_true_score_is_the_sum_of_true_rows(p, led, pts.initial)
    g = led["kind"] == "grade"
    last = np.full(n, -1)
    last[led["id"][g]] = led["value"][g]
    assert np.array_equal(last[last >= 0], _grade_index(p["grade"])[last >= 0])
    assert ts["listed"][-1] == np.count_nonzero(p["listings"] > 0)
    assert np.all(ts["sanctioned_wrongful"] <= ts["sanctioned"]) and ts["sanctioned"].max() > 0
    sanctioned, wrongful = _expected_status(run.sim, p)
    assert np.array_equal(p["sanctioned"], sanctioned)
    assert np.array_equal(p["sanctioned_wrongful"], wrongful)
    if variant.startswith("insiders"):
        assert "insider" in set(led["record"].tolist())
        assert "audit_reversal" in set(led["cause"].tolist())
    else:
        assert "mark_expiry" in set(led["cause"].tolist())
        deductions = score & (led["delta"] < 0) & np.isin(led["cause"], list(run.sim.scenario
                                                                              .behaviours))
        assert led["delta"][deductions].min() >= -10, "no record deducts more than the cap"


# --- the List rule --------------------------------------------------------------------


def test_unpaid_cases_are_listed_after_exactly_the_grace_period(simulate, tmp_path):
    """Nobody pays, no case ends otherwise and every debtor is listable: each recorded
    judgment default (marked by a -1 delta) is listed grace_days later; fixed-term listings
    end term_days later."""
    grace, term, days = 10, 25, 80
    run = simulate(tmp_path / "r", "rongcheng", [
        "court_list.pay_hazard=0", "court_list.other_grounds_share=1.0",
        "court_list.no_assets_hazard=0", "court_list.settlement_hazard=0",
        "court_list.death_hazard=0",
        f"court_list.grace_days={grace}", f"court_list.term_days={term}",
        "behaviours.judgment_default.rate=2e-3", "behaviours.firm_judgment_default.rate=0",
        "channels.court.false_rate=0", "points.deltas.judgment_default=-1", "points.warn_max=0",
    ], people=5000, days=days)
    led = _table(run.path, "ledger")
    causes = set(led["cause"].tolist())
    assert "delisting_payment" not in causes and "delisting_correction" not in causes
    rec = (led["kind"] == "score") & (led["cause"] == "judgment_default")
    lst = (led["kind"] == "list") & (led["cause"] == "court_listing")
    exp_ = (led["kind"] == "list") & (led["cause"] == "delisting_expiry")
    assert rec.sum() > 100 and exp_.sum() > 0
    expected = sorted((int(i), int(d) + grace) for i, d in
                      zip(led["id"][rec], led["day"][rec], strict=True) if d + grace < days)
    listed = sorted((int(i), int(d)) for i, d in
                    zip(led["id"][lst], led["day"][lst], strict=True))
    assert listed == expected
    listed_days: dict[int, list[int]] = {}
    for i, d in listed:
        listed_days.setdefault(i, []).append(d)
    for i, d in zip(led["id"][exp_], led["day"][exp_], strict=True):
        assert d - term in listed_days[int(i)]


# --- common random numbers ------------------------------------------------------------


def _pair(overrides, det_a=0.9, det_b=0.05, people=20_000, days=20):
    sims = []
    for det in (det_a, det_b):
        s = load_scenario("rongcheng", [*overrides, f"channels.online.detection={det}"],
                          people=people, days=days, seed=4)
        sims.append(Simulation(s))
    return sims


def _spy(sim):
    """Record every day's true events and records as the engine produces them."""
    seen = {"events": [], "records": []}
    behave, observe = sim["society"].behaviour.step, sim["society"].observation.step

    def step_b(day):
        ev = behave(day)
        seen["events"].append(ev)
        return ev

    def step_o(ev, day):
        rec = observe(ev, day)
        seen["records"].append(rec)
        return rec

    sim["society"].behaviour.step, sim["society"].observation.step = step_b, step_o
    return seen


def test_day_zero_events_off_the_changed_channel_are_identical():
    """With adaptation on, online detection changes how much voice is chilled, so the
    online behaviours differ; every other behaviour's day-0 events (who, what, and the
    uniform that decides detection) must be identical, and by thinning the chilled run's
    online events must be a subset of the other's."""
    hi, lo = _pair(["behaviours.traffic_violation.rate=0.01",
                    "behaviours.criticism.rate=0.01"], people=50_000, days=1)
    online = hi.cat.channel_names.index("online")
    eh, el = hi["society"].behaviour.step(0), lo["society"].behaviour.step(0)
    on_h, on_l = hi.cat.channel[eh.behaviour] == online, hi.cat.channel[el.behaviour] == online
    assert (~on_h).sum() > 100 and on_l.sum() > 10
    for a, b in ((eh.who, el.who), (eh.behaviour, el.behaviour), (eh.u_detect, el.u_detect)):
        assert np.array_equal(a[~on_h], b[~on_l])
    pairs_h = set(zip(eh.who[on_h].tolist(), eh.behaviour[on_h].tolist(), strict=True))
    pairs_l = set(zip(el.who[on_l].tolist(), el.behaviour[on_l].tolist(), strict=True))
    assert pairs_h <= pairs_l and len(pairs_h) < len(pairs_l)


def test_without_feedback_only_the_changed_channel_records_differ():
    """With adaptation and feedback off no rate depends on history, so changing online
    detection must leave every day's true events identical, and every record of every
    other channel (true and false) identical; only online records may differ."""
    a, b = _pair(OFF)
    sa, sb = _spy(a), _spy(b)
    a.run()
    b.run()
    online = a.cat.channel_names.index("online")
    for ea, eb in zip(sa["events"], sb["events"], strict=True):
        assert np.array_equal(ea.who, eb.who) and np.array_equal(ea.behaviour, eb.behaviour)
    differ = 0
    for ra, rb in zip(sa["records"], sb["records"], strict=True):
        ka = a.cat.channel[ra.behaviour] != online
        kb = b.cat.channel[rb.behaviour] != online
        for x, y in ((ra.who, rb.who), (ra.behaviour, rb.behaviour),
                     (ra.is_false, rb.is_false)):
            assert np.array_equal(x[ka], y[kb])
        differ += (~ka).sum() != (~kb).sum()
    assert differ > 0, "the lever must change something"
    for col in ("events_true", "voice_events"):
        assert [r[col] for r in a.rows] == [r[col] for r in b.rows], col


# --- reproducibility --------------------------------------------------------------------


def test_same_scenario_and_seed_give_byte_identical_tables(cli, busy, tmp_path):
    outs = []
    for k, seed in enumerate((3, 3, 4)):
        out = tmp_path / f"run{k}"
        args = ["run", "rongcheng", "--people", "5000", "--days", "60", "--seed", str(seed),
                "--out", str(out), "--quiet"]
        for item in busy:
            args += ["--set", item]
        r = cli(*args)
        assert r.returncode == 0, r.stderr
        outs.append(out)
    for t in ("timeseries", "ledger", "people", "sanctions", "firms"):
        assert (outs[0] / f"{t}.parquet").read_bytes() == (outs[1] / f"{t}.parquet").read_bytes(), t
    assert (outs[0] / "ledger.parquet").read_bytes() != (outs[2] / "ledger.parquet").read_bytes()


def test_results_do_not_depend_on_the_ledger_flush_size(busy, tmp_path):
    """Regression: the points kernels did not write the entity column, so once the
    ledger's buffers were reused after a flush, score and grade rows inherited a stale
    'firm' tag and consequences skipped those people."""
    outs = []
    for flush in (None, 1):
        s = load_scenario("rongcheng", list(busy), people=10_000, days=120, seed=7)
        path = tmp_path / f"ledger-{flush}.parquet"
        sim = Simulation(s, ledger_path=path)
        if flush is not None:
            sim.ledger = Ledger(path, sim.cat.names, sim.cat.channel_names, flush_rows=flush)
        sim.run()
        outs.append((pq.read_table(path).to_pydict(), sim.rows))
    (led_a, rows_a), (led_b, rows_b) = outs
    assert led_a == led_b
    assert rows_a == rows_b


def _upper(model, field: str) -> int:
    """The `le` bound of a scenario field."""
    return min(m.le for m in model.model_fields[field].metadata if getattr(m, "le", None))


def test_instant_grade_caps_apply_for_their_whole_allowed_length():
    """Regression: cap ends were kept as int16 and day + instant_grade_days could wrap
    negative, silently disabling the cap. The length is now bounded; the longest allowed
    cap must still cap, and a longer one is refused naming the key."""
    counts = []
    longest = _upper(PointsSystem, "instant_grade_days")
    for cap_days in (365, longest):
        s = load_scenario("rongcheng", [
            "behaviours.drunk_driving.rate=0.2", "channels.traffic_police.detection=1.0",
            f"points.instant_grade_days={cap_days}", "court_list.enabled=false", "gates={}",
        ], people=1000, days=3, seed=3)
        sim = Simulation(s)
        sim.run()
        counts.append(sim.rows[-1]["grade_C"])
    assert counts[0] > 0
    assert counts[1] == counts[0]  # the run is shorter than either cap
    with pytest.raises(InputError, match="points.instant_grade_days"):
        load_scenario("rongcheng", [f"points.instant_grade_days={longest + 1}"])
    # The last day a run can reach plus the longest cap must fit a 16-bit day counter.
    assert _upper(RunParams, "days") + longest < 2**15


# --- Behave and Observe against independent expectations -----------------------------


def _stress0(sim) -> np.ndarray:
    """Day-0 economic stress, 1 - savings / buffer clipped to [0, 1] (the economic feedback)."""
    p, fb = sim.people, sim.scenario.feedback
    buffer = p.income.astype(np.float64) / 12 * fb.buffer_months
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(buffer > 0, 1 - p.savings / buffer, 0.0)
    return np.clip(s, 0, 1)


def _expected_events(sim, name: str) -> np.ndarray:
    """Daily rate per person: base x trait x (1 + elasticity x stress), 0 for children."""
    b, p = sim.scenario.behaviours[name], sim.people
    trait = {
        "noncompliance": 2 * (1 - p.compliance.astype(np.float64)),
        "voice": 2 * p.voice.astype(np.float64),
        "generosity": 2 * p.generosity.astype(np.float64),
        "none": np.ones(p.n),
    }[b.driver]
    lam = b.rate * trait * (1 + b.stress_elasticity * _stress0(sim))
    return np.where(p.age == CHILD, 0.0, lam)


def _count_events(overrides, names, days=5, people=20_000):
    s = load_scenario("rongcheng", [*OFF, *overrides], people=people, days=days, seed=2)
    sim = Simulation(s)
    counts = dict.fromkeys(names, 0)
    for d in range(days):
        ev = sim["society"].behaviour.step(d)
        for name in names:
            counts[name] += int(np.count_nonzero(ev.behaviour == sim.cat.names.index(name)))
    return sim, counts


def test_event_counts_match_base_rate_trait_and_stress():
    names = ["traffic_violation", "volunteering", "criticism", "loan_arrears"]
    days = 5
    sim, counts = _count_events(["behaviours.traffic_violation.rate=0.02",
                                 "behaviours.loan_arrears.rate=0.01",
                                 "behaviours.volunteering.rate=0.02",
                                 "behaviours.criticism.rate=0.01"], names, days)
    for name in names:
        expected = days * _expected_events(sim, name).sum()
        assert expected > 200
        assert abs(counts[name] - expected) < 4 * np.sqrt(expected), (name, counts[name],
                                                                      expected)


def test_event_counts_match_when_a_daily_rate_exceeds_one():
    """Regression: the thinning envelope was capped at one event a day, so people whose
    rate exceeds 1/day (valid: rate 0.5 with stress_elasticity 3) were undercounted."""
    name = "volunteering"
    sim, counts = _count_events([f"behaviours.{name}.rate=0.5", f"behaviours.{name}.driver=none",
                                 f"behaviours.{name}.stress_elasticity=3.0"], [name], days=4,
                                people=5000)
    lam = _expected_events(sim, name)
    assert np.mean(lam[sim.people.age != CHILD] > 1) > 0.1  # the case this test is about
    expected = 4 * lam.sum()
    assert abs(counts[name] - expected) < 4 * np.sqrt(expected)


def test_detection_rate_by_group():
    s = load_scenario("rongcheng", [*OFF, "behaviours.traffic_violation.rate=0.2",
                                    "channels.traffic_camera.detection=0.5",
                                    "channels.traffic_camera.detection_by_group=[1.0, 0.4]"],
                      people=20_000, days=4, seed=8)
    sim = Simulation(s)
    b = sim.cat.names.index("traffic_violation")
    true, seen = np.zeros(2), np.zeros(2)
    for d in range(4):
        ev = sim["society"].behaviour.step(d)
        rec = sim["society"].observation.step(ev, d)
        mine = ev.behaviour == b
        true += np.bincount(sim.people.group[ev.who[mine]], minlength=2)
        got = (rec.behaviour == b) & ~rec.is_false
        seen += np.bincount(sim.people.group[rec.who[got]], minlength=2)
    for g, p in enumerate((0.5, 0.2)):
        se = np.sqrt(p * (1 - p) / true[g])
        assert true[g] > 500 and abs(seen[g] / true[g] - p) < 4 * se, (g, seen[g], true[g])


def test_false_records_rate_by_group_and_behaviour_mix():
    rate, mult, days = 0.002, (1.0, 3.0), 5
    s = load_scenario("rongcheng", [*OFF, *_all_false_rates_zero(),
                                    f"channels.court.false_rate={rate}",
                                    f"channels.court.false_rate_by_group={list(mult)}"],
                      people=20_000, days=days, seed=9)
    sim = Simulation(s)
    p = sim.people
    adult = p.age != CHILD
    court = [n for n, b in s.behaviours.items() if b.channel == "court" and b.actor == "person"]
    per_group = np.zeros(2)
    per_beh = dict.fromkeys(court, 0)
    for d in range(days):
        rec = sim["society"].observation.step(sim["society"].behaviour.step(d), d)
        who, beh = rec.who[rec.is_false], rec.behaviour[rec.is_false]
        assert np.all(adult[who]), "false records name adults only"
        assert not np.any(rec.is_firm[rec.is_false])
        per_group += np.bincount(p.group[who], minlength=2)
        for i in beh.tolist():
            per_beh[sim.cat.names[i]] += 1
    for g in (0, 1):
        expected = days * rate * mult[g] * np.count_nonzero(adult & (p.group == g))
        assert abs(per_group[g] - expected) < 4 * np.sqrt(expected), (g, per_group[g], expected)
    total = per_group.sum()
    base = {n: s.behaviours[n].rate for n in court}
    for n in court:
        share = base[n] / sum(base.values())
        se = np.sqrt(share * (1 - share) / total)
        assert abs(per_beh[n] / total - share) < 4 * se + 1e-9, (n, per_beh[n], total, share)


# --- adaptation: tie pruning ---------------------------------------------------------


def test_dropped_ties_are_symmetric_non_family_and_next_to_a_fallen_person(busy_run,
                                                                           busy_tables):
    g = busy_run.sim.graph
    p, ts, led = busy_tables["people"], busy_tables["timeseries"], busy_tables["ledger"]
    dropped = (g.kind & 0x80) > 0
    n = len(g.indptr) - 1
    rows = np.repeat(np.arange(n), np.diff(g.indptr))
    assert ts["ties_dropped"].sum() > 0
    # Each drop flags both directed entries of the tie.
    assert dropped.sum() == 2 * ts["ties_dropped"].sum() == p["ties_dropped"].sum()
    assert np.array_equal(np.bincount(rows[dropped], minlength=n), p["ties_dropped"])
    a, b = rows[dropped].astype(np.int64), g.indices[dropped].astype(np.int64)
    back = {(int(x), int(y)) for x, y in zip(a, b, strict=True)}
    assert all((y, x) in back for x, y in back)
    assert not np.any((g.kind[dropped] & 0x7F) == 1), "family ties are never dropped"
    prune = GRADES.index(busy_run.sim.scenario.adaptation.prune_grade)
    fell = np.zeros(n, dtype=bool)
    sel = (led["kind"] == "grade") & (led["value"] >= prune)
    fell[led["id"][sel]] = True
    assert np.all(fell[a] | fell[b])
    assert np.array_equal(p["degree"], np.diff(g.indptr) - p["ties_dropped"])


# --- regressions of bugs found while testing -----------------------------------------


def test_a_gate_met_at_the_initial_grade_counts_everyone_it_sanctions(simulate, busy,
                                                                     tmp_path):
    """Regression: status started at 'not sanctioned' for everyone, so a sanction gate
    whose condition holds at the initial grade left untouched people uncounted."""
    run = simulate(tmp_path / "r", "rongcheng", [
        *busy, "gates.surcharge_all.domain=finance", "gates.surcharge_all.condition=grade<=A",
        "gates.surcharge_all.effect=surcharge", "gates.surcharge_all.use_rate=0.01",
    ], people=3000, days=20)
    p = _table(run.path, "people")
    sa = _table(run.path, "sanctions")
    hit = np.unique(sa["id"][sa["gate"] == "surcharge_all"])
    assert len(hit) > 0
    assert np.all(p["sanctioned"][hit]), "people the gate was applied to are sanctioned"
    sanctioned, _ = _expected_status(run.sim, p)
    assert np.array_equal(p["sanctioned"], sanctioned)


def test_a_scenario_without_behaviours_runs(tmp_path):
    """Regression: an empty behaviour table crashed compile_catalogue (TypeError)."""
    s = load_scenario("rongcheng", ["behaviours={}", "points.deltas={}",
                                    "points.instant_grade={}", "court_list.enabled=false",
                                    "gates={}"], people=300, days=3)
    sim = Simulation(s)
    sim.run()
    assert [r["events_true"] for r in sim.rows] == [0, 0, 0]


def test_results_do_not_depend_on_the_number_of_threads(simulate, busy, tmp_path):
    import numba

    before = numba.get_num_threads()
    outs = []
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            outs.append(simulate(tmp_path / f"t{threads}", "rongcheng", busy, people=5000,
                                 days=30).path)
    finally:
        numba.set_num_threads(before)
    for t in ("timeseries", "ledger", "people", "sanctions", "firms"):
        assert (outs[0] / f"{t}.parquet").read_bytes() == (outs[-1] / f"{t}.parquet").read_bytes()


def test_stress_never_widens_a_firm_behaviours_envelope():
    """Stress moves people's rates, never firms': a firm behaviour's sampling envelope
    leaves its stress elasticity out, so with the same seed its events are exactly
    those it has without elasticity (a wider envelope would draw other candidates)."""
    days, people = 200, 20_000

    def run(elasticity: float) -> tuple[Simulation, int]:
        s = load_scenario("credit-china", [
            f"behaviours.counterfeit_goods.stress_elasticity={elasticity}",
            "behaviours.counterfeit_goods.rate=0.01"],
            people=people, days=days)
        sim = Simulation(s)
        b = sim.cat.index("counterfeit_goods")
        n = sum(int(np.count_nonzero(sim["society"].behaviour.step(d).behaviour == b))
                for d in range(days))
        return sim, n

    plain, n0 = run(0.0)
    stressed, n1 = run(3.0)
    b = plain.cat.index("counterfeit_goods")
    rmax0, rmax1 = (s["society"].behaviour.rmax[b] for s in (plain, stressed))
    assert rmax1 == rmax0
    assert n0 > 100 and n1 == n0
