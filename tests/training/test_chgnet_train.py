"""Training from CHGNet (``--pretrained chgnet``) on a tiny periodic store: finetune,
linear-probe, mft with pseudo-labels and scratch, checkpoints that reload, a bad version.
Skips when chgnet is not installed."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from atomcollapse.cli import main
from atomcollapse.models import adapters
from atomcollapse.models.checkpoint import load_checkpoint
from tests.training.conftest import write_split
from tests.training.synthetic import write_crystal_store

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("chgnet") is None, reason="the 'chgnet' extra (chgnet) is absent"
)


@pytest.fixture(scope="module")
def crystals(tmp_path_factory):
    root = tmp_path_factory.mktemp("chgnet")
    store = write_crystal_store(root / "crystals", n=20, seed=3)
    return {"store": store, "split": write_split(store, root / "split"),
            "aux": write_crystal_store(root / "aux", n=6, seed=4, name="aux")}  # fmt: skip


def _args(env, out, strategy, *extra):
    return ["train", "--data", str(env["store"]), "--split", str(env["split"]), "--target", "gap",
            "--strategy", strategy, "--seed", "0", "--out", str(out), "--steps", "2",
            "--batch-size", "4", "--device", "cpu", "--no-progress", "--pretrained", "chgnet",
            *extra]  # fmt: skip


def _backbone(state):
    return {k: v for k, v in state.items() if k.startswith("backbone.")}


def _max_change(a, b):
    return max(float((a[k] - b[k]).abs().max()) for k in a if a[k].numel())


def test_strategies_train_from_chgnet_and_checkpoints_reload(crystals, tmp_path):
    pre, _, digest = adapters.load_pretrained_with_meta("chgnet")
    pre_state = pre.state_dict()
    runs = {"finetune": (), "linear-probe": (), "scratch": (),
            "mft": ("--ff-data", str(crystals["aux"]), "--labels", "pseudo")}  # fmt: skip
    last = {}
    for strategy, extra in runs.items():
        run = tmp_path / strategy
        assert main(_args(crystals, run, strategy, *extra)) == 0, strategy
        metrics = json.loads((run / "metrics.json").read_text())
        manifest = json.loads((run / "manifest.json").read_text())
        assert metrics["steps"] == 2
        assert all(np.isfinite(p["mae"]) for p in metrics["partitions"].values())
        assert manifest["pretrained"]["hash"] == digest
        model, meta = load_checkpoint(run / "last.pt")
        assert model.backbone.model_args() == {"type": "chgnet", "weights": "0.3.0"}
        assert len(meta["elements"]) == 94
        last[strategy] = model.state_dict()
    pre_bb = _backbone(pre_state)
    assert _max_change(_backbone(last["linear-probe"]), pre_bb) == 0.0
    assert 0.0 < _max_change(_backbone(last["finetune"]), pre_bb) < 0.01
    assert _max_change(_backbone(last["scratch"]), pre_bb) > 0.05
    # mft keeps training CHGNet's readout (the energy head) and the backbone; AtomRef is fixed
    mft = last["mft"]
    assert 0.0 < _max_change(_backbone(mft), pre_bb) < 0.01
    assert not np.allclose(mft["heads.energy.mlp.layers.0.weight"],
                           pre_state["heads.energy.mlp.layers.0.weight"])  # fmt: skip
    assert np.array_equal(mft["heads.energy.atom_ref"], pre_state["heads.energy.atom_ref"])
    manifest = json.loads((tmp_path / "mft" / "manifest.json").read_text())
    assert manifest["aux_labels"] == "pseudo"


def test_unknown_chgnet_version_exits_2(crystals, tmp_path, capsys):
    argv = _args(crystals, tmp_path / "run", "finetune")
    argv[argv.index("--pretrained") + 1] = "chgnet:9.9"
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "chgnet:9.9" in err and "chgnet:0.2.0" in err
    assert not (tmp_path / "run").exists()
