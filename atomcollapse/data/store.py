"""The on-disk dataset store: one directory of ``.npy`` arrays plus ``manifest.json``.

Arrays are opened memory-mapped, so opening QM9 costs milliseconds and iterating it touches only
the pages it reads. The manifest records source file hashes, counts, units, the schema version
and a content hash over every array; the directory is written under a temporary name and
renamed into place, so a killed ingest never leaves a half-written store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atomcollapse.artifacts import (
    MANIFEST,
    atomic_directory,
    header,
    read_manifest,
    sha256_arrays,
    write_json_atomic,
)
from atomcollapse.constants import SYMBOLS
from atomcollapse.data.schema import KINDS, Structures
from atomcollapse.errors import InputError

SCHEMA_VERSION = 1
DATA_ROOT_ENV = "ATOMCOLLAPSE_DATA"
#: where verified content fingerprints are cached (default: $XDG_CACHE_HOME/atomcollapse)
CACHE_ENV = "ATOMCOLLAPSE_CACHE"
_CORE = ("numbers", "positions", "offsets", "cell", "pbc", "ids")
_PREFIX = {
    "columns": "col.",
    "targets": "target.",
    "atom_arrays": "atom.",
    "structure_arrays": "struct.",
}


def data_root(root: str | Path | None = None) -> Path:
    """The folder holding ``stores/`` and ``raw/``: argument, else $ATOMCOLLAPSE_DATA, else ./data."""
    return Path(root or os.environ.get(DATA_ROOT_ENV) or "data")


def store_path(name_or_path: str | Path, root: str | Path | None = None) -> Path:
    """A store given by path (a directory with a manifest) or by name under ``<root>/stores``."""
    p = Path(name_or_path)
    if (p / MANIFEST).is_file():
        return p
    return data_root(root) / "stores" / str(name_or_path)


def check_store_name(name: str) -> str:
    """A store name is a plain folder name under ``<root>/stores``: not empty, not ``.``/``..``,
    no path separator, no leading dot (hidden names are the store layer's temporary files)."""
    bad = (
        not name
        or name != name.strip()
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\0" in name
        or name.startswith(".")
    )
    if bad:
        raise InputError(
            f"invalid store name {name!r}: use a plain name (letters, digits, -, _), without "
            "path separators, not empty, not '.' or '..'",
            file="--name",
        )
    return name


def new_store_path(name: str, root: str | Path | None = None) -> Path:
    """Where a new store called ``name`` goes: ``<root>/stores/<name>`` (the name checked)."""
    return data_root(root) / "stores" / check_store_name(name)


def _arrays_of(s: Structures) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {
        "numbers": np.asarray(s.numbers, dtype=np.int16),
        "positions": np.asarray(s.positions, dtype=np.float64),
        "offsets": np.asarray(s.offsets, dtype=np.int64),
        "cell": np.asarray(s.cell, dtype=np.float64),
        "pbc": np.asarray(s.pbc, dtype=bool),
        "ids": np.asarray(s.ids, dtype=str),
    }
    for group, prefix in _PREFIX.items():
        for name, values in getattr(s, group).items():
            arr = np.asarray(values)
            if group == "columns":
                arr = arr.astype(str)
            elif arr.dtype.kind != "b":
                arr = arr.astype(np.float64)
            arrays[prefix + name] = arr
    return arrays


def write_store(
    structures: Structures,
    target: str | Path,
    *,
    name: str,
    kind: str,
    source: dict[str, Any],
    target_info: dict[str, dict[str, Any]] | None = None,
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Validate ``structures`` and write them as a store at ``target`` (atomically)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    src = str(source.get("label") or source.get("format") or name)
    structures.validate(src)
    arrays = _arrays_of(structures)
    n_atoms = np.diff(structures.offsets)
    targets = {}
    for t, values in structures.targets.items():
        v = np.asarray(values, dtype=np.float64)
        targets[t] = {
            "unit": structures.target_units[t],
            **(target_info or {}).get(t, {}),
            "count": int(v.size),
            "mean": float(v.mean()),
            "std": float(v.std()),
            "min": float(v.min()),
            "max": float(v.max()),
        }
    manifest = {
        **header("dataset", schema_version=SCHEMA_VERSION, inputs=store_inputs(source)),
        "name": name,
        "kind": kind,
        "n_structures": len(structures),
        "n_atoms": structures.n_atoms,
        "atoms_per_structure": {
            "min": int(n_atoms.min()),
            "max": int(n_atoms.max()),
            "mean": float(n_atoms.mean()),
        },
        "elements": structures.elements(),
        "columns": sorted(structures.columns),
        "targets": targets,
        "atom_arrays": {
            k: {"unit": structures.array_units.get(k, "")} for k in structures.atom_arrays
        },
        "structure_arrays": {
            k: {"unit": structures.array_units.get(k, "")} for k in structures.structure_arrays
        },
        "source": source,
        "extra": extra or {},
        "content_hash": sha256_arrays(arrays),
        "arrays": {
            k: {"dtype": a.dtype.str, "shape": list(a.shape), "sha256": sha256_arrays({k: a})}
            for k, a in arrays.items()
        },
    }
    with atomic_directory(target, kind="dataset", overwrite=overwrite) as tmp:
        for key, arr in arrays.items():
            np.save(tmp / f"{key}.npy", arr, allow_pickle=False)
        write_json_atomic(tmp / MANIFEST, manifest)
    return Path(target)


def store_inputs(source: dict[str, Any]) -> dict[str, Any]:
    """What a store was made from, read off its ``source`` record: the source files with their
    hashes, the parent store (subset, teacher, xTB labels) and the pretrained checkpoint."""
    inputs: dict[str, Any] = {}
    if source.get("files"):
        inputs["files"] = source["files"]
    if source.get("parent_hash"):
        inputs["store"] = {"name": source.get("parent"), "content_hash": source["parent_hash"]}
    elif source.get("store_content_hash"):
        inputs["store"] = {
            "name": source.get("store"),
            "content_hash": source["store_content_hash"],
        }
    if source.get("pretrained_hash"):
        inputs["pretrained"] = {"path": source.get("pretrained"), "hash": source["pretrained_hash"]}
    return inputs


@dataclass
class StructureView:
    """One structure read from a store (arrays are views into the memory map)."""

    id: str
    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray

    def to_ase(self):
        from ase import Atoms

        return Atoms(numbers=self.numbers, positions=self.positions, cell=self.cell, pbc=self.pbc)


class Store:
    """A read-only, memory-mapped dataset store."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(
                "dataset store not found (run `atomcollapse ingest ...` first)", file=self.path
            )
        self.manifest = read_manifest(self.path)
        if self.manifest.get("artifact") != "dataset":
            raise InputError("not a dataset store", file=self.path)
        if self.manifest.get("schema_version") != SCHEMA_VERSION:
            raise InputError(
                f"store schema version {self.manifest.get('schema_version')} is not {SCHEMA_VERSION}; re-ingest",
                file=self.path,
            )
        self._cache: dict[str, np.ndarray] = {}
        self.check_files()

    def expected_arrays(self) -> dict[str, tuple[int, ...] | None]:
        """Every array file the manifest implies, with its leading dimension(s) (None: any)."""
        m = self.manifest
        n, atoms = int(m["n_structures"]), int(m["n_atoms"])
        want: dict[str, tuple[int, ...] | None] = {
            "numbers": (atoms,), "positions": (atoms, 3), "offsets": (n + 1,),
            "cell": (n, 3, 3), "pbc": (n, 3), "ids": (n,),
        }  # fmt: skip
        for c in m.get("columns", []):
            want[f"col.{c}"] = (n,)
        for t in m.get("targets", {}):
            want[f"target.{t}"] = (n,)
        for k in m.get("atom_arrays", {}):
            want[f"atom.{k}"] = (atoms,)
        for k in m.get("structure_arrays", {}):
            want[f"struct.{k}"] = (n,)
        return want

    def check_files(self) -> None:
        """Cheap, every open: each array file exists, has the shape the manifest implies (and
        records), and the size its header promises (a truncated file fails here)."""
        recorded = self.manifest.get("arrays", {})
        try:
            want = self.expected_arrays()
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(
                f"corrupt manifest ({e!r} missing or invalid)", file=self.path / MANIFEST
            ) from None
        for key, lead in want.items():
            f = self.path / f"{key}.npy"
            shape, dtype = _npy_header(f)
            rec = recorded.get(key)
            if rec is not None and (
                list(shape) != rec.get("shape") or dtype.str != rec.get("dtype")
            ):
                raise InputError(
                    f"holds {dtype.str} {list(shape)}, the manifest records {rec.get('dtype')} "
                    f"{rec.get('shape')}",
                    file=f,
                )
            if lead is not None and tuple(shape[: len(lead)]) != lead:
                raise InputError(
                    f"has shape {list(shape)}, the manifest implies {list(lead)} first", file=f
                )

    def fingerprint(self) -> str:
        """Names, sizes, modification and change times of the array files: what the verified
        content cache is keyed by (a rewrite changes the change time, even with mtime reset)."""
        h = hashlib.sha256(self.content_hash.encode())
        for f in sorted(self.path.glob("*.npy")):
            st = f.stat()
            h.update(
                f"{f.name} {st.st_size} {st.st_mtime_ns} {st.st_ctime_ns} {st.st_ino}".encode()
            )
        return h.hexdigest()

    def verify_content(self, *, cached: bool = True) -> bool:
        """Re-hash the arrays against the manifest (InputError on a mismatch). With ``cached``, a
        store whose files are unchanged since its last successful check is not re-hashed; returns
        whether it was."""
        key, fp = str(self.path.resolve()), self.fingerprint()
        cache = _read_cache()
        if cached and cache.get(key) == fp:
            return False
        self.verify()
        cache[key] = fp
        _write_cache(cache)
        return True

    def _load(self, key: str) -> np.ndarray:
        if key not in self._cache:
            f = self.path / f"{key}.npy"
            if not f.is_file():
                raise InputError(f"store is missing {key}.npy", file=self.path)
            try:
                self._cache[key] = np.load(f, mmap_mode="r", allow_pickle=False)
            except ValueError as e:
                raise InputError(f"corrupt array {key}.npy ({e})", file=self.path) from None
        return self._cache[key]

    name = property(lambda self: self.manifest["name"])
    kind = property(lambda self: self.manifest["kind"])
    content_hash = property(lambda self: self.manifest["content_hash"])
    numbers = property(lambda self: self._load("numbers"))
    positions = property(lambda self: self._load("positions"))
    offsets = property(lambda self: self._load("offsets"))
    cell = property(lambda self: self._load("cell"))
    pbc = property(lambda self: self._load("pbc"))
    ids = property(lambda self: self._load("ids"))

    def __len__(self) -> int:
        return int(self.manifest["n_structures"])

    @property
    def target_names(self) -> list[str]:
        return list(self.manifest["targets"])

    @property
    def column_names(self) -> list[str]:
        return list(self.manifest["columns"])

    def has_column(self, name: str) -> bool:
        return name in self.manifest["columns"]

    def target(self, name: str) -> np.ndarray:
        """Target values in their stored unit (see :meth:`target_unit`)."""
        if name not in self.manifest["targets"]:
            raise InputError(
                f"dataset has no target {name!r}; it has: {', '.join(self.target_names) or 'none'}",
                file=self.path,
            )
        return self._load(f"target.{name}")

    def target_unit(self, name: str) -> str:
        self.target(name)
        return self.manifest["targets"][name]["unit"]

    def column(self, name: str) -> np.ndarray:
        if name not in self.manifest["columns"]:
            raise InputError(f"dataset has no column {name!r}", file=self.path)
        return self._load(f"col.{name}")

    def atom_array(self, name: str) -> np.ndarray:
        if name not in self.manifest["atom_arrays"]:
            raise InputError(f"dataset has no per-atom array {name!r}", file=self.path)
        return self._load(f"atom.{name}")

    def structure_array(self, name: str) -> np.ndarray:
        if name not in self.manifest["structure_arrays"]:
            raise InputError(f"dataset has no per-structure array {name!r}", file=self.path)
        return self._load(f"struct.{name}")

    @cached_property
    def n_atoms(self) -> np.ndarray:
        """Atoms per structure."""
        return np.diff(np.asarray(self.offsets))

    def structure(self, i: int) -> StructureView:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return StructureView(
            id=str(self.ids[i]),
            numbers=self.numbers[a:b],
            positions=self.positions[a:b],
            cell=self.cell[i],
            pbc=self.pbc[i],
        )

    def __iter__(self) -> Iterator[StructureView]:
        for i in range(len(self)):
            yield self.structure(i)

    def table(self) -> pd.DataFrame:
        """Per-structure table: id, text columns and targets (stored units)."""
        data: dict[str, Any] = {"id": np.asarray(self.ids)}
        for c in self.column_names:
            data[c] = np.asarray(self.column(c))
        for t in self.target_names:
            data[t] = np.asarray(self.target(t))
        return pd.DataFrame(data)

    def to_structures(self) -> Structures:
        """Load everything into memory as :class:`Structures` (for re-writing or subsetting)."""
        m = self.manifest
        return Structures(
            numbers=np.asarray(self.numbers),
            positions=np.asarray(self.positions),
            offsets=np.asarray(self.offsets),
            cell=np.asarray(self.cell),
            pbc=np.asarray(self.pbc),
            ids=np.asarray(self.ids),
            columns={c: np.asarray(self.column(c)) for c in self.column_names},
            targets={t: np.asarray(self.target(t)) for t in self.target_names},
            target_units={t: m["targets"][t]["unit"] for t in self.target_names},
            atom_arrays={k: np.asarray(self.atom_array(k)) for k in m["atom_arrays"]},
            structure_arrays={k: np.asarray(self.structure_array(k)) for k in m["structure_arrays"]},
            array_units={**{k: v["unit"] for k, v in m["atom_arrays"].items()},
                         **{k: v["unit"] for k, v in m["structure_arrays"].items()}},
        )  # fmt: skip

    def verify(self) -> None:
        """Recompute the content hash over every array; InputError when the files were altered
        (naming the changed array where the manifest records per-array hashes)."""
        keys = sorted(p.name[: -len(".npy")] for p in self.path.glob("*.npy"))
        arrays = {}
        for k in keys:
            try:
                arrays[k] = np.load(self.path / f"{k}.npy", mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError) as e:
                raise InputError(f"unreadable array ({e})", file=self.path / f"{k}.npy") from None
        if sha256_arrays(arrays) == self.content_hash:
            return
        recorded = self.manifest.get("arrays", {})
        extra = sorted(set(keys) - set(self.expected_arrays()))
        changed = [k for k in keys if k in recorded
                   and sha256_arrays({k: arrays[k]}) != recorded[k].get("sha256")]  # fmt: skip
        what = (f"{', '.join(f'{k}.npy' for k in changed)} changed" if changed else
                f"unexpected {', '.join(f'{k}.npy' for k in extra)}" if extra else
                "an array's values changed")  # fmt: skip
        raise InputError(
            f"content hash mismatch: {what} since the store was written; re-ingest it",
            file=self.path,
        )

    def elements(self) -> list[str]:
        return list(self.manifest["elements"])


def _npy_header(f: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a ``.npy`` header, checking the file holds every byte they imply."""
    if not f.is_file():
        raise InputError("array file missing from the store; re-ingest it", file=f)
    try:
        with open(f, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)  # fmt: skip
            shape, _, dtype = read(fh)
            start = fh.tell()
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"not a readable .npy array ({e})", file=f) from None
    if dtype.hasobject:
        raise InputError("holds Python objects, not numbers or text; refusing it", file=f)
    size = start + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    actual = f.stat().st_size
    if actual != size:
        raise InputError(
            f"truncated or padded: {actual:,} bytes, its header implies {size:,}", file=f
        )
    return tuple(shape), dtype


def _cache_file() -> Path:
    base = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
        "atomcollapse",
    )
    return Path(base) / "verified-stores.json"


