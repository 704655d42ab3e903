"""Numbers and tables for people: no scientific notation, thousands separators, shares as
percentages, intervals shown to the digits they support; and every CLI table in one of four
formats (a Rich table, CSV, JSON or a GitHub Markdown table)."""

from __future__ import annotations

import csv
import io
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any, TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

FORMATS = ("table", "csv", "json", "markdown")
SIGNIFICANT = 4  # digits of a plain number
INTERVAL_DIGITS = 2  # significant digits of an interval's half-width
NOT_AVAILABLE = "n/a"


# ---------------------------------------------------------------------------------------
# Numbers


def decimals_for(value: float, significant: int = SIGNIFICANT) -> int:
    """Digits after the point that show `value` to `significant` significant digits (none
    for whole numbers of that many digits or more)."""
    if value == 0 or not math.isfinite(value):
        return 0
    return max(0, significant - 1 - math.floor(math.log10(abs(value))))


def fixed(value: float, decimals: int) -> str:
    """`value` rounded to `decimals` digits after the point (negative: to tens, hundreds,
    ...), with thousands separators and never in e notation."""
    if not math.isfinite(value):
        return {math.inf: "∞", -math.inf: "−∞"}.get(value, NOT_AVAILABLE)
    # Decimal rounds the exact binary value and prints without an exponent; its precision
    # must hold every digit of the largest float (309) and the smallest (1,074 decimals).
    with localcontext(Context(prec=1_500, rounding=ROUND_HALF_EVEN)):
        step = Decimal(1).scaleb(-decimals)
        exact = Decimal(value)
        rounded = exact.quantize(step) if decimals >= 0 else (
            (exact / step).quantize(Decimal(1)) * step)
        if rounded == 0:
            rounded = abs(rounded)  # no "-0"
        return f"{rounded:,.{max(decimals, 0)}f}"


def number(value: float | None, significant: int = SIGNIFICANT) -> str:
    """A number for people: `significant` significant digits, but every digit of the whole
    part (1,234,568 rather than 1.235e+06); `n/a` for None."""
    if value is None:
        return NOT_AVAILABLE
    text = fixed(value, decimals_for(value, significant))
    # Trailing zeros after the point claim a precision nobody asked for (0.00000035).
    return text.rstrip("0").rstrip(".") if "." in text else text


def percent(share: float | None, significant: int = SIGNIFICANT) -> str:
    """A share (0.0007066) as a percentage ('0.07066 %')."""
    if share is None:
        return NOT_AVAILABLE
    return number(share * 100, significant) + " %"


def is_share(unit: str) -> bool:
    """Whether a unit names a share of a whole (shown as a percentage)."""
    return "share" in unit.split()


def value(value: float | None, unit: str) -> str:
    """A value in its unit: shares as percentages, anything else as a plain number."""
    return percent(value) if is_share(unit) else number(value)


def interval_decimals(low: float, high: float) -> int:
    """Decimals to which an interval's mean and bounds are shown: those of the second
    significant digit of its half-width."""
    return decimals_for((high - low) / 2, INTERVAL_DIGITS)


def mean_pm(mean: float | None, low: float | None, high: float | None,
            unit: str = "", difference: bool = False) -> str:
    """'mean ± half-width' of an interval, rounded to the precision the interval supports
    (1,257 ± 340 rather than 1,257 ± 340.1), or 'mean [low, high]' where the interval is
    not symmetric about the mean; the mean alone if there is no interval.
    Shares are shown in percent, and a difference of shares in percentage points."""
    if mean is None:
        return NOT_AVAILABLE
    scale, suffix = (100.0, " pp" if difference else " %") if is_share(unit) else (1.0, "")
    if low is None or high is None:
        return number(mean * scale) + suffix
    lo, hi, m = low * scale, high * scale, mean * scale
    if not hi > lo:  # no spread: every replicate gave the same value
        return f"{number(m)} ± 0{suffix}"
    d = interval_decimals(lo, hi)
    if fixed(hi - m, d) != fixed(m - lo, d):
        # An interval on a log or logit scale is not symmetric about its mean: "±" would
        # understate one side, so both ends are shown.
        return f"{fixed(m, d)} [{fixed(lo, d)}, {fixed(hi, d)}]{suffix}"
    return f"{fixed(m, d)} ± {fixed((hi - lo) / 2, d)}{suffix}"


