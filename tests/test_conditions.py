"""Gate conditions: the language (parsed once, printed back to the same condition), its
errors (an InputError naming what is allowed, never another exception), its one
evaluation (against an oracle written from the documented meaning of each comparison),
and compound conditions end to end: a gate on `A and B` applies to people meeting both,
one on `A or B` to people meeting either, at the rate of the single gates over the same
run (fixed seed; tolerances of Z standard deviations from the binomial variance)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credsim.conditions import (
    Both,
    ConditionError,
    Either,
    Evaluation,
    Term,
    grammar_table,
    parse,
    registered,
    rewards,
)
from credsim.consequences import S_SANCTIONED, S_WRONGFUL
from credsim.engine import Simulation
from credsim.errors import InputError
from credsim.population.people import CHILD
from credsim.scenario.load import load_scenario, validate
from credsim.scenario.model import Gate

STANDINGS = registered()
Z = 5.0
PROPERTIES = settings(max_examples=300, deadline=None)


# --- generated conditions ---------------------------------------------------------------
SPACE = st.sampled_from(["", " ", "  ", "\t"])


@st.composite
def terms(draw) -> tuple[str, tuple]:
    """A term as text, with the reference form ('term', standing, op, value)."""
    s = draw(st.sampled_from(list(STANDINGS.values())))
    if s.flag:
        return s.name, ("term", s.name, "", 0.0)
    op = draw(st.sampled_from(s.ops))
    if s.names:
        text = draw(st.sampled_from(s.names))
        value = float(s.names.index(text))
    else:
        lo, hi = s.bounds
        value = draw(st.integers(int(lo), int(hi)).map(float)
                     | st.floats(lo, hi, allow_nan=False))
        text = draw(st.sampled_from([repr(value), f"{value:.17g}", f"{value:e}"]))
        value = float(text)  # as written (f"{:e}" rounds)
    return f"{s.name}{draw(SPACE)}{op}{draw(SPACE)}{text}", ("term", s.name, op, value)


def _combine(children):
    return st.tuples(st.sampled_from(["and", "or"]), st.lists(children, min_size=2, max_size=3),
                     st.booleans()).map(_joined)


def _joined(args) -> tuple[str, tuple]:
    kind, parts, extra = args
    texts = []
    for text, ref in parts:
        # Parentheses where precedence needs them, and now and then where it does not.
        needed = kind == "and" and ref[0] == "or"
        texts.append(f"({text})" if needed or (extra and ref[0] != "term") else text)
    return f" {kind} ".join(texts), (kind, [ref for _, ref in parts])


conditions = st.recursive(terms(), _combine, max_leaves=8)


def _oracle(ref: tuple, held: dict[str, float]) -> bool:
    """The documented meaning, one comparison at a time (grades: 0 = AAA ... 5 = D, so
    `grade<=C` is C or worse; scores and ratings: participants only, value >= 0)."""
    if ref[0] == "and":
        return all(_oracle(r, held) for r in ref[1])
    if ref[0] == "or":
        return any(_oracle(r, held) for r in ref[1])
    _, name, op, v = ref
    x, s = held[name], STANDINGS[name]
    if s.flag:
        return x > 0
    if s.names:
        return {"<=": x >= v, "<": x > v, ">=": x <= v, ">": x < v}[op]
    if not x >= 0:  # no part taken (-1), or no rating (NaN)
        return False
    return {"<": x < v, "<=": x <= v, ">=": x >= v, ">": x > v}[op]


class _Values:
    """A Source of fixed values for a handful of people."""

    def __init__(self, held: dict[str, np.ndarray], true: dict[str, np.ndarray],
                 domains: dict[str, np.ndarray] | None = None):
        self.held, self.true, self.doms = held, true, domains or {}

    def values(self, standing, ids):
        return self.held[standing][ids], self.true[standing][ids]

    def domains(self, standing, ids):
        return self.doms[standing][ids]


def _random_values(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    out = {}
    for name, s in STANDINGS.items():
        if s.flag:
            out[name] = rng.integers(0, 3, n).astype(np.float64)
        elif s.names:
            out[name] = rng.integers(0, len(s.names), n).astype(np.float64)
        else:
            lo, hi = s.bounds
            x = rng.uniform(lo, hi, n)
            x = np.where(rng.random(n) < 0.5, np.round(x), x)  # whole numbers meet lines
            x[rng.random(n) < 0.1] = -1.0  # takes no part
            x[rng.random(n) < 0.05] = np.nan  # no rating (a child)
            out[name] = x
    return out


@PROPERTIES
@given(conditions, st.integers(0, 2**32 - 1))
def test_every_valid_condition_parses_prints_back_and_means_what_the_docs_say(gen, seed):
    text, ref = gen
    cond = parse(text, STANDINGS)
    assert parse(str(cond), STANDINGS) == cond
    assert parse(str(cond), STANDINGS).__str__() == str(cond)
    # Evaluated on random people, the tree means the documented comparisons.
    rng = np.random.default_rng(seed)
    n = 40
    held, true = _random_values(rng, n), _random_values(rng, n)
    h, t = Evaluation(np.arange(n), _Values(held, true), STANDINGS).meets(cond)
    for i in range(n):
        assert h[i] == _oracle(ref, {k: v[i] for k, v in held.items()}), (text, i)
        assert t[i] == _oracle(ref, {k: v[i] for k, v in true.items()}), (text, i)


JUNK = (st.text(max_size=40)
        | st.lists(st.sampled_from(["listed", "grade", "score", "rating", "and", "or", "(",
                                    ")", "<", "<=", ">=", ">", "==", "C", "AAA", "600", "-1",
                                    "4.2", "nan", "1e999", " ", "blacklisted", "Q"]),
                   max_size=8).map("".join))


@st.composite
def mutated(draw) -> str:
    """A valid condition with a few characters inserted, deleted or replaced."""
    text, _ = draw(conditions)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        c = draw(st.sampled_from(list("()<>=! .-e0123456789ABCDandorx\u00e9\u0660")))
        text = draw(st.sampled_from([text[:i] + c + text[i:], text[:i] + text[i + 1:],
                                     text[:i] + c + text[i + 1:]]))
    return text


@PROPERTIES
@given(JUNK | mutated())
def test_junk_gives_an_input_error_and_never_another_exception(text):
    try:
        cond = parse(text, STANDINGS)
    except ConditionError as exc:
        assert isinstance(exc, InputError) and str(exc)
        return
    assert parse(str(cond), STANDINGS) == cond  # what parses, prints back


RONGCHENG = load_scenario("rongcheng").model_dump(mode="json")


@settings(max_examples=60, deadline=None)
@given(JUNK | mutated())
def test_a_scenario_with_a_junk_condition_is_an_input_error_naming_the_gate(text):
    data = copy.deepcopy(RONGCHENG)
    data["gates"]["flights"]["condition"] = text
    try:
        s = validate(data, "test")
    except InputError as exc:
        assert "gates.flights" in str(exc)
        return
    assert str(s.gates["flights"].parsed)  # parsed once, kept with the gate


@pytest.mark.parametrize(("text", "expect"), [
    ("listed", Term("listed")),
    ("grade <= C", Term("grade", "<=", 4.0, "C")),
    ("score>=650", Term("score", ">=", 650.0, "650")),
    ("rating<4.2", Term("rating", "<", 4.2, "4.2")),
    ("listed or grade<=C and score<600",
     Either((Term("listed"), Both((Term("grade", "<=", 4.0, "C"),
                                   Term("score", "<", 600.0, "600")))))),
    ("(listed or blacklisted) and grade<=D",
     Both((Either((Term("listed"), Term("blacklisted"))), Term("grade", "<=", 5.0, "D")))),
    ("listed and (grade<=C and score<600)",  # flattened: one 'and' of three terms
     Both((Term("listed"), Term("grade", "<=", 4.0, "C"), Term("score", "<", 600.0, "600")))),
])
def test_and_binds_tighter_than_or(text, expect):
    assert parse(text, STANDINGS) == expect


@pytest.mark.parametrize(("text", "says"), [
    ("grade<=Q", "grade takes one of AAA, AA, A, B, C, D"),
    ("score<nan", "threshold of score must be a number in [0, 10000]"),
    ("score<10001", "threshold of score must be a number in [0, 10000]"),
    ("credit<5", "'credit' is not a standing"),
    ("listed<1", "listed is a flag"),
    ("grade<C", "grade takes <= or >="),
    ("listed and", "ends too soon"),
    ("(listed", "not closed"),
    ("listed grade<=C", "unexpected 'grade'"),
    ("listed ; rm", "cannot read"),
    ("(" * 40 + "listed" + ")" * 40, "nest more than 32 deep"),
    ("listed " * 5000, "unexpected 'listed'"),
    ("", "empty"),
])
def test_errors_say_what_is_wrong_and_what_is_allowed(text, says):
    with pytest.raises(ConditionError) as info:
        parse(text, STANDINGS)
    msg = str(info.value)
    assert says in msg, msg
    if "threshold" not in says and "takes one of" not in says:  # else the values allowed
        assert "; use " in msg and "listed," in msg and "grade<=X / grade>=X" in msg, msg


def _error(overrides: list[str], preset: str = "rongcheng") -> str:
    with pytest.raises(InputError) as info:
        load_scenario(preset, overrides)
    return str(info.value)


def test_a_gate_on_a_standing_no_running_system_provides_is_an_input_error():
    msg = _error(["gates.flights.condition='listed or score<600'"])
    assert "gates.flights.condition" in msg and "reads score" in msg, msg
    assert "composite.enabled" in msg and "provide: grade, listed" in msg, msg


@pytest.mark.parametrize(("condition", "effect", "says"), [
    ("listed or grade>=AA", "deny", "mixes"),
    ("grade>=AA and listed", "perk", "mixes"),
    ("grade>=A", "deny", "effect must be 'perk'"),
    ("listed and grade<=C", "perk", "'perk' needs a condition that rewards"),
])
def test_a_gate_is_a_sanction_or_a_perk(condition, effect, says):
    msg = _error([f"gates.flights.condition='{condition}'", f"gates.flights.effect={effect}"])
    assert "gates.flights" in msg and says in msg, msg


def test_a_once_gate_needs_standings_the_ledger_records():
    msg = _error(["gates.private_school.condition='listed or score<600'",
                  "composite.enabled=true"])
    assert "use_rate" in msg and "gate on score" in msg, msg


def test_domain_separation_applies_to_each_term_of_a_sanction():
    """Term by term: a sanction's term holds only where its trigger domain is the gate's;
    the trigger of a compound condition is that of its first term that holds."""
    n = 4
    grade = np.array([5, 5, 0, 5], np.float64)  # D D AAA D
    listed = np.array([1, 0, 1, 0], np.float64)
    doms = {"grade": np.array([0, 3, 0, 255], np.uint8)}  # finance, transport, -, none
    src = _Values({"grade": grade, "listed": listed}, {"grade": grade, "listed": listed * 0},
                  doms)
    either = parse("listed or grade<=C", STANDINGS)
    court, finance = 1, 0
    plain = Evaluation(np.arange(n), src, STANDINGS)
    separate = Evaluation(np.arange(n), src, STANDINGS, separate=True)
    assert plain.meets(either)[0].tolist() == [True, True, True, True]
    assert plain.meets(either)[1].tolist() == [True, True, False, True]  # listings false
    assert separate.meets(either, finance, sanction=True)[0].tolist() == [True, False, False,
                                                                           False]
    assert separate.meets(either, court, sanction=True)[0].tolist() == [True, False, True,
                                                                         False]
    assert separate.meets(either, finance)[0].all()  # perks are not separated
    assert plain.trigger(either).tolist() == [court, 3, court, 255]


def test_the_grammar_in_the_docs_is_the_modules_declarations():
    """docs/odd.md shows the table that the declarations generate."""
    from credsim.modules.registry import kinds

    owners = {name: k for k, cls in kinds().items() for name in cls.standings}
    table = grammar_table(STANDINGS, owners)
    assert table in _doc("odd.md")
    # The parameter reference names every comparison of every standing.
    described = Gate.model_fields["condition"].description
    for s in STANDINGS.values():
        forms = [f"'{s.name}'"] if s.flag else [f"'{s.name}{op}" for op in s.ops]
        assert all(f in described for f in forms), (s.name, described)


def _doc(name: str) -> str:
    from pathlib import Path

    return (Path(__file__).resolve().parents[1] / "docs" / name).read_text("utf-8")


def test_rewards_tells_perks_from_sanctions():
    assert rewards(parse("grade>=AA and score>=700", STANDINGS)) is True
    assert rewards(parse("listed or score<600", STANDINGS)) is False
    assert rewards(parse("listed or score>=600", STANDINGS)) is None


# --- compound conditions end to end ------------------------------------------------------
RATE = 0.05
COMPOUND = {"a": "listed", "b": "score<600", "both": "listed and score<600",
            "either": "listed or score<600"}


def _overrides() -> list[str]:
    out = ["channels.online.false_rate=2e-3", "behaviours.judgment_default.rate=5e-4",
           "court_list.grace_days=10"]
    for name, cond in COMPOUND.items():
        out += [f"gates.g_{name}.domain='civic'", f"gates.g_{name}.condition='{cond}'",
                f"gates.g_{name}.use_rate={RATE}"]
    return out


@pytest.fixture(scope="module")
def compound():
    """City Brain with gates on A = listed, B = score<600, A and B, A or B, each day's
    held and true standings kept."""
    sim = Simulation(load_scenario("city-brain", _overrides(), people=10_000, days=60,
                                   seed=11))
    court, comp = sim["court_list"], sim["composite"]
    days = []
    for day in range(sim.scenario.run.days):
        sim.step(day)
        days.append({
            "a": ((court.n_list_true + court.n_list_false) > 0, court.n_list_true > 0),
            "b": ((comp.score >= 0) & (comp.score < 600),
                  (comp.score_true >= 0) & (comp.score_true < 600)),
        })
    return sim, days


def _applications(sim, gate: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gi = [g.name for g in sim.gates.gates].index(f"g_{gate}")
    app = sim.gates.applications()
    sel = app["gate"] == gi
    return app["day"][sel], app["id"][sel].astype(np.int64), app["wrongful"][sel]


def _meets(days, d: np.ndarray, who: np.ndarray, join, state: int) -> np.ndarray:
    return np.array([join(days[x]["a"][state][p], days[x]["b"][state][p])
                     for x, p in zip(d, who, strict=True)], dtype=bool)


@pytest.mark.parametrize(("gate", "join"), [("both", np.logical_and),
                                            ("either", np.logical_or)])
def test_compound_gates_apply_exactly_to_those_meeting_the_condition(compound, gate, join):
    sim, days = compound
    d, who, wrongful = _applications(sim, gate)
    assert len(who) > 50 and (wrongful.any() or gate == "both")  # few listed are wrongly
    assert np.all(_meets(days, d, who, join, 0))  # the held state meets it that day
    assert np.array_equal(wrongful, ~_meets(days, d, who, join, 1))  # wrongful: true does not
    assert np.all(sim.people.age[who] != CHILD)


@pytest.mark.parametrize(("gate", "join"), [("both", np.logical_and),
                                            ("either", np.logical_or)])
def test_compound_gates_are_used_at_the_rate_of_single_gates(compound, gate, join):
    """Each adult meeting the condition on a day uses the gate with probability
    p = 1 - exp(-use_rate): the compound gate's uses match p times the person-days that
    meet it, and match gate A's uses among the same person-days (separate streams)."""
    sim, days = compound
    adult = sim.people.age != CHILD
    p = -math.expm1(-RATE)
    person_days = sum(int((join(x["a"][0], x["b"][0]) & adult).sum()) for x in days)
    d, who, _ = _applications(sim, gate)
    expect, sd = p * person_days, math.sqrt(person_days * p * (1 - p))
    assert abs(len(who) - expect) < Z * sd, (len(who), expect, sd)
    # The single gates over the same person-days: for 'A and B', A's uses where B holds
    # too; for 'A or B', A's uses and B's where A does not hold.
    d_a, who_a, _ = _applications(sim, "a")
    d_b, who_b, _ = _applications(sim, "b")
    b_too = _meets(days, d_a, who_a, lambda a, b: b, 0)
    not_a = ~_meets(days, d_b, who_b, lambda a, b: a, 0)
    singles = int(b_too.sum()) if gate == "both" else len(who_a) + int(not_a.sum())
    assert abs(singles - len(who)) < Z * math.sqrt(2) * sd, (singles, len(who), sd)


