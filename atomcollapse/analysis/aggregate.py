"""Group runs into cells (dataset, split, target, strategy), average over seeds, compute gains.

Nothing is averaged silently: a run is left out of its cell's mean, with the reason recorded,
when it is unfinished or lacks a metric its block has, when its split, dataset or pretrained
checkpoint hash differs from the majority of its block (all strategies of one dataset, split
and target, which must share them), or when it repeats a seed. A cell with fewer seeds than
the most complete cell is kept but flagged "incomplete", and is not eligible for "best".

Forgetting (force-field MAE before/after adaptation) is optional: a block gets the ``ff_*``
statistics only when one of its included runs has them, and a cell whose forgetting numbers
come from fewer seeds than it averages, or from different force-field data, is flagged.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from atomcollapse.analysis.metrics import mean_std, relative_gain, t_interval
from atomcollapse.analysis.runs import FORGETTING_METRICS, RunRecord

BASELINES = ("scratch", "finetune")
METRICS = ("id_mae", "ood_mae", "id_rmse", "ood_rmse", "val_mae")
GAIN_COLUMNS = tuple(f"gain_{p}_vs_{b}" for b in BASELINES for p in ("id", "ood"))
#: Confidence of every interval over seeds: each cell's MAE interval, and the test for "best"
#: (a block's best value in a column is marked only when this t interval over its seeds
#: excludes the runner-up's value, so never with a single seed).
CONFIDENCE = 0.95
#: Metrics whose per-cell interval over seeds the report prints, as the column ``<metric>_ci``.
INTERVAL_METRICS = ("id_mae", "ood_mae")
CI_SUFFIX = "_ci"
#: Column -> True when lower is better (for marking the best value of a block).
LOWER_IS_BETTER = {
    "id_mae": True,
    "ood_mae": True,
    "ood_id_ratio": True,
    "ff_force_after": True,
    "ff_energy_after": True,
} | {g: False for g in GAIN_COLUMNS}


@dataclass
class Cell:
    """One (dataset, split, target, strategy): statistics over its included seeds."""

    dataset: str
    split: str
    target: str
    strategy: str
    unit: str
    runs: list[RunRecord] = field(default_factory=list)
    excluded: list[tuple[RunRecord, str]] = field(default_factory=list)
    stats: dict[str, tuple[float, float]] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # CONFIDENCE, t
    values: dict[str, float] = field(default_factory=dict)  # ood_id_ratio and gain columns
    flags: list[str] = field(default_factory=list)
    best: set[str] = field(default_factory=set)

    @property
    def block(self) -> tuple[str, str, str]:
        return (self.dataset, self.split, self.target)

    @property
    def n_seeds(self) -> int:
        return len(self.runs)

    @property
    def seeds(self) -> list[int | None]:
        return [r.seed for r in self.runs]

    @property
    def has_forgetting(self) -> bool:
        """Whether any included run measured forgetting (force-field MAE before/after)."""
        return any(m in r.metrics for r in self.runs for m in FORGETTING_METRICS)

    def mean(self, metric: str) -> float:
        return self.stats.get(metric, (math.nan, math.nan))[0]

    def value(self, column: str) -> float:
        """Mean of a metric, or a derived column (ratio, gains)."""
        return self.values[column] if column in self.values else self.mean(column)

    def interval(self, column: str) -> tuple[float, float] | None:
        """The interval an ``<metric>_ci`` report column shows (NaNs where there is none);
        None for any other column."""
        if not column.endswith(CI_SUFFIX):
            return None
        return self.intervals.get(column[: -len(CI_SUFFIX)], (math.nan, math.nan))


@dataclass
class SummaryRow:
    """Gains of one strategy averaged over the targets of a dataset (and split kind)."""

    dataset: str
    split_kind: str
    strategy: str
    n_targets: int
    values: dict[str, float]
    ood_wins_vs_finetune: tuple[int, int]
    flags: list[str] = field(default_factory=list)


@dataclass
class Aggregate:
    cells: list[Cell]
    summary: list[SummaryRow]
    excluded: list[tuple[RunRecord, str]]
    max_seeds: int

    def blocks(self) -> dict[tuple[str, str, str], list[Cell]]:
        out: dict[tuple[str, str, str], list[Cell]] = defaultdict(list)
        for c in self.cells:
            out[c.block].append(c)
        return dict(out)


def strategy_rank(name: str) -> tuple[int, str]:
    """Sort key: the registry's order of strategies (the study's), then others by name."""
    from atomcollapse.training.strategies import strategy_names

    order = strategy_names()
    return (order.index(name) if name in order else len(order), name)


def _majority_flags(runs: list[RunRecord], attr: str, what: str) -> dict[int, str]:
    """Reason for each run (by id) whose ``attr`` hash is not its block's clear majority."""
    hashes = [getattr(r, attr) for r in runs if getattr(r, attr)]
    if len(set(hashes)) <= 1:
        return {}
    counts = Counter(hashes).most_common()
    top = counts[0][1]
    tied = [h for h, c in counts if c == top]
    out = {}
    for r in runs:
        h = getattr(r, attr)
        if not h:
            continue
        if len(tied) > 1:
            out[id(r)] = f"{what} hash has no majority in its group ({len(counts)} different)"
        elif h != counts[0][0]:
            out[id(r)] = f"{what} hash {h[:12]} differs from its group's {counts[0][0][:12]}"
    return out


