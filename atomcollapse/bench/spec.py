"""A benchmark spec: a TOML file read into frozen dataclasses and validated once, here.

Top level: ``name``, ``description``, ``strategies``, ``seeds``; tables:

- ``[[datasets]]``: ``store``, ``ingest`` (a source of :data:`atomcollapse.data.sources.SOURCES`:
  qm9 | extxyz | matbench, or none: how to make a missing store), ``sources``, the source's
  options (``task``, ``target``, ``unit``, ``folds`` for MatBench: a task of your own names its
  ``unit``), ``optional`` (skip when it cannot be made),
  ``targets``, and ``[[datasets.splits]]`` with ``name``, ``method``, ``artifact`` (a committed
  split; ``{target}`` is substituted) and ``options`` (SplitConfig fields, to build it);
- ``[[models]]``: ``name``, ``checkpoint`` or ``adapter``, ``sha256``, ``ff_data`` (force-field
  store for mft), ``ff_sources`` (extxyz files to ingest it from), ``strategies`` (a subset);
- ``[train]``: an ``atomcollapse train --config`` table (see :mod:`atomcollapse.training.config`),
  checked against the training configuration; ``[train.by_target.<target>]`` is merged over it
  for one target (e.g. more epochs where a target needs them to converge), then
  ``[train.by_strategy.<strategy>]`` for one strategy;
- ``[strategies_by_target]``: ``<target> = [...]``, the subset of the spec's strategies that one
  target runs (e.g. extra arms on one target only, where the budget allows no more);
- ``[run]`` (``jobs``, ``gpus_per_cell``), ``[report]`` (``enabled``, ``plots``), ``[collapse]``
  (the ``collapse`` command's settings and the ``seeds`` whose runs it compares), ``[slurm]``.

Relative paths are relative to the spec file's folder; ``{data_root}`` in a source stands for
the data root. A store given with a ``/`` is a path, otherwise a name under
``<data-root>/stores``.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atomcollapse.analysis.measures import TSNE_BACKENDS
from atomcollapse.bench.tables import TableReader
from atomcollapse.data.sources import SOURCES
from atomcollapse.errors import InputError, not_a_file
from atomcollapse.splits.config import METHODS, SplitConfig
from atomcollapse.training.config import from_dict
from atomcollapse.training.strategies import strategy_class, strategy_names
from atomcollapse.training.tracking import check_available

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

INGEST_FORMATS = (*SOURCES, "none")
#: ``[[datasets]]`` keys that are options of the ingest source (checked against its table)
INGEST_OPTIONS = ("task", "target", "unit", "folds")


def needs_pretrained(strategy: str) -> bool:
    return strategy_class(strategy).needs_pretrained


def needs_ff(strategy: str) -> bool:
    return strategy_class(strategy).needs_ff


#: ``[slurm]`` settings and their types (``additional``: extra sbatch options)
SLURM_KEYS: dict[str, type | tuple[type, ...]] = {
    "cluster": str, "partition": str, "account": str, "qos": str, "timeout_min": int,
    "cpus_per_task": int, "gpus_per_node": int, "mem_gb": (int, float), "array_parallelism": int,
    "additional": dict,
}  # fmt: skip


@dataclass(frozen=True)
class StoreRef:
    """A dataset store: a name under the data root, or a path (resolved against the spec)."""

    name: str
    path: Path | None = None

    @property
    def arg(self) -> str:
        return str(self.path) if self.path is not None else self.name


@dataclass(frozen=True)
class SplitSpec:
    """One split of a dataset: a committed artifact (``{target}`` substituted) or a recipe."""

    name: str
    method: str
    artifact: str | None = None  # absolute path template, or None to build into the output
    options: tuple[tuple[str, Any], ...] = ()

    @property
    def per_target(self) -> bool:
        return self.method == "property-tail" or "{target}" in (self.artifact or "")

    def artifact_path(self, target: str) -> Path | None:
        return None if self.artifact is None else Path(self.artifact.replace("{target}", target))


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset store, how to make it when it is missing, its targets and splits."""

    name: str
    store: StoreRef
    ingest: str
    sources: tuple[str, ...]
    #: options of the ingest source, e.g. (("task", "matbench_mp_gap"),); paths absolute
    ingest_options: tuple[tuple[str, str], ...]
    optional: bool
    targets: tuple[str, ...]
    splits: tuple[SplitSpec, ...]


