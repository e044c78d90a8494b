"""Forgetting (force-field MAE before/after adaptation) in run records and every report format."""

from __future__ import annotations

import io
import json
import math

import pandas as pd
import pytest

from atomcollapse.analysis.aggregate import aggregate
from atomcollapse.analysis.report import render
from atomcollapse.analysis.runs import load_run, load_runs
from atomcollapse.cli import main
from tests.analysis.runfactory import make_forgetting, make_history, make_run
from tests.analysis.test_report import MEV, study

FORCE_HEADER = "FF force MAE after / before (meV/Å)"
ENERGY_HEADER = "FF energy MAE after / before (meV/atom)"
# mft, per seed: force after 40, 42, 44 meV/Å (before 30), energy after 5, 6, 7 meV/atom (before 4)
FORCE_AFTER, ENERGY_AFTER = (40.0, 42.0, 44.0), (5.0, 6.0, 7.0)


def forgetting_study(root, target="gap"):
    """Scratch without forgetting numbers; finetune with them (force after 60 meV/Å, energy after
    9 meV/atom, every seed); mft with them and with histories."""
    finetune = make_forgetting(force_after=60.0, force_before=30.0, energy_after=9.0,
                               energy_before=4.0)  # fmt: skip
    for seed in range(3):
        make_run(root, strategy="scratch", seed=seed, target=target)
        make_run(root, strategy="finetune", seed=seed, target=target, forgetting=finetune)
    for seed in range(3):
        ff = make_forgetting(force_after=FORCE_AFTER[seed], force_before=30.0,
                             energy_after=ENERGY_AFTER[seed], energy_before=4.0)  # fmt: skip
        make_run(root, strategy="mft", seed=seed, target=target, forgetting=ff,
                 history=make_history(4, final_mae=0.004, ff=True))  # fmt: skip
    return root


def md_row(md: str, strategy: str, header: str) -> str:
    """The cell of ``strategy``'s row under ``header`` in the first Markdown table having it."""
    lines = md.splitlines()
    head = next(i for i, line in enumerate(lines) if header in line)
    col = [h.strip() for h in lines[head].split("|")].index(header)
    for line in lines[head + 2 :]:
        cells = [x.strip() for x in line.split("|")]
        if len(cells) > 1 and cells[1] == strategy:
            return cells[col]
    raise AssertionError(f"no row {strategy}")


def test_run_record_reads_forgetting_and_history(tmp_path):
    ff = make_forgetting(force_after=42.0, force_before=30.0, energy_after=6.0, energy_before=4.0)
    hist = make_history(3, final_mae=0.004, ff=True)
    rec = load_run(make_run(tmp_path, strategy="mft", seed=0, forgetting=ff, history=hist))
    assert rec.metric("ff_force_after") == 42.0 and rec.metric("ff_force_before") == 30.0
    assert rec.metric("ff_energy_after") == 6.0 and rec.metric("ff_energy_before") == 4.0
    assert rec.ff_data == "ani-ff" and rec.ff_hash == "f" * 64
    assert [e["step"] for e in rec.history] == [10, 20, 30]
    assert rec.history[-1]["val_mae"] == pytest.approx(0.004 * MEV)  # Ha -> meV (report unit)
    assert rec.history[-1]["train_ff_force_loss"] == hist[-1]["train_ff_force_loss"]  # as written
    assert "best" not in rec.history[0]  # flags are not numbers


def test_old_run_has_no_forgetting_and_no_history(tmp_path):
    rec = load_run(make_run(tmp_path, strategy="finetune", seed=0))
    assert all(math.isnan(rec.metric(m)) for m in ("ff_force_after", "ff_energy_before"))
    assert rec.history == [] and rec.ff_data is None


def test_markdown_shows_forgetting_after_and_before(tmp_path):
    agg = aggregate(load_runs([forgetting_study(tmp_path)]))
    md = render(agg, "md")
    assert md_row(md, "mft", FORCE_HEADER) == "**42.00 ± 2.00** / 30.00"  # lowest after: best
    assert md_row(md, "mft", ENERGY_HEADER) == "**6.000 ± 1.000** / 4.000"
    assert md_row(md, "finetune", FORCE_HEADER) == "60.00 ± 0.00 / 30.00"
    assert md_row(md, "scratch", FORCE_HEADER) == "-"
    assert "forgetting of the pretraining task" in md


def test_csv_and_json_carry_forgetting_with_units_in_names(tmp_path):
    agg = aggregate(load_runs([forgetting_study(tmp_path)]))
    df = pd.read_csv(io.StringIO(render(agg, "csv"))).set_index("strategy")
    assert df.columns[-2:].tolist() == ["best", "flags"]
    mft = df.loc["mft"]
    assert mft["ff_force_after_meV_per_A_mean"] == pytest.approx(42.0)
    assert mft["ff_force_after_meV_per_A_std"] == pytest.approx(2.0)
    assert mft["ff_force_before_meV_per_A_mean"] == pytest.approx(30.0)
    assert mft["ff_energy_after_meV_per_atom_mean"] == pytest.approx(6.0)
    assert mft["ff_energy_before_meV_per_atom_mean"] == pytest.approx(4.0)
    assert mft["ff_data"] == "ani-ff" and "ff_force_after" in mft["best"]
    assert math.isnan(df.loc["scratch", "ff_force_after_meV_per_A_mean"])
    cells = {c["strategy"]: c for c in json.loads(render(agg, "json"))["cells"]}
    assert cells["mft"]["ff_energy_after_meV_per_atom_std"] == pytest.approx(1.0)
    assert cells["mft"]["ff_force_before_meV_per_A_std"] == 0.0
    assert cells["scratch"]["ff_force_after_meV_per_A_mean"] is None


