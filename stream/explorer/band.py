"""The display band around a stream's expected values (causal rolling residual RMS), and NaN-free JSON lists."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["BAND_K", "BAND_WINDOW", "band", "nan_none"]

BAND_WINDOW = 32  # events in the display band's rolling residual RMS
BAND_K = 3.0  # band half-width in residual RMS units


def band(x: np.ndarray, e: np.ndarray, window: int = BAND_WINDOW, k: float = BAND_K) -> np.ndarray:
    """Display band half-width per point: ``k`` x the RMS of the previous ``window`` residuals (causal).

    Example:
        >>> band(np.array([[1.0], [2.0], [3.0]]), np.array([[0.0], [2.0], [2.0]]), window=2, k=1.0).ravel().tolist()
        [nan, 1.0, 0.7071067811865476]
    """
    r2 = np.square(x.astype(np.float64) - e)  # [n, F]
    ok = np.isfinite(r2)
    cs = np.cumsum(np.where(ok, r2, 0.0), axis=0)  # [n, F]
    cn = np.cumsum(ok, axis=0)
    z = np.zeros((1, r2.shape[1]))
    cs, cn = np.vstack([z, cs]), np.vstack([z, cn])  # [n+1, F]: prefix sums before each point
    hi = np.arange(len(r2))
    lo = np.maximum(hi - window, 0)
    s, n = cs[hi] - cs[lo], cn[hi] - cn[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, k * np.sqrt(s / np.maximum(n, 1)), np.nan)


def nan_none(a: np.ndarray) -> list[Any]:
    """float array -> nested lists with NaN as None (valid JSON)."""
    obj = a.astype(object)
    obj[~np.isfinite(a)] = None
    out: list[Any] = obj.tolist()
    return out
