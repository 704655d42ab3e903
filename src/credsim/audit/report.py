"""`credsim report`: one self-contained HTML file for a run or a compare/sweep folder.

The file opens offline: the style sheet is inline, every figure is an inline
SVG drawn with matplotlib (Agg backend), and there is no script and no
external address. Every piece of text taken from a run (scenario names,
descriptions, gate names, the scenario file) is escaped.

A run folder gets a plain-language summary, then figures (score, band or
rating distributions over time, grade flows, sanctions per gate, wrongful
share and disparate-impact ratios by group, chilling, spirals; with demography, the
cohorts and generations), then what was
measured for the two points of the EU AI Act's social-scoring test
(Art. 5(1)(c)), then every measure. Measures come from
`credsim.audit.measures.compute`; if the folder holds a `measures.parquet`
(written by `credsim audit`, possibly with a baseline and another
proportionality bound), its rows take precedence.

A compare or sweep folder (written by `credsim compare` / `credsim sweep`)
holds `manifest.json` with `"kind": "compare"` or `"sweep"` and
`summary.parquet`: each measure's mean and 95 % interval per scenario or
grid point and the paired difference (replicate by replicate) from the first
one. The report draws the differences (or a sweep's means) as a forest plot,
the group measures against the four-fifths line, states what was measured
for the EU AI Act's test, and tabulates every measure.
"""

from __future__ import annotations

import functools
import html
import io
import math
import os
import re
import textwrap
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from matplotlib.ticker import FuncFormatter, MaxNLocator
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from credsim import __version__
from credsim import formatting as fm
from credsim.audit.measures import FOUR_FIFTHS, Measure, compute
from credsim.audit.measures import SCHEMA as MEASURES_SCHEMA
from credsim.audit.replicates import FORMAT_VERSION as COMPARISON_FORMAT_VERSION
from credsim.errors import InputError
from credsim.modules.base import Instance
from credsim.modules.plan import module_instances
from credsim.results import outdir
from credsim.results.query import connect
from credsim.results.run_dir import open_run, read_manifest, reading
from credsim.scenario.model import Scenario

COMPARISON_KINDS = ("compare", "sweep")

# Colours (colour-blind safe: Okabe-Ito), one per grade from AAA to D.
GRADE_COLOURS = ["#009E73", "#56B4E9", "#0072B2", "#F0E442", "#E69F00", "#D55E00"]


def grade_colours(n: int) -> list:
    """Colours of n grades from the highest down: the six of AAA..D, or for a system with
    other grades as many steps of one colour-blind-safe map."""
    if n == len(GRADE_COLOURS):
        return GRADE_COLOURS
    import matplotlib

    return [matplotlib.colormaps["viridis_r"](x) for x in np.linspace(0.1, 0.95, n)]
BLUE, ORANGE, VERMILION, GREY = "#0072B2", "#E69F00", "#D55E00", "#777777"


# Entry point ---------------------------------------------------------------------------


def write_report(path: Path, out: Path | None = None, baseline: Path | None = None) -> Path:
    """Write the report of the run or comparison folder `path` to `out` (default:
    `path/report.html`) under a temporary name first; return the file written. A run's
    report can measure it against `baseline`, the same society run without the system."""
    path = Path(path)
    manifest = read_manifest(
        path, "no such folder (expected a run folder or a compare/sweep folder)",
        "neither a run folder nor a compare/sweep folder (no manifest.json)")
    target = Path(out) if out is not None else path / "report.html"
    _check_replaceable(target)  # before the work, so a refusal comes at once
    if "kind" in manifest:
        if baseline is not None:
            raise InputError(f"--baseline {baseline}: a baseline is for the report of a "
                             f"run; {path} is a {manifest['kind']} folder")
        text = _comparison_report(path, manifest)
    else:
        text = _run_report(path, None if baseline is None else Path(baseline))
    return _write_atomic(target, text)


# Every report carries this in its head; only a file that has it is ever replaced.
GENERATOR = f'<meta name="generator" content="credsim {html.escape(__version__)}">'
_MARK = b'<meta name="generator" content="credsim '
# Reports written before the mark existed begin with exactly this.
_LEGACY_START = (b'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                 b'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                 b"<title>credsim ")
_HEAD_BYTES = 4096  # the mark is within the head's first lines


def _check_replaceable(target: Path) -> None:
    """Refuse a target that is a folder or an existing file credsim did not write as a
    report (a run's manifest or tables, or any other file)."""
    if target.is_dir():
        raise InputError(f"{target}: is a folder; give --out a file name")
    if not (target.exists() or target.is_symlink()):
        return
    try:
        with open(target, "rb") as f:
            head = f.read(_HEAD_BYTES)
    except OSError as exc:
        raise InputError(f"{target}: cannot read the existing file ({exc.strerror})") from None
    if target.is_symlink() or not (_MARK in head or head.startswith(_LEGACY_START)):
        raise InputError(f"{target}: already exists and is not a report written by credsim; "
                         "it is left unchanged (give --out a new file name)")


def _write_atomic(target: Path, text: str) -> Path:
    _check_replaceable(target)
    # A short temporary name, so that any name the file system takes can be the target.
    tmp = outdir.tmp_path(target).with_suffix(".report")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, "utf-8")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise InputError(f"{target}: cannot write the report ({exc.strerror})") from None
    return target


# Formatting ----------------------------------------------------------------------------

e = html.escape


def num(v: float | None, digits: int = 4) -> str:
    """A number as the report prints it: n/a, integers with thousands separators,
    otherwise `digits` significant digits."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if float(v).is_integer() and abs(v) < 1e15:
        return f"{int(v):,}"
    if abs(v) >= 10 ** (digits - 1):
        return f"{v:,.0f}"
    return fm.number(v, digits)  # never in e notation (0.0000278, not 2.78e-05)


def pct(v: float | None) -> str:
    """A share as a percentage with one decimal, or two significant digits below 0.1 % so
    that a small share is not shown as 0 (n/a when undefined)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if 0 < abs(v) < 0.001:
        return f"{fm.number(100 * v, 2)} %"
    return f"{100 * v:.1f} %"


# Words joined by a hyphen when a gate's name is written out ("high_speed_rail").
_COMPOUNDS = ("deposit free", "high speed", "non essential", "high premium")


def gate_words(name: str) -> str:
    """A gate's name in words: "high_speed_rail" -> "high-speed rail"."""
    words = " ".join(name.split("_"))
    for c in _COMPOUNDS:
        words = re.sub(rf"\b{c}\b", c.replace(" ", "-"), words)
    words = re.sub(r"\baaa\b", "AAA", words)
    if words.startswith("rep "):  # the gates of firms' legal representatives
        words = f"{words[4:]} (legal representatives)"
    return words


def group_words(key: str) -> str:
    """'group=1' -> 'group 1'."""
    return key.replace("=", " ")


CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI","DejaVu Sans",Arial,sans-serif;
 margin:0;background:#f6f6f4;color:#1d1d1d;line-height:1.5}
