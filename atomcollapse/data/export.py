"""Stores (or some of their rows) as extxyz that ASE and ``ingest extxyz`` read back.

Each frame carries ``id``, every target under its own name with its unit as ``<target>_unit``,
the text columns (SMILES, formula, ...), the cell and pbc (periodic stores), and, when the store
has them, the energy (eV), forces (eV/A) and stress as ASE calculator results (stress in
ASE's eV/A^3, converted from the stored GPa). ASE writes positions and forces with 8 decimals
and other numbers exactly.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from atomcollapse.artifacts import write_text_atomic
from atomcollapse.data.store import Store
from atomcollapse.errors import InputError
from atomcollapse.units import EV_A3_GPA

#: ``datasets export --format``: the formats a whole store can be written in
STORE_FORMATS = ("extxyz",)
#: info keys that ``ingest extxyz`` checks (only these units are read back)
_CALC_UNITS = {"energy": "eV", "forces": "eV/A", "stress": "GPa"}


def check_format(fmt: str, known: tuple[str, ...]) -> str:
    if fmt not in known:
        raise InputError(f"--format must be one of {', '.join(known)}, not {fmt!r}")
    return fmt


def store_atoms(store: Store, rows: np.ndarray, info: Mapping[str, Any] | None = None) -> list:
    """ASE ``Atoms`` for ``rows`` of ``store`` (in order), with targets, units and ``info``."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    m = store.manifest
    units = {t: m["targets"][t]["unit"] for t in store.target_names}
    as_calc = {t for t in ("energy",) if units.get(t) == _CALC_UNITS[t]}
    targets = {t: np.asarray(store.target(t)) for t in store.target_names}
    columns = {c: np.asarray(store.column(c)) for c in store.column_names}
    forces = _array(store, "atom_arrays", "forces")
    stress = _array(store, "structure_arrays", "stress")
    ids = np.asarray(store.ids)
    offsets, numbers, positions = np.asarray(store.offsets), store.numbers, store.positions
    cells, pbcs = np.asarray(store.cell), np.asarray(store.pbc)
    frames = []
    for i in np.asarray(rows, dtype=np.int64):
        a, b = int(offsets[i]), int(offsets[i + 1])
        atoms = Atoms(numbers=np.asarray(numbers[a:b]), positions=np.asarray(positions[a:b]),
                      cell=cells[i], pbc=pbcs[i])  # fmt: skip
        atoms.info["id"] = str(ids[i])
        for t, v in targets.items():
            if t not in as_calc:
                atoms.info[t] = float(v[i])
            atoms.info[f"{t}_unit"] = units[t]
        for c, v in columns.items():
            atoms.info[c] = str(v[i])
        atoms.info.update(info or {})
        results: dict[str, Any] = {t: float(targets[t][i]) for t in as_calc}
        if forces is not None:
            results["forces"] = np.asarray(forces[a:b], dtype=np.float64)
            atoms.info["forces_unit"] = "eV/A"
        if stress is not None:
            results["stress"] = np.asarray(stress[i], dtype=np.float64) / EV_A3_GPA
            atoms.info["stress_unit"] = "eV/A^3"
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        frames.append(atoms)
    return frames


def _array(store: Store, group: str, name: str) -> np.ndarray | None:
    """The named atom/structure array when the store has it in the unit ASE results use."""
    entry = store.manifest.get(group, {}).get(name)
    if entry is None or entry.get("unit") != _CALC_UNITS[name]:
        return None
    loader = store.atom_array if group == "atom_arrays" else store.structure_array
    return loader(name)


def extxyz_text(frames: list) -> str:
    """The extxyz text of ASE frames (empty for none)."""
    import ase.io

    buf = io.StringIO()
    if frames:
        ase.io.write(buf, frames, format="extxyz")
    return buf.getvalue()


def check_file_target(out: Path, overwrite: bool) -> None:
    """Refuse an existing ``out`` without ``overwrite``, and anything but a regular file."""
    if out.is_dir():
        raise InputError("is a directory; give a file name", file=out)
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise InputError("already exists (pass --overwrite to replace it)", file=out)
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise InputError("exists and is not a regular file", file=out)


def export_store(
    store: Store, out: str | Path, *, fmt: str = "extxyz", overwrite: bool = False
) -> Path:
    """Every structure of ``store`` into one file (atomically); returns its path."""
    check_format(fmt, STORE_FORMATS)
    out = Path(out)
    check_file_target(out, overwrite)
    frames = store_atoms(
        store, np.arange(len(store)), {"dataset": store.name, "dataset_hash": store.content_hash}
    )
    write_text_atomic(out, extxyz_text(frames))
    return out
