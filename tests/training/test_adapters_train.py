"""Training with a bundled pretrained model (ANI-1x member 0): every strategy, element filtering,
MFT with pseudo-labels from a frozen copy. Skips when torchani is not installed."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import torch

from atomcollapse.cli import main
from atomcollapse.data.store import open_store
from atomcollapse.models import adapters
from atomcollapse.models.checkpoint import load_checkpoint
from atomcollapse.splits.artifact import load_split
from atomcollapse.training.config import load_config
from atomcollapse.training.distributed import DistInfo
from atomcollapse.training.train import TrainInputs, build_session, check_inputs
from tests.training.conftest import write_split
from tests.training.synthetic import write_ff_store, write_molecule_store

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torchani") is None, reason="the 'ani' extra (torchani) is absent"
)

STRATEGIES = ("scratch", "finetune", "finetune-llrd", "linear-probe", "mft", "lp-ft", "l2-sp")
ANI = "ani1x:0"


@pytest.fixture(scope="module")
def ani_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("ani")
    mols = write_molecule_store(root / "hcno", n=24, seed=5, name="hcno")
    fluoro = write_molecule_store(root / "fluoro", n=40, seed=6, name="fluoro",
                                  elements=(1, 6, 7, 8, 9))  # fmt: skip
    return {
        "root": root,
        "mols": mols,
        "split": write_split(mols, root / "hcno-split"),
        "ff": write_ff_store(root / "ff", n=12),
        "fluoro": fluoro,
        "fluoro_split": write_split(fluoro, root / "fluoro-split", seed=2),
    }


def _args(data, split, out, strategy, *extra):
    return ["train", "--data", str(data), "--split", str(split), "--target", "gap",
            "--strategy", strategy, "--seed", "0", "--out", str(out), "--steps", "2",
            "--batch-size", "4", "--device", "cpu", "--no-progress", "--pretrained", ANI,
            *extra]  # fmt: skip


def _json(path):
    return json.loads(path.read_text())


def _backbone(state):
    return {k: v for k, v in state.items() if k.startswith("backbone.")}


def _max_change(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in a if a[k].numel())


def test_every_strategy_trains_two_steps_from_ani(ani_env, tmp_path):
    pre, _, digest = adapters.load_pretrained_with_meta(ANI)
    pre_bb = _backbone(pre.state_dict())
    last = {}
    for s in STRATEGIES:
        extra = ("--ff-data", str(ani_env["ff"])) if s == "mft" else ()
        run = tmp_path / s
        assert main(_args(ani_env["mols"], ani_env["split"], run, s, *extra)) == 0, s
        m, man = _json(run / "metrics.json"), _json(run / "manifest.json")
        assert m["steps"] == 2 and set(m["partitions"]) == {"val", "id_test", "ood_test"}
        assert all(np.isfinite(p["mae"]) for p in m["partitions"].values())
        assert man["pretrained"]["hash"] == digest and man["pretrained_path"] == ANI
        model, meta = load_checkpoint(run / "last.pt")
        assert model.backbone.model_args()["type"] == "ani"
        assert meta["elements"] == ["H", "C", "N", "O"]
        last[s] = _backbone(model.state_dict())
    assert _max_change(last["linear-probe"], pre_bb) == 0.0
    for s in ("finetune", "finetune-llrd", "mft", "l2-sp"):  # two Adam steps of lr 1e-3
        assert 0.0 < _max_change(last[s], pre_bb) < 0.01, s
    assert _max_change(last["scratch"], pre_bb) > 0.05  # same architecture, random weights
    mft = _json(tmp_path / "mft" / "manifest.json")
    assert mft["aux_labels"] == "reference" and mft["heads"]["energy"].startswith("pretrained")


def _partition_rows(store, split_path):
    split = load_split(split_path)
    numbers, offsets = np.asarray(store.numbers), np.asarray(store.offsets)
    has_f = np.array([(numbers[offsets[i] : offsets[i + 1]] == 9).any() for i in range(len(store))])
    return {p: split.indices(p) for p in ("train", "val", "id_test", "ood_test")}, has_f


def test_unsupported_elements_are_refused_or_dropped_and_recorded(ani_env, tmp_path, capsys):
    data, split = ani_env["fluoro"], ani_env["fluoro_split"]
    out = tmp_path / "refused"
    capsys.readouterr()
    assert main(_args(data, split, out, "finetune")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "elements F" in err
    assert "--drop-unsupported-elements" in err and not out.exists()

    run = tmp_path / "dropped"
    assert main(_args(data, split, run, "finetune", "--drop-unsupported-elements")) == 0
    rows, has_f = _partition_rows(open_store(data), split)
    man = _json(run / "manifest.json")
    expected = {p: int(has_f[r].sum()) for p, r in rows.items()}
    assert all(expected.values())  # every partition had F structures to drop
    assert man["dropped"] == expected and man["drop_unsupported_elements"] is True
    assert man["n_train"] == len(rows["train"]) - expected["train"]
    m = _json(run / "metrics.json")
    for p in ("val", "id_test", "ood_test"):
        assert m["partitions"][p]["n"] == len(rows[p]) - expected[p]
    pred = pd.read_csv(run / "predictions.csv")
    ids = np.asarray(open_store(data).ids)
    assert not set(pred["id"]) & set(ids[has_f])
    log = (run / "train.log").read_text()
    assert f"left out {expected['train']} of {len(rows['train'])} train structures" in log
    assert _json(run / "config.json")["drop_unsupported_elements"] is True


def test_mft_pseudo_labels_come_from_a_frozen_copy(ani_env, tmp_path):
    # the aux store needs no labels in pseudo mode: plain molecules as off-equilibrium structures
    aux = write_molecule_store(tmp_path / "aux", n=8, seed=11, name="aux")
    cfg = load_config(None, {"target": "gap", "seed": 0, "strategy.name": "mft", "steps": 4,
                             "batch_size": 4, "device": "cpu", "optim.lr": 0.05,
                             "strategy.labels": "pseudo",
                             "strategy.mixing": "sum"})  # fmt: skip
    inp = TrainInputs(data=str(ani_env["mols"]), split=ani_env["split"], out=tmp_path / "run",
                      pretrained=ANI, ff_data=str(aux))  # fmt: skip
    sess = build_session(inp, cfg, check_inputs(inp, cfg), DistInfo(), torch.device("cpu"))
    ff = sess.loop.tasks["ff"]
    rows = ff.stream.rows
    reference = adapters.load_pretrained(ANI).eval()
    batch = ff.make_batch(rows)
    out = reference(batch, tasks=("energy",), compute_forces=True)
    assert torch.allclose(batch.labels["energy"], out["energy"].detach(), atol=1e-4)
    assert torch.allclose(batch.labels["forces"], out["forces"].detach(), atol=1e-4)
    labels = ff.make_batch.__self__.labels  # the ForceFieldTask's (energy, forces) arrays
    energy0 = labels[0].copy()
    head0 = [p.detach().clone() for p in sess.model.heads["energy"].parameters()]
    sess.model.train()
    for _ in range(4):
        sess.loop.step()
    moved = [p.detach() for p in sess.model.heads["energy"].parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(head0, moved, strict=True))
    assert np.array_equal(ff.make_batch(rows).labels["energy"], batch.labels["energy"])
    assert np.array_equal(labels[0], energy0)

    run = tmp_path / "cli"
    argv = _args(ani_env["mols"], ani_env["split"], run, "mft", "--ff-data", str(aux),
                 "--labels", "pseudo")  # fmt: skip
    assert main(argv) == 0
    man = _json(run / "manifest.json")
    assert man["aux_labels"] == "pseudo" and man["aux_data"]["labels"] == "pseudo"
    assert man["aux_label_source"].startswith("frozen copy of the pretrained model")
    assert man["strategy"]["labels"] == "pseudo"


def test_reference_labels_need_a_labelled_store(ani_env, tmp_path, capsys):
    aux = write_molecule_store(tmp_path / "aux", n=4, seed=12, name="aux")
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(_args(ani_env["mols"], ani_env["split"], out, "mft", "--ff-data", str(aux))) == 2
    assert "no target 'energy'" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize(("name", "needle"), [("ani1x:9", "model_index"),
                                               ("sevennet-0:1", "single model")])  # fmt: skip
def test_bad_pretrained_names_exit_2(ani_env, tmp_path, capsys, name, needle):
    argv = _args(ani_env["mols"], ani_env["split"], tmp_path / "run", "finetune")
    argv[argv.index("--pretrained") + 1] = name
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and not (tmp_path / "run").exists()
