"""`credsim report`: one self-contained HTML file, checked for content and rendered in
headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from credsim.audit import replicates as rep
from credsim.audit import report as rpt
from credsim.audit.measures import compute
from credsim.errors import InputError
from credsim.results.query import connect
from credsim.scenario.model import GRADES

SECTIONS = ("Summary", "Scores over time", "Grade flows", "Sanctions per gate",
            "Wrongful sanctions by group", "Disparate impact", "Chilling", "Spirals",
            "EU AI Act Art. 5(1)(c): what was measured", "Measures", "Scenario")
HOSTILE = "<script>alert('x')</script> & co"


@pytest.fixture(scope="module")
def run(simulate, busy, tmp_path_factory) -> Path:
    """Busy rongcheng (every kind of row, false records), with a description that must be
    escaped."""
    out = tmp_path_factory.mktemp("report") / "run"
    return simulate(out, "rongcheng", (*busy, f"description={HOSTILE}"), people=4000,
                    days=90, seed=5).path


@pytest.fixture(scope="module")
def report(run) -> tuple[Path, str]:
    path = rpt.write_report(run)
    return path, path.read_text("utf-8")


def _chromium() -> str | None:
    return shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def test_report_is_self_contained(run, report):
    path, html = report
    assert path == run / "report.html"
    assert not list(run.glob(".credsim-*"))  # written under a temporary name
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    # Nothing to fetch: no scripts, external style sheets, images or frames, and no
    # address in any src or href.
    for tag in ("<script", "<link", "<img", "<iframe", "<object", "<embed", "@import"):
        assert tag not in html.lower(), tag
    refs = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", html, re.I)
    assert refs and all(r.startswith("#") for r in refs), set(refs) - {r for r in refs
                                                                        if r.startswith("#")}
    assert not re.search(r"url\(\s*['\"]?(?!#)", html)  # CSS or SVG url() only to ids
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html
    assert html.count("<svg") >= 8  # figures are inline SVG
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))  # ids unique across the figures
    for s in SECTIONS:
        assert f"<h2>{rpt.e(s)}</h2>" in html, s
    # Text from the run is escaped.
    assert "<script>alert" not in html
    assert rpt.e(HOSTILE) in html


def test_report_numbers_match_the_measures(run, report):
    _, html = report
    measures = compute(run)
    by = {(m.measure, m.key): m.value for m in measures}
    # Every measure is in the table, with the value as the report prints it.
    for m in measures:
        row = (f"<td>{rpt._named(m.measure, m.key)}</td>"
               f"<td class=n>{rpt.num(m.value)}</td><td>{rpt.e(m.unit)}</td>")
        assert row in html, row
        assert rpt.e(m.label) in html  # in words, as credsim.labels declares it
    con = connect(run)
    try:
        sanctioned, wrongful, new = con.execute(
            "SELECT sum(sanctioned), sum(sanctioned_wrongful), sum(new_listings) "
            "FROM timeseries").fetchone()
        (people,) = con.execute("SELECT count(DISTINCT id) FROM sanctions "
                                "WHERE effect = 'sanction'").fetchone()
    finally:
        con.close()
    assert wrongful > 0 and sanctioned > wrongful
    summary = html[html.index("<h2>Summary</h2>"):html.index("<h2>Scores over time</h2>")]
    assert by[("wrongful_share", "")] == pytest.approx(wrongful / sanctioned)
    assert (f"{rpt.num(wrongful)} of the {rpt.num(sanctioned)} sanctioned person-days "
            f"(<b>{rpt.pct(wrongful / sanctioned)}</b>)") in summary
    assert f"{rpt.num(people)} people had at least one sanction" in summary
    assert f"{rpt.num(new)} new listings" in summary
    assert rpt.pct(by[("cross_context_share", "")]) in summary
    flagged = [k for (m, k), v in by.items() if m.endswith("four_fifths_flag") and v == 1]
    # A ratio below 0.8 is flagged, or inconclusive when its interval spans 0.8.
    if flagged:
        assert ("Four-fifths rule: flagged" in summary
                or "Four-fifths rule: inconclusive" in summary)
    if "Four-fifths rule: flagged" in summary:
        assert flagged
    eu = html[html.index("EU AI Act Art. 5(1)(c)"):html.index("<h2>Measures</h2>")]
    assert f"cross_context_share = {rpt.num(by[('cross_context_share', '')])}" in eu
    assert f"disproportionate_share = {rpt.num(by[('disproportionate_share', '')])}" in eu
    assert "30 days of income" in eu and "legal question" in eu


def test_saved_measures_take_precedence(run, tmp_path):
    """A measures.parquet written by `credsim audit` (another bound, a baseline) is used."""
    from credsim.audit.measures import Measure, write_measures

    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("report.html"))
    ms = compute(copy, bound_days=5.0) + [Measure("voice_vs_baseline", "", 0.5, "ratio")]
    write_measures(ms, copy)
    html = rpt.write_report(copy, tmp_path / "r.html").read_text("utf-8")
    assert "more than <b>5 days of income</b>" in html
    assert "0.5 times the level of the same society without the system" in html


def test_report_renders_in_headless_chromium(report, tmp_path):
    chromium = _chromium()
    if chromium is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run does it)")
    path, _ = report
    png = tmp_path / "report.png"
    r = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
         f"--screenshot={png}", "--window-size=1280,4000", path.resolve().as_uri()],
        capture_output=True, text=True, timeout=120)
    assert png.is_file() and png.stat().st_size > 20_000, r.stderr[-2000:]
    import matplotlib.image as mpimg

    img = mpimg.imread(png)[..., :3]
    assert img.shape[:2] == (4000, 1280)
    assert img.std() > 0.05  # not blank
    ink = (img.max(axis=2) < 0.5).mean()  # dark pixels: text and lines
    assert ink > 0.002
    # The figures' blue (#0072B2) is there: the SVG was drawn.
    blue = np.all(np.abs(img - np.array([0x00, 0x72, 0xB2]) / 255) < 0.06, axis=2)
    assert blue.sum() > 2000


def test_cli_report_with_out(run, tmp_path, cli):
    out = tmp_path / "sub" / "mine.html"
    r = cli("report", str(run), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.is_file() and "report:" in r.stdout
    r = cli("report", str(tmp_path / "missing"))
    assert r.returncode == 2 and "no such folder" in r.stderr


def test_report_never_replaces_a_file_it_did_not_write(run, tmp_path, cli, one_error):
    """--out naming the run's own manifest or tables, or any other existing file, is
    refused and the file left as it was."""
    other = tmp_path / "notes.html"
    other.write_text("<!DOCTYPE html><html><head><title>mine</title></head></html>")
    link = tmp_path / "link.html"
    link.symlink_to(run / "manifest.json")
    for target in (run / "manifest.json", run / "people.parquet", other, link):
        before = target.read_bytes()
        msg = one_error(cli("report", str(run), "--out", str(target)))
        assert str(target) in msg and "not a report written by credsim" in msg
        assert target.read_bytes() == before
        assert not list(target.parent.glob(".credsim-*"))
    assert link.is_symlink()


def test_an_earlier_report_is_replaced(run, report, tmp_path):
    out = tmp_path / "r.html"
    rpt.write_report(run, out)
    assert rpt.GENERATOR in out.read_text("utf-8")[:1000]
    out.write_text(out.read_text("utf-8").replace("</main>", "<p>edited</p></main>"))
    rpt.write_report(run, out)
    assert out.read_text("utf-8") == report[1]  # the same run's report, written again
    # A report from before the generator mark existed is recognised by how it begins.
    legacy = tmp_path / "old.html"
    legacy.write_text(report[1].replace(rpt.GENERATOR + "\n", ""), "utf-8")
    rpt.write_report(run, legacy)
    assert legacy.read_text("utf-8") == report[1]


def test_bad_folders(tmp_path, run):
    with pytest.raises(InputError, match="no such folder"):
        rpt.write_report(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no manifest.json"):
        rpt.write_report(tmp_path / "empty")
    old = tmp_path / "old"
    old.mkdir()
    manifest = json.loads((run / "manifest.json").read_text("utf-8"))
    (old / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    with pytest.raises(InputError, match="format_version 99"):
        rpt.write_report(old)
    (old / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="unreadable manifest"):
        rpt.write_report(old)
    with pytest.raises(InputError, match="is a folder"):
        rpt.write_report(run, tmp_path)


# Compare and sweep folders -------------------------------------------------------------

def _comparison(folder: Path, kind: str = "compare", **manifest) -> Path:
    """A compare folder as credsim.audit.replicates writes it, with made-up numbers."""
    folder.mkdir()
    (folder / "runs").mkdir()
    m = {"kind": kind, "format_version": rep.FORMAT_VERSION, "complete": True, "replicates": 3,
         "seeds": "base seed + replicate: 1 to 3",
         "points": [{"point": 0, "label": "baseline"}, {"point": 1, "label": "rongcheng"},
                    {"point": 2, "label": "<b>mine</b>"}], **manifest}
    (folder / "manifest.json").write_text(json.dumps(m))
    rows = []
    for pt, label in enumerate(["baseline", "rongcheng", "<b>mine</b>"]):
        for measure, unit, mean, diff in (
                ("wrongful_share", "share", 0.1 * pt, 0.1 * pt),
                ("voice_per_1000_person_days", "per 1000", 1.0 - 0.2 * pt, -0.2 * pt)):
            row = {"scenario": label, "point": pt, "measure": measure, "key": "",
                   "unit": unit, "kind": "share" if unit == "share" else "rate", "n": 3,
                   "mean": mean, "sd": 0.01, "ci_low": mean - 0.02,
                   "ci_high": mean + 0.02, "versus": None, "diff_n": None,
                   "diff_mean": None, "diff_sd": None, "diff_ci_low": None,
                   "diff_ci_high": None}
            if pt:
                row.update(versus="baseline", diff_n=3, diff_mean=diff, diff_sd=0.01,
                           diff_ci_low=diff - (0.3 if pt == 1 else 0.05),
                           diff_ci_high=diff + (0.3 if pt == 1 else 0.05))
            rows.append(row)
    pq.write_table(pa.Table.from_pylist(rows), folder / "summary.parquet")
    days = np.arange(30)
    series = [{"scenario": label, "point": pt, "series": "sanctioned", "day": int(d),
               "n": 3, "mean": float(pt * d), "ci_low": float(pt * d * 0.8),
               "ci_high": float(pt * d * 1.2)}
              for pt, label in enumerate(["baseline", "rongcheng", "<b>mine</b>"])
              for d in days]
    pq.write_table(pa.Table.from_pylist(series), folder / "series.parquet")
    return folder


def test_compare_report_shows_paired_differences(tmp_path):
    folder = _comparison(tmp_path / "cmp")
    html = rpt.write_report(folder).read_text("utf-8")
    # The forest plot and the daily series.
    assert "<h2>Differences with intervals</h2>" in html and html.count("<svg") == 2
    assert "<b>mine</b>" not in html and "&lt;b&gt;mine&lt;/b&gt;" in html
    summary = html[html.index("<h2>Summary</h2>"):html.index("<h2>Differences")]
    # One plain sentence per scenario and measure; rongcheng's intervals include 0.
    assert ("&lt;b&gt;mine&lt;/b&gt; raises the share of sanctioned days resting on false "
            "records from 0.0 % (baseline) to 20.0 % (95 % interval of the change: +15.0 to "
            "+25.0 percentage points)") in summary
    assert ("&lt;b&gt;mine&lt;/b&gt; cuts voice events per 1000 person-days from 1 "
            "(baseline) to 0.6 (95 % interval of the change: -0.45 to -0.35)") in summary
    assert summary.count("the change is not distinguishable from none") == 2  # rongcheng
    assert "-0.45 to -0.35); the change is not" not in summary
    iv = '<td class=n>{}<br><span class="iv">[{}, {}]</span></td>'.format
    assert iv(0.2, 0.15, 0.25) in html  # mine - baseline, wrongful share
    assert iv(0.6, 0.58, 0.62) in html  # mine's voice mean and interval
    # The EU AI Act's test and the group measures have sections of their own; a measure
    # the folder lacks is n/a with its reason.
    assert "<h2>EU AI Act Art. 5(1)(c): what was measured</h2>" in html
    assert "not measured: this scenario has no such system or gate" in html
    assert "<h2>Wrongful sanctions and disparate impact by group</h2>" in html
    days = html[html.index("<h2>Day by day</h2>"):html.index("<h2>Wrongful")]
    assert days.count("<svg") == 1 and "people sanctioned" in days
    refs = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]*)""", html, re.I)
    assert all(r.startswith("#") for r in refs)


