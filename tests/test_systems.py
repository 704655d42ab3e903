"""The composite score, peer ratings, firm black/red lists, warn-before-punishing,
collusion and black-box adaptation: their characteristic behaviour, checked against
the ledger, against independent re-computations of the rules, and against runs that
differ in one lever under common random numbers (same seed).

Statistical checks use fixed seeds and tolerances of Z standard deviations derived
from the binomial or Poisson variance of the quantity tested (or from the sample
variance of paired differences), never guessed margins.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from types import SimpleNamespace

import numpy as np
import pyarrow.parquet as pq
import pytest

from credsim.conditions import Term
from credsim.consequences import S_SANCTIONED, S_WRONGFUL
from credsim.engine import Simulation
from credsim.ledger import (
    C_BLACKLIST_REP,
    C_DISPLAY_EXPIRY,
    K_BLACKLIST,
    K_COMPOSITE,
    K_MARK,
    K_RATING,
    K_SCORE,
    K_WARNING,
    R_COLLUSION,
    R_FALSE,
    R_TRUE,
    Ledger,
)
from credsim.population.graph import DROPPED
from credsim.population.people import CHILD, ELDER
from credsim.rng import Streams
from credsim.scenario.load import load_scenario
from credsim.scenario.model import PeerRating
from credsim.systems.peer_rating import PeerRatings

Z = 5.0  # tolerance of statistical checks, in standard deviations


# Helpers --------------------------------------------------------------------------


def _sim(preset: str, overrides: Sequence[str] = (), *, people: int, days: int, seed: int,
         **kw) -> Simulation:
    sim = Simulation(load_scenario(preset, list(overrides), people=people, days=days,
                                   seed=seed), **kw)
    sim.ledger.flush_rows = 1 << 40  # keep every row in memory (no path: never dropped)
    return sim


def _run(preset: str, overrides: Sequence[str] = (), *, people: int, days: int, seed: int,
         each_day: Callable[[Simulation, int], None] | None = None,
         before_day: Callable[[Simulation, int], None] | None = None) -> Simulation:
    """Run day by day, calling `before_day(sim, day)` / `each_day(sim, day)` around each."""
    sim = _sim(preset, overrides, people=people, days=days, seed=seed)
    for day in range(days):
        if before_day is not None:
            before_day(sim, day)
        sim.step(day)
        if each_day is not None:
            each_day(sim, day)
    return sim


def _ledger(sim: Simulation) -> dict[str, np.ndarray]:
    return {k: v[: sim.ledger.n] for k, v in sim.ledger.cols.items()}


def _gate_index(sim: Simulation) -> dict[str, int]:
    return {g.name: i for i, g in enumerate(sim.gates.gates)}


def _binomial_ok(k: float, n: float, p: float) -> tuple[bool, str]:
    mean, sd = n * p, math.sqrt(max(n * p * (1 - p), 1e-12))
    return abs(k - mean) <= Z * sd, f"k={k} n={n} p={p:.4f} expected {mean:.1f} +- {Z}x{sd:.1f}"


# 1. Composite score: opt-in, refresh cadence, ledger, gates -------------------------


def test_composite_scores_move_only_on_refresh_days_and_the_ledger_explains_them(tmp_path):
    """Scores change only on multiples of refresh_days; marks show at the next refresh;
    initial score + logged composite changes = final score; bands are of held scores."""
    days, refresh = 100, 13
    path = tmp_path / "ledger.parquet"
    sim = _sim("sesame", [f"composite.refresh_days={refresh}"], people=20_000, days=days,
               seed=9, ledger_path=path)
    sim.run()
    t = pq.read_table(path)

    def col(name):
        c = t.column(name).combine_chunks()
        if hasattr(c, "dictionary_decode"):
            c = c.dictionary_decode()
        return c.to_numpy(zero_copy_only=False)

    kind, day, who, delta, value, cause = (col(k) for k in (
        "kind", "day", "id", "delta", "value", "cause"))
    comp = kind == "composite"
    refresh_days = set(range(refresh, days, refresh))
    assert set(day[comp].tolist()) == refresh_days  # every refresh moves someone, no other day
    assert set(cause[comp].tolist()) == {"composite_refresh"}
    c = sim["composite"]
    n = sim.people.n
    total = np.bincount(who[comp], weights=delta[comp], minlength=n).astype(np.int64)
    assert np.array_equal(c.initial.astype(np.int64) + total, c.score)
    # Each row's value is the new score: initial + cumulative deltas in ledger order.
    running = c.initial.astype(np.int64).copy()
    for p, d, v in zip(who[comp], delta[comp], value[comp], strict=True):
        running[p] += d
        assert running[p] == v
    # A mark is logged with the score held then: the one set at the last refresh before
    # its day (marks come before the refresh on a refresh day).
    marks = np.flatnonzero(kind == "mark")
    assert len(marks) > 1000
    order = np.argsort(day[comp], kind="stable")
    c_day, c_who, c_delta = day[comp][order], who[comp][order], delta[comp][order]
    for d in np.unique(day[marks]):
        upto = np.searchsorted(c_day, d, side="left")  # refreshes strictly before day d
        score_then = c.initial.astype(np.int64) + np.bincount(
            c_who[:upto], weights=c_delta[:upto], minlength=n).astype(np.int64)
        m = marks[day[marks] == d]
        assert np.array_equal(value[m], score_then[who[m]]), d
    # Participants lie in [low, high]; everyone else holds -1 and is never marked.
    op = c.opted
    assert np.all((c.score[op] >= 350) & (c.score[op] <= 950))
    assert np.all(c.score[~op] == -1) and np.all(c.score_true[~op] == -1)
    assert np.all(op[who[kind == "mark"]]) and np.all(op[who[comp]])
    # The day's band counts are those of the held scores.
    row = sim.rows[-1]
    s = c.score[op]
    bands = sim.scenario.composite.bands
    edges = sorted(bands.items(), key=lambda kv: kv[1])
    for i, (name, lo) in enumerate(edges):
        hi = edges[i + 1][1] if i + 1 < len(edges) else 10**9
        assert row.get(f"band_{name}", 0) == np.count_nonzero((s >= lo) & (s < hi))
    assert row["composite_participants"] == op.sum()


def test_opt_in_share_and_who_opts_in():
    """Without income elasticity (and no elder factor) the share of adults taking part is
    Binomial(adults, opt_in); with elasticity the expected count follows the logistic
    rule, and under common random numbers richer adults only join, poorer only leave."""
    n, seed = 30_000, 21

    def opted(extra):
        sim = _sim("sesame", ["composite.opt_in=0.4", *extra], people=n, days=1, seed=seed)
        return sim, sim["composite"].opted

    s0, o0 = opted(["composite.opt_in_income_elasticity=0", "composite.opt_in_elder_factor=1"])
    people = s0.people
    adult = people.age != CHILD
    assert not o0[~adult].any()  # children never take part
    ok, msg = _binomial_ok(o0.sum(), adult.sum(), 0.4)
    assert ok, msg
    assert s0.rows == [] and s0["composite"].participants == o0.sum()

    e, f = 1.5, 0.3
    s1, o1 = opted([f"composite.opt_in_income_elasticity={e}",
                    "composite.opt_in_elder_factor=1"])
    s2, o2 = opted([f"composite.opt_in_income_elasticity={e}",
                    f"composite.opt_in_elder_factor={f}"])
    inc = people.income.astype(np.float64)
    med = np.median(inc[adult])
    for o, fac in ((o1, 1.0), (o2, f)):
        logit = (math.log(0.4 / 0.6) + e * np.log(np.maximum(inc, 1e-6) / med)
                 + np.where(people.age == ELDER, math.log(fac), 0.0))
        p = 1 / (1 + np.exp(-logit[adult]))
        mean, sd = p.sum(), math.sqrt((p * (1 - p)).sum())
        assert abs(o.sum() - mean) <= Z * sd, (o.sum(), mean, sd)
    # Same draws: raising the elasticity moves only the rich in and the poor out.
    rich, poor = adult & (inc > med), adult & (inc < med)
    assert np.all(o1[rich & o0]) and not np.any(o1[poor & ~o0])
    assert np.any(o1 & ~o0) and np.any(o0 & ~o1)
    # Participants are richer than the adults who stay out.
    li = np.log(np.maximum(inc, 1e-6))
    a, b = li[o1], li[adult & ~o1]
    se = math.sqrt(a.var() / len(a) + b.var() / len(b))
    assert a.mean() - b.mean() > Z * se
    # The elder factor only removes elders (same draws).
    assert not np.any(o2 & ~o1)
    assert np.array_equal(o2[people.age == 1], o1[people.age == 1])
    assert (o1 & ~o2).sum() > 0 and np.all(people.age[o1 & ~o2] == ELDER)


def _snapshots(attrs: Sequence[Callable[[Simulation], np.ndarray]]):
    store: list[list[np.ndarray]] = [[] for _ in attrs]

    def each_day(sim, day):
        for s, f in zip(store, attrs, strict=True):
            s.append(f(sim).copy())
    return store, each_day


def _check_threshold_gates(sim, held_by_day, true_by_day, standing):
    """Every application of a gate on one term of `standing` went to someone meeting its
    condition under the held value that day; wrongful exactly when the true value did
    not meet it. Returns the number of applications checked and of wrongful ones."""
    app = sim.gates.applications()
    checked = wrongful = 0
    for gi, g in enumerate(sim.gates.gates):
        if not (isinstance(g.condition, Term) and g.condition.standing == standing):
            continue
        sel = app["gate"] == gi
        d, who, wr = app["day"][sel], app["id"][sel], app["wrongful"][sel]
        held = np.array([held_by_day[x][p] for x, p in zip(d, who, strict=True)])
        true = np.array([true_by_day[x][p] for x, p in zip(d, who, strict=True)])
        line = g.condition.value
        if g.condition.op == ">=":
            assert np.all(held >= line), g.name
            assert np.array_equal(wr, ~(true >= line)), g.name
        else:
            assert np.all((held >= 0) & (held < line)), g.name
            assert np.array_equal(wr, ~((true >= 0) & (true < line))), g.name
        checked += int(sel.sum())
        wrongful += int(wr.sum())
    return checked, wrongful


def test_perks_on_score_gates_go_only_to_participants_with_the_score():
    (score, score_true), each = _snapshots([lambda s: s["composite"].score,
                                            lambda s: s["composite"].score_true])
    sim = _run("sesame", ["channels.bank.false_rate=2e-5"], people=20_000, days=100, seed=9,
               each_day=each)
    app = sim.gates.applications()
    perk = np.isin(app["gate"], [i for i, g in enumerate(sim.gates.gates)
                                 if str(g.condition).startswith("score>=")])
    assert perk.sum() > 1000
    assert np.all(sim["composite"].opted[app["id"][perk]])
    checked, _ = _check_threshold_gates(sim, score, score_true, "score")
    assert checked == perk.sum()


def test_score_sanctions_never_reach_non_participants():
    """City Brain with half of adults taking part: 'score<N' gates apply to participants
    below N only (a non-participant's -1 is no score), wrongful when the true score is
    not below N; the sanction status kept day by day equals one computed afresh."""
    (score, score_true), each = _snapshots([lambda s: s["composite"].score,
                                            lambda s: s["composite"].score_true])
    # False online records at 2e-3 a day leave some 30 people below 600 on false marks
    # alone, so that about a dozen score sanctions are wrongful (at 2e-4, one or two).
    sim = _run("city-brain", ["composite.opt_in=0.5", "channels.online.false_rate=2e-3",
                              "behaviours.judgment_default.rate=5e-4",
                              "court_list.grace_days=10"],
               people=10_000, days=60, seed=3, each_day=each)
    c, court = sim["composite"], sim["court_list"]
    checked, wrongful = _check_threshold_gates(sim, score, score_true, "score")
    assert checked > 500 and wrongful > 0
    thr = max(g.condition.value for g in sim.gates.gates
              if str(g.condition).startswith("score<") and g.sanction)
    listed_held = (court.n_list_true + court.n_list_false) > 0
    held = listed_held | ((c.score >= 0) & (c.score < thr))
    true = (court.n_list_true > 0) | ((c.score_true >= 0) & (c.score_true < thr))
    expect = np.where(held, S_SANCTIONED, 0) | np.where(held & ~true, S_WRONGFUL, 0)
    assert np.array_equal(sim.gates.status, expect)
    assert sim.rows[-1]["sanctioned"] == held.sum() > 100
    assert sim.rows[-1]["sanctioned_wrongful"] == (held & ~true).sum()
    assert not np.any(held & ~c.opted & ~listed_held)


# 2. Side by side: the court list lowers the composite of the listed ------------------


def _penalty_pair(extra: Sequence[str]):
    boost = ["behaviours.judgment_default.rate=1e-3", "court_list.grace_days=10",
             "channels.court.false_rate=3e-5", "feedback.enabled=false",
             "composite.prune_below=0", *extra]
    snaps = {}

    def before(sim, day):
        if sim["composite"].due(day):  # who is listed when the last refresh reads the list
            court = sim["court_list"]
            snaps[id(sim)] = (court.n_list_true.copy(), court.n_list_false.copy())

    sims = [_run("sesame", [*boost, f"composite.listing_penalty={pen}"], people=20_000,
                 days=121, seed=11, before_day=before) for pen in (100, 0)]
    return sims, [snaps[id(s)] for s in sims]


def test_listing_penalty_lowers_the_listed_by_the_penalty():
    """Same seed, penalty 100 vs 0 (no economic feedback, no pruning, so the lists are
    identical): listed participants' scores are 100 lower, unlisted ones move only
    through the relationships dimension (at most its weight x the penalty)."""
    (a, b), ((ta, fa), (tb, fb)) = _penalty_pair([])
    assert np.array_equal(ta, tb) and np.array_equal(fa, fb)  # same court list
    listed = (ta + fa) > 0
    op = a["composite"].opted
    diff = a["composite"].score.astype(int) - b["composite"].score
    unclipped = b["composite"].score - 100 - 10 >= 350
    L = listed & op & unclipped
    assert L.sum() >= 50
    w = a["composite"].weights[4]  # relationships, normalised
    bound = math.ceil(w * 110) + 1
    assert np.all(np.abs(diff[L] + 100) <= bound)
    assert np.median(diff[L]) == -100
    U = op & ~listed
    assert np.all(np.abs(diff[U]) <= bound)
    assert np.mean(diff[U] == 0) > 0.9
    assert np.all(diff[~op] == 0)


def test_listing_penalty_exact_without_relationships_and_true_score_ignores_false_cases():
    (a, b), ((ta, fa), _) = _penalty_pair(["composite.weights.relationships=0"])
    op = a["composite"].opted
    ca, cb = a["composite"], b["composite"]
    held = ((ta + fa) > 0) & op & (cb.score - 100 >= 350)
    true = (ta > 0) & op & (cb.score_true - 100 >= 350)
    false_only = (ta == 0) & (fa > 0) & op & (cb.score - 100 >= 350)
    assert held.sum() >= 50 and false_only.sum() >= 1
    d_held = ca.score.astype(int) - cb.score
    d_true = ca.score_true.astype(int) - cb.score_true
    assert np.all(d_held[held] == -100)
    assert np.all(d_held[op & ((ta + fa) == 0)] == 0)
    assert np.all(d_true[true] == -100)
    assert np.all(d_true[op & (ta == 0)] == 0)  # a false listing never lowers the true score


# 3. Relationships: the mean of one's contacts' scores ------------------------------


def test_relationships_dimension_is_the_mean_of_live_contacts_scores():
    """Honest Shanghai with relationships weighted 0 and 1 (normalised: 0 and 1/2), no
    economic feedback: the rest of the score is the same in both runs, so the score with
    relationships = (score without + low + span x mean normalised contacts' score at the
    previous refresh) / 2, to rounding; and scores correlate more with contacts'."""
    n = 20_000
    prev = {}

    def before(sim, day):
        if sim["composite"].due(day):
            prev[id(sim)] = sim["composite"].score.copy()

    base = ["feedback.enabled=false", "composite.opt_in=0.7"]
    a = _run("honest-shanghai", [*base, "composite.weights.relationships=0"], people=n,
             days=91, seed=5, before_day=before)
    b = _run("honest-shanghai", [*base, "composite.weights.relationships=1"], people=n,
             days=91, seed=5, before_day=before)
    assert b["composite"].weights[4] == pytest.approx(0.5)
    pb = prev[id(b)]
    g, op = b.graph, b["composite"].opted
    lo, hi = 0, 1000
    rel = np.full(n, 0.5)
    for p in np.flatnonzero(op):
        sl = slice(g.indptr[p], g.indptr[p + 1])
        q = g.indices[sl][(g.kind[sl] & DROPPED) == 0]
        q = q[pb[q] >= 0]
        if len(q):
            rel[p] = (pb[q].mean() - lo) / (hi - lo)
    pred = 0.5 * a["composite"].score[op] + 0.5 * (lo + (hi - lo) * rel[op])
    assert np.all(np.abs(b["composite"].score[op] - pred) <= 1.0)

    def corr(sim):
        sc = sim["composite"].score.astype(float)
        xs, ys = [], []
        for p in np.flatnonzero(op):
            q = g.indices[g.indptr[p]:g.indptr[p + 1]]
            q = q[sc[q] >= 0]
            if len(q):
                xs.append(sc[p])
                ys.append(sc[q].mean())
        return np.corrcoef(xs, ys)[0, 1], len(xs)

    (r0, k), (r1, _) = corr(a), corr(b)
    # Fisher z: each has sd 1/sqrt(k-3); the difference at most twice that.
    assert math.atanh(r1) - math.atanh(r0) > Z * 2 / math.sqrt(k - 3), (r0, r1)


# 4. Black box: what people do when they cannot see what counts -------------------


BLACK_BOX_COMMON = ["feedback.enabled=false", "adaptation.deterrence=0",
                    "adaptation.personal_chilling=0"]
UNMARK = ["composite.behaviour_marks.rumour=0", "composite.behaviour_marks.traffic_violation=0"]


def _events(preset: str, extra: Sequence[str]) -> tuple[Simulation, set]:
    sim = _sim(preset, [*BLACK_BOX_COMMON, *extra], people=30_000, days=150, seed=2)
    seen: list[np.ndarray] = []
    orig = sim["society"].behaviour.step

    def step(day):
        ev = orig(day)
        seen.append(np.stack([np.full(len(ev.who), day), ev.who, ev.behaviour], 1))
        return ev

    sim["society"].behaviour.step = step
    sim.run()
    ev = np.concatenate(seen)
    return sim, Counter(map(tuple, ev.tolist()))


@pytest.fixture(scope="module")
def black_box():
    out = {"base": _events("baseline", [])}
    # Everyone takes part, so the global factors reach everyone (see the opt-in test).
    every = "composite.opt_in=1.0"
    for t in (0, 1):
        out[t, "marked"] = _events("honest-shanghai", [f"composite.transparency={t}", every])
        out[t, "unmarked"] = _events("honest-shanghai",
                                     [f"composite.transparency={t}", every, *UNMARK])
    out["opt_in"] = _events("honest-shanghai", ["composite.transparency=0"])
    return out


def test_an_opt_in_system_changes_the_conduct_of_participants_only(black_box):
    """Same seed as no system: non-participants' events are exactly the baseline's;
    participants' deterred and chilled behaviours are a strict subset of theirs."""
    _, base = black_box["base"]
    sim, ev = black_box["opt_in"]
    opted = sim["composite"].opted
    assert 0.1 < opted.sum() / np.count_nonzero(sim.people.age != 0) < 0.35

    def split(events):
        inside = Counter({k: v for k, v in events.items() if opted[k[1]]})
        return inside, events - inside

    base_in, base_out = split(base)
    ev_in, ev_out = split(ev)
    assert ev_out == base_out and base_out.total() > 1000
    assert not (ev_in - base_in) and ev_in.total() < base_in.total()


def _by_behaviour(events: Counter, b: int) -> Counter:
    return Counter({k: v for k, v in events.items() if k[2] == b})


def test_black_box_factors_match_the_guessing_rule(black_box):
    """Relative to no system (same seed, same candidate events), under transparency t a
    scored misbehaviour is kept with 1 - gd (t + (1 - t)/2); under a black box an
    unscored one with 1 - gd/2 and unwatched speech with 1 - chilling x detection / 2;
    with transparency 1 unscored behaviour is untouched. Events under a lower factor
    are a subset of those under a higher one."""
    base_sim, base = black_box["base"]
    s = base_sim.scenario.adaptation
    gd, chill = s.general_deterrence, s.chilling
    names = base_sim.cat.names
    det_online = base_sim.scenario.channels["online"].detection
    scored = [names.index(k) for k in ("loan_arrears", "utility_arrears", "contract_breach",
                                       "overdue_debt", "fare_evasion", "smoking_on_train")]
    tv, crit, rum = (names.index(k) for k in ("traffic_violation", "criticism", "rumour"))
    cases = [  # (variant, behaviours, expected factor)
        ((1, "marked"), scored, 1 - gd), ((0, "marked"), scored, 1 - gd / 2),
        ((1, "unmarked"), [tv], 1.0), ((0, "unmarked"), [tv], 1 - gd / 2),
        ((1, "unmarked"), [crit, rum], 1.0), ((0, "unmarked"), [crit, rum],
                                              1 - chill * det_online / 2),
        # Penalised rumour makes all speech watched: chilled alike whatever is published.
        ((1, "marked"), [crit], 1 - chill * det_online),
        ((0, "marked"), [crit], 1 - chill * det_online),
    ]
    for key, bs, f in cases:
        sim, ev = black_box[key]
        for b in bs:
            assert sim.cat.global_factor[b] == pytest.approx(f), (key, names[b])
        nb = sum(sum(_by_behaviour(base, b).values()) for b in bs)
        k = sum(sum(_by_behaviour(ev, b).values()) for b in bs)
        assert nb > 300, names
        if f == 1.0:
            assert all(_by_behaviour(ev, b) == _by_behaviour(base, b) for b in bs), key
        else:
            for b in bs:  # same candidates: the kept events are a subset of the baseline's
                assert not (_by_behaviour(ev, b) - _by_behaviour(base, b)), (key, names[b])
            ok, msg = _binomial_ok(k, nb, f)
            assert ok, (key, msg)


def test_black_box_deters_scored_misbehaviour_less_and_everything_else_more(black_box):
    """Transparency 0 vs 1, same seed: scored misbehaviour falls less (its events under
    t=1 are a subset of those under t=0), unscored misbehaviour and unwatched speech fall
    only under the black box, watched speech is the same."""
    _, base = black_box["base"]
    names = black_box["base"][0].cat.names
    scored = names.index("loan_arrears")
    _, m0 = black_box[0, "marked"]
    _, m1 = black_box[1, "marked"]
    _, u0 = black_box[0, "unmarked"]
    _, u1 = black_box[1, "unmarked"]
    for b in (scored, names.index("utility_arrears")):
        e0, e1 = _by_behaviour(m0, b), _by_behaviour(m1, b)
        assert not (e1 - e0) and e0.total() > e1.total()
    for b in (names.index("traffic_violation"), names.index("criticism")):
        e0, e1 = _by_behaviour(u0, b), _by_behaviour(u1, b)
        assert not (e0 - e1) and e0.total() < e1.total() == _by_behaviour(base, b).total()
    crit = names.index("criticism")
    assert _by_behaviour(m0, crit) == _by_behaviour(m1, crit)


def test_performative_good_acts_rise_only_under_published_rules(black_box):
    """Rewarded acts rise by 1 + performative x t: untouched under a black box, x1.3 with
    published rules (a Poisson count; tolerance from the variance of k1 - 1.3 k0)."""
    base_sim, base = black_box["base"]
    perf = base_sim.scenario.adaptation.performative
    names = base_sim.cat.names
    _, m0 = black_box[0, "marked"]
    _, m1 = black_box[1, "marked"]
    for name in ("volunteering", "charity", "blood_donation"):
        b = names.index(name)
        k0, k1 = _by_behaviour(base, b).total(), _by_behaviour(m1, b).total()
        assert _by_behaviour(m0, b) == _by_behaviour(base, b)
        f = 1 + perf
        sd = math.sqrt(k1 + f * f * k0)
        assert abs(k1 - f * k0) <= Z * sd, (name, k0, k1)
    vol = names.index("volunteering")
    assert _by_behaviour(m1, vol).total() > _by_behaviour(base, vol).total()


def test_personal_deterrence_under_a_black_box_is_scaled_by_how_clearly_it_counts():
    """Honest Shanghai, black box: a participant's deterrence multiplier falls by
    (1 - deterrence x 1/2) on each day with a negative non-voice mark, their voice
    multiplier by (1 - personal_chilling x 1/2) on each day with a negative voice mark;
    people who take no part are never marked and keep 1."""
    sim = _run("honest-shanghai", ["feedback.enabled=false", "composite.opt_in=0.5",
                                   "behaviours.rumour.rate=2e-2",
                                   "behaviours.traffic_violation.rate=5e-3"],
               people=10_000, days=120, seed=4)
    led = _ledger(sim)
    a = sim.scenario.adaptation
    mark = (led["kind"] == K_MARK) & (led["delta"] < 0)
    b = led["cause"][mark] - sim.ledger.behaviour_cause(0)
    voice = sim.cat.adapt_kind[b] == 2
    n = sim.people.n
    for sel, mult, k in ((~voice, sim["society"].behaviour.deter, a.deterrence),
                         (voice, sim["society"].behaviour.chill, a.personal_chilling)):
        pairs = np.unique(np.stack([led["id"][mark][sel], led["day"][mark][sel]]), axis=1)
        days_marked = np.bincount(pairs[0], minlength=n)
        assert days_marked.max() >= 2
        expect = np.maximum((1 - k * 0.5) ** days_marked, a.floor)
        np.testing.assert_allclose(mult, expect, rtol=1e-5)
    assert np.all(sim["society"].behaviour.deter[~sim["composite"].opted] == 1)


# 5. Nosedive: peer ratings ----------------------------------------------------------


def _nosedive(extra: Sequence[str]):
    (rating, rating_true), each = _snapshots([lambda s: s["rating"].rating,
                                              lambda s: s["rating"].rating_true])
    sim = _run("nosedive", extra, people=10_000, days=120, seed=4, each_day=each)
    return sim, rating, rating_true


def _check_ratings(sim):
    r = sim["rating"]
    adult = sim.people.age != CHILD
    assert np.all(np.isnan(r.rating[~adult]))
    assert np.all((r.rating[adult] >= 1) & (r.rating[adult] <= 5))
    assert np.all((r.rating_true[adult] >= 1) & (r.rating_true[adult] <= 5))
    led = _ledger(sim)
    rr = led["kind"] == K_RATING
    assert np.all((led["value"][rr] >= 100) & (led["value"][rr] <= 500))
    # The ledger logs every change of the shown rating (one decimal), in hundredths.
    start = int(round(sim.scenario.rating.initial * 10)) * 10
    total = np.bincount(led["id"][rr], weights=led["delta"][rr], minlength=sim.people.n)
    shown = np.rint(r.rating[adult].astype(np.float64) * 10) * 10
    assert np.array_equal(start + total[adult], shown)


def _check_rating_status(sim):
    r = sim["rating"]
    sanction = [g.condition.value for g in sim.gates.gates if g.sanction]
    thr = max(sanction)
    with np.errstate(invalid="ignore"):
        held, true = r.rating < thr, r.rating_true < thr
    expect = np.where(held, S_SANCTIONED, 0) | np.where(held & ~true, S_WRONGFUL, 0)
    assert np.array_equal(sim.gates.status, expect)
    return held, true


def test_unbiased_peer_ratings_equal_the_true_ones():
    sim, rating, rating_true = _nosedive(["rating.status_bias=0"])
    adult = sim.people.age != CHILD
    assert np.array_equal(sim["rating"].rating[adult], sim["rating"].rating_true[adult])
    assert sim["rating"].rating[adult].std() > 0.1
    _check_ratings(sim)
    checked, wrongful = _check_threshold_gates(sim, rating, rating_true, "rating")
    assert checked > 1000 and wrongful == 0
    held, _ = _check_rating_status(sim)
    assert held.sum() > 100 and sim.rows[-1]["sanctioned_wrongful"] == 0


def test_status_bias_spreads_ratings_and_makes_sanctions_wrongful():
    sim, rating, rating_true = _nosedive([])
    adult = sim.people.age != CHILD
    h = sim["rating"].rating[adult].astype(np.float64)
    t = sim["rating"].rating_true[adult].astype(np.float64)
    # Held ratings spread more than true ones (paired difference of squared deviations).
    d = (h - h.mean()) ** 2 - (t - t.mean()) ** 2
    assert d.mean() > Z * d.std() / math.sqrt(len(d))
    # Those truly above are rated up, those below down: the bias grows with the standing.
    r = np.corrcoef(t, h - t)[0, 1]
    assert r > Z / math.sqrt(len(t))
    _check_ratings(sim)
    checked, wrongful = _check_threshold_gates(sim, rating, rating_true, "rating")
    assert checked > 1000 and wrongful > 50
    held, true = _check_rating_status(sim)
    assert (held & ~true).sum() > 0 and sim.gates.counts[1] == (held & ~true).sum()


# 6. Credit China: firm items, black and red lists, legal representatives -----------


DISPLAY = {"minor": 20, "moderate": 35, "serious": 50}
CREDIT_CHINA = [
    "population.firms_per_thousand=50", "behaviours.counterfeit_goods.rate=1e-3",
    "behaviours.food_safety_breach.rate=5e-4", "behaviours.unpaid_wages.rate=1e-3",
    "behaviours.tax_arrears.rate=2e-3", "behaviours.firm_judgment_default.rate=5e-4",
    "firm_lists.red_after_days=30",
    *(f"firm_lists.display_days.{k}=[{v}, {v}]" for k, v in DISPLAY.items()),
]


def _credit_china(false_rate: float):
    (rep_t, rep_f), each = _snapshots([lambda s: s["firm_lists"].rep_true,
                                       lambda s: s["firm_lists"].rep_false])
    sim = _run("credit-china", [*CREDIT_CHINA, f"firm_lists.false_rate={false_rate}"],
               people=20_000, days=150, seed=8, each_day=each)
    return sim, rep_t, rep_f


@pytest.fixture(scope="module")
def credit_china():
    return _credit_china(3e-4)


def test_items_are_shown_for_exactly_their_display_period_and_blacklist_serious_firms(
        credit_china):
    sim, _, _ = credit_china
    days = sim.scenario.run.days
    fl, firms = sim["firm_lists"], sim.firms
    led = _ledger(sim)
    f = (led["entity"] == 1) & (led["kind"] == K_BLACKLIST)
    shown = f & (led["delta"] == 1)
    gone = f & (led["delta"] == -1)
    assert np.all(led["cause"][gone] == C_DISPLAY_EXPIRY)
    sev_names = sim.scenario.firm_lists.severity
    names = sim.cat.names
    beh = led["cause"][shown] - sim.ledger.behaviour_cause(0)
    sev = [sev_names[names[b]] for b in beh]
    end = led["day"][shown] + np.array([DISPLAY[s] for s in sev])
    firm, rec = led["id"][shown], led["record"][shown]
    assert Counter(sev).keys() == {"minor", "moderate", "serious"}
    assert np.any(rec == R_FALSE) and np.any(rec == R_TRUE)
    ended = end < days
    assert Counter(zip(firm[ended], end[ended], rec[ended], strict=True)) == Counter(
        zip(led["id"][gone], led["day"][gone], led["record"][gone], strict=True))
    # What is still on show at the end: the items count, and the blacklist.
    on = ~ended
    assert np.array_equal(np.bincount(firm[on], minlength=firms.n), fl.items)
    serious = on & (np.array(sev) == "serious")
    black = np.zeros(firms.n, bool)
    black[firm[serious]] = True
    black_true = np.zeros(firms.n, bool)
    black_true[firm[serious & (rec == R_TRUE)]] = True
    assert black.sum() > 20
    assert np.array_equal(fl.black.sum(axis=0) > 0, black)
    assert np.array_equal(fl.black[0] > 0, black_true)
    assert sim.rows[-1]["firms_blacklisted"] == black.sum()
    # Legal representatives count the firms they represent that are blacklisted.
    rep = firms.legal_rep
    n = sim.people.n
    assert np.array_equal(fl.rep_true, np.bincount(rep[black_true], minlength=n))
    assert np.array_equal(fl.rep_false, np.bincount(rep[black & ~black_true], minlength=n))
    assert np.all(fl.rep_true[rep[black]] + fl.rep_false[rep[black]] >= 1)
    # Red list: no item on show for red_after_days (for firms whose clean spell began
    # in the run, on the day their last item ended).
    red = fl.red_listed_mask(days - 1)
    assert not np.any(red & (fl.items > 0))
    zero = gone & (led["value"] == 0)
    last_clean = np.full(firms.n, -1)
    last_clean[led["id"][zero]] = led["day"][zero]  # rows are in day order: last wins
    seen = (last_clean >= 0) & (fl.items == 0)
    R = sim.scenario.firm_lists.red_after_days
    assert np.array_equal(red[seen], (days - 1 - last_clean[seen]) >= R)
    assert red[seen].any() and (~red[seen]).any()


def test_blacklisted_gates_apply_only_to_legal_reps_of_blacklisted_firms(credit_china):
    sim, rep_t, rep_f = credit_china
    app = sim.gates.applications()
    gates = _gate_index(sim)
    bl = [gates[g] for g in gates if str(sim.gates.gates[gates[g]].condition) == "blacklisted"]
    assert np.all(np.isin(app["gate"], bl))
    d, who, wr = app["day"], app["id"], app["wrongful"]
    t = np.array([rep_t[x][p] for x, p in zip(d, who, strict=True)])
    f = np.array([rep_f[x][p] for x, p in zip(d, who, strict=True)])
    assert len(d) > 200
    assert np.all(t + f >= 1)
    assert np.array_equal(wr, t == 0)  # wrongful exactly when only false items blacklist
    assert wr.sum() > 0
    assert np.all(np.isin(who, sim.firms.legal_rep))
    # Shaming (once) on each rep's entry to the blacklist, read from the ledger.
    led = _ledger(sim)
    enter = ((led["entity"] == 0) & (led["kind"] == K_BLACKLIST) & (led["delta"] > 0)
             & (led["value"] == 1))
    assert np.all(led["cause"][(led["entity"] == 0) & (led["kind"] == K_BLACKLIST)]
                  == C_BLACKLIST_REP)
    sh = app["gate"] == gates["rep_public_shaming"]
    assert Counter(zip(d[sh], who[sh], strict=True)) == Counter(
        zip(led["day"][enter], led["id"][enter], strict=True))
    fl = sim["firm_lists"]
    held = (fl.rep_true + fl.rep_false) > 0
    expect = np.where(held, S_SANCTIONED, 0) | np.where(held & (fl.rep_true == 0),
                                                        S_WRONGFUL, 0)
    assert np.array_equal(sim.gates.status, expect)


def test_without_false_items_no_legal_rep_is_wrongfully_sanctioned():
    sim, _, _ = _credit_china(0.0)
    app = sim.gates.applications()
    assert len(app["id"]) > 200 and not app["wrongful"].any()
    assert sim["firm_lists"].rep_false.sum() == 0
    led = _ledger(sim)
    assert not np.any((led["kind"] == K_BLACKLIST) & (led["record"] != R_TRUE))


# 7. Warn before punishing, and 8. collusion: replaying the points rules ------------


def _replay_points(sim: Simulation, *, check_warnings: bool = True):
    """Replay the ledger's score rows in order under the warning rule; return the held
    and true scores it implies, and the counts of (first warnings, repeat warnings,
    small deductions, large deductions)."""
    p = sim.scenario.points
    led = _ledger(sim)
    base = sim.ledger.behaviour_cause(0)
    delta_of = sim.cat.delta
    n = sim.people.n
    held = np.full(n, p.initial, np.int64)
    true = held.copy()
    warned: dict[int, int] = defaultdict(lambda: -1)
    warned_true: dict[int, int] = defaultdict(lambda: -1)
    had_warning: set[int] = set()
    counts = Counter()
    for kind, day, who, cause, rec, d, v in zip(
            led["kind"], led["day"], led["id"], led["cause"], led["record"], led["delta"],
            led["value"], strict=True):
        if kind not in (K_SCORE, K_WARNING):
            continue
        record_row = cause >= base
        full = int(delta_of[cause - base]) if record_row else int(d)
        small = record_row and -p.warn_max <= full < 0
        if check_warnings and record_row:
            expect_warning = small and warned[who] <= day
            assert (kind == K_WARNING) == expect_warning, (day, who, cause, kind)
            if kind == K_WARNING:
                assert d == 0
                counts["repeat_warning" if who in had_warning else "first_warning"] += 1
                had_warning.add(who)
                warned[who] = day + p.warning_days
            elif small:
                counts["small_deducted"] += 1
            elif full < -p.warn_max:
                counts["large_deducted"] += 1
            if kind == K_SCORE:
                assert d == full
        if kind == K_SCORE:
            held[who] += d
        assert v == held[who]  # the row's value: the score after it (unchanged if warned)
        if rec == R_TRUE:
            dt = full
            if small and warned_true[who] <= day:
                warned_true[who] = day + p.warning_days
                dt = 0
            true[who] += dt
    return held, true, counts


WARN = ["behaviours.traffic_violation.rate=1e-2", "behaviours.rumour.rate=2e-3",
        "channels.traffic_camera.false_rate=2e-4", "points.warning_days=30",
        "behaviours.judgment_default.rate=5e-4", "court_list.grace_days=10"]


def test_small_deductions_are_first_a_warning_that_costs_nothing():
    """Rongcheng (warn_max 10) with a 30-day warning: replaying the ledger, a small
    deduction is a warning row exactly when the person has had no warning in the last
    30 days (held score; a false record uses it up too), a deduction above 10 points is
    never a warning, and warnings cost nothing; the true score follows the same rule
    applied to true records only."""
    sim = _run("rongcheng", WARN, people=10_000, days=120, seed=6)
    held, true, counts = _replay_points(sim)
    assert np.array_equal(held, sim["points"].score)
    assert np.array_equal(true, sim["points"].score_true)
    assert counts["first_warning"] > 500 and counts["repeat_warning"] > 50
    assert counts["small_deducted"] > 50 and counts["large_deducted"] > 20
    led = _ledger(sim)
    warn = led["kind"] == K_WARNING
    b = led["cause"][warn] - sim.ledger.behaviour_cause(0)
    assert np.all((sim.cat.delta[b] < 0) & (sim.cat.delta[b] >= -10))
    per_day = np.bincount(led["day"][warn], minlength=120)
    assert [r["warnings"] for r in sim.rows] == per_day.tolist()
    # A false small record can spend a warning: some true records then count in full.
    assert np.any(sim["points"].score_true != sim["points"].score)


def test_without_warnings_the_same_records_are_all_deducted():
    """Same seed, warn_max 0, no adaptation or economic feedback (so the records are the
    same): no warning rows, and each person's score is lower by exactly the small
    deductions that were warnings."""
    days = 60
    a = _run("rongcheng", [*WARN, "adaptation.enabled=false", "feedback.enabled=false"],
             people=10_000, days=days, seed=6)
    b = _run("rongcheng", [*WARN, "adaptation.enabled=false", "feedback.enabled=false",
                           "points.warn_max=0"], people=10_000, days=days, seed=6)
    la, lb = _ledger(a), _ledger(b)
    assert not np.any(lb["kind"] == K_WARNING) and "warnings" not in b.rows[0]
    w = la["kind"] == K_WARNING
    base = a.ledger.behaviour_cause(0)
    saved = np.bincount(la["id"][w], weights=a.cat.delta[la["cause"][w] - base],
                        minlength=a.people.n).astype(np.int64)
    assert saved.sum() < -1000
    # With no adaptation and no feedback, records are identical: only the warnings differ.
    assert np.array_equal(b["points"].score, a["points"].score + saved)


COLLUDE = ["threats.colluders_per_million=5000", "threats.collusion_rate=0.3"]


@pytest.fixture(scope="module")
def collusion():
    (grade, grade_true), each = _snapshots([lambda s: s["points"].grade,
                                            lambda s: s["points"].grade_true])
    with_ = _run("rongcheng", COLLUDE, people=10_000, days=120, seed=6, each_day=each)
    without = _run("rongcheng", [], people=10_000, days=120, seed=6)
    return with_, without, grade, grade_true


def test_colluders_certify_each_other_only_while_below_the_target(collusion):
    sim, plain, _, _ = collusion
    th = sim["threats"]
    floor = sim.scenario.points.grade_floors[sim.scenario.threats.collusion_target]
    col = np.zeros(sim.people.n, bool)
    col[th.colluders] = True
    assert col.sum() == 50
    led = _ledger(sim)
    score_rows = (led["kind"] == K_SCORE) & (led["entity"] == 0)
    cert = score_rows & (led["record"] == R_COLLUSION)
    assert np.all(col[led["id"][cert]])
    assert cert.sum() == sum(r["collusion_certificates"] for r in sim.rows)
    assert np.all(led["cause"][cert] == sim.ledger.behaviour_cause(
        sim.cat.index(sim.scenario.threats.collusion_behaviour)))
    # Start-of-day score of each certified colluder: below the floor.
    order = np.flatnonzero(score_rows)
    start = np.full(sim.people.n, sim.scenario.points.initial, np.int64)
    today = -1
    start_of_day = {}
    for r in order:
        d, p = int(led["day"][r]), int(led["id"][r])
        if d != today:
            start_of_day = {}
            today = d
        if p not in start_of_day:
            start_of_day[p] = start[p]
        if cert[r]:
            assert start_of_day[p] < floor, (d, p, start_of_day[p])
        start[p] += led["delta"][r]
    # Scores rose to the target and stopped there: above it by no more than the gains of
    # the last day with certificates (and of genuine good acts after it).
    s = sim["points"].score[col]
    assert np.mean(s >= floor) >= 0.9
    for p in th.colluders:
        mine = score_rows & (led["id"] == p)
        last = led["day"][mine & cert].max()
        gain_last = led["delta"][mine & (led["day"] == last) & (led["delta"] > 0)].sum()
        after = led["delta"][mine & (led["day"] > last) & (led["delta"] > 0)].sum()
        assert not np.any(cert & mine & (led["day"] > last))
        assert sim["points"].score[p] <= floor - 1 + gain_last + after
    assert s.mean() > plain["points"].score[col].mean() + 20


def test_collusion_leaves_everyone_else_untouched(collusion):
    """Common random numbers: people outside the ring keep their scores, true scores,
    grades, ledger rows and gate applications exactly."""
    sim, plain, _, _ = collusion
    col = np.zeros(sim.people.n, bool)
    col[sim["threats"].colluders] = True
    for attr in ("score", "score_true", "grade", "grade_true"):
        assert np.array_equal(getattr(sim["points"], attr)[~col],
                              getattr(plain["points"], attr)[~col])
    def rows(s: Simulation) -> list[tuple]:
        """The rows of those outside the ring, each with the row it refers to in place of
        its row number (the ring's rows shift the numbers)."""
        led = _ledger(s)
        content = list(zip(*(led[k].tolist() for k in led if k != "ref"), strict=True))
        ref = led["ref"] - s.ledger.first
        keep = np.flatnonzero(~((led["entity"] == 0) & col[led["id"]]))
        return sorted(content[i] + (content[ref[i]] if ref[i] >= 0 else (),) for i in keep)

    assert rows(sim) == rows(plain)
    aa, ab = sim.gates.applications(), plain.gates.applications()

    def apps(a):
        keep = ~col[a["id"]]
        return sorted(zip(*(a[k][keep].tolist() for k in a), strict=True))

    assert apps(aa) == apps(ab)


def test_perks_won_by_collusion_are_wrongful(collusion):
    sim, plain, grade, grade_true = collusion
    held, true, _ = _replay_points(sim)
    assert np.array_equal(held, sim["points"].score)
    assert np.array_equal(true, sim["points"].score_true)  # certificates never reach it
    app = sim.gates.applications()
    gi = _gate_index(sim)["aaa_perks"]
    g = sim.gates.gates[gi]
    sel = (app["gate"] == gi) & np.isin(app["id"], sim["threats"].colluders)
    d, who, wr = app["day"][sel], app["id"][sel], app["wrongful"][sel]
    assert sel.sum() > 50
    gh = np.array([grade[x][p] for x, p in zip(d, who, strict=True)])
    gt = np.array([grade_true[x][p] for x, p in zip(d, who, strict=True)])
    assert np.all(gh <= g.condition.value)  # AA or better as held
    assert np.array_equal(wr, gt > g.condition.value)
    assert wr.mean() > 0.9
    pa = plain.gates.applications()
    # Without the ring the same people win far fewer perks.
    assert np.isin(pa["id"][pa["gate"] == gi], sim["threats"].colluders).sum() < sel.sum() / 2


# Edge cases -------------------------------------------------------------------------


def test_a_composite_with_no_participants_runs():
    sim = _sim("sesame", ["composite.opt_in=0"], people=3000, days=40, seed=1)
    sim.run()
    assert sim["composite"].participants == 0
    assert not np.any(_ledger(sim)["kind"] == K_COMPOSITE)


def test_peer_ratings_with_no_interactions_run():
    sim = _sim("nosedive", ["rating.interactions=0"], people=3000, days=10, seed=1)
    sim.run()
    assert not np.any(_ledger(sim)["kind"] == K_RATING)


def test_an_interaction_weights_both_ratings_by_the_standing_before_it():
    """Two adults tied only to each other, same sociability, no noise, no bias: each
    interaction gives both the same stars, weighted by the rater's rating before it,
    so the two ratings stay equal whoever starts each interaction."""
    people = SimpleNamespace(n=2, age=np.array([1, 1], np.uint8),
                             sociability=np.array([0.9, 0.9], np.float32))
    graph = SimpleNamespace(indptr=np.array([0, 1, 2], np.int64),
                            indices=np.array([1, 0], np.int32), kind=np.array([2, 2], np.uint8))
    params = PeerRating(enabled=True, interactions=10.0, noise=0.0, status_bias=0.0)
    scenario = SimpleNamespace(rating=params)
    sim = SimpleNamespace(scenario=scenario, people=people, graph=graph, streams=Streams(1))
    pr = PeerRatings(sim)
    pr.step(Ledger(None, [], []), 0)
    assert pr.ratings_today >= 4
    assert pr.rating[0] != pytest.approx(4.0)
    assert pr.rating[0] == pr.rating[1]


def test_a_capped_serious_deduction_is_never_a_mere_warning():
    """Whether a deduction is minor enough to warn about is judged before the
    proportionality cap: with cap = warn_max = 10, only behaviours whose own deduction is
    at most 10 points are ever warned about, and the capped serious ones cost 10."""
    sim = _run("rongcheng", ["safeguards.proportionality_cap=10", "points.warn_max=10",
                             "behaviours.public_damage.rate=2e-3",
                             "behaviours.traffic_violation.rate=5e-3"],
               people=5000, days=60, seed=3)
    led = _ledger(sim)
    names = sim.cat.names
    cause = led["cause"] - sim.ledger.behaviour_cause(0)
    warned = {names[c] for c in np.unique(cause[led["kind"] == K_WARNING])}
    assert "traffic_violation" in warned
    assert all(-10 <= sim.scenario.points.deltas[b] < 0 for b in warned)
    damage = (led["kind"] == K_SCORE) & (cause == names.index("public_damage"))
    assert damage.sum() > 50 and np.all(led["delta"][damage] == -10)


@pytest.mark.parametrize("preset, condition, extra, pooled", [
    # Composite scores hold between refreshes: uses are drawn from the pool of those
    # who meet the condition.
    ("city-brain", "'score>=0'", [], True),
    # Grades can move any day: uses are drawn over everyone (grades frozen here, so
    # that every adult meets the condition throughout).
    ("rongcheng", "'grade>=A'", ["points.deltas={}", "points.instant_grade={}",
                                 "court_list.enabled=false"], False),
])
def test_gates_met_by_many_apply_at_their_daily_rate(preset, condition, extra, pooled):
    """A use gate that many meet is sampled by thinning: each adult who meets it applies
    on a day with probability 1 - exp(-use_i), use_i = use_rate x min(income / median,
    3) if income-driven, at most once a day. Totals over the run are checked against
    the sum of those probabilities, within four standard deviations of the sum of
    independent Bernoullis."""
    days, rate = 20, 0.02
    gates = []
    for name, driven in (("everyone_perk", "false"), ("rich_perk", "true")):
        gates += [f"gates.{name}.domain=consumption", f"gates.{name}.condition={condition}",
                  f"gates.{name}.effect=perk", f"gates.{name}.use_rate={rate}",
                  f"gates.{name}.income_driven={driven}", f"gates.{name}.loss_days=0"]
    sim = _run(preset, ["gates={}", *extra, *gates], people=20_000, days=days, seed=11)
    c, p = sim.gates, sim.people
    assert not c.score_candidates
    assert sorted(c.score_pools) == ([0, 1] if pooled else [])
    adult = p.age != CHILD
    if sim.get("composite") is not None:
        adult &= sim["composite"].score >= 0
    else:
        assert np.all(sim["points"].grade[adult] == sim["points"].grade[adult][0])
    app = c.applications()
    names = [g.name for g in c.gates]
    for gi, name in enumerate(names):
        use = rate * (np.minimum(p.income[adult] / c.median_income, 3.0)
                      if c.gates[gi].income_driven else np.ones(adult.sum()))
        q = -np.expm1(-use)
        mean, sd = days * q.sum(), math.sqrt(days * (q * (1 - q)).sum())
        sel = app["gate"] == gi
        assert abs(sel.sum() - mean) < 4 * sd, (name, sel.sum(), mean, sd)
        assert np.all(adult[app["id"][sel]])
        per_day = Counter(zip(app["day"][sel].tolist(), app["id"][sel].tolist(), strict=True))
        assert max(per_day.values()) == 1  # at most once a day
