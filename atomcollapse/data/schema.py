"""The canonical in-memory schema: structures packed into flat arrays.

Atom ``j`` of structure ``i`` sits at row ``offsets[i] + j`` of the per-atom arrays. Positions
and cells are in Angstrom; molecules have a zero cell and ``pbc`` all False. Targets are stored
in the unit of their source, named in ``target_units``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from atomcollapse.constants import MAX_Z, SYMBOLS
from atomcollapse.errors import InputError

KINDS = ("molecules", "crystals", "forcefield")


@dataclass
class Structures:
    """Packed structures plus a per-structure table (ids, text columns, targets)."""

    numbers: np.ndarray  # (n_atoms,) atomic numbers
    positions: np.ndarray  # (n_atoms, 3) Angstrom
    offsets: np.ndarray  # (n + 1,) int64, offsets[0] == 0
    cell: np.ndarray  # (n, 3, 3) Angstrom, rows are lattice vectors
    pbc: np.ndarray  # (n, 3) bool
    ids: np.ndarray  # (n,) str, unique
    columns: dict[str, np.ndarray] = field(default_factory=dict)  # text per structure
    targets: dict[str, np.ndarray] = field(default_factory=dict)  # float per structure
    target_units: dict[str, str] = field(default_factory=dict)
    atom_arrays: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. forces (n_atoms, 3)
    structure_arrays: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. stress (n,3,3)
    array_units: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_atoms(self) -> int:
        return int(self.offsets[-1])

    def validate(self, source: str) -> None:
        """Check shapes, ids, elements and finiteness; raise InputError naming the record."""
        n = len(self)
        na = self.n_atoms
        if n < 1:
            raise InputError("no structures found", file=source)
        if self.offsets[0] != 0 or np.any(np.diff(self.offsets) < 1):
            bad = int(np.argmax(np.diff(self.offsets) < 1))
            raise InputError("structure has no atoms", file=source, record=str(self.ids[bad]))
        _shape(source, "numbers", self.numbers, (na,))
        _shape(source, "positions", self.positions, (na, 3))
        _shape(source, "cell", self.cell, (n, 3, 3))
        _shape(source, "pbc", self.pbc, (n, 3))
        _shape(source, "ids", self.ids, (n,))
        bad_z = (self.numbers < 1) | (self.numbers > MAX_Z)
        if bad_z.any():
            i = self.structure_of_atom(int(np.argmax(bad_z)))
            raise InputError(
                f"unknown element (atomic number {int(self.numbers[np.argmax(bad_z)])})",
                file=source,
                record=str(self.ids[i]),
            )
        uniq, counts = np.unique(self.ids, return_counts=True)
        if (counts > 1).any():
            raise InputError("duplicate id", file=source, record=str(uniq[counts > 1][0]))
        for name, pos in (("positions", self.positions), ("cell", self.cell)):
            if not np.isfinite(pos).all():
                i = np.argwhere(~np.isfinite(pos))[0][0]
                rec = self.ids[self.structure_of_atom(int(i)) if name == "positions" else i]
                raise InputError(f"non-finite {name}", file=source, record=str(rec))
        for name, values in self.targets.items():
            _shape(source, f"target {name}", values, (n,))
            if name not in self.target_units:
                raise InputError(f"target {name!r} has no unit", file=source)
            if not np.isfinite(values).all():
                i = int(np.argmax(~np.isfinite(values)))
                raise InputError(
                    f"target {name!r} is {values[i]}", file=source, record=str(self.ids[i])
                )
        for name, values in self.columns.items():
            _shape(source, f"column {name}", values, (n,))
        for name, values in self.atom_arrays.items():
            if values.shape[0] != na:
                raise InputError(
                    f"per-atom array {name!r} has {values.shape[0]} rows, not {na}", file=source
                )
            if not np.isfinite(values).all():
                i = self.structure_of_atom(int(np.argwhere(~np.isfinite(values))[0][0]))
                raise InputError(f"non-finite {name}", file=source, record=str(self.ids[i]))
        for name, values in self.structure_arrays.items():
            if values.shape[0] != n:
                raise InputError(
                    f"per-structure array {name!r} has {values.shape[0]} rows, not {n}", file=source
                )
            if not np.isfinite(values).all():
                i = int(np.argwhere(~np.isfinite(values))[0][0])
                raise InputError(f"non-finite {name}", file=source, record=str(self.ids[i]))

    def structure_of_atom(self, atom_index: int) -> int:
        return int(np.searchsorted(self.offsets, atom_index, side="right") - 1)

    def elements(self) -> list[str]:
        return [SYMBOLS[z] for z in np.unique(self.numbers)]


def _shape(source: str, name: str, a: np.ndarray, shape: tuple[int, ...]) -> None:
    if a.shape != shape:
        raise InputError(f"{name} has shape {a.shape}, expected {shape}", file=source)


def pack(
    numbers: list[np.ndarray],
    positions: list[np.ndarray],
    *,
    ids: list[str],
    cells: list[np.ndarray] | None = None,
    pbcs: list[np.ndarray] | None = None,
) -> Structures:
    """Pack per-structure lists into a :class:`Structures` with an empty table."""
    n = len(numbers)
    counts = np.fromiter((len(z) for z in numbers), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    cell = (
        np.zeros((n, 3, 3))
        if cells is None
        else np.asarray(cells, dtype=np.float64).reshape(n, 3, 3)
    )
    pbc = np.zeros((n, 3), bool) if pbcs is None else np.asarray(pbcs, dtype=bool).reshape(n, 3)
    return Structures(
        numbers=np.concatenate(numbers).astype(np.int16) if n else np.zeros(0, np.int16),
        positions=np.concatenate(positions).astype(np.float64).reshape(-1, 3)
        if n
        else np.zeros((0, 3)),
        offsets=offsets,
        cell=cell,
        pbc=pbc,
        ids=np.asarray(ids, dtype=str),
    )
