"""Print the worked examples with figures of docs/outputs.md (8: a composite score; 9: peer
ratings) from fresh runs at the documented size, exactly as the page shows them.

Each example is one or more `credsim query` commands on a documented run; the script
runs the presets (`credsim run sesame --out /tmp/ex-sesame -q`, and likewise nosedive)
into a folder of its own, runs each query through the command line and prints the
command, as the page writes it, followed by its output. Paste the output into the page
when the numbers change; tests/test_doc_examples.py checks that the page shows them.
Usage:

    python benchmarks/doc_examples.py                 # runs in a temporary folder
    python benchmarks/doc_examples.py --keep DIR      # keep the runs in DIR
"""

# The queries are kept line for line as the page shows them, some lines longer than 100.
# ruff: noqa: E501
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# The documented runs: the folder name the page uses -> the preset (at its own size).
RUNS = {"/tmp/ex-sesame": "sesame", "/tmp/ex-nosedive": "nosedive"}

EXAMPLES: dict[int, list[tuple[str, str]]] = {
    8: [
        ("/tmp/ex-sesame", """SELECT count(*) FILTER (WHERE composite_participant) AS participants, count(*) AS adults,
    round(avg(income) FILTER (WHERE composite_participant)) AS income_participants,
    round(avg(income) FILTER (WHERE NOT composite_participant)) AS income_others
    FROM people WHERE age_band <> 'child'"""),
        ("/tmp/ex-sesame", """SELECT day, band_poor AS poor, band_medium AS medium, band_good AS good,
    band_excellent AS excellent, band_extremely_good AS extremely_good
    FROM timeseries WHERE day % 90 = 0 OR day = 364 ORDER BY day"""),
        ("/tmp/ex-sesame", """SELECT day, kind, cause, channel, record, delta, value
    FROM ledger WHERE entity = 'person' AND id = 82078 AND (kind = 'list' OR abs(delta) >= 10)
    ORDER BY day"""),
        ("/tmp/ex-sesame", """SELECT composite_initial, composite, composite_true, listings, sanctioned
    FROM people WHERE id = 82078"""),
    ],
    9: [
        ("/tmp/ex-nosedive", """SELECT day, round(rating_mean, 3) AS rating_mean, ratings_given, sanctioned, sanctioned_wrongful
    FROM timeseries WHERE day % 91 = 0 OR day = 364 ORDER BY day"""),
        ("/tmp/ex-nosedive", """SELECT round(avg(rating), 2) AS rating, round(avg(rating_true), 2) AS rating_true,
    round(stddev(rating), 2) AS sd, round(stddev(rating_true), 2) AS sd_true
    FROM people WHERE age_band <> 'child'"""),
        ("/tmp/ex-nosedive", """SELECT gate, effect, count(*) AS applications, count(*) FILTER (WHERE wrongful) AS wrongful
    FROM sanctions GROUP BY ALL ORDER BY applications DESC"""),
    ],
}


def _credsim(*args: str) -> str:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    r = subprocess.run([sys.executable, "-m", "credsim", *args], env=env, text=True,
                       capture_output=True)
    if r.returncode != 0:
        raise SystemExit(f"credsim {' '.join(args[:2])} failed: {r.stderr.strip()}")
    return r.stdout


def command(folder: str, sql: str) -> str:
    """The query as the page writes it: one shell command, double quotes escaped."""
    return f'$ credsim query {folder} "{sql.replace(chr(34), chr(92) + chr(34))}" --format csv'


def blocks(workdir: Path) -> dict[int, list[str]]:
    """Run the documented runs into `workdir` and return, per example, each command as
    the page shows it followed by its output."""
    where = {}
    for shown, preset in RUNS.items():
        where[shown] = workdir / Path(shown).name
        if not (where[shown] / "manifest.json").is_file():
            _credsim("run", preset, "--out", str(where[shown]), "-q")
    return {n: [command(folder, sql) + "\n" + _credsim("query", str(where[folder]), sql,
                                                         "--format", "csv").rstrip("\n")
                for folder, sql in queries]
            for n, queries in EXAMPLES.items()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="folder for the runs (kept; reused if there)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = blocks(args.keep or Path(tmp))
    for n, shown in out.items():
        print(f"### example {n}\n")
        print("\n\n".join(shown))
        print()


if __name__ == "__main__":
    main()
