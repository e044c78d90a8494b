"""Force-field frames from extxyz (or any ASE-readable) files: energy, forces and stress.

Every frame of every file is read with ``ase.io.read(path, index=":")``. Energy (eV), forces
(eV/A) and stress come from the SinglePointCalculator ASE attaches, or from ``atoms.info`` /
``atoms.arrays`` under the keys given. Stored: targets ``energy`` (eV) and ``energy_per_atom``
(eV/atom), per-atom ``forces`` (eV/A), per-structure ``stress`` as 3x3 in GPa (ASE's sign, i.e.
positive = tensile, when every frame has one), columns ``formula``, ``source_file`` and
``config_type`` (when any frame has one). Frames without a cell stay non-periodic.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from atomcollapse.artifacts import sha256_file
from atomcollapse.data.schema import pack
from atomcollapse.data.sources import Ingested
from atomcollapse.data.sources.matbench import reduced_formula
from atomcollapse.errors import InputError, not_a_file
from atomcollapse.units import EV_A3_GPA

_EXPECTED_UNITS = {"energy_unit": "eV", "forces_unit": "eV/A", "stress_unit": "eV/A^3"}


def _lookup(atoms: Any, key: str, mapping: dict[str, Any]) -> Any:
    """``key`` from the attached calculator's results, else from ``mapping`` (info or arrays)."""
    results = atoms.calc.results if atoms.calc is not None else {}
    if key in results:
        return results[key]
    return mapping.get(key)


def _stress_3x3(value: Any) -> np.ndarray:
    s = np.asarray(value, dtype=np.float64)
    if s.shape == (6,):
        xx, yy, zz, yz, xz, xy = s
        s = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    return s.reshape(3, 3)


def read_frames(path: Path) -> list[Any]:
    """Every frame of an ASE-readable file; a bad file is one InputError naming it."""
    import ase.io

    if not path.is_file():
        raise not_a_file(path)
    if path.stat().st_size == 0:
        raise InputError("empty file, no frames", file=path.name)
    try:
        frames = ase.io.read(path, index=":")
    except Exception as e:  # ASE's readers raise many exception types on malformed input
        msg = " ".join(str(e).replace(str(path), path.name).split())[:200]
        raise InputError(
            f"cannot read with ASE ({type(e).__name__}: {msg})", file=path.name
        ) from None
    frames = frames if isinstance(frames, list) else [frames]
    if not frames:
        raise InputError("no frames", file=path.name)
    return frames


class _Frame(NamedTuple):
    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    energy: float
    forces: np.ndarray
    stress: np.ndarray | None  # 3x3, GPa
    config_type: str


def _frame(atoms: Any, e_key: str, f_key: str, file: str, rec: str) -> _Frame:
    """One frame's arrays, checked; InputError names the file and frame."""
    for key, unit in _EXPECTED_UNITS.items():
        if key in atoms.info and str(atoms.info[key]) != unit:
            raise InputError(
                f"{key} is {atoms.info[key]!r}; only {unit} is read", file=file, record=rec
            )
    n = len(atoms)
    if n == 0:
        raise InputError("frame has no atoms", file=file, record=rec)
    e = _lookup(atoms, e_key, atoms.info)
    if e is None:
        raise InputError(
            f"no energy (looked for {e_key!r}; pass --energy-key)", file=file, record=rec
        )
    try:
        e = float(e)
    except (TypeError, ValueError):
        raise InputError(f"energy {e!r} is not a number", file=file, record=rec) from None
    if not np.isfinite(e):
        raise InputError(f"energy is {e}", file=file, record=rec)
    f = _lookup(atoms, f_key, atoms.arrays)
    if f is None:
        raise InputError(
            f"no forces (looked for {f_key!r}; pass --forces-key)", file=file, record=rec
        )
    f = np.asarray(f, dtype=np.float64)
    if f.shape != (n, 3):
        raise InputError(f"forces have shape {f.shape}, expected ({n}, 3)", file=file, record=rec)
    if not np.isfinite(f).all():
        raise InputError("non-finite forces", file=file, record=rec)
    pbc = np.asarray(atoms.pbc, dtype=bool)
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    if (pbc & (np.linalg.norm(cell, axis=1) == 0)).any():
        raise InputError("periodic along an axis with a zero cell vector", file=file, record=rec)
    stress = _lookup(atoms, "stress", atoms.info)
    if stress is not None:
        stress = _stress_3x3(stress) * EV_A3_GPA
        if not np.isfinite(stress).all():
            raise InputError("non-finite stress", file=file, record=rec)
    config = str(atoms.info.get("config_type", ""))
    return _Frame(atoms.numbers, atoms.positions, cell, pbc, e, f, stress, config)


def load_extxyz(
    files: Sequence[str | Path],
    *,
    energy_key: str | None = None,
    forces_key: str | None = None,
) -> Ingested:
    """Read force-field frames; ids are ``<file stem>-<frame index>`` (zero-padded per file)."""
    paths = [Path(f) for f in files]
    if not paths:
        raise InputError("no files given")
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        dup = next(s for s in stems if stems.count(s) > 1)
        raise InputError("two input files share this name; ids would collide", record=dup)
    e_key, f_key = energy_key or "energy", forces_key or "forces"
    frames: list[_Frame] = []
    ids, origin, sources = [], [], []
    counts: dict[str, int] = {}
    for path in paths:
        atoms_list = read_frames(path)
        counts[path.name] = len(atoms_list)
        sources.append({"name": path.name, "sha256": sha256_file(path)})
        width = len(str(len(atoms_list) - 1))
        for i, atoms in enumerate(atoms_list):
            frames.append(_frame(atoms, e_key, f_key, path.name, f"frame {i}"))
            ids.append(f"{path.stem}-{i:0{width}d}")
            origin.append(path.name)
    s = pack(
        [f.numbers for f in frames],
        [f.positions for f in frames],
        ids=ids,
        cells=[f.cell for f in frames],
        pbcs=[f.pbc for f in frames],
    )
    energy = np.asarray([f.energy for f in frames])
    s.targets = {"energy": energy, "energy_per_atom": energy / np.diff(s.offsets)}
    s.target_units = {"energy": "eV", "energy_per_atom": "eV/atom"}
    s.atom_arrays["forces"] = np.concatenate([f.forces for f in frames])
    s.array_units["forces"] = "eV/A"
    n_stress = sum(f.stress is not None for f in frames)
    if n_stress == len(frames):
        s.structure_arrays["stress"] = np.stack([f.stress for f in frames if f.stress is not None])
        s.array_units["stress"] = "GPa"
    s.columns["formula"] = np.asarray([reduced_formula(f.numbers) for f in frames], dtype=str)
    s.columns["source_file"] = np.asarray(origin, dtype=str)
    if any(f.config_type for f in frames):
        s.columns["config_type"] = np.asarray([f.config_type for f in frames], dtype=str)
    label = paths[0].name if len(paths) == 1 else f"{len(paths)} extxyz files"
    s.validate(label)
    return Ingested(
        structures=s,
        kind="forcefield",
        source={
            "format": "extxyz",
            "label": label,
            "files": sources,
            "energy_key": e_key,
            "forces_key": f_key,
        },
        target_info={
            "energy": {"description": "total energy", "report_unit": "eV", "readout": "sum"},
            "energy_per_atom": {
                "description": "energy per atom",
                "report_unit": "meV/atom",
                "readout": "mean",
            },
        },
        extra={
            "frames_per_file": counts,
            "frames_with_stress": n_stress,
            "stress": "stored (GPa)" if n_stress == len(frames) else "not stored: frames lack it",
        },
    )
