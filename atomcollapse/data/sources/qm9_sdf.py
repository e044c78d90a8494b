"""QM9 from PyG's raw files: ``gdb9.sdf`` with ``gdb9.sdf.csv`` beside it (MoleculeNet's qm9.zip).

The SDF holds all 133,885 molecules in index order, atoms in the xyz files' order, positions
with 4 decimals. The CSV's row ``i`` belongs to SDF record ``i``: ``mol_id`` (``gdb_<index>``),
then ``A, B, C, mu, alpha, homo, lumo, gap, r2, zpve, u0, u298, h298, g298, cv`` in the raw
units of the xyz files (Hartree, not eV: PyG converts to eV only when it processes them), then
``u0_atom ... g298_atom`` (atomisation energies in kcal/mol, not read here).

Neither file carries the published SMILES or InChI, so both are derived from the SDF bond table
with RDKit (hydrogens removed, no stereo). They name the same molecule as the GDB-17 SMILES
and Corina InChI the other sources store, but not always in the same spelling.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from atomcollapse.data.sources.qm9_common import (
    QM9Records,
    check_targets,
    check_unique,
    file_entry,
    qm9_id,
)
from atomcollapse.errors import InputError

#: gdb9.sdf.csv column of each target, in QM9_XYZ_ORDER.
SDF_CSV_TARGET_COLUMNS: dict[str, str] = {
    "A": "A",
    "B": "B",
    "C": "C",
    "mu": "mu",
    "alpha": "alpha",
    "homo": "homo",
    "lumo": "lumo",
    "gap": "gap",
    "r2": "r2",
    "zpve": "zpve",
    "u0": "u0",
    "u": "u298",
    "h": "h298",
    "g": "g298",
    "cv": "cv",
}
_DIGITS = re.compile(r"(\d+)\s*$")


def sdf_csv_path(sdf: Path) -> Path:
    return sdf.with_name(sdf.name + ".csv")


def read_sdf_source(sdf: Path, drop: frozenset[int] = frozenset()) -> tuple[QM9Records, int]:
    """Read ``gdb9.sdf`` and ``gdb9.sdf.csv``; also returns how many molecules got no InChI."""
    from rdkit import Chem
    from rdkit.rdBase import DisableLog, EnableLog

    csv = sdf_csv_path(sdf)
    if not csv.is_file():
        raise InputError(
            f"{csv.name} not found beside it (PyG's raw QM9 is gdb9.sdf + gdb9.sdf.csv)",
            file=sdf.name,
        )
    index, targets = _read_csv(csv)
    suppl = Chem.SDMolSupplier(str(sdf), removeHs=False, sanitize=False)
    n = len(suppl)
    if n != len(index):
        raise InputError(f"{n} SDF records but {csv.name} has {len(index)} rows", file=sdf.name)
    keep = ~np.isin(index, list(drop)) if drop else np.ones(n, bool)
    counts, numbers, positions, smiles, inchi = [], [], [], [], []
    failed = 0
    DisableLog("rdApp.*")
    try:
        for i in range(n):
            if not keep[i]:
                continue
            mol = suppl[i]
            rec = qm9_id(int(index[i]))
            if mol is None or mol.GetNumConformers() == 0:
                raise InputError(f"cannot parse SDF record {i + 1}", file=sdf.name, record=rec)
            m = _DIGITS.search(mol.GetProp("_Name")) if mol.HasProp("_Name") else None
            if m and int(m.group(1)) != index[i]:
                raise InputError(
                    f"SDF record {i + 1} is molecule {m.group(1)} but row {i + 1} of "
                    f"{csv.name} is {index[i]}",
                    file=sdf.name,
                    record=rec,
                )
            z = [a.GetAtomicNum() for a in mol.GetAtoms()]
            if min(z) < 1:
                raise InputError("unknown element (atomic number 0)", file=sdf.name, record=rec)
            counts.append(len(z))
            numbers.extend(z)
            positions.append(mol.GetConformer().GetPositions())
            smi, inc = _text(Chem, mol)
            failed += not inc
            smiles.append(smi)
            inchi.append(inc)
    finally:
        EnableLog("rdApp.*")
    records = QM9Records(
        index=index[keep],
        counts=np.array(counts, dtype=np.int64),
        numbers=np.array(numbers, dtype=np.int16),
        positions=np.concatenate(positions) if positions else np.zeros((0, 3)),
        targets=targets[keep],
        smiles=np.array(smiles, dtype=str),
        inchi=np.array(inchi, dtype=str),
        files=[file_entry(sdf), file_entry(csv)],
        n_read=n,
        dropped=sorted(int(i) for i in index[~keep]),
    )
    return records, failed


def _read_csv(csv: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        df = pd.read_csv(csv, dtype={"mol_id": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"cannot read CSV ({str(e).splitlines()[0]})", file=csv.name) from None
    df.columns = [c.strip() for c in df.columns]
    missing = [c for c in ["mol_id", *SDF_CSV_TARGET_COLUMNS.values()] if c not in df.columns]
    if missing:
        raise InputError(f"missing columns {', '.join(missing)}", file=csv.name)
    index = np.zeros(len(df), dtype=np.int64)
    for i, mol_id in enumerate(df["mol_id"]):
        m = _DIGITS.search(str(mol_id))
        if not m:
            raise InputError(
                f"mol_id {mol_id!r} has no molecule number", file=csv.name, record=f"row {i + 1}"
            )
        index[i] = int(m.group(1))
    check_unique(index, file=csv.name)
    cols = []
    for col in SDF_CSV_TARGET_COLUMNS.values():
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
        unparsed = np.isnan(values) & df[col].notna().to_numpy()
        if unparsed.any():
            i = int(np.argmax(unparsed))
            raise InputError(
                f"cannot parse {col} value {df[col].iloc[i]!r}",
                file=csv.name,
                record=qm9_id(int(index[i])),
            )
        cols.append(values)
    targets = np.stack(cols, axis=1)
    check_targets(targets, index, file=csv.name)
    return index, targets


def _text(Chem, mol) -> tuple[str, str]:
    """RDKit SMILES and InChI of the heavy-atom graph without stereo; InChI "" on failure."""
    m = Chem.Mol(mol)
    try:
        Chem.SanitizeMol(m)
        m = Chem.RemoveHs(m)
        Chem.RemoveStereochemistry(m)
        return Chem.MolToSmiles(m), Chem.MolToInchi(m) or ""
    except Exception:  # RDKit raises several unrelated types on molecules it cannot sanitise
        try:
            return Chem.MolToSmiles(mol), ""
        except Exception:
            return "", ""
