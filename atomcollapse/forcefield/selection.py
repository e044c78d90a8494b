"""Which molecules of a store get conformers: seeded choice, minus excluded split test sets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from atomcollapse.data.store import Store, data_root
from atomcollapse.errors import InputError

#: Store columns that hold an InChI, tried in order (the first present is used).
INCHI_COLUMNS = ("inchi", "inchi_relaxed", "inchi_gdb")
SMILES_COLUMNS = ("smiles", "smiles_relaxed", "smiles_gdb")
EXCLUDED_PARTS = ("id_test", "ood_test")


@dataclass(frozen=True)
class ExcludedSplit:
    """A split whose test molecules were left out, as recorded in the manifest."""

    split: str
    hash: str
    n_test_molecules: int
    n_excluded_rows: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "hash": self.hash,
            "parts": list(EXCLUDED_PARTS),
            "n_test_molecules": self.n_test_molecules,
            "n_excluded_rows": self.n_excluded_rows,
        }


def text_column(store: Store, names: tuple[str, ...]) -> np.ndarray | None:
    for name in names:
        if store.has_column(name):
            return np.asarray(store.column(name)).astype(str)
    return None


def _resolve_split(ref: str, root: str | Path | None) -> Path:
    p = Path(ref)
    if p.exists():
        return p
    for base in (data_root(root) / "splits", Path("splits")):
        if (base / ref).exists():
            return base / ref
    raise InputError("split not found (give its path, or a name under splits/)", file=ref)


def _split_dataset_hash(manifest: dict[str, Any]) -> str | None:
    dataset = manifest.get("dataset")
    if isinstance(dataset, dict):
        for key in ("content_hash", "hash"):
            if dataset.get(key):
                return str(dataset[key])
    for key in ("dataset_hash", "dataset_content_hash"):
        if manifest.get(key):
            return str(manifest[key])
    return None


def _load_split(path: Path):
    try:
        from atomcollapse.splits.artifact import load_split
    except ImportError:
        raise InputError(
            "split artifacts are not supported by this installation", file=path
        ) from None
    return load_split(path)


def excluded_rows(
    store: Store, splits: tuple[str, ...], root: str | Path | None = None
) -> tuple[np.ndarray, list[ExcludedSplit]]:
    """Mask of store rows to leave out and a record per split.

    A row is left out when its id, or its InChI (when the store has one), is among the split's
    id_test or ood_test molecules, so the same molecule under another id is left out too.
    """
    ids = np.asarray(store.ids).astype(str)
    inchi = text_column(store, INCHI_COLUMNS)
    mask = np.zeros(len(ids), dtype=bool)
    records = []
    for ref in splits:
        path = _resolve_split(ref, root)
        split = _load_split(path)
        h = _split_dataset_hash(split.manifest)
        if h is None:
            raise InputError("split manifest records no dataset hash", file=path)
        if h != store.content_hash:
            raise InputError(
                f"split was made from dataset {h[:12]}, not from store {store.name!r} "
                f"({store.content_hash[:12]})",
                file=path,
            )
        rows = np.unique(
            np.concatenate([np.asarray(split.indices(p), dtype=np.int64) for p in EXCLUDED_PARTS])
        )
        if rows.size and (rows.min() < 0 or rows.max() >= len(ids)):
            raise InputError(f"split test index out of range for {len(ids)} molecules", file=path)
        hit = np.isin(ids, ids[rows])
        if inchi is not None:
            keys = inchi[rows]
            hit |= np.isin(inchi, keys[keys != ""])
        records.append(ExcludedSplit(str(ref), str(split.hash), int(rows.size), int(hit.sum())))
        mask |= hit
    return mask, records


def choose_molecules(
    n_total: int,
    excluded: np.ndarray,
    *,
    seed: int,
    n_molecules: int | None = None,
    fraction: float | None = None,
) -> np.ndarray:
    """Sorted store rows of the chosen molecules (seeded, independent of anything else)."""
    if n_molecules is not None and fraction is not None:
        raise InputError("give --n-molecules or --fraction, not both")
    pool = np.flatnonzero(~excluded)
    if fraction is not None:
        if not 0 < fraction <= 1:
            raise InputError(f"--fraction must be in (0, 1], got {fraction}")
        n_molecules = max(1, round(fraction * pool.size))
    if n_molecules is None:
        n_molecules = pool.size
    if n_molecules < 1:
        raise InputError(f"--n-molecules must be at least 1, got {n_molecules}")
    if n_molecules > pool.size:
        raise InputError(
            f"--n-molecules {n_molecules} is more than the {pool.size} molecules "
            "left after exclusions"
        )
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    return np.sort(rng.permutation(pool)[:n_molecules])