# ---------------------------------------------------------------------------------------
# Tables


@dataclass
class Column:
    """A column of the table shown to people: its header and how it lays out."""

    header: str
    numeric: bool = False  # right-aligned and never wrapped

    def add_to(self, table: Table, cells: Sequence[str], whole_numbers: bool) -> None:
        # Long text wraps (a word too long for the column is folded), never cut; numbers
        # keep their whole width if the table can fit so, and their header wraps above.
        if self.numeric:
            widest = max((len(c) for c in cells), default=1) if whole_numbers else None
            table.add_column(escape(self.header), justify="right", overflow="fold",
                             min_width=widest)
        else:
            table.add_column(escape(self.header), overflow="fold")


@dataclass
class Output:
    """One table of a command: `columns` and `cells` (text) for people (table and Markdown),
    `records` (full-precision values, units in their own fields) for programs (CSV and
    JSON)."""

    title: str
    columns: list[Column]
    cells: list[list[str]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    fields: list[str] = field(default_factory=list)  # CSV header; default: records' keys

    def add(self, cells: Sequence[str], record: dict[str, Any] | None = None) -> None:
        self.cells.append(list(cells))
        if record is not None:
            self.records.append(record)


def check_format(fmt: str) -> str:
    """`fmt` if it is one of FORMATS; ValueError with the allowed ones otherwise."""
    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: allowed: {', '.join(FORMATS)}")
    return fmt


def emit(output: Output, fmt: str, console: Console, stream: TextIO | None = None) -> None:
    """Print `output` in `fmt`: a Rich table on `console`, the others as text on `stream`
    (standard output)."""
    stream = stream or sys.stdout
    if fmt == "table":
        # Numbers are kept whole if the table can fit so; otherwise they wrap (not cut).
        table = rich_table(output, whole_numbers=True)
        if not _fits(table, console.width):
            table = rich_table(output, whole_numbers=False)
        console.print(table)
    elif fmt == "markdown":
        stream.write(markdown(output))
    elif fmt == "csv":
        names = output.fields or _keys(output.records)
        w = csv.DictWriter(stream, fieldnames=names, lineterminator="\n")
        w.writeheader()
        w.writerows({k: _csv_value(r.get(k)) for k in names} for r in output.records)
    elif fmt == "json":
        stream.write(json.dumps([{k: _json_value(v) for k, v in r.items()}
                                 for r in output.records], indent=2, ensure_ascii=False))
        stream.write("\n")
    else:
        raise ValueError(check_format(fmt))
    stream.flush()


def _fits(table: Table, width: int) -> bool:
    """Whether Rich can lay `table` out in `width` columns without cutting it (a cut
    line lacks its right border)."""
    probe = Console(file=io.StringIO(), width=width, color_system=None, legacy_windows=False)
    probe.print(table)
    lines = [ln for ln in probe.file.getvalue().splitlines() if ln[:1] in "┏┃┡│└"]
    return all(ln[-1:] in "┓┃┩│┘" for ln in lines)


def rich_table(output: Output, whole_numbers: bool) -> Table:
    table = Table(title=escape(output.title) if output.title else None)
    for i, c in enumerate(output.columns):
        c.add_to(table, [row[i] for row in output.cells], whole_numbers)
    for row in output.cells:
        table.add_row(*(escape(c) for c in row))
    return table


def markdown(output: Output) -> str:
    """A GitHub Markdown table of what people see (`|` and `<` in a cell escaped, so that
    `channels.<name>` is not taken for HTML)."""
    def cell(text: str) -> str:
        return " ".join(text.replace("|", "\\|").replace("<", "\\<").split())

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell(c) for c in cells) + " |"

    rule = "|" + "|".join("---:" if c.numeric else "---" for c in output.columns) + "|"
    lines = [line([c.header for c in output.columns]), rule]
    lines += [line(row) for row in output.cells]
    return "\n".join(lines) + "\n"


def _keys(records: list[dict[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(r))
    return list(names)


def _csv_value(v: Any) -> Any:
    # repr of a float is the shortest text that reads back to the same float.
    return "" if v is None else (repr(v) if isinstance(v, float) else v)


def _json_value(v: Any) -> Any:
    # JSON has no infinity or NaN: such a value is null (the table shows it).
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v
