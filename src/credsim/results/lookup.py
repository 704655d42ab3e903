"""Record lookup: one synthetic person's or firm's record in a run folder.

`lookup(run_dir, key)` returns the record the way a public credit portal would
show it (score, grade, composite score and band, peer rating, court list,
firm black and red lists, restrictions in force) and, unlike any real portal,
the full explanation: every ledger entry with its rule, channel and delta,
whether the record behind it was true, false, an insider edit or certified by
colluders, and what ended it where the ledger shows that (a delisting by
payment, correction, appeal or expiry; a reversed deduction; an instant grade
cap's end; the end of a firm item's display period). `render(record, console)`
prints it with Rich. Each system the run ran explains the rows it wrote
(Module.explain, in src/credsim/systems/<name>/explain.py); this module reads
the record and the rows and renders them.

`key` is a person id (digits only) or a Unified Social Credit Code (any
18-character argument, checked with `validate_uscc`). Every query filters in
DuckDB, so no table is loaded whole.

What ended an entry comes from the ledger's links: a delisting, a reversed
deduction, a cap's end, a display expiry each carries in `ref` the row of the
entry it ends, and a legal representative's listing or blacklist row the row of
the firm's that caused it (docs/outputs.md).
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from credsim.conditions import NONE_DOMAIN, Evaluation, domain_code, standings_of
from credsim.errors import InputError
from credsim.modules.base import Explaining, Instance
from credsim.modules.plan import module_instances
from credsim.population.firms import validate_uscc
from credsim.population.people import SCHOOLING_STATES
from credsim.results.query import connect, ident
from credsim.results.run_dir import open_run, reading
from credsim.scenario.model import (
    DOMAINS,
    GRADES,
    Scenario,
    parse_condition,
    scenario_standings,
)

RECORD_LABELS = {"true": "true", "false": "FALSE", "insider": "INSIDER EDIT",
                 "collusion": "COLLUSION", "none": "-"}
# Records that count in the held state only, never in the true one.
UNTRUE = ("false", "insider", "collusion")
BLACKLIST_REP = "legal_rep_of_blacklisted_firm"
_EXCLUDED = "IOZSV"


# ---------------------------------------------------------------- plain data


@dataclass
class LedgerEntry:
    """One ledger row, with what lookup could tell about it."""

    day: int
    # score | grade | list | composite | mark | rating | warning | blacklist
    kind: str
    cause: str  # the rule: a behaviour, or court_listing, delisting_payment, ...
    channel: str  # observation channel; '-' for listings, delistings, cap expiries
    record: str  # true | false | insider | collusion | none
    delta: int
    value: int
    firm: int | None = None  # a legal representative's list row: the firm whose case it is
    ended_day: int | None = None  # the day what this entry started ended (or was reversed)
    ended_by: str | None = None  # the ledger cause that ended it
    note: str = ""  # plain-language explanation
    true_delta: int = 0  # score and warning rows: the change to the score without false records
    row: int = -1  # the entry's row number in ledger.parquet
    ref: int = -1  # the row of the entry it ends, reverses or expires (or its firm's); -1: none
    # Grade rows: the names of their system's grades (a further points system's rows have
    # kinds named after it: province_grade).
    grades: tuple[str, ...] = field(default=GRADES, repr=False)

    @property
    def change(self) -> str:
        kind = self.kind.rpartition("_")[2]  # province_score: a score row of province
        if kind == "score":
            return f"{self.delta:+d} -> {self.value}"
        if kind == "grade":
            return (f"{_grade(self.value - self.delta, self.grades)} -> "
                    f"{_grade(self.value, self.grades)}")
        if self.kind == "composite":
            return f"{self.delta:+d} -> {self.value}"
        if self.kind == "mark":  # hundredths of log-odds; value: the score when it arrived
            return f"{self.delta / 100:+.2f} log-odds"
        if self.kind == "rating":  # hundredths of a star
            return f"{self.delta / 100:+.1f} -> {self.value / 100:.1f} stars"
        if kind == "warning":
            return f"warning (score {self.value})"
        if self.kind == "blacklist":
            if self.cause == BLACKLIST_REP:
                return f"{self.delta:+d} firm ({self.value} blacklisted)"
            return f"{'+1 item' if self.delta > 0 else '-1 item'} ({self.value} shown)"
        if self.kind == "life":  # value: the mother (a birth), the age in days (a death)
            return (f"born (mother: person {self.value})" if self.delta > 0
                    else f"died aged {self.value / 365.25:.1f}")
        if self.kind == "union":  # a woman's row; value: her partner
            return (f"partnered with person {self.value}" if self.delta > 0
                    else f"split from person {self.value}")
        if self.kind == "school":  # value: the school state
            state = dict(enumerate(SCHOOLING_STATES)).get(self.value, str(self.value))
            return (f"entered school: {state}" if self.cause == "school_entry"
                    else f"refused a place: {state}")
        what = "listed" if self.delta > 0 else "delisted"
        return f"{what} ({self.value} active)"


@dataclass
class RunInfo:
    path: str
    scenario_name: str
    people: int
    firms: int
    days: int
    has_points: bool
    has_court: bool
    has_composite: bool = False
    has_rating: bool = False
    has_firm_lists: bool = False


@dataclass
class Relative:
    id: int
    relation: str  # parent | child
    age_band: str
    school: str
    grade: str | None
    listings: int | None


@dataclass
class FirmRef:
    id: int
    uscc: str
    sector: str
    listed: int
    blacklisted: bool | None = None  # None: no firm lists in the run


@dataclass
class Restriction:
    """A gate whose condition holds for the person's final state."""

    gate: str
    provider: str
    domain: str
    condition: str
    effect: str
    wrongful: bool  # would not hold without false records (ratings: without status bias)
    trigger_domain: str | None  # domain of the record behind it ('court' for listings)
    applies: bool  # False when domain separation holds it back
    note: str = ""


