"""Representation-collapse measures on embedding matrices (rows = the same atoms in each model).

- Davies–Bouldin index (lower = classes better separated), on raw embeddings and on 2-D t-SNE
  coordinates as in the study; reported as a ratio to the pretrained model (> 1 = more overlap).
- 1-Wasserstein distance between the pretrained and an adapted embedding distribution: per
  dimension after standardising both with the pretrained mean and std, averaged over dimensions
  (so in units of pretrained standard deviations), plus a sliced estimate over seeded random
  unit directions in the same standardised space.
- Linear CKA (Kornblith et al. 2019) between the two embeddings of the same atoms: 1 for
  identical representations, invariant to orthogonal transforms and isotropic scaling.
"""

from __future__ import annotations

import math

import numpy as np


def davies_bouldin(x: np.ndarray, labels: np.ndarray) -> float:
    """Davies–Bouldin index of ``x`` (n, d) grouped by ``labels``; NaN with fewer than 2 classes."""
    from sklearn.metrics import davies_bouldin_score

    labels = np.asarray(labels)
    if np.unique(labels).size < 2 or len(labels) < 3:
        return math.nan
    return float(davies_bouldin_score(np.asarray(x, dtype=np.float64), labels))


TSNE_BACKENDS = ("auto", "sklearn", "opentsne")
# Points from which openTSNE's FFT-accelerated gradient beats scikit-learn's Barnes-Hut on CPU.
# ``benchmarks/bench_collapse.py --tsne-sweep 1000,2000,3000,5000,10000 --threads 1`` (2 cores,
# 1,000 iterations), openTSNE / scikit-learn seconds: 8.4x at 1,000 points, 2.2x at 2,000, 1.13x
# at 3,000, 0.73x at 5,000, 0.57x at 10,000: openTSNE's FFT grid costs the same per iteration
# whatever the point count, so it only pays off from a few thousand points.
OPENTSNE_MIN = 5_000


def tsne_backend(n: int, backend: str = "auto") -> str:
    """The t-SNE implementation ``tsne_2d`` uses for ``n`` points: ``"sklearn"`` (Barnes-Hut)
    or ``"opentsne"`` (FFT-accelerated interpolation); ``"auto"`` picks by ``OPENTSNE_MIN``."""
    if backend not in TSNE_BACKENDS:
        raise ValueError(
            f"t-SNE backend must be one of {', '.join(TSNE_BACKENDS)}, not {backend!r}"
        )
    if backend != "auto":
        return backend
    return "opentsne" if n >= OPENTSNE_MIN else "sklearn"


def tsne_description(backend: str) -> str:
    """One line naming a resolved backend and its method, for notes and reports."""
    if backend == "opentsne":
        from importlib.metadata import version

        return f"openTSNE {version('opentsne')}, FFT-accelerated interpolation"
    import sklearn

    return f"scikit-learn {sklearn.__version__}, Barnes-Hut"


def tsne_2d(
    x: np.ndarray,
    *,
    seed: int = 0,
    perplexity: float = 30.0,
    max_iter: int = 1000,
    threads: int | None = None,
    backend: str = "auto",
) -> np.ndarray:
    """Seeded 2-D t-SNE (PCA initialisation) of ``x`` (n, d) -> (n, 2).

    Both backends run the same schedule: 250 iterations of early exaggeration (12), then
    ``max_iter - 250`` plain ones, so ``max_iter`` 250 gives the exaggerated layout with loose
    clusters; clusters settle within a few hundred more. Learning rates are each library's
    "auto" (scikit-learn: max(N / 48, 50) throughout; openTSNE: N / 12 while exaggerated, then
    N), so the layouts differ, but the class separation (Davies-Bouldin on the result) agrees.
    The same seed gives the same coordinates: with openTSNE for any ``threads`` (its
    neighbours are searched exactly: its default approximate search, used from 1,000 points
    on, can give another map for another thread count), with scikit-learn for the same
    ``threads`` (its Barnes-Hut sums depend on the thread count).

    ``threads`` caps the OpenMP/BLAS threads and openTSNE's workers (None: the libraries'
    default for scikit-learn, every usable core for openTSNE); on a loaded machine one thread
    is often much faster than oversubscribed busy-waiting ones.
    """
    from threadpoolctl import threadpool_limits

    x = np.asarray(x, dtype=np.float32)
    n = x.shape[0]
    which = tsne_backend(n, backend)
    if n < 4:
        return np.zeros((n, 2))
    perplexity = min(perplexity, max(1.0, (n - 1) / 3.0))
    max_iter = max(250, max_iter)
    with threadpool_limits(threads):
        if which == "opentsne":
            return _opentsne(x, seed, perplexity, max_iter, threads)
        from sklearn.manifold import TSNE

        tsne = TSNE(
            n_components=2, perplexity=perplexity, init="pca", random_state=seed,
            method="barnes_hut", max_iter=max_iter, learning_rate="auto",
        )  # fmt: skip
        return tsne.fit_transform(x).astype(np.float64)


