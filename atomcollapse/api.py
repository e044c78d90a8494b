"""The Python API: what the command line does, from a notebook or a script.

Every function calls the same layer functions as the matching command, so results are the
same, bit for bit on CPU; bad input raises :class:`atomcollapse.errors.InputError` (never
``sys.exit``); results come back as objects and pandas DataFrames, with units named.

```python
import atomcollapse as ac

store = ac.ingest_qm9()                                   # from the qm9pack wheel, offline
split = ac.make_split("qm9", "splits/gap", method="property-tail", target="gap")
cfg = ac.TrainConfig(target="gap", epochs=3, strategy=ac.StrategyConfig("scratch"))
run = ac.train("qm9", "splits/gap", "runs/scratch", cfg)
run.metrics          # partition, n, mae, rmse (stored unit), mae_report, rmse_report
run.predictions      # id, partition, target, prediction, reference, unit
ac.report(["runs"]).cells
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atomcollapse.errors import InputError
from atomcollapse.training.config import (
    HeadConfig,
    ModelConfig,
    OptimConfig,
    StrategyConfig,
    TrainConfig,
)

if TYPE_CHECKING:
    import pandas as pd

    from atomcollapse.analysis.aggregate import Aggregate
    from atomcollapse.analysis.pipeline import CollapseSettings
    from atomcollapse.data.sources import Ingested
    from atomcollapse.data.store import Store
    from atomcollapse.models.model import AtomisticModel
    from atomcollapse.splits.artifact import Split
    from atomcollapse.training.predict import Predictions, Predictor

__all__ = [
    "HeadConfig",
    "InputError",
    "ModelConfig",
    "OptimConfig",
    "Report",
    "Run",
    "StrategyConfig",
    "TrainConfig",
    "collapse",
    "evaluate",
    "export_dataset",
    "export_split",
    "ingest_extxyz",
    "ingest_matbench",
    "ingest_qm9",
    "load_run",
    "load_split",
    "make_split",
    "open_dataset",
    "predict",
    "report",
    "train",
]

PathLike = str | Path


# ---------------------------------------------------------------------------------- datasets


def open_dataset(name: PathLike, data_root: PathLike | None = None) -> Store:
    """A dataset store by name (under ``<data_root>/stores``) or path, memory-mapped."""
    from atomcollapse.data.store import open_store

    return open_store(name, data_root)


def _ingest(
    kind: str,
    name: str,
    files: Sequence[PathLike],
    data_root: PathLike | None,
    overwrite: bool,
    **options: Any,
) -> Store:
    """Check the target store before reading (as ``ingest`` does), read with the ingest source
    ``kind``, write, open."""
    from atomcollapse.artifacts import check_replaceable
    from atomcollapse.data.sources import read_source, write_ingested
    from atomcollapse.data.store import new_store_path, open_store

    check_replaceable(new_store_path(name, data_root), "dataset", overwrite=overwrite)
    ing: Ingested = read_source(kind, files, data_root=data_root, **options)
    return open_store(write_ingested(ing, name, data_root, overwrite=overwrite))


def ingest_qm9(
    name: str = "qm9",
    source: PathLike | None = None,
    *,
    uncharacterized: PathLike | None = None,
    download: bool = False,
    data_root: PathLike | None = None,
    overwrite: bool = False,
    skip_existing: bool = False,
) -> Store:
    """``atomcollapse ingest qm9``: QM9 from the qm9pack wheel (default) or a file/folder."""
    from atomcollapse.data.store import new_store_path, open_store

    if skip_existing and (new_store_path(name, data_root) / "manifest.json").is_file():
        return open_store(name, data_root)
    opt = None if uncharacterized is None else Path(uncharacterized)
    return _ingest("qm9", name, [] if source is None else [source], data_root, overwrite,
                   uncharacterized=opt, download=download)  # fmt: skip


def ingest_matbench(
    task: str,
    source: PathLike | None = None,
    *,
    folds: PathLike | None = None,
    target: str | None = None,
    unit: str | None = None,
    download: bool = False,
    name: str | None = None,
    data_root: PathLike | None = None,
    overwrite: bool = False,
) -> Store:
    """``atomcollapse ingest matbench TASK``: a MatBench ``<task>.json.gz`` into a store; a task
    of your own names its ``unit`` (and its ``target`` column when the file has several)."""
    fo = None if folds is None else Path(folds)
    return _ingest("matbench", name or task, [] if source is None else [source], data_root,
                   overwrite, task=task, folds=fo, target=target, unit=unit, download=download)  # fmt: skip


def ingest_extxyz(
    files: Sequence[PathLike],
    name: str,
    *,
    energy_key: str | None = None,
    forces_key: str | None = None,
    data_root: PathLike | None = None,
    overwrite: bool = False,
) -> Store:
    """``atomcollapse ingest extxyz``: force-field frames (energy eV, forces eV/A, stress GPa)."""
    return _ingest("extxyz", name, files, data_root, overwrite,
                   energy_key=energy_key, forces_key=forces_key)  # fmt: skip


def export_dataset(
    name: PathLike, out: PathLike, *, fmt: str = "extxyz", data_root: PathLike | None = None,
    overwrite: bool = False,
) -> Path:  # fmt: skip
    """``atomcollapse datasets export``: every structure of a store into one extxyz file."""
    from atomcollapse.data.export import export_store

    return export_store(open_dataset(name, data_root), out, fmt=fmt, overwrite=overwrite)


# ------------------------------------------------------------------------------------ splits


def make_split(
    dataset: PathLike,
    out: PathLike,
    *,
    method: str,
    data_root: PathLike | None = None,
    overwrite: bool = False,
    **settings: Any,
) -> Split:
    """``atomcollapse split DATASET --method M --out OUT``; ``settings`` are
    :class:`atomcollapse.splits.SplitConfig` fields (``target``, ``seed``, ``n_ood``, ``by``, ...)."""
    from atomcollapse.splits import SplitConfig
    from atomcollapse.splits.build import build_split

    try:
        cfg = SplitConfig(method=method, **settings)
    except TypeError as e:
        raise InputError(f"unknown split setting ({e})") from None
    return build_split(dataset, cfg, out, data_root=data_root, overwrite=overwrite)


def load_split(path: PathLike) -> Split:
    """A split artifact (its manifest, partition codes and hash)."""
    from atomcollapse.splits import load_split as _load

    return _load(path)


def export_split(
    split: PathLike,
    out: PathLike,
    *,
    fmt: str,
    data: PathLike | None = None,
    data_root: PathLike | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """``atomcollapse split export``: one extxyz or CSV file per partition."""
    from atomcollapse.data.export import check_format
    from atomcollapse.splits.export import FORMATS
    from atomcollapse.splits.export import export_split as _export

    check_format(fmt, FORMATS)
    s = load_split(split)
    store = open_dataset(data or s.manifest["dataset"]["name"], data_root)
    return _export(s, store, out, fmt=fmt, overwrite=overwrite)


# ------------------------------------------------------------------------------------- train


@dataclass
class Run:
    """A run directory read back: metrics, manifest and predictions, and the trained model."""

    path: Path

    def _json(self, name: str) -> dict[str, Any]:
        from atomcollapse.training.rundir import RunDir

        return RunDir(self.path).read_json(name)

    @cached_property
    def metrics_json(self) -> dict[str, Any]:
        """``metrics.json`` as written (stored unit under ``mae``, report unit ``mae_report``)."""
        from atomcollapse.training.rundir import METRICS

        return self._json(METRICS)

    @property
    def metrics(self) -> pd.DataFrame:
        """One row per partition: n, mae and rmse (``unit``), mae_report and rmse_report
        (``report_unit``)."""
        import pandas as pd

        m = self.metrics_json
        df = pd.DataFrame.from_dict(m["partitions"], orient="index")
        df.index.name = "partition"
        df = df.reset_index()
        df["unit"], df["report_unit"] = m["unit"], m["report_unit"]
        return df

    @cached_property
    def manifest(self) -> dict[str, Any]:
        from atomcollapse.artifacts import MANIFEST

        return self._json(MANIFEST)

    @cached_property
    def config(self) -> TrainConfig:
        from atomcollapse.training.config import from_dict
        from atomcollapse.training.rundir import CONFIG

        return from_dict(self._json(CONFIG), str(self.path / CONFIG))

    @property
    def predictions(self) -> pd.DataFrame:
        """``predictions.csv``: id, partition, target, prediction, reference, unit."""
        import pandas as pd

        from atomcollapse.training.rundir import PREDICTIONS

        f = self.path / PREDICTIONS
        if not f.is_file():
            raise InputError(f"run has no {PREDICTIONS} (unfinished?)", file=self.path)
        return pd.read_csv(f)

    @cached_property
    def predictor(self) -> Predictor:
        from atomcollapse.training.predict import load_predictor

        return load_predictor(self.path)

    @property
    def model(self) -> AtomisticModel:
        """The best checkpoint's model, in eval mode."""
        return self.predictor.model

    def predict(self, data: PathLike | Sequence[PathLike], **kw: Any) -> Predictions:
        """:func:`predict` with this run's model."""
        return predict(self, data, **kw)


