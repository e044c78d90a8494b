"""QM9 from the original ``dsgdb9nsd.xyz.tar.bz2`` (read member by member) or a folder of its files.

One file per molecule (Ramakrishnan et al. 2014, Table 2)::

    na                                    number of atoms
    gdb <index> A B C mu alpha homo lumo gap r2 zpve U0 U H G Cv    (raw units)
    <symbol> x y z q                      na lines: Angstrom, Mulliken charge (e)
    <3na-5 or 3na-6 harmonic frequencies, cm^-1>
    <SMILES from GDB-17> <TAB> <SMILES of the B3LYP-relaxed geometry>
    <InChI of the Corina geometry> <TAB> <InChI of the B3LYP-relaxed geometry>

Numbers may use Mathematica's exponent (``2.1*^-5``). The store keeps the first SMILES and the
first InChI, as the qm9pack CSVs do, so the two sources give identical text columns.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import re
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from atomcollapse.data.sources.qm9_common import (
    ELEMENT_Z,
    QM9Records,
    check_targets,
    element_number,
    file_entry,
    parse_number,
    qm9_id,
)
from atomcollapse.errors import InputError

_NAME = re.compile(r"dsgdb9nsd_(\d+)\.xyz$")
_N_PROPERTIES = 15


def parse_xyz(text: str, *, file: str) -> tuple[int, list[int], list[float], list[float], str, str]:
    """One xyz record: (index, atomic numbers, flat positions in A, 15 targets, SMILES, InChI)."""
    lines = text.strip("\n").splitlines()
    if len(lines) < 3:
        raise InputError(f"too short for a QM9 xyz file ({len(lines)} lines)", file=file)
    try:
        n = int(lines[0].strip())
    except ValueError:
        raise InputError(
            f"line 1 should be the atom count, not {lines[0][:40]!r}", file=file
        ) from None
    head = lines[1].split()
    if len(head) != 2 + _N_PROPERTIES or head[0] != "gdb":
        raise InputError(
            f"line 2 should be 'gdb <index>' and {_N_PROPERTIES} properties", file=file
        )
    try:
        index = int(head[1])
    except ValueError:
        raise InputError(f"bad molecule index {head[1]!r} on line 2", file=file) from None
    rec = qm9_id(index)
    targets = _floats(head[2:], file=file, record=rec, what="property")
    atoms = []
    for line in lines[2:]:
        tokens = line.split()
        if len(tokens) not in (4, 5) or not tokens[0][:1].isalpha():
            break
        atoms.append(tokens)
    if len(atoms) != n or len(lines) < n + 5:
        raise InputError(
            f"atom count on line 1 is {n} but the file has {len(atoms)} atom lines",
            file=file,
            record=rec,
        )
    numbers = [ELEMENT_Z.get(t[0]) or element_number(t[0], file=file, record=rec) for t in atoms]
    positions = _floats(
        [x for t in atoms for x in t[1:4]], file=file, record=rec, what="coordinate"
    )
    smiles, inchi = lines[n + 3].split(), lines[n + 4].split()
    if not smiles or not inchi or not inchi[0].startswith("InChI="):
        raise InputError(
            "expected SMILES and InChI lines after the frequencies", file=file, record=rec
        )
    return index, numbers, positions, targets, smiles[0], inchi[0]


def _floats(tokens: list[str], *, file: str, record: str, what: str) -> list[float]:
    try:
        return [float(t) for t in tokens]
    except ValueError:  # Mathematica exponents, or bad input
        return [parse_number(t, file=file, record=record, what=what) for t in tokens]


def read_xyz_source(source: Path, drop: frozenset[int] = frozenset()) -> QM9Records:
    """Read a QM9 xyz tarball (any tar compression) or a folder of ``*.xyz`` files."""
    digest = _FolderHash(source) if source.is_dir() else None
    members = _folder_members(source, digest) if digest else _tar_members(source)
    label = source.name
    index, counts, numbers, positions, targets, smiles, inchi = [], [], [], [], [], [], []
    seen: dict[int, str] = {}
    dropped, n_read = [], 0
    for member, data in members:
        where = f"{label}:{member}" if not source.is_dir() else member
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise InputError("not a text file", file=where) from None
        i, z, pos, y, smi, inc = parse_xyz(text, file=where)
        m = _NAME.search(member)
        if m and int(m.group(1)) != i:
            raise InputError(
                f"file name says molecule {int(m.group(1))} but line 2 says {i}", file=where
            )
        if i in seen:
            raise InputError(
                f"molecule index {i} appears twice (also in {seen[i]})",
                file=where,
                record=qm9_id(i),
            )
        seen[i] = member
        n_read += 1
        if i in drop:
            dropped.append(i)
            continue
        index.append(i)
        counts.append(len(z))
        numbers.extend(z)
        positions.extend(pos)
        targets.append(y)
        smiles.append(smi)
        inchi.append(inc)
    if n_read == 0:
        raise InputError("no .xyz files found", file=label)
    files = [digest.entry()] if digest else [file_entry(source)]
    records = QM9Records(
        index=np.array(index, dtype=np.int64),
        counts=np.array(counts, dtype=np.int64),
        numbers=np.array(numbers, dtype=np.int16),
        positions=np.array(positions, dtype=np.float64).reshape(-1, 3),
        targets=np.array(targets, dtype=np.float64).reshape(-1, _N_PROPERTIES),
        smiles=np.array(smiles, dtype=str),
        inchi=np.array(inchi, dtype=str),
        files=files,
        n_read=n_read,
        dropped=sorted(dropped),
    )
    check_targets(records.targets, records.index, file=label)
    return records


def _tar_members(path: Path) -> Iterator[tuple[str, bytes]]:
    """Stream the ``.xyz`` members of a tar archive without extracting anything to disk.

    The decompressor wraps the file directly: tarfile's own ``r|bz2`` stream reads in 10 KiB
    pieces and is ~3x slower on QM9's 133,885 small members.
    """
    last = ""
    try:
        with _decompressed(path) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
            for member in tar:
                if not member.isfile() or not member.name.endswith(".xyz"):
                    continue
                f = tar.extractfile(member)
                if f is None:
                    continue
                data = f.read()
                last = member.name
                yield member.name, data
    except FileNotFoundError:
        raise InputError("file not found", file=path) from None
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError) as e:
        where = f" after member {last}" if last else ""
        raise InputError(f"corrupt or truncated archive ({e}){where}", file=path.name) from None


def _decompressed(path: Path) -> io.BufferedIOBase:
    """The file, decompressed on the fly according to its magic bytes (bz2, gzip, xz or none)."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"BZh"):
        return bz2.open(path, "rb")
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")
    if magic.startswith(b"\xfd7zXZ"):
        return lzma.open(path, "rb")
    return open(path, "rb")


class _FolderHash:
    """sha256 over the names and contents of a folder's xyz files, in name order."""

    def __init__(self, folder: Path):
        self.folder, self.h, self.n = folder, hashlib.sha256(), 0

    def update(self, name: str, data: bytes) -> None:
        self.h.update(name.encode())
        self.h.update(data)
        self.n += 1

    def entry(self) -> dict[str, str]:
        return {"name": f"{self.folder.name}/ ({self.n} .xyz files)", "sha256": self.h.hexdigest()}


def _folder_members(folder: Path, digest: _FolderHash) -> Iterator[tuple[str, bytes]]:
    for p in sorted(folder.glob("*.xyz")):
        data = p.read_bytes()
        digest.update(p.name, data)
        yield p.name, data


__all__ = ["parse_xyz", "read_xyz_source"]