def _read_cache() -> dict[str, str]:
    try:
        data = json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(cache: dict[str, str]) -> None:
    """Best effort: a cache that cannot be written only means the next check re-hashes."""
    with contextlib.suppress(OSError):
        write_json_atomic(_cache_file(), cache)


def subset_structures(s: Structures, rows: np.ndarray) -> Structures:
    """The structures at ``rows`` (in that order), with every per-atom and per-structure array."""
    rows = np.asarray(rows, dtype=np.int64)
    counts = np.diff(s.offsets)[rows]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    atoms = (
        np.concatenate([np.arange(s.offsets[r], s.offsets[r + 1]) for r in rows])
        if len(rows)
        else np.zeros(0, np.int64)
    )
    return Structures(
        numbers=s.numbers[atoms], positions=s.positions[atoms], offsets=offsets,
        cell=s.cell[rows], pbc=s.pbc[rows], ids=s.ids[rows],
        columns={k: v[rows] for k, v in s.columns.items()},
        targets={k: v[rows] for k, v in s.targets.items()},
        target_units=dict(s.target_units),
        atom_arrays={k: v[atoms] for k, v in s.atom_arrays.items()},
        structure_arrays={k: v[rows] for k, v in s.structure_arrays.items()},
        array_units=dict(s.array_units),
    )  # fmt: skip


