"""Figures (matplotlib, Agg backend), each saved as PNG and PDF at 300 dpi and as SVG; scatter
points are rasterised. One colour per strategy everywhere (:func:`strategy_colour`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


#: Raster resolution of the PNG and of the rasterised parts of the PDF (journal figures).
DPI = 300


def save(fig, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` (300 dpi, for papers) and ``stem.svg`` (for the web
    page), and close the figure."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf"), stem.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return paths


def strategy_colour(name: str) -> tuple[float, ...]:
    """One colour per strategy, the same in every figure (by the strategy registry's order)."""
    from atomcollapse.training.strategies import strategy_names

    names = strategy_names()
    cmap = plt.get_cmap("tab10")
    return tuple(cmap(names.index(name) % 10)) if name in names else (0.4, 0.4, 0.4, 1.0)


def plot_study(agg, stem: Path, *, confidence: float = 0.95) -> list[Path]:
    """The paper figure: one panel per (dataset, split, target) block on its own scale, ID (pale)
    and OOD (solid) MAE bars per strategy in the strategy's colour with their t interval over
    seeds, each seed as a dot, and a black tick on each OOD bar at that strategy's ID MAE (the
    ID ceiling its OOD error is compared against). Nothing is written for an empty aggregate."""
    from atomcollapse.analysis.metrics import t_interval

    blocks = list(agg.blocks().items())
    if not blocks:
        return []
    cols = min(4, len(blocks))
    rows = (len(blocks) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3.3 * cols, 2.9 * rows), squeeze=False)
    strategies: list[str] = []
    for ax, (block, cells) in zip(axes.flat, blocks, strict=False):
        for k, c in enumerate(cells):
            strategies += [] if c.strategy in strategies else [c.strategy]
            colour = strategy_colour(c.strategy)
            for j, (metric, alpha) in enumerate((("id_mae", 0.35), ("ood_mae", 1.0))):
                x = 3 * k + j
                seeds = [r.metric(metric) for r in c.runs if np.isfinite(r.metric(metric))]
                if not seeds:
                    continue
                mean = float(np.mean(seeds))
                low, high = t_interval(seeds, confidence)
                err = None if not np.isfinite(low) else [[mean - low], [high - mean]]
                ax.bar(x, mean, width=0.9, color=colour, alpha=alpha, edgecolor=colour,
                       yerr=err, capsize=2, error_kw={"lw": 0.8})  # fmt: skip
                ax.scatter(np.full(len(seeds), x), seeds, s=6, color="k", zorder=3, lw=0)
            ceiling = c.mean("id_mae")
            if np.isfinite(ceiling):
                ax.hlines(ceiling, 3 * k + 0.55, 3 * k + 1.45, colors="k", lw=1.2, zorder=4)
        ax.set_xticks([3 * k + 0.5 for k in range(len(cells))],
                      [c.strategy for c in cells], rotation=35, ha="right", fontsize=7)  # fmt: skip
        ax.set_ylim(bottom=0)
        ax.set_ylabel(f"MAE ({cells[0].unit})", fontsize=8)
        ax.set_title(f"{block[2]} ({block[1]})", fontsize=8)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(blocks) :]:
        ax.axis("off")
    handles: list[Any] = [plt.Rectangle((0, 0), 1, 1, color=strategy_colour(s)) for s in strategies]
    labels = list(strategies)
    handles += [plt.Rectangle((0, 0), 1, 1, color="0.5", alpha=0.35),
                plt.Rectangle((0, 0), 1, 1, color="0.5"),
                plt.Line2D([], [], color="k", lw=1.2),
                plt.Line2D([], [], marker="o", ls="", color="k", ms=3)]  # fmt: skip
    labels += ["ID test (pale)", "OOD test (solid)", "ID ceiling (same strategy's ID MAE)",
               "one seed"]  # fmt: skip
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=7,
               frameon=False, bbox_to_anchor=(0.5, -0.02))  # fmt: skip
    fig.suptitle(f"MAE per strategy: mean, {confidence:.0%} t interval over seeds", fontsize=9)
    fig.tight_layout(rect=(0, 0.1 + 0.02 * (len(labels) // 4), 1, 1))
    return save(fig, stem)


def plot_forgetting(agg, stem: Path) -> list[Path]:
    """Forgetting of the pretraining task per strategy: the energy head's force and energy MAE on
    held-out force-field structures after adaptation, as a multiple of the untouched model's
    (1 = nothing forgotten), one panel per block that measured it."""
    blocks = [(b, cs) for b, cs in agg.blocks().items()
              if any(np.isfinite(c.mean("ff_force_after")) for c in cs)]  # fmt: skip
    if not blocks:
        return []
    fig, axes = plt.subplots(1, len(blocks), figsize=(3.4 * len(blocks), 2.9), squeeze=False)
    for ax, (block, cells) in zip(axes.flat, blocks, strict=True):
        for k, c in enumerate(cells):
            for j, key in enumerate(("ff_force", "ff_energy")):
                ratios = [r.metric(f"{key}_after") / r.metric(f"{key}_before") for r in c.runs
                          if r.metric(f"{key}_before") > 0]  # fmt: skip
                ratios = [x for x in ratios if np.isfinite(x)]
                if not ratios:
                    continue
                x = 3 * k + j
                ax.bar(x, float(np.mean(ratios)), width=0.9, color=strategy_colour(c.strategy),
                       alpha=1.0 if j == 0 else 0.45, hatch=None if j == 0 else "//")  # fmt: skip
                ax.scatter(np.full(len(ratios), x), ratios, s=6, color="k", zorder=3, lw=0)
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        heights = [b.get_height() for b in ax.patches if b.get_height() > 0]
        if heights and max(heights) / min(heights) > 20:
            ax.set_yscale("log")
        ax.set_xticks([3 * k + 0.5 for k in range(len(cells))],
                      [c.strategy for c in cells], rotation=35, ha="right", fontsize=7)  # fmt: skip
        ax.set_ylabel("FF MAE after / before (×)", fontsize=8)
        ax.set_title(f"{block[2]} ({block[1]})", fontsize=8)
    fig.legend([plt.Rectangle((0, 0), 1, 1, color="0.4"),
                plt.Rectangle((0, 0), 1, 1, color="0.4", alpha=0.45, hatch="//")],
               ["forces", "energy per atom"], loc="lower center", ncol=2, fontsize=7,
               frameon=False)  # fmt: skip
    fig.suptitle("Forgetting of the pretraining task (1 = as pretrained)", fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return save(fig, stem)


def plot_drift(agg, stem: Path) -> list[Path]:
    """How far adaptation moved the pretrained function: the energy head's force and energy MAE
    against the untouched pretrained model's own predictions on the held-out force-field
    structures, per strategy (mean bar, one dot per seed), one column of panels per block that
    measured it. Unlike :func:`plot_forgetting` it does not depend on how well the pretrained
    model matches the force-field store's reference labels."""
    blocks = [(b, cs) for b, cs in agg.blocks().items()
              if any(np.isfinite(c.mean("ff_force_drift")) for c in cs)]  # fmt: skip
    if not blocks:
        return []
    fig, axes = plt.subplots(2, len(blocks), figsize=(3.4 * len(blocks), 4.6), squeeze=False)
    rows = (
        ("ff_force_drift", "force drift (meV/Å)"),
        ("ff_energy_drift", "energy drift (meV/atom)"),
    )
    for j, (block, cells) in enumerate(blocks):
        for i, (key, label) in enumerate(rows):
            ax = axes[i, j]
            for k, c in enumerate(cells):
                vals = [v for r in c.runs if np.isfinite(v := r.metric(key))]
                if not vals:
                    continue
                ax.bar(k, float(np.mean(vals)), width=0.8, color=strategy_colour(c.strategy))
                ax.scatter(np.full(len(vals), k), vals, s=6, color="k", zorder=3, lw=0)
            heights = [b.get_height() for b in ax.patches]
            positive = [h for h in heights if h > 0]
            if positive and len(positive) == len(heights) and max(positive) / min(positive) > 20:
                ax.set_yscale("log")  # a zero bar (the probe) keeps the scale linear
            for b in ax.patches:
                if b.get_height() == 0:
                    ax.annotate("0", (b.get_x() + b.get_width() / 2, 0), ha="center",
                                va="bottom", fontsize=7)  # fmt: skip
            ax.set_xticks(range(len(cells)), [c.strategy for c in cells] if i else [],
                          rotation=35, ha="right", fontsize=7)  # fmt: skip
            ax.set_ylabel(label, fontsize=8)
            if i == 0:
                ax.set_title(f"{block[2]} ({block[1]})", fontsize=8)
    fig.suptitle("Drift from the pretrained model on its own task (0 = unchanged)", fontsize=9)
    fig.tight_layout()
    return save(fig, stem)


def plot_mae_bars(cells: Sequence[Cell], stem: Path) -> list[Path]:
    """ID and OOD MAE per strategy of one block, mean with std over seeds as error bars."""
    unit = cells[0].unit
    names = [c.strategy for c in cells]
    x = np.arange(len(cells))
    fig, axes = plt.subplots(1, 2, figsize=(max(6.0, 1.3 * len(cells) + 2), 3.4))
    for ax, metric, title in zip(axes, ("id_mae", "ood_mae"), ("ID test", "OOD test"), strict=True):
        mean = np.array([c.stats[metric][0] for c in cells])
        std = np.nan_to_num(np.array([c.stats[metric][1] for c in cells]))
        ax.bar(x, np.nan_to_num(mean), yerr=std, capsize=4,
               color=[strategy_colour(n) for n in names],
               alpha=0.45 if metric == "id_mae" else 1.0)  # fmt: skip
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
    for _, c, r in runs:
        step, val = _series(r.history, "val_mae")
        label = None if c.strategy in labelled else c.strategy
        labelled.add(c.strategy)
        ax.plot(step, val, color=strategy_colour(c.strategy), lw=1.0, alpha=0.8, marker=".",
                ms=3, label=label)  # fmt: skip
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(f"validation MAE ({cells[0].unit})")
    ax.set_title("validation (one line per seed)", fontsize=9)
    ax.legend(fontsize=7)
    if ff_runs:
        ax = axes[0][1]
        for _, fc, r in ff_runs:
            for key, (_, style) in TRAIN_LOSSES.items():
                step, val = _series(r.history, key)
                keep = val > 0
                ax.plot(step[keep], val[keep], style, color=strategy_colour(fc.strategy), lw=1.0,
                        alpha=0.8)  # fmt: skip
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
    legend_title: str | None = None,
) -> list[Path]:
    """t-SNE scatter coloured by class, one panel per model (same points in every panel), one
    legend for all panels (``legend_title`` says what the colours are)."""
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
        handles,
        [class_names[k] for k in present],
        loc="center right",
        fontsize=8,
        markerscale=1.5,
        title=legend_title,
        title_fontsize=7,
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

    written: list[Path] = [
        *plot_study(agg, out / "study"),
        *plot_forgetting(agg, out / "forgetting"),
        *plot_drift(agg, out / "drift"),
    ]
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


#: Collapse measure -> (axis label, reference value of the pretrained model).
COLLAPSE_MEASURES = {
    "db_tsne_ratio": ("Davies-Bouldin on t-SNE / pretrained (higher = more overlap)", 1.0),
    "cka": ("linear CKA with the pretrained embeddings (1 = same)", 1.0),
    "w1_sliced": ("sliced W1 from the pretrained embeddings (0 = same)", 0.0),
}


def plot_collapse_measures(rows: Sequence[dict], stem: Path, *, title: str) -> list[Path]:
    """The collapse measures per adapted model (``"<strategy> s<seed>"`` rows of a collapse
    result), one panel per measure and embedding set, bars in the strategy's colour, the
    pretrained model's value dashed."""
    sets = sorted({r["set"] for r in rows if r["model"] != "pretrained"})
    if not sets:
        return []
    fig, axes = plt.subplots(len(sets), len(COLLAPSE_MEASURES),
                             figsize=(3.3 * len(COLLAPSE_MEASURES), 2.6 * len(sets)),
                             squeeze=False)  # fmt: skip
    for i, set_name in enumerate(sets):
        adapted = [r for r in rows if r["set"] == set_name and r["model"] != "pretrained"]
        for j, (key, (label, ref)) in enumerate(COLLAPSE_MEASURES.items()):
            ax = axes[i][j]
            vals = [float(r.get(key, np.nan)) for r in adapted]
            colours = [strategy_colour(str(r["model"]).split(" ")[0]) for r in adapted]
            ax.bar(np.arange(len(adapted)), np.nan_to_num(vals), color=colours)
            ax.axhline(ref, color="k", lw=0.8, ls="--")
            ax.set_xticks(np.arange(len(adapted)), [r["model"] for r in adapted], rotation=35,
                          ha="right", fontsize=7)  # fmt: skip
            ax.set_title(f"{set_name}: {label}", fontsize=7)
            ax.tick_params(axis="y", labelsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save(fig, stem)
