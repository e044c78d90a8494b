"""The inputs a benchmark needs: dataset stores, split artifacts, checkpoints, force-field stores.

:func:`resolve_inputs` looks at what is there; with ``create=True`` it makes what is missing
(ingests a store, builds a split into ``<out>/splits``) and checks every hash (a split against
its store, a checkpoint against the spec's ``sha256``). Without it (a dry run) nothing is
written and each missing input becomes the reason its cells are not ready.
"""

from __future__ import annotations

import glob
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atomcollapse.artifacts import MANIFEST, sha256_file
from atomcollapse.bench.spec import DatasetSpec, ModelSpec, Spec, SplitSpec, StoreRef
from atomcollapse.data.sources import read_source, write_ingested
from atomcollapse.data.store import data_root, open_store, store_path
from atomcollapse.errors import InputError

SPLITS = "splits"


@dataclass(frozen=True)
class SplitInputs:
    path: Path | None = None
    hash: str | None = None
    missing: str | None = None


@dataclass
class DatasetInputs:
    spec: DatasetSpec
    store_path: Path
    content_hash: str | None = None
    missing: str | None = None
    skipped: bool = False
    splits: dict[tuple[str, str], SplitInputs] = field(default_factory=dict)


@dataclass
class ModelInputs:
    spec: ModelSpec
    identity: dict[str, str] | None = None  # {"hash": sha256} or {"adapter": name}; None: scratch
    missing: str | None = None
    ff_path: Path | None = None
    ff_hash: str | None = None
    ff_missing: str | None = None

    @property
    def pretrained_arg(self) -> str | None:
        return self.spec.pretrained_arg


@dataclass
class Inputs:
    datasets: dict[str, DatasetInputs]
    models: dict[str, ModelInputs]
    notes: list[str] = field(default_factory=list)


def resolve_inputs(
    spec: Spec,
    out: Path,
    root: str | Path | None,
    *,
    create: bool,
    say: Callable[[str], None] = lambda _: None,
) -> Inputs:
    inputs = Inputs(datasets={}, models={})
    for d in spec.datasets:
        inputs.datasets[d.name] = _dataset(d, out, root, create, say, inputs.notes)
    for m in spec.models:
        inputs.models[m.name] = _model(m, spec, root, create, say)
    return inputs


def _sources(patterns: tuple[str, ...], root: str | Path | None) -> tuple[list[Path], str | None]:
    """Files named by the patterns (globs allowed), or the first pattern that names nothing."""
    files: list[Path] = []
    for pat in patterns:
        pat = pat.replace("{data_root}", str(data_root(root)))
        hits = (
            sorted(glob.glob(pat)) if glob.has_magic(pat) else ([pat] if Path(pat).exists() else [])
        )
        if not hits:
            return [], pat
        files += map(Path, hits)
    return files, None


def _store_location(ref: StoreRef, root: str | Path | None) -> Path:
    return ref.path if ref.path is not None else store_path(ref.name, root)


def _ingest(d: DatasetSpec, target: Path, root: str | Path | None, files: list[Path]) -> None:
    """Read the dataset's sources with its ingest source (the registry's) into ``target``."""
    root_text = str(data_root(root))
    options = {k: v.replace("{data_root}", root_text) for k, v in d.ingest_options}
    ing = read_source(d.ingest, files, data_root=root, **options)
    write_ingested(ing, d.store.name, root, path=target)


def _dataset(d: DatasetSpec, out: Path, root, create: bool, say, notes: list[str]) -> DatasetInputs:
    where = _store_location(d.store, root)
    res = DatasetInputs(d, where)
    if not (where / MANIFEST).is_file():
        files, absent = _sources(d.sources, root)
        if d.ingest == "none" or absent:
            why = f"store {where} is missing" + (f" and {absent} is not there" if absent else "")
            if d.optional:
                res.skipped = True
                notes.append(f"dataset {d.name} skipped: {why}")
                return res
            if create:
                raise InputError(f"{why}; nothing to ingest it from", file=d.name)
            res.missing = why
            return res
        if not create:
            res.missing = f"store {where} will be ingested ({d.ingest})"
            return res
        say(f"ingesting {d.name} ({d.ingest}) into {where}")
        _ingest(d, where, root, files)
    store = open_store(where)
    res.content_hash = store.content_hash
    for t in d.targets:
        store.target(t)
    for s in d.splits:
        for t in d.targets:
            res.splits[(s.name, t)] = _split(s, t, store, d, out, create, say)
    return res


def _split(s: SplitSpec, target: str, store: Any, d: DatasetSpec, out: Path, create: bool,
           say) -> SplitInputs:  # fmt: skip
    from atomcollapse.splits import SplitConfig, load_split, make_split

    committed = s.artifact_path(target)
    if committed is not None and (committed / MANIFEST).is_file():
        split = load_split(committed)
        if split.method != s.method:
            raise InputError(f"split is a {split.method} split, the spec says {s.method}",
                             file=committed)  # fmt: skip
        split.check_dataset(store)
        return SplitInputs(committed, split.hash)
    cfg = SplitConfig(method=s.method, target=target if s.per_target else None, **dict(s.options))
    path = out / SPLITS / d.name / (f"{s.name}-{target}" if s.per_target else s.name)
    why = f"artifact {committed} not found; " if committed is not None else ""
    if (path / MANIFEST).is_file():
        split = load_split(path)
        if split.manifest.get("parameters") == _jsonish(cfg.parameters()):
            split.check_dataset(store)
            return SplitInputs(path, split.hash)
        why += f"{path} was made with other settings; "
    if not create:
        return SplitInputs(missing=f"{why}split {s.name} ({target}) will be built")
    say(f"{why}building split {s.name} for {target} into {path}")
    split = make_split(store, cfg)
    split.save(path, overwrite=True)
    return SplitInputs(path, split.hash)


def _jsonish(x: Any) -> Any:
    import json

    return json.loads(json.dumps(x))


def _model(m: ModelSpec, spec: Spec, root, create: bool, say) -> ModelInputs:
    res = ModelInputs(m)
    if m.checkpoint is not None:
        if not m.checkpoint.is_file():
            res.missing = f"pretrained checkpoint {m.checkpoint} is missing"
        else:
            digest = sha256_file(m.checkpoint)
            if m.sha256 is not None and digest != m.sha256:
                raise InputError(f"checkpoint sha256 {digest[:16]} is not the spec's "
                                 f"{m.sha256[:16]}", file=m.checkpoint)  # fmt: skip
            res.identity = {"hash": digest}
    elif m.adapter is not None:
        res.identity = {"adapter": m.adapter}
    if m.ff_data is not None and any(s == "mft" for s in spec.strategies_for(m)):
        where = _store_location(m.ff_data, root)
        res.ff_path = where
        if not (where / MANIFEST).is_file():
            files, absent = _sources(m.ff_sources, root)
            if not m.ff_sources or absent:
                res.ff_missing = f"force-field store {where} is missing" + (
                    f" and {absent} is not there" if absent else "")  # fmt: skip
            elif create:
                say(f"ingesting force-field frames into {where}")
                ing = read_source("extxyz", files)
                write_ingested(ing, m.ff_data.name, root, path=where)
            else:
                res.ff_missing = f"force-field store {where} will be ingested (extxyz)"
        if (where / MANIFEST).is_file():
            res.ff_hash = open_store(where).content_hash
    if create and (res.missing or res.ff_missing):
        raise InputError(res.missing or res.ff_missing or "", file=spec.path)
    return res
