"""Error metrics, seed statistics and relative gains (plain numpy, unit-agnostic)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def mae(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Mean absolute error, in the unit of the inputs."""
    p, r = np.asarray(prediction, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    return float(np.mean(np.abs(p - r))) if p.size else math.nan


def rmse(prediction: np.ndarray, reference: np.ndarray) -> float:
    """Root-mean-square error, in the unit of the inputs."""
    p, r = np.asarray(prediction, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    return float(np.sqrt(np.mean((p - r) ** 2))) if p.size else math.nan


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1) over seeds; std is NaN for a single seed."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else math.nan


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Student-t confidence interval of the mean over seeds, ``(low, high)``.

    ``mean ± t(1 - (1 - confidence) / 2, n - 1) · std / sqrt(n)`` with the sample std (ddof=1),
    in the unit of the values; missing values are ignored; NaNs with fewer than two values.
    """
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size < 2:
        return math.nan, math.nan
    mean, sem = float(v.mean()), float(v.std(ddof=1)) / math.sqrt(v.size)
    if sem == 0:
        return mean, mean
    low, high = stats.t.interval(confidence, v.size - 1, loc=mean, scale=sem)
    return float(low), float(high)


def relative_gain(base: float, method: float) -> float:
    """Improvement of ``method`` over ``base`` in percent: ``100 * (base - method) / base``.

    Positive means the method's error is lower. NaN when either is missing or ``base`` is 0.
    """
    if base is None or method is None or not (math.isfinite(base) and math.isfinite(method)):
        return math.nan
    if base == 0:
        return math.nan
    return 100.0 * (base - method) / base


def binned_abs_error(
    reference: np.ndarray,
    prediction: np.ndarray,
    n_bins: int = 12,
    edges: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean |error| in bins of the reference value (how the error behaves in the tails).

    Bins are equal-width over the reference range unless ``edges`` is given. Returns
    ``(centers, mean_abs_error, counts, edges)``; empty bins have NaN error.
    """
    r = np.asarray(reference, dtype=np.float64)
    err = np.abs(np.asarray(prediction, dtype=np.float64) - r)
    if edges is None:
        lo, hi = (float(r.min()), float(r.max())) if r.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1.0
        edges = np.linspace(lo, hi, n_bins + 1)
    edges = np.asarray(edges, dtype=np.float64)
    nb = edges.size - 1
    idx = np.clip(np.searchsorted(edges, r, side="right") - 1, 0, nb - 1)
    counts = np.bincount(idx, minlength=nb)
    sums = np.bincount(idx, weights=err, minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_err = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    centers = 0.5 * (edges[:-1] + edges[1:])
    return centers, mean_err, counts, edges
