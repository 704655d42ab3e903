"""The ledger's links: every entry that ends, reverses or expires another names its row.

Small runs of the presets, with rates raised and periods shortened so that every kind
of link occurs: rongcheng with expiry of marks, warnings and grade caps; the court list
alone with extended terms; Credit China's firm items; Nosedive's ratings and Sesame's
composite score (which link nothing but court listings); the safeguarded preset; and
rongcheng with insiders whose edits audits catch, its ledger flushed in small row
groups so that row numbers cross them. Each run's ledger is checked against its own
tables, with the rules of docs/outputs.md (the `ref` column).
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from credsim.engine import Simulation
from credsim.ledger import K_GRADE, R_TRUE, Ledger
from credsim.modules import Day
from credsim.population.people import CHILD
from credsim.scenario.load import load_scenario
from credsim.scenario.model import GRADES

COURT = ("behaviours.judgment_default.rate=2e-3", "behaviours.firm_judgment_default.rate=3e-3",
         "channels.court.false_rate=2e-4", "court_list.grace_days=10",
         "court_list.correction_days=12")
RUNS = {
    "rongcheng-expiry": ("rongcheng", COURT + (
        "court_list.term_days=40", "behaviours.drunk_driving.rate=3e-4",
        "points.instant_grade_days=30", "safeguards.expiry_days=20",
        "behaviours.traffic_violation.rate=1e-2", "channels.traffic_camera.false_rate=2e-3",
        "points.initial=965"), 4000, 100),  # just above grade B: reversals move grades
    "court-blacklist": ("court-blacklist", COURT + (
        "court_list.term_days=20", "court_list.extension_prob=0.5",
        "court_list.extension_years=[1, 1]"), 2000, 420),
    "credit-china": ("credit-china", (
        "behaviours.counterfeit_goods.rate=5e-3", "behaviours.unpaid_wages.rate=3e-3",
        "firm_lists.false_rate=2e-3", "firm_lists.display_days.serious=[20, 40]",
        "firm_lists.display_days.moderate=[10, 30]"), 5000, 90),
    "nosedive": ("nosedive", (), 2000, 40),
    "sesame": ("sesame", COURT, 3000, 90),
    "safeguarded": ("safeguarded", COURT + (
        "safeguards.notice_days=0", "safeguards.expiry_days=15",
        "behaviours.traffic_violation.rate=5e-3"), 3000, 60),
}
AUDITED = ("threats.insiders_per_million=3000", "threats.audit_prob=0.7",
           "threats.audit_days=5", "safeguards.expiry_days=25",
           "behaviours.traffic_violation.rate=5e-3", "points.initial=965")
DELISTINGS = ("delisting_payment", "delisting_expiry", "delisting_correction",
              "delisting_appeal", "delisting_settlement", "delisting_no_assets",
              "delisting_death")
GIVE_BACKS = ("delisting_correction", "delisting_appeal")
LISTINGS = ("court_listing", "legal_rep_of_listed_firm")  # a debtor's, a legal rep's
# (kind, cause) of the entries that end the entry they refer to, of their own kind.
ENDINGS = {("score", "mark_expiry"), ("score", "audit_reversal"),
           ("grade", "instant_grade_expiry"), ("blacklist", "display_expiry"),
           *(("list", c) for c in DELISTINGS), *(("score", c) for c in GIVE_BACKS)}


class Links:
    """A run's ledger as arrays, row i at index i, with its scenario and firms."""

    def __init__(self, ledger, legal_rep: np.ndarray, scenario):
        t = ledger
        self.n = t.num_rows
        self.cols = {c: t.column(c).to_numpy() for c in ("day", "id", "delta", "ref")}
        for c in ("entity", "kind", "cause", "record"):
            self.cols[c] = np.asarray(t.column(c).to_pylist(), dtype=object)
        self.legal_rep, self.s = legal_rep, scenario
        self.behaviours = set(scenario.behaviours)

    def __getitem__(self, c: str) -> np.ndarray:
        return self.cols[c]

    def rows(self, kind: str, *causes: str, entity: str | None = None) -> np.ndarray:
        sel = (self["kind"] == kind) & np.isin(self["cause"], causes)
        if entity is not None:
            sel &= self["entity"] == entity
        return np.flatnonzero(sel)

    def is_behaviour(self, rows: np.ndarray) -> np.ndarray:
        return np.array([c in self.behaviours for c in self["cause"][rows]], dtype=bool)

    def same_holder(self, rows: np.ndarray) -> bool:
        t = self["ref"][rows]
        return bool(np.all((self["entity"][rows] == self["entity"][t])
                           & (self["id"][rows] == self["id"][t])))

    def represents(self, rows: np.ndarray) -> bool:
        """Person rows referring to rows of a firm the person represents, of the same day."""
        t = self["ref"][rows]
        return bool(np.all((self["entity"][rows] == "person") & (self["entity"][t] == "firm")
                           & (self.legal_rep[self["id"][t]] == self["id"][rows])
                           & (self["day"][rows] == self["day"][t])))