@dataclass
class GateUse:
    """Applications of one gate to the person (or to their child) in sanctions.parquet."""

    person: int  # whom the rows are about (a child for the school gate)
    gate: str
    effect: str
    gate_domain: str
    trigger_domains: str
    applications: int
    wrongful: int
    cross_context: int  # applications outside the triggering domain
    first_day: int
    last_day: int


@dataclass
class CompositeScore:
    """A person's composite score (Sesame, Honest Shanghai, City Brain)."""

    participant: bool
    initial: int | None  # None for those who take no part
    score: int | None
    score_true: int | None
    band: str | None  # the band the score is in; None without bands or participation
    band_true: str | None
    initial_band: str | None
    low: int
    high: int
    transparency: float = 1.0  # 1 = weights published, 0 = black box


@dataclass
class RatingScore:
    """A person's peer rating (Nosedive); None values for children, who are not rated."""

    rating: float | None  # the running mean gates read
    rating_true: float | None  # the same without status bias
    shown: float | None  # to one decimal, as the app shows it
    initial: float


@dataclass
class PersonRecord:
    run: RunInfo
    id: int
    age_band: str
    region: int
    urban: bool
    group: int
    household: int
    school: str
    parents: list[Relative]
    children: list[Relative]
    initial_score: int | None
    score: int | None
    score_true: int | None
    grade: str | None
    grade_true: str | None
    listings: int | None
    listings_false: int | None
    ever_listed: bool | None
    sanctioned: bool
    sanctioned_wrongful: bool
    restrictions: list[Restriction]
    perks: list[Restriction]
    gate_uses: list[GateUse]
    firms: list[FirmRef]
    ledger: list[LedgerEntry]
    composite: CompositeScore | None = None  # None: no composite score in the run
    rating: RatingScore | None = None  # None: no peer rating in the run
    blacklisted_firms: int | None = None  # None: no firm lists in the run
    blacklisted_firms_false: int | None = None
    kind: str = field(default="person", init=False)

    @property
    def score_deltas(self) -> int:
        return sum(e.delta for e in self.ledger if e.kind == "score")

    @property
    def true_score_deltas(self) -> int:
        """Changes of the score without false records. Mostly the deltas of true records, but
        warnings differ: a false record can use up the held score's warning, so a later true
        record is deducted from the held score and is only a warning on the true one."""
        return sum(e.true_delta for e in self.ledger if e.kind in ("score", "warning"))

    @property
    def composite_deltas(self) -> int:
        return sum(e.delta for e in self.ledger if e.kind == "composite")

    @property
    def rating_deltas(self) -> int:
        """Changes of the shown rating, in hundredths of a star."""
        return sum(e.delta for e in self.ledger if e.kind == "rating")


@dataclass
class FirmRecord:
    run: RunInfo
    id: int
    uscc: str
    sector: str
    region: int
    listed: int
    listed_false: int  # active listings resting on a false case (from the ledger)
    legal_rep: int
    legal_rep_grade: str | None
    legal_rep_listings: int | None
    legal_rep_sanctioned: bool
    ledger: list[LedgerEntry]
    items_shown: int | None = None  # firm lists only (None without them)
    items_false: int | None = None  # of the items still shown, false ones (from the ledger)
    blacklisted: bool | None = None
    blacklisted_true: bool | None = None
    red_listed: bool | None = None
    legal_rep_blacklisted_firms: int | None = None
    kind: str = field(default="firm", init=False)


Record = PersonRecord | FirmRecord


# ---------------------------------------------------------------- lookup


def parse_key(key: str) -> tuple[str, int | str]:
    """('person', id) for digits only, ('firm', USCC) for a valid 18-character code.

    An 18-character argument is always read as a USCC, even if it is all digits (no
    person id has 18 digits). Lower-case letters are accepted and upper-cased.
    """
    k = key.strip()
    if len(k) == 18:
        code = k.upper()
        problem = validate_uscc(code)
        if problem is not None:
            raise InputError(f"{_show(key)} is not a valid USCC: "
                             f"{_explain_uscc(code, problem)}")
        return "firm", code
    if k.isascii() and k.isdigit():
        if len(k.lstrip("0")) > 9:  # run.people is at most 200 million
            raise InputError(f"person id {_show(k)} is out of range: ids have at most 9 digits")
        return "person", int(k)
    if not k:
        shape = "empty"
    elif k[0] in "+-" and k[1:].isascii() and k[1:].isdigit():
        shape = "person ids are whole numbers from 0, written without a sign"
    else:
        shape = _explain_uscc(k.upper(), validate_uscc(k.upper()) or "")
    raise InputError(
        f"{_show(key)} is neither a person id nor a USCC ({shape}); give a person id "
        "(digits only, e.g. 1234) or an 18-character Unified Social Credit Code"
    )


def _show(key: str) -> str:
    return repr(key if len(key) <= 40 else key[:40] + "...")


def _explain_uscc(code: str, problem: str) -> str:
    bad = sorted({c for c in code if c in _EXCLUDED})
    if bad and "alphabet" in problem:
        return f"{problem} (a USCC never uses the letters I, O, Z, S or V)"
    return problem


