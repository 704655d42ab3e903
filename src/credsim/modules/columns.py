"""Helpers for the columns modules add to the results tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def category(codes: np.ndarray, labels, mask: np.ndarray | None = None
             ) -> pa.DictionaryArray:
    """A dictionary-encoded column: `codes` index `labels` (null where `mask`)."""
    return pa.DictionaryArray.from_arrays(
        pa.array(np.asarray(codes).astype(np.int16), mask=mask),
        pa.array(list(labels), pa.string()))