def check_links(k: Links) -> dict[str, int]:
    """Check every rule of the ref column; return how many entries of each link there are."""
    ref, delta, kind, cause, record = k["ref"], k["delta"], k["kind"], k["cause"], k["record"]
    rows = np.arange(k.n)
    linked = ref >= 0
    assert np.all((ref >= -1) & (ref < rows)), "a ref points to an earlier row, or is -1"
    seen: dict[str, int] = {}
    checked = np.zeros(k.n, dtype=bool)

    def link(name: str, sel: np.ndarray, every: bool = True) -> np.ndarray:
        """The rows `sel` of one link: each has a ref (if `every`); returns those that do."""
        checked[sel] = True
        if every:
            assert np.all(linked[sel]), f"{name}: an entry without ref"
        sel = sel[linked[sel]]
        seen[name] = len(sel)
        return sel

    # A deduction reversed on expiry or by audit: every row of the reversal (its score
    # row, and the grade change it causes) refers to the deduction's score row.
    for c in ("mark_expiry", "audit_reversal"):
        for what in ("score", "grade"):
            sel = link(f"{c} {what}", k.rows(what, c))
            t = ref[sel]
            assert k.same_holder(sel) and np.all(kind[t] == "score")
            assert np.all(k.is_behaviour(t)) and np.all(delta[t] < 0)
            if what == "score":
                assert np.array_equal(delta[sel], -delta[t]), f"{c}: undoes the deduction"
            if c == "audit_reversal":
                assert np.all(record[t] == "insider") and np.all(record[sel] == "insider")
            else:
                assert np.array_equal(record[sel], record[t])
    # The court list: a delisting refers to the listing of its holder, a legal
    # representative's listing to the firm's.
    sel = link("delisting", k.rows("list", *DELISTINGS))
    t = ref[sel]
    assert k.same_holder(sel) and np.all(kind[t] == "list") and np.all(delta[t] == 1)
    assert np.all(delta[sel] == -1) and np.array_equal(record[sel], record[t])
    assert np.all(np.isin(cause[t], ["court_listing", "legal_rep_of_listed_firm"]))
    assert np.all((k["entity"][sel] == "person") | (cause[t] == "court_listing"))
    sel = link("legal rep listing", k.rows("list", "legal_rep_of_listed_firm"))
    t = ref[sel]
    assert k.represents(sel) and np.all((kind[t] == "list") & (cause[t] == "court_listing"))
    assert np.array_equal(record[sel], record[t]) and np.all(delta[t] == 1)
    # The listing deduction refers to the listing; its give-back to the deduction, on the
    # day a correction or appeal ends that listing.
    for what in ("score", "grade"):
        sel = link(f"listing deduction {what}", k.rows(what, *LISTINGS))
        t = ref[sel]
        assert k.same_holder(sel) and np.all((kind[t] == "list") & (delta[t] == 1))
        assert np.array_equal(cause[sel], cause[t]), "a deduction has its listing's cause"
        assert np.all(k["day"][sel] == k["day"][t]) and np.array_equal(record[sel], record[t])
        sel = link(f"give-back {what}", k.rows(what, *GIVE_BACKS))
        t = ref[sel]
        assert k.same_holder(sel) and np.all((kind[t] == "score")
                                             & np.isin(cause[t], LISTINGS))
        if what == "score":
            assert np.array_equal(delta[sel], -delta[t]) and np.all(record[t] == "false")
            lifted = {(int(r), c) for r, c in zip(ref[k.rows("list", *GIVE_BACKS)],
                                                  cause[k.rows("list", *GIVE_BACKS)],
                                                  strict=True)}
            assert all((int(ref[x]), cause[i]) in lifted for i, x in zip(sel, t, strict=True))
    # A grade cap's end refers to the grade change the cap's records made: the person's
    # latest cap row, unless that belongs to an earlier cap (the cap changed no grade).
    caps = set(k.s.points.instant_grade)
    sel = link("cap end", k.rows("grade", "instant_grade_expiry"), every=False)
    is_cap = (kind == "grade") & np.isin(cause, list(caps)) & (delta > 0)
    for i in k.rows("grade", "instant_grade_expiry"):
        before = np.flatnonzero(is_cap[:i] & (k["id"][:i] == k["id"][i])
                                & (k["entity"][:i] == "person"))
        latest = before[-1] if len(before) else -1
        if ref[i] >= 0:
            assert ref[i] == latest, "a cap's end refers to the person's latest cap row"
        else:
            assert latest < 0 or k["day"][latest] < k["day"][i] - k.s.points.instant_grade_days
    assert k.same_holder(sel)
    # Firm lists: a display expiry refers to its item, within the item's display range;
    # a legal representative's blacklist row to the firm's row that moved the firm.
    sel = link("display expiry", k.rows("blacklist", "display_expiry", entity="firm"))
    t = ref[sel]
    assert k.same_holder(sel) and np.all((kind[t] == "blacklist") & (delta[t] == 1))
    assert np.all(k.is_behaviour(t)) and np.array_equal(record[sel], record[t])
    fl = k.s.firm_lists
    for i, j in zip(sel, t, strict=True):
        lo, hi = fl.display_days[fl.severity[cause[j]]]
        assert lo <= k["day"][i] - k["day"][j] <= hi
    sel = link("legal rep blacklist", k.rows("blacklist", "legal_rep_of_blacklisted_firm"))
    t = ref[sel]
    assert k.represents(sel) and np.all(kind[t] == "blacklist")
    assert np.all((delta[sel] > 0) == (delta[t] > 0))
    assert np.all((delta[sel] > 0) | (cause[t] == "display_expiry"))
    # Nothing else refers to anything (warnings, marks, refreshes, ratings, new items).
    assert not np.any(linked[~checked]), sorted(set(zip(kind[~checked & linked],
                                                        cause[~checked & linked],
                                                        strict=True)))
    # No entry is ended twice by entries of one kind, nor gets two deductions for one
    # listing; an ending entry ends an entry of its own kind.
    ending = np.array([(a, b) in ENDINGS for a, b in zip(kind, cause, strict=True)])
    assert np.all(kind[ref[ending & linked]] == kind[ending & linked])
    for group in (ending & linked, np.isin(cause, LISTINGS) & linked):
        for what in set(kind[group]):
            referred = ref[group & (kind == what)]
            assert len(np.unique(referred)) == len(referred), f"referred twice by {what}"
    return seen