def _opentsne(
    x: np.ndarray, seed: int, perplexity: float, max_iter: int, threads: int | None
) -> np.ndarray:
    from openTSNE import TSNE

    from atomcollapse.parallel import usable_cpus

    tsne = TSNE(
        n_components=2, perplexity=perplexity, initialization="pca", random_state=seed,
        early_exaggeration_iter=250, early_exaggeration=12, n_iter=max_iter - 250,
        negative_gradient_method="fft", neighbors="exact", n_jobs=threads or usable_cpus(),
        verbose=False,
    )  # fmt: skip
    return np.asarray(tsne.fit(x.astype(np.float64)), dtype=np.float64)


def standardiser(reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension mean and std of the reference embeddings (constant dimensions get std 1)."""
    ref = np.asarray(reference, dtype=np.float64)
    mean = ref.mean(axis=0)
    std = ref.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return mean, std


def _w1_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1-D Wasserstein-1 distance between matching columns of ``a`` (n, k) and ``b`` (m, k)."""
    if a.shape[0] == b.shape[0]:
        return np.mean(np.abs(np.sort(a, axis=0) - np.sort(b, axis=0)), axis=0)
    from scipy.stats import wasserstein_distance

    return np.array([wasserstein_distance(a[:, k], b[:, k]) for k in range(a.shape[1])])


def wasserstein_per_dim(
    reference: np.ndarray, other: np.ndarray, *, standardise: bool = True
) -> float:
    """Mean over dimensions of W1 between ``reference`` and ``other`` (same width).

    With ``standardise`` both are shifted and scaled by the reference's per-dimension mean and
    std, so the result is in reference standard deviations. NaN when the widths differ.
    """
    pair = _comparable(reference, other, standardise)
    if pair is None:
        return math.nan
    ref, oth = pair
    return float(np.mean(_w1_columns(ref, oth)))


def _comparable(
    reference: np.ndarray, other: np.ndarray, standardise: bool
) -> tuple[np.ndarray, np.ndarray] | None:
    """Both as float64 (N, D) arrays, standardised by the reference's per-dimension mean and
    std when asked; None when they are not two non-empty matrices of the same width."""
    ref, oth = np.asarray(reference, np.float64), np.asarray(other, np.float64)
    if ref.ndim != 2 or oth.ndim != 2 or ref.shape[1] != oth.shape[1] or not len(ref):
        return None
    if standardise:
        mean, std = standardiser(ref)
        ref, oth = (ref - mean) / std, (oth - mean) / std
    return ref, oth


def random_directions(dim: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` seeded unit vectors in ``dim`` dimensions, (n, dim), uniform on the sphere."""
    v = np.random.default_rng(seed).normal(size=(n, dim))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def sliced_wasserstein(
    reference: np.ndarray,
    other: np.ndarray,
    *,
    n_projections: int = 128,
    seed: int = 0,
    standardise: bool = True,
) -> float:
    """Sliced W1: mean over seeded random unit directions of the 1-D W1 of the projections."""
    pair = _comparable(reference, other, standardise)
    if pair is None:
        return math.nan
    ref, oth = pair
    theta = random_directions(ref.shape[1], n_projections, seed)
    return float(np.mean(_w1_columns(ref @ theta.T, oth @ theta.T)))


def linear_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Linear CKA between ``x`` (n, d1) and ``y`` (n, d2) whose rows are the same samples."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] < 2:
        return math.nan
    x = x - x.mean(axis=0)
    y = y - y.mean(axis=0)
    cross = np.linalg.norm(y.T @ x) ** 2
    norm = np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(cross / norm) if norm > 0 else math.nan