def load_run(path: PathLike) -> Run:
    """A finished run directory (InputError when it is not one or has no metrics)."""
    run = Run(Path(path))
    run.metrics_json  # noqa: B018 - read now so that a bad folder fails here
    return run


def _config(
    config: TrainConfig | PathLike | None, overrides: Mapping[str, Any] | None
) -> TrainConfig:
    """A validated config: a TrainConfig, a TOML file or the defaults, then dotted overrides."""
    from atomcollapse.training.config import from_dict, load_config, validate

    if config is None or isinstance(config, (str, Path)):
        return load_config(config, dict(overrides or {}))
    if not isinstance(config, TrainConfig):
        raise InputError(
            f"config must be a TrainConfig, a TOML path or None, not {type(config).__name__}"
        )
    if not overrides:
        validate(config)
        return config
    data = config.to_dict()
    for key, value in overrides.items():
        *parents, leaf = key.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return from_dict(data)


def train(
    data: PathLike,
    split: PathLike,
    out: PathLike,
    config: TrainConfig | PathLike | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
    pretrained: PathLike | None = None,
    ff_data: PathLike | None = None,
    forgetting_data: PathLike | None = None,
    data_root: PathLike | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = False,
) -> Run:
    """``atomcollapse train``: adapt a model to one target with one strategy, write the run
    directory ``out`` and return it. ``config`` is a :class:`TrainConfig`, a TOML file or None
    (defaults); ``overrides`` maps dotted keys (``"optim.lr"``, ``"strategy.name"``) to values."""
    from atomcollapse.training.train import TrainInputs, run_train

    cfg = _config(config, overrides)
    inputs = TrainInputs(
        data=str(data), split=Path(split), out=Path(out),
        pretrained=None if pretrained is None else Path(pretrained),
        ff_data=None if ff_data is None else str(ff_data),
        forgetting_data=None if forgetting_data is None else str(forgetting_data),
        data_root=None if data_root is None else Path(data_root), resume=resume,
        overwrite=overwrite, progress=progress,
    )  # fmt: skip
    run_train(inputs, cfg)
    return load_run(out)


