"""Report aggregation: seed statistics, gains, flags, formats and the CLI."""

from __future__ import annotations

import io
import json
import math

import pandas as pd
import pytest

from atomcollapse.analysis.aggregate import aggregate
from atomcollapse.analysis.report import render, render_markdown
from atomcollapse.analysis.runs import find_runs, load_run, load_runs
from atomcollapse.cli import main
from atomcollapse.units import HARTREE_EV
from tests.analysis.runfactory import make_run

MEV = HARTREE_EV * 1000  # meV per Hartree

SCRATCH = ([0.004, 0.005, 0.006], [0.020, 0.024, 0.028])
FINETUNE = ([0.003, 0.004, 0.005], [0.022, 0.022, 0.022])
MFT = ([0.0037, 0.0039, 0.0041], [0.018, 0.018, 0.018])


def study(root, target="gap", scale=1.0):
    for strategy, (ids, oods) in (("scratch", SCRATCH), ("finetune", FINETUNE), ("mft", MFT)):
        for seed, (i, o) in enumerate(zip(ids, oods, strict=True)):
            make_run(root, strategy=strategy, seed=seed, target=target,
                     id_mae=i * scale, ood_mae=o * scale)  # fmt: skip
    return root


def cells_by_strategy(agg, target="gap"):
    return {c.strategy: c for c in agg.cells if c.target == target}


def test_mean_std_over_seeds_in_report_unit(tmp_path):
    agg = aggregate(load_runs([study(tmp_path)]))
    c = cells_by_strategy(agg)
    assert c["scratch"].unit == "meV"
    assert c["scratch"].n_seeds == 3
    mean, std = c["scratch"].stats["id_mae"]
    assert mean == pytest.approx(0.005 * MEV)
    assert std == pytest.approx(0.001 * MEV)  # sample std (ddof=1) of 4, 5, 6 mHa
    assert c["finetune"].stats["ood_mae"] == pytest.approx((0.022 * MEV, 0.0))
    assert c["mft"].values["ood_id_ratio"] == pytest.approx(0.018 / 0.0039)
    assert not agg.excluded and all(not x.flags for x in agg.cells)


def test_gains_against_scratch_and_finetune(tmp_path):
    agg = aggregate(load_runs([study(tmp_path)]))
    c = cells_by_strategy(agg)
    assert c["finetune"].values["gain_id_vs_scratch"] == pytest.approx(20.0)
    assert c["finetune"].values["gain_ood_vs_scratch"] == pytest.approx(100 * 0.002 / 0.024)
    assert c["mft"].values["gain_ood_vs_scratch"] == pytest.approx(25.0)
    assert c["mft"].values["gain_ood_vs_finetune"] == pytest.approx(100 * 0.004 / 0.022)
    assert c["mft"].values["gain_id_vs_finetune"] == pytest.approx(100 * 0.0001 / 0.004)
    assert math.isnan(c["scratch"].values["gain_id_vs_scratch"])  # no gain against itself
    # mft has the best value in every column, but a best is marked only where its 95% t interval
    # over seeds excludes the runner-up: OOD MAE (18 mHa every seed against finetune's 22) and
    # the OOD gain over finetune (18.2% every seed); not ID MAE (3.9 ± 0.5 mHa against
    # finetune's 4.0), OOD/ID (4.4..4.9 against scratch's 4.8) or the gains over scratch.
    assert c["mft"].best == {"ood_mae", "gain_ood_vs_finetune"}
    assert c["finetune"].best == set() and c["scratch"].best == set()


def test_a_single_seed_is_never_marked_best(tmp_path):
    for strategy, (ids, oods) in (("scratch", SCRATCH), ("finetune", FINETUNE), ("mft", MFT)):
        make_run(tmp_path, strategy=strategy, seed=0, id_mae=ids[0], ood_mae=oods[0])
    agg = aggregate(load_runs([tmp_path]))
    assert all(not c.best for c in agg.cells)


