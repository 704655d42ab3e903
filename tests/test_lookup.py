"""`credsim.results.lookup`: one person's or firm's record, read back from a real run folder.

Two small runs are simulated once for the module: a busy rongcheng run (high court,
false-record and drunk-driving rates, short grace, term and cap periods) so that false
listings, corrections, term expiries, firm listings and grade caps all occur; and a
safeguarded run with short expiry and audit periods so that reversed deductions occur.
Facts are checked against the run's own tables (read with DuckDB), not against the code
under test.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from credsim.errors import InputError
from credsim.population.firms import USCC_ALPHABET, uscc_check
from credsim.results.lookup import (
    DELISTING_CAUSES,
    FirmRecord,
    PersonRecord,
    lookup,
    parse_key,
    render,
)
from credsim.results.query import connect

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
