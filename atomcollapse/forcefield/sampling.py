"""Off-equilibrium conformers of a molecule, each drawn from its own seed.

Four methods, all in Angstrom; a conformer keeps the atom order of its parent unless said:

- ``rattle``: Gaussian displacement of every coordinate, std = ``scale`` (A). One xTB call per
  conformer (the label itself). At 0.05 A the xTB forces are ~2-3 eV/A rms on QM9 molecules.
- ``rdkit``: a new ETKDGv3 conformer (no force-field relaxation, so torsions, ring puckers and
  bond lengths all differ from the parent; xTB forces ~1 eV/A rms). The molecule is rebuilt from
  the parent's geometry (RDKit's bond perception, stereo from 3-D), so atom order is kept; when
  that fails (or gives radicals or several fragments) it is built from the SMILES with explicit H
  and is a new structure in SMILES order.
- ``normal-modes``: classical Boltzmann sample at ``temperature`` in the harmonic normal modes of
  the xTB Hessian at the parent geometry (finite differences of xTB gradients: 6N gradients, about
  1 s for an 18-atom QM9 molecule; computed once per parent and worker, then reused). Modes softer
  than 100 cm^-1 are stiffened to 100 cm^-1 so torsions cannot swing far.
- ``md``: a short Langevin (BAOAB) trajectory with xTB forces from the parent geometry, initial
  velocities drawn at 2T so equipartition leaves the fast modes near T; the last frame is kept.
  ``md_steps`` xTB gradients per conformer (100 by default: ~100x the cost of ``rattle``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from ase.data import atomic_masses

from atomcollapse.constants import SYMBOLS
from atomcollapse.errors import InputError
from atomcollapse.units import AMU_A2_FS2_EV, KB_EV

METHODS = ("rattle", "rdkit", "normal-modes", "md")
#: Softest normal mode allowed, cm^-1 (softer ones are stiffened to this).
MIN_WAVENUMBER = 100.0
_C_CM_PER_FS = 2.99792458e-5

ForceFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class SamplingConfig:
    """How conformers are drawn. ``per_molecule`` counts all methods together: conformer ``k`` of
    a molecule uses ``methods[k % len(methods)]``."""

    methods: tuple[str, ...] = ("rattle",)
    per_molecule: int = 4
    scale: float = 0.05  # A, rattle std
    temperature: float = 500.0  # K, md and normal-modes
    md_steps: int = 100
    md_timestep: float = 0.5  # fs
    md_friction: float = 0.01  # 1/fs
    seed: int = 0

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad or not self.methods:
            raise InputError(
                f"unknown sampling method {bad[0] if bad else '(none)'!r}; "
                f"choose from {', '.join(METHODS)}"
            )
        if len(set(self.methods)) != len(self.methods):
            raise InputError(f"sampling method given twice: {', '.join(self.methods)}")
        checks = {
            "--per-molecule": self.per_molecule >= 1,
            "--scale": self.scale > 0,
            "--temperature": self.temperature > 0,
            "--md-steps": self.md_steps >= 1,
            "md timestep": self.md_timestep > 0,
            "md friction": self.md_friction >= 0,
            "--seed": self.seed >= 0,
        }
        for option, ok in checks.items():
            if not ok:
                raise InputError(f"{option} out of range")

    def method_of(self, k: int) -> str:
        return self.methods[k % len(self.methods)]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["methods"] = list(self.methods)
        return d


def structure_rng(seed: int, parent_index: int, k: int) -> np.random.Generator:
    """The generator for conformer ``k`` of store row ``parent_index``: independent of workers."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, parent_index, k)))


def rattle(positions: np.ndarray, scale: float, rng: np.random.Generator) -> np.ndarray:
    return positions + rng.normal(scale=scale, size=positions.shape)


def _xyz_block(numbers: np.ndarray, positions: np.ndarray) -> str:
    rows = zip(numbers, positions, strict=True)
    lines = [f"{SYMBOLS[int(z)]} {x:.10f} {y:.10f} {w:.10f}" for z, (x, y, w) in rows]
    return f"{len(numbers)}\n\n" + "\n".join(lines) + "\n"


def _mol_from_geometry(numbers: np.ndarray, positions: np.ndarray):
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds

    mol = Chem.MolFromXYZBlock(_xyz_block(numbers, positions))
    if mol is None:
        return None
    try:
        rdDetermineBonds.DetermineBonds(mol, charge=0)
        Chem.AssignStereochemistryFrom3D(mol)
    except (ValueError, RuntimeError):
        return None
    radicals = sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())
    if radicals or len(Chem.GetMolFrags(mol)) != 1:
        return None
    return mol


def _candidates(numbers: np.ndarray, positions: np.ndarray, smiles: str) -> Iterator[tuple]:
    """Molecules to embed, best first, each with whether it keeps the parent's atom order."""
    from rdkit import Chem

    mol = _mol_from_geometry(numbers, positions)
    if mol is not None:
        yield mol, True
        flat = Chem.Mol(mol)
        Chem.RemoveStereochemistry(flat)
        yield flat, True
    parsed = Chem.MolFromSmiles(smiles) if smiles else None
    if parsed is not None:
        yield Chem.AddHs(parsed), False


