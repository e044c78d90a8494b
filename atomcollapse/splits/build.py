"""Make a split of a dataset store: the method's OOD choice, the shared draw, the manifest."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from atomcollapse.artifacts import header
from atomcollapse.errors import InputError
from atomcollapse.splits import composition, property_tail, scaffold, simple
from atomcollapse.splits.artifact import (
    PARTITIONS,
    SCHEMA_VERSION,
    Split,
    partition_counts,
    split_hash,
    target_stats,
)
from atomcollapse.splits.base import Selection
from atomcollapse.splits.config import SplitConfig
from atomcollapse.splits.draw import draw_id_val, follow_representatives
from atomcollapse.splits.identity import identity

_SELECT: dict[str, Callable[[Any, SplitConfig, np.ndarray], Selection]] = {
    "property-tail": property_tail.select,
    "scaffold": scaffold.select,
    "composition": composition.select,
    "size": simple.select_size,
    "random": simple.select_random,
    "matbench-fold": simple.select_matbench_fold,
}


def make_split(store: Any, cfg: SplitConfig) -> Split:
    """Split ``store`` as ``cfg`` asks; the result is in memory (``Split.save`` writes it)."""
    cfg.validate()
    if cfg.target is not None:
        store.target(cfg.target)  # InputError naming the targets it has
    elif cfg.method == "property-tail":
        if len(store.target_names) != 1:
            raise InputError(
                f"property-tail needs --target (one of: {', '.join(store.target_names) or 'none'})",
                file=store.name,
            )
        cfg = _replace(cfg, target=store.target_names[0])
    if cfg.dedupe == "none":
        rep, basis = np.arange(len(store)), "none (every structure on its own)"
    else:
        ident = identity(store)
        rep, basis = ident.rep, ident.basis
    reps = np.flatnonzero(rep == np.arange(len(store)))
    sel = _SELECT[cfg.method](store, cfg, reps)
    id_frac = cfg.id_frac if sel.draw_id else 0.0
    codes = draw_id_val(sel.codes, rep, id_frac=id_frac, val_frac=cfg.val_frac, seed=cfg.seed)
    codes = follow_representatives(codes, rep, drop=cfg.dedupe == "drop")
    counts = partition_counts(codes)
    if counts["train"] == 0:
        raise InputError("the split leaves no training structures", file=store.name)
    targets = [cfg.target] if cfg.target else store.target_names
    dataset = {"name": store.name, "kind": store.kind, "content_hash": store.content_hash,
               "n_structures": len(store)}  # fmt: skip
    inputs = {"dataset": dict(dataset)}  # by name and hash: committed splits name no folder
    manifest: dict[str, Any] = {
        **header("split", schema_version=SCHEMA_VERSION, inputs=inputs),
        "method": cfg.method,
        "target": cfg.target,
        "parameters": cfg.parameters(),
        "seeds": _seeds(cfg),
        "dataset": dataset,
        "encoding": "partition.npz['partition']: uint8 per structure; "
        + ", ".join(f"{i} {p}" for i, p in enumerate(PARTITIONS))
        + ", 255 in no partition",
        "duplicates": {
            "mode": cfg.dedupe,
            "identity": basis,
            "n_groups_with_duplicates": len(np.unique(rep[rep != np.arange(len(rep))])),
            "n_duplicates": int(np.count_nonzero(rep != np.arange(len(rep)))),
        },
        "counts": counts,
        "details": sel.details,
        "groups": group_counts(sel.groups, sel.group_kind, codes),
        "target_stats": target_stats(store, codes, targets),
    }
    manifest["split_hash"] = split_hash(codes)
    return Split(codes=codes, manifest=manifest, labels=sel.labels)


def build_split(
    dataset: str | Path,
    cfg: SplitConfig,
    out: str | Path,
    *,
    data_root: str | Path | None = None,
    overwrite: bool = False,
) -> Split:
    """``split DATASET --out OUT``: check the settings and ``out`` before reading anything, make
    the split of the (verified) store and write it atomically."""
    from atomcollapse.artifacts import check_replaceable
    from atomcollapse.data.store import open_store

    cfg.validate()
    check_replaceable(out, "split", overwrite=overwrite)
    store = open_store(dataset, data_root)
    store.verify_content()
    split = make_split(store, cfg)
    split.save(out, overwrite=overwrite)
    return split


def group_counts(groups: np.ndarray | None, kind: str | None, codes: np.ndarray) -> dict | None:
    """Distinct groups per partition (and, for scaffolds, the share of acyclic molecules)."""
    if groups is None:
        return None
    out: dict[str, Any] = {"kind": kind, "n_total": len(np.unique(groups[codes != 255]))}
    for code, name in enumerate(PARTITIONS):
        g = groups[codes == code]
        entry: dict[str, Any] = {"n_groups": len(np.unique(g))}
        if kind in ("scaffold", "generic scaffold"):
            entry["acyclic_share"] = float(np.mean(g == "")) if g.size else 0.0
        out[name] = entry
    pool = np.isin(codes, (0, 1, 2))
    out["shared_by_pool_and_ood_test"] = len(np.intersect1d(groups[pool], groups[codes == 3]))
    return out


def _seeds(cfg: SplitConfig) -> dict[str, int]:
    seeds = {"draw": cfg.seed}
    if cfg.method == "scaffold" and cfg.ordering == "balanced":
        seeds["group_shuffle"] = cfg.seed
    if cfg.method == "composition" and cfg.by == "cluster":
        seeds["kmeans_random_state"] = cfg.seed
    return seeds


def _replace(cfg: SplitConfig, **changes: Any) -> SplitConfig:
    from dataclasses import replace

    return replace(cfg, **changes)
