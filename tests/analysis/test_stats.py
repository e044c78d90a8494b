"""Confidence intervals over seeds, seed-paired differences and win counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from atomcollapse.analysis.runs import load_run
from atomcollapse.analysis.stats import mean_ci, paired, win_count
from tests.analysis.runfactory import make_run


def test_mean_ci_is_the_t_interval():
    x = [1.0, 2.0, 4.0]
    mean, lo, hi = mean_ci(x)
    half = sps.t.ppf(0.975, 2) * np.std(x, ddof=1) / math.sqrt(3)
    assert mean == pytest.approx(7 / 3) and (lo, hi) == pytest.approx((mean - half, mean + half))
    m1, lo1, hi1 = mean_ci([5.0])
    assert m1 == 5.0 and math.isnan(lo1) and math.isnan(hi1)
    assert all(math.isnan(v) for v in mean_ci([]))


def test_differences_are_paired_by_seed_within_a_block(tmp_path):
    ood = {("finetune", 0): 0.020, ("finetune", 1): 0.030, ("finetune", 2): 0.025,
           ("mft", 0): 0.018, ("mft", 1): 0.031, ("mft", 3): 0.010}  # fmt: skip
    runs = [load_run(make_run(tmp_path, strategy=s, seed=k, ood_mae=v))
            for (s, k), v in ood.items()]  # fmt: skip
    other = make_run(tmp_path, strategy="mft", seed=0, ood_mae=0.5, pretrained_hash="q" * 64)
    runs.append(load_run(other))  # another model: never paired with this model's finetune
    (p,) = paired(runs, "mft", "finetune")
    assert p.seeds == (0, 1)  # seed 2 has no mft run, seed 3 no finetune run
    mev = 27211.386245988  # meV per Hartree: the report unit of the gap
    assert p.differences == pytest.approx((-0.002 * mev, 0.001 * mev), rel=1e-6)
    assert p.a_better == 1 and not p.excludes_zero
    assert win_count([p]) == (1, 2)
    assert paired(runs, "mft", "scratch") == []


def test_report_shows_paired_differences_and_the_win_count(tmp_path):
    import json

    from atomcollapse.analysis.aggregate import aggregate
    from atomcollapse.analysis.report import render

    ood = {("scratch", 0): 0.04, ("scratch", 1): 0.05, ("finetune", 0): 0.030,
           ("finetune", 1): 0.030, ("mft", 0): 0.020, ("mft", 1): 0.035,
           ("linear-probe", 0): 0.045, ("linear-probe", 1): 0.04,
           ("lp-ft", 0): 0.025, ("lp-ft", 1): 0.028}  # fmt: skip
    runs = [load_run(make_run(tmp_path, strategy=s, seed=k, ood_mae=v))
            for (s, k), v in ood.items()]  # fmt: skip
    agg = aggregate(runs)
    md = render(agg, "md")
    assert "### Paired differences" in md
    assert "MFT better than finetune OOD in 1 of 2 (block, seed) pairs." in md
    rows = json.loads(render(agg, "json"))["paired"]
    ood_rows = {r["comparison"]: r for r in rows if r["metric"] == "ood_mae"}
    assert set(ood_rows) == {
        "mft - finetune",
        "finetune - scratch",
        "mft - scratch",
        "linear-probe - scratch",
        "lp-ft - finetune",
    }  # no l2-sp run: no row
    lpft = ood_rows["lp-ft - finetune"]
    assert lpft["a_better"] == 2 and lpft["mean"] == pytest.approx(-0.0035 * 27211.386245988)
    lp = ood_rows["linear-probe - scratch"]  # the teacher control's test
    assert lp["a_better"] == 1 and lp["mean"] == pytest.approx(-0.0025 * 27211.386245988)
    fs = ood_rows["finetune - scratch"]
    assert fs["a_better"] == 2 and fs["n"] == 2 and fs["unit"] == "meV"
    assert fs["mean"] == pytest.approx(-0.015 * 27211.386245988, rel=1e-6)
