"""The append-only ledger: every change of a score, grade or list status, with its cause.

An entry that ends, reverses or expires another (a delisting, a reversed deduction, a
grade cap's end, a display expiry) carries that entry's row number in `ref`.

Rows are appended to growable NumPy buffers (by vectorised code or Numba
kernels) and streamed to Parquet in row groups, so memory stays bounded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

# score/grade: the points system; list: the court list; composite: a composite score;
# mark: a record entering a composite (delta in hundredths of log-odds); rating: a peer
# rating (value in hundredths of a star); warning: a deduction replaced by a warning;
# blacklist: a firm's public record items and blacklist status; life: a birth or a death
# (demography); union: a couple formed or split (partnering); school: a child's entry or
# refusal (schooling).
KINDS = ("score", "grade", "list", "composite", "mark", "rating", "warning", "blacklist",
         "life", "union", "school")
(K_SCORE, K_GRADE, K_LIST, K_COMPOSITE, K_MARK, K_RATING, K_WARNING, K_BLACKLIST,
 K_LIFE) = range(9)
ENTITIES = ("person", "firm")
RECORDS = ("true", "false", "none", "insider", "collusion")
R_TRUE, R_FALSE, R_NONE, R_INSIDER, R_COLLUSION = 0, 1, 2, 3, 4
# Causes other than a behaviour; behaviour causes are numbered after these.
SPECIAL_CAUSES = (
    "court_listing",  # put on the court list (grace period over, unpaid)
    "legal_rep_of_listed_firm",  # a firm's listing reaches its legal representative
    "delisting_payment",
    "delisting_expiry",
    "delisting_correction",
    "instant_grade_expiry",
    "delisting_appeal",
    "mark_expiry",  # a deduction reversed when it expired (safeguard)
    "audit_reversal",  # an insider's edit caught by audit and reversed
    "composite_refresh",  # a composite score recomputed on its cadence
    "peer_ratings",  # a day's ratings by other people
    "display_expiry",  # a firm's public record item reaches the end of its display period
    "legal_rep_of_blacklisted_firm",  # a firm's blacklisting reaches its legal representative
    "delisting_settlement",  # a settlement with the creditor, fulfilled
    "delisting_no_assets",  # enforcement terminated for this time, no assets found since
    "delisting_death",  # enforcement terminated: the debtor died with no estate
    "birth",  # a person is born (demography)
    "death",  # a person dies (demography)
    "union_offline",  # a couple formed after meeting offline (partnering)
    "union_platform",  # a couple formed after meeting on the dating platform
    "split",  # a couple split
    "school_entry",  # a child entered school (schooling)
    "school_refused",  # a child was refused a top or private place
)
(C_LISTING, C_LEGAL_REP, C_PAID, C_EXPIRY, C_CORRECTION, C_CAP_EXPIRY, C_APPEAL,
 C_MARK_EXPIRY, C_AUDIT, C_REFRESH, C_RATINGS, C_DISPLAY_EXPIRY,
 C_BLACKLIST_REP, C_SETTLEMENT, C_NO_ASSETS, C_DEATH, C_BIRTH, C_PERSON_DEATH) = range(18)

COLUMNS = {
    "day": np.int32, "entity": np.uint8, "id": np.int32, "kind": np.uint8,
    "cause": np.int16, "channel": np.int16, "record": np.uint8,
    "delta": np.int32, "value": np.int32,
    # The row number (0-based position in ledger.parquet) of the entry this one ends,
    # reverses or expires, or that caused it across entities; NO_REF otherwise.
    "ref": np.int64,
}
NO_REF = -1
DEFAULTS = {"ref": NO_REF}  # of a column an append does not give; 0 for the others


class Ledger:
    def __init__(self, path: Path | None, causes: list[str], channels: list[str],
                 flush_rows: int = 1 << 20, extra_kinds: tuple[str, ...] = (),
                 extra_causes: tuple[str, ...] = ()):
        """`causes`: the behaviours; `extra_kinds`, `extra_causes`: those of modules
        from packages, numbered after credsim's own (and after the behaviours)."""
        self.path = path
        self.kind_labels = list(KINDS) + list(extra_kinds)
        self.cause_labels = list(SPECIAL_CAUSES) + list(causes) + list(extra_causes)
        # Reports by informants and edits by insiders come through no channel.
        self.channel_labels = ["-"] + list(channels) + ["informant", "insider", "collusion"]
        self.flush_rows = flush_rows
        self.cols = {k: np.zeros(1 << 16, dtype=t) for k, t in COLUMNS.items()}
        self.n = 0
        self.rows_written = 0
        self.first = 0  # the row number of the buffer's first row (rows flushed so far)
        self._writer: pq.ParquetWriter | None = None

    def reserve(self, extra: int) -> None:
        need = self.n + extra
        cap = len(self.cols["day"])
        if need > cap:
            # Double up to flush_rows; past it (a day's rows before the end-of-day flush)
            # grow by an eighth: doubling there would hold twice the rows ever flushed.
            if cap < self.flush_rows:
                new_cap = max(need, min(2 * cap, self.flush_rows))
            else:
                new_cap = max(need, cap + cap // 8)
            for k, arr in self.cols.items():
                grown = np.zeros(new_cap, dtype=arr.dtype)
                grown[: self.n] = arr[: self.n]
                self.cols[k] = grown

    @property
    def next_row(self) -> int:
        """The row number the next appended row gets."""
        return self.first + self.n

    def append(self, **values) -> int:
        """Append rows from arrays (or scalars broadcast to the arrays' length); return
        the row number of the first."""
        row = self.next_row
        sizes = [np.size(v) for v in values.values() if np.ndim(v) > 0]
        m = max(sizes) if sizes else 1
        if m == 0 or (sizes and min(sizes) == 0):
            return row  # an empty batch, whatever the scalar columns say
        self.reserve(m)
        for k in COLUMNS:
            self.cols[k][self.n : self.n + m] = values.get(k, DEFAULTS.get(k, 0))
        self.n += m
        return row

    def append_chunked(self, **values) -> None:
        """Append many rows in slices of flush_rows, flushing after each, so the buffers
        never grow far past flush_rows. Only at the end of a day: flushing resets the
        row numbers that the day's phases read with `rows(since)`."""
        m = max(np.size(v) for v in values.values())
        lo = 0
        while lo < m:
            # Fill the buffer to flush_rows, flush, and so on: it never grows past them.
            hi = lo + max(self.flush_rows - self.n, 1)
            self.append(**{k: v[lo:hi] if np.ndim(v) else v for k, v in values.items()})
            self.flush()
            lo = hi

    def kind_code(self, name: str) -> int:
        return self.kind_labels.index(name)

    def cause_code(self, name: str) -> int:
        return self.cause_labels.index(name)

    def behaviour_cause(self, b: int) -> int:
        return len(SPECIAL_CAUSES) + b

    def rows(self, start: int) -> dict[str, np.ndarray]:
        """Rows appended since `start` (an earlier value of `n`) and not yet flushed."""
        return {k: v[start : self.n] for k, v in self.cols.items()}

    def flush(self, force: bool = False) -> None:
        if self.n == 0 or (not force and self.n < self.flush_rows) or self.path is None:
            if self.path is None and self.n >= self.flush_rows:
                self.first += self.n
                self.n = 0  # no output requested: keep memory bounded
            return
        table = self._table(self.n)
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, table.schema, compression="zstd")
        self._writer.write_table(table)
        self.rows_written += self.n
        self.first += self.n
        self.n = 0

    def close(self) -> None:
        if self.path is None:
            return
        if self._writer is None:
            self._writer = pq.ParquetWriter(self.path, self._table(0).schema, compression="zstd")
        self.flush(force=True)
        self._writer.close()

    def _table(self, n: int) -> pa.Table:
        c = {k: v[:n] for k, v in self.cols.items()}

        def cat(codes: np.ndarray, labels: list[str]) -> pa.DictionaryArray:
            return pa.DictionaryArray.from_arrays(
                pa.array(codes.astype(np.int16)), pa.array(labels, pa.string())
            )

        return pa.table({
            "day": c["day"], "entity": cat(c["entity"], list(ENTITIES)), "id": c["id"],
            "kind": cat(c["kind"], self.kind_labels), "cause": cat(c["cause"], self.cause_labels),
            "channel": cat(c["channel"], self.channel_labels),
            "record": cat(c["record"], list(RECORDS)), "delta": c["delta"], "value": c["value"],
            "ref": c["ref"],
        })
