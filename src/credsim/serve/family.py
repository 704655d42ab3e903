"""A person's family over a run, for the lab's "follow a family" view: parents and
grandparents, partners, siblings, children and grandchildren, each with their standing at
the end, their score over the run and their life events (births, deaths: the ledger's
`life` rows); and families worth following, chosen from the run's tables.

Every query is fixed SQL with bound values: a person is named by an integer id only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from credsim.errors import InputError

YEAR = 365.25  # days, as demography counts them
MAX_PER_RELATION = 12  # members shown of each relation; the rest are counted
CANDIDATES = 12  # families offered in each list
# Ledger kinds of a held score, preferred first, and the people column holding it at the end
# (a rating in stars; the ledger keeps it in hundredths).
SCORE_KINDS = {"score": "score", "composite": "composite", "rating": "rating"}
# Columns of the people table shown for each member, where the run has them.
MEMBER_COLUMNS = ("sex", "birth_day", "alive", "age_band", "school", "household", "grade",
                  "score", "composite", "rating", "listings", "ever_listed",
                  "sanctioned", "sanctioned_wrongful")
ID_RANGE = (0, 2**31 - 1)  # people ids are int32


def family(folder: Path, pid: int) -> dict[str, Any]:
    """The family of person `pid` in the run folder `folder` (InputError if no such
    person)."""
    from credsim.results.query import connect
    from credsim.results.run_dir import open_run

    manifest = open_run(folder)
    con = connect(folder)
    try:
        columns = set(_columns(con, "people"))
        me = _row(con, columns, pid)
        if me is None:
            raise InputError(f"no person #{pid} in this run")
        members, more = _relatives(con, columns, me)
        ids = [m["id"] for m in members]
        ledger = _ledger(con, ids)
    finally:
        con.close()
    last = int(manifest["days"]) - 1
    scenario = manifest.get("scenario", {})
    adult_age = (scenario.get("demography") or {}).get("adult_age", 18)
    # The score the ledger changed, else the one the people table holds (held all along).
    kind = next((k for k in SCORE_KINDS if any(r["kind"] == k for r in ledger)), None) or next(
        (k for k, column in SCORE_KINDS.items() if column in columns), None)
    events = [{"id": int(r["id"]), "day": int(r["day"]), "cause": r["cause"]}
              for r in ledger if r["kind"] == "life"]
    died = {e["id"]: e["day"] for e in events if e["cause"] == "death"}
    for m in members:
        m["age"] = _age(m, died.get(m["id"], last))
    lines = {} if kind is None else _lines(members, ledger, kind, last, died, adult_age)
    return {"person": pid, "days": last + 1, "kind": kind,
            "unit": "stars" if kind == "rating" else kind, "members": members,
            "more": more, "lines": lines, "events": events}


def _lines(members: list[dict], ledger: list[dict], kind: str, last: int,
           died: dict[int, int], adult_age: int) -> dict[str, dict]:
    """Each member's score line, by id (as text, a JSON object's key)."""
    changes: dict[int, list[dict]] = {}
    for r in ledger:
        if r["kind"] == kind:
            changes.setdefault(int(r["id"]), []).append(r)
    out = {}
    for m in members:
        line = _score_line(m, changes.get(m["id"], []), kind, last, died.get(m["id"]),
                           adult_age)
        if line:
            out[str(m["id"])] = line
    return out


def _columns(con, table: str) -> list[str]:
    """The column names of one of the run's tables (a name from this module, quoted)."""
    from credsim.results.query import ident

    return [r[0] for r in con.execute(f"DESCRIBE {ident(table)}").fetchall()]


def _select(columns: set[str]) -> str:
    """The member columns this run's people table has, quoted."""
    from credsim.results.query import ident

    wanted = ["id", "parent1", "parent2", "partner", *MEMBER_COLUMNS]
    return ", ".join(ident(c) for c in dict.fromkeys(wanted) if c in columns)


