"""Collapse measures on synthetic embeddings whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from atomcollapse.analysis.measures import (
    davies_bouldin,
    linear_cka,
    random_directions,
    sliced_wasserstein,
    standardiser,
    tsne_2d,
    tsne_backend,
    wasserstein_per_dim,
)


def clusters(spread: float, n: int = 200, k: int = 4, d: int = 16, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 10.0
    labels = np.repeat(np.arange(k), n)
    return centers[labels] + spread * rng.normal(size=(k * n, d)), labels


def test_davies_bouldin_low_for_separated_and_high_for_overlapping_clusters():
    sep, labels = clusters(spread=0.1)
    mixed, _ = clusters(spread=50.0)
    assert davies_bouldin(sep, labels) < 0.05
    assert davies_bouldin(mixed, labels) > 5.0


def test_davies_bouldin_of_two_points_per_class_matches_formula():
    # Two classes, each two points at distance 2 around centres 10 apart:
    # scatter s = 1 for both, so DB = (1 + 1) / 10 = 0.2.
    x = np.array([[-1.0, 0], [1, 0], [9, 0], [11, 0]])
    assert davies_bouldin(x, np.array([0, 0, 1, 1])) == pytest.approx(0.2)


def test_davies_bouldin_needs_two_classes():
    assert np.isnan(davies_bouldin(np.zeros((5, 2)), np.zeros(5, int)))


def test_tsne_is_seeded_and_keeps_separated_clusters_apart():
    # scikit-learn's first 250 iterations are early exaggeration; after them the clusters
    # tighten (Davies-Bouldin about 0.6 at 250 iterations, whose last digits depend on the CPU,
    # and about 0.1 from 300 on)
    x, labels = clusters(spread=0.1, n=40, k=3)
    a = tsne_2d(x, seed=3, max_iter=500, threads=1)
    b = tsne_2d(x, seed=3, max_iter=500, threads=1)
    assert a.shape == (120, 2)
    np.testing.assert_array_equal(a, b)
    assert davies_bouldin(a, labels) < 0.3
    mixed, _ = clusters(spread=50.0, n=40, k=3)
    assert davies_bouldin(tsne_2d(mixed, seed=3, max_iter=500, threads=1), labels) > 2.0


@pytest.mark.slow
def test_backends_agree_on_class_separation_and_opentsne_is_seeded():
    # Six classes, well apart and then overlapping; Davies-Bouldin on either t-SNE must rank
    # them alike and agree within 0.1 + 15% (measured at 500 iterations, sklearn / openTSNE:
    # 0.21 / 0.21 apart, 0.29 / 0.29 and 1.05 / 0.95 as the overlap grows).
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(6, 16)) * 3.0
    labels = np.repeat(np.arange(6), 100)
    noise = rng.normal(size=(600, 16))
    db: dict[str, list[float]] = {"sklearn": [], "opentsne": []}
    coords = {}
    for overlap in (0.3, 4.0):
        x = centers[labels] + overlap * noise
        for backend, out in db.items():
            coords[backend, overlap] = tsne_2d(x, seed=0, max_iter=400, threads=1, backend=backend)
            out.append(davies_bouldin(coords[backend, overlap], labels))
    for a, b in zip(db["sklearn"], db["opentsne"], strict=True):
        assert abs(a - b) <= 0.1 + 0.15 * max(a, b), db
    for apart, mixed in db.values():
        assert mixed > 2 * apart, db
    # The same seed gives the same coordinates whatever the thread count, also from 1,000
    # points on, where openTSNE's own default (approximate neighbours) gives another map for
    # two threads than for one (measured here: coordinates 6 apart).
    big = np.repeat(np.arange(6.0), 200)[:, None] + rng.normal(size=(1200, 32))
    one, two = (tsne_2d(big, seed=0, max_iter=300, threads=t, backend="opentsne") for t in (1, 2))
    np.testing.assert_array_equal(one, two)


def test_tsne_backend_switches_at_the_measured_size(monkeypatch):
    monkeypatch.setattr("atomcollapse.analysis.measures.OPENTSNE_MIN", 1000)
    assert tsne_backend(999) == "sklearn" and tsne_backend(1000) == "opentsne"
    assert tsne_backend(10, "opentsne") == "opentsne"
    assert tsne_backend(10**6, "sklearn") == "sklearn"
    with pytest.raises(ValueError, match="t-SNE backend must be one of"):
        tsne_backend(10, "umap")


def test_identical_distributions_give_zero_wasserstein_and_unit_cka():
    x, _ = clusters(spread=1.0)
    assert wasserstein_per_dim(x, x.copy()) == 0.0
    assert sliced_wasserstein(x, x.copy()) == 0.0
    assert linear_cka(x, x.copy()) == pytest.approx(1.0)


def test_permuted_rows_have_zero_wasserstein():
    x, _ = clusters(spread=1.0)
    perm = np.random.default_rng(1).permutation(len(x))
    assert wasserstein_per_dim(x, x[perm]) == pytest.approx(0.0, abs=1e-12)


def test_shifted_copy_gives_the_shift_as_w1():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 8))
    shift = np.linspace(0.5, 2.0, 8)
    assert wasserstein_per_dim(x, x + shift, standardise=False) == pytest.approx(shift.mean())
    _, std = standardiser(x)
    assert wasserstein_per_dim(x, x + shift) == pytest.approx(np.mean(shift / std))


def test_sliced_wasserstein_of_a_shift_is_mean_projected_shift():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 5))
    v = np.array([3.0, 0, 0, 0, 0])
    theta = random_directions(5, 64, seed=7)
    expected = np.mean(np.abs(theta @ v))
    got = sliced_wasserstein(x, x + v, n_projections=64, seed=7, standardise=False)
    assert got == pytest.approx(expected)
    one_d = sliced_wasserstein(x[:, :1], x[:, :1] - 2.5, standardise=False)
    assert one_d == pytest.approx(2.5)


def test_wasserstein_handles_unequal_sample_sizes_and_reports_width_mismatch():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 3))
    assert wasserstein_per_dim(x, x[:200] + 1.0, standardise=False) > 0.8
    assert np.isnan(wasserstein_per_dim(x, x[:, :2]))


def test_cka_invariant_to_orthogonal_transform_and_isotropic_scaling():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6))
    y = np.tanh(x @ rng.normal(size=(6, 4)))
    q = ortho_group.rvs(4, random_state=1)
    base = linear_cka(x, y)
    assert 0.0 < base < 1.0
    assert linear_cka(x, 3.5 * y @ q) == pytest.approx(base)
    assert linear_cka(x, x @ ortho_group.rvs(6, random_state=2) * 0.1) == pytest.approx(1.0)


def test_cka_near_zero_for_independent_embeddings():
    rng = np.random.default_rng(0)
    assert linear_cka(rng.normal(size=(4000, 4)), rng.normal(size=(4000, 4))) < 0.01
