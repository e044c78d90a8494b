"""QM9 from the ``qm9pack`` package's CSVs (``qm9pack/data/qm9_part{1,2,3}.csv``).

Each row is one molecule of the 130,831 "consistent" ones: ``Index`` (dsgdb9nsd number),
``SMILES`` (the GDB-17 SMILES, the first SMILES field of the original xyz files), ``InChi`` (the
first, Corina-geometry InChI), ``Elements`` and ``XYZ_Ang`` as list literals, and the 15
properties in raw units. ``Polarizability_bohr3`` is the isotropic polarisability rounded to
0.01 a0^3 as in the xyz files; the package's separate ``qm9_polarizability.csv`` holds the
tensor components (its trace / 3 agrees with this column to within 0.0054 a0^3) and is not read.

The list literals are parsed in bulk: all of a file's ``XYZ_Ang`` strings are joined and read
by numpy in one call, which is ~50x faster than ``ast.literal_eval`` per row.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path
from typing import NoReturn

import numpy as np
import pandas as pd

from atomcollapse.data.sources.qm9_common import (
    ELEMENT_Z,
    QM9Records,
    check_targets,
    check_unique,
    concat,
    file_entry,
    qm9_id,
)
from atomcollapse.errors import InputError, not_a_file

#: qm9pack column of each target, in QM9_XYZ_ORDER.
QM9PACK_TARGET_COLUMNS: dict[str, str] = {
    "A": "RotA_GHz",
    "B": "RotB_GHz",
    "C": "RotC_GHz",
    "mu": "Dipole_debye",
    "alpha": "Polarizability_bohr3",
    "homo": "HOMO_au",
    "lumo": "LUMO_au",
    "gap": "HOMO_LUMO_gap_au",
    "r2": "R2_bohr2",
    "zpve": "ZPVE_au",
    "u0": "InternalEnergy_0K_au",
    "u": "InternalEnergy_298K_au",
    "h": "Enthalphy_298K_au",
    "g": "GibbsFreeEnergy_298K_au",
    "cv": "Heatcapacity_Cv_cal_mol_K",
}
_TEXT = ["SMILES", "InChi", "Elements", "XYZ_Ang"]
_COLUMNS = ["Index", "N_atoms", *_TEXT, *QM9PACK_TARGET_COLUMNS.values()]
_BRACKETS = str.maketrans("", "", "[]")
_SYMBOL_JUNK = str.maketrans("", "", "[]'\" ")


def qm9pack_dir() -> Path | None:
    """The installed qm9pack's data folder, found without importing the package.

    (Importing qm9pack runs its loader, which needs ``pkg_resources``, gone from setuptools 81.)
    """
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        return None
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    return data if data.is_dir() else None


def csv_parts(source: Path) -> list[Path]:
    """The qm9pack-style CSVs named by ``source``: one file, or a folder's ``qm9_part*.csv``."""
    if source.is_file():
        return [source]
    parts = sorted(source.glob("qm9_part*.csv"))
    if not parts:
        raise InputError("no qm9_part*.csv files in this folder", file=source)
    return parts


def read_qm9pack_csv(paths: list[Path], drop: frozenset[int] = frozenset()) -> QM9Records:
    """Read qm9pack-style CSV files; molecules whose index is in ``drop`` are skipped."""
    records = concat([_read_part(p, drop) for p in paths])
    check_unique(records.index, file=", ".join(p.name for p in paths))
    return records