def _dicts(cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _row(con, columns: set[str], pid: int) -> dict[str, Any] | None:
    if not ID_RANGE[0] <= pid <= ID_RANGE[1]:  # never bound: no id is outside int32
        return None
    rows = _dicts(con.execute(f"SELECT {_select(columns)} FROM people WHERE id = ?", [pid]))
    return rows[0] if rows else None


def _where(con, columns: set[str], condition: str, values: list[Any]) -> list[dict]:
    """People matching `condition`, one of this module's fixed texts (never a user's),
    with bound `values`, oldest first."""
    order = "birth_day, id" if "birth_day" in columns else "id"
    return _dicts(con.execute(
        f"SELECT {_select(columns)} FROM people WHERE {condition} ORDER BY {order}", values))


def _ids(*values: Any) -> list[int]:
    return [int(v) for v in values if v is not None and int(v) >= 0]


def _relatives(con, columns: set[str], me: dict[str, Any]):
    """(members, counts of those left out by relation): each person once, under the
    closest relation, with their generation relative to `me` (parents -1, children +1)."""
    pid = int(me["id"])
    has_partner = "partner" in columns

    def of_ids(ids: list[int]) -> list[dict]:
        return _where(con, columns, "list_contains(?, id)", [ids]) if ids else []

    def children_of(ids: list[int]) -> list[dict]:
        if not ids:
            return []
        return _where(con, columns, "list_contains(?, parent1) OR list_contains(?, parent2)",
                      [ids, ids])

    parents = of_ids(_ids(me["parent1"], me["parent2"]))
    grandparents = of_ids(_ids(*(p[k] for p in parents for k in ("parent1", "parent2"))))
    children = children_of([pid])
    grandchildren = children_of([c["id"] for c in children])
    # Partners: the one at the end, whoever named this person partner, and the other
    # parent of each child (partners may have parted, or died, since).
    partner_ids = _ids(me.get("partner") if has_partner else None,
                       *(c[k] for c in children for k in ("parent1", "parent2")))
    partners = of_ids([i for i in partner_ids if i != pid])
    if has_partner:
        partners += _where(con, columns, "partner = ?", [pid])
    siblings = []
    if parents:
        siblings = _where(con, columns, "id != ? AND (list_contains(?, parent1) OR "
                          "list_contains(?, parent2))", [pid, [p["id"] for p in parents],
                                                         [p["id"] for p in parents]])
    members: list[dict[str, Any]] = []
    more: dict[str, int] = {}
    seen: set[int] = set()
    for generation, relation, rows in ((0, "self", [me]), (-2, "grandparent", grandparents),
                                       (-1, "parent", parents), (0, "partner", partners),
                                       (0, "sibling", siblings), (1, "child", children),
                                       (2, "grandchild", grandchildren)):
        fresh = list({int(r["id"]): r for r in rows if int(r["id"]) not in seen}.values())
        for r in fresh[:MAX_PER_RELATION]:
            seen.add(int(r["id"]))
            members.append(_member(r, relation, generation))
        if len(fresh) > MAX_PER_RELATION:
            more[relation] = len(fresh) - MAX_PER_RELATION
    return members, more


WORDS = {"grandparent": ("grandmother", "grandfather"), "parent": ("mother", "father"),
         "sibling": ("sister", "brother"), "child": ("daughter", "son"),
         "grandchild": ("granddaughter", "grandson")}


def _member(row: dict[str, Any], relation: str, generation: int) -> dict[str, Any]:
    """A member as the page shows one: the relation in words (by sex, where the run
    records it), the generation, and the people columns as plain JSON values."""
    out = {k: _plain(v) for k, v in row.items() if k not in ("parent1", "parent2")}
    sex = row.get("sex")
    words = WORDS.get(relation)
    shown = relation if words is None or sex not in ("female", "male") else (
        words[0] if sex == "female" else words[1])
    out |= {"relation": relation, "relation_shown": shown, "generation": generation,
            "parents": _ids(row.get("parent1"), row.get("parent2"))}
    return out


def _plain(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and v != v:
        return None
    return v


def _age(member: dict[str, Any], end: int) -> float | None:
    """Age in years at the end of the run, or at death; None without demography."""
    born = member.get("birth_day")
    if born is None:
        return None
    return round((end - born) / YEAR, 1)


def _ledger(con, ids: list[int]) -> list[dict[str, Any]]:
    """The members' score changes and life events, in the ledger's order."""
    if not ids:
        return []
    return _dicts(con.execute(
        "SELECT id, day, kind, cause, record, delta, value FROM ledger WHERE entity = "
        "'person' AND list_contains(?, id) AND kind IN ('score', 'composite', 'rating', "
        "'life') ORDER BY day, file_row_number", [ids]))


def _score_line(member: dict[str, Any], rows: list[dict], kind: str, last: int,
                died: int | None, adult_age: int) -> dict[str, list] | None:
    """A member's held score as steps, from the day they held one (day 0, or coming of
    age) through each change to the end of the run or their death; None if they never
    held one."""
    scale = 100 if kind == "rating" else 1
    born = member.get("birth_day")
    start = 0 if born is None or born < 0 else int(born + round(adult_age * YEAR))
    start = max(0, min(start, rows[0]["day"])) if rows else max(0, start)
    end = died if died is not None else last
    if rows:
        first = (rows[0]["value"] - rows[0]["delta"]) / scale
    else:
        held = member.get(SCORE_KINDS[kind])
        if held is None or start > end or (kind == "composite" and held < 0):
            return None  # none held (a composite of -1: not a participant)
        first = float(held)
    days, values, false = [start], [first], {"day": [], "value": []}
    for r in rows:
        days.append(int(r["day"]))
        values.append(r["value"] / scale)
        if r["record"] not in ("true", "none"):  # a change resting on a false record
            false["day"].append(days[-1])
            false["value"].append(values[-1])
    days.append(end)
    values.append(values[-1])
    return {"day": days, "value": values, "false": false}


# ---------------------------------------------------------------- families worth following


def candidates(run) -> dict[str, list[int]]:
    """Families worth following: court-listed parents with the most children, and
    grandparents with the most grandchildren (three generations)."""
    people = set(run.table("people").column_names)

    def ids(sql: str) -> list[int]:
        return [int(r["id"]) for r in run.sql(sql).to_pylist()]

    edges = ("(SELECT parent1 AS parent, id AS child FROM people WHERE parent1 >= 0 "
             "UNION ALL SELECT parent2, id FROM people WHERE parent2 >= 0)")
    # Both grandparents of a couple share their grandchildren: one of them is offered.
    grandparents = run.sql(
        f"SELECT a.parent AS id, list(DISTINCT b.child ORDER BY b.child) AS grandchildren "
        f"FROM {edges} a JOIN {edges} b ON b.parent = a.child GROUP BY a.parent "
        f"ORDER BY count(DISTINCT b.child) DESC, a.parent LIMIT {4 * CANDIDATES}").to_pylist()
    seen: set[tuple[int, ...]] = set()
    three = []
    for r in grandparents:
        if tuple(r["grandchildren"]) not in seen:
            seen.add(tuple(r["grandchildren"]))
            three.append(int(r["id"]))
    out = {"listed_parents": [], "three_generations": three[:CANDIDATES]}
    if "ever_listed" in people:
        out["listed_parents"] = ids(
            f"SELECT e.parent AS id FROM {edges} e JOIN people p ON p.id = e.parent "
            f"WHERE p.ever_listed GROUP BY e.parent ORDER BY count(*) DESC, e.parent "
            f"LIMIT {CANDIDATES}")
    return out
