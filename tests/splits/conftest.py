"""Small stores built by the tests: molecules from SMILES, crystals from compositions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from atomcollapse.constants import atomic_number
from atomcollapse.data.schema import pack
from atomcollapse.data.store import Store, write_store


def molecule_numbers(smiles: str) -> np.ndarray:
    from rdkit import Chem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    return np.array([a.GetAtomicNum() for a in mol.GetAtoms()])


def distinct_smiles(n: int) -> list[str]:
    """``n`` (up to 800) different molecules: ethers and alcohols C_a-O-C_b with b <= a."""
    out = [f"{'C' * a}O{'C' * b}" for a in range(1, 40) for b in range(a + 1)]
    assert n <= len(out)
    return out[:n]


def molecule_store(
    root: Path,
    smiles: list[str],
    targets: dict[str, np.ndarray] | None = None,
    *,
    name: str = "mols",
    units: dict[str, str] | None = None,
    columns: dict[str, list[str]] | None = None,
    with_smiles: bool = True,
) -> Store:
    """Molecules from SMILES (atoms from RDKit with hydrogens; fake coordinates on a line, with
    a spacing that differs per molecule so that no two are geometric duplicates)."""
    numbers = [molecule_numbers(s) for s in smiles]
    positions = [np.column_stack([np.arange(len(z)) * (1.2 + 1e-3 * i), np.zeros((len(z), 2))])
                 for i, z in enumerate(numbers)]  # fmt: skip
    s = pack(numbers, positions, ids=[f"m{i:04d}" for i in range(len(smiles))])
    if with_smiles:
        s.columns["smiles"] = np.asarray(smiles)
    for k, v in (columns or {}).items():
        s.columns[k] = np.asarray(v)
    targets = targets if targets is not None else {"y": np.arange(len(smiles), dtype=float)}
    for t, v in targets.items():
        s.targets[t] = np.asarray(v, dtype=float)
        s.target_units[t] = (units or {}).get(t, "eV")
    info = {t: {"report_unit": "meV"} for t in targets if s.target_units[t] == "eV"}
    path = write_store(s, root / "stores" / name, name=name, kind="molecules",
                       source={"format": "test"}, target_info=info)  # fmt: skip
    return Store(path)


def crystal_store(
    root: Path,
    formulas: list[dict[str, int]],
    *,
    name: str = "xtals",
    targets: dict[str, np.ndarray] | None = None,
    columns: dict[str, list[str]] | None = None,
    seed: int = 0,
) -> Store:
    """Cubic 5 A cells with the given element counts at random (seeded) fractional positions."""
    rng = np.random.default_rng(seed)
    numbers, positions, cells = [], [], []
    for f in formulas:
        z = np.concatenate([[atomic_number(el)] * c for el, c in f.items()])
        cell = np.eye(3) * 5.0
        numbers.append(z)
        positions.append(rng.random((len(z), 3)) @ cell)
        cells.append(cell)
    s = pack(numbers, positions, ids=[f"x{i:04d}" for i in range(len(formulas))], cells=cells,
             pbcs=[np.ones(3, bool)] * len(formulas))  # fmt: skip
    targets = targets if targets is not None else {"e": rng.normal(size=len(formulas))}
    for t, v in targets.items():
        s.targets[t] = np.asarray(v, dtype=float)
        s.target_units[t] = "eV/atom"
    for k, v in (columns or {}).items():
        s.columns[k] = np.asarray(v)
    path = write_store(s, root / "stores" / name, name=name, kind="crystals",
                       source={"format": "test"})  # fmt: skip
    return Store(path)


@pytest.fixture
def data_root(tmp_path: Path) -> Path:
    return tmp_path
