"""End-to-end behaviour of ``atomcollapse train`` for all seven strategies (tiny models)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from atomcollapse.cli import main
from atomcollapse.data.store import open_store
from atomcollapse.models.checkpoint import load_checkpoint
from atomcollapse.splits.artifact import load_split
from atomcollapse.units import HARTREE_EV

STRATEGIES = ("scratch", "finetune", "finetune-llrd", "linear-probe", "mft", "lp-ft", "l2-sp")


@pytest.fixture(scope="module")
def runs(env, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for s in (*STRATEGIES, "finetune-again"):
        name = s.replace("-again", "")
        out[s] = root / s
        # atom-sized batches (3-7 atoms a molecule: 4-10 molecules a batch), forgetting scored
        # on the force-field store for every strategy (mft: held out of its own --ff-data)
        extra = ["--batch-size", "auto:30", "--ff-batch-size", "auto:40"] if name == "mft" else [
            "--batch-size", "auto:30", "--forgetting-data", str(env.ff)]  # fmt: skip
        assert main(env.train_args(out[s], name, *extra)) == 0
    return out


def _metrics(run):
    return json.loads((run / "metrics.json").read_text())


def _manifest(run):
    return json.loads((run / "manifest.json").read_text())


def _part(state, prefix):
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def _same(a, b):
    return all(torch.equal(a[k], b[k]) for k in a) and a.keys() == b.keys()


def test_every_strategy_sees_the_same_batches_and_head(runs):
    m = {s: _metrics(runs[s]) for s in STRATEGIES}
    orders = {s: m[s]["data_order"]["property"] for s in STRATEGIES}
    assert len(set(orders.values())) == 1
    assert len({m[s]["batches"]["property"] for s in STRATEGIES}) == 1
    heads = {_manifest(runs[s])["property_head_init_hash"] for s in STRATEGIES}
    assert len(heads) == 1
    assert "ff" in m["mft"]["data_order"] and m["mft"]["batches"]["ff"] > 0
    assert m["mft"]["steps"] == m["mft"]["batches"]["property"] + m["mft"]["batches"]["ff"]
    assert {_manifest(runs[s])["batch_size"] for s in STRATEGIES} == {"auto:30"}
    assert {_manifest(runs[s])["loss_convention"] for s in STRATEGIES} == {"deepmd"}


def test_history_holds_per_task_losses_and_step_counts(runs):
    for s in STRATEGIES:
        history = _metrics(runs[s])["history"]
        assert len(history) >= 2, s
        for entry in history:
            assert entry["train_property_loss"] > 0, s
            assert ("train_ff_energy_loss" in entry) == (s == "mft"), s
        assert history[-1]["steps_property"] == _metrics(runs[s])["batches"]["property"]
    mft = _metrics(runs["mft"])["history"]
    for entry in mft:
        assert entry["train_ff_force_loss"] > 0
        assert entry["steps_property"] + entry["steps_ff"] == entry["step"]
    log = (runs["mft"] / "train.log").read_text()
    assert "train_ff_force_loss=" in log and "steps_ff=" in log


def test_training_time_is_recorded_in_the_manifest_and_log_not_in_metrics(runs):
    for s in STRATEGIES:
        took = _manifest(runs[s])["train_seconds"]
        assert took["wall"] > 0 and took["cpu"] > 0, s
        assert not any("cpu" in k or "wall" in k for e in _metrics(runs[s])["history"] for k in e)
    assert " s, wall " in (runs["finetune"] / "train.log").read_text()


def test_forgetting_is_scored_on_the_same_held_out_structures_for_every_strategy(env, runs):
    f = {s: _metrics(runs[s])["forgetting"] for s in STRATEGIES}
    assert len({(x["content_hash"], x["n"]) for x in f.values()}) == 1
    assert f["finetune"]["n"] == 4  # a tenth of the 40 force-field structures
    befores = {json.dumps(x["before"], sort_keys=True) for x in f.values()}
    assert len(befores) == 1  # the same untouched pretrained model on the same structures
    # a frozen backbone under the untouched energy head has forgotten nothing, bit for bit
    assert f["linear-probe"]["after"] == f["linear-probe"]["before"]
    for s in ("scratch", "finetune", "mft", "l2-sp"):
        assert f[s]["after"]["force_mae_meV_per_A"] != f[s]["before"]["force_mae_meV_per_A"], s
    assert "trained by mft" in f["mft"]["head"] and "untouched" in f["finetune"]["head"]
    # drift: the same errors against the untouched model's own predictions; none for the probe
    assert all(v == 0.0 for v in f["linear-probe"]["drift"].values())
    for s in ("scratch", "finetune", "mft", "l2-sp"):
        d, a, b = f[s]["drift"], f[s]["after"], f[s]["before"]
        for key in ("force_mae_meV_per_A", "energy_mae_meV_per_atom"):
            # MAE is a distance: |after - before| <= drift <= after + before
            assert abs(a[key] - b[key]) - 1e-9 <= d[key] <= a[key] + b[key] + 1e-9, (s, key)
            assert d[key] > 0, (s, key)
    aux = _manifest(runs["mft"])["aux_data"]
    assert aux["n_held_out_forgetting"] == 4
    assert aux["n_structures"] == len(open_store(env.ff)) - 4


def test_same_seed_twice_gives_identical_results(runs):
    a, b = runs["finetune"], runs["finetune-again"]
    assert (a / "metrics.json").read_bytes() == (b / "metrics.json").read_bytes()
    assert (a / "predictions.csv").read_bytes() == (b / "predictions.csv").read_bytes()


def test_which_parameters_move(env, runs):
    pre, _ = load_checkpoint(env.ckpt)
    pre_bb = _part(pre.state_dict(), "backbone.")
    last = {s: load_checkpoint(runs[s] / "last.pt")[0].state_dict() for s in STRATEGIES}
    assert _same(_part(last["linear-probe"], "backbone."), pre_bb)
    for s in ("finetune", "finetune-llrd", "lp-ft", "l2-sp", "mft", "scratch"):
        assert not _same(_part(last[s], "backbone."), pre_bb), s
    pre_energy = _part(pre.state_dict(), "heads.energy.")
    assert not _same(_part(last["mft"], "heads.energy."), pre_energy)
    assert not _part(last["finetune"], "heads.energy.")


def test_run_directory_records_everything(env, runs):
    run = runs["mft"]
    for f in ("config.json", "manifest.json", "metrics.json", "predictions.csv", "train.log",
              "best.pt", "last.pt"):  # fmt: skip
        assert (run / f).is_file(), f
    assert not (run / "state.pt").exists()
    man = _manifest(run)
    store, split = open_store(env.mols), load_split(env.split)
    assert man["dataset"]["content_hash"] == store.content_hash
    assert man["split"]["hash"] == split.hash
    assert man["pretrained"]["hash"] == load_checkpoint(env.ckpt)[1]["hash"]
    assert man["aux_data"]["content_hash"] == open_store(env.ff).content_hash
    assert (man["mixing"], man["aux_weight"], man["aux_labels"]) == ("sample", 1.0, "reference")
    assert man["heads"]["energy"].startswith("pretrained") and "random" in man["heads"]["property"]
    assert man["status"] == "finished" and man["seeds"]["seed"] == 3
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["strategy"]["name"] == "mft" and cfg["target"] == "gap"
    m = _metrics(run)
    assert set(m["partitions"]) == {"val", "id_test", "ood_test"}
    ood = m["partitions"]["ood_test"]
    assert ood["mae_report"] == pytest.approx(ood["mae"] * HARTREE_EV * 1e3)
    assert m["unit"] == "Ha" and m["report_unit"] == "meV"
    pred = pd.read_csv(run / "predictions.csv")
    assert list(pred.columns) == ["id", "partition", "target", "prediction", "reference", "unit"]
    ood_rows = pred[pred.partition == "ood_test"]
    assert len(ood_rows) == len(split.indices("ood_test"))
    assert (ood_rows.prediction - ood_rows.reference).abs().mean() == pytest.approx(ood["mae"])
    ref = store.target("gap")[split.indices("ood_test")]
    assert sorted(ood_rows.reference) == pytest.approx(sorted(ref))
    assert m["best_val_mae"] == pytest.approx(m["partitions"]["val"]["mae"])


def test_finetuned_checkpoint_is_self_describing(env, runs):
    model, meta = load_checkpoint(runs["finetune"] / "best.pt")
    assert set(model.heads) == {"property"}
    assert meta["training_data_hash"] == open_store(env.mols).content_hash
    assert meta["extra"]["strategy"] == "finetune" and meta["extra"]["target"] == "gap"
    assert set(meta["elements"]) >= {"H", "C", "N", "O"}


def test_existing_run_needs_resume_or_overwrite(env, runs, capsys, tmp_path):
    run = runs["finetune"]
    before = (run / "metrics.json").read_bytes()
    capsys.readouterr()
    assert main(env.train_args(run, "finetune")) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and len(err.strip().splitlines()) == 1
    same = ["--batch-size", "auto:30", "--forgetting-data", str(env.ff)]
    assert main(env.train_args(run, "finetune", "--resume", *same)) == 0
    assert (run / "metrics.json").read_bytes() == before
    assert main(env.train_args(run, "finetune", "--resume", *same, "--lr", "0.5")) == 2
    assert "different setting 'optim'" in capsys.readouterr().err