def _add_rows(folder: Path, measure: str, unit: str, kind: str,
              values: dict[tuple[int, str], tuple]) -> None:
    """Rows of (point, key) -> (mean, low, high), added to the folder's summary."""
    rows = pq.read_table(folder / "summary.parquet").to_pylist()
    labels = {r["point"]: r["scenario"] for r in rows}
    for (pt, key), (mean, lo, hi) in values.items():
        rows.append({**rows[0], "scenario": labels[pt], "point": pt, "measure": measure,
                     "key": key, "unit": unit, "kind": kind, "mean": mean, "ci_low": lo,
                     "ci_high": hi})
    pq.write_table(pa.Table.from_pylist(rows), folder / "summary.parquet")


def test_compare_report_four_fifths_flagged_only_below_the_whole_interval(tmp_path):
    folder = _comparison(tmp_path / "cmp")
    _add_rows(folder, "sanction_impact_ratio", "ratio", "ratio", {
        **{(pt, "group=0"): (1.0, 1.0, 1.0) for pt in range(3)},
        (0, "group=1"): (1.0, 1.0, 1.0), (1, "group=1"): (0.7, 0.5, 0.9),
        (2, "group=1"): (0.6, 0.55, 0.65)})
    html = rpt.write_report(folder).read_text("utf-8")
    summary = html[html.index("<h2>Summary</h2>"):html.index("<h2>Differences")]
    flagged = summary[summary.index("Four-fifths rule: flagged"):]
    flagged = flagged[:flagged.index("</li>")]
    unsure = summary[summary.index("Four-fifths rule: inconclusive"):]
    unsure = unsure[:unsure.index("</li>")]
    # mine's interval lies wholly below 0.8: flagged; rongcheng's spans 0.8: inconclusive.
    assert "&lt;b&gt;mine&lt;/b&gt;, group 1, sanctions: 0.6" in flagged
    assert "rongcheng" not in flagged
    assert "rongcheng, group 1, sanctions: 0.7" in unsure and "mine" not in unsure
    assert "group 0" not in summary and "baseline, group" not in summary
    groups = html[html.index("<h2>Wrongful sanctions and disparate impact by group</h2>"):
                  html.index("<h2>EU AI Act")]
    assert groups.count("<svg") == 1