def test_the_sanction_status_is_the_or_of_the_compound_conditions(compound):
    sim, days = compound
    a_held, a_true = days[-1]["a"]
    b_held, b_true = days[-1]["b"]
    adult = sim.people.age != CHILD
    # Every sanction gate of the run reads A, B or both: the status is A or B.
    held, true = (a_held | b_held) & adult, (a_true | b_true) & adult
    expect = np.where(held, S_SANCTIONED, 0) | np.where(held & ~true, S_WRONGFUL, 0)
    assert np.array_equal(sim.gates.status, expect)
    assert (held & ~true).any()


def test_a_compound_once_gate_applies_on_entering_the_condition():
    """Rongcheng with a school gate on 'listed and grade<=B': children lose their place
    when a parent both is listed and has grade B or worse, once."""
    s = load_scenario("rongcheng", ["gates.private_school.condition='listed and grade<=B'",
                                    "behaviours.judgment_default.rate=5e-4"],
                      people=6000, days=90, seed=5)
    sim = Simulation(s)
    points, court = sim["points"], sim["court_list"]
    met = []
    for day in range(s.run.days):
        sim.step(day)
        met.append(((court.n_list_true + court.n_list_false) > 0) & (points.grade >= 3))
    gi = [g.name for g in sim.gates.gates].index("private_school")
    app = sim.gates.applications()
    sel = app["gate"] == gi
    kids = app["id"][sel].astype(np.int64)
    assert len(kids) > 0 and len(np.unique(kids)) == len(kids)  # once a child
    p = sim.people
    for day, kid in zip(app["day"][sel], kids, strict=True):
        parents = [x for x in (p.parent1[kid], p.parent2[kid]) if x >= 0]
        assert any(met[day][x] and (day == 0 or not met[day - 1][x]) for x in parents)


