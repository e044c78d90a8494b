"""1-D Gaussian kernel densities whose ranking matches an exact KDE (scikit-learn's), fast.

The density at ``x`` is proportional to ``S(x) = sum_j exp(-(x - x_j)^2 / (2 h^2))``; ranking by
``S`` is ranking by density. Equal values share one exact sum (so ties are exact ties), and terms
beyond ``WINDOW`` bandwidths (``exp(-50)``, below the float resolution of the self term) are
dropped. When few value pairs lie within the window the sums are exact; otherwise they are
approximated on a grid (linear binning, FFT convolution, linear interpolation) with a proven error
bound, and every value whose rank could differ from the exact ranking is recomputed exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WINDOW = 10.0
_EXACT_PAIR_LIMIT = 30_000_000
_MAX_GRID = 1 << 22
_ROUNDOFF = 1e-10  # generous bound on FFT roundoff, relative to the total weight


def bandwidth(values: np.ndarray, rule: str | float = "scott", scaling: str = "sklearn") -> float:
    """Kernel bandwidth in the unit of ``values``.

    ``scaling="sklearn"`` (BOOM's choice): "scott" is ``n^(-1/5)`` and "silverman"
    ``(3n/4)^(-1/5)``, NOT scaled by the data's spread; a float is the bandwidth itself.
    ``scaling="scipy"`` (``scipy.stats.gaussian_kde``): the same factor times the sample standard
    deviation (ddof=1); a float is that factor.
    """
    n = len(values)
    if isinstance(rule, str):
        if rule == "scott":
            factor = n ** (-1 / 5)
        elif rule == "silverman":
            factor = (n * 3 / 4) ** (-1 / 5)
        else:
            raise ValueError(f"unknown bandwidth rule {rule!r} (scott, silverman or a number)")
    else:
        factor = float(rule)
        if not factor > 0:
            raise ValueError(f"bandwidth must be positive, got {rule}")
    if scaling == "sklearn":
        return factor
    if scaling == "scipy":
        std = float(np.std(values, ddof=1)) if n > 1 else 0.0
        if not std > 0:
            raise ValueError("all values are equal: a spread-scaled bandwidth is zero")
        return factor * std
    raise ValueError(f"unknown bandwidth scaling {scaling!r} (sklearn or scipy)")


@dataclass(frozen=True)
class LowDensity:
    """The ``n_low`` values of lowest density, and how they were found."""

    indices: np.ndarray  # positions into the input, ascending
    log_density: np.ndarray  # per input value, log normalised density (exact near the cutoff)
    cutoff_log_density: float  # exact log density of the highest-density selected value
    method: str  # "exact" or "binned+exact-recheck"
    n_rechecked: int  # distinct values whose sums were recomputed exactly
    cutoff_ties: int  # values tied with the cutoff that were left out of the selection


def lowest_density(values: np.ndarray, n_low: int, h: float) -> LowDensity:
    """The ``n_low`` values of lowest Gaussian-KDE density (bandwidth ``h``), exact ranking.

    Ties in density (equal values) are broken by position: the earlier value is selected.
    """
    x = np.asarray(values, dtype=np.float64)
    n = len(x)
    if not 0 < n_low < n:
        raise ValueError(f"n_low must be in 1..{n - 1}, got {n_low}")
    u, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    w = counts.astype(np.float64)
    if _pair_count(u, WINDOW * h) <= _EXACT_PAIR_LIMIT:
        s_u = _exact_at(u, w, h, np.arange(len(u)))
        rank_class = np.zeros(len(u), dtype=np.int8)
        method, n_rechecked = "exact", 0
    else:
        approx, eps = _binned_sums(u, w, h)
        s_u, rank_class = _recheck(u, w, h, approx, eps, n_low, counts)
        method, n_rechecked = "binned+exact-recheck", int(np.count_nonzero(rank_class == 1))
    s = s_u[inverse]
    order = np.lexsort((np.arange(n), s, rank_class[inverse]))
    chosen = order[:n_low]
    cut = s[chosen[-1]]
    ties = int(np.count_nonzero(s[order[n_low:]] == cut))
    norm = np.log(n * h * np.sqrt(2 * np.pi))
    return LowDensity(
        indices=np.sort(chosen),
        log_density=np.log(s) - norm,
        cutoff_log_density=float(np.log(cut) - norm),
        method=method,
        n_rechecked=n_rechecked,
        cutoff_ties=ties,
    )


def kde_sums(values: np.ndarray, h: float) -> np.ndarray:
    """Exact ``S(x_i)`` for every value (windowed direct sums; for tests and small inputs)."""
    x = np.asarray(values, dtype=np.float64)
    u, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    return _exact_at(u, counts.astype(np.float64), h, np.arange(len(u)))[inverse]


def _pair_count(u: np.ndarray, reach: float) -> int:
    hi = np.searchsorted(u, u + reach, side="right")
    return int(np.sum(hi - np.arange(len(u)) - 1))


def _exact_at(
    u: np.ndarray, w: np.ndarray, h: float, which: np.ndarray, budget: int = 1 << 16
) -> np.ndarray:
    """Exact sums at ``u[which]`` (``which`` ascending): direct sums over each value's window.

    Consecutive values are evaluated together as one (values x window) block of at most about
    ``budget`` elements; terms outside a value's own window are masked to zero.
    """
    reach = WINDOW * h
    inv2h2 = 1.0 / (2.0 * h * h)
    lo = np.searchsorted(u, u[which] - reach, side="left")
    hi = np.searchsorted(u, u[which] + reach, side="right")
    out = np.empty(len(which))
    start = 0
    while start < len(which):
        end = start + 1
        while end < len(which) and (hi[end] - lo[start]) * (end + 1 - start) <= budget:
            end += 1
        c0, c1 = lo[start], hi[end - 1]
        d = u[which[start:end], None] - u[None, c0:c1]
        k = np.where(np.abs(d) <= reach, np.exp(-(d * d) * inv2h2), 0.0)
        out[start:end] = np.sum(k * w[c0:c1], axis=1)
        start = end
    return out


def _binned_sums(u: np.ndarray, w: np.ndarray, h: float) -> tuple[np.ndarray, float]:
    """Grid approximation of the sums at ``u`` and a bound ``eps`` on its absolute error."""
    span = float(u[-1] - u[0])
    delta = max(h / 64.0, span / _MAX_GRID)
    m = int(np.ceil(span / delta)) + 2
    pos = (u - u[0]) / delta
    cell = np.minimum(np.floor(pos).astype(np.int64), m - 2)
    t = pos - cell
    grid = np.bincount(cell, w * (1 - t), minlength=m) + np.bincount(cell + 1, w * t, minlength=m)
    half = min(int(np.ceil(WINDOW * h / delta)) + 1, m)
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) * delta / h) ** 2)
    size = 1 << int(np.ceil(np.log2(m + 2 * half + 1)))
    full = np.fft.irfft(np.fft.rfft(grid, size) * np.fft.rfft(kernel, size), size)[half : half + m]
    approx = (1 - t) * full[cell] + t * full[cell + 1]
    total = float(w.sum())
    # Linear binning and linear interpolation each err by at most total * delta^2 / (8 h^2),
    # since |d^2/dx^2 exp(-x^2 / 2h^2)| <= 1 / h^2.
    eps = total * delta * delta / (4 * h * h) + _ROUNDOFF * total
    return approx, eps


def _recheck(
    u: np.ndarray,
    w: np.ndarray,
    h: float,
    approx: np.ndarray,
    eps: float,
    n_low: int,
    counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact sums wherever membership in the lowest ``n_low`` is uncertain.

    With ``t`` the approximate sum at the ``n_low``-th lowest point, the exact cutoff lies in
    ``[t - eps, t + eps]``: values below ``t - 2 eps`` are surely selected (class 0), values above
    ``t + 2 eps`` surely not (class 2), and the band between (class 1) is recomputed exactly.
    """
    order = np.argsort(approx, kind="stable")
    cum = np.cumsum(counts[order])
    t = approx[order[int(np.searchsorted(cum, n_low))]]
    band = np.abs(approx - t) <= 2 * eps
    out = approx.copy()
    out[band] = _exact_at(u, w, h, np.flatnonzero(band))
    rank_class = np.where(band, 1, np.where(approx < t, 0, 2)).astype(np.int8)
    return out, rank_class
