"""Training from SO3LR (``--pretrained so3lr``): finetune, linear probe, MFT with pseudo-labels
from a frozen copy, and the scratch arm, two steps each on a tiny synthetic store; fluorine kept;
bad names refused. Skips when so3krates-torch is not installed."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from atomcollapse.cli import main
from atomcollapse.data.store import open_store
from atomcollapse.models import adapters
from atomcollapse.models.checkpoint import load_checkpoint
from atomcollapse.splits.artifact import load_split
from tests.training.conftest import write_split
from tests.training.synthetic import write_molecule_store
from tests.training.test_adapters_train import _backbone, _json, _max_change

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("so3krates_torch") is None,
    reason="the 'so3lr' extra (so3krates-torch==0.2.1) is not installed",
)


def test_strategies_train_two_steps_from_so3lr(tmp_path):
    mols = write_molecule_store(tmp_path / "mols", n=24, seed=5, name="mols")
    split = write_split(mols, tmp_path / "split")
    aux = write_molecule_store(tmp_path / "aux", n=8, seed=11, name="aux")  # unlabelled: pseudo
    pre, _, digest = adapters.load_pretrained_with_meta("so3lr")
    pre_bb = _backbone(pre.state_dict())
    runs = {
        "finetune": (), "linear-probe": (), "scratch": (),
        "mft": ("--ff-data", str(aux), "--labels", "pseudo"),
    }  # fmt: skip
    last = {}
    for strategy, extra in runs.items():
        run = tmp_path / strategy
        argv = ["train", "--data", str(mols), "--split", str(split), "--target", "gap",
                "--strategy", strategy, "--seed", "0", "--out", str(run), "--steps", "2",
                "--batch-size", "4", "--device", "cpu", "--no-progress",
                "--pretrained", "so3lr", *extra]  # fmt: skip
        assert main(argv) == 0, strategy
        m, man = _json(run / "metrics.json"), _json(run / "manifest.json")
        assert m["steps"] == 2 and all(np.isfinite(p["mae"]) for p in m["partitions"].values())
        assert man["pretrained"]["hash"] == digest and man["pretrained_path"] == "so3lr"
        model, meta = load_checkpoint(run / "last.pt")
        assert model.backbone.model_args() == {"type": "so3lr", "weights": "so3lr"}
        assert meta["elements"] == ["H", "C", "N", "O", "F", "P", "S", "Cl"]
        last[strategy] = (model, _backbone(model.state_dict()))
    assert _max_change(last["linear-probe"][1], pre_bb) == 0.0
    assert 0.0 < _max_change(last["finetune"][1], pre_bb) < 0.01  # two Adam steps of lr 1e-3
    assert 0.0 < _max_change(last["mft"][1], pre_bb) < 0.01
    assert _max_change(last["scratch"][1], pre_bb) > 0.05  # same architecture, random weights
    mft = _json(tmp_path / "mft" / "manifest.json")
    assert mft["aux_labels"] == "pseudo" and mft["heads"]["energy"].startswith("pretrained")
    mft_model = last["mft"][0]
    assert mft_model.heads["energy"].head_args()["type"] == "so3lr-energy"
    moved = {
        name.split(".")[0]
        for name, p in mft_model.heads["energy"].named_parameters()
        if not np.array_equal(
            p.detach().numpy(), pre.heads["energy"].get_parameter(name).detach().numpy()
        )
    }
    assert moved == {"atomic_energy", "zbl", "charges", "hirshfeld"}  # MFT trains the whole head


def test_fluorine_is_kept_and_a_member_index_is_refused(tmp_path, capsys):
    data = write_molecule_store(tmp_path / "fluoro", n=24, seed=6, name="fluoro",
                                elements=(1, 6, 7, 8, 9))  # fmt: skip
    split = write_split(data, tmp_path / "split", seed=2)
    argv = ["train", "--data", str(data), "--split", str(split), "--target", "gap",
            "--strategy", "finetune", "--seed", "0", "--out", str(tmp_path / "run"),
            "--steps", "1", "--batch-size", "4", "--device", "cpu", "--no-progress",
            "--pretrained", "so3lr"]  # fmt: skip
    assert main(argv) == 0
    train = load_split(split).indices("train")
    store = open_store(data)
    numbers, offsets = np.asarray(store.numbers), np.asarray(store.offsets)
    assert any((numbers[offsets[r] : offsets[r + 1]] == 9).any() for r in train)
    assert _json(tmp_path / "run" / "manifest.json")["n_train"] == len(train)  # none dropped
    argv[argv.index("so3lr")] = "so3lr:1"
    argv[argv.index(str(tmp_path / "run"))] = str(tmp_path / "refused")
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown so3lr weights" in err
    assert not (tmp_path / "refused").exists()
