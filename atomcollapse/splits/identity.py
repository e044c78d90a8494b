"""Which structures are the same molecule or the same crystal (duplicates).

Molecules: the same standard InChI and the same RDKit canonical SMILES. Standard InChI alone is
not enough (its mobile-H layer merges tautomers: 3,891 QM9 molecules share an InChI with a
different molecule of different energy), and InChI makes canonicalising only the molecules that
share one necessary, which keeps this fast. QM9 has 87 such pairs: one molecule enumerated twice
by GDB under different Kekulé SMILES, with identical energies. Without an ``inchi`` column the
canonical SMILES alone decide; without either, the structure hash below.

Crystals (and anything else): a hash of the reduced cell description, atoms sorted by
(Z, fractional coordinates rounded to 1e-3, wrapped into [0, 1)) plus lattice lengths (1e-3 A)
and angles (1e-2 deg). It finds exact duplicates (the same cell and origin), not the same crystal
in another setting.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

_MEMO: dict[str, Identity] = {}


@dataclass(frozen=True)
class Identity:
    """Per structure, the index of the first structure identical to it (its representative)."""

    rep: np.ndarray  # (n,) int64; rep[i] == i for representatives
    basis: str  # what "same" means

    @property
    def n_groups(self) -> int:
        return int(np.count_nonzero(self.rep == np.arange(len(self.rep))))

    @property
    def n_duplicates(self) -> int:
        return len(self.rep) - self.n_groups


def identity(store: Any) -> Identity:
    """Duplicate groups of a store (memoised per content hash for this process)."""
    key = f"{store.kind}:{store.content_hash}"
    if key not in _MEMO:
        keys, basis = _keys(store)
        _MEMO[key] = Identity(rep=first_of_each(keys), basis=basis)
    return _MEMO[key]


def first_of_each(keys: np.ndarray) -> np.ndarray:
    """Per entry, the index of the first entry with an equal key (int64; hashing, no sort)."""
    codes, _ = pd.factorize(keys)
    _, first = np.unique(codes, return_index=True)
    return first[codes].astype(np.int64)


def _keys(store: Any) -> tuple[np.ndarray, str]:
    if store.kind == "molecules" and store.has_column("smiles"):
        smiles = np.asarray(store.column("smiles"))
        if store.has_column("inchi"):
            inchi = np.asarray(store.column("inchi"))
            shared = np.flatnonzero(pd.Series(inchi).duplicated(keep=False).to_numpy())
            keys = inchi.astype(object)
            keys[shared] = inchi[shared] + " " + canonical_smiles(smiles[shared])
            return keys.astype(str), "same standard InChI and RDKit canonical SMILES"
        return canonical_smiles(smiles), "same RDKit canonical SMILES"
    if store.kind == "molecules" and store.has_column("inchi"):
        return np.asarray(store.column("inchi")), "same standard InChI"
    return structure_hashes(store), "same structure hash (atoms and cell, rounded)"


def canonical_smiles(smiles: np.ndarray) -> np.ndarray:
    """RDKit canonical SMILES per entry (cached per distinct string); '?' + input if unparsable."""
    from rdkit import Chem, RDLogger

    RDLogger.DisableLog("rdApp.*")  # type: ignore[attr-defined]
    inv, uniq = pd.factorize(np.asarray(smiles, dtype=str))
    out = []
    for s in uniq:
        mol = Chem.MolFromSmiles(str(s))
        out.append(Chem.MolToSmiles(mol) if mol is not None else f"?{s}")
    return np.asarray(out, dtype=str)[inv] if out else np.asarray([], dtype=str)


def structure_hashes(store: Any) -> np.ndarray:
    """Hash of each structure's atoms and cell (see the module docstring)."""
    numbers = np.asarray(store.numbers)
    positions = np.asarray(store.positions)
    offsets = np.asarray(store.offsets)
    cells = np.asarray(store.cell)
    pbcs = np.asarray(store.pbc)
    out = []
    for i in range(len(offsets) - 1):
        a, b = offsets[i], offsets[i + 1]
        out.append(_hash_one(numbers[a:b], positions[a:b], cells[i], pbcs[i]))
    return np.asarray(out, dtype=str)


def _hash_one(z: np.ndarray, pos: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    if pbc.any() and abs(np.linalg.det(cell)) > 1e-9:
        frac = np.round(pos @ np.linalg.inv(cell), 3) % 1.0
        coords = np.round(frac, 3) % 1.0
        lengths = np.linalg.norm(cell, axis=1)
        angles = [
            np.degrees(np.arccos(np.clip(cell[j] @ cell[k] / (lengths[j] * lengths[k]), -1, 1)))
            for j, k in ((1, 2), (0, 2), (0, 1))
        ]
        h.update((np.round(lengths, 3) + 0.0).tobytes())
        h.update((np.round(angles, 2) + 0.0).tobytes())
    else:
        coords = np.round(pos - pos.mean(axis=0), 3) + 0.0
    rows = np.column_stack([z.astype(np.float64), coords])
    rows = rows[np.lexsort(rows.T[::-1])]
    h.update(rows.tobytes())
    return h.hexdigest()