def test_summary_averages_gains_over_targets(tmp_path):
    study(tmp_path / "gap", "gap")
    # homo: finetune no better than scratch out of distribution, mft better on both.
    for strategy, i, o in (
        ("scratch", 0.004, 0.02),
        ("finetune", 0.003, 0.02),
        ("mft", 0.003, 0.015),
    ):
        for seed in range(3):
            make_run(tmp_path / "homo", strategy=strategy, seed=seed, target="homo",
                     id_mae=i, ood_mae=o)  # fmt: skip
    agg = aggregate(load_runs([tmp_path]))
    rows = {r.strategy: r for r in agg.summary}
    assert rows["finetune"].n_targets == 2
    assert rows["finetune"].values["gain_id_vs_scratch"] == pytest.approx((20.0 + 25.0) / 2)
    assert rows["finetune"].values["gain_ood_vs_scratch"] == pytest.approx(
        (100 * 0.002 / 0.024) / 2
    )
    assert rows["mft"].values["gain_ood_vs_scratch"] == pytest.approx((25.0 + 25.0) / 2)
    assert rows["mft"].ood_wins_vs_finetune == (2, 2)
    assert rows["scratch"].ood_wins_vs_finetune == (0, 2)
    assert math.isnan(rows["scratch"].values["gain_ood_vs_scratch"])


def test_mismatched_split_hash_is_left_out_and_said(tmp_path):
    study(tmp_path)
    odd = make_run(tmp_path, strategy="finetune", seed=7, id_mae=1.0, ood_mae=1.0,
                   split_hash="x" * 64)  # fmt: skip
    agg = aggregate(load_runs([tmp_path]))
    ft = cells_by_strategy(agg)["finetune"]
    assert ft.n_seeds == 3
    assert ft.stats["id_mae"][0] == pytest.approx(0.004 * MEV)  # the odd run is not averaged
    assert [r.path for r, _ in agg.excluded] == [odd.resolve()]
    assert "split hash" in agg.excluded[0][1]
    assert any("left out" in f for f in ft.flags)
    assert "split hash" in render_markdown(agg)


def test_mismatched_pretrained_checkpoint_is_left_out(tmp_path):
    study(tmp_path)
    make_run(tmp_path, strategy="mft", seed=3, pretrained_hash="q" * 64)
    make_run(tmp_path, strategy="scratch", seed=3, pretrained_hash=None)  # not voting
    agg = aggregate(load_runs([tmp_path]))
    reasons = [why for _, why in agg.excluded]
    assert len(reasons) == 1 and "pretrained checkpoint hash" in reasons[0]
    assert cells_by_strategy(agg)["scratch"].n_seeds == 4


def test_incomplete_group_unfinished_and_missing_metric(tmp_path):
    study(tmp_path)
    for seed in range(2):
        make_run(tmp_path, strategy="linear-probe", seed=seed, id_mae=0.008, ood_mae=0.03)
    make_run(tmp_path, strategy="linear-probe", seed=2, finished=False)
    make_run(tmp_path, strategy="mft", seed=5, ood_mae=None)
    agg = aggregate(load_runs([tmp_path]))
    c = cells_by_strategy(agg)
    assert c["linear-probe"].n_seeds == 2
    assert c["linear-probe"].flags[0] == "incomplete: 2 of 3 seeds"
    reasons = sorted(why for _, why in agg.excluded)
    assert reasons == ["missing metric ood_mae", "unfinished (no metrics.json)"]
    assert c["mft"].n_seeds == 3 and not c["mft"].flags[0].startswith("incomplete")
    assert not c["linear-probe"].best  # incomplete cells are not eligible for "best"


def test_repeated_seed_is_left_out(tmp_path):
    study(tmp_path)
    (tmp_path / "copy").mkdir()
    make_run(tmp_path / "copy", strategy="mft", seed=0, id_mae=0.1, ood_mae=0.1)
    agg = aggregate(load_runs([tmp_path]))
    assert [why for _, why in agg.excluded] == ["repeats seed 0"]


