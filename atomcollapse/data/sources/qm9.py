"""QM9 (Ramakrishnan et al. 2014) from any of the three formats users bring, into one store.

* default: the ``qm9pack`` package's CSVs (130,831 molecules, offline);
* ``dsgdb9nsd.xyz.tar.bz2`` (the original, 133,885 molecules) or a folder of its ``.xyz`` files;
* PyG's raw ``gdb9.sdf`` + ``gdb9.sdf.csv`` (133,885; ``uncharacterized.txt`` beside it is used);
* ``download=True``: the original tarball and ``uncharacterized.txt`` from figshare.

All give the same store: ids ``dsgdb9nsd_<index:06d>`` in index order, atoms in the published
order, positions in Angstrom (the SDF has 4 decimals, the others 10), the 15 targets of
:data:`atomcollapse.constants.QM9_TARGETS` in raw units (Hartree, not eV), and text columns
``smiles`` / ``inchi`` (see :mod:`.qm9_csv`, :mod:`.qm9_xyz` and :mod:`.qm9_sdf` for which).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from atomcollapse.constants import (
    QM9_BENCHMARK_TARGETS,
    QM9_N_ALL,
    QM9_N_CONSISTENT,
    QM9_TARGETS,
    QM9_XYZ_ORDER,
)
from atomcollapse.data.download import fetch
from atomcollapse.data.schema import Structures
from atomcollapse.data.sources import Ingested
from atomcollapse.data.sources.qm9_common import QM9Records, file_entry, qm9_id
from atomcollapse.errors import InputError, not_a_file

TARBALL_NAME = "dsgdb9nsd.xyz.tar.bz2"
TARBALL_URL = "https://springernature.figshare.com/ndownloader/files/3195389"
# 86,144,227 bytes; figshare's md5 for it is ad1ebd51ee7f5b3a6e32e974e5d54012. Both digests as
# recorded by a public reproduction (kma300/ChBE4699_Medford, data/reference/).
TARBALL_SHA256 = "3a63848ac80691bdb8d41834b575afad345b9300d7a2db0c38adb7f6eaa8360c"
UNCHARACTERIZED_NAME = "uncharacterized.txt"
UNCHARACTERIZED_URL = "https://springernature.figshare.com/ndownloader/files/3195404"

_UNITS_NOTE = (
    "Targets are in the raw units of the published data (energies in Hartree, mu in D, alpha in "
    "a0^3, r2 in a0^2, cv in cal/mol/K, A/B/C in GHz); PyG's processed QM9 is in eV, this is not."
)
_COUNT_NOTE = (
    f"QM9 has {QM9_N_ALL:,} molecules; {QM9_N_ALL - QM9_N_CONSISTENT:,} are listed in "
    f"uncharacterized.txt (relaxed geometry inconsistent with the GDB-17 graph); qm9pack and "
    f"PyG keep only the other {QM9_N_CONSISTENT:,}; n_molecules says which this store holds."
)
_ALPHA_NOTE = (
    "isotropic polarisability as published (0.01 a0^3 resolution)",
    "isotropic polarisability as published (0.01 a0^3 resolution): qm9pack's "
    "Polarizability_bohr3; its qm9_polarizability.csv (tensor components) is not read",
)
_TEXT = {
    "qm9pack-csv": (
        "GDB-17 SMILES as published (qm9pack SMILES column)",
        "Corina-geometry InChI as published (qm9pack InChi column)",
    ),
    "qm9-xyz": (
        "GDB-17 SMILES as published (first SMILES field of each xyz file)",
        "Corina-geometry InChI as published (first InChI field of each xyz file)",
    ),
    "pyg-sdf": (
        "RDKit canonical SMILES of the SDF bond table (no H, no stereo): same molecule "
        "as the GDB-17 SMILES, not always the same spelling",
        "RDKit InChI of the SDF bond table (no stereo)",
    ),
}


def load_qm9(
    source: str | Path | None = None,
    *,
    uncharacterized: str | Path | None = None,
    download: bool = False,
    data_root: str | Path | None = None,
) -> Ingested:
    """Read QM9 from ``source`` (see the module docstring for what it may be) into an Ingested.

    ``uncharacterized``: the figshare ``uncharacterized.txt``; molecules it lists are dropped.
    ``download``: fetch the original tarball and that list into ``<data_root>/raw/qm9/`` and use
    them (giving the 130,831 consistent molecules). Bad input raises one :class:`InputError`.
    """
    if download and source is not None:
        raise InputError("pass either --source or --download, not both")
    extra_source: dict[str, Any] = {}
    if download:
        source, listed = _download(data_root)
        uncharacterized = uncharacterized or listed
        extra_source["download"] = {"url": TARBALL_URL, "sha256": TARBALL_SHA256}
    unc_path = None if uncharacterized is None else Path(uncharacterized)
    if source is None:
        extra_source["package"] = {"name": "qm9pack", "version": _version("qm9pack")}
    else:
        source = Path(source)
        if not source.exists():
            raise InputError("file not found", file=source)
        beside = source.parent / UNCHARACTERIZED_NAME
        if unc_path is None and source.name.lower().endswith(".sdf") and beside.is_file():
            unc_path = beside  # PyG's raw folder holds the list next to gdb9.sdf
    drop = frozenset() if unc_path is None else frozenset(read_uncharacterized(unc_path))
    records, fmt, failed_text = _read(source, drop)
    info: dict[str, Any] = {
        "format": fmt,
        "label": records.files[0]["name"] if len(records.files) == 1 else fmt,
        "files": records.files,
        "n_read": records.n_read,
        "n_dropped_uncharacterized": len(records.dropped),
        "n_molecules": len(records.index),
        "uncharacterized": None
        if unc_path is None
        else {**file_entry(unc_path), "n_listed": len(drop)},
        "smiles": _TEXT[fmt][0],
        "inchi": _TEXT[fmt][1],
        "alpha": _ALPHA_NOTE[fmt == "qm9pack-csv"],
        "positions": "Angstrom, 4 decimals (SDF)" if fmt == "pyg-sdf" else "Angstrom, as published",
        "note": f"{_UNITS_NOTE} {_COUNT_NOTE}",
        **extra_source,
    }
    if fmt == "pyg-sdf":
        info["n_without_rdkit_inchi"] = failed_text
    extra = {"dropped_uncharacterized": [qm9_id(i) for i in records.dropped]}
    return Ingested(
        structures=to_structures(records),
        kind="molecules",
        source=info,
        target_info=target_info(),
        extra=extra,
    )


def _read(source: Path | None, drop: frozenset[int]) -> tuple[QM9Records, str, int]:
    """Records from the right reader, the format's name, and (SDF only) molecules without InChI."""
    from atomcollapse.data.sources.qm9_csv import csv_parts, qm9pack_dir, read_qm9pack_csv
    from atomcollapse.data.sources.qm9_sdf import read_sdf_source
    from atomcollapse.data.sources.qm9_xyz import read_xyz_source

    if source is None:
        folder = qm9pack_dir()
        if folder is None:
            raise InputError(
                "the qm9pack package is not installed: `pip install qm9pack` (or the [qm9] extra), "
                f"or pass --source {TARBALL_NAME} (or gdb9.sdf), or --download"
            )
        return read_qm9pack_csv(csv_parts(folder), drop), "qm9pack-csv", 0
    fmt = _detect(source)
    if fmt == "qm9pack-csv":
        return read_qm9pack_csv(csv_parts(source), drop), fmt, 0
    if fmt == "pyg-sdf":
        records, failed = read_sdf_source(source, drop)
        return records, fmt, failed
    return read_xyz_source(source, drop), fmt, 0


