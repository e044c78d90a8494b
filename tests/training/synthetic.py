"""Tiny synthetic stores for the training tests: learnable, seconds to train on.

Molecules: 3-7 H/C/N/O atoms at random positions (no two closer than 0.9 A), targets ``gap``
(Ha, intensive, mean readout, reported in meV) and ``alpha`` (a0^3, extensive, sum readout)
that are smooth functions of the geometry. Force field: the same kind of clusters with a Morse
pair potential plus per-element atom energies, energy in eV and analytic forces in eV/A.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from atomcollapse.data.schema import pack
from atomcollapse.data.store import write_store

ELEMENTS = (1, 6, 7, 8)
ATOM_ENERGY = {1: -13.6, 6: -1029.0, 7: -1485.0, 8: -2042.0}
ALPHA_Z = {1: 0.7, 6: 11.0, 7: 7.4, 8: 5.3, 9: 3.8}


def _cluster(rng: np.random.Generator, n: int, elements=ELEMENTS) -> tuple[np.ndarray, np.ndarray]:
    z = rng.choice(elements, size=n)
    pos = np.zeros((n, 3))
    for i in range(1, n):
        while True:
            p = pos[rng.integers(0, i)] + rng.normal(size=3) * 0.9
            if np.linalg.norm(pos[:i] - p, axis=1).min() > 0.9:
                pos[i] = p
                break
    return z, pos


def _pairs(pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    i, j = np.triu_indices(len(pos), k=1)
    d = pos[j] - pos[i]
    return i, j, d


def molecule_targets(z: np.ndarray, pos: np.ndarray) -> tuple[float, float]:
    _, _, d = _pairs(pos)
    r = np.linalg.norm(d, axis=1)
    gap = 0.30 - 0.05 * np.exp(-r).sum() / len(z) + 0.02 * np.mean(z == 8)
    alpha = sum(ALPHA_Z[int(a)] for a in z) + 2.0 * np.exp(-0.5 * r).sum()
    return float(gap), float(alpha)


def morse(z: np.ndarray, pos: np.ndarray) -> tuple[float, np.ndarray]:
    """Energy (eV) and forces (eV/A) of a Morse pair potential plus atom energies."""
    i, j, d = _pairs(pos)
    r = np.linalg.norm(d, axis=1)
    depth, a, r0 = 1.0, 1.5, 1.3
    x = np.exp(-a * (r - r0))
    energy = (depth * (1 - x) ** 2 - depth).sum() + sum(ATOM_ENERGY[int(k)] for k in z)
    de_dr = 2 * depth * (1 - x) * a * x
    fij = (de_dr / r)[:, None] * d  # dE/d(pos_j) along d
    forces = np.zeros_like(pos)
    np.add.at(forces, j, -fij)
    np.add.at(forces, i, fij)
    return float(energy), forces


def write_molecule_store(
    path: Path,
    n: int = 60,
    seed: int = 0,
    name: str = "mols",
    elements=ELEMENTS,
    fluorinated=(),
) -> Path:
    """``n`` small clusters of ``elements`` with gap and alpha targets; the first atom of the
    molecules numbered in ``fluorinated`` is made fluorine."""
    rng = np.random.default_rng(seed)
    numbers, positions, gaps, alphas = [], [], [], []
    for i in range(n):
        z, pos = _cluster(rng, int(rng.integers(3, 8)), elements)
        if i in fluorinated:
            z[0] = 9
        g, a = molecule_targets(z, pos)
        numbers.append(z)
        positions.append(pos)
        gaps.append(g)
        alphas.append(a)
    s = pack(numbers, positions, ids=[f"mol{i:04d}" for i in range(n)])
    s.targets.update(gap=np.array(gaps), alpha=np.array(alphas))
    s.target_units.update(gap="Ha", alpha="a0^3")
    info = {
        "gap": {"readout": "mean", "report_unit": "meV"},
        "alpha": {"readout": "sum", "report_unit": "a0^3"},
    }
    return write_store(
        s, path, name=name, kind="molecules", source={"format": "synthetic"}, target_info=info
    )


def write_ff_store(path: Path, n: int = 60, seed: int = 1, name: str = "ff") -> Path:
    rng = np.random.default_rng(seed)
    numbers, positions, energies, forces = [], [], [], []
    for _ in range(n):
        z, pos = _cluster(rng, int(rng.integers(3, 7)))
        e, f = morse(z, pos)
        numbers.append(z)
        positions.append(pos)
        energies.append(e)
        forces.append(f)
    s = pack(numbers, positions, ids=[f"ff{i:04d}" for i in range(n)])
    s.targets["energy"] = np.array(energies)
    s.target_units["energy"] = "eV"
    s.atom_arrays["forces"] = np.concatenate(forces)
    s.array_units["forces"] = "eV/A"
    info = {"energy": {"readout": "sum", "report_unit": "eV"}}
    return write_store(
        s, path, name=name, kind="forcefield", source={"format": "synthetic"}, target_info=info
    )


def write_crystal_store(path: Path, n: int = 24, seed: int = 2, name: str = "crystals") -> Path:
    """Small periodic cells (edges ~3.5 A, 2-3 atoms of Li, O, Si at least 1.6 A apart) with a
    ``gap`` target (eV, intensive: a smooth function of volume per atom and composition)."""
    rng = np.random.default_rng(seed)
    numbers, positions, cells, gaps = [], [], [], []
    while len(numbers) < n:
        cell = np.diag([3.4, 3.6, 3.8]) + rng.uniform(-0.3, 0.3, size=(3, 3))
        k = int(rng.integers(2, 4))
        frac = rng.uniform(size=(k, 3))
        d = frac[:, None, :] - frac[None, :, :]
        d -= np.round(d)
        r = np.linalg.norm(d @ cell, axis=-1)[np.triu_indices(k, 1)]
        if r.min() < 1.6:
            continue
        z = rng.choice([3, 8, 14], size=k)
        volume = abs(np.linalg.det(cell)) / k
        gaps.append(1.0 + 0.05 * volume + 0.3 * np.mean(z == 8))
        numbers.append(z)
        positions.append(frac @ cell)
        cells.append(cell)
    s = pack(numbers, positions, ids=[f"x{i:04d}" for i in range(n)], cells=cells,
             pbcs=[np.ones(3, bool)] * n)  # fmt: skip
    s.targets["gap"] = np.array(gaps)
    s.target_units["gap"] = "eV"
    info = {"gap": {"readout": "mean", "report_unit": "meV"}}
    return write_store(
        s, path, name=name, kind="crystals", source={"format": "synthetic"}, target_info=info
    )