def _read_part(path: Path, drop: frozenset[int]) -> QM9Records:
    name = path.name
    if not path.is_file():
        raise not_a_file(path)
    try:
        header = pd.read_csv(path, nrows=0).columns
        missing = [c for c in _COLUMNS if c not in header]
        if missing:
            raise InputError(f"not a qm9pack CSV: missing columns {', '.join(missing)}", file=name)
        df = pd.read_csv(path, usecols=_COLUMNS, dtype={c: str for c in _TEXT}, engine="c")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as e:
        raise InputError(f"cannot read CSV ({str(e).splitlines()[0]})", file=name) from None
    n_read = len(df)
    index = _integers(df, "Index", name, None)
    natoms = _integers(df, "N_atoms", name, index)
    keep = ~np.isin(index, list(drop)) if drop else np.ones(n_read, bool)
    dropped = sorted(int(i) for i in index[~keep])
    if not keep.all():
        df, index, natoms = df[keep].reset_index(drop=True), index[keep], natoms[keep]
    for col in _TEXT:
        missing = df[col].isna().to_numpy()
        if missing.any():
            i = int(np.argmax(missing))
            raise InputError(f"empty {col}", file=name, record=qm9_id(int(index[i])))
    if (natoms < 1).any():
        i = int(np.argmax(natoms < 1))
        raise InputError(f"N_atoms is {natoms[i]}", file=name, record=qm9_id(int(index[i])))
    targets = np.stack([_floats(df, c, name, index) for c in QM9PACK_TARGET_COLUMNS.values()], 1)
    check_targets(targets, index, file=name)
    return QM9Records(
        index=index,
        counts=natoms,
        numbers=_elements(df["Elements"], natoms, index, name),
        positions=_coordinates(df["XYZ_Ang"], natoms, index, name),
        targets=targets,
        smiles=df["SMILES"].to_numpy(dtype=str),
        inchi=df["InChi"].to_numpy(dtype=str),
        files=[file_entry(path)],
        n_read=n_read,
        dropped=dropped,
    )


def _integers(df: pd.DataFrame, col: str, name: str, index: np.ndarray | None) -> np.ndarray:
    values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values))
    if bad.any():
        i = int(np.argmax(bad))
        rec = f"row {i + 1}" if index is None else qm9_id(int(index[i]))
        raise InputError(f"{col} {df[col].iloc[i]!r} is not an integer", file=name, record=rec)
    return values.astype(np.int64)


def _floats(df: pd.DataFrame, col: str, name: str, index: np.ndarray) -> np.ndarray:
    values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=np.float64)
    unparsed = np.isnan(values) & df[col].notna().to_numpy()
    if unparsed.any():
        i = int(np.argmax(unparsed))
        raise InputError(
            f"cannot parse {col} value {df[col].iloc[i]!r}", file=name, record=qm9_id(int(index[i]))
        )
    return values


def _elements(col: pd.Series, natoms: np.ndarray, index: np.ndarray, name: str) -> np.ndarray:
    counts = col.str.count(",").to_numpy() + 1
    bad = counts != natoms
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(
            f"N_atoms is {natoms[i]} but Elements lists {counts[i]}",
            file=name,
            record=qm9_id(int(index[i])),
        )
    symbols = ",".join(col).translate(_SYMBOL_JUNK).split(",")
    z = np.fromiter((ELEMENT_Z.get(s, 0) for s in symbols), dtype=np.int16, count=len(symbols))
    if (z == 0).any():
        atom = int(np.argmax(z == 0))
        mol = int(np.searchsorted(np.cumsum(natoms), atom, side="right"))
        raise InputError(
            f"unknown element symbol {symbols[atom]!r}", file=name, record=qm9_id(int(index[mol]))
        )
    return z


def _coordinates(col: pd.Series, natoms: np.ndarray, index: np.ndarray, name: str) -> np.ndarray:
    text = ",".join(col).translate(_BRACKETS)
    if "*^" in text:
        text = text.replace("*^", "e")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DeprecationWarning)  # numpy < 2 only warns
            xyz = np.fromstring(text, dtype=np.float64, sep=",")
    except (ValueError, DeprecationWarning):
        xyz = None
    if xyz is None or xyz.size != 3 * int(natoms.sum()) or not np.isfinite(xyz).all():
        _locate_bad_coordinates(col, natoms, index, name)
    return xyz.reshape(-1, 3)


def _locate_bad_coordinates(
    col: pd.Series, natoms: np.ndarray, index: np.ndarray, name: str
) -> NoReturn:
    """Slow path, only on bad input: find the first row whose XYZ_Ang is wrong and say why."""
    for i, text in enumerate(col):
        rec = qm9_id(int(index[i]))
        tokens = text.translate(_BRACKETS).replace("*^", "e").split(",")
        try:
            values = np.array(tokens, dtype=np.float64)
        except ValueError:
            raise InputError(f"cannot parse XYZ_Ang {text[:60]!r}", file=name, record=rec) from None
        if values.size != 3 * natoms[i]:
            raise InputError(
                f"N_atoms is {natoms[i]} but XYZ_Ang has {values.size} numbers "
                f"(expected {3 * natoms[i]})",
                file=name,
                record=rec,
            )
        if not np.isfinite(values).all():
            raise InputError("non-finite coordinate in XYZ_Ang", file=name, record=rec)
    raise InputError("cannot parse XYZ_Ang column", file=name)