def test_latex_and_rich_name_the_forgetting_units(tmp_path, capsys):
    forgetting_study(tmp_path)
    tex = render(aggregate(load_runs([tmp_path])), "latex")
    assert r"FF force MAE after / before (meV/\AA{})" in tex and "(meV/atom)" in tex
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "FF force" in out and "42.00" in out


def test_old_style_blocks_have_no_forgetting_columns(tmp_path):
    forgetting_study(tmp_path / "gap", "gap")
    study(tmp_path / "homo", "homo")  # old-style runs: no forgetting
    agg = aggregate(load_runs([tmp_path]))
    md = render(agg, "md")
    gap, homo = md.split("### qm9 · split property-tail-homo · homo")
    assert FORCE_HEADER in gap and ENERGY_HEADER in gap
    homo_table = homo.split("\n\n")[1]
    assert homo_table.startswith("| strategy") and "FF" not in homo_table
    cells = json.loads(render(agg, "json"))["cells"]
    assert all(not any(k.startswith("ff_") for k in c) for c in cells if c["target"] == "homo")
    old = aggregate(load_runs([tmp_path / "homo"]))
    assert "FF" not in render(old, "md") and "FF" not in render(old, "latex")
    assert not any(k.startswith("ff_") for k in pd.read_csv(io.StringIO(render(old, "csv"))))


def test_partial_forgetting_is_flagged(tmp_path):
    forgetting_study(tmp_path)
    make_run(tmp_path, strategy="mft", seed=3)  # no forgetting measured
    agg = aggregate(load_runs([tmp_path]))
    mft = next(c for c in agg.cells if c.strategy == "mft")
    assert mft.n_seeds == 4 and "forgetting from 3 of 4 seeds" in mft.flags
    assert mft.stats["ff_force_after"][0] == pytest.approx(42.0)  # averaged over those with it


DRIFT_HEADER = "FF force drift (meV/Å)"


def test_drift_from_the_pretrained_model_in_tables_and_figure(tmp_path):
    """Runs that measured the drift (force 25 meV/Å for finetune, 5 + seed for mft, 0 for the
    probe) get drift columns and a drift figure; a cell whose runs predate it shows "-"."""
    for seed in range(3):
        make_run(tmp_path, strategy="scratch", seed=seed)  # old-style: no drift entry
        for strategy, drift in (("finetune", 25.0), ("mft", 5.0 + seed), ("linear-probe", 0.0)):
            ff = make_forgetting(force_after=60.0, force_before=30.0, energy_after=9.0,
                                 energy_before=4.0, force_drift=drift, energy_drift=drift / 10)  # fmt: skip
            make_run(tmp_path, strategy=strategy, seed=seed, forgetting=ff)
    agg = aggregate(load_runs([tmp_path]))
    md = render(agg, "md")
    assert md_row(md, "mft", DRIFT_HEADER) == "6.000 ± 1.000"
    assert md_row(md, "linear-probe", DRIFT_HEADER) == "0.000 ± 0.000"
    assert md_row(md, "finetune", "FF energy drift (meV/atom)") == "2.500 ± 0.000"
    assert md_row(md, "scratch", DRIFT_HEADER) == "-"
    assert "own predictions" in md  # the caption says what drift is against
    df = pd.read_csv(io.StringIO(render(agg, "csv"))).set_index("strategy")
    assert df.loc["mft", "ff_force_drift_meV_per_A_mean"] == pytest.approx(6.0)
    assert df.loc["finetune", "ff_energy_drift_meV_per_atom_mean"] == pytest.approx(2.5)
    from atomcollapse.analysis.plots import plot_drift

    written = plot_drift(agg, tmp_path / "fig" / "drift")
    assert {p.suffix for p in written} == {".png", ".pdf", ".svg"}
    assert all(p.stat().st_size > 1000 for p in written)
    # a study without drift (older runs) draws no drift figure
    assert (
        plot_drift(aggregate(load_runs([forgetting_study(tmp_path / "old")])), tmp_path / "x") == []
    )


def test_drift_from_only_some_seeds_is_flagged(tmp_path):
    for seed, drift in ((0, None), (1, 5.0), (2, 7.0)):  # seed 0 predates the drift
        ff = make_forgetting(force_after=60.0, force_before=30.0, energy_after=9.0,
                             energy_before=4.0, force_drift=drift, energy_drift=1.0)  # fmt: skip
        make_run(tmp_path, strategy="finetune", seed=seed, forgetting=ff)
    cell = aggregate(load_runs([tmp_path])).cells[0]
    assert "drift from 2 of 3 seeds" in cell.flags
    assert cell.stats["ff_force_drift"][0] == pytest.approx(6.0)
