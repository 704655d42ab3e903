"""Record lookup: one synthetic person's or firm's record in a run folder.

`lookup(run_dir, key)` returns the record the way a public credit portal would
show it (score, grade, lists, restrictions in force) and, unlike any real
portal, the full explanation: every ledger entry with its rule, channel and
delta, whether the record behind it was true, false or an insider edit, and
what ended it where the ledger shows that (a delisting by payment,
correction, appeal or expiry; a reversed deduction; an instant grade cap's
end). `render(record, console)` prints it with Rich.

`key` is a person id (digits only) or a Unified Social Credit Code (any
18-character argument, checked with `validate_uscc`). Every query filters in
DuckDB, so no table is loaded whole.

The ledger does not link a delisting to the listing it ends, nor a reversal
to the deduction it reverses; lookup pairs them by their rules (same record
flag, same firm, a term's or an expiry's exact length, earliest first) and
says so when several listings could have been the one that ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from credsim.errors import InputError
from credsim.population.firms import validate_uscc
from credsim.results.query import connect
from credsim.results.run_dir import open_run
from credsim.scenario.model import GRADES, Scenario, parse_condition

DELISTING_CAUSES = {
    "delisting_payment": "payment",
    "delisting_correction": "correction",
    "delisting_appeal": "appeal",
    "delisting_expiry": "end of term",
}
RECORD_LABELS = {"true": "true", "false": "FALSE", "insider": "INSIDER EDIT", "none": "-"}
_EXCLUDED = "IOZSV"


# ---------------------------------------------------------------- plain data


@dataclass
class LedgerEntry:
    """One ledger row, with what lookup could tell about it."""

    day: int
    kind: str  # score | grade | list
    cause: str  # the rule: a behaviour, or court_listing, delisting_payment, ...
    channel: str  # observation channel; '-' for listings, delistings, cap expiries
    record: str  # true | false | insider | none
    delta: int
    value: int
    firm: int | None = None  # a legal representative's list row: the firm whose case it is
    ended_day: int | None = None  # the day what this entry started ended (or was reversed)
    ended_by: str | None = None  # the ledger cause that ended it
    note: str = ""  # plain-language explanation

    @property
    def change(self) -> str:
        if self.kind == "score":
            return f"{self.delta:+d} -> {self.value}"
        if self.kind == "grade":
            return f"{_grade(self.value - self.delta)} -> {_grade(self.value)}"
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


@dataclass
class Restriction:
    """A gate whose condition holds for the person's final state."""

    gate: str
    provider: str
    domain: str
    condition: str
    effect: str
    wrongful: bool  # would not hold without false records
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
    kind: str = field(default="person", init=False)

    @property
    def score_deltas(self) -> int:
        return sum(e.delta for e in self.ledger if e.kind == "score")

    @property
    def true_score_deltas(self) -> int:
        return sum(e.delta for e in self.ledger if e.kind == "score" and e.record == "true")


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
    con = connect(run_dir)
    try:
        people_cols = _columns(con, "people")
        run = RunInfo(
            path=str(run_dir), scenario_name=str(manifest.get("scenario_name", "")),
            people=int(manifest["people"]), firms=int(manifest["firms"]),
            days=int(manifest["days"]), has_points="score" in people_cols,
            has_court="listings" in people_cols,
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
    except duckdb.Error as exc:
        raise InputError(f"{run_dir}: cannot read the run ({str(exc).splitlines()[0]})") from None
    finally:
        con.close()


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}


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
    path = str((run_dir / "ledger.parquet").resolve()).replace("'", "''")
    marks = ", ".join("?" for _ in ids)
    return _all(
        con,
        "SELECT id, day, kind, cause, channel, record, delta, value "
        f"FROM read_parquet('{path}', file_row_number = true) "
        f"WHERE entity = ? AND id IN ({marks}) ORDER BY file_row_number",
        [entity, *ids],
    )


def _entries(rows: list[dict]) -> list[LedgerEntry]:
    return [
        LedgerEntry(int(r["day"]), r["kind"], r["cause"], r["channel"], r["record"],
                    int(r["delta"]), int(r["value"]))
        for r in rows
    ]


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
    firms = [
        FirmRef(int(r["id"]), r["uscc"], r["sector"], int(r["listed"]))
        for r in _all(con, "SELECT id, uscc, sector, listed FROM firms WHERE legal_rep = ? "
                      "ORDER BY id", [pid])
    ]
    entries = _entries(_ledger(con, run_dir, "person", [pid]))
    firm_rows = _ledger(con, run_dir, "firm", [f.id for f in firms])
    _explain(entries, s, run.days, firm_rows=firm_rows,
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
        perks=perks, gate_uses=uses, firms=firms, ledger=entries,
    )