def to_structures(records: QM9Records) -> Structures:
    """Sort by index and pack into the canonical schema (targets named as in QM9_TARGETS)."""
    if len(records.index) == 0:
        raise InputError("no molecules left (all were dropped as uncharacterized?)")
    if np.any(np.diff(records.index) <= 0):
        records = records.take(np.argsort(records.index, kind="stable"))
    n = len(records.index)
    ids = np.char.add("dsgdb9nsd_", np.char.zfill(records.index.astype(str), 6))
    return Structures(
        numbers=records.numbers.astype(np.int16),
        positions=records.positions.astype(np.float64),
        offsets=records.offsets,
        cell=np.zeros((n, 3, 3)),
        pbc=np.zeros((n, 3), dtype=bool),
        ids=ids,
        columns={"smiles": records.smiles, "inchi": records.inchi},
        targets={
            t: np.ascontiguousarray(records.targets[:, j]) for j, t in enumerate(QM9_XYZ_ORDER)
        },
        target_units={t: QM9_TARGETS[t].unit for t in QM9_XYZ_ORDER},
    )


def target_info() -> dict[str, dict[str, Any]]:
    return {
        t: {
            "description": s.description,
            "report_unit": s.report_unit,
            "readout": s.readout,
            "benchmark": t in QM9_BENCHMARK_TARGETS,
        }
        for t, s in QM9_TARGETS.items()
    }