# ---------------------------------------------------------------------------- predict, evaluate


def predict(
    run: Run | PathLike,
    data: PathLike | Sequence[PathLike],
    *,
    split: PathLike | None = None,
    partition: str | None = None,
    forces: bool = False,
    data_root: PathLike | None = None,
) -> Predictions:
    """``atomcollapse predict``: the property (target's stored unit), energy (eV) and, with
    ``forces``, per-atom forces (eV/A) of a run or checkpoint, on a store (or one partition of
    a split of it) or on ASE-readable files. ``.structures`` and ``.forces`` are DataFrames."""
    from atomcollapse.training.predict import load_predictor
    from atomcollapse.training.predict import predict as _predict

    pred = run.predictor if isinstance(run, Run) else load_predictor(run)
    items = [data] if isinstance(data, (str, Path)) else list(data)
    return _predict(pred, [str(d) for d in items], split=split, partition=partition,
                    forces=forces, data_root=data_root)  # fmt: skip


def evaluate(
    run: Run | PathLike,
    data: PathLike,
    split: PathLike,
    *,
    partitions: Sequence[str] = ("val", "id_test", "ood_test"),
    data_root: PathLike | None = None,
) -> pd.DataFrame:
    """MAE and RMSE (target's stored unit) of a run's property on partitions of a split."""
    import pandas as pd

    from atomcollapse.analysis.metrics import mae, rmse

    rows = []
    for p in partitions:
        got = predict(run, data, split=split, partition=p, data_root=data_root).structures
        if "reference" not in got:
            raise InputError("the store has no values of the run's target", file=str(data))
        rows.append({"partition": p, "n": len(got), "mae": mae(got.prediction, got.reference),
                     "rmse": rmse(got.prediction, got.reference), "unit": got.unit.iloc[0]})  # fmt: skip
    return pd.DataFrame(rows)


# -------------------------------------------------------------------------- report, collapse