def test_four_fifths_verdicts():
    assert rpt.four_fifths_verdict(0.6, 0.55, 0.79) == rpt.FLAGGED
    assert rpt.four_fifths_verdict(0.7, 0.5, 0.9) == rpt.INCONCLUSIVE
    assert rpt.four_fifths_verdict(0.9, 0.7, 1.0) == rpt.INCONCLUSIVE
    assert rpt.four_fifths_verdict(0.9, 0.85, 1.0) == rpt.CLEAR
    # One replicate, no interval: cannot be flagged.
    assert rpt.four_fifths_verdict(0.0, None, None) == rpt.INCONCLUSIVE
    assert rpt.four_fifths_verdict(1.0, None, None) == rpt.CLEAR
    assert rpt.four_fifths_verdict(None, None, None) is None


def test_compare_report_says_why_a_cell_is_na(tmp_path):
    folder = _comparison(tmp_path / "cmp")
    nobody = {(pt, ""): (None, None, None) for pt in range(3)}
    _add_rows(folder, "cross_context_share", "share", "share", nobody)
    _add_rows(folder, "sanctioned_person_days_per_million", "per million person-days",
              "rate", {(pt, ""): (0.0, 0.0, 0.0) for pt in range(3)})
    _add_rows(folder, "listing_impact_ratio", "ratio", "ratio",
              {(pt, "group=0"): (None, None, None) for pt in range(3)})
    html = rpt.write_report(folder).read_text("utf-8")
    eu = html[html.index("<h2>EU AI Act"):html.index("<h2>Every measure")]
    assert eu.count("no sanctions at all in this scenario") >= 3
    every = html[html.index("<h2>Every measure"):]
    assert "not defined: no listings" in every
    summary = html[html.index("<h2>Summary</h2>"):html.index("<h2>Differences")]
    assert "sanctioned person-days per million person-days: none in either" in summary