def read_uncharacterized(path: str | Path) -> list[int]:
    """Indices listed in figshare's ``uncharacterized.txt``.

    The file is a free-text header, a ``=====`` rule, a ``# Index ...`` heading, another rule,
    then one row per molecule whose first column is the index, and a closing rule. Any line whose
    first field is an integer is a row; everything else is ignored.
    """
    path = Path(path)
    if not path.is_file():
        raise not_a_file(path)
    try:
        lines = path.read_text(encoding="utf-8", errors="strict").splitlines()
    except UnicodeDecodeError:
        raise InputError("not a text file", file=path.name) from None
    indices = []
    for line in lines:
        first = line.split(maxsplit=1)[0] if line.strip() else ""
        if first.isdigit():
            indices.append(int(first))
    if not indices:
        raise InputError(
            "lists no molecule indices (expected rows starting with an index)", file=path.name
        )
    if any(i < 1 or i > QM9_N_ALL for i in indices):
        bad = next(i for i in indices if i < 1 or i > QM9_N_ALL)
        raise InputError(f"index {bad} is outside 1..{QM9_N_ALL}", file=path.name)
    return indices


def _detect(source: Path) -> str:
    """Which reader a path needs, from its name (and a CSV's header)."""
    name = source.name.lower()
    if source.is_dir():
        if any(source.glob("*.xyz")):
            return "qm9-xyz"
        if any(source.glob("qm9_part*.csv")):
            return "qm9pack-csv"
        if (source / "gdb9.sdf").is_file():
            raise InputError("this is PyG's raw folder: pass --source .../gdb9.sdf", file=source)
        raise InputError("folder holds no QM9 .xyz files or qm9_part*.csv", file=source)
    if name.endswith((".tar.bz2", ".tbz2", ".tar", ".tar.gz", ".tgz", ".tar.xz")):
        return "qm9-xyz"
    if name.endswith(".xyz"):
        raise InputError("pass the folder holding the .xyz files, not one file", file=source)
    if name.endswith(".sdf"):
        return "pyg-sdf"
    if name.endswith(".csv"):
        with open(source, encoding="utf-8", errors="replace") as f:
            header = f.readline()
        if "XYZ_Ang" in header:
            return "qm9pack-csv"
        if "mol_id" in header:
            raise InputError(
                "this is PyG's gdb9.sdf.csv: pass --source gdb9.sdf (beside it)", file=source
            )
        raise InputError("CSV is neither qm9pack's (XYZ_Ang column) nor PyG's", file=source.name)
    raise InputError(
        f"unrecognised QM9 format (expected {TARBALL_NAME}, a folder of .xyz, gdb9.sdf "
        "or qm9pack CSVs)",
        file=source.name,
    )


def _download(data_root: str | Path | None) -> tuple[Path, Path]:
    from atomcollapse.data.store import data_root as root_of

    raw = root_of(data_root) / "raw" / "qm9"
    hint = f"pass --source {TARBALL_NAME} (a copy you have), or omit --download to use qm9pack"
    tarball = fetch(TARBALL_URL, raw / TARBALL_NAME, checksum=TARBALL_SHA256, offline_hint=hint)
    listed = fetch(
        UNCHARACTERIZED_URL, raw / UNCHARACTERIZED_NAME, checksum=None, offline_hint=hint
    )
    if len(read_uncharacterized(listed)) != QM9_N_ALL - QM9_N_CONSISTENT:
        raise InputError(f"expected {QM9_N_ALL - QM9_N_CONSISTENT} indices", file=listed.name)
    return tarball, listed


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
