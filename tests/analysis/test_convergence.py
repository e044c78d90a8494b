"""The evidence study's convergence criterion: < 2% better over the last quarter of the steps."""

from __future__ import annotations

import json
import math

import pytest

from atomcollapse.analysis.aggregate import aggregate
from atomcollapse.analysis.convergence import convergence
from atomcollapse.analysis.report import render_markdown, report_dict
from atomcollapse.analysis.runs import load_runs
from tests.analysis.runfactory import make_run


def _hist(values, every=100):
    return [{"step": every * (i + 1), "val_mae": v} for i, v in enumerate(values)]


def test_best_so_far_at_three_quarters_against_the_end():
    # steps 100..800: 75% of 800 = 600 -> best up to step 600 is 1.0; best at the end 0.97
    c = convergence(_hist([3.0, 2.0, 1.5, 1.2, 1.1, 1.0, 0.99, 0.97]))
    assert c["val_start"] == 1.0 and c["val_end"] == 0.97
    assert c["improvement_percent"] == pytest.approx(3.0)
    assert c["flat"] is False
    # a worse value late does not count against it: best so far is kept
    c = convergence(_hist([3.0, 2.0, 1.5, 1.2, 1.1, 1.0, 1.4, 0.995]))
    assert c["improvement_percent"] == pytest.approx(0.5) and c["flat"] is True


def test_too_short_a_history_is_not_judged():
    assert convergence(_hist([1.0]))["flat"] is None
    assert math.isnan(convergence([])["improvement_percent"])


def test_report_lists_each_runs_convergence_and_cpu_time(tmp_path):
    still_falling = _hist([0.04, 0.03, 0.02, 0.01])
    flat = _hist([0.04, 0.011, 0.0101, 0.0100])
    a = make_run(tmp_path, strategy="finetune", seed=0, history=still_falling)
    make_run(tmp_path, strategy="scratch", seed=0, history=flat)
    m = json.loads((a / "manifest.json").read_text())
    m["train_seconds"] = {"wall": 130.0, "cpu": 120.5}
    m["n_train"] = 1987  # what the run trained on (after an element filter, say)
    (a / "manifest.json").write_text(json.dumps(m))
    agg = aggregate(load_runs([tmp_path]))
    rows = {r["strategy"]: r for r in report_dict(agg)["convergence"]}
    assert rows["finetune"]["flat"] is False and rows["scratch"]["flat"] is True
    assert rows["finetune"]["improvement_percent"] == pytest.approx(50.0)  # 20 -> 10 meV
    assert rows["finetune"]["val_end"] == pytest.approx(0.01 * 27211.386, rel=1e-4)  # Ha -> meV
    assert rows["finetune"]["cpu_seconds"] == 120.5
    assert rows["finetune"]["n_train"] == 1987 and rows["scratch"]["n_train"] is None
    md = render_markdown(agg)
    assert "### Convergence" in md and "Flat by the criterion: 1 of 2 runs." in md
    assert "| train n |" in md and "| 1,987 |" in md