def _run(simulate, tmp_path, name: str):
    preset, overrides, people, days = RUNS[name]
    run = simulate(tmp_path / name, preset, overrides, people=people, days=days, seed=3)
    firms = pq.read_table(run.path / "firms.parquet", columns=["legal_rep"])
    return Links(pq.read_table(run.path / "ledger.parquet"),
                 firms.column("legal_rep").to_numpy(), run.sim.scenario)


# Links each run must show (at least one entry of each).
EXPECTED = {
    "rongcheng-expiry": {"mark_expiry score", "mark_expiry grade", "delisting",
                         "legal rep listing",
                         "listing deduction score", "give-back score", "cap end"},
    "court-blacklist": {"delisting", "legal rep listing"},
    "credit-china": {"display expiry", "legal rep blacklist"},
    "nosedive": set(),
    "sesame": {"delisting", "legal rep listing"},
    "safeguarded": {"mark_expiry score", "delisting", "listing deduction score"},
}


@pytest.mark.parametrize("name", list(RUNS))
def test_every_link_names_the_entry_it_ends(name, simulate, tmp_path):
    seen = check_links(_run(simulate, tmp_path, name))
    assert {k for k, v in seen.items() if v} >= EXPECTED[name], seen
    if name == "nosedive":  # ratings end nothing
        assert not any(seen.values())


def test_extended_listings_end_with_a_link_to_their_listing(simulate, tmp_path):
    """A term extended by a year ends more than a year after its listing: lookup could
    only guess which listing such a term end ended; the ref says."""
    k = _run(simulate, tmp_path, "court-blacklist")
    ends = k.rows("list", "delisting_expiry")
    held = k["day"][ends] - k["day"][k["ref"][ends]]
    term = k.s.court_list.term_days
    assert np.all((held == term) | (held == term + 365))
    assert np.count_nonzero(held == term + 365) > 0


