"""Finding and reading run directories: the one place that knows the run format.

A run directory holds ``manifest.json`` (``"artifact": "run"``), ``metrics.json`` (written last,
so its absence marks an unfinished run) and ``predictions.csv`` (see
:mod:`atomcollapse.training.rundir`). Everything the report needs from a run is normalised here
into a :class:`RunRecord` with metrics converted to the target's report unit.

``metrics.json`` may also carry ``history`` (one entry per evaluation: ``step``, ``val_mae``,
``val_rmse`` in the stored unit, and optionally the mean training losses since the previous
evaluation) and ``forgetting`` (force-field MAE/RMSE of the energy head before and after
adaptation, in meV/atom and meV/Å); both are optional, so older runs still load.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atomcollapse.artifacts import MANIFEST, made_by
from atomcollapse.constants import QM9_TARGETS
from atomcollapse.errors import InputError
from atomcollapse.units import factor

METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"
BEST_CHECKPOINT = "best.pt"
LAST_CHECKPOINT = "last.pt"
PARTITIONS = ("id_test", "ood_test")
#: RunRecord metric -> (``forgetting`` key, JSON unit = record unit): held-out force-field MAE.
FORGETTING_METRICS = {
    "ff_energy_after": ("after.energy_mae_meV_per_atom", "meV/atom"),
    "ff_energy_before": ("before.energy_mae_meV_per_atom", "meV/atom"),
    "ff_force_after": ("after.force_mae_meV_per_A", "meV/A"),
    "ff_force_before": ("before.force_mae_meV_per_A", "meV/A"),
    # against the untouched pretrained model's own predictions (0 = nothing moved)
    "ff_energy_drift": ("drift.energy_mae_meV_per_atom", "meV/atom"),
    "ff_force_drift": ("drift.force_mae_meV_per_A", "meV/A"),
}
#: History keys in the target's unit, converted to the report unit on loading.
_HISTORY_SCALED = ("val_mae", "val_rmse")


@dataclass
class RunRecord:
    """One run as the report sees it; MAE/RMSE are in ``unit`` (the report unit)."""

    path: Path
    dataset: str
    dataset_hash: str | None
    split: str
    split_hash: str | None
    target: str
    strategy: str
    seed: int | None
    pretrained_hash: str | None
    unit: str
    source_unit: str
    metrics: dict[str, float] = field(default_factory=dict)  # "id_mae", "ood_rmse", "val_mae", ...
    problems: list[str] = field(default_factory=list)  # why this run cannot be used as it is
    split_path: str | None = None
    split_kind: str = ""
    #: Evaluations in step order: ``step``, ``val_mae``/``val_rmse`` (in ``unit``), training
    #: losses ``train_property_loss`` (dimensionless), ``train_ff_energy_loss`` (eV²/atom),
    #: ``train_ff_force_loss`` ((eV/Å)²), step counts ``steps_property``/``steps_ff``.
    history: list[dict[str, float]] = field(default_factory=list)
    #: Force-field store (name, content hash) the ``ff_*`` forgetting metrics were measured on.
    ff_data: str | None = None
    ff_hash: str | None = None
    #: where the dataset store was when the run was made (absolute; older runs: None)
    dataset_path: str | None = None
    #: Provenance from the manifest: the code that trained it, and when it started and ended.
    code_version: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    #: CPU seconds the training loop used (over resumes; the manifest's ``train_seconds``)
    train_cpu_seconds: float = math.nan
    #: elements of the test sets no training structure held (the manifest's
    #: ``elements_not_in_training``; older runs: empty)
    unseen_elements: tuple[str, ...] = ()
    #: training structures the run used (after ``max_train`` and any element filter; the
    #: manifest's ``n_train``; older runs: None)
    n_train: int | None = None

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.dataset, self.split, self.target, self.strategy)

    def metric(self, name: str) -> float:
        return self.metrics.get(name, math.nan)

    @property
    def wall_seconds(self) -> float:
        """Seconds from the manifest's creation to the run's end; NaN when either is unknown."""
        from datetime import datetime

        try:
            start = datetime.fromisoformat(str(self.started_at))
            end = datetime.fromisoformat(str(self.finished_at))
        except ValueError:
            return math.nan
        return (end - start).total_seconds()

    @property
    def predictions_path(self) -> Path:
        return self.path / PREDICTIONS

    @property
    def best_checkpoint(self) -> Path:
        return self.path / BEST_CHECKPOINT


def report_unit(target: str, unit: str, preferred: str | None = None) -> str:
    """The unit reports use for ``target`` stored in ``unit``.

    ``preferred`` (the run's own report unit) when it converts from ``unit``, else the QM9
    report unit of the target (energies in meV), else ``unit`` itself.
    """
    spec = QM9_TARGETS.get(target)
    for candidate in (preferred, spec.report_unit if spec else None):
        if candidate:
            try:
                factor(unit, candidate)
                return candidate
            except ValueError:
                pass
    return unit


def is_run_dir(path: Path) -> bool:
    m = path / MANIFEST
    if not m.is_file():
        return False
    try:
        return json.loads(m.read_text()).get("artifact") == "run"
    except (json.JSONDecodeError, OSError, AttributeError):
        return False


def find_runs(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories named in ``paths`` or found below them (sorted, without duplicates)."""
    found: set[Path] = set()
    for p in map(Path, paths):
        if not p.exists():
            raise InputError("no such file or directory", file=p)
        if is_run_dir(p):
            found.add(p.resolve())
            continue
        if not p.is_dir():
            raise InputError("not a run directory or a folder of runs", file=p)
        below = [m.parent.resolve() for m in p.rglob(MANIFEST) if is_run_dir(m.parent)]
        if not below:
            raise InputError("no run directories found (no manifest.json of a run)", file=p)
        found.update(below)
    return sorted(found)


def _get(d: dict[str, Any], *paths: str) -> Any:
    """First non-empty scalar among dotted ``paths`` of a nested dict."""
    for path in paths:
        node: Any = d
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node not in (None, "") and not isinstance(node, (dict, list)):
            return node
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"corrupt JSON ({e.msg} at line {e.lineno})", file=path) from None
    except UnicodeDecodeError:
        raise InputError("corrupt JSON (not UTF-8 text)", file=path) from None
    if not isinstance(data, dict):
        raise InputError("expected a JSON object", file=path)
    return data


