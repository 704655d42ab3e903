"""Regenerate the golden figures of every preset: `python benchmarks/golden.py`.

tests/golden/presets.json holds, for each shipped preset run small (GOLDEN_PEOPLE
people, GOLDEN_DAYS days, seed 1; a preset whose population changes GOLDEN_DECADES_DAYS,
long enough for school years, comings of age and couples), a content hash of every table
of its run folder and the value of every measure of its harm audit. tests/test_golden.py
runs the presets again and fails on any difference, so a change to any preset's numbers
is never an accident. A change that is intended is made by running this script and
committing the new file with a message that says what changed and why.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

GOLDEN_PEOPLE = 2000
GOLDEN_DAYS = 120
GOLDEN_DECADES_DAYS = 1461  # 4 years: a demography preset's yearly events happen
GOLDEN_FILE = Path(__file__).parents[1] / "tests" / "golden" / "presets.json"
TABLES = ("timeseries", "ledger", "people", "firms", "sanctions")


# Floating-point columns are hashed at these significant digits: the system maths library
# may pick another variant of exp or log on another processor, which can move the last
# bit of a value; every count, id, flag and category is hashed exactly.
FLOAT_DIGITS = {pa.float64(): 10, pa.float32(): 5}


def _values(col: pa.Array) -> list:
    digits = FLOAT_DIGITS.get(col.type)
    values = col.to_pylist()
    if digits is None:
        return values
    return [None if v is None else float(f"{v:.{digits}g}") for v in values]


def table_hash(table: pa.Table) -> str:
    """A hash of a table's column names, types and values, in row order: independent of
    the Parquet encoding and of the library versions that wrote the file."""
    h = hashlib.sha256()
    for name in table.column_names:
        col = table[name].combine_chunks()
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        h.update(f"{name}:{col.type}\n".encode())
        h.update(json.dumps(_values(col), separators=(",", ":")).encode())
    return h.hexdigest()


def same_measures(golden: dict, now: dict) -> tuple[dict, list]:
    """Measures whose value moved (beyond the last bits, as for float columns) and
    measures that are new."""
    moved = {}
    for key, then in golden.items():
        value = now.get(key, "missing")
        close = (isinstance(then, float) and isinstance(value, float)
                 and abs(value - then) <= 1e-9 * max(abs(then), abs(value)))
        if value != then and not close:
            moved[key] = (then, value)
    return moved, sorted(set(now) - set(golden))


def preset_figures(name: str, work: Path) -> dict:
    from credsim.audit.measures import compute
    from credsim.results import run_dir
    from credsim.scenario.load import load_scenario

    s = load_scenario(name, people=GOLDEN_PEOPLE, days=GOLDEN_DAYS, seed=1)
    if s.demography.enabled:
        s = load_scenario(name, people=GOLDEN_PEOPLE, days=GOLDEN_DECADES_DAYS, seed=1)
    out = work / name
    tmp = run_dir.prepare(out)
    run_dir.simulate(s, tmp)
    run_dir.commit(tmp, out)
    tables = {t: table_hash(pq.read_table(out / f"{t}.parquet")) for t in TABLES}
    measures = {f"{m.measure}|{m.key}": m.value for m in compute(out)}
    return {"tables": tables, "measures": measures}


def all_figures() -> dict:
    from credsim.scenario.load import preset_names

    with tempfile.TemporaryDirectory(prefix="credsim-golden-") as work:
        return {name: preset_figures(name, Path(work)) for name in preset_names()}


def differences(golden: dict, figures: dict) -> list[str]:
    """One line per preset, table or measure whose figures moved."""
    out = [f"{n}: preset added or removed" for n in sorted(set(golden) ^ set(figures))]
    for n in sorted(set(golden) & set(figures)):
        g, f = golden[n], figures[n]
        out += [f"{n}: table {t} changed" for t in sorted(g["tables"])
                if g["tables"][t] != f["tables"].get(t)]
        moved, added = same_measures(g["measures"], f["measures"])
        out += [f"{n}: measure {k} {v}" for k, v in moved.items()]
        out += [f"{n}: measure {k} added" for k in added]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the golden file instead of writing it")
    args = parser.parse_args()
    figures = all_figures()
    if args.check:
        golden = json.loads(GOLDEN_FILE.read_text())["presets"]
        drift = differences(golden, figures)
        for line in drift:
            print(line)
        print("golden figures differ" if drift else "golden figures match")
        return 1 if drift else 0
    GOLDEN_FILE.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN_FILE.write_text(json.dumps(
        {"people": GOLDEN_PEOPLE, "days": GOLDEN_DAYS, "decades_days": GOLDEN_DECADES_DAYS,
         "seed": 1, "presets": figures},
        indent=1, sort_keys=True) + "\n")
    print(f"wrote {GOLDEN_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