def lookup(run_dir: Path, key: str) -> Record:
    """The record of a person (key: id) or a firm (key: USCC) in a run folder."""
    run_dir = Path(run_dir)
    manifest = open_run(run_dir)
    what, value = parse_key(key)
    try:
        scenario = Scenario.model_validate(manifest["scenario"])
    except (KeyError, ValidationError) as exc:
        raise InputError(f"{run_dir / 'manifest.json'}: unreadable scenario ({exc})") from None
    with reading(run_dir):
        return _lookup(run_dir, manifest, scenario, what, value)


def _lookup(run_dir: Path, manifest: dict, scenario: Scenario, what: str,
            value: str) -> Record:
    con = connect(run_dir)
    try:
        people_cols = _columns(con, "people")
        run = RunInfo(
            path=str(run_dir), scenario_name=str(manifest.get("scenario_name", "")),
            people=int(manifest["people"]), firms=int(manifest["firms"]),
            days=int(manifest["days"]), has_points="score" in people_cols,
            has_court="listings" in people_cols, has_composite="composite" in people_cols,
            has_rating="rating" in people_cols,
            has_firm_lists="blacklisted_firms" in people_cols,
        )
        if what == "person":
            value = int(value)
            if value >= run.people:
                raise InputError(
                    f"person id {value} is out of range: this run has {run.people:,} people "
                    f"(ids 0 to {run.people - 1})"
                )
            return _person(con, run_dir, run, scenario, value)
        row = _one(con, "SELECT id FROM firms WHERE uscc = ?", [value])
        if row is None:
            raise InputError(
                f"USCC {value} is well-formed but no firm in this run has it "
                f"(the run has {run.firms:,} firms; list some with "
                f"credsim query {run_dir} \"SELECT uscc FROM firms LIMIT 5\")"
            )
        return _firm(con, run_dir, run, scenario, int(row["id"]))
    finally:
        con.close()


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {r[0] for r in con.execute(f"DESCRIBE {ident(table)}").fetchall()}


def _one(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> dict | None:
    rel = con.execute(sql, params)
    row = rel.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in rel.description], row, strict=True))


