"""Readers that turn the formats users bring into :class:`atomcollapse.data.schema.Structures`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atomcollapse.data.schema import Structures


@dataclass
class Ingested:
    """What a source reader returns: structures plus what the manifest should record.

    ``source`` holds the format, the files read (base names and sha256, never absolute paths) and
    reader options; ``target_info`` adds per-target metadata (description, report unit, readout);
    ``extra`` holds anything else worth recording (e.g. MatBench folds, dropped molecules).
    """

    structures: Structures
    kind: str
    source: dict[str, Any]
    target_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def write_ingested(
    ing: Ingested, name: str, data_root: str | Path | None = None, *, overwrite: bool = False
) -> Path:
    """Write what a reader returned as the store ``name`` under the data root (atomically)."""
    from atomcollapse.data.store import new_store_path, write_store

    return write_store(
        ing.structures, new_store_path(name, data_root), name=name, kind=ing.kind,
        source=ing.source, target_info=ing.target_info, extra=ing.extra, overwrite=overwrite,
    )  # fmt: skip
