"""Statistics over seeds: means with t confidence intervals, paired differences, win counts.

Runs of one (dataset, split, target, pretrained model) with the same seed saw the same batches in
the same order and started the property head from the same weights, so two strategies are
compared seed by seed: the difference ``a - b`` of a metric per seed, its mean and a 95% t
interval over seeds (scipy), and how many seeds ``a`` wins. With one seed the interval is NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from atomcollapse.analysis.metrics import t_interval
from atomcollapse.analysis.runs import RunRecord

#: the comparisons the evidence study reports (a - b; negative = a is better for errors); the
#: probe against scratch is the teacher control's test (the frozen representation holds the
#: target); lp-ft and l2-sp, the other ways to keep the pretrained weights, against finetune
PAIRS = (
    ("mft", "finetune"),
    ("finetune", "scratch"),
    ("mft", "scratch"),
    ("linear-probe", "scratch"),
    ("lp-ft", "finetune"),
    ("l2-sp", "finetune"),
)


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean and its two-sided t interval (NaN bounds below 2 values)."""
    x = [float(v) for v in values if v is not None and math.isfinite(v)]
    if not x:
        return math.nan, math.nan, math.nan
    low, high = t_interval(x, level)
    return float(np.mean(x)), low, high


@dataclass(frozen=True)
class Paired:
    """``a - b`` of ``metric`` over the seeds both strategies ran, in one block."""

    block: tuple[str, str, str, str]  # dataset, split, target, pretrained hash
    a: str
    b: str
    metric: str
    seeds: tuple[int, ...]
    differences: tuple[float, ...]

    @property
    def ci(self) -> tuple[float, float, float]:
        return mean_ci(self.differences)

    @property
    def a_better(self) -> int:
        """Seeds where ``a`` has the lower metric (an error)."""
        return sum(d < 0 for d in self.differences)

    @property
    def excludes_zero(self) -> bool:
        _, lo, hi = self.ci
        return math.isfinite(lo) and (hi < 0 or lo > 0)


def _block(r: RunRecord) -> tuple[str, str, str, str]:
    return (r.dataset, r.split, r.target, r.pretrained_hash or "-")


def paired(records: Iterable[RunRecord], a: str, b: str, metric: str = "ood_mae") -> list[Paired]:
    """Per block, the seed-matched differences ``a - b`` of ``metric`` (report unit)."""
    by: dict[tuple, dict[str, dict[int, float]]] = {}
    for r in records:
        if r.problems or r.seed is None or r.strategy not in (a, b):
            continue
        by.setdefault(_block(r), {}).setdefault(r.strategy, {})[r.seed] = r.metric(metric)
    out = []
    for block, runs in sorted(by.items()):
        seeds = sorted(set(runs.get(a, {})) & set(runs.get(b, {})))
        diffs = [runs[a][s] - runs[b][s] for s in seeds]
        keep = [(s, d) for s, d in zip(seeds, diffs, strict=True) if math.isfinite(d)]
        if keep:
            out.append(Paired(block, a, b, metric, tuple(s for s, _ in keep),
                              tuple(d for _, d in keep)))  # fmt: skip
    return out


def win_count(pairs: Iterable[Paired]) -> tuple[int, int]:
    """``(k, n)``: ``a`` better than ``b`` in k of n (block, seed) pairs."""
    pairs = list(pairs)
    return sum(p.a_better for p in pairs), sum(len(p.differences) for p in pairs)


def paired_rows(records: Iterable[RunRecord]) -> list[dict]:
    """The report's paired-difference rows: each of :data:`PAIRS` on ID and OOD MAE per block."""
    records = list(records)
    units = {_block(r): r.unit for r in records}
    rows = []
    for a, b in PAIRS:
        for metric in ("id_mae", "ood_mae"):
            for p in paired(records, a, b, metric):
                mean, lo, hi = p.ci
                rows.append({
                    "dataset": p.block[0], "split": p.block[1], "target": p.block[2],
                    "comparison": f"{a} - {b}", "metric": metric, "unit": units[p.block],
                    "mean": mean, "ci_low": lo, "ci_high": hi, "a_better": p.a_better,
                    "n": len(p.differences), "excludes_zero": p.excludes_zero,
                })  # fmt: skip
    return rows