@dataclass
class Report:
    """``atomcollapse report`` over some runs: the tables as DataFrames (report units)."""

    aggregate: Aggregate
    files: list[Path] = field(default_factory=list)

    @property
    def cells(self) -> pd.DataFrame:
        """The main table: one row per dataset, split, target and strategy (``cells`` of
        report.json; ``report.csv``)."""
        from atomcollapse.analysis.report import cells_frame

        return cells_frame(self.aggregate)

    @property
    def summary(self) -> pd.DataFrame:
        """Averages over targets per strategy (``summary`` of report.json; ``summary.csv``)."""
        from atomcollapse.analysis.report import summary_frame

        return summary_frame(self.aggregate)

    @property
    def paired(self) -> pd.DataFrame:
        """Seed-paired differences between strategies with 95% t intervals."""
        import pandas as pd

        return pd.DataFrame(self.to_dict()["paired"])

    def to_dict(self) -> dict[str, Any]:
        """What ``report.json`` holds."""
        from atomcollapse.analysis.report import report_dict

        return report_dict(self.aggregate)

    def render(self, fmt: str) -> str:
        """The report as md, csv, latex or json text."""
        from atomcollapse.analysis.report import FORMATS, render

        if fmt not in FORMATS or fmt == "table":
            raise InputError(f"format must be one of {', '.join(FORMATS[1:])}, not {fmt!r}")
        return render(self.aggregate, fmt)


def report(
    runs: Sequence[PathLike] | PathLike,
    *,
    out: PathLike | None = None,
    plots: bool = True,
    title: str | None = None,
    collapse: Sequence[PathLike] = (),
    overwrite: bool = False,
) -> Report:
    """``atomcollapse report``: aggregate run directories (or folders of runs); with ``out``,
    also write every format, the plots and report.html there."""
    from atomcollapse.analysis.aggregate import aggregate
    from atomcollapse.analysis.outputs import check_collapse_folders, write_report
    from atomcollapse.analysis.runs import load_runs
    from atomcollapse.artifacts import check_replaceable

    paths = [Path(runs)] if isinstance(runs, (str, Path)) else [Path(r) for r in runs]
    folders = [Path(c) for c in collapse]
    check_collapse_folders(folders)
    if out is not None:
        check_replaceable(out, "report", overwrite=overwrite)
    agg = aggregate(load_runs(paths))
    files: list[Path] = []
    if out is not None:
        inputs = {"runs": [str(p.resolve()) for p in paths]}
        files = write_report(agg, Path(out), plots=plots, overwrite=overwrite, title=title,
                             collapse=folders, inputs=inputs)  # fmt: skip
    return Report(agg, files)


def collapse(
    pretrained: PathLike,
    runs: Sequence[PathLike] = (),
    *,
    settings: CollapseSettings | None = None,
    data: str | None = None,
    split: PathLike | None = None,
    partition: str = "ood_test",
    out: PathLike | None = None,
    data_root: PathLike | None = None,
    overwrite: bool = False,
) -> pd.DataFrame:
    """``atomcollapse collapse``: embedding collapse of adapted models relative to the
    pretrained one (a checkpoint file or a registered name such as ``"ani1x:0"``;
    Davies-Bouldin ratios, W1, CKA per model and set); the notes are in
    ``.attrs["notes"]``; with ``out``, the tables, samples and t-SNE figures are written there."""
    from atomcollapse.analysis.pipeline import (
        CollapseSettings,
        collapse_record,
        resolve_inputs,
        run_collapse,
        torch_threads,
        write_collapse,
    )
    from atomcollapse.analysis.report import collapse_frame
    from atomcollapse.artifacts import check_replaceable

    cfg = (settings or CollapseSettings()).validate()
    if out is not None:
        check_replaceable(out, "collapse", overwrite=overwrite)
    inputs = resolve_inputs(pretrained, [Path(r) for r in runs], data=data,
                            split=None if split is None else Path(split), partition=partition,
                            data_root=None if data_root is None else Path(data_root))  # fmt: skip
    with torch_threads(cfg.threads):
        result, sample, notes = run_collapse(inputs, cfg)
    if out is not None:
        made_from = collapse_record(pretrained, [Path(r) for r in runs], data=data,
                                    split=None if split is None else Path(split),
                                    partition=partition, settings=cfg)  # fmt: skip
        write_collapse(result, sample, Path(out), notes=notes, overwrite=overwrite,
                       inputs=made_from)  # fmt: skip
    df = collapse_frame(result.rows)
    df.attrs["notes"] = list(notes)
    return df
