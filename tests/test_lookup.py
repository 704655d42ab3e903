"""`credsim.results.lookup`: one person's or firm's record, read back from a real run folder.

Small runs are simulated once for the module: a busy rongcheng run (high court,
false-record and drunk-driving rates, short grace, term and cap periods) so that false
listings, corrections, term expiries, firm listings and grade caps all occur; a
safeguarded run with short expiry and audit periods so that reversed deductions occur;
and one run of each newer system (sesame's composite score, nosedive's peer ratings,
credit-china's firm lists with short display periods, city-brain under domain
separation, rongcheng with many false camera records and colluders for warnings),
with rates raised so each case exists. Facts are checked against the run's own tables
(read with DuckDB), not against the code under test.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from rich.console import Console

from credsim.errors import InputError
from credsim.population.firms import USCC_ALPHABET, uscc_check
from credsim.results.lookup import (
    FirmRecord,
    LedgerEntry,
    PersonRecord,
    _explain,
    lookup,
    parse_key,
    render,
)
from credsim.results.query import connect
from credsim.scenario.load import load_scenario
from credsim.systems.court_list.explain import DELISTING_CAUSES

BUSY = (
    "behaviours.judgment_default.rate=2e-3",
    "behaviours.firm_judgment_default.rate=3e-3",
    "behaviours.drunk_driving.rate=3e-4",
    "channels.court.false_rate=2e-4",
    "channels.traffic_camera.false_rate=2e-4",
    "court_list.grace_days=10",
    "court_list.term_days=40",
    "court_list.correction_days=12",
    "points.instant_grade_days=30",
)
SAFEGUARDED = (
    "safeguards.notice_days=0",
    "safeguards.expiry_days=15",
    "threats.insiders_per_million=3000",
    "threats.audit_prob=0.7",
    "threats.audit_days=5",
    "behaviours.traffic_violation.rate=5e-3",
    "behaviours.judgment_default.rate=2e-3",
    "court_list.grace_days=10",
)


@pytest.fixture(scope="module")
def run(simulate, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lookup") / "busy"
    return simulate(out, "rongcheng", BUSY, people=4000, days=100, seed=3).path


@pytest.fixture(scope="module")
def guarded(simulate, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lookup") / "guarded"
    return simulate(out, "safeguarded", SAFEGUARDED, people=3000, days=60, seed=5).path


# The newer systems. Rates are raised so that every case the tests look for exists.
SESAME = (  # court listings, to see the listing penalty at refreshes
    "behaviours.judgment_default.rate=2e-3",
    "court_list.grace_days=5",
    "channels.court.false_rate=1e-4",
)
CREDIT_CHINA = (  # many items, display periods short enough to end within the run
    "behaviours.counterfeit_goods.rate=5e-3",
    "behaviours.unpaid_wages.rate=3e-3",
    "firm_lists.false_rate=2e-3",
    "firm_lists.display_days.serious=[20, 40]",
    "firm_lists.display_days.moderate=[10, 30]",
)
WARNED = (  # false camera records use up warnings; colluders certify good deeds
    "behaviours.traffic_violation.rate=1e-2",
    "channels.traffic_camera.false_rate=2e-3",
    "threats.colluders_per_million=20000",
)


@pytest.fixture(scope="module")
def sesame(simulate, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lookup") / "sesame"
    return simulate(out, "sesame", SESAME, people=5000, days=90, seed=3).path


@pytest.fixture(scope="module")
def nosedive(simulate, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lookup") / "nosedive"
    return simulate(out, "nosedive", (), people=3000, days=60, seed=3).path


@pytest.fixture(scope="module")
def credit_china(simulate, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lookup") / "credit-china"
    return simulate(out, "credit-china", CREDIT_CHINA, people=5000, days=90, seed=3).path


@pytest.fixture(scope="module")
def city_brain(simulate, tmp_path_factory) -> Path:
    """City Brain under domain separation: score gates need a trigger in their domain."""
    out = tmp_path_factory.mktemp("lookup") / "city-brain"
    return simulate(out, "city-brain", ("safeguards.domain_separation=true",),
                    people=4000, days=60, seed=3).path


@pytest.fixture(scope="module")
def warned(simulate, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lookup") / "warned"
    return simulate(out, "rongcheng", WARNED, people=4000, days=60, seed=3).path


def _sql(run_dir: Path, sql: str, params: list | None = None) -> list[tuple]:
    con = connect(run_dir)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _render(record, width: int = 200) -> str:
    buf = io.StringIO()
    render(record, Console(file=buf, width=width, no_color=True, highlight=False))
    return buf.getvalue()


def _error(run_dir: Path, key: str) -> str:
    with pytest.raises(InputError) as exc:
        lookup(run_dir, key)
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def _valid_uscc(first17: str) -> str:
    return first17 + uscc_check(first17)


def _scenario(run_dir: Path) -> dict:
    return json.loads((run_dir / "manifest.json").read_text())["scenario"]


# ---------------------------------------------------------------- persons


def test_false_case_listing_is_shown_as_false_and_the_ledger_adds_up(run):
    rows = _sql(run, "SELECT id, score, score_true FROM people WHERE listings_false > 0 "
                     "ORDER BY id LIMIT 3")
    assert rows, "the busy run should leave someone listed on a false case"
    for pid, score, score_true in rows:
        r = lookup(run, str(pid))
        assert isinstance(r, PersonRecord) and r.id == pid
        assert r.listings_false >= 1 and r.listings >= r.listings_false
        false_listings = [e for e in r.ledger
                          if e.kind == "list" and e.delta > 0 and e.record == "false"]
        still_open = [e for e in false_listings if e.ended_day is None]
        assert len(still_open) == r.listings_false
        assert r.score == score and r.score_true == score_true
        assert r.initial_score == 1000
        assert r.score_deltas == score - r.initial_score
        assert r.true_score_deltas == score_true - r.initial_score
        # The false listing's deduction is on the held score only.
        assert score_true - score >= 50 * r.listings_false
        assert r.sanctioned and r.sanctioned_wrongful == (r.listings == r.listings_false)
        text = _render(r)
        assert f"Person {pid}" in text
        assert f"{r.listings_false} resting on a false case" in text
        assert "FALSE" in text and "court_listing" in text
        assert f"{score} (true score {score_true})" in text


def test_score_deltas_reconcile_for_everyone_with_a_ledger(run):
    ids = [r[0] for r in _sql(
        run, "SELECT DISTINCT id FROM ledger WHERE entity = 'person' AND kind = 'score' "
             "ORDER BY id LIMIT 40")]
    assert len(ids) == 40
    for pid in ids:
        r = lookup(run, str(pid))
        assert r.initial_score + r.score_deltas == r.score
        assert r.initial_score + r.true_score_deltas == r.score_true
        n = _sql(run, "SELECT count(*) FROM ledger WHERE entity = 'person' AND id = ?", [pid])
        assert len(r.ledger) == n[0][0]
        assert [e.day for e in r.ledger] == sorted(e.day for e in r.ledger)


def test_listings_are_paired_with_what_ended_them(run):
    ids = [r[0] for r in _sql(
        run, "SELECT DISTINCT id FROM ledger WHERE entity = 'person' AND kind = 'list' "
             "AND delta < 0 ORDER BY id LIMIT 40")]
    seen: set[str] = set()
    for pid in ids:
        r = lookup(run, str(pid))
        listings = [e for e in r.ledger if e.kind == "list" and e.delta > 0]
        delistings = [e for e in r.ledger if e.kind == "list" and e.delta < 0]
        ended = [e for e in listings if e.ended_by is not None]
        assert len(ended) == len(delistings)
        for e in ended:
            assert e.ended_by in DELISTING_CAUSES and e.ended_day >= e.day
            seen.add(e.ended_by)
            if e.ended_by == "delisting_expiry":
                assert e.ended_day == e.day + 40  # court_list.term_days
            if e.ended_by == "delisting_correction":
                assert e.record == "false"
        for d in delistings:
            assert d.ended_by in ("court_listing", "legal_rep_of_listed_firm")
            assert "ends the listing of day" in d.note
        # A correction restores the listing deduction; a payment does not.
        for s in (e for e in r.ledger if e.kind == "score" and e.cause == "court_listing"):
            if s.ended_by is not None:
                assert s.ended_by in ("delisting_correction", "delisting_appeal")
                assert s.record == "false"
    assert {"delisting_payment", "delisting_expiry", "delisting_correction"} <= seen


def test_restrictions_are_the_gates_whose_condition_holds(run):
    (pid,) = _sql(run, "SELECT id FROM people WHERE listings > 0 AND age_band <> 'child' "
                       "ORDER BY id LIMIT 1")[0]
    r = lookup(run, str(pid))
    listed_gates = {"flights", "high_speed_rail", "star_hotels", "property_purchase",
                    "senior_management", "private_school", "public_shaming"}
    names = {x.gate for x in r.restrictions}
    assert listed_gates <= names
    assert all(x.effect != "perk" for x in r.restrictions)
    assert ("bank_loans" in names) == (r.grade in ("C", "D"))
    for x in r.restrictions:
        if x.condition == "listed":
            assert x.wrongful == (r.listings == r.listings_false)
    gates = _sql(run, "SELECT gate, count(*), count(*) FILTER (WHERE wrongful) FROM sanctions "
                      "WHERE id = ? GROUP BY gate", [pid])
    own = {u.gate: (u.applications, u.wrongful) for u in r.gate_uses if u.person == pid}
    assert own == {g: (n, w) for g, n, w in gates}
    text = _render(r)
    assert "LISTED" in text and "high_speed_rail" in text and "Restrictions met now" in text

    (quiet,) = _sql(run, "SELECT id FROM people WHERE NOT ever_listed AND grade = 'A' "
                         "AND age_band = 'adult' ORDER BY id LIMIT 1")[0]
    q = lookup(run, str(quiet))
    assert q.restrictions == [] and not q.sanctioned
    assert "Restrictions met now: none" in _render(q)


def test_instant_grade_cap_shows_when_it_ended(run):
    rows = _sql(run, "SELECT id, day FROM ledger WHERE cause = 'drunk_driving' "
                     "AND kind = 'grade' AND day < 60 ORDER BY id LIMIT 5")
    assert rows
    for pid, day in rows:
        r = lookup(run, str(pid))
        cap = next(e for e in r.ledger if e.cause == "drunk_driving" and e.day == day)
        assert "capped at C" in cap.note
        expiry = [e for e in r.ledger if e.cause == "instant_grade_expiry"]
        if cap.ended_by is not None:
            assert cap.ended_by == "instant_grade_expiry"
            assert cap.ended_day >= day + 30 and cap.ended_day in {e.day for e in expiry}
        else:
            assert f"day {day + 30}" in cap.note


def test_child_shows_parents_and_school(run):
    (cid, p1, school) = _sql(run, "SELECT id, parent1, school FROM people "
                                  "WHERE age_band = 'child' ORDER BY id LIMIT 1")[0]
    r = lookup(run, str(cid))
    assert r.age_band == "child" and r.school == school
    assert p1 in [p.id for p in r.parents]
    assert r.restrictions == []
    text = _render(r)
    assert f"person {p1}" in text and "not scored" in text
    parent = lookup(run, str(p1))
    assert cid in [c.id for c in parent.children]


def test_narrow_console_still_shows_the_ledger(run):
    (pid,) = _sql(run, "SELECT id FROM people WHERE listings_false > 0 ORDER BY id LIMIT 1")[0]
    text = _render(lookup(run, str(pid)), width=80)
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "court_listing" in text and "FALSE" in text


# ---------------------------------------------------------------- firms


def test_firm_lookup_by_uscc(run):
    fid, uscc, rep, sector, listed = _sql(
        run, "SELECT id, uscc, legal_rep, sector, listed FROM firms WHERE id IN "
             "(SELECT id FROM ledger WHERE entity = 'firm') ORDER BY id LIMIT 1")[0]
    r = lookup(run, uscc)
    assert isinstance(r, FirmRecord)
    assert (r.id, r.uscc, r.legal_rep, r.sector, r.listed) == (fid, uscc, rep, sector, listed)
    n = _sql(run, "SELECT count(*) FROM ledger WHERE entity = 'firm' AND id = ?", [fid])[0][0]
    assert len(r.ledger) == n > 0
    assert all(e.kind == "list" for e in r.ledger)
    assert lookup(run, uscc.lower()).id == fid  # case does not matter
    text = _render(r)
    for fact in (uscc, sector, f"person {rep}", f"lookup {run} {rep}", "court_listing"):
        assert fact in text

    # The legal representative's record points back at the firm.
    p = lookup(run, str(rep))
    assert uscc in [f.uscc for f in p.firms]
    rep_rows = [e for e in p.ledger if e.cause == "legal_rep_of_listed_firm"]
    assert rep_rows and fid in [e.firm for e in rep_rows]
    assert uscc in _render(p)


# ---------------------------------------------------------------- bad keys


def test_wrong_check_character_is_rejected(run):
    (uscc,) = _sql(run, "SELECT uscc FROM firms ORDER BY id LIMIT 1")[0]
    wrong = next(c for c in USCC_ALPHABET if c != uscc[17])
    msg = _error(run, uscc[:17] + wrong)
    assert "check character" in msg and repr(uscc[17]) in msg


def test_wrong_length_is_rejected(run):
    (uscc,) = _sql(run, "SELECT uscc FROM firms ORDER BY id LIMIT 1")[0]
    for bad in (uscc[:17], uscc + "1"):
        msg = _error(run, bad)
        assert "18 characters" in msg and f"this has {len(bad)}" in msg
        assert "person id" in msg  # says what is accepted


@pytest.mark.parametrize("letter", list("IOZSV"))
def test_letters_outside_the_uscc_alphabet_are_rejected(run, letter):
    (uscc,) = _sql(run, "SELECT uscc FROM firms ORDER BY id LIMIT 1")[0]
    for code in (uscc[:10] + letter + uscc[11:], uscc[:10] + letter.lower() + uscc[11:]):
        msg = _error(run, code)
        assert f"'{letter}'" in msg and "alphabet" in msg and "never uses" in msg


def test_out_of_range_id_and_unknown_uscc_are_rejected(run):
    msg = _error(run, "4000")
    assert "out of range" in msg and "4,000 people" in msg and "0 to 3999" in msg
    assert "out of range" in _error(run, "99999999999")
    unknown = _valid_uscc("91370101ABCDEFGH0")
    assert parse_key(unknown) == ("firm", unknown)
    msg = _error(run, unknown)
    assert unknown in msg and "no firm in this run" in msg


@pytest.mark.parametrize("key", ["abc", "-1", "", "12.5", "٣"])
def test_other_keys_say_what_is_accepted(run, key):
    msg = _error(run, key)
    assert "person id" in msg and "USCC" in msg


def test_parse_key():
    assert parse_key("0042") == ("person", 42)
    assert parse_key(" 7 ") == ("person", 7)
    code = _valid_uscc("91370101ABCDEFGH0")
    assert parse_key(code.lower()) == ("firm", code)


def test_missing_run_folder_is_rejected(tmp_path):
    with pytest.raises(InputError, match="no such run folder"):
        lookup(tmp_path / "nope", "1")


def test_a_folder_without_ledger_links_is_refused(run, tmp_path):
    """A folder of format 2 (no ref column) is refused, saying why; so is a format 3
    folder whose ledger lost the column."""
    old = tmp_path / "old"
    shutil.copytree(run, old)
    ledger = old / "ledger.parquet"
    pq.write_table(pq.read_table(ledger).drop_columns(["ref"]), ledger)
    manifest = json.loads((old / "manifest.json").read_text())
    (old / "manifest.json").write_text(json.dumps({**manifest, "format_version": 2}))
    msg = _error(old, "1")
    assert "format_version 2" in msg and "expects 3" in msg and "no ref column" in msg
    (old / "manifest.json").write_text(json.dumps(manifest))
    msg = _error(old, "1")
    assert "ledger.parquet" in msg and "missing column ref" in msg


# ---------------------------------------------------------------- reversals


def test_reversed_deductions_are_paired(guarded):
    rows = _sql(guarded, "SELECT DISTINCT id FROM ledger WHERE cause IN "
                         "('mark_expiry', 'audit_reversal') ORDER BY id LIMIT 25")
    assert rows
    causes = set()
    for (pid,) in rows:
        r = lookup(guarded, str(pid))
        assert r.initial_score + r.score_deltas == r.score
        for e in r.ledger:
            if e.cause not in ("mark_expiry", "audit_reversal"):
                continue
            causes.add(e.cause)
            lag = 15 if e.cause == "mark_expiry" else 5
            assert e.ended_day == e.day - lag, e
            src = [d for d in r.ledger if d.kind == "score" and d.day == e.ended_day
                   and d.delta == -e.delta]
            assert src
            if e.cause == "audit_reversal":
                assert e.record == "insider" and any(d.record == "insider" for d in src)
        assert "reverses the deduction of day" in _render(r)
    assert causes == {"mark_expiry", "audit_reversal"}
    insider = [e for (pid,) in rows for e in lookup(guarded, str(pid)).ledger
               if e.record == "insider" and e.delta < 0]
    assert insider and all("insider edit" in e.note for e in insider)


@pytest.fixture(scope="module")
def extended(simulate, tmp_path_factory) -> Path:
    """The court list alone, with half of the fixed terms extended by a year."""
    out = tmp_path_factory.mktemp("lookup") / "extended"
    return simulate(out, "court-blacklist", (
        "behaviours.judgment_default.rate=2e-3", "court_list.grace_days=10",
        "court_list.term_days=20", "court_list.extension_prob=0.5",
        "court_list.extension_years=[1, 1]"), people=2000, days=420, seed=3).path


def test_an_extended_term_ends_the_listing_it_extended(extended):
    """Term ends of extended listings are paired exactly, by the ledger's links: another
    listing of the person may have ended a plain term on the same day."""
    rows = _sql(extended, "SELECT e.id, e.day, s.day FROM ledger e JOIN ledger s "
                          "ON e.ref = s.file_row_number WHERE e.cause = 'delisting_expiry' "
                          "AND e.entity = 'person' AND e.day - s.day = 20 + 365 ORDER BY e.id")
    assert rows
    for pid, end, start in rows:
        r = lookup(extended, str(pid))
        listing = next(e for e in r.ledger if e.kind == "list" and e.day == start
                       and e.ended_day == end)
        assert f"delisted on day {end} (end of term)" in listing.note
        ending = [e for e in r.ledger if e.day == end and e.cause == "delisting_expiry"]
        assert f"ends the listing of day {start} (end of term)" in [e.note for e in ending]


@pytest.mark.parametrize("which", ["run", "guarded"])
def test_restrictions_agree_with_the_engines_sanction_status(which, request):
    """A person is sanctioned at the end exactly when some sanction gate's condition holds
    (and, under domain separation, its domain matches the trigger); wrongfully so when
    every such gate rests on false records."""
    run_dir = request.getfixturevalue(which)
    ids = [r[0] for r in _sql(
        run_dir, "SELECT id FROM people WHERE age_band <> 'child' AND (ever_listed "
                 "OR grade NOT IN ('AAA', 'AA', 'A') OR sanctioned) ORDER BY id LIMIT 40")]
    assert len(ids) >= 20
    sanctioned = held_back = 0
    for pid in ids:
        r = lookup(run_dir, str(pid))
        applies = [x for x in r.restrictions if x.applies]
        assert r.sanctioned == bool(applies), pid
        assert r.sanctioned_wrongful == (bool(applies) and all(x.wrongful for x in applies))
        sanctioned += r.sanctioned
        held_back += len(r.restrictions) - len(applies)
    if which == "run":
        assert sanctioned > 0 and held_back == 0
    else:  # domain separation: listing gates (travel, housing, ...) never follow a court case
        assert held_back > 0


# ---------------------------------------------------------------- composite score


def test_composite_participant_shows_score_band_initial_and_ledger(sesame):
    sc = _scenario(sesame)["composite"]
    bands = sorted(sc["bands"].items(), key=lambda kv: kv[1])
    perk_lines = {name: float(g["condition"].split(">=")[1])
                  for name, g in _scenario(sesame)["gates"].items()
                  if g["condition"].startswith("score>=")}
    rows = _sql(sesame, "SELECT id, composite, composite_true, composite_initial FROM people "
                        "WHERE composite_participant AND id IN (SELECT id FROM ledger WHERE "
                        "kind = 'composite') AND id IN (SELECT id FROM ledger WHERE "
                        "kind = 'mark' AND day < 60) ORDER BY id LIMIT 5")
    assert len(rows) == 5
    for pid, score, score_true, initial in rows:
        r = lookup(sesame, str(pid))
        c = r.composite
        band = [name for name, floor in bands if score >= floor][-1]
        assert c.participant and (c.score, c.score_true, c.initial) == (score, score_true, initial)
        assert c.band == band
        # The ledger's refresh deltas lead from the initial score to the final one.
        assert c.initial + r.composite_deltas == score
        (n_marks, n_refresh), = _sql(
            sesame, "SELECT count(*) FILTER (WHERE kind = 'mark'), count(*) FILTER (WHERE "
                    "kind = 'composite') FROM ledger WHERE entity = 'person' AND id = ?", [pid])
        marks = [e for e in r.ledger if e.kind == "mark"]
        refreshes = [e for e in r.ledger if e.kind == "composite"]
        assert (len(marks), len(refreshes)) == (n_marks, n_refresh) and n_refresh > 0
        for e in marks:
            due = 30 * max(1, -(-e.day // 30))  # sesame refreshes every 30 days from day 30
            assert f"refresh of day {due}" in e.note if due < 90 else "after the run" in e.note
        for e in refreshes:
            assert e.cause == "composite_refresh" and e.day % 30 == 0
            assert f"{e.value - e.delta} -> {e.value}" in e.note
        assert {x.gate for x in r.perks} == {g for g, k in perk_lines.items() if score >= k}
        text = _render(r)
        assert f"{score}, band {band} (true {score_true}" in text
        assert f"initial {initial}, band " in text
        assert "composite_refresh" in text and "log-odds" in text
        assert f"= {score}: matches composite {score}" in text


def test_composite_non_participant_takes_no_part(sesame):
    (pid,) = _sql(sesame, "SELECT id FROM people WHERE NOT composite_participant "
                          "AND age_band = 'adult' ORDER BY id LIMIT 1")[0]
    r = lookup(sesame, str(pid))
    assert not r.composite.participant and r.composite.score is None
    assert not [x for x in r.restrictions + r.perks if x.condition.startswith("score")]
    assert not [e for e in r.ledger if e.kind in ("mark", "composite")]
    text = _render(r)
    assert "takes no part" in text and "matches composite" not in text


def test_composite_refresh_names_the_listing_penalty(sesame):
    # People listed once (never delisted), with a refresh after the listing day.
    rows = _sql(sesame, "SELECT c.id, c.day FROM ledger c JOIN (SELECT id, min(day) AS d "
                        "FROM ledger WHERE entity = 'person' AND kind = 'list' GROUP BY id "
                        "HAVING count(*) = 1) l ON c.id = l.id WHERE c.entity = 'person' "
                        "AND c.kind = 'composite' AND c.day > l.d ORDER BY c.id LIMIT 5")
    assert rows
    for pid, day in rows:
        r = lookup(sesame, str(pid))
        e = next(e for e in r.ledger if e.kind == "composite" and e.day == day)
        assert "listing penalty -100 while listed" in e.note


# ---------------------------------------------------------------- peer rating


def test_peer_rating_is_shown_with_its_changes(nosedive):
    rows = _sql(nosedive, "SELECT id, rating, rating_true, rating_shown FROM people "
                          "WHERE id IN (SELECT id FROM ledger WHERE kind = 'rating') "
                          "ORDER BY id LIMIT 5")
    assert len(rows) == 5
    for pid, rating, rating_true, shown in rows:
        r = lookup(nosedive, str(pid))
        g = r.rating
        assert g.rating == pytest.approx(rating) and g.rating_true == pytest.approx(rating_true)
        assert g.shown == pytest.approx(shown)
        # Ledger rows log the shown rating in hundredths of a star, from the initial 4.0.
        assert 400 + r.rating_deltas == round(shown * 100)
        changes = [e for e in r.ledger if e.kind == "rating"]
        (n,) = _sql(nosedive, "SELECT count(*) FROM ledger WHERE entity = 'person' AND id = ?",
                    [pid])[0]
        assert len(changes) == n and all(e.cause == "peer_ratings" for e in changes)
        text = _render(r)
        assert f"{shown:.1f} stars shown" in text and "matches shown rating" in text
        assert f"-> {changes[-1].value / 100:.1f} stars" in text
    (child,) = _sql(nosedive, "SELECT id FROM people WHERE age_band = 'child' LIMIT 1")[0]
    c = lookup(nosedive, str(child))
    assert c.rating.rating is None and "not rated" in _render(c)


def test_rating_gates_compare_the_running_mean(nosedive):
    lines = {name: float(g["condition"].split("<")[1])
             for name, g in _scenario(nosedive)["gates"].items()
             if g["condition"].startswith("rating<")}
    # Some whose flights ban rests on status bias alone, and some whose does not.
    rows = _sql(nosedive, "(SELECT id, rating, rating_true FROM people WHERE rating < 4.2 "
                          "AND rating_true >= 4.2 ORDER BY id LIMIT 5) UNION ALL (SELECT id, "
                          "rating, rating_true FROM people WHERE rating_true < 4.2 ORDER BY "
                          "rating LIMIT 5)")
    assert len(rows) == 10
    for pid, rating, rating_true in rows:
        r = lookup(nosedive, str(pid))
        met = {x.gate: x for x in r.restrictions}
        assert set(met) == {g for g, k in lines.items() if rating < k}
        for g, x in met.items():
            assert x.wrongful == (rating_true >= lines[g]) and x.trigger_domain == "social"
    assert lookup(nosedive, str(rows[0][0])).restrictions[0].wrongful


# ---------------------------------------------------------------- firm lists


def test_blacklisted_firm_shows_items_paired_with_display_expiry(credit_china):
    fl = _scenario(credit_china)["firm_lists"]
    rows = _sql(credit_china, "SELECT uscc, items_shown, blacklisted_true FROM firms "
                              "WHERE blacklisted AND id IN (SELECT id FROM ledger WHERE "
                              "entity = 'firm' AND cause = 'display_expiry') ORDER BY id LIMIT 4")
    assert rows
    for uscc, items, black_true in rows:
        r = lookup(credit_china, uscc)
        assert r.blacklisted and r.blacklisted_true == black_true and r.items_shown == items
        shown = [e for e in r.ledger if e.kind == "blacklist" and e.delta > 0]
        ended = [e for e in r.ledger if e.cause == "display_expiry"]
        assert ended and len([e for e in shown if e.ended_day is None]) == items
        for x in ended:  # each expiry names an item of its record flag, inside its range
            item = next(e for e in shown if e.day == x.ended_day and e.ended_day == x.day
                        and e.record == x.record)
            lo, hi = fl["display_days"][fl["severity"][item.cause]]
            assert lo <= x.day - item.day <= hi
            assert f"display ended on day {x.day}" in item.note
            assert x.note.startswith(f"ends the display of the {item.cause} item of day "
                                     f"{item.day}")
        assert r.items_false == sum(e.record == "false" for e in shown if e.ended_day is None)
        text = _render(r)
        assert "BLACKLISTED" in text and "display_expiry" in text
        assert f"{items} item(s) shown" in text


def test_legal_rep_of_blacklisted_firm_shows_the_blacklisting(credit_china):
    rows = _sql(credit_china, "SELECT f.id, f.uscc, p.id, p.blacklisted_firms, "
                              "p.blacklisted_firms_false FROM firms f JOIN people p "
                              "ON p.id = f.legal_rep WHERE f.blacklisted ORDER BY f.id LIMIT 4")
    assert rows
    for fid, uscc, rep, n, false in rows:
        r = lookup(credit_china, str(rep))
        assert (r.blacklisted_firms, r.blacklisted_firms_false) == (n, false) and n > 0
        assert uscc in [f.uscc for f in r.firms if f.blacklisted]
        rows_rep = [e for e in r.ledger if e.cause == "legal_rep_of_blacklisted_firm"]
        assert fid in [e.firm for e in rows_rep if e.delta > 0]
        gates = {x.gate: x for x in r.restrictions if x.condition == "blacklisted"}
        assert set(gates) == {"rep_flights", "rep_high_speed_rail", "rep_senior_management",
                              "rep_public_shaming"}
        assert all(x.wrongful == (false == n) and x.trigger_domain == "firm"
                   for x in gates.values())
        text = _render(r)
        assert "BLACKLISTED" in text and f"blacklisted as legal representative of firm {uscc}" \
            in text


def test_display_expiries_end_the_item_they_refer_to():
    """Each expiry names the item its ref points to, even where day arithmetic would pick
    another (two true serious items could both end on day 30)."""
    s = load_scenario("credit-china", ["firm_lists.display_days.serious=[20, 40]"])

    def row(day, cause, record, delta, value, ref=-1):
        return LedgerEntry(day, "blacklist", cause, "-", record, delta, value, ref=ref)

    entries = [
        row(0, "counterfeit_goods", "true", 1, 1),
        row(3, "tax_arrears", "true", 1, 2),  # minor: 90 days, not a blacklisting item
        row(5, "counterfeit_goods", "true", 1, 3),
        row(10, "counterfeit_goods", "false", 1, 4),
        row(30, "display_expiry", "true", -1, 3, ref=2),  # the day 5 item, not the day 0 one
        row(35, "display_expiry", "false", -1, 2, ref=3),
        row(40, "display_expiry", "true", -1, 1, ref=0),
    ]
    for i, e in enumerate(entries):
        e.row = i
    _explain(entries, s, 60, entity="firm")
    first, minor, second, false, end2, end_false, end1 = entries
    assert (second.ended_day, end2.ended_day) == (30, 5) and (first.ended_day, end1.ended_day) == (
        40, 0)
    assert (false.ended_day, end_false.ended_day) == (35, 10)
    assert end2.note == "ends the display of the counterfeit_goods item of day 5 (shown 25 days)"
    assert minor.ended_day is None and "still shown" in minor.note
    assert "between day 93 and day 93" in minor.note
    assert "puts the firm on the blacklist" in first.note
    assert "leaves the blacklist" in end1.note and "leaves" not in end2.note + end_false.note


def test_firm_lookup_through_the_cli(credit_china, cli):
    (uscc,) = _sql(credit_china, "SELECT uscc FROM firms WHERE blacklisted ORDER BY id "
                                 "LIMIT 1")[0]
    out = cli("lookup", str(credit_china), uscc)
    assert out.returncode == 0, out.stderr
    assert uscc in out.stdout and "BLACKLISTED" in out.stdout and "public record" in out.stdout


# ---------------------------------------------------------------- warnings and collusion


def test_warning_replaces_a_small_deduction(warned):
    rows = _sql(warned, "SELECT DISTINCT id FROM ledger WHERE kind = 'warning' ORDER BY id "
                        "LIMIT 5")
    assert rows
    for (pid,) in rows:
        r = lookup(warned, str(pid))
        warnings = [e for e in r.ledger if e.kind == "warning"]
        assert warnings and all(e.delta == 0 for e in warnings)
        for e in warnings:
            assert e.note.startswith("WARNING instead of a -5 deduction")
            assert f"counts until day {e.day + 365}" in e.note
        text = _render(r)
        assert "warning (score" in text and "WARNING instead of" in text


def test_true_score_reconciles_when_a_false_record_used_up_the_warning(warned):
    # Summing the true records' deltas does not give the true score for these people: a
    # false record took the held score's warning, so a later true one was deducted there.
    rows = _sql(warned, "SELECT p.id, p.score_true FROM people p JOIN (SELECT id, sum(delta) "
                        "FILTER (WHERE kind = 'score' AND record = 'true') AS d FROM ledger "
                        "WHERE entity = 'person' GROUP BY id) l ON p.id = l.id "
                        "WHERE 1000 + coalesce(l.d, 0) <> p.score_true ORDER BY p.id LIMIT 8")
    assert rows
    for pid, score_true in rows:
        r = lookup(warned, str(pid))
        assert r.initial_score + r.true_score_deltas == score_true
        assert r.initial_score + r.score_deltas == r.score
        assert "DOES NOT MATCH" not in _render(r)
        notes = " ".join(e.note for e in r.ledger)  # says which side had the warning
        assert "only a warning" in notes or "without false records this was deducted" in notes
    ids = [r[0] for r in _sql(warned, "SELECT DISTINCT id FROM ledger WHERE kind = 'warning' "
                                      "ORDER BY id LIMIT 30")]
    for pid in ids:
        r = lookup(warned, str(pid))
        assert r.initial_score + r.true_score_deltas == r.score_true, pid


def test_collusion_records_are_labelled(warned):
    rows = _sql(warned, "SELECT DISTINCT id FROM ledger WHERE record = 'collusion' "
                        "ORDER BY id LIMIT 3")
    assert rows
    for (pid,) in rows:
        r = lookup(warned, str(pid))
        certified = [e for e in r.ledger if e.record == "collusion" and e.kind == "score"]
        assert certified and all(e.delta > 0 and e.true_delta == 0 for e in certified)
        assert r.initial_score + r.true_score_deltas == r.score_true
        assert r.score > r.score_true
        assert "COLLUSION" in _render(r) and "COLLUSION" in _render(r, width=80)


# ---------------------------------------------------------------- every system


@pytest.mark.parametrize("which", ["sesame", "nosedive", "credit_china", "city_brain", "warned"])
def test_new_gate_conditions_agree_with_the_engines_sanction_status(which, request):
    """As for the court list and grades: sanctioned at the end exactly when some sanction
    gate's condition holds (under domain separation, with a trigger in its domain)."""
    run_dir = request.getfixturevalue(which)
    ids = [r[0] for r in _sql(run_dir, "SELECT id FROM people WHERE age_band <> 'child' "
                                       "ORDER BY sanctioned DESC, id LIMIT 30")]
    sanctioned = held_back = 0
    for pid in ids:
        r = lookup(run_dir, str(pid))
        applies = [x for x in r.restrictions if x.applies]
        assert r.sanctioned == bool(applies), pid
        assert r.sanctioned_wrongful == (bool(applies) and all(x.wrongful for x in applies))
        sanctioned += r.sanctioned
        held_back += len(r.restrictions) - len(applies)
    assert sanctioned > 0
    if which == "city_brain":  # a score gate held back: last lowering mark in another domain
        assert held_back > 0