def _int(v) -> int | None:
    return None if v is None else int(v)


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
    open_false = sum(1 for e in entries
                     if e.kind == "list" and e.delta > 0 and e.ended_day is None
                     and e.record == "false")
    return FirmRecord(
        run=run, id=fid, uscc=f["uscc"], sector=f["sector"], region=int(f["region"]),
        listed=int(f["listed"]), listed_false=open_false, legal_rep=rep,
        legal_rep_grade=r.get("grade"), legal_rep_listings=_int(r.get("listings")),
        legal_rep_sanctioned=bool(r.get("sanctioned", False)), ledger=entries,
    )


def _grade(g: int) -> str:
    return GRADES[g] if 0 <= g < len(GRADES) else f"grade {g}"


# ---------------------------------------------------------------- restrictions


def _gates(p: dict, s: Scenario, entries: list[LedgerEntry], children: list[Relative]
           ) -> tuple[list[Restriction], list[Restriction]]:
    """Gates whose condition holds for the final state: (sanctions, perks)."""
    restrictions, perks = [], []
    listings = int(p.get("listings") or 0)
    true_listings = listings - int(p.get("listings_false") or 0)
    grade = GRADES.index(p["grade"]) if p.get("grade") in GRADES else None
    grade_true = GRADES.index(p["grade_true"]) if p.get("grade_true") in GRADES else None
    last_neg = _last_negative_domain(entries, s)
    separate = s.safeguards.domain_separation
    for name, g in s.gates.items():
        kind, k = parse_condition(g.condition)
        if kind == "listed":
            held, true, trigger = listings > 0, true_listings > 0, "court"
        elif grade is None:
            continue
        elif kind == "le":
            held, true, trigger = grade >= k, grade_true >= k, last_neg
        else:
            held, true, trigger = grade <= k, grade_true <= k, None
        if not held:
            continue
        sanction = g.effect != "perk"
        applies = not (sanction and separate and trigger != g.domain)
        item = Restriction(name, g.provider, g.domain, g.condition, g.effect,
                           wrongful=not true, trigger_domain=trigger, applies=applies)
        if g.reaches_children:
            private = sum(c.school == "private" for c in children)
            lost = sum(c.school == "lost_private_place" for c in children)
            item.note = (f"reaches children: {private} hold a private-school place, "
                         f"{lost} lost one") if children else "no children"
        (restrictions if sanction else perks).append(item)
    return restrictions, perks


def _last_negative_domain(entries: list[LedgerEntry], s: Scenario) -> str | None:
    """Domain of the last deduction or grade cap visible in the ledger (the trigger of grade
    gates). A cap that changed no grade leaves no ledger row, so it cannot be seen here."""
    last = None
    for e in entries:
        neg = e.kind == "score" and e.delta < 0
        cap = e.kind == "grade" and e.cause in s.points.instant_grade
        if not (neg or cap):
            continue
        if e.cause in s.behaviours:
            last = s.behaviours[e.cause].domain
        elif e.cause == "court_listing":
            last = "court"
    return last


# ---------------------------------------------------------------- explanation


def _explain(entries: list[LedgerEntry], s: Scenario, days: int,
             firm_rows: list[dict] | None = None, firm_names: dict[int, str] | None = None,
             entity: str = "person") -> None:
    """Fill in each entry's note and what ended it, pairing rows by the model's rules."""
    _pair_listings(entries, s, days, firm_rows or [], firm_names or {}, entity)
    _pair_listing_points(entries)
    _pair_reversals(entries, s, days)
    _pair_caps(entries, s, days)
    for e in entries:
        if e.note:
            continue
        if e.kind == "score":
            e.note = "deduction" if e.delta < 0 else "addition"
        elif e.kind == "grade":
            e.note = "grade follows the score"


