"""The README's tour, run as written: every command succeeds, and what it claims to show
is there (a record with entries, rows of a query, sanctions resting on false records)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).parents[1] / "README.md"


def tour_blocks() -> list[str]:
    """The indented code blocks of the README's tour, each as a shell script."""
    text = README.read_text("utf-8")
    start = text.index("## A five-minute tour")
    tour = text[start:text.index("\n## ", start + 1)]
    blocks, current = [], []
    for line in tour.splitlines():
        if line.startswith("    ") or (current and not line.strip()):
            current.append(line)
        elif current:
            blocks.append(textwrap.dedent("\n".join(current)).strip())
            current = []
    if current:
        blocks.append(textwrap.dedent("\n".join(current)).strip())
    return [b for b in blocks if b]


@pytest.fixture(scope="module")
def tour(tmp_path_factory) -> list[tuple[str, str]]:
    """Run every block in order in one fresh folder; (block, output) pairs."""
    work = tmp_path_factory.mktemp("tour")
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
           "COLUMNS": "200", "NO_COLOR": "1"}
    done = []
    for block in tour_blocks():
        r = subprocess.run(["bash", "-euo", "pipefail", "-c", block], cwd=work, env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, f"{block}\n--- exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        assert "Traceback" not in r.stderr, r.stderr
        done.append((block, r.stdout))
    return done


def _output_of(tour, command_start: str) -> str:
    for block, out in tour:
        if command_start in block:
            return out
    raise AssertionError(f"no README block runs {command_start!r}")


def test_the_tour_has_the_commands_it_describes():
    script = "\n".join(tour_blocks())
    for command in ("credsim presets", "credsim run", "credsim summary", "credsim query",
                    "credsim lookup", "credsim audit", "credsim compare", "credsim sweep",
                    "credsim report", "credsim calibrate", "credsim params"):
        assert command in script, command


def test_every_tour_command_succeeds(tour):
    assert len(tour) == len(tour_blocks())


def test_the_looked_up_person_has_a_record(tour):
    out = _output_of(tour, "credsim lookup runs/rc")
    entries = re.search(r"Ledger of person \d+ \((\d+) entries", out)
    assert entries and int(entries.group(1)) > 0, out
    assert "FALSE" in out and "LISTED" in out, "the tour says this person was listed falsely"


def test_the_ledger_query_returns_rows(tour):
    out = _output_of(tour, "from ledger where entity = 'person' and id = 22178")
    assert len([ln for ln in out.splitlines() if "22178" in ln]) >= 3, out


def test_false_court_cases_lead_to_wrongful_sanctions_in_both_groups(tour):
    out = _output_of(tour, "sanctioned_wrongful) as wrongful")
    rows = {int(m.group(1)): (int(m.group(2)), int(m.group(3)))
            for m in re.finditer(r"│\s*(\d)\s*│\s*(\d+)\s*│\s*(\d+)\s*│", out)}
    assert set(rows) == {0, 1}, out
    assert all(wrongful > 0 for wrongful, _ in rows.values()), out


def test_the_decades_audit_has_couples_mobility_and_cohorts(tour):
    out = _output_of(tour, "credsim audit runs/dating")
    for key in ("[couple_score_correlation]", "[rank_rank_slope_income]",
                "[voice_by_cohort cohort=0]"):
        assert key in out, key
    report = _output_of(tour, "credsim report runs/dating")
    assert "report" in report.lower(), report


def test_the_firm_lookup_shows_a_blacklisted_firm(tour):
    out = _output_of(tour, "credsim lookup runs/cc")
    assert "Firm" in out and "blacklist" in out.lower(), out


def test_the_python_example_runs_and_finds_a_wrongful_sanction(tmp_path):
    text = README.read_text("utf-8")
    code = re.search(r"## From Python.*?```python\n(.*?)```", text, re.S).group(1)
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "Person " in r.stdout and "FALSE" in r.stdout, r.stdout
    ratio = float(r.stdout.splitlines()[0])
    assert 0 < ratio < 1, "voice falls under the points system"
    assert (tmp_path / "runs" / "rc-python" / "manifest.json").is_file()