def test_csv_parses_back_and_json_is_valid(tmp_path):
    agg = aggregate(load_runs([study(tmp_path)]))
    df = pd.read_csv(io.StringIO(render(agg, "csv")))
    row = df.set_index("strategy").loc["mft"]
    assert row["unit"] == "meV" and row["n_seeds"] == 3
    assert row["ood_mae_mean"] == pytest.approx(0.018 * MEV, rel=1e-7)
    assert row["gain_ood_vs_finetune_pct"] == pytest.approx(100 * 0.004 / 0.022, rel=1e-7)
    data = json.loads(render(agg, "json"))
    assert {c["strategy"] for c in data["cells"]} == {"scratch", "finetune", "mft"}
    ft = next(c for c in data["cells"] if c["strategy"] == "finetune")
    assert ft["ood_mae_std"] == 0.0 and data["max_seeds"] == 3


def test_latex_and_markdown_carry_units_and_best_marks(tmp_path):
    agg = aggregate(load_runs([study(tmp_path)]))
    tex = render(agg, "latex")
    assert "ID MAE (meV)" in tex and "OOD MAE (meV)" in tex and r"(\%)" in tex
    assert r"\textbf{" in tex and r"$\pm$" in tex and "\x00" not in tex
    md = render(agg, "md")
    assert "| ID MAE (meV) |" in md and "**" in md
    # booktabs rules, scaled to a column
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"\hline" not in tex and tex.count(r"\resizebox{\columnwidth}{!}{%") == tex.count(
        r"\begin{tabular}"
    )


def test_each_cell_has_a_t_interval_of_its_mae_over_seeds(tmp_path):
    # scratch ID 4, 5, 6 mHa: mean 5, sem 1/sqrt(3), t(0.975, 2) = 4.3027
    agg = aggregate(load_runs([study(tmp_path)]))
    half = 4.302652729911275 * 0.001 / math.sqrt(3) * MEV
    low, high = cells_by_strategy(agg)["scratch"].intervals["id_mae"]
    assert (low, high) == pytest.approx((0.005 * MEV - half, 0.005 * MEV + half))
    assert cells_by_strategy(agg)["finetune"].intervals["ood_mae"] == pytest.approx(
        (0.022 * MEV, 0.022 * MEV)
    )  # the same OOD MAE every seed: an interval of zero width
    md = render(agg, "md")
    assert "| ID 95% CI (meV) |" in md and "| OOD 95% CI (meV) |" in md
    assert f"[{0.005 * MEV - half:.1f}, {0.005 * MEV + half:.1f}]" in md  # the decimals of 203.6
    row = next(c for c in json.loads(render(agg, "json"))["cells"] if c["strategy"] == "scratch")
    assert (row["id_mae_ci_low"], row["id_mae_ci_high"]) == pytest.approx((low, high))
    assert "ood_mae_ci_low" in pd.read_csv(io.StringIO(render(agg, "csv"))).columns
    assert "95\\% CI (meV)" in render(agg, "latex")


def test_single_seed_has_no_std(tmp_path):
    make_run(tmp_path, strategy="scratch", seed=0, target="alpha", unit="a0^3", report_unit=None,
             id_mae=0.3)  # fmt: skip
    agg = aggregate([load_run(p) for p in find_runs([tmp_path])])
    (cell,) = agg.cells
    assert cell.unit == "a0^3"
    assert cell.stats["id_mae"][0] == pytest.approx(0.3)
    row = json.loads(render(agg, "json"))["cells"][0]
    assert row["id_mae_std"] is None and row["id_mae_ci_low"] is None  # no interval from one seed
    assert "| - |" in render(agg, "md")


