"""Run directories in the format of :mod:`atomcollapse.training.rundir`, made by the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from atomcollapse.artifacts import MANIFEST, write_json_atomic


def make_run(
    root: Path,
    *,
    strategy: str,
    seed: int,
    target: str = "gap",
    id_mae: float | None = 0.004,
    ood_mae: float | None = 0.02,
    unit: str = "Ha",
    report_unit: str | None = "meV",
    dataset: str = "qm9",
    dataset_hash: str = "d" * 64,
    split_method: str = "property-tail",
    split_hash: str = "s" * 64,
    split_path: str | None = None,
    pretrained_hash: str | None = "p" * 64,
    finished: bool = True,
    n_pred: int = 40,
    history: list[dict[str, Any]] | None = None,
    forgetting: dict[str, Any] | None = None,
) -> Path:
    """A finished (or unfinished) run with metrics in ``unit`` and consistent predictions.

    Mirrors what ``atomcollapse train`` writes (training/train.py): the manifest's identity
    fields and ``metrics.json`` with per-partition MAE/RMSE in the stored unit, and, when
    given, ``history`` (see :func:`make_history`) and ``forgetting`` (see
    :func:`make_forgetting`).
    """
    tag = f"{split_hash[:4]}-{pretrained_hash[:4] if pretrained_hash else 'none'}"
    path = root / f"{target}-{strategy}-{seed}-{tag}"
    path.mkdir(parents=True)
    split = {"hash": split_hash, "method": split_method, "target": target}
    if split_path is not None:
        split["path"] = split_path
    manifest = {
        "artifact": "run", "schema_version": 1, "command": "train",
        "status": "finished" if finished else "running",
        "strategy": {"name": strategy}, "target": target, "unit": unit,
        "report_unit": report_unit or unit,
        "dataset": {"name": dataset, "content_hash": dataset_hash},
        "split": split,
        "pretrained": None if pretrained_hash is None else {"hash": pretrained_hash},
        "seeds": {"seed": seed, "init": seed + 1, "data": seed + 2},
    }  # fmt: skip
    write_json_atomic(path / MANIFEST, manifest)
    rng = np.random.default_rng(seed)
    rows = []
    for part, err in (("id_test", id_mae), ("ood_test", ood_mae)):
        if err is None:
            continue
        ref = rng.uniform(0.1, 0.5, n_pred) if part == "id_test" else rng.uniform(0.0, 0.7, n_pred)
        sign = np.where(np.arange(n_pred) % 2 == 0, 1.0, -1.0)
        for k in range(n_pred):
            rows.append((f"m{k}", part, target, ref[k] + sign[k] * err, ref[k], unit))
    columns = ["id", "partition", "target", "prediction", "reference", "unit"]
    pd.DataFrame(rows, columns=columns).to_csv(path / "predictions.csv", index=False)
    if finished:
        parts = {"val": {"n": n_pred, "mae": id_mae, "rmse": None}}
        for part, err in (("id_test", id_mae), ("ood_test", ood_mae)):
            if err is not None:
                parts[part] = {"n": n_pred, "mae": err, "rmse": err * 1.3}
        metrics = {"target": target, "strategy": strategy, "seed": seed, "unit": unit,
                   "report_unit": report_unit or unit, "best_val_mae": id_mae,
                   "partitions": parts}  # fmt: skip
        if history is not None:
            metrics["history"] = history
        if forgetting is not None:
            metrics["forgetting"] = forgetting
        write_json_atomic(path / "metrics.json", metrics)
    return path


def make_history(
    n: int, *, final_mae: float, every: int = 10, ff: bool = False
) -> list[dict[str, Any]]:
    """``n`` evaluations every ``every`` steps; val MAE (stored unit) falls to ``final_mae``.

    Training losses as ``atomcollapse train`` writes them: the property loss always, the
    force-field energy/force terms (eV^2/atom, (eV/A)^2) and ``steps_ff`` only when ``ff``.
    """
    out = []
    for k in range(1, n + 1):
        decay = 1.0 + (n - k) / n
        e: dict[str, Any] = {
            "step": k * every, "score": final_mae * decay, "val_mae": final_mae * decay,
            "val_rmse": 1.3 * final_mae * decay, "best": True,
            "train_property_loss": 0.5 * decay, "steps_property": k * every,
        }  # fmt: skip
        if ff:
            e |= {"train_ff_energy_loss": 1e-3 * decay, "train_ff_force_loss": 2e-2 * decay,
                  "steps_ff": k * every}  # fmt: skip
        out.append(e)
    return out


def make_forgetting(
    *,
    force_after: float,
    force_before: float,
    energy_after: float,
    energy_before: float,
    force_drift: float | None = None,
    energy_drift: float | None = None,
) -> dict[str, Any]:
    """A ``metrics.json["forgetting"]`` entry; MAE in meV/A and meV/atom, RMSE = 1.25 MAE; the
    drift entry only when ``force_drift`` is given (runs before it was measured have none)."""

    def errors(force: float, energy: float) -> dict[str, float]:
        return {"energy_mae_meV_per_atom": energy, "force_mae_meV_per_A": force,
                "energy_rmse_meV_per_atom": 1.25 * energy, "force_rmse_meV_per_A": 1.25 * force}  # fmt: skip

    out = {
        "data": "ani-ff", "content_hash": "f" * 64, "n": 200, "head": "pretrained energy head",
        "before": errors(force_before, energy_before), "after": errors(force_after, energy_after),
    }  # fmt: skip
    if force_drift is not None:
        out["drift"] = errors(force_drift, energy_drift if energy_drift is not None else 0.0)
    return out
