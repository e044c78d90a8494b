"""Training from ``sevennet-mf-0:MODAL`` through the CLI: finetune and mft, then ``predict`` on
the run; a missing or unknown modal is one line, exit 2, nothing written. Skips without sevenn."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest

from atomcollapse.cli import main
from atomcollapse.models.checkpoint import load_checkpoint
from tests.training.conftest import write_split
from tests.training.synthetic import write_ff_store, write_molecule_store

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sevenn") is None, reason="the 'sevenn' extra (sevenn) is absent"
)


@pytest.fixture(scope="module")
def mf_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("sevennet-mf")
    mols = write_molecule_store(root / "mols", n=16, seed=5, name="mols")
    return {"mols": mols, "split": write_split(mols, root / "split"),
            "ff": write_ff_store(root / "ff", n=6)}  # fmt: skip


def _args(env, out, strategy, pretrained, *extra):
    return ["train", "--data", str(env["mols"]), "--split", str(env["split"]), "--target", "gap",
            "--strategy", strategy, "--seed", "0", "--out", str(out), "--steps", "2",
            "--batch-size", "4", "--device", "cpu", "--no-progress", "--pretrained", pretrained,
            *extra]  # fmt: skip


@pytest.mark.slow
def test_finetune_and_mft_train_keep_the_modal_and_predict(mf_env, tmp_path, capsys):
    args = {"type": "sevennet", "weights": "sevennet-mf-0", "modal": "R2SCAN"}
    for strategy, extra in (("finetune", ()), ("mft", ("--ff-data", str(mf_env["ff"])))):
        run = tmp_path / strategy
        argv = _args(mf_env, run, strategy, "sevennet-mf-0:r2scan", *extra)
        assert main(argv) == 0, capsys.readouterr().err
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["steps"] == 2
        assert all(np.isfinite(p["mae"]) for p in metrics["partitions"].values())
        model, meta = load_checkpoint(run / "last.pt")
        assert meta["model_args"]["backbone"] == args and model.backbone.modal == "R2SCAN"
        if strategy == "mft":  # finetune keeps the property head only
            assert meta["model_args"]["heads"]["energy"]["modal"] == "R2SCAN"
    manifest = json.loads((tmp_path / "mft" / "manifest.json").read_text())
    assert manifest["pretrained_path"] == "sevennet-mf-0:r2scan"
    assert manifest["heads"]["energy"].startswith("pretrained")

    out = tmp_path / "p.csv"
    argv = ["predict", str(tmp_path / "mft"), "--data", str(mf_env["mols"]), "--split",
            str(mf_env["split"]), "--partition", "id_test", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    got = pd.read_csv(out)
    ref = pd.read_csv(tmp_path / "mft" / "predictions.csv")
    ref = ref[ref.partition == "id_test"].reset_index(drop=True)
    assert list(got.id) == list(ref.id) and len(got)
    np.testing.assert_allclose(got.prediction, ref.prediction, rtol=1e-5)
    assert np.isfinite(got.energy_eV).all()


@pytest.mark.parametrize(
    ("name", "needle"),
    [("sevennet-mf-0", "name a modal"), ("sevennet-mf-0:hse06", "unknown modal 'hse06'")],
)
def test_missing_or_unknown_modal_exits_2_writing_nothing(mf_env, tmp_path, capsys, name, needle):
    out = tmp_path / "run"
    capsys.readouterr()
    assert main(_args(mf_env, out, "finetune", name)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err
    assert "PBE" in err and "R2SCAN" in err and not out.exists()