def test_audits_reverse_the_edit_they_caught_across_row_groups(tmp_path):
    """Insiders' edits reversed by audit, and the other edits and deductions by expiry,
    with the ledger flushed every few dozen rows: row numbers run on across flushes."""
    s = load_scenario("rongcheng", [*COURT, *AUDITED], people=3000, days=60, seed=3)
    sim = Simulation(s, ledger_path=tmp_path / "ledger.parquet")
    sim.ledger.flush_rows = 40
    sim.run()
    f = pq.ParquetFile(tmp_path / "ledger.parquet")
    assert f.metadata.num_row_groups > 5
    k = Links(f.read(), sim.firms.legal_rep, s)
    seen = check_links(k)
    assert min(seen[f"{c} {w}"] for c in ("audit_reversal", "mark_expiry")
               for w in ("score", "grade")) > 0
    assert sum(r["audit_catches"] for r in sim.rows) == seen["audit_reversal score"]
    assert sum(r["marks_expired"] for r in sim.rows) >= seen["mark_expiry score"]
    # An audit reverses the edit after audit_days; an expiry after expiry_days.
    for cause, lag in (("audit_reversal", 5), ("mark_expiry", 25)):
        sel = k.rows("score", cause)
        assert np.all(k["day"][sel] - k["day"][k["ref"][sel]] == lag)


def test_append_returns_the_row_numbers_the_file_holds(tmp_path):
    ledger = Ledger(tmp_path / "ledger.parquet", [], [], flush_rows=4)
    firsts = []
    for day in range(5):
        firsts.append(ledger.append(day=day, id=np.arange(3), delta=day,
                                    ref=firsts[-1] if firsts else -1))
        ledger.flush()
    ledger.close()
    t = pq.read_table(tmp_path / "ledger.parquet")
    assert firsts == [0, 3, 6, 9, 12] and t.num_rows == 15
    ref = t.column("ref").to_numpy()
    assert ref[0] == -1 and all(ref[firsts[i]] == firsts[i - 1] for i in range(1, 5))
    assert list(t.column("day").to_numpy()[firsts]) == list(range(5))


def test_a_caps_end_refers_to_the_grade_change_its_records_made():
    """A cap that changes no grade when it comes (the score's grade is as low) leaves its
    end without a link; a cap that lowers the grade, or that a later cap extends, ends
    with a link to that grade change."""
    s = load_scenario("rongcheng", ["points.instant_grade_days=10"], people=300, days=60)
    sim = Simulation(s)
    points, ledger = sim["points"], sim.ledger
    person = int(np.flatnonzero(sim.people.age != CHILD)[0])
    capped = GRADES.index(s.points.instant_grade["drunk_driving"])

    def record(day: int, delta: int, cap: int = -1) -> None:
        one = np.ones(1, dtype=np.int64)
        points.apply(ledger, day, np.array([person], np.int32), delta * one, cap * one,
                     0 * one, 0 * one, R_TRUE * one, 0 * one)

    def grade_rows() -> list[tuple[int, int, int, int]]:  # (row, day, grade, ref)
        c = ledger.cols
        rows = np.flatnonzero((c["kind"][: ledger.n] == K_GRADE) & (c["id"][: ledger.n]
                                                                     == person))
        return [(int(i), int(c["day"][i]), int(c["value"][i]), int(c["ref"][i]))
                for i in rows]

    record(0, -250)  # 750: grade C by the score
    record(1, 0, capped)  # a cap at C: no grade change
    record(2, +250)  # 1000, held at C by the cap
    for day in range(3, 12):
        points.expire_caps(Day(day, ledger.n))
    (_, _, c0, r0), (end, end_day, back, ref) = grade_rows()
    assert (c0, r0) == (capped, -1) and (end_day, back, ref) == (11, GRADES.index("A"), -1)
    record(20, 0, capped)  # lowers the grade: A -> C
    record(25, 0, capped)  # extends the cap to day 35, no grade change
    for day in range(21, 40):
        points.expire_caps(Day(day, ledger.n))
    *_, (cap_row, cap_day, c1, _), (_, end_day, _, ref) = grade_rows()
    assert (cap_day, c1) == (20, capped) and (end_day, ref) == (35, cap_row)
    assert points.cap_rows == {}
