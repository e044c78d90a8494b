"""Figures (matplotlib, Agg backend), each saved as PNG and SVG; scatter points are rasterised."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from atomcollapse.analysis.aggregate import Cell
from atomcollapse.analysis.metrics import binned_abs_error, mae

PARTITION_TITLES = {"id_test": "ID test", "ood_test": "OOD test"}
#: History key of a training loss -> (legend label with unit, line style).
TRAIN_LOSSES = {
    "train_property_loss": ("property loss (dimensionless)", "-"),
    "train_ff_energy_loss": ("FF energy loss (eV²/atom)", "--"),
    "train_ff_force_loss": ("FF force loss ((eV/Å)²)", ":"),
}
_FF_LOSSES = ("train_ff_energy_loss", "train_ff_force_loss")


def slug(*parts: str) -> str:
    """A file-name-safe stem from parts (letters, digits, ``.``, ``-``, ``_``)."""
    return "_".join(re.sub(r"[^A-Za-z0-9.\-]+", "-", str(p)).strip("-") or "x" for p in parts)


def save(fig, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg`` and close the figure."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=130, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    plt.close(fig)
    return paths


def plot_mae_bars(cells: Sequence[Cell], stem: Path) -> list[Path]:
    """ID and OOD MAE per strategy of one block, mean with std over seeds as error bars."""
    unit = cells[0].unit
    names = [c.strategy for c in cells]
    x = np.arange(len(cells))
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.3 * len(cells) + 2), 3.4))
    for ax, metric, title in zip(axes, ("id_mae", "ood_mae"), ("ID test", "OOD test"), strict=True):
        mean = np.array([c.stats[metric][0] for c in cells])
        std = np.nan_to_num(np.array([c.stats[metric][1] for c in cells]))
        ax.bar(
            x, np.nan_to_num(mean), yerr=std, capsize=4, color="C0" if metric == "id_mae" else "C3"
        )
        ax.set_xticks(x, names, rotation=30, ha="right")
        ax.set_title(title)
        ax.set_ylabel(f"MAE ({unit})")
    fig.suptitle(f"{cells[0].dataset} · {cells[0].split} · {cells[0].target}")
    fig.tight_layout()
    return save(fig, stem)


def _series(history: list[dict[str, float]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(step, value) of the evaluations that have ``key``."""
    pts = [(e["step"], e[key]) for e in history if key in e and np.isfinite(e[key])]
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts])


def plot_learning_curves(cells: Sequence[Cell], stem: Path) -> list[Path]:
    """Validation MAE against optimiser step, one thin line per seed, one colour per strategy;
    a second panel (log scale) with the training losses of the runs that trained a force-field
    task (MFT), when any did. Nothing is written when no run has two or more evaluations."""
    runs = [(k, c, r) for k, c in enumerate(cells) for r in c.runs if len(r.history) >= 2]
    if not runs:
        return []
    ff_runs = [x for x in runs if any(k in e for e in x[2].history for k in _FF_LOSSES)]
    n_panels = 2 if ff_runs else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(5.4 * n_panels, 3.6), squeeze=False)
    ax = axes[0][0]
    labelled: set[str] = set()
    for k, c, r in runs:
        step, val = _series(r.history, "val_mae")
        label = None if c.strategy in labelled else c.strategy
        labelled.add(c.strategy)
        ax.plot(step, val, color=f"C{k}", lw=1.0, alpha=0.8, marker=".", ms=3, label=label)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(f"validation MAE ({cells[0].unit})")
    ax.set_title("validation (one line per seed)", fontsize=9)
    ax.legend(fontsize=7)
    if ff_runs:
        ax = axes[0][1]
        for k, _c, r in ff_runs:
            for key, (_, style) in TRAIN_LOSSES.items():
                step, val = _series(r.history, key)
                keep = val > 0
                ax.plot(step[keep], val[keep], style, color=f"C{k}", lw=1.0, alpha=0.8)
        ax.set_yscale("log")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("mean training loss since last evaluation")
        ax.set_title("training losses of " + ", ".join(sorted({c.strategy for _, c, _ in ff_runs})),
                     fontsize=9)  # fmt: skip
        handles = [plt.Line2D([], [], ls=style, color="k") for _, style in TRAIN_LOSSES.values()]
        ax.legend(handles, [label for label, _ in TRAIN_LOSSES.values()], fontsize=7)
    fig.suptitle(f"{cells[0].dataset} · {cells[0].split} · {cells[0].target}")
    fig.tight_layout()
    return save(fig, stem)


