"""Learning curves: validation MAE and training losses against optimiser step."""

from __future__ import annotations

from atomcollapse.analysis.aggregate import aggregate
from atomcollapse.analysis.plots import report_plots
from atomcollapse.analysis.runs import load_runs
from tests.analysis.runfactory import make_history, make_run
from tests.analysis.test_forgetting import forgetting_study
from tests.analysis.test_report import study

STEM = "curves_qm9_property-tail-gap_gap"


def test_curves_written_when_runs_have_histories(tmp_path):
    agg = aggregate(load_runs([forgetting_study(tmp_path / "runs")]))
    written = report_plots(agg, tmp_path / "plots")
    png = tmp_path / "plots" / f"{STEM}.png"
    assert png in written and png.with_suffix(".svg") in written
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
    svg = png.with_suffix(".svg").read_text()
    assert "validation MAE (meV)" in svg and "FF force loss" in svg  # MFT losses panel


def test_curves_without_force_field_losses_have_one_panel(tmp_path):
    for seed in range(2):
        make_run(tmp_path / "runs", strategy="finetune", seed=seed,
                 history=make_history(3, final_mae=0.004))  # fmt: skip
    report_plots(aggregate(load_runs([tmp_path / "runs"])), tmp_path / "plots")
    svg = (tmp_path / "plots" / f"{STEM}.svg").read_text()
    assert "validation MAE (meV)" in svg and "FF force loss" not in svg


def test_no_curves_without_histories(tmp_path):
    study(tmp_path / "runs")  # old-style runs: no history
    make_run(tmp_path / "runs", strategy="mft", seed=9, history=make_history(1, final_mae=0.004))
    written = report_plots(aggregate(load_runs([tmp_path / "runs"])), tmp_path / "plots")
    assert written and not any(p.name.startswith("curves") for p in written)
    assert not list((tmp_path / "plots").glob("curves*"))