def test_sweep_report_shows_means(tmp_path):
    folder = _comparison(tmp_path / "sw", kind="sweep",
                         vary=[{"key": "court_list.grace_days", "values": ["0", "30"]}])
    html = rpt.write_report(folder, tmp_path / "sweep.html").read_text("utf-8")
    assert "<h2>Means with intervals</h2>" in html and "court_list.grace_days = 0, 30" in html


def test_real_compare_folder(tmp_path, cli):
    out = tmp_path / "cmp"
    r = cli("compare", "baseline", "rongcheng", "--replicates", "2", "--people", "1500",
            "--days", "20", "--workers", "1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    html = rpt.write_report(out).read_text("utf-8")
    assert "rongcheng − baseline" in html and "<svg" in html


def test_bad_comparison_folders(tmp_path):
    folder = _comparison(tmp_path / "a")
    (folder / "summary.parquet").unlink()
    with pytest.raises(InputError, match="summary.parquet is missing"):
        rpt.write_report(folder)
    with pytest.raises(InputError, match="format_version 1"):
        rpt.write_report(_comparison(tmp_path / "b", format_version=1))
    with pytest.raises(InputError, match="not marked complete"):
        rpt.write_report(_comparison(tmp_path / "c", kind="sweep", complete=False))
    with pytest.raises(InputError, match="kind 'grid'"):
        rpt.write_report(_comparison(tmp_path / "d", kind="grid"))
    folder = _comparison(tmp_path / "e")
    pq.write_table(pa.table({"measure": ["x"]}), folder / "summary.parquet")
    with pytest.raises(InputError, match="missing columns: scenario"):
        rpt.write_report(folder)


# The single-run report's figures, four-fifths intervals and baseline ---------------------

def test_every_axis_of_the_run_report_is_labelled(run, tmp_path, monkeypatch):
    seen = []
    real = rpt._Figures.svg

    def record(self, fig):
        seen.extend(ax for ax in fig.axes if ax.get_visible() and ax.axison)
        return real(self, fig)

    monkeypatch.setattr(rpt._Figures, "svg", record)
    rpt.write_report(run, tmp_path / "r.html")
    assert len(seen) >= 8
    for ax in seen:
        assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()


def test_gate_names_are_written_in_words(report):
    assert rpt.gate_words("high_speed_rail") == "high-speed rail"
    assert rpt.gate_words("deposit_free_housing_rental") == "deposit-free housing rental"
    assert rpt.gate_words("rep_flights") == "flights (legal representatives)"
    _, html = report
    gates = html[html.index("<h2>Sanctions per gate</h2>"):html.index("<h2>Wrongful")]
    assert "<td>high-speed rail</td>" in gates and "high_speed_rail" not in gates


def _timeseries(shares: list[list[float]], days: int = 50) -> dict:
    ts = {"day": np.arange(days)}
    for g, share in zip(GRADES, shares, strict=True):
        ts[f"grade_{g}"] = np.array(share * days)[:days] * 1000
    return ts


def test_the_stacked_grade_chart_is_left_out_when_one_grade_holds_everyone():
    from credsim.systems.points.report import grades_over_time

    nearly_all_a = [[0.002], [0.003], [0.991], [0.004], [0.0], [0.0]]
    spread = [[0.1], [0.2], [0.4], [0.2], [0.05], [0.05]]
    html = "".join(grades_over_time(_timeseries(nearly_all_a), GRADES, rpt._Figures()))
    assert "share of adults in each grade" not in html
    assert "Grade A held at least 99% of adults on every day" in html
    html = "".join(grades_over_time(_timeseries(spread), GRADES, rpt._Figures()))
    assert "share of adults in each grade" in html


def test_run_impact_ratio_interval_covers_the_true_ratio():
    """Each group's rate is a count of people (binomial, nearly Poisson) over its size; the
    log-scale interval of the ratio covers the true ratio about 95 % of the time."""
    rng = np.random.default_rng(11)
    sizes = {"group=0": 8000, "group=1": 2000}
    p0, p1 = 0.01, 0.016
    truth = p0 / p1
    draws, hits = 3000, 0
    for _ in range(draws):
        counts = {"group=0": int(rng.binomial(sizes["group=0"], p0)),
                  "group=1": int(rng.binomial(sizes["group=1"], p1))}
        rates = {k: counts[k] / sizes[k] for k in counts}
        ratio = min(rates.values()) / rates["group=1"]
        lo, hi = rpt.run_ratio_interval(ratio, counts, sizes, "group=1", rates)
        assert 0 <= lo <= ratio <= hi <= 1
        hits += lo <= truth <= hi
    coverage = hits / draws
    assert abs(coverage - 0.95) <= 4 * (0.95 * 0.05 / draws) ** 0.5, coverage


def test_report_names_its_baseline_and_refuses_another_society(run, simulate, tmp_path):
    base = simulate(tmp_path / "base", "baseline", people=4000, days=90, seed=5).path
    html = rpt.write_report(run, tmp_path / "r.html", baseline=base).read_text("utf-8")
    assert f"baseline: baseline ({rpt.e(str(base))})" in html
    assert "Measured against baseline" in html
    assert "voice_vs_baseline" in html
    other = simulate(tmp_path / "other", "baseline", ["population.urban_share=0.5"],
                     people=4000, days=90, seed=5).path
    with pytest.raises(InputError, match=r"not the same society .*population\.urban_share"):
        rpt.write_report(run, tmp_path / "r2.html", baseline=other)
    seed = simulate(tmp_path / "seed", "baseline", people=4000, days=90, seed=6).path
    with pytest.raises(InputError, match=r"differ in seed"):
        rpt.write_report(run, tmp_path / "r3.html", baseline=seed)
    assert not (tmp_path / "r2.html").exists()


def test_cli_report_baseline_refusal_is_one_error(run, tmp_path, cli, one_error):
    r = cli("report", str(run), "--out", str(tmp_path / "r.html"), "--baseline",
            str(tmp_path / "missing"))
    assert "missing" in one_error(r)


def test_comparison_series_file_missing_or_damaged(tmp_path):
    folder = _comparison(tmp_path / "a")
    (folder / "series.parquet").unlink()
    html = rpt.write_report(folder).read_text("utf-8")
    assert "no series.parquet: no daily series" in html
    (folder / "series.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="series.parquet: not a credsim series file"):
        rpt.write_report(folder, tmp_path / "b.html")
    pq.write_table(pa.table({"series": ["sanctioned"]}), folder / "series.parquet")
    with pytest.raises(InputError, match="not a credsim series file"):
        rpt.write_report(folder, tmp_path / "b.html")


@pytest.mark.parametrize("v", [2.78e-05, -6.7e-05, 1.5e-09, 0.000371, 3.14159, 1234.5])
def test_report_numbers_are_never_in_e_notation(v):
    import re

    for text in (rpt.num(v), rpt.pct(v)):
        assert not re.search(r"\de[-+]?\d", text), text
    assert float(rpt.num(v).replace(",", "")) == pytest.approx(v, rel=1e-3)


def test_the_report_says_what_the_audit_groups_are(report):
    _, html = report
    assert "Audit groups are abstract groups" in html
    assert "group 0: 85.0 % of people, group 1: 15.0 % of people" in html


def test_a_report_may_have_the_longest_name_the_file_system_allows(run, tmp_path):
    target = tmp_path / ("r" * 250 + ".html")
    assert rpt.write_report(run, target) == target and target.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
