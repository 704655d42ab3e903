"""The module protocol: the plan the engine runs, the registry, modules written by users,
and that nothing is built that no module reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import numpy as np
import pyarrow.parquet as pq
import pytest

from credsim.engine import Simulation
from credsim.modules import PHASES, Day, Hook, Module, Result, register, unregister
from credsim.modules.plan import module_classes, plan_of
from credsim.modules.registry import RegistryError, kinds
from credsim.results import run_dir
from credsim.scenario.load import load_scenario

ROOT = Path(__file__).resolve().parents[1]
EVERYTHING = ["composite.enabled=true", "rating.enabled=true", "firm_lists.enabled=true",
              "threats.insiders_per_million=100", "threats.informant_rate=0.0001",
              "safeguards.expiry_days=30", "safeguards.review_capacity=50"]


def _steps(preset: str, overrides=()) -> list[tuple[str, str, str]]:
    return [(st.phase, st.module, st.method)
            for st in plan_of(load_scenario(preset, list(overrides)))]


def test_the_plan_runs_the_phases_in_their_fixed_order():
    steps = _steps("rongcheng", EVERYTHING)
    order = [PHASES.index(phase) for phase, _, _ in steps]
    assert order == sorted(order)
    assert {k for _, k, _ in steps} >= {"society", "points", "court_list", "composite",
                                         "rating", "firm_lists", "safeguards", "threats",
                                         "gates", "adaptation"}


def test_within_the_score_phase_reversals_come_before_the_day_and_schedules_after():
    """Expired caps, expired marks and caught edits are undone before the day's records
    are scored; audits are drawn before expiry is scheduled (an edit an audit will
    catch is reversed once, by the audit)."""
    score = [(k, m) for p, k, m in _steps("rongcheng", EVERYTHING) if p == "score"]
    assert score == [("points", "expire_caps"), ("safeguards", "expire_marks"),
                     ("threats", "reverse_caught"), ("points", "score_records"),
                     ("threats", "schedule_audits"), ("safeguards", "schedule_expiry"),
                     ("composite", "mark_records"), ("rating", "rate")]


def test_a_scenario_runs_only_the_modules_it_asks_for():
    kinds_run = {c.kind for c in module_classes(load_scenario("court-blacklist"))}
    assert "court_list" in kinds_run
    assert not kinds_run & {"points", "composite", "rating", "firm_lists", "threats"}


def test_the_engine_names_no_system():
    """The engine's source mentions no module kind but the core ones it serves (the
    economy, the gates): systems are reached through the registry alone."""
    source = (ROOT / "src" / "credsim" / "engine.py").read_text()
    named = [k for k in kinds() if k not in ("economy", "gates")
             and (f'"{k}"' in source or f".{k}" in source)]
    assert named == []


# Where lookup explains, the audit measures and the report draws, what central code
# runs for every system; what a system knows of its own rows, measures and figures is
# in its folder (explain.py, audit.py, report.py).
CENTRAL = {
    "results/lookup.py": ("_explain", "link", "firm_name"),
    # The harm measures that cross systems stay the audit's (docs/measures.md): sanctions
    # (listings among them), wrongful and disparity, stratification by a parent's standing.
    "audit/measures.py": ("_compute", "RunTables", "_Audit.own"),
    "audit/report.py": ("_fig_distribution", "_fig_grade_flows", "_drawn"),
}


def _sources(path: Path, names: tuple[str, ...]) -> dict[str, str]:
    """The source of each named function, class or method (Class.method) of a file."""
    import ast

    text = path.read_text()
    found: dict[str, str] = {}

    def visit(nodes, prefix: str = "") -> None:
        for node in nodes:
            if isinstance(node, ast.FunctionDef | ast.ClassDef):
                name = prefix + node.name
                if name in names:
                    found[name] = ast.get_source_segment(text, node)
                if isinstance(node, ast.ClassDef):
                    visit(node.body, f"{name}.")

    visit(ast.parse(text).body)
    assert set(found) == set(names), f"{path}: missing {set(names) - set(found)}"
    return found


def _system_words() -> set[str]:
    """How code names a built-in system: its kind, its scenario section, its ledger
    kinds, its results columns."""
    from credsim.modules.registry import BUILTIN

    systems = [c for k, c in kinds().items() if c.__module__.startswith("credsim.systems.")
               and f"{c.__module__.rsplit('.', 1)[0]}:{c.__name__}" in BUILTIN]
    assert {c.kind for c in systems} == {"points", "court_list", "composite", "rating",
                                         "firm_lists"}
    words = {f'"{k}"' for c in systems for k in (c.kind, *c.ledger_kinds)}
    words |= {f".{section}" for section in ("points", "court_list", "composite", "rating",
                                            "firm_lists")}
    words |= {f'"{r.name.split("<")[0]}' for c in systems for r in c.results}
    return words


def test_lookup_audit_and_report_name_no_system_where_systems_speak_for_themselves():
    """The central code that explains ledger rows, computes system measures and draws
    system figures names no built-in system: each module answers its hooks (explain,
    audit, report_figures) from its own folder, so a new system costs no edit there."""
    words = _system_words()
    for file, names in CENTRAL.items():
        for name, source in _sources(ROOT / "src" / "credsim" / file, names).items():
            named = sorted(w for w in words if w in source)
            assert named == [], f"{file}: {name} names {named}"


def test_no_measure_a_system_computes_is_named_by_the_audit():
    """The measures the systems' audit.py give are named in their folder only (and in
    credsim.labels, which labels every measure once)."""
    import re

    own = {m for f in (ROOT / "src" / "credsim" / "systems").glob("*/audit.py")
           for m in re.findall(r'Measured\("(\w+)"', f.read_text())}
    assert {"grade_share", "grade_transition", "band_share", "rating_mean"} <= own
    audit = (ROOT / "src" / "credsim" / "audit" / "measures.py").read_text()
    assert sorted(m for m in own if f'"{m}"' in audit) == []


def test_systems_hooks_live_in_their_folders_and_load_when_called():
    """Each built-in system's explain, audit and report_figures hooks name a function of
    explain.py, audit.py or report.py in its own folder, which loading the system (as the
    engine and lookup do) does not import."""
    import subprocess
    import sys

    targets = {}
    for cls in kinds().values():
        for hook, file in (("explain", "explain"), ("audit", "audit"),
                           ("report_figures", "report")):
            impl = cls.__dict__.get(hook)
            if impl is not None and hasattr(impl, "target"):
                folder = cls.__module__.rpartition(".")[0]
                assert impl.target == f"{folder}.{file}:{hook}", impl.target
                targets[impl.target.partition(":")[0]] = cls.kind
    assert {"points", "court_list", "composite", "rating", "firm_lists"} <= set(
        targets.values())
    code = ("import sys; from credsim.modules.registry import kinds; import "
            "credsim.results.lookup; kinds(); print(sorted(m for m in sys.modules if "
            "m.startswith('credsim.systems.') and m.rpartition('.')[2] in "
            "('explain', 'audit', 'report')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


def test_every_hook_names_a_method_and_a_known_phase():
    for cls in kinds().values():
        for h in cls.hooks:
            assert h.phase in PHASES and callable(getattr(cls, h.method))
    with pytest.raises(ValueError, match="unknown phase"):
        Hook("lunch", "eat")


class _Counter(Module):
    """A system written by a user: counts the person records that reach scoring."""

    kind = "record_counter"
    build_order = 60
    hooks = (Hook("score", "count", 70),)
    results = (Result("records_counted", "int64", "records reaching scoring", "records/day"),)

    def __init__(self, sim) -> None:
        super().__init__(sim)
        self.today = 0
        self.total = 0

    def count(self, d: Day) -> None:
        self.today = int(np.count_nonzero(~d.records.is_firm))
        self.total += self.today

    def record(self, d: Day, row: dict) -> None:
        row["records_counted"] = self.today


@pytest.fixture
def counter():
    register(_Counter)
    yield _Counter
    unregister(_Counter.kind)


def test_a_registered_module_runs_in_the_plan_and_writes_its_results(counter, tmp_path):
    s = load_scenario("rongcheng", people=3000, days=30)
    assert ("score", "record_counter", "count") in _steps("rongcheng")
    out = tmp_path / "run"
    tmp = run_dir.prepare(out)
    sim = run_dir.simulate(s, tmp)
    run_dir.commit(tmp, out)
    ts = pq.read_table(out / "timeseries.parquet").to_pydict()
    assert sum(ts["records_counted"]) == sim["record_counter"].total > 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert "score/record_counter" in manifest["module_timings_seconds"]


class _Explained(_Counter):
    """The counter, also explaining rows in lookup and drawing in the report."""

    kind = "explained_counter"
    seen: ClassVar[list] = []

    @classmethod
    def explain(cls, entries, context) -> None:
        cls.seen.append((context.instance.name, context.entity, len(entries)))
        for e in entries:
            if e.kind == "score":  # another system's rows: a plugin's own would be its kinds
                e.note += " [counted]"

    @classmethod
    def report_figures(cls, section, run, figs, instance) -> list[str]:
        total = int(run.ts["records_counted"].sum())
        return [f'<p class="note">{section}: {total} records counted</p>']


def test_a_registered_module_explains_and_draws_through_the_hooks(tmp_path):
    from credsim.audit.report import write_report
    from credsim.results.lookup import lookup

    register(_Explained)
    try:
        out = tmp_path / "run"
        tmp = run_dir.prepare(out)
        sim = run_dir.simulate(load_scenario("rongcheng", people=3000, days=30), tmp)
        run_dir.commit(tmp, out)
        record = lookup(out, str(_first_scored(out)))
        scores = [e for e in record.ledger if e.kind == "score"]
        assert scores and all(e.note.endswith(" [counted]") and len(e.note) > 10
                              for e in scores)
        assert _Explained.seen == [("explained_counter", "person", len(record.ledger))]
        html = write_report(out, tmp_path / "report.html").read_text()
    finally:
        unregister(_Explained.kind)
    total = sim["explained_counter"].total
    scores_part = html[html.index("<h2>Scores over time</h2>"):html.index("<h2>Grade flows")]
    flows_part = html[html.index("<h2>Grade flows</h2>"):html.index("<h2>Sanctions per gate")]
    assert f"scores: {total} records counted" in scores_part
    assert f"flows: {total} records counted" in flows_part


def _first_scored(run) -> int:
    t = pq.read_table(run / "ledger.parquet", columns=["entity", "id", "kind"]).to_pylist()
    return next(r["id"] for r in t if r["entity"] == "person" and r["kind"] == "score")


def test_a_module_does_not_change_what_it_does_not_touch(counter):
    """Adding a module that only reads leaves every other result identical."""
    with_it = Simulation(load_scenario("rongcheng", people=3000, days=30))
    with_it.run()
    unregister(_Counter.kind)
    without = Simulation(load_scenario("rongcheng", people=3000, days=30))
    without.run()
    register(_Counter)
    assert [{k: v for k, v in r.items() if k != "records_counted"} for r in with_it.rows] == (
        without.rows)


def test_a_kind_cannot_be_registered_twice(counter):
    with pytest.raises(RegistryError, match="already registered"):
        register(_Counter)

    class Impostor(Module):
        kind = "points"

    with pytest.raises(RegistryError, match="'points' is already registered"):
        register(Impostor)
    with pytest.raises(RegistryError, match="not a credsim Module"):
        register(dict)


def test_the_graph_is_built_only_when_a_module_reads_ties():
    assert Simulation(load_scenario("court-blacklist", people=2000, days=1)).graph is None
    assert Simulation(load_scenario("rongcheng", people=2000, days=1)).graph is not None
    no_pruning = ["adaptation.prune_prob=0"]
    assert Simulation(load_scenario("rongcheng", no_pruning, people=2000, days=1)).graph is None
    informants = load_scenario("rongcheng", [*no_pruning, "threats.informant_rate=0.001"],
                               people=2000, days=1)
    assert Simulation(informants).graph is not None


def test_skipping_the_graph_changes_nothing_else(monkeypatch, tmp_path):
    """court-blacklist runs no module that reads ties: forcing the graph to be built
    anyway gives the same timeseries and ledger."""
    from credsim.adaptation import Adapt

    def run(out: Path) -> Path:
        tmp = run_dir.prepare(out)
        run_dir.simulate(load_scenario("court-blacklist", people=4000, days=60), tmp)
        run_dir.commit(tmp, out)
        return out

    skipped = run(tmp_path / "skipped")
    monkeypatch.setattr(Adapt, "needs_ties", classmethod(lambda cls, s, classes: True))
    built = run(tmp_path / "built")
    for table in ("timeseries", "ledger", "sanctions"):
        assert pq.read_table(skipped / f"{table}.parquet").equals(
            pq.read_table(built / f"{table}.parquet")), table
    people = pq.read_table(skipped / "people.parquet").column_names
    full = pq.read_table(built / "people.parquet").column_names
    # Sociability shapes the graph alone here: without one it is drawn, not kept.
    assert set(full) - set(people) == {"sociability", "degree", "contacts", "ties_dropped"}
    kept = [c for c in full if c in people]
    assert pq.read_table(skipped / "people.parquet").equals(
        pq.read_table(built / "people.parquet", columns=kept))
    assert json.loads((skipped / "manifest.json").read_text())["ties"] is None


def test_module_timings_are_parts_of_their_phase(tmp_path):
    s = load_scenario("sesame", people=3000, days=20)
    out = tmp_path / "run"
    tmp = run_dir.prepare(out)
    sim = run_dir.simulate(s, tmp)
    run_dir.commit(tmp, out)
    m = json.loads((out / "manifest.json").read_text())
    # One timing per (phase, module) pair of the plan the scenario gives, no other.
    assert set(m["module_timings_seconds"]) == {st.key for st in plan_of(s)}
    assert m["modules"] == [c.kind for c in module_classes(s)]
    for phase in PHASES:
        parts = sum(v for k, v in sim.module_timings.items() if k.startswith(phase + "/"))
        assert parts <= sim.timings[phase] + 1e-6


def test_credsim_plan_prints_the_plan_the_engine_runs(cli, one_error):
    r = cli("plan", "sesame", "--format", "json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    hooks = [(x["phase"], x["module"], x["hook"]) for x in rows if x["phase"] != "record"]
    assert hooks == _steps("sesame")
    assert all(x["does"] for x in rows)  # every hook says what it does
    table = cli("plan", "court-blacklist")
    assert "not built (no module reads ties)" in table.stdout
    bad = cli("plan", "no-such-preset")
    assert bad.returncode == 2 and "no-such-preset" in one_error(bad)


def test_the_python_api_gives_the_same_plan():
    import credsim

    rows = credsim.plan("sesame", set={"rating.enabled": True})
    hooks = [(r["phase"], r["module"], r["hook"]) for r in rows if r["phase"] != "record"]
    assert hooks == _steps("sesame", ["rating.enabled=true"])
    assert ("score", "rating", "rate") in hooks


def test_every_stream_drawn_is_declared_once_and_written_to_the_manifest(tmp_path):
    from credsim.rng import Stream, StreamError, Streams

    out = tmp_path / "run"
    tmp = run_dir.prepare(out)
    # Every module of this scenario draws: an undeclared stream would raise.
    run_dir.simulate(load_scenario("rongcheng", EVERYTHING, people=3000, days=30), tmp)
    run_dir.commit(tmp, out)
    entropy = json.loads((out / "manifest.json").read_text())["seed_entropy"]
    owners = {s["name"]: s["module"] for s in entropy["streams"]}
    assert owners["court.pay"] == "court_list" and owners["gate.<gate>"] == "gates"
    assert owners["behave.<behaviour>"] == "society" and owners["graph"] == "population"
    assert set(entropy["schemes"]) == {"numpy", "counter", "numba", "numba-person"}
    assert owners["adapt.prune"] == "adaptation"

    streams = Streams(1)
    streams.register("a", Stream("x.<gate>", "counter"))
    with pytest.raises(StreamError, match="overlaps x.<gate>, drawn by a"):
        streams.register("b", Stream("x.<gate>", "numpy"))
    with pytest.raises(StreamError, match="overlaps x.<gate>"):
        streams.register("b", Stream("x.loans", "numpy"))  # a name under a's pattern
    with pytest.raises(StreamError, match="unknown scheme"):
        streams.register("b", Stream("y", "dice"))
    assert streams.key("x.loans") == Streams(1).key("x.loans")
    with pytest.raises(StreamError, match="no module declares it"):
        streams.get("z")


def test_every_timeseries_column_is_declared_by_a_module_and_labelled_once():
    """The columns a run writes are exactly what its modules declare (plus the day),
    and each built-in fixed-name result takes its label from credsim.labels, where
    every label is declared once: no label is left that no module writes."""
    from credsim.labels import COLUMNS, column_label

    s = load_scenario("rongcheng", [*EVERYTHING, "points.warn_max=10",
                                    "threats.colluders_per_million=100"],
                      people=3000, days=5)
    sim = Simulation(s)
    sim.run()
    declared = [r for m in sim.modules.values() for r in m.results]
    for column in sim.rows[0]:
        if column != "day":
            assert any(r.matches(column) for r in declared), column
            assert column_label(column, list(s.gates)).label
    fixed = {r.name for cls in kinds().values() for r in cls.results if "<" not in r.name}
    assert fixed <= set(COLUMNS)
    patterned = [r for cls in kinds().values() for r in cls.results if "<" in r.name]
    stale = [c for c in COLUMNS if c != "day" and c not in fixed
             and not any(r.matches(c) for r in patterned)]
    assert stale == []


def test_every_ledger_kind_and_cause_is_owned_by_one_module():
    from credsim.ledger import KINDS, SPECIAL_CAUSES

    own = [c for c in kinds().values() if c.__module__.startswith("credsim.")]
    declared_kinds = [k for c in own for k in c.ledger_kinds]
    declared_causes = [k for c in own for k in c.ledger_causes]
    assert sorted(declared_kinds) == sorted(KINDS)
    assert sorted(declared_causes) == sorted(SPECIAL_CAUSES)


def test_a_module_from_elsewhere_adds_ledger_kinds_and_causes_after_credsims(tmp_path):
    class Tagger(Module):
        """Tags the first adult each day: a kind and a cause of its own."""

        kind = "tagger"
        hooks = (Hook("score", "tag"),)
        ledger_kinds = ("tag",)
        ledger_causes = ("daily_tag",)

        def tag(self, d: Day) -> None:
            ledger = self.sim.ledger
            ledger.append(day=d.day, entity=0, id=np.array([1]), kind=ledger.kind_code("tag"),
                          cause=ledger.cause_code("daily_tag"), delta=1, value=d.day)

    register(Tagger)
    try:
        out = tmp_path / "run"
        tmp = run_dir.prepare(out)
        run_dir.simulate(load_scenario("court-blacklist", people=2000, days=10), tmp)
        run_dir.commit(tmp, out)
    finally:
        unregister("tagger")
    table = pq.read_table(out / "ledger.parquet")
    ledger = table.to_pydict()
    tags = [i for i, k in enumerate(ledger["kind"]) if k == "tag"]
    assert len(tags) == 10 and {ledger["cause"][i] for i in tags} == {"daily_tag"}
    # credsim's own kinds keep their codes; the new one comes after them.
    from credsim.ledger import KINDS

    assert table.column("kind").chunk(0).dictionary.to_pylist() == [*KINDS, "tag"]


GRAPHLESS = [
    ("court-blacklist", []),
    ("credit-china", []),
    ("baseline", []),
    ("rongcheng", ["adaptation.prune_prob=0", "firm_lists.enabled=true",
                   "safeguards.expiry_days=30", "safeguards.review_capacity=50",
                   "safeguards.notice_days=5", "threats.insiders_per_million=200",
                   "threats.colluders_per_million=200", "safeguards.domain_separation=true"]),
]


@pytest.mark.parametrize(("preset", "overrides"), GRAPHLESS)
def test_every_module_runs_audits_and_reports_without_a_graph(preset, overrides, tmp_path):
    """Where no module reads ties no graph is built: every module still runs, and the
    run opens, audits and reports, with score assortativity undefined (no ties)."""
    import credsim

    s = load_scenario(preset, overrides, people=3000, days=60)
    run = credsim.run(s, out=tmp_path / "run")
    assert run.manifest["ties"] is None
    audit = run.audit()
    if "points" in run.manifest["modules"]:
        assert run.manifest["score_assortativity"] == {"points": None}
    report = tmp_path / "report.html"
    run.report(report)
    assert "<html" in report.read_text()[:200].lower() and audit is not None


def test_an_old_run_folder_stays_readable_when_a_module_is_installed(tmp_path):
    """What a folder must hold follows the modules its run ran (in its manifest), not
    those installed now: a module added later that reads ties asks nothing of it."""
    import credsim

    out = tmp_path / "run"
    credsim.run(load_scenario("court-blacklist", people=2000, days=10), out=out)

    class Reader(Module):
        kind = "tie_reader"
        reads_ties = True

    register(Reader)
    try:
        run = credsim.open(out)
        assert run.manifest["ties"] is None and "tie_reader" not in run.manifest["modules"]
    finally:
        unregister("tie_reader")