def _all(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> list[dict]:
    rel = con.execute(sql, params)
    names = [d[0] for d in rel.description]
    return [dict(zip(names, r, strict=True)) for r in rel.fetchall()]


def _ledger(con: duckdb.DuckDBPyConnection, run_dir: Path, entity: str,
            ids: list[int]) -> list[dict]:
    """Ledger rows of some persons or firms, in the order they were written."""
    if not ids:
        return []
    path = str((run_dir / "ledger.parquet").resolve())
    marks = ", ".join("?" for _ in ids)
    return _all(
        con,
        "SELECT id, day, kind, cause, channel, record, delta, value, ref, "
        "file_row_number AS row FROM read_parquet(?, file_row_number = true) "
        f"WHERE entity = ? AND id IN ({marks}) ORDER BY file_row_number",
        [path, entity, *ids],
    )


def _entries(rows: list[dict], firm: bool = False,
             grades: dict[str, tuple[str, ...]] | None = None) -> list[LedgerEntry]:
    """Entries of ledger rows; `firm`: rows of a person's firms, each with its firm's id;
    `grades`: the grade names of each grade kind (by default AAA..D)."""
    grades = grades or {}
    return [
        LedgerEntry(int(r["day"]), r["kind"], r["cause"], r["channel"], r["record"],
                    int(r["delta"]), int(r["value"]), firm=int(r["id"]) if firm else None,
                    row=int(r["row"]), ref=int(r["ref"]),
                    grades=grades.get(r["kind"], GRADES))
        for r in rows
    ]


def _graded(s: Scenario) -> dict[str, Instance]:
    """The instances `s` runs that lend a grade standing, by the standing's name in
    conditions (`grade`, `province.grade`)."""
    return {inst.standing("grade"): inst for inst in module_instances(s)
            if "grade" in inst.cls.standings_for(inst.params)}


def _grade_kinds(s: Scenario) -> dict[str, tuple[str, ...]]:
    """The grade names of each graded system's grade rows, by ledger kind."""
    return {inst.column("grade"): inst.cls.standings_for(inst.params)["grade"].names
            for inst in _graded(s).values()}


def _person(con, run_dir: Path, run: RunInfo, s: Scenario, pid: int) -> PersonRecord:
    p = _one(con, "SELECT * FROM people WHERE id = ?", [pid])
    if p is None:  # the manifest promised it
        raise InputError(f"{run_dir}: people.parquet has no row for person {pid}")
    household = int(p["household"])
    # Household members have consecutive ids: the household filter prunes row groups.
    cols = ", ".join(["id", "age_band", "school", "parent1", "parent2"]
                     + [c for c in ("grade", "listings") if c in p])
    kin = _all(
        con,
        f"SELECT {cols} FROM people WHERE household = ? AND (id IN (?, ?) "
        "OR parent1 = ? OR parent2 = ?) ORDER BY id",
        [household, int(p["parent1"]), int(p["parent2"]), pid, pid],
    )
    parents = [_relative(r, "parent") for r in kin if r["id"] in (p["parent1"], p["parent2"])]
    children = [_relative(r, "child") for r in kin
                if pid in (r["parent1"], r["parent2"]) and r["id"] != pid]
    black = ", blacklisted" if run.has_firm_lists else ""
    firms = [
        FirmRef(int(r["id"]), r["uscc"], r["sector"], int(r["listed"]),
                bool(r["blacklisted"]) if run.has_firm_lists else None)
        for r in _all(con, f"SELECT id, uscc, sector, listed{black} FROM firms "
                      "WHERE legal_rep = ? ORDER BY id", [pid])
    ]
    entries = _entries(_ledger(con, run_dir, "person", [pid]), grades=_grade_kinds(s))
    firm_entries = _entries(_ledger(con, run_dir, "firm", [f.id for f in firms]), firm=True)
    _explain(entries, s, run.days, firm_entries=firm_entries,
             firm_names={f.id: f.uscc for f in firms})

    uses = [
        GateUse(int(r["id"]), r["gate"], r["effect"], r["gate_domain"], r["triggers"],
                int(r["n"]), int(r["wrongful"]), int(r["cross"]), int(r["first"]),
                int(r["last"]))
        for r in _all(
            con,
            "SELECT id, gate, effect, any_value(gate_domain) AS gate_domain, "
            "string_agg(DISTINCT trigger_domain, ', ' ORDER BY trigger_domain) AS triggers, "
            "count(*) AS n, count(*) FILTER (WHERE wrongful) AS wrongful, "
            "count(*) FILTER (WHERE gate_domain <> trigger_domain) AS cross, "
            "min(day) AS first, max(day) AS last FROM sanctions "
            f"WHERE id IN ({', '.join('?' for _ in range(1 + len(children)))}) "
            "GROUP BY id, gate, effect ORDER BY id <> ?, first, gate",
            [pid, *[c.id for c in children], pid],
        )
    ]
    adult = p["age_band"] != "child"
    restrictions, perks = _gates(p, s, entries, children) if adult else ([], [])
    composite = rating = None
    if run.has_composite:
        c = s.composite
        part = bool(p["composite_participant"])
        v, vt, v0 = (_int(p[k]) if part else None
                     for k in ("composite", "composite_true", "composite_initial"))
        composite = CompositeScore(part, v0, v, vt, _band(v, s), _band(vt, s), _band(v0, s),
                                   c.low, c.high, c.transparency)
    if run.has_rating:
        held = _float(p["rating"])  # NaN for children, whose shown rating is stored as 0
        rating = RatingScore(held, _float(p["rating_true"]),
                             None if held is None else _float(p["rating_shown"]),
                             s.rating.initial)
    return PersonRecord(
        run=run, id=pid, age_band=p["age_band"], region=int(p["region"]),
        urban=bool(p["urban"]), group=int(p["group"]), household=household,
        school=p["school"], parents=parents, children=children,
        initial_score=s.points.initial if run.has_points else None,
        score=_int(p.get("score")), score_true=_int(p.get("score_true")),
        grade=p.get("grade"), grade_true=p.get("grade_true"),
        listings=_int(p.get("listings")), listings_false=_int(p.get("listings_false")),
        ever_listed=p.get("ever_listed"), sanctioned=bool(p["sanctioned"]),
        sanctioned_wrongful=bool(p["sanctioned_wrongful"]), restrictions=restrictions,
        perks=perks, gate_uses=uses, firms=firms, ledger=entries, composite=composite,
        rating=rating, blacklisted_firms=_int(p.get("blacklisted_firms")),
        blacklisted_firms_false=_int(p.get("blacklisted_firms_false")),
    )


def _int(v) -> int | None:
    return None if v is None else int(v)


def _float(v) -> float | None:
    """A float column's value; None for missing or NaN (children have no rating)."""
    return None if v is None or math.isnan(v) else float(v)


def _band(score: int | None, s: Scenario) -> str | None:
    """The published band a composite score is in (the highest band whose floor it reaches);
    'below NAME' under the lowest floor."""
    bands = sorted(s.composite.bands.items(), key=lambda kv: kv[1])
    if score is None or not bands:
        return None
    reached = [name for name, floor in bands if score >= floor]
    return reached[-1] if reached else f"below {bands[0][0]}"


def _relative(r: dict, relation: str) -> Relative:
    return Relative(int(r["id"]), relation, r["age_band"], r["school"], r.get("grade"),
                    _int(r.get("listings")))


def _firm(con, run_dir: Path, run: RunInfo, s: Scenario, fid: int) -> FirmRecord:
    f = _one(con, "SELECT * FROM firms WHERE id = ?", [fid])
    assert f is not None
    rep = int(f["legal_rep"])
    r = _one(con, "SELECT * FROM people WHERE id = ?", [rep]) or {}
    entries = _entries(_ledger(con, run_dir, "firm", [fid]))
    _explain(entries, s, run.days, entity="firm")

    def still_open(kind: str) -> int:
        return sum(1 for e in entries if e.kind == kind and e.delta > 0
                   and e.ended_day is None and e.record == "false")

    lists = run.has_firm_lists
    return FirmRecord(
        run=run, id=fid, uscc=f["uscc"], sector=f["sector"], region=int(f["region"]),
        listed=int(f["listed"]), listed_false=still_open("list"), legal_rep=rep,
        legal_rep_grade=r.get("grade"), legal_rep_listings=_int(r.get("listings")),
        legal_rep_sanctioned=bool(r.get("sanctioned", False)), ledger=entries,
        items_shown=int(f["items_shown"]) if lists else None,
        items_false=still_open("blacklist") if lists else None,
        blacklisted=bool(f["blacklisted"]) if lists else None,
        blacklisted_true=bool(f["blacklisted_true"]) if lists else None,
        red_listed=bool(f["red_listed"]) if lists else None,
        legal_rep_blacklisted_firms=_int(r.get("blacklisted_firms")),
    )


def _grade(g: int, grades: tuple[str, ...] = GRADES) -> str:
    return grades[g] if 0 <= g < len(grades) else f"grade {g}"


# ---------------------------------------------------------------- restrictions


def _gates(p: dict, s: Scenario, entries: list[LedgerEntry], children: list[Relative]
           ) -> tuple[list[Restriction], list[Restriction]]:
    """Gates whose condition holds for the final state: (sanctions, perks). Each condition is
    evaluated as the engine evaluates it (credsim.conditions), on the held state and on the
    state without false records, from the person's row."""
    restrictions, perks = [], []
    source = _PersonStandings(p, s, entries)
    standings = scenario_standings(s)
    plain = Evaluation(np.zeros(1, np.int64), source, standings)
    separated = Evaluation(np.zeros(1, np.int64), source, standings,
                           s.safeguards.domain_separation)
    for name, g in s.gates.items():
        cond = g.parsed if g.parsed is not None else parse_condition(g.condition, s)
        if not all(source.has(x) for x in standings_of(cond)):
            continue  # the system behind the condition does not run, or no value shows
        held, true = (bool(x[0]) for x in plain.meets(cond))
        if not held:
            continue
        sanction = g.effect != "perk"
        applies = bool(separated.meets(cond, domain_code(g.domain), sanction)[0][0])
        code = int(plain.trigger(cond)[0])
        trigger = DOMAINS[code] if code < len(DOMAINS) else None
        note = "; ".join(n for x in standings_of(cond) if (n := source.note(x)))
        item = Restriction(name, g.provider, g.domain, g.condition, g.effect,
                           wrongful=not true, trigger_domain=trigger, applies=applies,
                           note=note)
        if g.reaches_children:
            private = sum(c.school == "private" for c in children)
            lost = sum(c.school == "lost_private_place" for c in children)
            item.note = "; ".join(x for x in (item.note, (
                f"reaches children: {private} hold a private-school place, {lost} lost one"
                if children else "no children")) if x)
        (restrictions if sanction else perks).append(item)
    return restrictions, perks


class _PersonStandings:
    """A person's standings at the end of a run, read from their row of people.parquet
    and their ledger, as a conditions.Source (for the one person, id 0).

    Trigger domains as the engine keeps them: the domain of the last negative record for
    grades (points) and composite scores (marks); the fixed ones come from the
    declarations ('court' for listings, 'firm' for blacklistings, 'social' for ratings)."""

    def __init__(self, p: dict, s: Scenario, entries: list[LedgerEntry]) -> None:
        self.p, self.s, self.entries = p, s, entries
        self._values = self._read()

    def _read(self) -> dict[str, tuple[float, float]]:
        p, out = self.p, {}
        if "listings" in p:
            n = int(p["listings"] or 0)
            out["listed"] = n, n - int(p["listings_false"] or 0)
        if "blacklisted_firms" in p:
            n = int(p["blacklisted_firms"] or 0)
            out["blacklisted"] = n, n - int(p["blacklisted_firms_false"] or 0)
        for standing, inst in _graded(self.s).items():
            col = inst.column("grade")
            grades = list(inst.cls.standings_for(inst.params)["grade"].names)
            if p.get(col) in grades and p.get(f"{col}_true") in grades:
                out[standing] = grades.index(p[col]), grades.index(p[f"{col}_true"])
        if "composite_participant" in p:
            # -1: takes no part, and no score condition reaches them.
            part = bool(p["composite_participant"])
            out["score"] = ((int(p["composite"]), int(p["composite_true"])) if part
                            else (-1, -1))
        r, rt = _float(p.get("rating")), _float(p.get("rating_true"))
        if r is not None and rt is not None:  # children are not rated
            out["rating"] = r, rt
        return out

    def has(self, standing: str) -> bool:
        return standing in self._values

    def values(self, standing: str, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        held, true = self._values[standing]
        return np.array([held], np.float64), np.array([true], np.float64)

    def domains(self, standing: str, ids: np.ndarray) -> np.ndarray:
        graded = _graded(self.s)
        if standing in graded:
            d = _last_negative_domain(self.entries, self.s, graded[standing])
        else:
            d = {"score": _last_mark_domain}[standing](self.entries, self.s)
        return np.array([NONE_DOMAIN if d is None else domain_code(d)], np.uint8)

    def note(self, standing: str) -> str:
        """What a restriction on this standing shows of it."""
        held, true = self._values[standing]
        if standing == "blacklisted":
            false = held - true
            return f"legal rep. of {held} blacklisted firm(s)" + (
                f", {false} only on false items" if false else "")
        if standing == "score":
            return f"composite {held}" + ("" if held == true else
                                          f" (without false records {true})")
        if standing == "rating":
            # Gates read the running mean, not the rating rounded for display.
            return f"rating {held:.3f}; without status bias {true:.3f}"
        return ""


def _last_negative_domain(entries: list[LedgerEntry], s: Scenario, inst: Instance
                          ) -> str | None:
    """Domain of the last deduction or grade cap of points system `inst` visible in the
    ledger: the trigger of its grade gates. A cap that changed no grade leaves no ledger
    row, so it cannot be seen here."""
    caps = inst.params.instant_grade
    score, grade = inst.column("score"), inst.column("grade")
    last = None
    for e in entries:
        neg = e.kind == score and e.delta < 0
        cap = e.kind == grade and e.cause in caps
        if not (neg or cap):
            continue
        if e.cause in s.behaviours:
            last = s.behaviours[e.cause].domain
        elif e.cause in ("court_listing", "legal_rep_of_listed_firm"):
            last = "court"
    return last


def _last_mark_domain(entries: list[LedgerEntry], s: Scenario) -> str | None:
    """Domain of the last composite mark that lowered a dimension (the trigger of score
    gates). The sign comes from the scenario's marks: the ledger's delta is rounded."""
    c = s.composite
    last = None
    for e in entries:
        if (e.kind == "mark" and e.cause in s.behaviours
                and c.history_marks.get(e.cause, 0) + c.behaviour_marks.get(e.cause, 0) < 0):
            last = s.behaviours[e.cause].domain
    return last


# ---------------------------------------------------------------- explanation

def _explain(entries: list[LedgerEntry], s: Scenario, days: int,
             firm_entries: list[LedgerEntry] | None = None,
             firm_names: dict[int, str] | None = None, entity: str = "person") -> None:
    """Fill in each entry's note and what ended it: each module the run ran explains the
    rows it wrote (Module.explain), in build order. `firm_entries`: the rows of the firms
    a person represents (their `firm` set), which the person's legal-representative rows
    refer to."""
    by_row = {e.row: e for e in [*entries, *(firm_entries or [])]}
    for inst in module_instances(s):
        inst.cls.explain(entries, Explaining(s, days, by_row, firm_names or {}, entity, inst))


def link(entries: list[LedgerEntry], by_row: dict[int, LedgerEntry],
         causes: Collection[str]) -> None:
    """Each entry of a cause in `causes` (one that ends, reverses or expires the entry its
    `ref` points at, of its own kind) and the entry it ends point at each other through
    ended_day and ended_by (on the ending one: the day and cause of what it ended)."""
    for e in entries:
        target = by_row.get(e.ref)
        if target is None or e.kind != target.kind or e.cause not in causes:
            continue
        e.ended_day, e.ended_by = target.day, target.cause
        target.ended_day, target.ended_by = e.day, e.cause


def firm_name(fid: int, firm_names: dict[int, str]) -> str:
    """A represented firm as an explanation names it: its USCC and id."""
    return f"{firm_names.get(fid, '')} (id {fid})".lstrip()


# ---------------------------------------------------------------- rendering

WIDE = 110  # below this console width, tables drop columns and the ledger prints as lines


def render(record: Record, console: Console) -> None:
    """Print a record with Rich: the portal view first, then the full ledger."""
    if isinstance(record, FirmRecord):
        _render_firm(record, console)
    else:
        _render_person(record, console)


def _kv(rows: list[tuple[str, str]]) -> Table:
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold", no_wrap=True)
    t.add_column(overflow="fold")
    for k, v in rows:
        t.add_row(k, v)
    return t


def _run_line(run: RunInfo) -> str:
    return (f"run {escape(run.path)}: scenario {escape(run.scenario_name)}, "
            f"{run.people:,} people, {run.days} days; state at the end of day {run.days - 1}")


def _red(n: int) -> str:
    return f"[red]{n}[/]" if n else "0"


def _render_person(r: PersonRecord, con: Console) -> None:
    wide = con.width >= WIDE
    con.print(f"[bold]Person {r.id}[/] (synthetic)", highlight=False)
    con.print(_run_line(r.run), style="dim", highlight=False)
    rows = [
        ("age band", r.age_band),
        ("region", f"{r.region} ({'urban' if r.urban else 'rural'})"),
        ("group", str(r.group)),
        ("household", str(r.household)),
    ]
    if r.age_band == "child":
        rows.append(("school", r.school))
        rows.append(("parents", "; ".join(_relative_text(p) for p in r.parents) or "none"))
    elif r.children:
        rows.append(("children", "; ".join(_relative_text(c) for c in r.children)))
    if r.age_band == "child" and r.run.has_points:
        rows.append(("score", "not scored (children have no events)"))
    elif r.score is None:
        if r.composite is None and r.rating is None:  # else the score rows below say it
            rows.append(("score", "no points system in this run"))
    else:
        differs = " [red](differs: false records)[/]"
        rows.append(("score", f"{r.score} (true score {r.score_true})"
                     + ("" if r.score == r.score_true else differs)))
        rows.append(("grade", f"{r.grade} (true grade {r.grade_true})"
                     + ("" if r.grade == r.grade_true else differs)))
    rows += _composite_rows(r)
    if r.rating is not None:
        rows.append(("peer rating", _rating_text(r.rating)))
    if r.listings is None:
        rows.append(("court list", "no court list in this run"))
    else:
        if r.listings:
            lst = f"[bold red]LISTED[/]: {r.listings} active listing(s), " + (
                f"[red]{r.listings_false} resting on a false case[/]" if r.listings_false
                else "none resting on a false case")
        else:
            lst = "not listed"
        rows.append(("court list", lst + f"; ever listed: {'yes' if r.ever_listed else 'no'}"))
    if r.blacklisted_firms is not None:
        rows.append(("firm blacklist", _blacklist_text(r)))
    if r.sanctioned:
        st = "[bold red]sanctioned[/], " + (
            "[red]wrongful: would not be sanctioned without false records[/]"
            if r.sanctioned_wrongful else "on true records")
    else:
        st = "not sanctioned"
    rows.append(("sanction status", st))
    if r.firms:
        rows.append(("legal rep. of", "; ".join(
            f"{f.uscc} (firm {f.id}, {escape(f.sector)}{', LISTED' if f.listed else ''}"
            f"{', BLACKLISTED' if f.blacklisted else ''})" for f in r.firms)))
    con.print(_kv(rows), highlight=False)

    if r.age_band != "child":
        con.print()
        if r.restrictions:
            rated = any(x.condition.replace(" ", "").startswith("rating")
                        for x in r.restrictions)
            t = Table(title="Restrictions met now: sanction gates whose condition holds "
                      "(wrongful = would not hold without false records"
                      + (", for ratings without status bias)" if rated else ")"),
                      title_justify="left")
            cols = ["gate", "provider", "domain", "condition", "effect", "trigger",
                    "wrongful", "note"]
            if not wide:
                cols.remove("provider")
                cols.remove("trigger")
            for c in cols:
                t.add_column(c, overflow="fold", no_wrap=c in ("gate", "domain", "condition"))
            for x in r.restrictions:
                cells = {
                    "gate": escape(x.gate), "provider": escape(x.provider), "domain": x.domain,
                    "condition": escape(x.condition),
                    "effect": x.effect + ("" if x.applies else " (held back: domain separation)"),
                    "trigger": x.trigger_domain or "-",
                    "wrongful": "[red]yes[/]" if x.wrongful else "no", "note": escape(x.note),
                }
                t.add_row(*[cells[c] for c in cols])
            con.print(t)
        else:
            con.print("Restrictions met now: none")
        if r.perks:
            con.print("Perks qualified for: " + ", ".join(
                f"{escape(x.gate)} ({escape(x.condition)})" for x in r.perks), highlight=False)

    con.print()
    if r.gate_uses:
        t = Table(title="Gate applications during the run (sanctions.parquet)",
                  title_justify="left")
        others = any(u.person != r.id for u in r.gate_uses)
        cols = (["person"] if others else []) + ["gate", "effect", "domain", "trigger",
                                                 "times", "wrongful", "cross-context", "days"]
        if not wide:
            cols.remove("effect")
        for c in cols:
            t.add_column(c, overflow="fold", no_wrap=c in ("gate", "days"),
                         justify="right" if c in ("times", "wrongful", "cross-context") else "left")
        for u in r.gate_uses:
            cells = {
                "person": "self" if u.person == r.id else f"child {u.person}",
                "gate": escape(u.gate), "effect": u.effect, "domain": u.gate_domain,
                "trigger": u.trigger_domains, "times": str(u.applications),
                "wrongful": _red(u.wrongful), "cross-context": str(u.cross_context),
                "days": str(u.first_day) if u.first_day == u.last_day
                else f"{u.first_day}-{u.last_day}",
            }
            t.add_row(*[cells[c] for c in cols])
        con.print(t)
    else:
        con.print("Gate applications during the run: none")

    con.print()
    _render_ledger(r.ledger, con, f"Ledger of person {r.id}")
    checks = []  # (start, sum of ledger deltas, label, final value, its name)
    if r.initial_score is not None and r.score is not None and r.age_band != "child":
        checks += [
            (r.initial_score, r.score_deltas, "all score deltas", r.score, "score"),
            (r.initial_score, r.true_score_deltas, "true records only, warnings replayed",
             r.score_true, "true score"),
        ]
    c = r.composite
    if c is not None and c.participant:
        checks.append((c.initial, r.composite_deltas, "composite refreshes", c.score,
                       "composite"))
    for start, deltas, label, final, name in checks:
        total = start + deltas
        ok = "[green]matches[/]" if total == final else "[bold red]DOES NOT MATCH[/]"
        con.print(f"initial {start} {deltas:+d} ({label}) = {total}: {ok} {name} {final}",
                  highlight=False)
    g = r.rating
    if g is not None and g.shown is not None:  # the ledger logs the shown rating, in 1/100
        start = round(g.initial * 10) * 10
        total = start + r.rating_deltas
        ok = "[green]matches[/]" if total == round(g.shown * 100) else "[bold red]DOES NOT MATCH[/]"
        con.print(f"initial {start / 100:.1f} {r.rating_deltas / 100:+.1f} (shown-rating "
                  f"changes) = {total / 100:.1f}: {ok} shown rating {g.shown:.1f}",
                  highlight=False)
    for line in _legend(r.ledger, r.run):
        con.print(line, style="dim", highlight=False)


def _composite_rows(r: PersonRecord) -> list[tuple[str, str]]:
    c = r.composite
    if c is None:
        return []
    if r.age_band == "child":
        return [("composite score", "not scored (children take no part)")]
    if not c.participant:
        return [("composite score", "takes no part (not opted in): no composite score, and "
                 "no gate on the score reaches them")]
    differs = " [red](differs: false records, own or contacts')[/]"
    band = "" if c.band is None else f", band {escape(c.band)}"
    band_true = "" if c.band_true is None else f", band {escape(c.band_true)}"
    text = (f"{c.score}{band} (true {c.score_true}{band_true})"
            + ("" if c.score == c.score_true else differs))
    start = f"{c.initial}" + ("" if c.initial_band is None else f", band {escape(c.initial_band)}")
    rules = ("" if c.transparency >= 1 else
             "; rules not published: a black box to the person" if c.transparency <= 0 else
             "; rules partly published")
    return [("composite score", text),
            ("", f"initial {start}; scale {c.low}-{c.high}{rules}")]


def _rating_text(g: RatingScore) -> str:
    if g.rating is None or g.shown is None:
        return "not rated (children take no part)"
    text = (f"{g.shown:.1f} stars shown (running mean {g.rating:.3f}; without status bias "
            f"{g.rating_true:.3f}); initial {g.initial:.1f}")
    if g.rating_true is not None and round(g.rating_true, 1) != round(g.shown, 1):
        text += " [red](differs: status bias)[/]"
    return text


def _blacklist_text(r: PersonRecord) -> str:
    n, false = r.blacklisted_firms or 0, r.blacklisted_firms_false or 0
    if not n:
        return "not blacklisted" + ("" if r.firms else " (legal representative of no firm)")
    return (f"[bold red]BLACKLISTED[/]: legal representative of {n} blacklisted firm(s), "
            + (f"[red]{false} only on false items[/]" if false else "none only on false items"))


def _legend(entries: list[LedgerEntry], run: RunInfo) -> list[str]:
    """One line per kind of the newer ledger rows present, saying how to read its change."""
    kinds = {e.kind for e in entries}
    text = {
        "warning": "warning: warn before punishing replaced a small deduction; no points "
                   "taken, the score shown is the score then",
        "mark": "mark: a record entering the composite score, in log-odds of the history and "
                "behaviour dimensions; marks fade and show only at the next refresh",
        "composite": "composite: a change of the composite score at a refresh, in points",
        "rating": "rating: a change of the shown (one-decimal) peer rating, in stars; the "
                  "rating is a fading mean of the ratings received, weighted by the raters' "
                  "own ratings",
    }
    return [text[k] for k in ("warning", "mark", "composite", "rating") if k in kinds]


def _relative_text(p: Relative) -> str:
    bits = [p.age_band]
    if p.relation == "child":
        bits.append(f"school {p.school}")
    if p.grade is not None and p.age_band != "child":
        bits.append(f"grade {p.grade}")
    if p.listings:
        bits.append("LISTED")
    return f"person {p.id} ({', '.join(bits)})"


def _record_text(record: str) -> Text:
    return Text(RECORD_LABELS.get(record, record),
                style="bold red" if record in UNTRUE else "")


def _render_ledger(entries: list[LedgerEntry], con: Console, title: str) -> None:
    if not entries:
        con.print(f"{title}: no entries (nothing about them changed during the run)",
                  highlight=False)
        return
    n = len(entries)
    title = f"{title} ({n} {'entry' if n == 1 else 'entries'}, in the order written)"
    if con.width < WIDE:  # one line per entry, its explanation indented below
        con.print(title, style="italic", highlight=False)
        for e in entries:
            line = Text(f"day {e.day:>4}  {e.kind:<9}  {e.cause}  via {e.channel}  ")
            line.append_text(_record_text(e.record))
            line.append(f"  {e.change}")
            con.print(line, highlight=False)
            con.print(Padding(Text(e.note, style="dim"), (0, 0, 0, 11)), highlight=False)
        return
    t = Table(title=title, title_justify="left")
    for c, j in (("day", "right"), ("kind", "left"), ("rule (cause)", "left"),
                 ("channel", "left"), ("record", "left"), ("change", "right")):
        t.add_column(c, justify=j, no_wrap=True)
    t.add_column("what it did / what ended it", overflow="fold", min_width=30)
    for e in entries:
        t.add_row(str(e.day), *(escape(str(x)) for x in (e.kind, e.cause, e.channel)),
                  _record_text(e.record), escape(e.change), escape(e.note))
    con.print(t)


def _render_firm(r: FirmRecord, con: Console) -> None:
    con.print(f"[bold]Firm {r.uscc}[/] (synthetic; firm id {r.id})", highlight=False)
    con.print(_run_line(r.run), style="dim", highlight=False)
    if r.listed:
        lst = f"[bold red]LISTED[/]: {r.listed} active listing(s), " + (
            f"[red]{r.listed_false} resting on a false case[/]" if r.listed_false
            else "none resting on a false case")
    else:
        lst = "not listed" if r.run.has_court else "no court list in this run"
    state = []
    if r.legal_rep_grade is not None:
        state.append(f"grade {r.legal_rep_grade}")
    if r.legal_rep_listings:
        state.append("LISTED")
    if r.legal_rep_blacklisted_firms:
        state.append("BLACKLISTED")
    if r.legal_rep_sanctioned:
        state.append("sanctioned")
    rep = f"person {r.legal_rep}" + (f" ({', '.join(state)})" if state else "")
    rows = [
        ("USCC", r.uscc),
        ("sector", escape(r.sector)),
        ("region", str(r.region)),
        ("legal representative", rep),
        ("court list", lst),
    ]
    if r.items_shown is not None:
        rows.append(("public record", f"{r.items_shown} item(s) shown" + (
            f", [red]{r.items_false} of them false[/]" if r.items_false else "")))
        if r.blacklisted:
            black = "[bold red]BLACKLISTED[/] (shows a serious enough item), " + (
                "on true items" if r.blacklisted_true
                else "[red]wrongful: only on false items[/]")
        else:
            black = "not blacklisted"
        rows.append(("blacklist", black))
        rows.append(("red list", "RED-LISTED (a clean record long enough)" if r.red_listed
                     else "not red-listed"))
    con.print(_kv(rows), highlight=False)
    con.print()
    _render_ledger(r.ledger, con, f"Ledger of firm {r.uscc}")
    con.print("Firms are not scored: only list changes and public record items enter a "
              "firm's ledger.", style="dim")
    con.print(f"A firm's listing or blacklisting reaches its legal representative; their "
              f"record: credsim lookup {escape(r.run.path)} {r.legal_rep}", highlight=False)


__all__ = [
    "CompositeScore", "FirmRecord", "GateUse", "LedgerEntry", "PersonRecord", "RatingScore",
    "Record", "Restriction", "lookup", "parse_key", "render",
]