PRESETS = ["baseline", "rongcheng", "safeguarded", "court-blacklist", "sesame",
           "honest-shanghai", "nosedive", "credit-china", "city-brain"]
REUSED = {"rongcheng": "run", "safeguarded": "guarded", "sesame": "sesame",
          "nosedive": "nosedive", "credit-china": "credit_china", "city-brain": "city_brain"}


@pytest.mark.parametrize("preset", PRESETS)
def test_lookup_works_for_every_preset(preset, request, simulate, tmp_path_factory):
    if preset in REUSED:
        run_dir = request.getfixturevalue(REUSED[preset])
    else:
        out = tmp_path_factory.mktemp("lookup") / preset
        run_dir = simulate(out, preset, (), people=2000, days=30, seed=3).path
    # One person per kind of ledger row, a child, an adult, and firms with and without rows.
    ids = {r[0] for r in _sql(run_dir, "SELECT min(id) FROM ledger WHERE entity = 'person' "
                                       "GROUP BY kind")}
    ids |= {r[0] for r in _sql(run_dir, "SELECT min(id) FROM people GROUP BY age_band")}
    usccs = [r[0] for r in _sql(run_dir, "SELECT min(uscc) FROM firms UNION SELECT uscc FROM "
                                         "firms WHERE id = (SELECT min(id) FROM ledger WHERE "
                                         "entity = 'firm')")]
    for key in [str(i) for i in sorted(ids)] + usccs:
        r = lookup(run_dir, key)
        wide, narrow = _render(r), _render(r, width=80)
        assert "DOES NOT MATCH" not in wide and "no matching" not in wide, (preset, key)
        assert all(len(line) <= 80 for line in narrow.splitlines())


def test_expired_warned_deductions_keep_the_true_score_check(simulate, tmp_path):
    """With warnings and expiry, a deduction taken from only one of the held and the
    true score is given back to that score only; lookup's replay of the true score
    matches the run for everyone who was warned."""
    run = simulate(tmp_path / "r", "rongcheng", [
        "safeguards.expiry_days=20", "channels.traffic_camera.false_rate=3e-3",
        "behaviours.traffic_violation.rate=1e-2",
    ], people=3000, days=120)
    warned = _sql(run.path, "SELECT DISTINCT id FROM ledger WHERE kind = 'warning'")
    # A false record used up the held warning: later true deductions split the scores.
    split = [r[0] for r in _sql(run.path, "SELECT DISTINCT id FROM ledger WHERE kind = "
                                "'warning' AND record = 'false' ORDER BY id LIMIT 40")]
    assert len(warned) > 200 and len(split) == 40
    for pid in split:
        text = _render(lookup(run.path, str(pid)))
        assert "DOES NOT MATCH" not in text, pid
