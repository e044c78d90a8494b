"""What every QM9 reader returns, and the helpers they share (element lookup, number parsing)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from atomcollapse.artifacts import sha256_file
from atomcollapse.constants import QM9_XYZ_ORDER, SYMBOLS
from atomcollapse.errors import InputError

#: Element symbol -> atomic number, for every real element.
ELEMENT_Z: dict[str, int] = {s: z for z, s in enumerate(SYMBOLS) if z > 0}


@dataclass
class QM9Records:
    """Molecules read from one QM9 source, packed; targets in raw units, columns in QM9_XYZ_ORDER.

    ``index`` is the dsgdb9nsd number (1..133,885). Atom ``j`` of molecule ``i`` is row
    ``offsets[i] + j`` of ``numbers`` / ``positions`` (Angstrom), with offsets = cumsum(counts).
    """

    index: np.ndarray  # (n,) int64
    counts: np.ndarray  # (n,) int64 atoms per molecule
    numbers: np.ndarray  # (n_atoms,) int16
    positions: np.ndarray  # (n_atoms, 3) float64, Angstrom
    targets: np.ndarray  # (n, 15) float64, raw units, QM9_XYZ_ORDER
    smiles: np.ndarray  # (n,) str
    inchi: np.ndarray  # (n,) str
    files: list[dict[str, str]] = field(default_factory=list)  # {"name", "sha256"}
    n_read: int = 0  # molecules seen in the source, before dropping any
    dropped: list[int] = field(default_factory=list)  # indices skipped as uncharacterized

    @property
    def offsets(self) -> np.ndarray:
        off = np.zeros(len(self.counts) + 1, dtype=np.int64)
        np.cumsum(self.counts, out=off[1:])
        return off

    def take(self, sel: np.ndarray) -> QM9Records:
        """The molecules at positions ``sel`` (a selection or a reordering), atoms following."""
        sel = np.asarray(sel, dtype=np.int64)
        counts = self.counts[sel]
        starts = self.offsets[:-1][sel]
        new_starts = np.zeros(len(sel), dtype=np.int64)
        np.cumsum(counts[:-1], out=new_starts[1:])
        atoms = np.repeat(starts - new_starts, counts) + np.arange(int(counts.sum()))
        return QM9Records(
            index=self.index[sel],
            counts=counts,
            numbers=self.numbers[atoms],
            positions=self.positions[atoms],
            targets=self.targets[sel],
            smiles=self.smiles[sel],
            inchi=self.inchi[sel],
            files=self.files,
            n_read=self.n_read,
            dropped=self.dropped,
        )


def concat(parts: list[QM9Records]) -> QM9Records:
    """Join records read from several files of one source."""
    return QM9Records(
        index=np.concatenate([p.index for p in parts]),
        counts=np.concatenate([p.counts for p in parts]),
        numbers=np.concatenate([p.numbers for p in parts]),
        positions=np.concatenate([p.positions for p in parts]),
        targets=np.concatenate([p.targets for p in parts]),
        smiles=np.concatenate([p.smiles for p in parts]),
        inchi=np.concatenate([p.inchi for p in parts]),
        files=[f for p in parts for f in p.files],
        n_read=sum(p.n_read for p in parts),
        dropped=[i for p in parts for i in p.dropped],
    )


def qm9_id(index: int) -> str:
    return f"dsgdb9nsd_{index:06d}"


def parse_number(token: str, *, file: str, record: str, what: str) -> float:
    """A float that may use Mathematica's exponent (``2.1*^-5`` for ``2.1e-5``)."""
    try:
        return float(token.replace("*^", "e"))
    except ValueError:
        raise InputError(
            f"cannot parse {what} {token!r} as a number", file=file, record=record
        ) from None


def element_number(symbol: str, *, file: str, record: str) -> int:
    z = ELEMENT_Z.get(symbol)
    if z is None:
        raise InputError(f"unknown element symbol {symbol!r}", file=file, record=record)
    return z


def check_targets(targets: np.ndarray, index: np.ndarray, *, file: str) -> None:
    """Every target must be a finite number: name the first molecule and target that is not."""
    bad = ~np.isfinite(targets)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise InputError(
            f"target {QM9_XYZ_ORDER[j]!r} is {targets[i, j]}",
            file=file,
            record=qm9_id(int(index[i])),
        )


def check_unique(index: np.ndarray, *, file: str) -> None:
    uniq, counts = np.unique(index, return_counts=True)
    if (counts > 1).any():
        dup = int(uniq[counts > 1][0])
        raise InputError(
            f"molecule index {dup} appears {int(counts[counts > 1][0])} times",
            file=file,
            record=qm9_id(dup),
        )


def file_entry(path: Path, digest: str | None = None) -> dict[str, str]:
    """Manifest entry for a file: base name and sha256 (never the absolute path)."""
    return {"name": path.name, "sha256": digest or sha256_file(path)}