def aggregate(runs: list[RunRecord]) -> Aggregate:
    """Cells with mean/std and t intervals over seeds, OOD/ID ratio, gains vs scratch and
    finetune, best marks."""
    by_block: dict[tuple[str, str, str], list[RunRecord]] = defaultdict(list)
    for r in runs:
        by_block[(r.dataset, r.split, r.target)].append(r)
    cells: list[Cell] = []
    excluded: list[tuple[RunRecord, str]] = []
    for block in sorted(by_block):
        members = sorted(by_block[block], key=lambda r: (r.strategy, r.seed or 0, str(r.path)))
        reasons: dict[int, list[str]] = {id(r): list(r.problems) for r in members}
        for attr, what in (("split_hash", "split"), ("dataset_hash", "dataset"),
                           ("pretrained_hash", "pretrained checkpoint")):  # fmt: skip
            for rid, why in _majority_flags(members, attr, what).items():
                reasons[rid].append(why)
        usable = [r for r in members if not reasons[id(r)]]
        required = sorted({m for r in usable for m in ("id_mae", "ood_mae") if m in r.metrics})
        for r in usable:
            missing = [m for m in required if m not in r.metrics]
            if missing:
                reasons[id(r)].append(f"missing metric {', '.join(missing)}")
        by_strategy: dict[str, list[RunRecord]] = defaultdict(list)
        for r in members:
            by_strategy[r.strategy].append(r)
        for strategy in sorted(by_strategy, key=strategy_rank):
            cell = Cell(*block[:3], strategy=strategy, unit="")
            seen: set[int | None] = set()
            for r in by_strategy[strategy]:
                if not reasons[id(r)] and r.seed in seen:
                    reasons[id(r)].append(f"repeats seed {r.seed}")
                if reasons[id(r)]:
                    why = "; ".join(reasons[id(r)])
                    cell.excluded.append((r, why))
                    excluded.append((r, why))
                else:
                    seen.add(r.seed)
                    cell.runs.append(r)
            units = {r.unit for r in cell.runs} or {r.unit for r in by_strategy[strategy] if r.unit}
            cell.unit = next(iter(units)) if len(units) == 1 else "/".join(sorted(units))
            for m in METRICS:
                cell.stats[m] = mean_std([r.metric(m) for r in cell.runs])
            for m in INTERVAL_METRICS:
                cell.intervals[m] = t_interval([r.metric(m) for r in cell.runs], CONFIDENCE)
            if cell.excluded:
                cell.flags.append(f"{len(cell.excluded)} run(s) left out")
            unseen = sorted({z for r in cell.runs for z in r.unseen_elements})
            if unseen:
                k = sum(bool(r.unseen_elements) for r in cell.runs)
                cell.flags.append(f"{', '.join(unseen)} in val/test sets but in no training "
                                  f"structure ({k} of {cell.n_seeds} seeds)")  # fmt: skip
            cells.append(cell)
    max_seeds = max((c.n_seeds for c in cells), default=0)
    for c in cells:
        if c.n_seeds < max_seeds:
            c.flags.insert(0, f"incomplete: {c.n_seeds} of {max_seeds} seeds")
    agg = Aggregate(cells=cells, summary=[], excluded=excluded, max_seeds=max_seeds)
    for block_cells in agg.blocks().values():
        _forgetting(block_cells)
        _derive(block_cells, max_seeds)
    agg.summary = summarise(agg)
    return agg


def has_forgetting(cells: list[Cell]) -> bool:
    """Whether a block (its cells) shows forgetting columns."""
    return any(c.has_forgetting for c in cells)


