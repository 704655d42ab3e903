"""The worked examples with figures in docs/outputs.md (8 and 9) are what
benchmarks/doc_examples.py prints from fresh runs at the documented size."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("doc_examples",
                                                  ROOT / "benchmarks" / "doc_examples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_page_shows_what_the_script_prints(tmp_path):
    page = (ROOT / "docs" / "outputs.md").read_text()
    printed = _script().blocks(tmp_path)
    assert set(printed) == {8, 9}
    for n, shown in printed.items():
        for block in shown:
            assert block in page, (n, block)
    # the figures quoted in the prose come from the same output
    participants, adults, inside, outside = printed[8][0].splitlines()[-1].split(",")
    assert f"({int(participants):,} of {int(adults):,})" in page
    assert f"{float(inside):,.0f} against {float(outside):,.0f}" in page
    housing = next(ln for ln in printed[9][2].splitlines() if ln.startswith("housing"))
    _, _, applications, wrongful = housing.split(",")
    assert f"({int(wrongful):,} of {int(applications):,})" in page
