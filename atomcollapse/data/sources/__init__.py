"""Readers that turn the formats users bring into :class:`atomcollapse.data.schema.Structures`.

:data:`SOURCES` is the one table of them (name -> lazily imported reader and the options it
takes) that the ``ingest`` command, the Python API and benchmark specs all go through.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from atomcollapse.data.schema import Structures
from atomcollapse.errors import InputError


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
    ing: Ingested,
    name: str,
    data_root: str | Path | None = None,
    *,
    overwrite: bool = False,
    path: str | Path | None = None,
) -> Path:
    """Write what a reader returned as the store ``name`` under the data root, or at ``path``
    when given (a store named by its path), atomically."""
    from atomcollapse.data.store import new_store_path, write_store

    where = new_store_path(name, data_root) if path is None else Path(path)
    return write_store(
        ing.structures, where, name=name, kind=ing.kind,
        source=ing.source, target_info=ing.target_info, extra=ing.extra, overwrite=overwrite,
    )  # fmt: skip


@dataclass(frozen=True)
class Source:
    """One ingest source: its reader (imported on first use) and what it takes.

    ``files``: ``"optional-one"`` passes at most one file as the reader's ``source`` (None: its
    default), ``"some"`` passes one or more as its ``files``. ``options`` are the reader's other
    keyword arguments a user may give, ``required`` those that must be given; ``check`` (a
    ``module:function`` called with the options) refuses bad options before any file is read.
    """

    name: str
    summary: str
    reader: str
    files: Literal["optional-one", "some"]
    options: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    uses_data_root: bool = False
    check: str | None = None

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Raise :class:`InputError` for options this source does not take, or lacks, or refuses."""
        given = {k: v for k, v in options.items() if v is not None}
        for key in given:
            if key not in self.options:
                takes = ", ".join(self.options) or "no options"
                raise InputError(
                    f"ingest {self.name!r} takes no option {key!r} (it takes: {takes})"
                )
        for key in self.required:
            if key not in given:
                raise InputError(f"ingest {self.name!r} needs the option {key!r}")
        if self.check is not None:
            _resolve(self.check)(**given)

    def read(
        self,
        files: Sequence[str | Path] = (),
        *,
        data_root: str | Path | None = None,
        **options: Any,
    ) -> Ingested:
        """Read ``files`` with ``options`` (checked first) into an :class:`Ingested`."""
        self.check_options(options)
        paths = [Path(f) for f in files]
        kwargs = {k: v for k, v in options.items() if v is not None}
        if self.files == "some":
            if not paths:
                raise InputError(f"ingest {self.name!r} needs at least one file")
            kwargs["files"] = paths
        else:
            if len(paths) > 1:
                raise InputError(f"ingest {self.name!r} takes one source, not {len(paths)}")
            kwargs["source"] = paths[0] if paths else None
        if self.uses_data_root:
            kwargs["data_root"] = data_root
        return _resolve(self.reader)(**kwargs)


def _resolve(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


#: every format ``ingest`` (CLI, API, bench specs) can read, by name; readers import on first use
SOURCES: dict[str, Source] = {
    "qm9": Source(
        name="qm9", summary="QM9 (qm9pack CSVs, the original tarball/xyz folder, PyG's SDF)",
        reader="atomcollapse.data.sources.qm9:load_qm9", files="optional-one",
        options=("uncharacterized", "download"), uses_data_root=True,
    ),
    "matbench": Source(
        name="matbench", summary="a MatBench structure task, official or of your own",
        reader="atomcollapse.data.sources.matbench:load_matbench", files="optional-one",
        options=("task", "target", "unit", "folds", "download"), required=("task",),
        uses_data_root=True, check="atomcollapse.data.sources.matbench:check_options",
    ),
    "extxyz": Source(
        name="extxyz", summary="force-field frames in extxyz (or any ASE-readable file)",
        reader="atomcollapse.data.sources.extxyz:load_extxyz", files="some",
        options=("energy_key", "forces_key"),
    ),
}  # fmt: skip


def source(name: str) -> Source:
    """The ingest source called ``name`` (one clear :class:`InputError` if there is none)."""
    if name not in SOURCES:
        raise InputError(f"unknown ingest source {name!r}; known: {', '.join(SOURCES)}")
    return SOURCES[name]


def read_source(
    name: str,
    files: Sequence[str | Path] = (),
    *,
    data_root: str | Path | None = None,
    **options: Any,
) -> Ingested:
    """Read ``files`` with the source ``name`` (see :data:`SOURCES` for what each takes)."""
    return source(name).read(files, data_root=data_root, **options)
