"""The fast KDE ranks like scikit-learn's exact KernelDensity and picks the right tails."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import gaussian_kde
from sklearn.neighbors import KernelDensity

from atomcollapse.splits import kde


def _sklearn(x: np.ndarray) -> tuple[np.ndarray, float]:
    fit = KernelDensity(kernel="gaussian", bandwidth="scott").fit(x[:, None])
    return fit.score_samples(x[:, None]), float(fit.bandwidth_)


def _bimodal(n: int, scale: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(0, 1, n * 5 // 8), rng.normal(4, 0.5, n * 3 // 8)]) * scale


def test_bandwidth_rules_match_sklearn_and_scipy() -> None:
    x = _bimodal(2000, 0.05)
    assert kde.bandwidth(x) == pytest.approx(2000 ** (-1 / 5))
    assert kde.bandwidth(x) == pytest.approx(_sklearn(x)[1])
    silverman = KernelDensity(bandwidth="silverman").fit(x[:, None]).bandwidth_
    assert kde.bandwidth(x, "silverman") == pytest.approx(silverman)
    scipy_h = float(np.sqrt(gaussian_kde(x, bw_method="scott").covariance[0, 0]))
    assert kde.bandwidth(x, "scott", "scipy") == pytest.approx(scipy_h)
    assert kde.bandwidth(x, 0.3) == 0.3
    assert kde.bandwidth(x, 0.3, "scipy") == pytest.approx(0.3 * np.std(x, ddof=1))


@pytest.mark.parametrize("scale", [0.05, 1.0, 300.0])
@pytest.mark.parametrize("force_binned", [False, True])
def test_ranking_equals_exact_sklearn_kde(scale: float, force_binned: bool, monkeypatch) -> None:
    x = _bimodal(3000, scale, seed=int(scale * 10))
    ref_log, h = _sklearn(x)
    if force_binned:
        monkeypatch.setattr(kde, "_EXACT_PAIR_LIMIT", 0)
    low = kde.lowest_density(x, 250, h)
    assert low.method == ("binned+exact-recheck" if force_binned else "exact")
    assert set(low.indices) == set(np.argsort(ref_log)[:250])
    near = np.isin(np.arange(len(x)), low.indices)
    assert np.allclose(low.log_density[near], ref_log[near], atol=1e-3 if force_binned else 1e-9)


def test_ranking_with_rounded_values_matches_up_to_ties(monkeypatch) -> None:
    x = np.round(_bimodal(3000, 0.05, seed=3), 3)
    ref_log, h = _sklearn(x)
    for limit in (kde._EXACT_PAIR_LIMIT, 0):
        monkeypatch.setattr(kde, "_EXACT_PAIR_LIMIT", limit)
        low = kde.lowest_density(x, 300, h)
        ref = set(np.argsort(ref_log, kind="stable")[:300])
        differ = ref ^ set(low.indices)
        cut = x[low.indices][np.argmax(low.log_density[low.indices])]
        # Only structures tied (same value) with the cutoff may be chosen differently.
        assert all(np.isclose(np.exp(ref_log[i]), np.exp(ref_log[x == cut][0])) for i in differ)


def test_sums_are_the_gaussian_sums() -> None:
    x = np.array([0.0, 0.1, 0.1, 0.5, 3.0])
    h = 0.2
    brute = np.exp(-((x[:, None] - x[None, :]) ** 2) / (2 * h * h)).sum(axis=1)
    assert np.allclose(kde.kde_sums(x, h), brute, rtol=1e-14)


def test_ties_go_to_the_earlier_structure() -> None:
    x = np.array([0.0] * 50 + [100.0, 100.0, 100.0])
    low = kde.lowest_density(x, 2, 1.0)
    assert low.indices.tolist() == [50, 51]
    assert low.cutoff_ties == 1


def test_far_outliers_are_the_lowest_density() -> None:
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, 500), [-40.0, -35.0, 30.0, 45.0]])
    low = kde.lowest_density(x, 4, kde.bandwidth(x, "scott", "scipy"))
    assert low.indices.tolist() == [500, 501, 502, 503]


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        kde.lowest_density(np.arange(5.0), 5, 1.0)
    with pytest.raises(ValueError):
        kde.bandwidth(np.arange(5.0), "nope")
    with pytest.raises(ValueError):
        kde.bandwidth(np.ones(5), "scott", "scipy")
