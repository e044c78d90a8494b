"""Size, random and MatBench-fold splits."""

from __future__ import annotations

from typing import Any

import numpy as np

from atomcollapse.errors import InputError
from atomcollapse.splits.artifact import ID_TEST, TRAIN
from atomcollapse.splits.base import Selection, codes_with_ood
from atomcollapse.splits.config import SplitConfig
from atomcollapse.splits.draw import PROCEDURE


def structure_sizes(store: Any) -> tuple[np.ndarray, np.ndarray]:
    """(heavy atoms, all atoms) per structure."""
    offsets = np.asarray(store.offsets)
    heavy = np.add.reduceat((np.asarray(store.numbers) > 1).astype(np.int64), offsets[:-1])
    return heavy, np.diff(offsets)


def select_size(store: Any, cfg: SplitConfig, reps: np.ndarray) -> Selection:
    """The largest structures are ood_test: heavy atoms for molecules (then all atoms), atoms
    for crystals; remaining ties by data order."""
    heavy, atoms = structure_sizes(store)
    molecules = store.kind == "molecules"
    key = heavy if molecules else atoms
    n_ood = cfg.resolve_n_ood(len(reps), store.name)
    order = np.lexsort((reps, -atoms[reps], -key[reps]))
    ood = reps[order[:n_ood]]
    rest = reps[order[n_ood:]]
    cut = int(key[ood].min())
    details = {
        "procedure": (
            f"largest {n_ood} by {'heavy atoms, then all atoms' if molecules else 'atoms'} "
            "(ties: data order) -> ood_test; then " + PROCEDURE
        ),
        "size_key": "heavy atoms" if molecules else "atoms",
        "ood_min_size": cut,
        "pool_max_size": int(key[rest].max()),
        "cutoff_size_in_pool": int(np.count_nonzero(key[rest] == cut)),
        "cutoff_size_in_ood": int(np.count_nonzero(key[ood] == cut)),
    }
    return Selection(codes=codes_with_ood(len(store), ood), details=details)


def select_random(store: Any, cfg: SplitConfig, reps: np.ndarray) -> Selection:
    """ID only: ood_test is empty."""
    details = {"procedure": "ID only, ood_test is EMPTY; " + PROCEDURE, "ood_test": "empty"}
    return Selection(codes=np.full(len(store), TRAIN, dtype=np.uint8), details=details)


def select_matbench_fold(store: Any, cfg: SplitConfig, reps: np.ndarray) -> Selection:
    """MatBench's official fold ``cfg.fold`` is id_test (its folds are random: ood_test empty)."""
    folds = structure_folds(store)
    n_folds = int(folds.max()) + 1
    if cfg.fold is None or not 0 <= cfg.fold < n_folds:
        raise InputError(f"give --fold in 0..{n_folds - 1} for matbench-fold", file=store.name)
    codes = np.full(len(store), TRAIN, dtype=np.uint8)
    codes[folds == cfg.fold] = ID_TEST
    details = {
        "procedure": (
            f"official MatBench fold {cfg.fold} of {n_folds} -> id_test (random folds: ood_test "
            "is EMPTY); val drawn from the other folds: " + PROCEDURE
        ),
        "n_folds": n_folds,
        "ood_test": "empty",
    }
    return Selection(codes=codes, details=details, draw_id=False)


def structure_folds(store: Any) -> np.ndarray:
    """Test-fold number per structure: the ``fold`` column, a ``fold`` per-structure array, or
    ``{"fold_<k>": [ids] | {"test": [ids]}}`` found in the manifest's ``extra``."""
    if store.has_column("fold"):
        text = np.asarray(store.column("fold"))
        try:
            folds = text.astype(np.int64)
        except ValueError:
            raise InputError("'fold' column is not integer", file=store.name) from None
    elif "fold" in store.manifest.get("structure_arrays", {}):
        folds = np.asarray(store.structure_array("fold")).astype(np.int64)
    else:
        found = _fold_ids(store.manifest.get("extra", {}), depth=3)
        if found is None:
            raise InputError("dataset has no MatBench folds (no 'fold' column)", file=store.name)
        position = {str(i): k for k, i in enumerate(np.asarray(store.ids))}
        folds = np.full(len(store), -1, dtype=np.int64)
        for k, ids in found.items():
            for i in ids:
                if str(i) in position:
                    folds[position[str(i)]] = k
    if folds.shape != (len(store),) or (folds < 0).any():
        raise InputError("some structures are in no MatBench fold", file=store.name)
    return folds


def _fold_ids(obj: Any, depth: int) -> dict[int, list[str]] | None:
    if not isinstance(obj, dict) or depth < 0:
        return None
    keys = [k for k in obj if isinstance(k, str) and k.startswith("fold_") and k[5:].isdigit()]
    if keys:
        out = {}
        for k in keys:
            v = obj[k]
            ids = v.get("test") if isinstance(v, dict) else v
            if not isinstance(ids, list):
                return None
            out[int(k[5:])] = ids
        return out
    for v in obj.values():
        if (found := _fold_ids(v, depth - 1)) is not None:
            return found
    return None