def test_cli_report_writes_every_format_and_plots(tmp_path, capsys):
    study(tmp_path / "runs")
    out = tmp_path / "out"
    assert main(["report", str(tmp_path / "runs"), "--format", "json", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed[: printed.rindex("}") + 1])["max_seeds"] == 3
    for name in ("report.md", "report.csv", "report.tex", "report.json", "summary.csv"):
        assert (out / name).stat().st_size > 0
    for kind in ("mae", "tail", "parity"):
        png = out / "plots" / f"{kind}_qm9_property-tail-gap_gap.png"
        svg = png.with_suffix(".svg")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000
        assert b"<svg" in svg.read_bytes()[:2000]


def test_cli_report_table_default(tmp_path, capsys):
    assert main(["report", str(study(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "(meV)" in out and "MAE" in out and "Summary" in out and "mft" in out


@pytest.mark.parametrize("case", ["missing", "empty", "format", "corrupt", "exists"])
def test_cli_report_bad_input(tmp_path, capsys, case):
    runs = study(tmp_path / "runs")
    args = ["report", str(runs)]
    if case == "missing":
        args = ["report", str(tmp_path / "nope")]
    elif case == "empty":
        (tmp_path / "empty").mkdir()
        args = ["report", str(tmp_path / "empty")]
    elif case == "format":
        args += ["--format", "xlsx"]
    elif case == "corrupt":
        bad = next(runs.iterdir()) / "metrics.json"
        bad.write_text("{not json")
        args += ["--format", "json"]
    elif case == "exists":
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "keep.txt").write_text("x")
        args += ["--out", str(tmp_path / "out")]
    rc = main(args)
    captured = capsys.readouterr()
    assert rc == 2
    if case == "corrupt":  # bad input: one line naming the file (issue 15)
        assert f"{bad}: corrupt JSON" in captured.err
    assert captured.err.startswith("error:") and len(captured.err.strip().splitlines()) == 1
    if case == "exists":
        assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_run_report_unit_and_prediction_conversion(tmp_path):
    from atomcollapse.analysis.runs import load_predictions

    path = make_run(tmp_path, strategy="finetune", seed=0, report_unit="eV", id_mae=0.01)
    rec = load_run(path)
    assert rec.unit == "eV" and rec.source_unit == "Ha"
    assert rec.metric("id_mae") == pytest.approx(0.01 * HARTREE_EV)
    assert rec.metric("val_mae") == pytest.approx(0.01 * HARTREE_EV)
    df = load_predictions(rec)
    err = (df["prediction"] - df["reference"]).abs()
    assert err[df["partition"] == "id_test"].to_numpy() == pytest.approx(0.01 * HARTREE_EV)
    assert set(df["unit"]) == {"eV"}


def test_unknown_unit_is_a_flagged_run(tmp_path):
    make_run(tmp_path, strategy="finetune", seed=0, unit="furlong", report_unit=None)
    (rec,) = load_runs([tmp_path])
    assert rec.problems and "furlong" in rec.problems[0]
    agg = aggregate([rec])
    assert agg.cells[0].n_seeds == 0 and "furlong" in agg.excluded[0][1]


def test_paper_figures_in_png_and_pdf_with_one_colour_per_strategy(tmp_path):
    from atomcollapse.analysis.plots import DPI, report_plots, strategy_colour

    study(tmp_path / "gap", "gap")
    study(tmp_path / "homo", "homo", scale=2.0)
    agg = aggregate(load_runs([tmp_path]))
    written = report_plots(agg, tmp_path / "plots")
    png, pdf = tmp_path / "plots" / "study.png", tmp_path / "plots" / "study.pdf"
    assert png in written and pdf in written
    assert pdf.read_bytes()[:5] == b"%PDF-"
    from PIL import Image

    with Image.open(png) as im:
        assert round(im.info["dpi"][0]) == DPI
    svg = (tmp_path / "plots" / "study.svg").read_text()
    for label in ("gap (property-tail-gap)", "homo (property-tail-homo)", "ID ceiling", "one seed"):
        assert label in svg, label
    # every figure draws a strategy in the same colour
    assert strategy_colour("mft") != strategy_colour("finetune")
    assert strategy_colour("mft") == strategy_colour("mft")
