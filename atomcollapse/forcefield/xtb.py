"""GFN2-xTB labels through tblite, and the per-structure task a worker runs.

tblite works in atomic units; everything here leaves in eV, eV/A, eV and Debye. The electronic
temperature is tblite's default (300 K Fermi smearing), so ``energy`` is the Mermin free energy
and the forces are its exact negative gradient.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from atomcollapse.forcefield.sampling import (
    SamplingConfig,
    langevin,
    normal_mode_sample,
    normal_modes,
    rattle,
    rdkit_conformer,
    structure_rng,
)
from atomcollapse.units import BOHR_ANGSTROM, factor

METHOD = "GFN2-xTB"
_FORCE = factor("Ha/a0", "eV/A")
_ENERGY = factor("Ha", "eV")
_DIPOLE = factor("e*a0", "D")
HESSIAN_STEP = 0.005  # A, central differences


def tblite_version() -> str:
    try:
        return version("tblite")
    except PackageNotFoundError:
        return "unknown"


def level_of_theory() -> str:
    return f"{METHOD} via tblite {tblite_version()}"


@dataclass(frozen=True)
class Labels:
    """xTB labels of one structure."""

    energy: float  # eV
    forces: np.ndarray  # (n_atoms, 3) eV/A
    gap: float  # eV, HOMO-LUMO
    dipole: float  # D, magnitude


def _calculator(numbers: np.ndarray, positions: np.ndarray):
    import tblite.interface as ti

    z = np.asarray(numbers, dtype=np.int32)
    calc = ti.Calculator(
        METHOD, z, np.asarray(positions, dtype=np.float64) / BOHR_ANGSTROM, uhf=int(z.sum() % 2)
    )
    calc.set("verbosity", 0)
    return calc


def homo_lumo_gap(orbital_energies: np.ndarray, occupations: np.ndarray) -> float:
    """Gap in Hartree from orbital energies and occupations (restricted 1-D or per-spin 2-D).

    The HOMO is found by counting electrons, not by an occupation threshold, so Fermi smearing
    of near-degenerate frontier orbitals cannot move it.
    """
    eps = np.atleast_2d(orbital_energies)
    occ = np.atleast_2d(occupations)
    per_orbital = 2.0 if eps.shape[0] == 1 else 1.0
    homo, lumo = [], []
    for e, o in zip(eps, occ, strict=True):
        n_occ = int(np.ceil(round(float(o.sum()), 6) / per_orbital))
        if n_occ >= 1:
            homo.append(e[n_occ - 1])
        if n_occ < len(e):
            lumo.append(e[n_occ])
    if not homo or not lumo:
        return float("nan")
    return float(min(lumo) - max(homo))


def label_structure(numbers: np.ndarray, positions: np.ndarray) -> Labels:
    """GFN2-xTB single point of a neutral molecule (positions in A). Raises on SCF failure."""
    res = _calculator(numbers, positions).singlepoint()
    labels = Labels(
        energy=float(res.get("energy")) * _ENERGY,
        forces=-np.asarray(res.get("gradient"), dtype=np.float64) * _FORCE,
        gap=homo_lumo_gap(res.get("orbital-energies"), res.get("orbital-occupations")) * _ENERGY,
        dipole=float(np.linalg.norm(res.get("dipole"))) * _DIPOLE,
    )
    if not (np.isfinite(labels.energy) and np.isfinite(labels.forces).all()):
        raise RuntimeError("xTB returned non-finite energy or forces")
    if not (np.isfinite(labels.gap) and np.isfinite(labels.dipole)):
        raise RuntimeError("xTB returned a non-finite gap or dipole")
    return labels


class _ForceField:
    """xTB forces along a trajectory, restarting each SCF from the previous wavefunction."""

    def __init__(self, numbers: np.ndarray, positions: np.ndarray):
        self.calc = _calculator(numbers, positions)
        self.result: Any = None

    def __call__(self, numbers: np.ndarray, positions: np.ndarray) -> np.ndarray:
        self.calc.update(np.asarray(positions, dtype=np.float64) / BOHR_ANGSTROM)
        self.result = self.calc.singlepoint(self.result)
        return -np.asarray(self.result.get("gradient"), dtype=np.float64) * _FORCE


def xtb_hessian(
    numbers: np.ndarray, positions: np.ndarray, step: float = HESSIAN_STEP
) -> np.ndarray:
    """Symmetrised Hessian (3N, 3N) in eV/A^2 by central differences of xTB forces (6N calls)."""
    x0 = np.asarray(positions, dtype=np.float64)
    n3 = x0.size
    hess = np.empty((n3, n3))
    for i in range(n3):
        rows = []
        for sign in (1.0, -1.0):
            x = x0.copy().ravel()
            x[i] += sign * step
            rows.append(-label_structure(numbers, x.reshape(-1, 3)).forces.ravel())
        hess[i] = (rows[0] - rows[1]) / (2 * step)
    return 0.5 * (hess + hess.T)


# --- the worker side: one task = one conformer of one parent, drawn and labelled -----------

_CONFIG: SamplingConfig | None = None


def init_worker(config: SamplingConfig) -> None:
    """Pool initializer (also called in-process when running with one worker)."""
    global _CONFIG
    _CONFIG = config
    _parent_modes.cache_clear()


@lru_cache(maxsize=4)
def _parent_modes(parent_index: int, numbers: bytes, positions: bytes):
    z = np.frombuffer(numbers, dtype=np.int64)
    x = np.frombuffer(positions, dtype=np.float64).reshape(-1, 3)
    return normal_modes(z, x, xtb_hessian(z, x))


def conformer(task: dict[str, Any], config: SamplingConfig) -> tuple[np.ndarray, np.ndarray]:
    """Draw conformer ``task['k']`` of its parent; returns (numbers, positions in A)."""
    z = np.asarray(task["numbers"], dtype=np.int64)
    x = np.asarray(task["positions"], dtype=np.float64)
    rng = structure_rng(config.seed, task["parent_index"], task["k"])
    method = config.method_of(task["k"])
    if method == "rattle":
        return z, rattle(x, config.scale, rng)
    if method == "rdkit":
        z_new, x_new, _ = rdkit_conformer(z, x, task["smiles"], rng)
        return z_new, x_new
    if method == "normal-modes":
        modes = _parent_modes(task["parent_index"], z.tobytes(), x.tobytes())
        return z, normal_mode_sample(z, x, modes, config.temperature, rng)
    return z, langevin(z, x, _ForceField(z, x), config, rng)


def run_task(task: dict[str, Any]) -> dict[str, Any]:
    """Draw and label one conformer. Any failure comes back as a record, never as an exception."""
    assert _CONFIG is not None, "init_worker was not called"
    key = {
        "parent_index": task["parent_index"],
        "parent_id": task["parent_id"],
        "k": task["k"],
        "method": _CONFIG.method_of(task["k"]),
    }
    stage = "sampling"
    try:
        z, x = conformer(task, _CONFIG)
        stage = "labelling"
        labels = label_structure(z, x)
    except Exception as e:  # SCF failures, RDKit failures: logged by the caller
        return {**key, "ok": False, "stage": stage, "error": f"{type(e).__name__}: {e}"}
    return {**key, "ok": True, "numbers": z, "positions": x, "labels": labels}
