"""A credit system shipped as a package: the example examples/credsim-dating, installed
with pip into a temporary folder beside credsim, adds a system and a preset that runs,
audits and reports, with no edit to credsim. Broken packages get one clear message."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import credsim
from credsim.scenario.load import validate

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "credsim-dating"
SRC = Path(credsim.__file__).resolve().parents[1]  # this checkout's credsim
SMALL = ("--people", "2000", "--days", "60")
MEASURES = ("dating_match_ratio", "dating_score_assortativity", "dating_matches_per_member")
# A log ratio or a correlation this many standard errors from its value under the null
# fails the test: about 1 in 2,000 by chance, with the seeds fixed.
Z = 3.5


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example package installed with the venv's pip into a folder of its own, as
    `pip install --no-build-isolation --no-deps --target`; nothing is downloaded."""
    target = tmp_path_factory.mktemp("site")
    r = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-build-isolation", "--no-deps",
         "--no-index", "--disable-pip-version-check", "--quiet", "--target", str(target),
         str(EXAMPLE)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert list(target.glob("credsim_dating-*.dist-info/entry_points.txt"))
    return target


def _credsim(*args: str, path: tuple[Path, ...] = (), cwd: Path | None = None
             ) -> subprocess.CompletedProcess:
    """`python -m credsim ARGS` with `path` (installed packages) after credsim on the
    import path."""
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1",
           "PYTHONPATH": os.pathsep.join(str(p) for p in (SRC, *path))}
    return subprocess.run([sys.executable, "-m", "credsim", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def _ok(r: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r


def _one_error(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    return lines[0]


def _run(site: Path, out: Path, preset: str = "baihe", *overrides: str) -> Path:
    sets = [a for o in overrides for a in ("--set", o)]
    _ok(_credsim("run", preset, *SMALL, *sets, "--out", str(out), "--quiet", path=(site,)))
    return out


def _audit(site: Path, run: Path) -> dict[str, float | None]:
    r = _ok(_credsim("audit", str(run), "--format", "json", path=(site,)))
    return {m["measure"]: m["value"] for m in json.loads(r.stdout) if not m["key"]}


@pytest.fixture(scope="module")
def baihe(site, tmp_path_factory) -> Path:
    return _run(site, tmp_path_factory.mktemp("baihe") / "run")


def _fifths(run: Path) -> tuple[int, int, int]:
    """Match ends in the bottom and top fifths of displayed score, and matches."""
    ts = pq.read_table(run / "timeseries.parquet").to_pydict()
    return sum(ts["dating_matches_q1"]), sum(ts["dating_matches_q5"]), sum(ts["dating_matches"])


# The package plugs in -------------------------------------------------------------------


def test_presets_lists_the_package_preset(site):
    lines = _ok(_credsim("presets", path=(site,))).stdout.splitlines()
    baihe = [ln for ln in lines if ln.startswith("baihe ")]
    assert len(baihe) == 1 and "(from the package credsim-dating)" in baihe[0]
    assert any(ln.startswith("sesame ") and "from the package" not in ln for ln in lines)
    # Without the package on the path the preset is unknown.
    assert "unknown preset 'baihe'" in _one_error(_credsim("show", "baihe"))


def test_run_audit_and_report_show_the_module_measures(site, baihe):
    manifest = json.loads((baihe / "manifest.json").read_text())
    assert manifest["scenario"]["systems"]["dating"]["kind"] == "dating"
    low, high, matches = _fifths(baihe)
    assert matches > 0
    people = pq.read_table(baihe / "people.parquet", columns=["dating_member",
                                                               "dating_matches"])
    assert sum(people["dating_matches"].to_pylist()) == 2 * matches  # both partners
    table = _ok(_credsim("audit", str(baihe), path=(site,))).stdout
    for name in MEASURES:
        assert f"[{name}]" in table
    assert "matches per member, top fifth of displayed score over bottom fifth" in table
    values = _audit(site, baihe)
    assert values["dating_match_ratio"] == pytest.approx(high / low)
    members = sum(people["dating_member"].to_pylist())
    assert values["dating_matches_per_member"] == pytest.approx(
        2 * matches / members * 365 / 60)
    _ok(_credsim("report", str(baihe), path=(site,)))
    html = (baihe / "report.html").read_text()
    section = html[html.index("<h2>System dating"):html.index("<h2>Measures</h2>")]
    assert "<svg" in section and "Daily results of dating: dating_searches" in section
    assert "dating_matches_q&lt;quintile&gt;: members matched, by fifth" in section
    for name in MEASURES:
        assert name in section and name in html[html.index("<h2>Measures</h2>"):]


def test_show_round_trips_the_systems_table(site, tmp_path):
    shown = _ok(_credsim("show", "baihe", path=(site,))).stdout
    assert "[systems.dating]" in shown and "# Kind dating: Share of adults" in shown
    saved = tmp_path / "baihe.toml"
    saved.write_text(shown)
    assert _ok(_credsim("show", str(saved), path=(site,))).stdout == shown
    plain = _ok(_credsim("show", str(saved), "--plain", "--set", "systems.dating.pool=7",
                         path=(site,))).stdout
    assert "\npool = 7\n" in plain


def test_the_python_api_sees_the_package(site, tmp_path):
    code = """
import credsim
assert "baihe" in dict(credsim.presets())
sc = credsim.load("baihe", set={"systems.dating.pool": 8})
assert sc.systems["dating"] == {"kind": "dating", "members": 0.2, "seek_rate": 0.05,
                                "pool": 8, "shown": 5, "match_prob": 0.1, "pickiness": 100.0}
again = credsim.load(credsim.Scenario.model_validate(sc.model_dump(mode="json")))
assert again == sc
try:
    credsim.load("baihe", set={"systems.dating.pool": 0})
except credsim.InputError as exc:
    assert str(exc).startswith("preset baihe: systems.dating.pool: Input should be "
                               "greater than or equal to 1 (got 0)"), exc
else:
    raise AssertionError("pool = 0 was accepted")
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(map(str, (SRC, site)))}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_compare_summarises_module_measures_by_their_kind(site, tmp_path):
    """compare runs a package's preset beside a variant and puts intervals on its
    measures by the kinds the module declares."""
    variant = tmp_path / "random.toml"
    variant.write_text('extends = "baihe"\nname = "baihe-random"\n[systems.dating]\n'
                       "pool = 5\npickiness = 0\n")
    out = tmp_path / "cmp"
    _ok(_credsim("compare", "baihe", str(variant), "--replicates", "2", *SMALL,
                 "--workers", "2", "--out", str(out), "--quiet", path=(site,)))
    rows = [r for r in pq.read_table(out / "summary.parquet").to_pylist()
            if r["measure"].startswith("dating_")]
    kinds = {r["measure"]: r["kind"] for r in rows}
    assert kinds == {"dating_match_ratio": "ratio", "dating_score_assortativity":
                     "correlation", "dating_matches_per_member": "rate"}
    assert {r["scenario"] for r in rows} == {"baihe", "baihe-random"}


def test_the_module_changes_no_other_figure(site, baihe, tmp_path):
    """The dating platform reads the composite score and writes only its own columns:
    every other column of every table is sesame's, byte for byte."""
    sesame = _run(site, tmp_path / "sesame", "sesame")
    for table in ("timeseries", "people", "ledger", "sanctions", "firms"):
        mine = pq.read_table(baihe / f"{table}.parquet")
        theirs = pq.read_table(sesame / f"{table}.parquet")
        own = [c for c in mine.column_names if c.startswith("dating_")]
        assert own or table not in ("timeseries", "people")
        assert mine.drop_columns(own).equals(theirs), table


def test_ranking_by_score_favours_high_scorers(site, baihe, tmp_path):
    """With the ranking, the top fifth of displayed score matches far more often than the
    bottom fifth; with candidates shown at random (pool = shown) and no pickiness, match
    ends fall evenly on the fifths and partners' scores are uncorrelated. Tolerances: the
    log ratio of two Poisson counts has standard error sqrt(1/a + 1/b); a correlation of
    n independent pairs about 1/sqrt(n)."""
    low, high, _ = _fifths(baihe)
    assert math.log(high / low) > Z * math.sqrt(1 / high + 1 / low)
    fair = _run(site, tmp_path / "fair", "baihe", "systems.dating.pool=5",
                "systems.dating.pickiness=0", "systems.dating.seek_rate=0.2")
    low, high, matches = _fifths(fair)
    assert min(low, high) > 30  # enough for the normal approximation
    assert abs(math.log(high / low)) < Z * math.sqrt(1 / high + 1 / low)
    r = _audit(site, fair)["dating_score_assortativity"]
    assert abs(r) < Z / math.sqrt(matches)


def test_pair_correlation_is_pearson_of_both_orders(site):
    """The assortativity from daily sums equals the correlation of the matched scores,
    each match counted both ways round."""
    sys.path.insert(0, str(site))
    try:
        from credsim_dating.system import _pair_correlation
    finally:
        sys.path.remove(str(site))
    rng = np.random.default_rng(3)
    a = rng.normal(600, 50, 500)
    b = 0.4 * a + rng.normal(360, 40, 500)
    expected = np.corrcoef(np.concatenate([a, b]), np.concatenate([b, a]))[0, 1]
    got = _pair_correlation(len(a), float((a + b).sum()), float((a * a + b * b).sum()),
                            float((a * b).sum()))
    assert got == pytest.approx(expected, rel=1e-9)
    assert _pair_correlation(0, 0.0, 0.0, 0.0) is None


# Bad input about a package's system -----------------------------------------------------


def test_systems_table_errors_name_the_file_and_key(site, tmp_path):
    cases = {
        'dating]\nkind = "datin"': "systems.dating.kind: unknown kind 'datin' (did you mean "
                                   "'dating'?)",
        'dating]\nmembres = 0.2': "systems.dating.membres: unknown key 'membres' (did you "
                                  "mean 'members'?); allowed here: kind, match_prob, members",
        'dating]\nmembers = 2': "systems.dating.members: Input should be less than or "
                                "equal to 1 (got 2)",
        'dating]\nshown = 50': "systems.dating.shown: at most pool (20), got 50",
        'dating]\npool = true': "systems.dating.pool: Input should be a valid integer",
        "other]\nmembers = 0.2": "systems.other.kind: missing",
        'other]\nkind = "court_list"': "systems.other.kind: 'court_list' is built into credsim",
        # points may run again beside the main system, which baihe does not enable
        'other]\nkind = "points"': "systems.other: a further points system runs beside the "
                                   "scenario's main one; set points.enabled = true first",
    }
    f = tmp_path / "s.toml"
    for body, expected in cases.items():
        f.write_text(f'extends = "baihe"\n[systems.{body}\n')
        assert _one_error(_credsim("show", str(f), path=(site,))).startswith(
            f"error: {f}: {expected}"), body
    f.write_text('extends = "baihe"\n[systems.again]\nkind = "dating"\n')
    assert "systems.again.kind: 'dating' already runs as systems.dating" in _one_error(
        _credsim("run", str(f), *SMALL, "--out", str(tmp_path / "no"), path=(site,)))
    assert not (tmp_path / "no").exists()


def test_systems_table_without_the_package():
    """Without the package the kind is unknown; a scenario without [systems] writes no
    such table, so credsim's own presets read as before."""
    from credsim.errors import InputError

    with pytest.raises(InputError, match=r"^x\.toml: systems\.d\.kind: unknown kind "
                       r"'dating'; kinds from installed packages: none installed$"):
        validate({"systems": {"d": {"kind": "dating"}}}, "x.toml")
    with pytest.raises(InputError, match=r"^x\.toml: systems\.'a b': not a valid name"):
        validate({"systems": {"a b": {"kind": "dating"}}}, "x.toml")
    assert "systems" not in credsim.load("sesame").to_toml()


# Broken packages -----------------------------------------------------------------------


def _fake_package(root: Path, name: str, entry_points: str, files: dict[str, str]) -> Path:
    """A package as an installer leaves it: its files and a .dist-info with entry points."""
    info = root / f"{name}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


TAKEN_KIND = """from credsim.modules import Module, StrictParams


class Clash(Module):
    kind = "composite"
    Params = StrictParams
"""


@pytest.mark.parametrize("entry, files, expected", [
    ("[credsim.systems]\nclash = clashing:Clash\n", {"clashing.py": TAKEN_KIND},
     "error: entry point clash = clashing:Clash (credsim.systems): module kind "
     "'composite' is already registered (by credsim.systems.composite.system)"),
    ("[credsim.systems]\nbroken = not_importable:System\n", {},
     "error: entry point broken = not_importable:System (credsim.systems) fails to load: "
     "No module named 'not_importable'"),
    ("[credsim.systems]\nplain = plainmod:Plain\n",
     {"plainmod.py": "from credsim.modules import Module\n\n\nclass Plain(Module):\n"
                     "    kind = 'plain'\n"},
     "error: entry point plain = plainmod:Plain (credsim.systems): Plain.Params must be "
     "a Pydantic model of its parameters"),
    ("[credsim.systems]\nsame = samemeasure:Same\n",
     {"samemeasure.py": "from credsim.modules import AuditMeasure, Module, StrictParams\n\n\n"
                        "class Same(Module):\n    kind = 'same'\n    Params = StrictParams\n"
                        "    audit_measures = (AuditMeasure('gini_savings', 'x', 'y', "
                        "'score'),)\n"},
     "error: module same (samemeasure): audit measure 'gini_savings' is already credsim's "
     "own; rename it"),
], ids=["taken-kind", "fails-to-import", "no-params", "taken-measure"])
def test_a_broken_system_entry_point_is_one_message(tmp_path, entry, files, expected):
    root = _fake_package(tmp_path / "site", "broken", entry, files)
    out = tmp_path / "run"
    for args in (("run", "sesame", *SMALL, "--out", str(out), "--quiet"),
                 ("plan", "sesame")):
        assert _one_error(_credsim(*args, path=(root,))).startswith(expected)
    assert not out.exists()


def test_a_preset_with_a_taken_name_is_refused(tmp_path):
    root = _fake_package(tmp_path / "site", "mypresets", "[credsim.presets]\nmine = mine\n",
                         {"mine/__init__.py": "", "mine/sesame.toml": 'name = "mine"\n'})
    expected = ("error: entry point mine = mine (credsim.presets): preset 'sesame' has the "
                "name of one of credsim's own presets; mypresets must rename it")
    assert _one_error(_credsim("presets", path=(root,))) == expected
    assert _one_error(_credsim("show", "rongcheng", path=(root,))) == expected
