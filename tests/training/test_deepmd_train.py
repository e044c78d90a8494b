"""Training from a DeePMD checkpoint (``--pretrained deepmd:PATH[:BRANCH]``): all seven
strategies on a tiny split, checkpoints that reload, and bad input as one line with exit 2.
Skips when deepmd-kit (the ``deepmd`` extra) is not installed."""

from __future__ import annotations

import numpy as np
import pytest

from atomcollapse.cli import main
from atomcollapse.models import adapters, registry
from atomcollapse.models.checkpoint import load_checkpoint
from tests.training.conftest import write_split
from tests.training.synthetic import write_ff_store, write_molecule_store
from tests.training.test_adapters_train import STRATEGIES, _backbone, _json, _max_change

pytest.importorskip("deepmd.pt", reason="the 'deepmd' extra (deepmd-kit==3.2.0) is absent")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("deepmd-train")
    mols = write_molecule_store(root / "mols", n=24, seed=5, name="mols")
    fluoro = write_molecule_store(root / "fluoro", n=24, seed=6, name="fluoro",
                                  elements=(1, 6, 7, 8, 9))  # fmt: skip
    return {"mols": mols, "split": write_split(mols, root / "split"),
            "ff": write_ff_store(root / "ff", n=12), "fluoro": fluoro,
            "fluoro_split": write_split(fluoro, root / "fluoro-split", seed=2)}  # fmt: skip


def _args(data, out, strategy, pretrained, *extra, store="mols", split="split"):
    return ["train", "--data", str(data[store]), "--split", str(data[split]), "--target", "gap",
            "--strategy", strategy, "--seed", "0", "--out", str(out), "--steps", "2",
            "--batch-size", "4", "--device", "cpu", "--no-progress", "--pretrained", pretrained,
            *extra]  # fmt: skip


def test_every_strategy_trains_from_a_deepmd_branch(deepmd_checkpoints, data, tmp_path):
    name = f"deepmd:{deepmd_checkpoints['multi']}:Beta"
    pre, _, digest = adapters.load_pretrained_with_meta(name)
    pre_state = pre.state_dict()
    pre_bb = _backbone(pre_state)
    last = {}
    for s in STRATEGIES:
        extra = ("--ff-data", str(data["ff"])) if s == "mft" else ()
        run = tmp_path / s
        assert main(_args(data, run, s, name, *extra)) == 0, s
        m, man = _json(run / "metrics.json"), _json(run / "manifest.json")
        assert m["steps"] == 2 and all(np.isfinite(p["mae"]) for p in m["partitions"].values())
        assert man["pretrained"]["hash"] == digest
        model, meta = load_checkpoint(run / "last.pt")
        args = model.backbone.model_args()
        assert args["type"] == "deepmd" and args["branch"] == "Beta"
        assert meta["elements"] == ["H", "C", "N", "O"]
        last[s] = model.state_dict()
    assert _max_change(_backbone(last["linear-probe"]), pre_bb) == 0.0
    for s in ("finetune", "finetune-llrd", "mft", "l2-sp", "lp-ft"):
        assert 0.0 < _max_change(_backbone(last[s]), pre_bb) < 0.01, s
    assert _max_change(_backbone(last["scratch"]), pre_bb) > 0.05
    # MFT keeps training the branch's fitting net; the energy bias and case embedding stay
    mft = last["mft"]
    moved = [k for k in mft if k.startswith("heads.energy.fitting.") and mft[k].is_floating_point()
             and not np.array_equal(mft[k].numpy(), pre_state[k].numpy())]  # fmt: skip
    assert any(".filter_layers." in k for k in moved)
    for fixed in ("heads.energy.out_bias", "heads.energy.fitting.case_embd"):
        assert np.array_equal(mft[fixed].numpy(), pre_state[fixed].numpy()), fixed


def _one_line_exit_2(argv, out, capsys, *fragments):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for f in fragments:
        assert f in err, (f, err)
    assert not out.exists()


def test_bad_input_is_one_line_exit_2(deepmd_checkpoints, data, tmp_path, capsys, monkeypatch):
    multi, single = deepmd_checkpoints["multi"], deepmd_checkpoints["single"]
    out = tmp_path / "run"
    _one_line_exit_2(_args(data, out, "finetune", f"deepmd:{multi}:Gamma"), out, capsys,
                     "has no branch 'Gamma'", "branches: Alpha, Beta")  # fmt: skip
    _one_line_exit_2(_args(data, out, "finetune", f"deepmd:{multi}"), out, capsys,
                     "name a branch", "Alpha, Beta")  # fmt: skip
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00not torch")
    _one_line_exit_2(_args(data, out, "finetune", f"deepmd:{junk}"), out, capsys,
                     str(junk), "not a readable DeePMD checkpoint")  # fmt: skip
    fluoro = _args(data, out, "finetune", f"deepmd:{single}", store="fluoro", split="fluoro_split")
    _one_line_exit_2(fluoro, out, capsys, "elements F", "--drop-unsupported-elements")
    dropped = tmp_path / "dropped"
    fluoro[fluoro.index(str(out))] = str(dropped)
    assert main([*fluoro, "--drop-unsupported-elements"]) == 0
    man = _json(dropped / "manifest.json")
    assert man["drop_unsupported_elements"] is True and sum(man["dropped"].values()) > 0
    monkeypatch.setattr(registry.ModelEntry, "installed", lambda self: False)
    _one_line_exit_2(_args(data, out, "finetune", f"deepmd:{single}"), out, capsys,
                     "make deepmd", "'deepmd'")  # fmt: skip