@dataclass(frozen=True)
class ModelSpec:
    """A pretrained model: a checkpoint file or a named adapter, and its force-field data."""

    name: str
    checkpoint: Path | None = None
    adapter: str | None = None
    sha256: str | None = None
    ff_data: StoreRef | None = None
    ff_sources: tuple[str, ...] = ()
    strategies: tuple[str, ...] | None = None

    @property
    def pretrained_arg(self) -> str | None:
        return str(self.checkpoint) if self.checkpoint is not None else self.adapter


@dataclass(frozen=True)
class RunSpec:
    """How cells run: parallel jobs, GPUs per cell (torchrun when more than one)."""

    jobs: int = 1
    gpus_per_cell: int = 1


@dataclass(frozen=True)
class CollapseSpec:
    """The collapse analysis: which runs (seeds), and the ``collapse`` command's settings."""

    enabled: bool = False
    seeds: tuple[int, ...] | None = None
    partition: str = "ood_test"
    layer: int = -1
    max_per_class: int = 2000
    tsne: bool = True
    tsne_max_iter: int = 1000
    tsne_backend: str = "auto"
    projections: int = 128
    edges: str = "auto"


@dataclass(frozen=True)
class Spec:
    """A validated benchmark spec."""

    path: Path
    name: str
    description: str
    datasets: tuple[DatasetSpec, ...]
    models: tuple[ModelSpec, ...]
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]
    train: dict[str, Any] = field(hash=False)
    by_strategy: dict[str, dict[str, Any]] = field(hash=False)
    by_target: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False)
    #: target -> the strategies it runs, where ``[strategies_by_target]`` restricts them
    target_strategies: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    run: RunSpec = RunSpec()
    report: bool = True
    plots: bool = True
    collapse: CollapseSpec = CollapseSpec()
    slurm: dict[str, Any] = field(default_factory=dict, hash=False)

    def train_table(self, strategy: str, target: str | None = None) -> dict[str, Any]:
        """The ``[train]`` table with the target's, then the strategy's overrides merged in (a
        fresh copy)."""
        table = _merge(copy.deepcopy(self.train), self.by_target.get(target or "", {}))
        return _merge(table, self.by_strategy.get(strategy, {}))

    def strategies_for(self, model: ModelSpec, target: str | None = None) -> tuple[str, ...]:
        """The spec's strategies that ``model`` runs, on ``target`` when one is given."""
        only = self.target_strategies.get(target or "")
        return tuple(s for s in self.strategies
                     if (model.strategies is None or s in model.strategies)
                     and (only is None or s in only))  # fmt: skip


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def load_spec(path: str | Path) -> Spec:
    """Read and validate a spec; any problem is one :class:`InputError` naming file and key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise not_a_file(path, "benchmark spec") from None
    except IsADirectoryError:
        raise InputError("is a directory, not a benchmark spec", file=path) from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"invalid TOML ({e})", file=path) from None
    return parse_spec(raw, path)


def parse_spec(raw: dict[str, Any], path: Path) -> Spec:
    r = TableReader(raw, path, "")
    r.check_keys(("name", "description", "datasets", "models", "strategies", "seeds", "train",
                  "strategies_by_target", "run", "report", "collapse", "slurm"))  # fmt: skip
    base = path.resolve().parent
    strategies = r.strings("strategies")
    for s in strategies:
        if s not in strategy_names():
            r.fail(f"unknown strategy {s!r} in 'strategies'; known: {', '.join(strategy_names())}")
    seeds = r.get("seeds", list)
    if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        r.fail("'seeds' must be a list of non-negative integers")
    if len(set(seeds)) != len(seeds):
        r.fail("'seeds' has duplicates")
    datasets = tuple(_dataset(t, base) for t in r.tables("datasets"))
    _unique(r, "datasets", [d.name for d in datasets])
    models = tuple(_model(t, base, strategies) for t in r.tables("models"))
    _unique(r, "models", [m.name for m in models])
    for m in models:
        for s in strategies if m.strategies is None else m.strategies:
            if needs_pretrained(s) and m.checkpoint is None and m.adapter is None:
                r.fail(f"model {m.name!r}: strategy {s!r} needs 'checkpoint' or 'adapter'")
            if needs_ff(s) and m.ff_data is None:
                r.fail(f"model {m.name!r}: strategy {s!r} needs 'ff_data' (force-field store)")
    targets = tuple(dict.fromkeys(t for d in datasets for t in d.targets))
    train, by_strategy, by_target = _train(r, strategies, targets)
    target_strategies = _target_strategies(r.table("strategies_by_target"), strategies, targets)
    run = _run(r.table("run"))
    rep = r.table("report")
    rep.check_keys(("enabled", "plots"))
    slurm = _slurm(r.table("slurm"))
    return Spec(
        path=path, name=r.get("name", str, path.stem), description=r.get("description", str, ""),
        datasets=datasets, models=models, strategies=strategies, seeds=tuple(seeds),
        train=train, by_strategy=by_strategy, by_target=by_target,
        target_strategies=target_strategies, run=run,
        report=rep.get("enabled", bool, True), plots=rep.get("plots", bool, True),
        collapse=_collapse(r.table("collapse")), slurm=slurm,
    )  # fmt: skip


def _target_strategies(
    t: TableReader, strategies: tuple[str, ...], targets: tuple[str, ...]
) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for target in t.data:
        if target not in targets:
            t.fail(f"{t.key(target)!r}: {target!r} is not among the spec's targets")
        own = _strategy_subset(t, target, strategies)
        if own is not None:  # the key is there: None never comes back here
            out[target] = own
    return out


def _strategy_subset(t: TableReader, k: str, strategies: tuple[str, ...]) -> tuple[str, ...] | None:
    """``t[k]``: a list of the spec's strategies (None where ``k`` is absent)."""
    own = t.strings(k, None)
    for s in own or ():
        if s not in strategies:
            t.fail(f"{t.key(k)!r}: {s!r} is not among the spec's strategies")
    return own


