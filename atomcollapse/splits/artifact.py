"""The split artifact: ``manifest.json`` plus ``partition.npz``, written atomically.

``partition.npz`` holds ``partition``: one uint8 code per structure of the dataset (0 train,
1 val, 2 id_test, 3 ood_test, 255 in no partition), compressed; optional per-structure label
arrays (e.g. k-means clusters) sit beside it. The split hash is the content hash of the codes
(independent of the file's bytes), so runs can record which split they used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atomcollapse.artifacts import (
    MANIFEST,
    atomic_directory,
    read_manifest,
    sha256_arrays,
    write_json_atomic,
)
from atomcollapse.errors import InputError

SCHEMA_VERSION = 1
PARTITIONS: tuple[str, ...] = ("train", "val", "id_test", "ood_test")
TRAIN, VAL, ID_TEST, OOD_TEST = range(4)
EXCLUDED = 255
CODES_FILE = "partition.npz"


def split_hash(codes: np.ndarray) -> str:
    """Content hash of the partition codes: the "split hash" a run records."""
    return sha256_arrays({"partition": np.asarray(codes, dtype=np.uint8)})


def partition_counts(codes: np.ndarray) -> dict[str, int]:
    """Structures per partition, plus ``excluded`` (in no partition)."""
    c = np.bincount(np.asarray(codes, dtype=np.uint8), minlength=256)
    return {**{p: int(c[i]) for i, p in enumerate(PARTITIONS)}, "excluded": int(c[EXCLUDED])}


def partition_code(name: str) -> int:
    if name not in PARTITIONS:
        raise InputError(f"unknown partition {name!r}; partitions: {', '.join(PARTITIONS)}")
    return PARTITIONS.index(name)


@dataclass
class Split:
    """Four partitions of one dataset, as indices into its store, plus the manifest."""

    codes: np.ndarray  # (n_structures,) uint8
    manifest: dict[str, Any]
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None

    @property
    def hash(self) -> str:
        return split_hash(self.codes)

    @property
    def method(self) -> str:
        return str(self.manifest["method"])

    @property
    def target(self) -> str | None:
        """The target the split is about (property-tail), else None."""
        return self.manifest.get("target")

    @property
    def dataset_hash(self) -> str:
        return str(self.manifest["dataset"]["content_hash"])

    def indices(self, partition: str) -> np.ndarray:
        """Ascending store indices of a partition: train, val, id_test or ood_test."""
        return np.flatnonzero(self.codes == partition_code(partition))

    def counts(self) -> dict[str, int]:
        return partition_counts(self.codes)

    def check_dataset(self, store: Any) -> None:
        """Raise InputError unless ``store`` is the dataset this split was made for."""
        ds = self.manifest["dataset"]
        if store.content_hash != ds["content_hash"] or len(store) != len(self.codes):
            where = self.path if self.path is not None else "split"
            raise InputError(
                f"split was made for dataset {ds['name']!r} (content hash "
                f"{ds['content_hash'][:12]}, {ds['n_structures']:,} structures), not for "
                f"{store.name!r} (content hash {store.content_hash[:12]}, "
                f"{len(store):,} structures)",
                file=where,
            )

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the artifact directory atomically; the manifest gets the split hash."""
        self.manifest["split_hash"] = self.hash
        with atomic_directory(path, kind="split", overwrite=overwrite) as tmp:
            arrays: dict[str, Any] = {"partition": np.asarray(self.codes, np.uint8), **self.labels}
            np.savez_compressed(tmp / CODES_FILE, **arrays)
            write_json_atomic(tmp / MANIFEST, self.manifest)
        self.path = Path(path)
        return self.path


def load_split(path: str | Path) -> Split:
    """Read a split artifact; raise InputError when it is not one or its codes were altered."""
    path = Path(path)
    if not path.exists():
        raise InputError("split not found", file=path)
    manifest = read_manifest(path)
    if manifest.get("artifact") != "split":
        raise InputError("not a split artifact", file=path)
    if manifest.get("schema_version") != SCHEMA_VERSION:
        raise InputError(
            f"split schema version {manifest.get('schema_version')} is not {SCHEMA_VERSION}",
            file=path,
        )
    f = path / CODES_FILE
    if not f.is_file():
        raise InputError(f"split is missing {CODES_FILE}", file=path)
    try:
        with np.load(f, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError) as e:
        raise InputError(f"corrupt {CODES_FILE} ({e})", file=path) from None
    codes = arrays.pop("partition", None)
    n = manifest["dataset"]["n_structures"]
    if codes is None or codes.dtype != np.uint8 or codes.shape != (n,):
        raise InputError(f"{CODES_FILE} has no uint8 'partition' array of length {n}", file=path)
    if split_hash(codes) != manifest.get("split_hash"):
        raise InputError("split hash mismatch: the partition file was modified", file=path)
    return Split(codes=codes, manifest=manifest, labels=arrays, path=path)


def report_unit(store: Any, target: str) -> str:
    """The unit reports use for a target (the stored unit if the report unit is unknown)."""
    from atomcollapse.units import convert

    info = store.manifest["targets"][target]
    unit = info["unit"]
    report = info.get("report_unit", unit)
    try:
        convert(1.0, unit, report)
    except ValueError:
        return unit
    return report


def target_stats(store: Any, codes: np.ndarray, targets: list[str]) -> dict[str, Any]:
    """Per partition and target: count, mean, std, min, max in the stored and the report unit."""
    from atomcollapse.units import convert

    out: dict[str, Any] = {}
    for t in targets:
        unit = store.manifest["targets"][t]["unit"]
        report = report_unit(store, t)
        values = np.asarray(store.target(t), dtype=np.float64)
        per: dict[str, Any] = {"unit": unit, "report_unit": report}
        for code, name in enumerate(PARTITIONS):
            v = values[codes == code]
            if not v.size:
                per[name] = {"count": 0}
                continue
            stats = {"mean": v.mean(), "std": v.std(), "min": v.min(), "max": v.max()}
            per[name] = {
                "count": int(v.size),
                **{k: float(x) for k, x in stats.items()},
                **{f"{k}_report": float(convert(float(x), unit, report)) for k, x in stats.items()},
            }
        out[t] = per
    return out
