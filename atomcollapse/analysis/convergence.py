"""Has a run's validation error flattened? The evidence study's convergence criterion.

A run counts as converged when its best validation MAE so far improved by less than
``FLAT_PERCENT`` (2%) over the last quarter of its optimiser steps: the best value at the end is
compared with the best value at 75% of the steps. Best-so-far, because a run keeps its best
weights. Read from the evaluations in ``metrics.json``'s history (``step``, ``val_mae``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

FLAT_PERCENT = 2.0
LAST_FRACTION = 0.25


def convergence(history: Sequence[dict[str, float]], *, last: float = LAST_FRACTION) -> dict:
    """``val_start``/``val_end`` (best validation MAE so far at ``1 - last`` of the steps and at
    the end, in the history's unit), ``improvement_percent`` and ``flat``; NaN and None when
    the history holds fewer than two evaluations or none before the last quarter."""
    rows = [h for h in history if math.isfinite(h.get("val_mae", math.nan))]
    out: dict[str, Any] = {"evaluations": len(rows), "val_start": math.nan, "val_end": math.nan,
                           "improvement_percent": math.nan, "flat": None}  # fmt: skip
    if len(rows) < 2:
        return out
    end_step = max(h["step"] for h in rows)
    cut = (1.0 - last) * end_step
    before = [h["val_mae"] for h in rows if h["step"] <= cut]
    if not before:
        return out
    start, end = min(before), min(h["val_mae"] for h in rows)
    gain = 100.0 * (start - end) / start if start > 0 else 0.0
    out.update(val_start=start, val_end=end, improvement_percent=gain, flat=gain < FLAT_PERCENT)
    return out


def convergence_rows(runs: Iterable[Any]) -> list[dict[str, Any]]:
    """One row per run (RunRecord-like: dataset, split, target, strategy, seed, unit, history,
    n_train, train_cpu_seconds), sorted by block, strategy and seed."""
    rows = []
    for r in runs:
        c = convergence(r.history)
        if c["evaluations"] < 2:
            continue
        rows.append({"dataset": r.dataset, "split": r.split, "target": r.target,
                     "strategy": r.strategy, "seed": r.seed, "unit": r.unit,
                     "steps": int(max(h["step"] for h in r.history)),
                     "n_train": getattr(r, "n_train", None),
                     "cpu_seconds": getattr(r, "train_cpu_seconds", math.nan), **c})  # fmt: skip
    return sorted(rows, key=lambda x: (x["dataset"], x["split"], x["target"], x["strategy"],
                                       -1 if x["seed"] is None else x["seed"]))  # fmt: skip
