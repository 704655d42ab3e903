"""docs/tutorial.py runs as a plain script (the way a notebook runs its cells in order),
so the tutorial cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TUTORIAL = Path(__file__).parents[1] / "docs" / "tutorial.py"


def test_the_tutorial_runs_and_shows_what_it_says(tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg", "COLUMNS": "100"}
    r = subprocess.run([sys.executable, str(TUTORIAL)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    out = r.stdout
    assert "rongcheng" in out and "sanctioned_person_days_per_million" in out
    assert "Person " in out and "FALSE" in out, "the record followed is a wrongful one"
    assert "reviewed" in out
    assert (tmp_path / "tutorial-listed.png").stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tutorial-listed.png"], (
        "the tutorial's temporary runs are removed")