def rdkit_conformer(
    numbers: np.ndarray, positions: np.ndarray, smiles: str, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, bool]:
    """A new ETKDGv3 conformer: (numbers, positions in A, whether the parent's atom order is kept).

    Tries the molecule perceived from the geometry with its 3-D stereo, then without stereo
    (ETKDG fails on ~5% of QM9's strained cages with stereo given; the conformer may then be
    another stereoisomer), then the SMILES. Raises RuntimeError when all fail.
    """
    from rdkit import Chem, rdBase
    from rdkit.Chem import rdDistGeom

    params: Any = rdDistGeom.ETKDGv3()
    params.randomSeed = int(rng.integers(0, 2**31 - 1))
    params.numThreads = 1
    with rdBase.BlockLogs():  # bond perception warns on stderr for every failed guess
        candidates = list(_candidates(numbers, positions, smiles))
        for candidate, same_order in candidates:
            mol = Chem.Mol(candidate)
            mol.RemoveAllConformers()
            if rdDistGeom.EmbedMolecule(mol, params) != 0:
                continue
            z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
            if same_order and not np.array_equal(z, numbers):
                raise RuntimeError("RDKit changed the atoms of the molecule")
            return z, np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64), same_order
    if not candidates:
        raise RuntimeError("RDKit could not perceive bonds from the geometry nor parse the SMILES")
    raise RuntimeError("ETKDG embedding failed")


def _masses(numbers: np.ndarray) -> np.ndarray:
    return np.asarray(atomic_masses[np.asarray(numbers)], dtype=np.float64)


def _rigid_basis(positions: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Orthonormal translations and rotations in mass-weighted Cartesians, (3N, 5 or 6)."""
    sq = np.sqrt(masses)
    centred = positions - (masses[:, None] * positions).sum(0) / masses.sum()
    vecs = []
    for axis in np.eye(3):
        vecs.append((sq[:, None] * axis).ravel())
        vecs.append((sq[:, None] * np.cross(axis, centred)).ravel())
    u, s, _ = np.linalg.svd(np.stack(vecs, axis=1), full_matrices=False)
    return u[:, s > 1e-6 * s.max()]


def normal_modes(
    numbers: np.ndarray, positions: np.ndarray, hessian: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Vibrational eigenvalues (eV/(A^2 amu)) and mass-weighted modes (3N, 3N-6) of a Hessian in
    eV/A^2, with translations and rotations projected out."""
    m3 = np.repeat(_masses(numbers), 3)
    hm = 0.5 * (hessian + hessian.T) / np.sqrt(np.outer(m3, m3))
    rigid = _rigid_basis(positions, _masses(numbers))
    q, _ = np.linalg.qr(np.concatenate([rigid, np.eye(len(m3))], axis=1))
    complement = q[:, rigid.shape[1] :]
    evals, evecs = np.linalg.eigh(complement.T @ hm @ complement)
    return evals, complement @ evecs


def normal_mode_sample(
    numbers: np.ndarray,
    positions: np.ndarray,
    modes: tuple[np.ndarray, np.ndarray],
    temperature: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Positions displaced along the normal modes, each mode's amplitude Boltzmann-distributed."""
    evals, vecs = modes
    omega_min = 2 * np.pi * _C_CM_PER_FS * MIN_WAVENUMBER  # rad/fs
    floor = omega_min**2 * AMU_A2_FS2_EV
    stiffness = np.maximum(np.abs(evals), floor)
    q = rng.normal(size=len(evals)) * np.sqrt(KB_EV * temperature / stiffness)
    dx = (vecs @ q) / np.repeat(np.sqrt(_masses(numbers)), 3)
    return positions + dx.reshape(-1, 3)


def langevin(
    numbers: np.ndarray,
    positions: np.ndarray,
    forces: ForceFn,
    config: SamplingConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Last frame of a BAOAB Langevin trajectory (A); ``forces(numbers, positions)`` in eV/A."""
    m = _masses(numbers)[:, None]
    kt = KB_EV * config.temperature
    dt = config.md_timestep
    sigma = np.sqrt(kt / (m * AMU_A2_FS2_EV))  # A/fs at T
    x = np.array(positions, dtype=np.float64)
    v = rng.normal(size=x.shape) * sigma * np.sqrt(2.0)
    v -= (m * v).sum(0) / m.sum()
    c1 = np.exp(-config.md_friction * dt)
    c2 = np.sqrt(1.0 - c1**2)
    f = forces(numbers, x)
    for step in range(config.md_steps):
        v += 0.5 * dt * f / (m * AMU_A2_FS2_EV)
        x += 0.5 * dt * v
        v = c1 * v + c2 * sigma * rng.normal(size=x.shape)
        x += 0.5 * dt * v
        if step == config.md_steps - 1:
            break
        f = forces(numbers, x)
        v += 0.5 * dt * f / (m * AMU_A2_FS2_EV)
    return x
