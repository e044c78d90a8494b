"""What counts as the same molecule or crystal."""

from __future__ import annotations

import numpy as np

from atomcollapse.data.schema import pack
from atomcollapse.data.store import Store, write_store
from atomcollapse.splits.identity import identity
from tests.splits.conftest import molecule_store


def test_molecules_same_inchi_and_canonical_smiles(data_root) -> None:
    # 0/1: one molecule in two Kekulé forms; 2/3: tautomers that share a standard InChI.
    smiles = ["C#CC1=CN=CC=N1", "C#CC1=NC=CN=C1", "OC1=NC=NN=N1", "O=C1NN=NC=N1", "CCO"]
    inchi = ["I-a", "I-a", "I-b", "I-b", "I-c"]
    store = molecule_store(data_root, smiles, columns={"inchi": inchi})
    ident = identity(store)
    assert ident.rep.tolist() == [0, 0, 2, 3, 4]
    assert ident.n_duplicates == 1 and "InChI" in ident.basis


def test_molecules_by_canonical_smiles_without_inchi(data_root) -> None:
    store = molecule_store(data_root, ["OCC", "CCO", "CCN"], name="noinchi")
    assert identity(store).rep.tolist() == [0, 0, 2]


def test_crystal_hash_ignores_atom_order_and_lattice_translations(data_root) -> None:
    cell = np.diag([4.0, 4.0, 5.0])
    frac = np.array([[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    pos = frac @ cell
    numbers = [np.array([11, 17]), np.array([17, 11]), np.array([11, 17]), np.array([11, 17])]
    positions = [pos, pos[::-1], pos + cell[0], pos + np.array([0.3, 0, 0])]
    s = pack(numbers, positions, ids=["a", "b", "c", "d"], cells=[cell] * 4,
             pbcs=[np.ones(3, bool)] * 4)  # fmt: skip
    s.targets["e"] = np.zeros(4)
    s.target_units["e"] = "eV/atom"
    path = write_store(s, data_root / "stores" / "nacl", name="nacl", kind="crystals",
                       source={"format": "test"})  # fmt: skip
    assert identity(Store(path)).rep.tolist() == [0, 0, 0, 3]