def _pair_listings(entries: list[LedgerEntry], s: Scenario, days: int,
                   firm_rows: list[dict], firm_names: dict[int, str], entity: str) -> None:
    term = s.court_list.term_days
    used: set[int] = set()

    def firm_of(e: LedgerEntry) -> int | None:
        """The represented firm whose list row of the same day matches a person's row."""
        for i, r in enumerate(firm_rows):
            if (i not in used and r["kind"] == "list" and r["day"] == e.day
                    and r["record"] == e.record and (r["delta"] > 0) == (e.delta > 0)
                    and (e.delta > 0 or r["cause"] == e.cause)):
                used.add(i)
                return int(r["id"])
        return None

    open_: list[int] = []
    for i, e in enumerate(entries):
        if e.kind != "list":
            continue
        if e.delta > 0:
            if e.cause == "legal_rep_of_listed_firm":
                e.firm = firm_of(e)
                e.note = "listed as legal representative of listed firm " + (
                    f"{firm_names.get(e.firm, '')} (id {e.firm})".lstrip()
                    if e.firm is not None else "(not identified)")
            else:
                e.note = "put on the court list" + (" (own case)" if entity == "person" else "")
            open_.append(i)
            continue
        # A delisting: first see whether it comes from a represented firm's case.
        e.firm = firm_of(e) if firm_rows else None
        cands = [j for j in open_ if entries[j].record == e.record and entries[j].firm == e.firm]
        exact = [j for j in cands if entries[j].day + term == e.day]
        pick = (exact or cands or [None])[0]
        how = DELISTING_CAUSES.get(e.cause, e.cause)
        if pick is None:
            e.note = f"delisted ({how}); no matching listing found in the ledger"
            continue
        open_.remove(pick)
        lst = entries[pick]
        lst.ended_day, lst.ended_by = e.day, e.cause
        e.ended_day, e.ended_by = lst.day, lst.cause  # back-reference: what it ended
        lst.note += f"; delisted on day {e.day} ({how})"
        e.note = f"ends the listing of day {lst.day} ({how})"
        if len(cands) > 1 and not exact:
            lst.note += (f" [one of {len(cands)} concurrent {lst.record} listings; the "
                         "ledger does not say which ended, the earliest is shown]")
    for j in open_:
        entries[j].note += f"; still listed at the end of the run (day {days - 1})"


def _pair_listing_points(entries: list[LedgerEntry]) -> None:
    """Link each listing deduction to its listing, and each restoration to its deduction."""
    lists = [e for e in entries if e.kind == "list" and e.delta > 0]
    deductions = [e for e in entries if e.kind == "score" and e.cause == "court_listing"]
    taken: set[int] = set()
    for d in deductions:
        match = next((k for k, lst in enumerate(lists) if k not in taken
                      and lst.day == d.day and lst.record == d.record), None)
        if match is None:
            d.note = "listing deduction"
            continue
        taken.add(match)
        lst = lists[match]
        if lst.ended_by in ("delisting_correction", "delisting_appeal"):
            d.ended_day, d.ended_by = lst.ended_day, lst.ended_by
            d.note = (f"listing deduction; restored on day {lst.ended_day} "
                      f"({DELISTING_CAUSES[lst.ended_by]})")
        elif lst.ended_by is not None:
            d.note = (f"listing deduction; not restored when delisted on day {lst.ended_day} "
                      f"({DELISTING_CAUSES.get(lst.ended_by, lst.ended_by)})")
        else:
            d.note = "listing deduction; the listing is still in force"
    for e in entries:
        if e.kind == "score" and e.cause in ("delisting_correction", "delisting_appeal"):
            src = next((d for d in deductions if d.ended_day == e.day
                        and d.ended_by == e.cause and d.delta == -e.delta), None)
            e.note = ("restores the listing deduction"
                      + (f" of day {src.day}" if src is not None else "")
                      + f" ({DELISTING_CAUSES[e.cause]})")


def _pair_reversals(entries: list[LedgerEntry], s: Scenario, days: int) -> None:
    """Deductions reversed by mark expiry (safeguard) or by an audit of an insider edit."""
    expiry = s.safeguards.expiry_days
    audit_days, audit_prob = s.threats.audit_days, s.threats.audit_prob
    if expiry > 0:  # a caught edit is reversed by the audit, at the latest when it would expire
        audit_days = min(audit_days, expiry)
    deductions = [e for e in entries if e.kind == "score" and e.delta < 0
                  and e.cause in s.behaviours]
    for e in deductions:
        if e.record == "insider":
            e.note = "insider edit (fabricated record)"
    lags = {"audit_reversal": (audit_days, "audit"), "mark_expiry": (expiry, "expiry")}
    taken: dict[str, set[int]] = {c: set() for c in lags}
    for r in entries:  # in ledger order, so a second reversal is seen as the second
        if r.kind != "score" or r.cause not in lags:
            continue
        lag, label = lags[r.cause]
        audit = r.cause == "audit_reversal"
        k = next((k for k, d in enumerate(deductions) if k not in taken[r.cause]
                  and d.day + lag == r.day and d.delta == -r.delta
                  and (d.record == "insider" if audit else d.record == r.record)), None)
        if k is None:
            r.note = f"reverses a deduction ({label}); no matching deduction found"
            continue
        taken[r.cause].add(k)
        d = deductions[k]
        r.ended_day, r.ended_by = d.day, d.cause
        what = "insider edit caught by audit" if audit else "mark expired"
        r.note = f"reverses the deduction of day {d.day} ({what})"
        if d.ended_by is not None:
            r.note += f"; it was already reversed on day {d.ended_day}: a SECOND reversal"
            d.note += f"; reversed AGAIN on day {r.day} ({what})"
        else:
            d.ended_day, d.ended_by = r.day, r.cause
            d.note = (d.note + "; " if d.note else "deduction; ") + (
                f"reversed on day {r.day} ({what})")
    for d in deductions:
        if d.ended_by is not None:
            continue
        parts = [d.note or "deduction"]
        if d.record == "insider" and audit_prob > 0:
            due = d.day + audit_days
            parts.append(f"not caught by audit (audit due day {due})" if due < days
                         else f"audit outcome falls after the run (day {due})")
        if expiry > 0:
            due = d.day + expiry
            parts.append(f"expires on day {due}" if due >= days
                         else f"no expiry row on day {due}")
        d.note = "; ".join(parts)


