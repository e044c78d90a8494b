"""Composition splits for materials (MatFold-like hold-outs and leave-one-cluster-out).

Composition comes from each structure's atomic numbers (not from any formula column).

- ``element``: ood_test is every structure containing a held-out element.
- ``chemsys``: ood_test is every structure whose chemical system (e.g. ``Fe-O``) is held out.
- ``formula``: the same for the reduced formula (pymatgen's, e.g. ``SiO2``).
- ``cluster``: k-means (``n_clusters``, ``n_init``, ``random_state=seed``) on element fractions
  over Z = 1..94; clusters are renumbered by size (largest 0); the held-out clusters' members are
  ood_test. Cluster labels are stored in the artifact.

Held-out labels are given (``labels``) or come from ``n_folds`` / ``fold``: labels sorted by
structure count (descending, then name) are dealt greedily to the fold with fewest structures so
far; fold ``fold`` is held out. For ``cluster``, ``fold`` k holds out cluster k.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from atomcollapse.constants import SYMBOLS, atomic_number
from atomcollapse.errors import InputError
from atomcollapse.splits.base import Selection, codes_with_ood
from atomcollapse.splits.config import SplitConfig
from atomcollapse.splits.draw import PROCEDURE

N_FEATURE_ELEMENTS = 94


def composition_counts(store: Any) -> tuple[np.ndarray, np.ndarray]:
    """Atoms of each element per structure: (n, k) counts over the k elements present, and Z."""
    numbers = np.asarray(store.numbers, dtype=np.int64)
    offsets = np.asarray(store.offsets)
    n = len(offsets) - 1
    sid = np.repeat(np.arange(n), np.diff(offsets))
    zs, col = np.unique(numbers, return_inverse=True)
    counts = np.bincount(sid * len(zs) + col, minlength=n * len(zs)).reshape(n, len(zs))
    return counts.astype(np.int32), zs


def reduced_formulas(counts: np.ndarray, zs: np.ndarray) -> np.ndarray:
    """pymatgen reduced formula per structure (computed once per distinct composition)."""
    from pymatgen.core import Composition

    rows, inv = np.unique(counts, axis=0, return_inverse=True)
    out = [
        Composition({SYMBOLS[z]: int(c) for z, c in zip(zs, r, strict=True) if c}).reduced_formula
        for r in rows
    ]
    return np.asarray(out, dtype=str)[inv.ravel()]


def chemical_systems(counts: np.ndarray, zs: np.ndarray) -> np.ndarray:
    """Alphabetical element list joined by '-' per structure (pymatgen's ``chemical_system``)."""
    present, inv = np.unique(counts > 0, axis=0, return_inverse=True)
    out = ["-".join(sorted(SYMBOLS[z] for z, p in zip(zs, r, strict=True) if p)) for r in present]
    return np.asarray(out, dtype=str)[inv.ravel()]


def element_fractions(counts: np.ndarray, zs: np.ndarray) -> np.ndarray:
    """(n, 94) fraction of atoms of each element Z = 1..94 (heavier elements are dropped)."""
    feats = np.zeros((len(counts), N_FEATURE_ELEMENTS))
    keep = zs <= N_FEATURE_ELEMENTS
    feats[:, zs[keep] - 1] = counts[:, keep]
    total = counts.sum(axis=1, keepdims=True)
    return feats / np.maximum(total, 1)


def kmeans_clusters(features: np.ndarray, fit_rows: np.ndarray, k: int, n_init: int, seed: int):
    """k-means fitted on ``fit_rows``, applied to all; renumbered by size (largest is 0)."""
    from sklearn.cluster import KMeans

    if len(fit_rows) < k:
        raise InputError(f"n-clusters ({k}) exceeds the number of structures ({len(fit_rows)})")
    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit(features[fit_rows])
    raw = km.predict(features)
    sizes = np.bincount(raw[fit_rows], minlength=k)
    first = np.array([np.flatnonzero(raw[fit_rows] == c)[0] if sizes[c] else len(raw)
                      for c in range(k)])  # fmt: skip
    rank = np.empty(k, dtype=np.int64)
    rank[np.lexsort((first, -sizes))] = np.arange(k)
    return rank[raw].astype(np.int16)


def fold_labels(labels: np.ndarray, sizes: np.ndarray, n_folds: int) -> np.ndarray:
    """Fold of each label: by size (desc, then name) each goes to the emptiest fold so far."""
    folds = np.zeros(len(labels), dtype=np.int64)
    load = np.zeros(n_folds, dtype=np.int64)
    for i in np.lexsort((labels, -sizes)):
        f = int(np.argmin(load))
        folds[i] = f
        load[f] += sizes[i]
    return folds


def select(store: Any, cfg: SplitConfig, reps: np.ndarray) -> Selection:
    if store.kind == "molecules":
        raise InputError("composition splits are for materials; this dataset holds molecules",
                         file=store.name)  # fmt: skip
    counts, zs = composition_counts(store)
    labels_out: dict[str, np.ndarray] = {}
    if cfg.by == "element":
        present = np.array([SYMBOLS[z] for z in zs])
        per_label = (counts[reps] > 0).sum(axis=0)
        held = _held(cfg, present, per_label, _element_label, store.name)
        ood_mask = np.asarray((counts[:, np.isin(present, held)] > 0).any(axis=1))
        groups, kind = None, None
    else:
        if cfg.by == "formula":
            groups = reduced_formulas(counts, zs)
            normalise = _formula_label
        elif cfg.by == "chemsys":
            groups = chemical_systems(counts, zs)
            normalise = _chemsys_label
        else:
            feats = element_fractions(counts, zs)
            clusters = kmeans_clusters(feats, reps, cfg.n_clusters, cfg.n_init, cfg.seed)
            labels_out["cluster"] = clusters
            groups = clusters.astype(str)
            normalise = _cluster_label
        uniq, n_per = np.unique(groups[reps], return_counts=True)
        held = _held(cfg, uniq, n_per, normalise, store.name)
        ood_mask = np.isin(groups, held)
        kind = cfg.by
    ood = reps[ood_mask[reps]]
    if not ood.size or ood.size == len(reps):
        raise InputError(
            f"holding out {', '.join(held)} leaves no "
            f"{'ood_test' if not ood.size else 'training'} structures",
            file=store.name,
        )
    details = {
        "procedure": (
            f"composition from atomic numbers; hold out by {cfg.by}: {', '.join(held)}; "
            "then " + PROCEDURE
        ),
        "held_out": list(held),
        "by": cfg.by,
    }
    if cfg.by == "cluster":
        details["featurisation"] = f"element fractions over Z=1..{N_FEATURE_ELEMENTS}"
        details["cluster_sizes"] = np.bincount(labels_out["cluster"][reps]).tolist()
    return Selection(
        codes=codes_with_ood(len(store), ood), details=details, groups=groups, group_kind=kind,
        labels=labels_out,
    )  # fmt: skip


def _held(
    cfg: SplitConfig, uniq: np.ndarray, sizes: np.ndarray, normalise, dataset: str
) -> list[str]:
    if cfg.labels:
        held = [normalise(lab) for lab in cfg.labels]
        missing = [h for h in held if h not in set(uniq.tolist())]
        if missing:
            raise InputError(f"no structure has {cfg.by} {', '.join(missing)}", file=dataset)
        return held
    if cfg.fold is None:
        raise InputError(f"composition split by {cfg.by}: give --label or --fold", file=dataset)
    if cfg.by == "cluster":
        if cfg.fold >= cfg.n_clusters:
            raise InputError(f"fold {cfg.fold} is not a cluster (0..{cfg.n_clusters - 1})")
        return [str(cfg.fold)]
    n_folds = cfg.n_folds or 5
    if cfg.fold >= n_folds:
        raise InputError(f"fold {cfg.fold} is not in 0..{n_folds - 1}")
    if len(uniq) < n_folds:
        raise InputError(f"only {len(uniq)} {cfg.by} labels for {n_folds} folds", file=dataset)
    folds = fold_labels(uniq, sizes, n_folds)
    return sorted(uniq[folds == cfg.fold].tolist())


def _element_label(label: str) -> str:
    try:
        atomic_number(label.strip())
    except KeyError:
        raise InputError(f"unknown element {label!r}") from None
    return label.strip()


def _formula_label(label: str) -> str:
    from pymatgen.core import Composition

    try:
        return Composition(label.strip()).reduced_formula
    except Exception:
        raise InputError(f"cannot read formula {label!r}") from None


def _chemsys_label(label: str) -> str:
    return "-".join(sorted(_element_label(e) for e in label.split("-")))


def _cluster_label(label: str) -> str:
    if not label.strip().isdigit():
        raise InputError(f"cluster label must be a cluster number, got {label!r}")
    return str(int(label))
