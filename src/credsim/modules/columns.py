"""Helpers for the columns modules add to the results tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def category(codes: np.ndarray, labels) -> pa.DictionaryArray:
    """A dictionary-encoded column: `codes` index `labels`."""
    return pa.DictionaryArray.from_arrays(
        pa.array(np.asarray(codes).astype(np.int16)), pa.array(list(labels), pa.string())
    )
