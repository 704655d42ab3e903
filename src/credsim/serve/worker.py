"""What a job does, in its own worker process: run a scenario (each day's timeseries row
sent back as it is made) or compare two settings, then read the results the page shows
into results.json, and write the report and the scenario file beside them.

Everything goes through the Python API and the run folder; the server process never
simulates. A job's folder holds `run/` or `compare/`, `report.html`, `scenario.toml` and,
last, `results.json`: a folder without results.json is not a finished job.
"""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

RESULTS = "results.json"
# Headline measures of the compare panel, in this order; every other measure follows.
HEADLINE = (
    "wrongful_person_days_per_million", "sanctioned_person_days_per_million", "wrongful_share",
    "listed_per_million", "sanction_impact_ratio", "cross_context_share",
    "disproportionate_share", "fall_to_c_within_year", "voice_per_1000_person_days",
    "ties_dropped_per_1000", "isolated_critics_share", "gini_score",
)
CLI_BASELINE_HINT = "`credsim report RUN --baseline BASE` adds them."
LAB_BASELINE_HINT = ("the lab runs no baseline; take the run away (the zip, under Take "
                     "it away) to report it against one.")
CANDIDATES = 12  # people offered in each list of the follow-a-person panel


def main(spec: dict[str, Any], folder: str, events) -> None:
    """The worker process: run the job of `spec` into `folder`, reporting on `events`."""
    from credsim.errors import InputError, first_line

    # Ctrl-C in the terminal reaches the whole process group; the server stops its
    # workers itself (and removes their folders), so a worker does not die mid-write.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    try:
        if spec["kind"] == "run":
            _run_job(spec, Path(folder), events)
        else:
            _compare_job(spec, Path(folder), events)
        events.put({"type": "finished"})
    except InputError as exc:
        events.put({"type": "failed", "error": str(exc)})
    except Exception as exc:  # reported to the page as one line; the job is failed
        events.put({"type": "failed", "error": f"{type(exc).__name__}: {first_line(exc)}"})


def scenarios(spec: dict[str, Any]):
    """The job's scenario, and for a comparison the second setting's (the same with the
    changes applied)."""
    import credsim

    first = credsim.load(spec["preset"], set=spec["set"])
    if spec["kind"] != "compare":
        return first, None
    second = credsim.load(spec["preset"], set={**spec["set"], **spec["changes"]})
    second.name = _changed_name(spec["preset"], spec["changes"])
    return first, second


def _changed_name(preset: str, changes: dict[str, Any]) -> str:
    from credsim.scenario.values import toml_value

    text = ", ".join(f"{k}={toml_value(v)}" for k, v in changes.items())
    return f"{preset} with {text}"[:100]