def _split_name(m: dict[str, Any], split_path: str | None) -> str:
    """A split's display name: its folder name, else ``<method>-<target>``, else ``-``."""
    if split_path:
        return Path(split_path).name
    parts = [_get(m, "split.method"), _get(m, "split.target")]
    return "-".join(str(p) for p in parts if p) or "-"


def _unseen(entry: Any) -> tuple[str, ...]:
    """Element symbols of the manifest's ``elements_not_in_training`` (a table by symbol)."""
    return tuple(sorted(str(k) for k in entry)) if isinstance(entry, dict) else ()


def load_run(path: str | Path) -> RunRecord:
    """Read one run directory; missing or unusable metrics become ``problems``, not errors."""
    path = Path(path)
    if not is_run_dir(path):
        raise InputError("not a run directory (no manifest.json of a run)", file=path)
    m = _read_json(path / MANIFEST)
    target = _get(m, "target.name", "target", "config.target")
    strategy = _get(m, "strategy.name", "strategy", "config.strategy.name")
    if not target or not strategy:
        raise InputError("run manifest names no target or strategy", file=path / MANIFEST)
    split_path = _get(m, "split.path", "split_path")
    split = _get(m, "split.name", "split_name") or _split_name(m, split_path)
    seed = _get(m, "seeds.seed", "seed", "config.seed")
    made = made_by(m)
    rec = RunRecord(
        path=path,
        dataset=str(_get(m, "dataset.name", "dataset_name", "dataset") or "-"),
        dataset_hash=_get(m, "dataset.content_hash", "dataset.hash", "dataset_hash"),
        split=str(split),
        split_hash=_get(m, "split.hash", "split.content_hash", "split_hash"),
        target=str(target),
        strategy=str(strategy),
        seed=int(seed) if seed is not None else None,
        pretrained_hash=_get(m, "pretrained.hash", "pretrained.sha256", "pretrained_hash"),
        unit="",
        source_unit="",
        split_path=split_path,
        split_kind=str(_get(m, "split.method", "split.kind", "split_method") or ""),
        dataset_path=_get(m, "dataset.path"),
        code_version=made.code_version,
        started_at=made.created_at,
        finished_at=_get(m, "finished_at"),
        train_cpu_seconds=_number(_get(m, "train_seconds.cpu")) or math.nan,
        unseen_elements=_unseen(m.get("elements_not_in_training")),
        n_train=int(n) if isinstance(n := m.get("n_train"), int) else None,
    )
    _load_metrics(rec, path / METRICS)
    return rec