@pytest.mark.parametrize("separate", [False, True])
def test_lookup_reads_compound_conditions_as_the_engine_does(separate, simulate,
                                                             tmp_path_factory):
    """A person's restrictions in `credsim lookup` come from the same evaluation: the
    engine's end-of-run sanction status is exactly 'some restriction applies', and a
    compound gate shows for exactly the people whose row meets it."""
    from credsim.results.lookup import lookup
    from credsim.results.query import connect

    extra = ["safeguards.domain_separation=true"] if separate else []
    out = tmp_path_factory.mktemp("compound") / "run"
    run = simulate(out, "city-brain", _overrides() + extra, people=4000, days=60, seed=3)
    con = connect(run.path)
    rows = con.execute("SELECT id, listings > 0, composite_participant AND composite < 600 "
                       "FROM people WHERE age_band <> 'child' "
                       "ORDER BY listings DESC, sanctioned DESC, id LIMIT 40").fetchall()
    shown = {"both": 0, "either": 0}
    for pid, listed, low in rows:
        r = lookup(run.path, str(pid))
        applies = [x for x in r.restrictions if x.applies]
        assert r.sanctioned == bool(applies), pid
        assert r.sanctioned_wrongful == (bool(applies) and all(x.wrongful for x in applies))
        gates = {x.gate for x in r.restrictions}
        assert ("g_both" in gates) == (listed and low), pid
        assert ("g_either" in gates) == (listed or low), pid
        shown["both"] += "g_both" in gates
        shown["either"] += "g_either" in gates
    assert shown["both"] > 0 and shown["either"] > shown["both"]


BOUNDS = st.floats(-300, 300, allow_nan=False) | st.sampled_from([-math.inf, math.inf, 0.0,
                                                                   4.5, 600.0])


@PROPERTIES
@given(st.sampled_from(["uint8", "int16", "int32", "float32", "float64"]), BOUNDS, BOUNDS,
       st.integers(0, 2**32 - 1))
def test_in_range_is_lo_le_x_lt_hi_at_double_precision(dtype, lo, hi, seed):
    """Whole-number arrays are compared with whole-number bounds and float32 without a
    float32 rounding of the bounds: the same as comparing the values as doubles."""
    from credsim.conditions import in_range

    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype) if dtype[0] in "ui" else None
    x = (rng.integers(max(info.min, -300), min(info.max, 300), 64, endpoint=True)
         if info else rng.uniform(-300, 300, 64)).astype(dtype)
    if info is None:
        x[:8] = np.array([lo, hi, np.nan, 4.2, np.float32(4.2), 600, -1, 0]).astype(dtype)
    xd = x.astype(np.float64)
    with np.errstate(invalid="ignore"):
        assert np.array_equal(in_range(x, lo, hi), (xd >= lo) & (xd < hi))