def plot_tail_error(
    predictions: dict[str, pd.DataFrame], stem: Path, *, title: str, unit: str, n_bins: int = 12
) -> list[Path]:
    """Mean |error| against the reference value, per strategy, OOD test (solid) and ID (dashed).

    ``predictions`` maps strategy -> rows pooled over its seeds (columns partition, prediction,
    reference, in ``unit``). Bins are shared by all strategies: equal-width over the OOD range.
    """
    frames = [df for df in predictions.values() if len(df)]
    ood = pd.concat(frames)[lambda d: d["partition"] == "ood_test"] if frames else pd.DataFrame()
    ref = ood["reference"].to_numpy() if len(ood) else np.zeros(0)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    if ref.size:
        edges = np.linspace(
            ref.min(), ref.max() if ref.max() > ref.min() else ref.min() + 1, n_bins + 1
        )
        hist = ax.twinx()
        hist.hist(ref, bins=edges.tolist(), color="0.85", zorder=0)
        hist.set_ylabel("OOD molecules per bin", color="0.5")
        ax.set_zorder(hist.get_zorder() + 1)
        ax.patch.set_visible(False)
        for k, (strategy, df) in enumerate(predictions.items()):
            for part, style in (("ood_test", "-o"), ("id_test", "--")):
                d = df[df["partition"] == part]
                if not len(d):
                    continue
                centers, err, _, _ = binned_abs_error(d["reference"], d["prediction"], edges=edges)
                label = f"{strategy} ({PARTITION_TITLES[part]})"
                ax.plot(centers, err, style, color=f"C{k}", label=label, ms=3)
        ax.legend(fontsize=7)
    ax.set_xlabel(f"reference ({unit})")
    ax.set_ylabel(f"mean |error| ({unit})")
    ax.set_title(title)
    fig.tight_layout()
    return save(fig, stem)


def plot_parity(
    predictions: dict[str, pd.DataFrame], stem: Path, *, title: str, unit: str
) -> list[Path]:
    """Prediction against reference, one row per strategy, one column per test partition."""
    parts = [
        p
        for p in PARTITION_TITLES
        if any((df["partition"] == p).any() for df in predictions.values())
    ]
    parts = parts or ["id_test"]
    rows = max(1, len(predictions))
    fig, axes = plt.subplots(
        rows, len(parts), figsize=(3.2 * len(parts), 3.0 * rows), squeeze=False
    )
    for r, (strategy, df) in enumerate(predictions.items()):
        for c, part in enumerate(parts):
            ax = axes[r][c]
            d = df[df["partition"] == part]
            if len(d):
                ref, pred = d["reference"].to_numpy(), d["prediction"].to_numpy()
                ax.scatter(ref, pred, s=2, alpha=0.4, rasterized=True)
                lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
                ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
                ax.set_title(
                    f"{strategy}, {PARTITION_TITLES[part]}: MAE {mae(pred, ref):.4g}", fontsize=8
                )
            ax.set_xlabel(f"reference ({unit})", fontsize=8)
            ax.set_ylabel(f"prediction ({unit})", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return save(fig, stem)


def plot_tsne(
    coords: dict[str, np.ndarray],
    labels: np.ndarray,
    class_names: Sequence[str],
    stem: Path,
    *,
    title: str,
    scores: dict[str, float] | None = None,
) -> list[Path]:
    """t-SNE scatter coloured by class, one panel per model (same points in every panel)."""
    n = max(1, len(coords))
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 3.3 * rows), squeeze=False)
    cmap = plt.get_cmap("tab10" if len(class_names) <= 10 else "tab20")
    present = [k for k in range(len(class_names)) if (labels == k).any()]
    for ax, (name, xy) in zip(axes.flat, coords.items(), strict=False):
        for k in present:
            sel = labels == k
            ax.scatter(xy[sel, 0], xy[sel, 1], s=1.5, color=cmap(k % cmap.N), label=class_names[k],
                       rasterized=True)  # fmt: skip
        db = (scores or {}).get(name)
        ax.set_title(name if db is None else f"{name}\nDB (t-SNE) {db:.3g}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(coords) :]:
        ax.axis("off")
    handles = [plt.Line2D([], [], marker="o", ls="", color=cmap(k % cmap.N)) for k in present]
    fig.legend(
        handles, [class_names[k] for k in present], loc="center right", fontsize=8, markerscale=1.5
    )
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 0.86, 1))
    return save(fig, stem)


def report_plots(agg, out: Path) -> list[Path]:
    """Every report figure for an :class:`~atomcollapse.analysis.aggregate.Aggregate` under ``out``.

    Per block: MAE bars; learning curves from the included runs' histories (when any has two or
    more evaluations); and, from their predictions pooled over seeds, the tail plot (OOD error
    against the target value) and the parity plots.
    """
    from atomcollapse.analysis.runs import load_predictions

    written: list[Path] = []
    for block, cells in agg.blocks().items():
        base = slug(*block)
        written += plot_mae_bars(cells, out / f"mae_{base}")
        written += plot_learning_curves(cells, out / f"curves_{base}")
        preds: dict[str, pd.DataFrame] = {}
        for c in cells:
            frames = [df for r in c.runs if (df := load_predictions(r)) is not None]
            if frames:
                preds[c.strategy] = pd.concat(frames, ignore_index=True)
        if not preds:
            continue
        title = f"{block[0]} · {block[1]} · {block[2]} (seeds pooled)"
        unit = cells[0].unit
        if any((df["partition"] == "ood_test").any() for df in preds.values()):
            written += plot_tail_error(preds, out / f"tail_{base}", title=title, unit=unit)
        written += plot_parity(preds, out / f"parity_{base}", title=title, unit=unit)
    return written