main{max-width:1100px;margin:0 auto;padding:24px 32px 48px;background:#fff}
h1{font-size:1.7em;margin:.2em 0 .1em}
h2{font-size:1.3em;margin-top:1.8em;border-bottom:2px solid #0072B2;padding-bottom:.15em}
h3{font-size:1.05em;margin:1.2em 0 .3em}
.sub{color:#555;margin-top:0}
.summary{background:#eef5fb;border-left:4px solid #0072B2;padding:8px 20px}
.summary li{margin:.35em 0}
.flag{color:#b23b00;font-weight:600}
figure{margin:1em 0 1.6em}
figure svg{max-width:100%;height:auto;display:block}
figcaption{color:#444;font-size:.92em;margin-top:.3em}
table{border-collapse:collapse;font-size:.9em;margin:.6em 0}
th,td{border-bottom:1px solid #ddd;padding:3px 10px;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
td.n{white-space:nowrap}
td.n .iv{white-space:normal}
.wide{overflow-x:auto}
thead th{background:#f0f0ee}
.note{color:#555;font-size:.92em}
.iv{color:#555;font-size:.9em}
.legal{background:#fbf6e9;border-left:4px solid #E69F00;padding:6px 18px}
pre{background:#f4f4f4;padding:10px;overflow-x:auto;font-size:.8em}
details{margin:.8em 0}
"""


def _page(title: str, subtitle: str, body: list[str]) -> str:
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">', GENERATOR,
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body><main>",
        f"<h1>{e(title)}</h1>", f'<p class="sub">{subtitle}</p>', *body,
        f'<p class="note">Written by credsim {e(__version__)}. Synthetic people only: no '
        "record in this report is about a real person.</p>",
        "</main></body>", "</html>", "",
    ])


def html_table(head: list[str], rows: list[list[str]], numeric: set[int] = frozenset()) -> str:
    """An HTML table; cells are already escaped HTML."""
    th = "".join(f'<th{" class=n" if i in numeric else ""}>{h}</th>'
                 for i, h in enumerate(head))
    body = "".join(
        "<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{c}</td>'
                         for i, c in enumerate(r)) + "</tr>" for r in rows)
    return (f'<div class="wide"><table><thead><tr>{th}</tr></thead><tbody>{body}</tbody>'
            "</table></div>")


# Figures -------------------------------------------------------------------------------


class _Figures:
    """Matplotlib figures rendered to inline SVG, with ids unique in the document."""

    def __init__(self):
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt

        self.plt = plt
        self.n = 0
        self.rc = {"svg.fonttype": "none", "svg.hashsalt": "credsim", "font.size": 9,
                   "axes.spines.top": False, "axes.spines.right": False,
                   "font.family": ["DejaVu Sans", "sans-serif"]}

    def new(self, ncols: int = 1, width: float = 9.0, height: float = 3.4, **kw):
        with self.plt.rc_context(self.rc):
            return self.plt.subplots(1, ncols, figsize=(width, height), squeeze=False, **kw)

    def svg(self, fig) -> str:
        buf = io.StringIO()
        with self.plt.rc_context(self.rc):
            fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches="tight",
                        pad_inches=0.08)
        self.plt.close(fig)
        self.n += 1
        s = buf.getvalue()
        s = s[s.index("<svg"):]  # no XML prolog or DOCTYPE inside HTML
        s = re.sub(r"<metadata>.*?</metadata>", "", s, flags=re.S)
        prefix = f"f{self.n}-"
        s = re.sub(r'(\bid="|href="#|url\(#)([^")]+)',
                   lambda m: m.group(1) + prefix + m.group(2), s)
        return s

    def figure(self, fig, caption: str) -> str:
        return f"<figure>{self.svg(fig)}<figcaption>{caption}</figcaption></figure>"


# Run report ----------------------------------------------------------------------------


@dataclass
class _RunData:
    path: Path
    manifest: dict
    scenario: dict
    measures: list[Measure]
    ts: dict  # column -> numpy array, ordered by day
    gates: list[tuple]  # (gate, effect, applications, wrongful, outside domain)
    people_sanctioned: int  # distinct people with a sanction applied
    sanctioned_end: int
    group_counts: dict[str, dict[str, int]]  # 'sanction'/'listing' -> 'group=G' -> people
    baseline: str | None  # the baseline the measures were taken against, in words

    @functools.cached_property
    def m(self) -> _M:
        """Look-ups into the measures."""
        return _M(self.measures)

    @functools.cached_property
    def instances(self) -> list[Instance]:
        """The modules the run ran, in build order."""
        return module_instances(Scenario.model_validate(self.scenario))


# The parts of a scenario that make the society: a baseline must share them.
SOCIETY = ("population", "graph")


def _check_baseline(path: Path, manifest: dict, baseline: Path) -> dict:
    """The baseline's manifest, if it is the same society as the run: same people, days,
    seed, population and graph parameters; otherwise one clear refusal."""
    bm = open_run(baseline)
    s, bs = manifest["scenario"], bm["scenario"]
    differ = [k for k in ("people", "days") if bm.get(k) != manifest.get(k)]
    if bs.get("run", {}).get("seed") != s.get("run", {}).get("seed"):
        differ.append("seed")
    for part in SOCIETY:
        differ += [f"{part}.{k}" for k in sorted(set(s.get(part, {})) | set(bs.get(part, {})))
                   if s.get(part, {}).get(k) != bs.get(part, {}).get(k)]
    if differ:
        shown = ", ".join(differ[:6]) + (f" and {len(differ) - 6} more" if len(differ) > 6
                                         else "")
        raise InputError(f"--baseline {baseline}: not the same society as {path} (they "
                         f"differ in {shown}); a baseline must be the same people, days, "
                         "seed, population and graph run without the system")
    return bm


def _load_measures(path: Path, baseline: Path | None = None) -> list[Measure]:
    fresh = compute(path, baseline)
    mp = path / "measures.parquet"
    if baseline is not None or not mp.is_file():
        return fresh
    import pyarrow.parquet as pq

    try:
        t = pq.read_table(mp)
    except Exception as exc:  # any unreadable file is the user's input
        raise InputError(f"{mp}: unreadable measures file ({exc})") from None
    missing = {"measure", "key", "value", "unit"} - set(t.column_names)
    if missing:
        raise InputError(f"{mp}: not a measures file (missing columns: "
                         f"{', '.join(sorted(missing))})")
    try:
        t = t.select(MEASURES_SCHEMA.names).cast(MEASURES_SCHEMA)
    except (pa.ArrowException, ValueError) as exc:
        raise InputError(f"{mp}: not a measures file (columns of the wrong type: "
                         f"{str(exc).splitlines()[0]})") from None
    saved = {(r["measure"], r["key"] or ""): Measure(r["measure"], r["key"] or "", r["value"],
                                                     r["unit"])
             for r in t.to_pylist()}
    out = [saved.pop((m.measure, m.key), m) for m in fresh]
    return out + list(saved.values())  # measures only the saved file has (baseline)


BASELINE_MEASURES = ("voice_vs_baseline", "true_events_vs_baseline")


def _load_run(path: Path, baseline: Path | None = None) -> _RunData:
    manifest = open_run(path)
    named = None
    if baseline is not None:
        bm = _check_baseline(path, manifest, baseline)
        named = f"{bm.get('scenario_name', 'the baseline')} ({baseline})"
    measures = _load_measures(path, baseline)
    if named is None and any(m.measure in BASELINE_MEASURES for m in measures):
        named = ("the baseline given to `credsim audit --baseline` (measures.parquet does "
                 "not record its folder)")
    with reading(path):
        d = _read_tables(path, manifest, measures)
    d.baseline = named
    return d


def _read_tables(path: Path, manifest: dict, measures: list[Measure]) -> _RunData:
    con = connect(path)
    try:
        ts = con.execute("SELECT * FROM timeseries ORDER BY day").fetchnumpy()
        ts = {k: np.asarray(v) for k, v in ts.items()}
        gates = con.execute(
            "SELECT gate, effect, count(*), count(*) FILTER (WHERE wrongful), "
            "count(*) FILTER (WHERE gate_domain != trigger_domain) FROM sanctions "
            "GROUP BY ALL ORDER BY 3 DESC, 1").fetchall()
        (people_sanctioned,) = con.execute(
            "SELECT count(DISTINCT id) FROM sanctions WHERE effect = 'sanction'").fetchone()
        (sanctioned_end,) = con.execute(
            "SELECT count(*) FILTER (WHERE sanctioned) FROM people").fetchone()
        counts = _group_counts(con)
    finally:
        con.close()
    return _RunData(path, manifest, manifest["scenario"], measures, ts, gates,
                    int(people_sanctioned), int(sanctioned_end), counts, None)


def _group_counts(con) -> dict[str, dict[str, int]]:
    """Per audit group: adults with a sanction applied, and entries onto the court list,
    the independent units behind a single run's impact-ratio intervals."""
    sanctioned = con.execute(
        'SELECT p."group", count(DISTINCT s.id) FROM sanctions s JOIN people p ON p.id = '
        "s.id WHERE s.effect = 'sanction' AND p.age_band != 'child' GROUP BY 1").fetchall()
    listed = con.execute(
        'SELECT p."group", count(*) FROM ledger l JOIN people p ON p.id = l.id '
        "WHERE l.entity = 'person' AND l.kind = 'list' AND l.delta > 0 AND l.value = 1 "
        "AND p.age_band != 'child' GROUP BY 1").fetchall()
    adults = con.execute('SELECT "group", count(*) FROM people WHERE age_band != \'child\' '
                         "GROUP BY 1").fetchall()
    return {"sanction": {f"group={g}": int(n) for g, n in sanctioned},
            "listing": {f"group={g}": int(n) for g, n in listed},
            "adults": {f"group={g}": int(n) for g, n in adults}}


# The four-fifths rule with an interval ---------------------------------------------------

FLAGGED, INCONCLUSIVE, CLEAR = "flagged", "inconclusive", "not flagged"


def four_fifths_verdict(ratio: float | None, low: float | None,
                        high: float | None) -> str | None:
    """Flagged only when the whole interval of the impact ratio lies below 0.8;
    inconclusive when it spans 0.8; not flagged when it lies at or above 0.8. Without an
    interval (a ratio defined in one replicate only) a ratio below 0.8 is inconclusive."""
    if ratio is None:
        return None
    if low is None or high is None:
        return CLEAR if ratio >= FOUR_FIFTHS else INCONCLUSIVE
    if high < FOUR_FIFTHS:
        return FLAGGED
    if low < FOUR_FIFTHS:
        return INCONCLUSIVE
    return CLEAR


def run_ratio_interval(ratio: float | None, counts: dict[str, int], sizes: dict[str, int],
                       key: str, rates: dict[str, float | None]
                       ) -> tuple[float | None, float | None]:
    """95 % interval of one run's impact ratio (least-burdened group's rate / this
    group's): on the log scale, each group's rate taken as a Poisson count of people
    (sanctioned, or entering the list) in the group, with half a person added to an empty
    count. The least-burdened group's own ratio is 1 by definition."""
    known = {k: r for k, r in rates.items() if r is not None}
    if ratio is None or not known:
        return None, None
    best = min(known, key=known.get)
    if best == key or ratio >= 1.0:
        return ratio, ratio
    a, b = max(counts.get(best, 0), 0.5), max(counts.get(key, 0), 0.5)
    half = 1.959963984540054 * math.sqrt(1 / a + 1 / b)
    if ratio <= 0:  # nobody in the least-burdened group: bound it with half a person
        if not sizes.get(best) or not sizes.get(key):
            return 0.0, None
        ratio = (a / sizes[best]) / (b / sizes[key])
        return 0.0, min(1.0, ratio * math.exp(half))
    return ratio * math.exp(-half), min(1.0, ratio * math.exp(half))



class _M:
    """Look-ups into a list of measures."""

    def __init__(self, measures: list[Measure]):
        self.all = measures
        self.by = {(m.measure, m.key): m for m in measures}

    def v(self, measure: str, key: str = "") -> float | None:
        m = self.by.get((measure, key))
        return None if m is None else m.value

    def has(self, measure: str, key: str = "") -> bool:
        return (measure, key) in self.by

    def keyed(self, measure: str) -> list[Measure]:
        return [m for m in self.all if m.measure == measure and m.key]


def _systems(s: dict) -> list[str]:
    names = [("points", "a points system with grades"), ("court_list", "the court list"),
             ("composite", "a composite score"), ("rating", "peer ratings"),
             ("firm_lists", "firm black and red lists")]
    return [label for key, label in names if s.get(key, {}).get("enabled")] + [
        f"{entry['kind']} (systems.{name}, from an installed package)"
        for name, entry in s.get("systems", {}).items()]


def _plural(n: int, word: str) -> str:
    return f"{num(n)} {word}{'' if n == 1 else 's'}"


def _bound(m: _M) -> str:
    unit = (m.by.get(("disproportionate_share", "")) or Measure("", "", None, "")).unit
    found = re.search(r"over ([0-9.]+) days", unit)
    return found.group(1) if found else "30"


def _ts_sum(d: _RunData, col: str) -> float:
    return float(d.ts[col].sum()) if col in d.ts else 0.0


def _people_words(d: _RunData) -> str:
    mf = d.manifest
    if "people_alive" not in d.ts:
        return f"{num(mf['people'])} synthetic people ({num(mf['adults'])} adults)"
    alive = d.ts["people_alive"]
    return (f"a changing population of synthetic people ({num(int(alive[0]))} at the start, "
            f"{num(int(alive[-1]))} alive at the end, {num(mf['adults'])} of them adults; "
            f"{num(mf['people'])} lived in the run)")


def _run_summary(d: _RunData, m: _M) -> str:
    mf, s = d.manifest, d.scenario
    items = []
    systems = _systems(s)
    gates = s.get("gates", {})
    n_sanction = sum(1 for g in gates.values() if g.get("effect", "deny") != "perk")
    items.append(
        f"<b>What was run.</b> The scenario <b>{e(mf['scenario_name'])}</b> "
        f"({e(s.get('description', ''))}) on {_people_words(d)} for {num(mf['days'])} "
        "days, seed "
        f"{num(s['run']['seed'])}. Systems: {e(', '.join(systems) or 'none (a baseline)')}; "
        f"{_plural(len(gates), 'gate')} ({_plural(n_sanction, 'sanction')}, "
        f"{_plural(len(gates) - n_sanction, 'perk')}).")
    sanctioned_pd = _ts_sum(d, "sanctioned")
    wrongful_pd = _ts_sum(d, "sanctioned_wrongful")
    applications = sum(g[2] for g in d.gates if g[1] == "sanction")
    items.append(
        f"<b>Sanctions.</b> {num(d.people_sanctioned)} people had at least one sanction "
        f"applied to them (a service refused, a surcharge, public shaming or a child's lost "
        f"school place): {num(applications)} applications in all. Counted day by day, "
        f"{num(sanctioned_pd)} person-days were spent sanctioned (within reach of at least "
        f"one sanctioning gate); {num(d.sanctioned_end)} people were sanctioned on the last "
        "day.")
    ws = m.v("wrongful_share")
    if sanctioned_pd:
        items.append(
            f"<b>False records.</b> {num(wrongful_pd)} of the {num(sanctioned_pd)} sanctioned "
            f"person-days (<b>{pct(ws)}</b>) rested on a false record or an insider's edit: "
            "the person would not have been sanctioned without it.")
    else:
        items.append("<b>False records.</b> Nobody was sanctioned, so no sanction rested on "
                     "a false record.")
    if m.has("new_listings_per_million"):
        items.append(
            f"<b>Court list.</b> {num(_ts_sum(d, 'new_listings'))} new listings of people "
            f"({num(m.v('new_listings_per_million'))} per million people per year); on an "
            f"average day {num(m.v('listed_per_million'))} per million people were listed.")
    verdicts = _run_verdicts(d, m)
    flagged = [v for v in verdicts if v.verdict == FLAGGED]
    unsure = [v for v in verdicts if v.verdict == INCONCLUSIVE]

    def listed(vs: list[_Verdict]) -> str:
        return "; ".join(f"{e(group_words(v.key))} on {v.what} rates (impact ratio "
                         f"{num(v.ratio, 3)}, 95 % interval {num(v.low, 3)} to "
                         f"{num(v.high, 3)})" for v in vs)

    if flagged:
        items.append(f'<b class="flag">Four-fifths rule: flagged.</b> {listed(flagged)}: '
                     f"the whole interval is below {FOUR_FIFTHS} of the least-burdened "
                     "group's rate.")
    if unsure:
        items.append(f"<b>Four-fifths rule: inconclusive.</b> {listed(unsure)}: the "
                     f"interval spans {FOUR_FIFTHS}, so this run cannot tell whether the "
                     "group is below the four-fifths line.")
    if verdicts and not flagged and not unsure:
        items.append("<b>Four-fifths rule.</b> No group is flagged: every group's sanction "
                     "(and listing) impact ratio is at least 0.8, or undefined.")
    cc, dp = m.v("cross_context_share"), m.v("disproportionate_share")
    if cc is None:
        items.append("<b>Unrelated contexts and proportionality.</b> No sanction was applied, "
                     "so the shares outside the triggering domain and above the "
                     "proportionality bound are undefined.")
    else:
        items.append(
            f"<b>Unrelated contexts and proportionality.</b> {pct(cc)} of sanction "
            "applications fell outside the domain of the behaviour that triggered them; "
            f"{pct(dp)} cost more than {e(_bound(m))} days of income.")
    chill = (f"<b>Chilling.</b> {num(m.v('voice_per_1000_person_days'))} voice events per 1000 "
             f"person-days; {num(m.v('ties_dropped_per_1000'))} ties dropped per 1000 people")
    if m.has("voice_vs_baseline"):
        chill += (f"; voice at {num(m.v('voice_vs_baseline'), 3)} times the level of the same "
                  "society without the system")
    items.append(chill + ".")
    items.insert(1, f"<b>Baseline.</b> Measured against {e(d.baseline)}, the same society "
                 "without the system." if d.baseline else
                 "<b>Baseline.</b> None: the measures that compare with the same society "
                 "without the system (voice_vs_baseline, true_events_vs_baseline) are left "
                 "out; `credsim report RUN --baseline BASE` adds them.")
    if m.has("fall_to_c_within_year"):
        spiral = (f"<b>Spirals.</b> {pct(m.v('fall_to_c_within_year'))} of adults fell to grade "
                  "C or worse within the first year")
        if m.has("recovered_share"):
            median = m.v("recovery_days_median")
            spiral += (f"; {pct(m.v('recovered_share'))} of {num(m.v('wrongful_marks'))} "
                       "deductions resting on false records or insider edits were recovered "
                       "within the run" + (f" (median {num(median)} days)" if median is not None
                                           else ""))
        items.append(spiral + ".")
    return '<ul class="summary">' + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def _fig_distribution(d: _RunData, figs: _Figures) -> str:
    """The systems' own figures of their scores over time (Module.report_figures), then
    the people listed and sanctioned, day by day."""
    out = _drawn("scores", d, figs)
    if not out:
        out.append('<p class="note">This scenario has no score, composite or rating: the '
                   "distribution over time is that of the list.</p>")
    return "".join(out) + _fig_listed_and_sanctioned(d, figs)


def _fig_listed_and_sanctioned(d: _RunData, figs: _Figures) -> str:
    """People on the lists and sanctioned, day by day: every scenario has them, and one
    chart shows the lists of several systems beside the sanctions."""
    ts = d.ts
    day = ts["day"]
    fig, ax = figs.new(1, height=3.0)
    a = ax[0][0]
    if "listed" in ts:
        a.plot(day, ts["listed"], color=ORANGE, lw=2.5, ls=(0, (4, 2)),
               label="listed (court list)", zorder=3)
    if "firms_blacklisted" in ts:
        a.plot(day, ts["firms_blacklisted"], color=GREY, label="firms blacklisted")
    if "sanctioned" in ts:
        a.plot(day, ts["sanctioned"], color=BLUE, label="sanctioned")
        a.plot(day, ts["sanctioned_wrongful"], color=VERMILION,
               label="sanctioned on a false record")
    a.set_xlabel("day of the run")
    a.set_ylabel("people (at the end of the day)")
    a.set_ylim(bottom=0, top=max(a.get_ylim()[1], 1))
    a.set_title("people listed and sanctioned at the end of each day")
    if a.get_legend_handles_labels()[0]:
        a.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figs.figure(fig, "Listed and sanctioned people, day by day: "
                       "“listed” dashed orange, “sanctioned” blue, “sanctioned on a false "
                       "record” vermilion (red-orange). A person is sanctioned when at "
                       "least one sanctioning gate can reach them.")


def _fig_grade_flows(d: _RunData, figs: _Figures) -> str:
    drawn = _drawn("flows", d, figs)
    if not drawn:
        return ('<p class="note">Not applicable: the scenario has no points system, so there '
                "are no grades to move between.</p>")
    return "".join(drawn)


def _generations(d: _RunData, figs: _Figures) -> list[str]:
    """Cohorts and generations, where the population changes (demography)."""
    drawn = _drawn("generations", d, figs)
    return ["<h2>Generations</h2>", *drawn] if drawn else []


def _drawn(section: str, d: _RunData, figs: _Figures) -> list[str]:
    """What the modules the run ran draw in report section `section`, in build order."""
    return [html for inst in d.instances
            for html in inst.cls.report_figures(section, d, figs, inst)]


def _mean_people(d: _RunData) -> float:
    """The people of the run: where the population changes, those alive on an average
    day (as the audit counts them)."""
    if "people_alive" in d.ts:
        return float(d.ts["people_alive"].mean())
    return d.manifest["people"]


def _fig_gates(d: _RunData, m: _M, figs: _Figures) -> str:
    if not d.gates:
        return '<p class="note">No gate was applied in this run.</p>'
    per_m = 1e6 / _mean_people(d) * 365.0 / d.manifest["days"]
    sanctions = [g for g in d.gates if g[1] == "sanction"]
    perks = [g for g in d.gates if g[1] == "perk"]
    html_out = ""
    if sanctions:
        fig, ax = figs.new(1, height=0.6 + 0.32 * len(sanctions), width=8.5)
        a = ax[0][0]
        names = [gate_words(g[0]) for g in sanctions][::-1]
        total = np.array([g[2] for g in sanctions][::-1], float) * per_m
        wrong = np.array([g[3] for g in sanctions][::-1], float) * per_m
        a.barh(names, total - wrong, color=BLUE, label="on true records")
        a.barh(names, wrong, left=total - wrong, color=VERMILION,
               label="wrongful (on false records)")
        for i, t in enumerate(total):
            a.annotate(num(round(t, 1)), (t, i), xytext=(3, 0), textcoords="offset points",
                       va="center", fontsize=8)
        a.set_xlabel("applications per million people per year")
        a.set_ylabel("gate")
        a.set_xlim(0, total.max() * 1.18 if total.max() > 0 else 1)
        a.legend(fontsize=8, frameon=False, loc="lower right")
        a.set_title("sanctions per gate")
        html_out += figs.figure(fig, "Sanction applications per gate, per million people per "
                                "year (measure sanctions_per_million): in blue “on true "
                                "records”, in vermilion (red-orange) “wrongful”, those that "
                                "would not have happened without false records.")
    rows = [[e(gate_words(g[0])), e(g[1]), num(g[2]), num(g[3]),
             pct(g[4] / g[2] if g[2] else None),
             num(m.v("sanctions_per_million" if g[1] == "sanction" else "perks_per_million",
                     f"gate={g[0]}"))] for g in sanctions + perks]
    return html_out + html_table(["gate", "effect", "applications", "wrongful",
                              "outside the triggering domain", "per million per year"],
                             rows, {2, 3, 4, 5})


def _group_bars(m: _M, measures: list[tuple[str, str]], figs: _Figures, title: str,
                ylabel: str, line: float | None, line_label: str, colours: list[str],
                percent: bool = False):
    groups = sorted({f.key for name, _ in measures for f in m.keyed(name)},
                    key=lambda k: int(k.split("=")[1]) if k.split("=")[1].isdigit() else 0)
    if not groups:
        return None
    fig, ax = figs.new(1, height=3.0, width=7.0)
    a = ax[0][0]
    x = np.arange(len(groups))
    w = 0.8 / len(measures)
    top = 0.0
    for i, ((name, label), col) in enumerate(zip(measures, colours, strict=False)):
        vals = [m.v(name, g) for g in groups]
        xs = x + (i - (len(measures) - 1) / 2) * w
        a.bar(xs, [v or 0 for v in vals], w * 0.95, color=col, label=label)
        for xi, v in zip(xs, vals, strict=True):
            label = "n/a" if v is None else (pct(v) if percent else num(v, 3))
            a.annotate(label, (xi, v or 0), ha="center",
                       va="bottom", fontsize=8)
            top = max(top, v or 0)
    if line is not None:
        a.axhline(line, color="#333", ls="--", lw=1)
        a.annotate(line_label, xy=(1.0, line), xycoords=("axes fraction", "data"),
                   xytext=(4, 0), textcoords="offset points", ha="left", va="center",
                   fontsize=8)
        top = max(top, line)
    # All zero: a readable scale rather than ticks in billionths.
    a.set_ylim(0, top * 1.2 if top > 0 else (0.1 if percent else 1.0))
    if percent:
        a.yaxis.set_major_formatter(percent_axis())
    a.set_xticks(x, [group_words(g) for g in groups])
    a.set_xlabel("audit group")
    a.set_ylabel(ylabel)
    a.set_title(title)
    if len(measures) > 1:
        a.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def percent_axis():
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(1.0)


def _groups_note(scenario: dict | None) -> str:
    """What the audit groups are, with their shares in this scenario."""
    from credsim.labels import GROUPS_NOTE

    shares = ((scenario or {}).get("population") or {}).get("group_shares") or []
    each = ", ".join(f"group {g}: {pct(v)} of people" for g, v in enumerate(shares))
    return f" {GROUPS_NOTE}" + (f" Here {each}." if each else "")


def _fig_wrongful(d: _RunData, m: _M, figs: _Figures) -> str:
    fig = _group_bars(m, [("wrongful_share", "wrongful share")], figs,
                      "share of sanctioned person-days resting on false records",
                      "share of sanctioned person-days",
                      m.v("wrongful_share"), f"all: {pct(m.v('wrongful_share'))}", [VERMILION],
                      percent=True)
    if fig is None:
        return '<p class="note">No group-level sanctions were recorded.</p>'
    return figs.figure(fig, "Wrongful share by audit group (measure wrongful_share); the dashed "
                       "line is the share over everyone. Unequal shares mean unequal "
                       "false-positive burdens." + _groups_note(d.scenario))


@dataclass
class _Verdict:
    what: str  # 'sanction' or 'listing'
    key: str
    ratio: float | None
    low: float | None
    high: float | None
    verdict: str | None


def _run_verdicts(d: _RunData, m: _M) -> list[_Verdict]:
    """Each group's impact ratio in this run with its interval and four-fifths verdict."""
    out = []
    for what in ("sanction", "listing"):
        rates = {f.key: f.value for f in m.keyed(f"{what}_rate")}
        for f in m.keyed(f"{what}_impact_ratio"):
            lo, hi = run_ratio_interval(f.value, d.group_counts.get(what, {}),
                                        d.group_counts.get("adults", {}), f.key, rates)
            out.append(_Verdict(what, f.key, f.value, lo, hi,
                                four_fifths_verdict(f.value, lo, hi)))
    return out


def _fig_impact(d: _RunData, m: _M, figs: _Figures) -> str:
    which = [("sanction_impact_ratio", "sanctions")]
    if m.keyed("listing_impact_ratio"):
        which.append(("listing_impact_ratio", "listings"))
    fig = _group_bars(m, which, figs, "impact ratio: least-burdened group's rate / group's rate",
                      "impact ratio (1 = no disparity)", FOUR_FIFTHS, "four-fifths line (0.8)",
                      [BLUE, ORANGE])
    if fig is None:
        return '<p class="note">No group-level rates were recorded.</p>'
    verdicts = {(v.what, v.key): v for v in _run_verdicts(d, m)}
    rows = []
    for what in ("sanction", "listing"):
        for f in m.keyed(f"{what}_rate"):
            v = verdicts.get((what, f.key)) or _Verdict(what, f.key, None, None, None, None)
            iv = ("" if v.low is None or v.low == v.high else
                  f"{num(v.low, 3)} to {num(v.high, 3) if v.high is not None else 'n/a'}")
            word = v.verdict or _NA_NO_RATIO[what]
            rows.append([e(what), e(group_words(f.key)), num(f.value), num(v.ratio, 3),
                         iv, f'<span class="flag">{word}</span>' if word == FLAGGED
                         else e(word)])
    return figs.figure(fig, "Disparate impact (measures sanction_impact_ratio, "
                       "listing_impact_ratio). A group is flagged under the four-fifths rule "
                       "only when the whole 95 % interval of its ratio lies below the dashed "
                       "0.8 line, and inconclusive when the interval spans it. The interval "
                       "treats each group's count of people sanctioned (or entering the "
                       "list) as a Poisson count." + _groups_note(d.scenario)) + html_table(
        ["rate of", "group", "rate", "impact ratio", "95 % interval", "four-fifths"], rows,
        {2, 3, 4})


_NA_NO_RATIO = {"sanction": "n/a: no sanctions in any group",
                "listing": "n/a: no listings in any group"}


def _rolling(x: np.ndarray, k: int = 7) -> np.ndarray:
    x = np.asarray(x, float)
    if len(x) < k:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    head = c[1:k] / np.arange(1, k)
    return np.concatenate([head, (c[k:] - c[:-k]) / k])


def _fig_chilling(d: _RunData, m: _M, figs: _Figures) -> str:
    ts = d.ts
    fig, ax = figs.new(2, height=3.0)
    day = ts["day"]
    n = ts.get("people_alive", d.manifest["people"])  # where it changes, each day's
    ax[0][0].plot(day, _rolling(ts["voice_events"]) / n * 1e3, color=BLUE)
    ax[0][0].set_title("voice events per 1000 people a day (7-day mean)")
    ax[0][0].set_xlabel("day of the run")
    ax[0][0].set_ylabel("events per 1000 people per day")
    ax[0][0].set_ylim(bottom=0)
    dropped = np.cumsum(ts["ties_dropped"])
    ax[0][1].plot(day, dropped, color=ORANGE)
    ax[0][1].set_title("ties dropped, cumulative")
    ax[0][1].set_xlabel("day of the run")
    ax[0][1].set_ylabel("ties dropped since day 0")
    ax[0][1].set_ylim(0, max(float(dropped[-1]) * 1.1 if len(dropped) else 0, 1))
    if not len(dropped) or dropped[-1] == 0:
        ax[0][1].annotate("no tie was dropped", (0.5, 0.5), xycoords="axes fraction",
                          ha="center", fontsize=9, color=GREY)
    rows = [[e(name), num(m.v(name, k)), e(m.by[(name, k)].unit)]
            for name, k in (("voice_per_1000_person_days", ""), ("voice_vs_baseline", ""),
                            ("ties_dropped_per_1000", ""), ("isolated_critics_share", ""))
            if m.has(name, k)]
    rows += [[e(f"score_assortativity ({f.key})"), num(f.value), e(f.unit)]
             for f in m.keyed("score_assortativity")]
    note = "" if m.has("voice_vs_baseline") else (
        '<p class="note">Voice relative to the same society without the system needs a '
        "baseline: run `credsim audit RUN --baseline BASE` first and the report will show "
        "it.</p>")
    return figs.figure(fig, "Chilling: voice (criticism, \"rumours\"; blue, left) and ties "
                       "dropped after falls in grade, score or rating (orange, right)."
                       ) + html_table(["measure", "value", "unit"], rows, {1}) + note


def _fig_spirals(d: _RunData, m: _M, figs: _Figures) -> str:
    ts = d.ts
    if not m.has("fall_to_c_within_year") and not m.has("wrongful_marks"):
        return ('<p class="note">Not applicable: the scenario has no points system, so there '
                "is no fall in grade to measure.</p>")
    fig, ax = figs.new(2, height=3.0)
    if "grade_C" in ts:
        adults = ts.get("adults_alive", d.manifest["adults"])  # each day's, where it changes
        ax[0][0].plot(ts["day"], (ts["grade_C"] + ts["grade_D"]) / np.maximum(adults, 1),
                      color=VERMILION)
        ax[0][0].set_title("share of adults at grade C or D")
        ax[0][0].set_xlabel("day of the run")
        ax[0][0].set_ylabel("share of adults")
        ax[0][0].set_ylim(bottom=0)
        ax[0][0].yaxis.set_major_formatter(percent_axis())
    else:
        ax[0][0].axis("off")
    labels, vals = [], []
    for name, label in (("fall_to_c_within_year", "fell to C or worse\nwithin a year"),
                        ("recovered_share", "wrongful deductions\nrecovered in the run")):
        if m.has(name):
            labels.append(label)
            vals.append(m.v(name) or 0.0)
    a = ax[0][1]
    bars = a.bar(labels, vals, color=[VERMILION, "#009E73"][:len(vals)])
    for b, v in zip(bars, vals, strict=True):
        a.annotate(pct(v), (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom",
                   fontsize=8)
    a.set_ylim(0, max(vals + [0.01]) * 1.25)
    a.yaxis.set_major_formatter(percent_axis())
    a.set_ylabel("share (of adults; of wrongful deductions)")
    a.set_xlabel("measure")
    a.set_title("spirals and recovery")
    rows = [[e(name), num(m.v(name)), e(m.by[(name, '')].unit)]
            for name in ("fall_to_c_within_year", "wrongful_marks", "recovered_share",
                         "recovery_days_median", "gini_score", "gini_savings")
            if m.has(name)]
    return figs.figure(fig, "Negative spirals: falls to the low grades (vermilion), and how "
                       "often a deduction resting on a false record was made good within "
                       "the run (green).") + (
        html_table(["measure", "value", "unit"], rows, {1}))


EU_ARTICLE = (
    '<div class="legal"><p>Article 5(1)(c) of the EU AI Act prohibits (in paraphrase) AI '
    "systems that evaluate or classify people over time by their social behaviour or "
    "known, inferred or predicted personal characteristics, where the resulting social "
    "score leads to either or both of: (i) detrimental or "
    "unfavourable treatment in social contexts unrelated to the contexts in which the "
    "data were originally generated or collected, or (ii) detrimental or unfavourable "
    "treatment that is unjustified or disproportionate to their social behaviour or its "
    "gravity.</p><p>This section states what the simulation measured on a synthetic "
    "society for each of the two points. Whether a real system falls under the "
    "prohibition is a legal question that these numbers do not answer.</p></div>")
EU_CROSS = (
    "the share of sanction applications whose gate lies in a different domain from the "
    "record that triggered it (travel refused because of a court debt, for instance). The "
    "trigger domain is <i>court</i> for listings, <i>firm</i> for a legal representative's "
    "blacklisting, <i>social</i> for peer ratings, and the domain of the most recent "
    "negative record for grades and composite scores.")


def _eu_disproportionate(bound: str) -> str:
    return (f"the share of sanction applications costing more than <b>{e(bound)} days of "
            "income</b> (the bound, a parameter of the audit and not a legal threshold), "
            "whatever the behaviour behind them. It reads point (ii) with one bound on the "
            "cost of a single application; it does not weigh the gravity of each "
            "behaviour.")


def _eu_section(d: _RunData, m: _M) -> str:
    cc, dp = m.v("cross_context_share"), m.v("disproportionate_share")
    bound = _bound(m)
    gates = d.scenario.get("gates", {})
    rows = []
    for g in d.gates:
        if g[1] != "sanction":
            continue
        spec = gates.get(g[0], {})
        loss = spec.get("loss_days")
        rows.append([e(gate_words(g[0])), e(str(spec.get("domain", ""))),
                     e(str(spec.get("condition", ""))),
                     num(g[2]), pct(g[4] / g[2] if g[2] else None), num(loss),
                     "yes" if loss is not None and loss > float(bound) else "no"])
    return "".join([
        EU_ARTICLE,
        "<h3>(i) Unrelated social contexts</h3>",
        f"<p>Measured: <b>cross_context_share = {num(cc)}</b> ({pct(cc)}): {EU_CROSS}</p>",
        "<h3>(ii) Unjustified or disproportionate treatment</h3>",
        f"<p>Measured: <b>disproportionate_share = {num(dp)}</b> ({pct(dp)}): "
        f"{_eu_disproportionate(bound)}</p>",
        html_table(["gate", "domain", "condition", "applications", "outside the triggering domain",
                "loss (days of income)", f"over {e(bound)} days"], rows, {3, 4, 5})
        if rows else '<p class="note">No sanction was applied in this run.</p>',
    ])


def _label(measure: str, key: str = "") -> str:
    """A measure in words (credsim.labels); its identifier where it has no label (a file
    written by another version)."""
    from credsim.labels import measure_label

    try:
        return measure_label(measure, key).label
    except KeyError:
        return measure + (f" ({key})" if key else "")


def _named(measure: str, key: str = "") -> str:
    """A table cell: the measure in words, with its identifier small beneath."""
    ident = measure + (f" ({key})" if key else "")
    return f'{e(_label(measure, key))}<br><span class="iv">{e(ident)}</span>'


def _measures_table(m: _M) -> str:
    rows = [[_named(x.measure, x.key), num(x.value), e(x.unit)] for x in m.all]
    return ("<details open><summary>All measures (definitions: docs/measures.md)</summary>"
            + html_table(["measure", "value", "unit"], rows, {1}) + "</details>")


def _module_sections(d: _RunData, m: _M, figs: _Figures) -> list[str]:
    """A section for each system from an installed package: what it is (its docstring's
    first line), its daily results over the run and its audit measures."""
    from credsim.modules.plan import module_classes
    from credsim.modules.registry import plugin_kinds

    plugins = plugin_kinds()
    out = []
    for cls in module_classes(Scenario.model_validate(d.scenario)):
        if cls.kind not in plugins:
            continue
        doc = " ".join((cls.__doc__ or "").split()).split(". ")[0].rstrip(".")
        out += [f"<h2>System {e(cls.kind)} (from {e(cls.__module__)})</h2>",
                f"<p>{e(doc)}.</p>" if doc else "", _fig_module_results(cls, d, figs)]
        rows = [[_named(x.name), num(m.v(x.name)), e(x.unit)] for x in cls.audit_measures
                if m.has(x.name)]
        if rows:
            out.append(html_table(["measure", "value", "unit"], rows, {1}))
    return out


MODULE_PANELS = 3  # daily results of a module, one panel per unit


def _fig_module_results(cls: Any, d: _RunData, figs: _Figures) -> str:
    """A module's daily results (7-day means), one panel per unit, the columns its
    `results` declare (a `<x>` in a name stands for any name)."""
    by_unit: dict[str, list[tuple[Any, list[str]]]] = defaultdict(list)
    for r in cls.results:
        cols = sorted(c for c in d.ts if r.matches(c))
        if cols:
            by_unit[r.unit].append((r, cols))
    panels = list(by_unit.items())[:MODULE_PANELS]
    if not panels:
        return ""
    fig, ax = figs.new(len(panels), height=3.0)
    for a, (unit, results) in zip(ax[0], panels, strict=True):
        cols = [c for _, cs in results for c in cs]
        for i, col in enumerate(cols):
            a.plot(d.ts["day"], _rolling(d.ts[col].astype(np.float64)), label=col,
                   color=POINT_COLOURS[i % len(POINT_COLOURS)])
        a.set_title(textwrap.fill(results[0][0].label, 40) if len(results) == 1
                    else f"{len(cols)} results", fontsize=9)
        a.set_xlabel("day of the run")
        a.set_ylabel(f"{unit} per day (7-day mean)")
        a.set_ylim(bottom=0)
        if len(cols) > 1:
            a.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    captions = "; ".join(f"{e(r.name)}: {e(r.label)}" for _, results in panels
                         for r, _ in results)
    return figs.figure(fig, f"Daily results of {e(cls.kind)}: {captions}.")


def _run_report(path: Path, baseline: Path | None = None) -> str:
    d = _load_run(path, baseline)
    m = d.m
    figs = _Figures()
    mf = d.manifest
    body = [
        "<h2>Summary</h2>", _run_summary(d, m),
        "<h2>Scores over time</h2>", _fig_distribution(d, figs),
        "<h2>Grade flows</h2>", _fig_grade_flows(d, figs),
        "<h2>Sanctions per gate</h2>", _fig_gates(d, m, figs),
        "<h2>Wrongful sanctions by group</h2>", _fig_wrongful(d, m, figs),
        "<h2>Disparate impact</h2>", _fig_impact(d, m, figs),
        "<h2>Chilling</h2>", _fig_chilling(d, m, figs),
        "<h2>Spirals</h2>", _fig_spirals(d, m, figs),
        *_generations(d, figs),
        "<h2>EU AI Act Art. 5(1)(c): what was measured</h2>", _eu_section(d, m),
        *_module_sections(d, m, figs),
        "<h2>Measures</h2>", _measures_table(m),
        "<h2>Scenario</h2>",
        "<details><summary>The fully resolved scenario (save as a .toml file to run it "
        f"again)</summary><pre>{e(mf.get('scenario_toml', ''))}</pre></details>",
    ]
    sub = (f"{num(mf['people'])} people, {num(mf['days'])} days, seed "
           f"{num(d.scenario['run']['seed'])} &middot; run folder {e(str(path))}"
           + (f" &middot; baseline: {e(d.baseline)}" if d.baseline else ""))
    return _page(f"credsim report: {mf['scenario_name']}", sub, body)


# Comparison report ---------------------------------------------------------------------

SUMMARY_COLUMNS = ("scenario", "point", "measure", "key", "unit", "n", "mean",
                   "ci_low", "ci_high", "diff_mean", "diff_ci_low", "diff_ci_high")
_TEXT, _WHOLE = ("scenario", "measure", "key", "unit", "kind"), ("point", "n")
REQUIRED_VALUES = ("scenario", "point", "measure")  # never null


class _ComparisonManifest(BaseModel):
    """The fields of a compare/sweep manifest that the report shows, with their types."""

    model_config = ConfigDict(extra="allow")

    replicates: int | None = None
    seeds: str | None = None
    bound_days: float = Field(30.0, ge=0)
    vary: list[dict[str, Any]] = []

    @field_validator("vary")
    @classmethod
    def _values_are_lists(cls, vary: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if any(not isinstance(v.get("values", []), list) for v in vary):
            raise ValueError("each entry's values must be a list")
        return vary


def _summary_schema() -> pa.Schema:
    return pa.schema([(c, pa.string() if c in _TEXT else pa.int64() if c in _WHOLE
                       else pa.float64()) for c in (*SUMMARY_COLUMNS, "kind")])
HEADLINE = [
    ("sanctioned_person_days_per_million", ""), ("wrongful_share", ""),
    ("new_listings_per_million", ""), ("listed_per_million", ""),
    ("cross_context_share", ""), ("disproportionate_share", ""),
    ("voice_per_1000_person_days", ""), ("ties_dropped_per_1000", ""),
    ("isolated_critics_share", ""), ("fall_to_c_within_year", ""), ("gini_savings", ""),
]


@dataclass
class Interval:
    mean: float | None
    low: float | None
    high: float | None
    n: int | None = None  # replicates in which the value is defined

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (
            self.low > 0 or self.high < 0)


def _fmt_iv(iv: Interval | None) -> str:
    if iv is None or iv.mean is None:
        return "n/a"
    if iv.low is None:
        return num(iv.mean)
    return f'{num(iv.mean)}<br><span class="iv">[{num(iv.low)}, {num(iv.high)}]</span>'


@dataclass
class _Comparison:
    kind: str
    manifest: dict
    labels: list[str]  # by point index: point 0 is the reference of the differences
    keys: list[tuple[str, str]]  # (measure, key), in the order of the summary
    units: dict[tuple[str, str], str]
    kinds: dict[tuple[str, str], str]
    means: dict[tuple[str, str], dict[int, Interval]]
    diffs: dict[tuple[str, str], dict[int, Interval]]  # points other than 0
    series: dict[str, dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]]
    # series name -> point -> (day, mean, low, high), from series.parquet

    def mean(self, measure: str, point: int, key: str = "") -> float | None:
        iv = self.means.get((measure, key), {}).get(point)
        return None if iv is None else iv.mean


def _load_comparison(path: Path, manifest: dict) -> _Comparison:
    """Read and check a compare/sweep folder (credsim.audit.replicates writes it)."""
    kind = manifest.get("kind")
    mf = path / "manifest.json"
    if kind not in COMPARISON_KINDS:
        raise InputError(f"{mf}: kind {kind!r} is neither a run folder nor a compare/sweep "
                         f"folder (expected one of {', '.join(COMPARISON_KINDS)})")
    version, expected = manifest.get("format_version"), COMPARISON_FORMAT_VERSION
    if version != expected:
        raise InputError(f"{mf}: {kind} format_version {version!r} is not supported by "
                         f"credsim {__version__} (expects {expected}); run the {kind} again "
                         "with this version")
    if not manifest.get("complete"):
        hint = (f"finish it with `credsim sweep --resume {path}`" if kind == "sweep"
                else "run the comparison again")
        raise InputError(f"{mf}: the {kind} is not marked complete; {hint}")
    try:
        manifest = {**manifest, **_ComparisonManifest.model_validate(manifest).model_dump()}
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InputError(f"{mf}: not a valid {kind} manifest "
                         f"({'.'.join(map(str, err['loc']))}: {err['msg']})") from None
    sp = path / "summary.parquet"
    if not sp.is_file():
        raise InputError(f"{path}: summary.parquet is missing (the {kind}'s means and "
                         "intervals); run it again")
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(sp)
    except Exception as exc:  # any unreadable file is the user's input
        raise InputError(f"{sp}: unreadable summary ({exc})") from None
    missing = [c for c in SUMMARY_COLUMNS if c not in table.column_names]
    if missing:
        raise InputError(f"{sp}: not a credsim summary (missing columns: "
                         f"{', '.join(missing)})")
    if "kind" not in table.column_names:  # optional: decided from the measure and unit
        from credsim.audit.replicates import _kind_of

        kinds = [_kind_of(str(m), str(u or "")) for m, u in zip(
            table.column("measure").to_pylist(), table.column("unit").to_pylist(),
            strict=True)]
        table = table.append_column("kind", pa.array(kinds, pa.string()))
    try:
        table = table.select([*SUMMARY_COLUMNS, "kind"]).cast(_summary_schema())
    except (pa.ArrowException, ValueError) as exc:
        raise InputError(f"{sp}: not a credsim summary (a column of the wrong type: "
                         f"{str(exc).splitlines()[0]})") from None
    nulls = [c for c in REQUIRED_VALUES if table.column(c).null_count]
    if nulls:
        raise InputError(f"{sp}: not a credsim summary (empty values in {nulls[0]})")
    rows = table.to_pylist()
    if not rows:
        raise InputError(f"{sp}: the summary has no rows")
    labels: dict[int, str] = {}
    keys: dict[tuple[str, str], None] = {}
    units: dict[tuple[str, str], str] = {}
    kinds: dict[tuple[str, str], str] = {}
    means: dict[tuple[str, str], dict[int, Interval]] = defaultdict(dict)
    diffs: dict[tuple[str, str], dict[int, Interval]] = defaultdict(dict)
    for r in rows:
        k, pt = (r["measure"], r["key"] or ""), int(r["point"])
        labels.setdefault(pt, str(r["scenario"]))
        keys.setdefault(k)
        units.setdefault(k, r["unit"] or "")
        kinds.setdefault(k, r["kind"] or "")
        means[k][pt] = Interval(r["mean"], r["ci_low"], r["ci_high"], r["n"])
        if pt != 0:  # point 0 is the reference of the paired differences
            diffs[k][pt] = Interval(r["diff_mean"], r["diff_ci_low"], r["diff_ci_high"])
    order = sorted(labels)
    return _Comparison(kind, manifest, [labels[i] for i in order], list(keys), units,
                       kinds, means, diffs, _load_series(path))


SERIES_COLUMNS = {"series": pa.string(), "point": pa.int64(), "day": pa.int64(),
                  "mean": pa.float64(), "ci_low": pa.float64(), "ci_high": pa.float64()}


def _load_series(path: Path) -> dict:
    """series.parquet (each point's daily series: mean over replicates and interval)."""
    sp = path / "series.parquet"
    if not sp.is_file():
        return {}  # the report says there is no daily series
    import pyarrow.parquet as pq

    try:
        t = pq.read_table(sp).select(list(SERIES_COLUMNS)).cast(pa.schema(
            list(SERIES_COLUMNS.items())))
    except Exception as exc:  # any unreadable file is the user's input
        raise InputError(f"{sp}: not a credsim series file "
                         f"({str(exc).splitlines()[0]})") from None
    out: dict = {}
    cols = {c: t.column(c).to_numpy(zero_copy_only=False) for c in SERIES_COLUMNS}
    for name in dict.fromkeys(cols["series"]):
        for pt in sorted(set(cols["point"][cols["series"] == name].tolist())):
            sel = (cols["series"] == name) & (cols["point"] == pt)
            order = np.argsort(cols["day"][sel])
            out.setdefault(str(name), {})[int(pt)] = tuple(
                np.asarray(cols[c][sel][order], float) for c in ("day", "mean", "ci_low",
                                                                 "ci_high"))
    return out


def _forest(c: _Comparison, figs: _Figures) -> str:
    """One panel per headline measure: the paired difference from point 0 (compare), or
    each point's mean (sweep), with its 95 % interval."""
    paired = c.kind == "compare"
    pts = list(range(1, len(c.labels))) if paired else list(range(len(c.labels)))
    chosen = [k for k in HEADLINE if k in c.means]
    chosen += [k for k in c.keys if k[0] in ("sanction_impact_ratio", "wrongful_share")
               and k[1] and k not in chosen]
    source = c.diffs if paired else c.means
    panels = [k for k in chosen
              if any((source[k].get(p) or Interval(None, None, None)).mean is not None
                     for p in pts)]
    if not panels or not pts:
        return '<p class="note">No measure has values to plot.</p>'
    ncol = 2
    nrow = math.ceil(len(panels) / ncol)
    h = 1.0 + 0.3 * len(pts)
    with figs.plt.rc_context(figs.rc):
        fig, axes = figs.plt.subplots(nrow, ncol, figsize=(10, h * nrow + 0.5), squeeze=False,
                                      layout="constrained")
    y = np.arange(len(pts))[::-1]
    names = [c.labels[p] if len(c.labels[p]) <= 30 else c.labels[p][:29] + "…" for p in pts]
    for i, ax in enumerate(axes.flat):
        if i >= len(panels):
            ax.axis("off")
            continue
        k = panels[i]
        for yi, p in zip(y, pts, strict=True):
            iv = source[k].get(p)
            if iv is None or iv.mean is None:
                ax.annotate("n/a", (0.02, yi), xycoords=("axes fraction", "data"), fontsize=8,
                            va="center", color=GREY)
                continue
            col = VERMILION if paired and iv.excludes_zero else BLUE
            if iv.low is not None:
                ax.plot([iv.low, iv.high], [yi, yi], color=col, lw=2, solid_capstyle="butt")
            ax.plot([iv.mean], [yi], "o", color=col, ms=5)
        if paired:
            ax.axvline(0, color="#333", lw=0.8, ls="--")
        ax.set_yticks(y, names, fontsize=8)
        ax.set_ylim(-0.7, len(pts) - 0.3)
        ax.set_title(textwrap.fill(_label(*k), 55), fontsize=9)
        unit = c.units.get(k, "")
        ax.set_xlabel(f"change in {unit}" if paired else unit, fontsize=8)
        ax.tick_params(axis="x", labelsize=8)
        # Few ticks, written out in full: small differences' ticks would overlap.
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: num(v, 2)))
    fig.suptitle(f"difference from {c.labels[0]} (paired by replicate): mean and 95 % "
                 "interval" if paired else "mean and 95 % interval across replicates",
                 fontsize=10)
    cap = (f"Paired differences from {c.labels[0]}, replicate by replicate (common random "
           "numbers), with 95 % intervals; vermilion (red-orange) where the interval "
           "excludes 0, blue where it includes 0 (not distinguishable from no change)."
           if paired else "Each grid point's mean across replicates with its 95 % interval.")
    return figs.figure(fig, e(cap))


# One colour per scenario or grid point (Okabe-Ito, cycled).
POINT_COLOURS = [BLUE, ORANGE, "#009E73", VERMILION, "#CC79A7", "#56B4E9", "#F0E442"]
GROUP_PANELS = (
    ("wrongful_share", "wrongful share of sanctioned days", None),
    ("sanction_impact_ratio", "sanction impact ratio", FOUR_FIFTHS),
    ("listing_impact_ratio", "listing impact ratio", FOUR_FIFTHS),
)


GROUP_AXES = {"wrongful_share": "share of sanctioned person-days",
              "sanction_impact_ratio": "impact ratio (1 = no disparity)",
              "listing_impact_ratio": "impact ratio (1 = no disparity)"}


def _group_keys(c: _Comparison, measure: str) -> list[str]:
    return [k[1] for k in c.keys if k[0] == measure and k[1]]


def _first_scenario(c: _Comparison) -> dict | None:
    """The first scenario of a compare or sweep folder, as its manifest records it."""
    import tomllib

    try:
        return tomllib.loads(c.manifest["points"][0]["scenario_toml"])
    except (KeyError, IndexError, TypeError, tomllib.TOMLDecodeError):
        return None


def _comparison_groups(c: _Comparison, figs: _Figures) -> str:
    """Each scenario's (or grid point's) group measures with their intervals, the impact
    ratios against the four-fifths line."""
    panels = [(name, title, line) for name, title, line in GROUP_PANELS
              if any(iv.mean is not None for g in _group_keys(c, name)
                     for iv in c.means[(name, g)].values())]
    if not panels:
        return '<p class="note">No group-level measure has values.</p>'
    fig, ax = figs.new(len(panels), width=3.3 * len(panels) + 1.2, height=3.2)
    n = len(c.labels)
    w = 0.8 / n
    for a, (name, title, line) in zip(ax[0], panels, strict=True):
        groups = _group_keys(c, name)
        x = np.arange(len(groups))
        for p in range(n):
            ivs = [c.means[(name, g)].get(p) for g in groups]
            mean = np.array([np.nan if iv is None or iv.mean is None else iv.mean
                             for iv in ivs])
            low = np.array([np.nan if iv is None or iv.low is None else iv.low for iv in ivs])
            high = np.array([np.nan if iv is None or iv.high is None else iv.high
                             for iv in ivs])
            err = np.nan_to_num(np.vstack([mean - low, high - mean]), nan=0.0).clip(0)
            label = c.labels[p] if len(c.labels[p]) <= 30 else c.labels[p][:29] + "…"
            a.errorbar(x + (p - (n - 1) / 2) * w, mean, yerr=err, fmt="o", ms=4, capsize=3,
                       color=POINT_COLOURS[p % len(POINT_COLOURS)], label=label)
        if line is not None:
            a.axhline(line, color="#333", ls="--", lw=1)
        a.set_xticks(x, [group_words(g) for g in groups])
        a.set_xlim(-0.6, len(groups) - 0.4)
        a.set_ylim(bottom=0)
        a.set_xlabel("audit group")
        a.set_ylabel(GROUP_AXES[name])
        a.set_title(title, fontsize=9)
    ax[0][-1].legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figs.figure(fig, "By audit group: each " + ("scenario" if c.kind == "compare" else
                       "grid point") + "'s mean across replicates with its 95 % interval. "
                       "The dashed line is the four-fifths line (0.8): a group is flagged "
                       "when the whole interval of its impact ratio lies below it, and "
                       "inconclusive when the interval spans it (docs/measures.md)."
                       + _groups_note(_first_scenario(c)))


def _four_fifths_summary(c: _Comparison) -> list[str]:
    """Scenarios or points whose impact ratio is flagged (the whole interval below 0.8)
    or inconclusive (the interval spans 0.8)."""
    found: dict[str, list[str]] = {FLAGGED: [], INCONCLUSIVE: []}
    for what in ("sanction", "listing"):
        name = f"{what}_impact_ratio"
        for g in _group_keys(c, name):
            for p, iv in sorted(c.means[(name, g)].items()):
                verdict = four_fifths_verdict(iv.mean, iv.low, iv.high)
                if verdict in found:
                    found[verdict].append(f"{e(c.labels[p])}, {e(group_words(g))}, {what}s: "
                                          f"{_fmt_iv(iv).replace('<br>', ' ')}"
                                          + _defined_in(c, iv, " "))
    out = []
    if found[FLAGGED]:
        out.append('<span class="flag">Four-fifths rule: flagged</span> (the whole 95 % '
                   "interval of the mean impact ratio is below 0.8): "
                   + "; ".join(found[FLAGGED]) + ".")
    if found[INCONCLUSIVE]:
        out.append("<b>Four-fifths rule: inconclusive</b> (the 95 % interval of the mean "
                   "impact ratio spans 0.8, so the replicates cannot tell whether the group "
                   "is below the line): " + "; ".join(found[INCONCLUSIVE]) + ".")
    return out


# Why a value is n/a: the measure's name -> what it needs.
_NEEDS_SANCTIONS = ("wrongful_share", "cross_context_share", "disproportionate_share",
                    "sanction_impact_ratio", "sanction_four_fifths_flag")
_NEEDS_LISTINGS = ("listing_impact_ratio", "listing_four_fifths_flag")
_UNDEFINED_BECAUSE = {
    "audit_catch_share": "not defined: no insider edits",
    "recovered_share": "not defined: no wrongful deductions",
    "recovery_days_median": "not defined: no wrongful deduction was recovered",
    "voice_vs_baseline": "needs a baseline run",
    "true_events_vs_baseline": "needs a baseline run",
    "isolated_critics_share": "not defined: no critics",
    "private_school_lost_share": "not defined: no such child held a private place",
    "score_assortativity": "not defined: no active tie between scored people",
}


def na_reason(c: _Comparison, k: tuple[str, str], p: int) -> str:
    """Why the mean of measure k is n/a at point p, in words."""
    measure, key = k
    if p not in c.means.get(k, {}):
        return "not measured: this scenario has no such system or gate"
    if measure in _NEEDS_SANCTIONS:
        if not c.mean("sanctioned_person_days_per_million", p):
            return "no sanctions at all in this scenario"
        if key and measure == "wrongful_share":
            return f"no sanctions in {group_words(key)}"
        return "not defined: no sanction was applied"
    if measure in _NEEDS_LISTINGS:
        return "not defined: no listings"
    return _UNDEFINED_BECAUSE.get(measure, "not defined in any replicate")


def _defined_in(c: _Comparison, iv: Interval, sep: str = "<br>") -> str:
    """'(in 1 of 5 replicates)' when the value is not defined in every replicate."""
    reps = c.manifest.get("replicates")
    if iv.n is None or reps is None or iv.n >= reps:
        return ""
    return f'{sep}<span class="iv">(defined in {iv.n} of {reps} replicates)</span>'


def _cell(c: _Comparison, k: tuple[str, str], p: int) -> str:
    """A mean [interval], or n/a with its reason."""
    iv = c.means.get(k, {}).get(p)
    if iv is None or iv.mean is None:
        return f'n/a<br><span class="iv">{e(na_reason(c, k, p))}</span>'
    return _fmt_iv(iv) + _defined_in(c, iv)


def _diff_cell(c: _Comparison, k: tuple[str, str], p: int) -> str:
    iv = c.diffs.get(k, {}).get(p)
    if iv is not None and iv.mean is not None:
        return _fmt_iv(iv)
    missing = next((q for q in (0, p) if c.mean(k[0], q, k[1]) is None), None)
    why = ("no replicate pair has both values" if missing is None else
           f"n/a in {c.labels[missing]}: {na_reason(c, k, missing)}")
    return f'n/a<br><span class="iv">{e(why)}</span>'


# Plain-language sentences of a comparison: (measure, what it counts, how to show it).
SENTENCES = (
    ("sanctioned_person_days_per_million", "sanctioned person-days per million "
     "person-days", "count"),
    ("wrongful_share", "the share of sanctioned days resting on false records", "share"),
    ("new_listings_per_million", "new court listings per million people a year", "count"),
    ("cross_context_share", "the share of sanctions outside the triggering domain", "share"),
    ("disproportionate_share", "the share of sanctions costing more than {bound} days' "
     "income", "share"),
    ("voice_per_1000_person_days", "voice events per 1000 person-days", "count"),
)


def _levels(a: float, b: float, how: str) -> tuple[str, str]:
    """Two levels as text, with enough digits to tell them apart."""
    for digits in range(3, 8):
        fa, fb = ((f"{100 * a:.{digits - 2}f} %", f"{100 * b:.{digits - 2}f} %")
                  if how == "share" else (num(a, digits), num(b, digits)))
        if fa != fb or a == b:
            break
    return fa, fb


def _change(v: float, how: str) -> str:
    if how == "share":
        return f"{100 * v:+.1f}".replace("+0.0", "0.0").replace("-0.0", "0.0")
    return f"{'+' if v > 0 else ''}{num(v, 3)}"


def _sentence(c: _Comparison, p: int, measure: str, what: str, how: str) -> str | None:
    k = (measure, "")
    if k not in c.means:
        return None
    a, b = c.mean(measure, 0), c.mean(measure, p)
    label, ref = e(c.labels[p]), e(c.labels[0])
    if a is None or b is None:
        if a is None and b is None:
            return f"{e(what)}: n/a in both ({e(na_reason(c, k, p))})"
        q = 0 if a is None else p
        return f"{e(what)}: n/a in {e(c.labels[q])} ({e(na_reason(c, k, q))})"
    iv = c.diffs.get(k, {}).get(p)
    if a == b == 0:
        return f"{e(what)}: none in either"
    verb = "cuts" if b < a else "raises" if b > a else "leaves unchanged"
    fa, fb = _levels(a, b, how)
    text = f"{label} {verb} {e(what)} from {fa} ({ref}) to {fb}"
    if iv is None or iv.low is None:
        return (text + " (no interval of the change: the measure is defined in both "
                "scenarios in fewer than two replicates, so the change cannot be told from "
                "noise)")
    points = " percentage points" if how == "share" else ""
    text += (f" (95 % interval of the change: {_change(iv.low, how)} to "
             f"{_change(iv.high, how)}{points})")
    if not iv.excludes_zero:
        text += "; the change is not distinguishable from none"
    return text


def _plain_language(c: _Comparison) -> list[str]:
    """One item per scenario other than the first: what it changes, in sentences."""
    bound = num(float(c.manifest.get("bound_days", 30.0)))
    items = []
    for p in range(1, len(c.labels)):
        said = [t for measure, what, how in SENTENCES
                if (t := _sentence(c, p, measure, what.format(bound=bound), how))]
        if said:
            items.append(f"<b>{e(c.labels[p])} against {e(c.labels[0])}.</b> "
                         + ". ".join(said) + ".")
    return items


SERIES_TITLES = {"sanctioned": "people sanctioned",
                 "sanctioned_wrongful": "people sanctioned on a false record",
                 "listed": "people on the court list"}


def _series_charts(c: _Comparison, figs: _Figures) -> str:
    """Daily series: each scenario's mean over replicates with its 95 % band."""
    if not c.series:
        return '<p class="note">The folder has no series.parquet: no daily series.</p>'
    names = [n for n in SERIES_TITLES if n in c.series
             and any(np.nanmax(v[1]) > 0 for v in c.series[n].values() if len(v[1]))]
    if not names:
        return ('<p class="note">Nobody was sanctioned or listed on any day in any '
                "replicate: there is no daily series to draw.</p>")
    fig, ax = figs.new(len(names), width=3.6 * len(names) + 1.4, height=3.0)
    for a, name in zip(ax[0], names, strict=True):
        for p, (day, mean, low, high) in sorted(c.series[name].items()):
            col = POINT_COLOURS[p % len(POINT_COLOURS)]
            label = c.labels[p] if len(c.labels[p]) <= 30 else c.labels[p][:29] + "…"
            a.plot(day, mean, color=col, lw=1.6, label=label)
            a.fill_between(day, low, high, color=col, alpha=0.2, lw=0)
        a.set_title(SERIES_TITLES[name], fontsize=9)
        a.set_xlabel("day of the run")
        a.set_ylabel("people (mean over replicates)")
        a.set_ylim(bottom=0)
    ax[0][-1].legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    what = "scenario" if c.kind == "compare" else "grid point"
    return figs.figure(fig, f"Day by day: each {what}'s mean over replicates (line) and "
                       "the 95 % interval of that mean (band), from series.parquet.")


def _comparison_eu(c: _Comparison) -> str:
    bound = num(float(c.manifest.get("bound_days", 30.0)))
    paired = c.kind == "compare"
    head = ["scenario" if paired else "grid point", "cross_context_share",
            "disproportionate_share"]
    if paired:
        head += [f"cross_context_share − {e(c.labels[0])}",
                 f"disproportionate_share − {e(c.labels[0])}"]
    rows = []
    for p, label in enumerate(c.labels):
        row = [e(label)] + [_cell(c, (k, ""), p)
                            for k in ("cross_context_share", "disproportionate_share")]
        if paired:
            row += [_diff_cell(c, (k, ""), p) if p else ""
                    for k in ("cross_context_share", "disproportionate_share")]
        rows.append(row)
    return "".join([
        EU_ARTICLE,
        "<h3>(i) Unrelated social contexts</h3>",
        f"<p>Measured in each run: <b>cross_context_share</b>, {EU_CROSS}</p>",
        "<h3>(ii) Unjustified or disproportionate treatment</h3>",
        f"<p>Measured in each run: <b>disproportionate_share</b>, "
        f"{_eu_disproportionate(bound)}</p>",
        '<p class="note">Mean [95 % interval] across replicates; n/a, with the reason, where '
        "no run applied a sanction.</p>",
        html_table(head, rows, set(range(1, len(head)))),
    ])


def _comparison_report(path: Path, manifest: dict) -> str:
    c = _load_comparison(path, manifest)
    figs = _Figures()
    paired = c.kind == "compare"
    what = "scenarios" if paired else "grid points"
    reps = manifest.get("replicates")
    seeds = manifest.get("seeds")
    items = [f"<b>What was run.</b> A {e(c.kind)} of {len(c.labels)} {what} "
             f"({e(', '.join(c.labels))})"
             + (f", {e(str(reps))} replicates each" if reps is not None else "")
             + (f" (seeds: {e(str(seeds))})" if seeds else "")
             + ". Replicate r of every " + ("scenario" if paired else "grid point")
             + " runs with the same seed (common random numbers)."]
    if c.kind == "sweep" and manifest.get("vary"):
        varied = "; ".join(f"{e(str(v.get('key')))} = "
                           f"{e(', '.join(str(x) for x in v.get('values', [])))}"
                           for v in manifest["vary"] if isinstance(v, dict))
        items.append(f"<b>Varied.</b> {varied}.")
    items += _plain_language(c)
    items += _four_fifths_summary(c)
    body = ["<h2>Summary</h2>",
            '<ul class="summary">' + "".join(f"<li>{i}</li>" for i in items) + "</ul>",
            "<h2>Differences with intervals</h2>" if paired else
            "<h2>Means with intervals</h2>", _forest(c, figs),
            "<h2>Day by day</h2>", _series_charts(c, figs),
            "<h2>Wrongful sanctions and disparate impact by group</h2>",
            _comparison_groups(c, figs),
            "<h2>EU AI Act Art. 5(1)(c): what was measured</h2>", _comparison_eu(c)]
    head = ["measure (key)", "unit"] + [e(lab) for lab in c.labels]
    head += [f"{e(lab)} − {e(c.labels[0])}" for lab in c.labels[1:]]
    trows = []
    for k in c.keys:
        r = [_named(*k), e(c.units[k])]
        r += [_cell(c, k, p) for p in range(len(c.labels))]
        r += [_diff_cell(c, k, p) for p in range(1, len(c.labels))]
        trows.append(r)
    body += ["<h2>Every measure</h2>",
             '<p class="note">Mean [95 % interval] across replicates, and the paired '
             f"difference from {e(c.labels[0])} [95 % interval], from summary.parquet "
             "(docs/measures.md).</p>",
             html_table(head, trows, set(range(2, len(head))))]
    sub = f"{e(c.kind)} folder {e(str(path))}"
    return _page(f"credsim {c.kind} report", sub, body)