def _load_metrics(rec: RunRecord, path: Path) -> None:
    if not path.is_file():
        rec.problems.append("unfinished (no metrics.json)")
        return
    met = _read_json(path)  # a corrupt metrics.json is bad input (it names the file), not a gap
    unit = _get(met, "unit", "target_unit")
    if not unit:
        rec.problems.append(f"{path} names no unit")
        return
    rec.source_unit = str(unit)
    try:
        rec.unit = report_unit(rec.target, rec.source_unit, _get(met, "report_unit"))
        scale = factor(rec.source_unit, rec.unit)
    except ValueError as e:
        rec.problems.append(f"{path}: {e}")
        return
    for part in ("val", *PARTITIONS):
        short = part.split("_")[0]
        for stat in ("mae", "rmse"):
            v = _get(met, f"partitions.{part}.{stat}", f"{part}.{stat}", f"{short}_{stat}")
            if part == "val" and stat == "mae" and v is None:
                v = _get(met, "best_val_mae")
            if isinstance(v, (int, float)) and math.isfinite(v):
                rec.metrics[f"{short}_{stat}"] = float(v) * scale
    rec.history = _history(met.get("history"), scale)
    _load_forgetting(rec, met.get("forgetting"))


def _number(v: Any) -> float | None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return float(v) if ok else None


def _history(entries: Any, scale: float) -> list[dict[str, float]]:
    """Numeric fields of the evaluations that name a step, sorted by step; see RunRecord."""
    out = []
    for e in entries if isinstance(entries, list) else []:
        if not isinstance(e, dict) or _number(e.get("step")) is None:
            continue
        row = {k: x for k, v in e.items() if (x := _number(v)) is not None}
        for k in _HISTORY_SCALED:
            if k in row:
                row[k] *= scale
        out.append(row)
    return sorted(out, key=lambda r: r["step"])


def _load_forgetting(rec: RunRecord, forgetting: Any) -> None:
    if not isinstance(forgetting, dict):
        return
    for name, (key, _) in FORGETTING_METRICS.items():
        if (v := _number(_get(forgetting, key))) is not None:
            rec.metrics[name] = v
    if any(name in rec.metrics for name in FORGETTING_METRICS):
        rec.ff_data = _get(forgetting, "data")
        rec.ff_hash = _get(forgetting, "content_hash")


def load_runs(paths: Sequence[str | Path]) -> list[RunRecord]:
    """All runs named in or found below ``paths``."""
    runs = [load_run(p) for p in find_runs(paths)]
    if not runs:
        raise InputError("no runs to report", file=", ".join(map(str, paths)))
    return runs


def load_predictions(rec: RunRecord) -> pd.DataFrame | None:
    """``predictions.csv`` with prediction/reference converted to ``rec.unit`` (None if absent)."""
    f = rec.predictions_path
    if not f.is_file() or not rec.unit:
        return None
    try:
        df = pd.read_csv(f)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputError(f"unreadable predictions ({type(e).__name__})", file=f) from None
    need = {"partition", "prediction", "reference"}
    if not need <= set(df.columns):
        raise InputError(f"predictions lack columns {sorted(need - set(df.columns))}", file=f)
    units = df["unit"].astype(str).unique() if "unit" in df.columns else [rec.source_unit]
    for u in units:
        rows = df["unit"].astype(str) == u if "unit" in df.columns else slice(None)
        try:
            s = factor(u, rec.unit)
        except ValueError as e:
            raise InputError(str(e), file=f) from None
        df.loc[rows, ["prediction", "reference"]] = (
            df.loc[rows, ["prediction", "reference"]].to_numpy(np.float64) * s
        )
    df["unit"] = rec.unit
    return df


__all__ = [
    "FORGETTING_METRICS",
    "PARTITIONS",
    "RunRecord",
    "find_runs",
    "is_run_dir",
    "load_predictions",
    "load_run",
    "load_runs",
    "report_unit",
]
