"""Training from a MACE model (``--pretrained mace:PATH.model[:HEAD]``) through the CLI: all
seven strategies on a tiny split, elements outside the model's z table refused or dropped, and
bad input (a file that is not a MACE model, an unknown head, an unknown foundation name, an
offline download, mace-torch missing): one line, exit 2, nothing written.

The MACE tests skip without mace-torch (its own environment: ``make test-mace``); the test of
the missing extra runs everywhere."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from atomcollapse.cli import main
from atomcollapse.models import adapters, registry
from atomcollapse.models.checkpoint import load_checkpoint
from tests.models.mace_models import SKIP, save_model
from tests.training.conftest import write_split
from tests.training.synthetic import write_ff_store, write_molecule_store
from tests.training.test_adapters_train import _backbone, _json

STRATEGIES = ("scratch", "finetune", "finetune-llrd", "linear-probe", "mft", "lp-ft", "l2-sp")
HAS_MACE = importlib.util.find_spec("mace") is not None


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("mace-train")
    mols = write_molecule_store(root / "hcno", n=24, seed=5, name="hcno")
    fluoro = write_molecule_store(root / "fluoro", n=40, seed=6, name="fluoro",
                                  elements=(1, 6, 7, 8, 9))  # fmt: skip
    out = {"root": root, "mols": mols, "split": write_split(mols, root / "hcno-split"),
           "ff": write_ff_store(root / "ff", n=12), "fluoro": fluoro,
           "fluoro_split": write_split(fluoro, root / "fluoro-split", seed=2)}  # fmt: skip
    if HAS_MACE:
        out["model"] = save_model(root / "two.model", heads=("pt_head", "dft"), seed=1,
                                  elements=(1, 6, 7, 8), dtype=torch.float32)  # fmt: skip
    return out


def _max_change(a, b):
    """Largest change of a floating-point tensor (MACE also has boolean masks as buffers)."""
    return max(float((a[k] - b[k]).abs().max()) for k in a
               if a[k].is_floating_point() and a[k].numel())  # fmt: skip


def _args(data, split, out, strategy, pretrained, *extra):
    return ["train", "--data", str(data), "--split", str(split), "--target", "gap",
            "--strategy", strategy, "--seed", "0", "--out", str(out), "--steps", "2",
            "--batch-size", "4", "--device", "cpu", "--no-progress", "--pretrained",
            pretrained, *extra]  # fmt: skip


@SKIP
def test_every_strategy_trains_two_steps_from_mace(env, tmp_path):
    name = f"mace:{env['model']}:dft"
    pre, meta, digest = adapters.load_pretrained_with_meta(name)
    pre_bb = _backbone(pre.state_dict())
    last = {}
    for s in STRATEGIES:
        extra = ("--ff-data", str(env["ff"])) if s == "mft" else ()
        run = tmp_path / s
        assert main(_args(env["mols"], env["split"], run, s, name, *extra)) == 0, s
        m, man = _json(run / "metrics.json"), _json(run / "manifest.json")
        assert m["steps"] == 2 and set(m["partitions"]) == {"val", "id_test", "ood_test"}
        assert all(np.isfinite(p["mae"]) for p in m["partitions"].values())
        assert man["pretrained"]["hash"] == digest and man["pretrained_path"] == name
        model, ckpt = load_checkpoint(run / "last.pt")  # rebuilt from plain arguments
        assert model.backbone.model_args() == pre.backbone.model_args()
        assert ckpt["elements"] == ["H", "C", "N", "O"]
        last[s] = (model, _backbone(model.state_dict()))
    assert _max_change(last["linear-probe"][1], pre_bb) == 0.0
    for s in ("finetune", "finetune-llrd", "mft", "l2-sp", "lp-ft"):  # two Adam steps, lr 1e-3
        assert 0.0 < _max_change(last[s][1], pre_bb) < 0.01, s
    assert _max_change(last["scratch"][1], pre_bb) > 0.05  # same architecture, random weights
    mft = _json(tmp_path / "mft" / "manifest.json")
    assert mft["aux_labels"] == "reference" and mft["heads"]["energy"].startswith("pretrained")
    head = last["mft"][0].heads["energy"]
    assert head.head_args()["head"] == "dft"
    moved = {n.split(".")[0] for n, p in head.named_parameters()
             if not torch.equal(p, pre.heads["energy"].get_parameter(n))}  # fmt: skip
    assert moved == {"readouts"}  # MFT trains MACE's readouts; scale/shift and E0s are buffers
    assert meta["head"] == "dft"


@SKIP
def test_unsupported_elements_are_refused_or_dropped(env, tmp_path, capsys):
    name = f"mace:{env['model']}:pt_head"
    out = tmp_path / "refused"
    capsys.readouterr()
    assert main(_args(env["fluoro"], env["fluoro_split"], out, "finetune", name)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "elements F" in err and not out.exists()
    run = tmp_path / "dropped"
    argv = _args(env["fluoro"], env["fluoro_split"], run, "finetune", name,
                 "--drop-unsupported-elements")  # fmt: skip
    assert main(argv) == 0
    man = _json(run / "manifest.json")
    assert man["drop_unsupported_elements"] is True and sum(man["dropped"].values()) > 0


def _bad(env, tmp_path, capsys, pretrained, needle):
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(_args(env["mols"], env["split"], out, "finetune", pretrained)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err, err
    assert not out.exists()
    return err


@SKIP
def test_bad_input_is_one_line_exit_2_nothing_written(env, tmp_path, capsys, monkeypatch):
    text = tmp_path / "notes.model"
    text.write_text("hello\n")
    _bad(env, tmp_path, capsys, f"mace:{text}", "not a MACE model file")
    err = _bad(env, tmp_path, capsys, f"mace:{env['model']}:nope", "no head 'nope'")
    assert "pt_head, dft" in err
    _bad(env, tmp_path, capsys, "mace-mp-7", "unknown MACE foundation model 'mace-mp-7'")

    from mace.calculators import foundations_models as fm

    def offline(url, filename, timeout=0):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(fm, "_urlretrieve_with_timeout", offline)
    err = _bad(env, tmp_path, capsys, "mace-off-small", "cannot download MACE foundation model")
    assert fm.mace_off_urls["small"] in err and str(tmp_path / "cache" / "mace") in err


def test_missing_mace_names_the_extra_and_make_target(env, tmp_path, capsys, monkeypatch):
    if HAS_MACE:  # pretend it is absent
        monkeypatch.setattr(registry.ModelEntry, "installed", lambda self: self.name != "mace")
    err = _bad(env, tmp_path, capsys, "mace:some.model", "make setup-mace")
    assert "'mace' extra" in err