def write_subset(
    store: Store, n: int, target: str | Path, *, name: str, seed: int = 0, overwrite: bool = False
) -> Path:
    """Write a seeded random subset of ``n`` structures of ``store`` (kept in store order)."""
    if not 0 < n <= len(store):
        raise InputError(f"subset size {n} must be between 1 and {len(store)}", file=store.path)
    rows = np.sort(np.random.default_rng(seed).choice(len(store), size=n, replace=False))
    m = store.manifest
    info = {t: {k: v for k, v in d.items() if k not in ("count", "mean", "std", "min", "max", "unit")}
            for t, d in m["targets"].items()}  # fmt: skip
    source = {"format": "subset", "parent": m["name"], "parent_hash": m["content_hash"],
              "n": n, "seed": seed, "parent_source": m["source"]}  # fmt: skip
    return write_store(
        subset_structures(store.to_structures(), rows), target, name=name, kind=m["kind"],
        source=source, target_info=info, extra=m.get("extra", {}), overwrite=overwrite,
    )  # fmt: skip


def open_store(name_or_path: str | Path, root: str | Path | None = None) -> Store:
    return Store(store_path(name_or_path, root))


def list_stores(root: str | Path | None = None) -> list[Store | InputError]:
    """Every store under ``<root>/stores`` (hidden temporaries skipped); one that cannot be
    opened is its InputError, so that one broken store does not hide the others."""
    base = data_root(root) / "stores"
    if not base.is_dir():
        return []
    found: list[Store | InputError] = []
    for p in sorted(base.iterdir()):
        if p.name.startswith(".") or not (p / MANIFEST).is_file():
            continue
        try:
            found.append(Store(p))
        except InputError as e:
            found.append(e)
    return found


__all__ = [
    "SYMBOLS",
    "Store",
    "data_root",
    "list_stores",
    "open_store",
    "store_path",
    "write_store",
]
