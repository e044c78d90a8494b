"""A split taken to another framework: one file per partition, in extxyz or CSV.

Every file carries the structure ids, every target in its stored unit and the split hash:
extxyz frames name them in their info (``<target>_unit``, ``partition``, ``split_hash``); CSV
files have the id first (MatFold's layout: the structure id, then the columns kept), then
``partition``, one column per target named ``<target> [<unit>]`` and ``split_hash``. A
``manifest.json`` beside them records the split, the dataset and the files. The folder is
written atomically.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from atomcollapse.artifacts import MANIFEST, atomic_directory, header, write_json_atomic
from atomcollapse.data.export import check_format, extxyz_text, store_atoms
from atomcollapse.data.store import Store
from atomcollapse.splits.artifact import PARTITIONS, Split

KIND = "split-export"


def _extxyz(store: Store, rows: np.ndarray, info: dict[str, str], path: Path) -> None:
    path.write_text(extxyz_text(store_atoms(store, rows, info)))


def _csv(store: Store, rows: np.ndarray, info: dict[str, str], path: Path) -> None:
    import pandas as pd

    table: dict[str, object] = {"id": np.asarray(store.ids)[rows].astype(str),
                                "partition": info["partition"]}  # fmt: skip
    for t in store.target_names:
        table[target_column(store, t)] = np.asarray(store.target(t))[rows]
    table["split_hash"] = info["split_hash"]
    pd.DataFrame(table).to_csv(path, index=False, float_format="%.17g")


def target_column(store: Store, target: str) -> str:
    """The CSV column of a target: its name and stored unit, e.g. ``gap [Ha]``."""
    return f"{target} [{store.manifest['targets'][target]['unit']}]"


#: format -> (file suffix, writer of one partition)
WRITERS: dict[str, tuple[str, Callable[[Store, np.ndarray, dict[str, str], Path], None]]] = {
    "extxyz": (".extxyz", _extxyz),
    "csv": (".csv", _csv),
}
FORMATS = tuple(WRITERS)


def export_split(
    split: Split, store: Store, out: str | Path, *, fmt: str, overwrite: bool = False
) -> list[Path]:
    """Write ``<out>/<partition>.<fmt>`` for train, val, id_test and ood_test, and a manifest."""
    check_format(fmt, FORMATS)
    split.check_dataset(store)
    out = Path(out)
    suffix, write = WRITERS[fmt]
    files = {p: f"{p}{suffix}" for p in PARTITIONS}
    manifest = header(KIND, inputs={"split": str(split.path.resolve()) if split.path else None})
    manifest.update(
        format=fmt, split_hash=split.hash, method=split.method, target=split.target,
        dataset={"name": store.name, "content_hash": store.content_hash},
        units={t: store.manifest["targets"][t]["unit"] for t in store.target_names},
        files=files, counts={p: len(split.indices(p)) for p in PARTITIONS},
    )  # fmt: skip
    with atomic_directory(out, kind=KIND, overwrite=overwrite) as tmp:
        for p, name in files.items():
            write(store, split.indices(p), {"partition": p, "split_hash": split.hash}, tmp / name)
        write_json_atomic(tmp / MANIFEST, manifest)
    return [out / name for name in files.values()]