def _plain(v: Any) -> Any:
    """A number as JSON writes it (numpy scalars as Python ones, NaN and inf as null)."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


# ---------------------------------------------------------------- one run


def _run_job(spec: dict[str, Any], folder: Path, events) -> None:
    from credsim.engine import Simulation
    from credsim.memory import check_fits
    from credsim.results import run_dir
    from credsim.threads import kernel_threads

    scenario, _ = scenarios(spec)
    check_fits(scenario)
    target = folder / "run"
    tmp = run_dir.prepare(target)
    try:
        # As credsim.results.run_dir.simulate, with each day's row sent to the page.
        t0 = time.perf_counter()
        with kernel_threads(scenario.run.people):
            sim = Simulation(scenario, ledger_path=tmp / "ledger.parquet")
            run_dir.stream_sanctions(sim, tmp / "sanctions.parquet")
            events.put({"type": "started", "setup_seconds": time.perf_counter() - t0})

            def on_day(done: int) -> None:
                row = {k: _plain(v) for k, v in sim.rows[-1].items()}
                event = {"type": "day", "done": done, "row": row}
                if done == 1:
                    event["columns"] = column_labels(row, list(scenario.gates))
                events.put(event)

            sim.run(on_day=on_day)
        events.put({"type": "phase", "phase": "writing the tables"})
        run_dir.write_results(sim, tmp, time.perf_counter() - t0)
        run_dir.commit(tmp, target)
    except BaseException:
        run_dir.abort(tmp)
        raise
    events.put({"type": "phase", "phase": "auditing and writing the report"})
    _write_json(folder / RESULTS, run_results(target, folder))


def run_results(target: Path, folder: Path) -> dict[str, Any]:
    """What the page shows of a finished run, and its report and scenario file."""
    import credsim
    from credsim.labels import measure_label
    from credsim.serve.family import candidates as family_candidates

    run = credsim.open(target)
    audit = run.audit()
    _report(run, folder)
    (folder / "scenario.toml").write_text(run.manifest["scenario_toml"], "utf-8")
    ts = run.table("timeseries")
    measures = []
    for m in audit.measures:
        lab = measure_label(m.measure, m.key)
        measures.append({"measure": m.measure, "key": m.key, "value": _plain(m.value),
                         "unit": m.unit, "label": lab.label, "kind": lab.kind})
    return {
        "kind": "run",
        "scenario": run.manifest["scenario_name"],
        "people": run.manifest["people"], "days": run.manifest["days"],
        "demography": run.scenario.demography.enabled,
        "person_days_per_second": run.manifest.get("person_days_per_second"),
        "summary": [{"name": n, "value": _plain(v), "unit": u} for n, v, u in run.summary()],
        "story": story(target),
        "measures": measures,
        "columns": column_labels(ts.column_names, list(run.scenario.gates)),
        "timeseries": {c: [_plain(v) for v in ts.column(c).to_pylist()]
                       for c in ts.column_names},
        "gates": _gates(run),
        "candidates": candidates(run),
        "families": family_candidates(run),
    }


def column_labels(names, gates: list[str]) -> dict[str, dict[str, str]]:
    """Each timeseries column's label and unit, as credsim.labels declares them."""
    from credsim.labels import column_label

    out = {}
    for name in names:
        try:
            lab = column_label(name, gates)
        except KeyError:  # a column no module labels: shown by its name
            out[name] = {"label": name, "unit": ""}
            continue
        out[name] = {"label": lab.label, "unit": lab.unit}
    return out


def story(target: Path) -> list[dict[str, str]]:
    """The report's plain-language summary, as (title, text) items of plain text."""
    from credsim.audit import report

    d = report._load_run(target)
    items = _items(report._run_summary(d, report._M(d.measures)))
    # The report's hint is for the command line; in the lab the run is taken away first.
    for item in items:
        item["text"] = item["text"].replace(CLI_BASELINE_HINT, LAB_BASELINE_HINT)
    return items


class _Items(HTMLParser):
    """The <li> items of the summary, split into the bold title and the rest."""

    def __init__(self):
        super().__init__()
        self.items: list[dict[str, str]] = []
        self.bold = False

    def handle_starttag(self, tag, attrs):
        if tag == "li":
            self.items.append({"title": "", "text": ""})
        self.bold = tag == "b" and bool(self.items) and not self.items[-1]["text"]

    def handle_endtag(self, tag):
        self.bold = False

    def handle_data(self, data):
        if self.items:
            self.items[-1]["title" if self.bold else "text"] += data


def _items(html: str) -> list[dict[str, str]]:
    parser = _Items()
    parser.feed(html)
    return [{"title": i["title"].strip(), "text": i["text"].strip()} for i in parser.items]


def _gates(run) -> list[dict[str, Any]]:
    """Each gate as the scenario sets it, with its applications: in all, resting on a false
    record, and outside the domain of the record behind them (Art. 5(1)(c)(i))."""
    counts = {r["gate"]: r for r in run.sql(
        "SELECT gate, count(*) AS applications, count(*) FILTER (WHERE wrongful) AS wrongful, "
        "count(*) FILTER (WHERE gate_domain != trigger_domain) AS outside FROM sanctions "
        "GROUP BY gate").to_pylist()}
    out = []
    for name, g in run.scenario.gates.items():
        c = counts.get(name, {})
        out.append({"name": name, "domain": g.domain, "condition": g.condition,
                    "effect": g.effect, "loss_days": g.loss_days,
                    "applications": c.get("applications", 0), "wrongful": c.get("wrongful", 0),
                    "outside": c.get("outside", 0)})
    return out


