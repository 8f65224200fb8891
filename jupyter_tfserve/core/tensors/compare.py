"""How far apart two tensors are: the one comparison behind export parity and replay checks."""

from __future__ import annotations

import numpy as np


def max_abs_diff(a, b) -> float:
    """Largest absolute difference; infinite when shapes differ or non-numeric values differ."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    if a.dtype.kind in "biufc" and b.dtype.kind in "biufc":
        both_nan = (
            np.isnan(a.astype(np.float64)) & np.isnan(b.astype(np.float64))
            if a.dtype.kind in "fc"
            else False
        )
        diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
        diff = np.where(both_nan, 0.0, diff)
        return float(np.max(diff))
    return 0.0 if np.array_equal(a, b) else float("inf")