def _pair_caps(entries: list[LedgerEntry], s: Scenario, days: int) -> None:
    """Instant grade caps (e.g. drunk driving -> C) and their expiry."""
    caps = s.points.instant_grade
    cap_days = s.points.instant_grade_days
    set_rows = [e for e in entries if e.kind == "grade" and e.cause in caps and e.delta > 0]
    ends = [e for e in entries if e.kind == "grade" and e.cause == "instant_grade_expiry"]
    for e in set_rows:
        due = e.day + cap_days
        end = next((x for x in ends if x.day >= due), None)
        base = f"grade capped at {caps[e.cause]} for {cap_days} days"
        if end is not None:
            e.ended_day, e.ended_by = end.day, end.cause
            later = "" if end.day == due else f" (extended by a later record from day {due})"
            e.note = f"{base}; cap ended on day {end.day}{later}"
        elif due < days:
            e.note = f"{base}; cap ended on day {due} without a grade change"
        else:
            e.note = f"{base}; cap in force until day {due}"
    for x in ends:
        src = [e for e in set_rows if e.ended_day == x.day]
        x.note = "instant grade cap ended" + (
            f" (set on day {src[0].day})" if src else "") + "; grade follows the score again"


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
    if r.score is None:
        rows.append(("score", "no points system in this run"))
    elif r.age_band == "child":
        rows.append(("score", f"not scored (children have no events; the run holds the "
                              f"initial {r.score} / {r.grade})"))
    else:
        differs = " [red](differs: false records)[/]"
        rows.append(("score", f"{r.score} (true score {r.score_true})"
                     + ("" if r.score == r.score_true else differs)))
        rows.append(("grade", f"{r.grade} (true grade {r.grade_true})"
                     + ("" if r.grade == r.grade_true else differs)))
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
    if r.sanctioned:
        st = "[bold red]sanctioned[/], " + (
            "[red]wrongful: would not be sanctioned without false records[/]"
            if r.sanctioned_wrongful else "on true records")
    else:
        st = "not sanctioned"
    rows.append(("sanction status", st))
    if r.firms:
        rows.append(("legal rep. of", "; ".join(
            f"{f.uscc} (firm {f.id}, {escape(f.sector)}{', LISTED' if f.listed else ''})"
            for f in r.firms)))
    con.print(_kv(rows), highlight=False)

    if r.age_band != "child":
        con.print()
        if r.restrictions:
            t = Table(title="Restrictions met now: sanction gates whose condition holds "
                      "(wrongful = would not hold without false records)",
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
    if r.initial_score is not None and r.score is not None and r.age_band != "child":
        held = r.initial_score + r.score_deltas
        true = r.initial_score + r.true_score_deltas
        for label, total, final, name in (
            ("all score deltas", held, r.score, "score"),
            ("true records only", true, r.score_true, "true score"),
        ):
            ok = "[green]matches[/]" if total == final else "[bold red]DOES NOT MATCH[/]"
            deltas = total - r.initial_score
            con.print(f"initial {r.initial_score} {deltas:+d} ({label}) = {total}: {ok} "
                      f"{name} {final}", highlight=False)


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
                style="bold red" if record in ("false", "insider") else "")


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
            line = Text(f"day {e.day:>4}  {e.kind:<5}  {e.cause}  via {e.channel}  ")
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
        t.add_row(str(e.day), e.kind, e.cause, e.channel, _record_text(e.record), e.change,
                  e.note)
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
    if r.legal_rep_sanctioned:
        state.append("sanctioned")
    rep = f"person {r.legal_rep}" + (f" ({', '.join(state)})" if state else "")
    con.print(_kv([
        ("USCC", r.uscc),
        ("sector", escape(r.sector)),
        ("region", str(r.region)),
        ("legal representative", rep),
        ("court list", lst),
    ]), highlight=False)
    con.print()
    _render_ledger(r.ledger, con, f"Ledger of firm {r.uscc}")
    con.print("Firms are not scored: only list changes enter a firm's ledger.", style="dim")
    con.print(f"A firm's listing reaches its legal representative; their record: "
              f"credsim lookup {escape(r.run.path)} {r.legal_rep}", highlight=False)


__all__ = [
    "FirmRecord", "GateUse", "LedgerEntry", "PersonRecord", "Record",
    "Restriction", "lookup", "parse_key", "render",
]