def candidates(run) -> dict[str, list[int]]:
    """People worth following: the wrongfully sanctioned, those who fell furthest, and
    isolated critics (the most vocal tenth, left with no contact)."""
    def ids(sql: str) -> list[int]:
        return [int(r["id"]) for r in run.sql(sql).to_pylist()]

    people = set(run.table("people").column_names)
    out = {"wrongful": ids(
        "SELECT id FROM sanctions WHERE wrongful AND effect = 'sanction' GROUP BY id "
        f"ORDER BY count(*) DESC, id LIMIT {CANDIDATES}")}
    out["fallen"] = ids(
        "SELECT id FROM ledger WHERE entity = 'person' AND kind IN ('score', 'composite', "
        f"'rating') GROUP BY id HAVING sum(delta) < 0 ORDER BY sum(delta), id LIMIT {CANDIDATES}")
    if "contacts" in people:
        out["isolated"] = ids(
            "SELECT id FROM people WHERE age_band != 'child' AND voice >= (SELECT "
            "quantile_cont(voice, 0.9) FROM people WHERE age_band != 'child') ORDER BY "
            f"contacts, ties_dropped DESC, id LIMIT {CANDIDATES}")
    else:
        out["isolated"] = []
    return out


# ---------------------------------------------------------------- a comparison


def _report(results, folder: Path) -> None:
    """The report, naming its folder as the zip does (`run`, `compare`): the server's own
    folders are not for the page, or a share link, to see."""
    path = results.report(folder / "report.html")
    path.write_text(hide_folder(path.read_text("utf-8"), folder), "utf-8")


def hide_folder(text: str, folder: Path) -> str:
    """`text` with the job folder's absolute path (plain or HTML-escaped) cut off, so that
    `<folder>/run` reads `run`."""
    import html

    for shown in {str(folder) + "/", html.escape(str(folder)) + "/"}:
        text = text.replace(shown, "")
    return text


def _compare_job(spec: dict[str, Any], folder: Path, events) -> None:
    import credsim

    first, second = scenarios(spec)
    total = 2 * spec["replicates"]
    stop = threading.Event()
    watcher = threading.Thread(target=_watch_runs, args=(folder, total, events, stop),
                               daemon=True)
    watcher.start()
    try:
        comp = credsim.compare([first, second], replicates=spec["replicates"], workers=1,
                               out=folder / "compare")
    finally:
        stop.set()
        watcher.join()
    events.put({"type": "phase", "phase": "writing the report"})
    _report(comp, folder)
    (folder / "scenario.toml").write_text(_scenarios_toml(first, second), "utf-8")
    _write_json(folder / RESULTS, compare_results(comp))


def _scenarios_toml(first, second) -> str:
    """Both settings, as the command line reproduces the comparison from them."""
    from credsim.scenario.load import scenario_to_toml

    return (f"# Setting A ({first.name}). Setting B differs by: {second.name}\n"
            "# credsim compare A.toml B.toml reproduces the comparison; this file is A.\n"
            + scenario_to_toml(first))


def _watch_runs(folder: Path, total: int, events, stop: threading.Event) -> None:
    """Report how many replicate runs have finished (their measures files) until stopped."""
    seen = -1
    while not stop.wait(0.5):
        done = sum(1 for f in folder.glob("*/runs/*.parquet")
                   if not f.name.endswith(".series.parquet"))
        if done != seen:
            seen = done
            events.put({"type": "runs", "done": done, "total": total})


def compare_results(comp) -> dict[str, Any]:
    """Per measure, each setting's mean and interval and the paired difference."""
    from credsim.labels import measure_label

    rows = comp.table().to_pylist()
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rows:
        k = (r["measure"], r["key"] or "")
        entry = by_key.setdefault(k, {"measure": k[0], "key": k[1], "unit": r["unit"],
                                      "label": measure_label(*k).label, "points": {}})
        entry["points"][r["point"]] = {
            "mean": _plain(r["mean"]), "low": _plain(r["ci_low"]), "high": _plain(r["ci_high"]),
            "diff": _plain(r["diff_mean"]), "diff_low": _plain(r["diff_ci_low"]),
            "diff_high": _plain(r["diff_ci_high"])}
    order = {m: i for i, m in enumerate(HEADLINE)}
    measures = sorted(by_key.values(),
                      key=lambda e: (order.get(e["measure"], len(order)), e["measure"],
                                     e["key"]))
    series = comp.series().to_pylist()
    return {"kind": "compare", "labels": comp.labels,
            "replicates": comp.manifest["replicates"],
            "measures": [dict(m, headline=m["measure"] in order) for m in measures],
            "series": [{k: _plain(v) for k, v in r.items()} for r in series]}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: results.json exists only once complete."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, allow_nan=False), "utf-8")
    os.replace(tmp, path)