def _forgetting(block: list[Cell]) -> None:
    """``ff_*`` statistics for every cell of a block that has forgetting data, and its flags."""
    if not has_forgetting(block):
        return
    data = {r.ff_hash or r.ff_data for c in block for r in c.runs if c.has_forgetting}
    for c in block:
        for m in FORGETTING_METRICS:
            c.stats[m] = mean_std([r.metric(m) for r in c.runs])
        k = sum(any(m in r.metrics for m in FORGETTING_METRICS) for r in c.runs)
        if 0 < k < c.n_seeds:
            c.flags.append(f"forgetting from {k} of {c.n_seeds} seeds")
        d = sum("ff_force_drift" in r.metrics for r in c.runs)
        if 0 < d < k:  # runs from before the drift was measured
            c.flags.append(f"drift from {d} of {c.n_seeds} seeds")
        if k and len(data) > 1:
            c.flags.append(f"forgetting measured on {len(data)} different force-field sets")


def _derive(block: list[Cell], max_seeds: int) -> None:
    base = {c.strategy: c for c in block if c.strategy in BASELINES}
    for c in block:
        id_m, ood_m = c.mean("id_mae"), c.mean("ood_mae")
        c.values["ood_id_ratio"] = ood_m / id_m if id_m and math.isfinite(id_m) else math.nan
        for b in BASELINES:
            bc = base.get(b)
            for p in ("id", "ood"):
                ref = bc.mean(f"{p}_mae") if bc and bc is not c else math.nan
                c.values[f"gain_{p}_vs_{b}"] = relative_gain(ref, c.mean(f"{p}_mae"))
    complete = [c for c in block if c.n_seeds == max_seeds]
    for col, lower in LOWER_IS_BETTER.items():
        vals = sorted(
            ((c.value(col), c) for c in complete if math.isfinite(c.value(col))),
            key=lambda x: x[0] if lower else -x[0],
        )
        if len(vals) < 2 or vals[0][0] == vals[1][0]:
            continue
        (_, best), (runner_up, _) = vals[0], vals[1]
        low, high = t_interval(_per_seed(best, col, base), CONFIDENCE)
        if (high < runner_up) if lower else (low > runner_up):
            best.best.add(col)


def _per_seed(c: Cell, col: str, base: dict[str, Cell]) -> list[float]:
    """The column's value for each seed of ``c`` (gains: against the baseline's run of the same
    seed, the one that saw the same batches)."""
    if col == "ood_id_ratio":
        return [r.metric("ood_mae") / r.metric("id_mae") for r in c.runs if r.metric("id_mae")]
    if col in GAIN_COLUMNS:
        _, part, _, b = col.split("_", 3)
        ref = {r.seed: r for r in base[b].runs} if b in base else {}
        return [relative_gain(ref[r.seed].metric(f"{part}_mae"), r.metric(f"{part}_mae"))
                for r in c.runs if r.seed in ref]  # fmt: skip
    return [r.metric(col) for r in c.runs]


def summarise(agg: Aggregate) -> list[SummaryRow]:
    """Per dataset (and split kind) and strategy: gains and OOD/ID ratio averaged over targets."""
    groups: dict[tuple[str, str, str], list[Cell]] = defaultdict(list)
    finetune: dict[tuple[str, str, str], Cell] = {}
    for c in agg.cells:
        kinds = {r.split_kind for r in c.runs} or {""}
        kind = kinds.pop() if len(kinds) == 1 else "mixed"
        groups[(c.dataset, kind, c.strategy)].append(c)
        if c.strategy == "finetune":
            finetune[c.block] = c
    n_targets: dict[tuple[str, str], int] = defaultdict(int)
    for (ds, kind, _), cells in groups.items():
        n_targets[(ds, kind)] = max(n_targets[(ds, kind)], len({c.target for c in cells}))
    rows = []
    order = sorted(groups, key=lambda k: (k[0], k[1], strategy_rank(k[2])))
    for ds, kind, strategy in order:
        cells = groups[(ds, kind, strategy)]
        values = {}
        for col in ("ood_id_ratio", *GAIN_COLUMNS):
            vals = [c.value(col) for c in cells if math.isfinite(c.value(col))]
            values[col] = sum(vals) / len(vals) if vals else math.nan
        pairs = [(c, finetune[c.block]) for c in cells if c.block in finetune]
        comparable = [
            (c, f) for c, f in pairs if math.isfinite(c.mean("ood_mae") - f.mean("ood_mae"))
        ]
        wins = sum(c.mean("ood_mae") < f.mean("ood_mae") for c, f in comparable)
        row = SummaryRow(ds, kind, strategy, len(cells), values, (wins, len(comparable)))
        if len(cells) < n_targets[(ds, kind)]:
            row.flags.append(f"{len(cells)} of {n_targets[(ds, kind)]} targets")
        if any(c.flags for c in cells):
            row.flags.append("includes flagged cells")
        rows.append(row)
    return rows