def _unique(r: TableReader, what: str, names: list[str]) -> None:
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        r.fail(f"two {what} are named {dup[0]!r}")


def _path(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return Path(os.path.normpath(p if p.is_absolute() else base / p))


def _store(value: str, base: Path) -> StoreRef:
    if "/" in value:
        p = _path(value, base)
        return StoreRef(name=p.name, path=p)
    return StoreRef(name=value)


def _dataset(t: TableReader, base: Path) -> DatasetSpec:
    t.check_keys(("name", "store", "ingest", "sources", *INGEST_OPTIONS, "optional", "targets",
                  "splits"))  # fmt: skip
    store = _store(t.get("store", str), base)
    ingest = t.get("ingest", str, "none")
    if ingest not in INGEST_FORMATS:
        t.fail(f"{t.key('ingest')!r} must be one of {', '.join(INGEST_FORMATS)}, not {ingest!r}")
    sources = t.strings("sources", ())
    sources = tuple(s if s.startswith("{data_root}") else str(_path(s, base)) for s in sources)
    ingest_options = _ingest_options(t, ingest, sources, base)
    splits = []
    for s in t.tables("splits"):
        s.check_keys(("name", "method", "artifact", "options"))
        method = s.get("method", str)
        if method not in METHODS:
            s.fail(f"{s.key('method')!r}: unknown split method {method!r}; known: "
                   f"{', '.join(METHODS)}")  # fmt: skip
        artifact = s.get("artifact", str, None)
        options = _split_options(s.table("options"))
        splits.append(SplitSpec(
            name=s.get("name", str, method), method=method,
            artifact=None if artifact is None else str(_path(artifact, base)),
            options=tuple(sorted(options.items())),
        ))  # fmt: skip
    _unique(t, "splits", [s.name for s in splits])
    return DatasetSpec(
        name=t.get("name", str, store.name), store=store,
        ingest=ingest, sources=sources, ingest_options=ingest_options,
        optional=t.get("optional", bool, False),
        targets=t.strings("targets"), splits=tuple(splits),
    )  # fmt: skip


def _ingest_options(
    t: TableReader, ingest: str, sources: tuple[str, ...], base: Path
) -> tuple[tuple[str, str], ...]:
    """The dataset's ingest options, checked against its source's entry in the registry."""
    given = {k: t.get(k, str) for k in INGEST_OPTIONS if k in t.data}
    if "folds" in given and not given["folds"].startswith("{data_root}"):
        given["folds"] = str(_path(given["folds"], base))
    if ingest == "none":
        if given:
            t.fail(f"{t.key(next(iter(given)))!r} is an ingest option; 'ingest' is 'none'")
        return ()
    src = SOURCES[ingest]
    for k in given:
        if k not in src.options:
            t.fail(f"{t.key(k)!r}: ingest {ingest!r} does not take it "
                   f"(it takes: {', '.join(src.options)})")  # fmt: skip
    for k in src.required:
        if k not in given:
            t.fail(f"{t.key(k)!r}: ingest {ingest!r} needs it")
    if src.files == "some" and not sources:
        t.fail(f"{t.key('sources')!r}: ingest {ingest!r} needs the files")
    if src.files == "optional-one" and len(sources) > 1:
        t.fail(f"{t.key('sources')!r}: ingest {ingest!r} takes one source, not {len(sources)}")
    try:
        src.check_options(given)
    except InputError as e:
        t.fail(f"{t.where}: {e.line()}")
    return tuple(sorted(given.items()))


def _split_options(t: TableReader) -> dict[str, Any]:
    known = tuple(
        f.name for f in dataclasses.fields(SplitConfig) if f.name not in ("method", "target")
    )
    t.check_keys(known)
    return {k: tuple(v) if isinstance(v, list) else v for k, v in t.data.items()}


def _model(t: TableReader, base: Path, strategies: tuple[str, ...]) -> ModelSpec:
    t.check_keys(("name", "checkpoint", "adapter", "sha256", "ff_data", "ff_sources",
                  "strategies"))  # fmt: skip
    checkpoint = t.get("checkpoint", str, None)
    adapter = t.get("adapter", str, None)
    if checkpoint is not None and adapter is not None:
        t.fail(f"{t.where}: give 'checkpoint' or 'adapter', not both")
    ff = t.get("ff_data", str, None)
    own = _strategy_subset(t, "strategies", strategies)
    name = t.get("name", str, None) or adapter or (Path(checkpoint).parent.name if checkpoint
                                                    else "scratch")  # fmt: skip
    sources = tuple(s if s.startswith("{data_root}") else str(_path(s, base))
                    for s in t.strings("ff_sources", ()))  # fmt: skip
    return ModelSpec(
        name=name, checkpoint=None if checkpoint is None else _path(checkpoint, base),
        adapter=adapter, sha256=t.get("sha256", str, None),
        ff_data=None if ff is None else _store(ff, base), ff_sources=sources, strategies=own,
    )  # fmt: skip


def _overrides(
    r: TableReader, train: dict, noun: str, known: tuple[str, ...]
) -> dict[str, dict[str, Any]]:
    """``[train.by_<noun>.<name>]`` tables, taken out of ``train``: each a table, each name one
    of the spec's ``known`` strategies or targets."""
    over = train.pop(f"by_{noun}", {})
    if not isinstance(over, dict):
        r.fail(f"'train.by_{noun}' must be a table of {noun} tables")
    for name, table in over.items():
        if name not in known:
            r.fail(f"'train.by_{noun}.{name}': {name!r} is not among the spec's {noun}s")
        if not isinstance(table, dict):
            r.fail(f"'train.by_{noun}.{name}' must be a table")
    return over


def _train(
    r: TableReader, strategies: tuple[str, ...], targets: tuple[str, ...]
) -> tuple[dict, dict, dict]:
    t = r.table("train")
    train = copy.deepcopy(t.data)
    by_strategy = _overrides(r, train, "strategy", strategies)
    by_target = _overrides(r, train, "target", targets)
    for name, over in by_target.items():
        for key in ("target", "seed", "strategy"):
            if key in over:
                r.fail(f"'train.by_target.{name}.{key}' cannot be set per target")
    for key in ("target", "seed"):
        if key in train:
            r.fail(f"'train.{key}' is set per cell; use the spec's 'targets' / 'seeds'")
    if "name" in train.get("strategy", {}):
        r.fail("'train.strategy.name' is set per cell; use the spec's 'strategies'")
    for s in strategies:
        for target in ("", *by_target):  # "": the plain [train] table
            table = _merge(copy.deepcopy(train), by_target.get(target, {}))
            table = _merge(table, by_strategy.get(s, {}))
            table.setdefault("strategy", {})
            if isinstance(table["strategy"], dict):
                table["strategy"]["name"] = s
            cfg = from_dict(table, source=f"{r.file} [train]")
            check_available(cfg.log, source=f"{r.file} [train] log")
    return train, by_strategy, by_target


def _int(t: TableReader, k: str, default: int, low: int) -> int:
    v = t.get(k, int, default)
    if v < low:
        t.fail(f"{t.key(k)!r} must be at least {low}, got {v}")
    return v


def _run(t: TableReader) -> RunSpec:
    t.check_keys(("jobs", "gpus_per_cell"))
    return RunSpec(jobs=_int(t, "jobs", 1, 1), gpus_per_cell=_int(t, "gpus_per_cell", 1, 1))


def _slurm(t: TableReader) -> dict[str, Any]:
    t.check_keys(tuple(SLURM_KEYS))
    for key, kind in SLURM_KEYS.items():
        t.get(key, kind, None)
    if t.data.get("cluster", "slurm") not in ("slurm", "local", "debug"):
        t.fail("'slurm.cluster' must be slurm, local or debug")
    for key in ("timeout_min", "cpus_per_task", "array_parallelism"):
        if t.data.get(key, 1) < 1:
            t.fail(f"'slurm.{key}' must be at least 1")
    return dict(t.data)


def _collapse(t: TableReader) -> CollapseSpec:
    names = tuple(f.name for f in dataclasses.fields(CollapseSpec))
    t.check_keys(names)
    seeds = t.get("seeds", list, None)
    if seeds is not None and not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        t.fail("'collapse.seeds' must be a list of integers")
    partition = t.get("partition", str, "ood_test")
    if partition not in ("train", "val", "id_test", "ood_test"):
        t.fail(f"'collapse.partition' must be train, val, id_test or ood_test, not {partition!r}")
    edges = t.get("edges", str, "auto")
    if edges not in ("auto", "backbone", "pair"):
        t.fail(f"'collapse.edges' must be auto, backbone or pair, not {edges!r}")
    tsne_backend = t.get("tsne_backend", str, "auto")
    if tsne_backend not in TSNE_BACKENDS:
        t.fail(f"'collapse.tsne_backend' must be one of {', '.join(TSNE_BACKENDS)}, "
               f"not {tsne_backend!r}")  # fmt: skip
    return CollapseSpec(
        enabled=t.get("enabled", bool, False), seeds=None if seeds is None else tuple(seeds),
        partition=partition, layer=t.get("layer", int, -1),
        max_per_class=_int(t, "max_per_class", 2000, 1), tsne=t.get("tsne", bool, True),
        tsne_max_iter=_int(t, "tsne_max_iter", 1000, 250), tsne_backend=tsne_backend,
        projections=_int(t, "projections", 128, 1), edges=edges,
    )  # fmt: skip
