"""``atomcollapse pretrain``: a learnable force field and a self-describing checkpoint."""

from __future__ import annotations

from atomcollapse.cli import main
from atomcollapse.data.store import open_store
from atomcollapse.models.checkpoint import load_checkpoint
from tests.training.conftest import TINY


def test_checkpoint_describes_itself(env):
    model, meta = load_checkpoint(env.ckpt)
    assert meta["model_args"]["backbone"] == {**meta["model_args"]["backbone"], "type": "painn",
                                              "hidden": 16, "layers": 2, "n_rbf": 8, "cutoff": 4.0}  # fmt: skip
    assert set(model.heads) == {"energy"}
    assert meta["elements"] == ["H", "C", "N", "O"]
    assert meta["training_data_hash"] == open_store(env.ff).content_hash
    assert meta["code_version"]
    extra = meta["extra"]
    assert extra["kind"] == "pretrained" and extra["config"]["model"]["hidden"] == 16
    assert {"energy_mae_meV_per_atom", "force_mae_meV_per_A", "n_val"} <= set(extra["metrics"])
    assert float(model.heads["energy"].atom_refs[6]) < -100  # fitted carbon reference (eV)


def test_pretraining_learns_energies_and_forces(env, tmp_path, capsys):
    out = tmp_path / "p.pt"
    cfg = tmp_path / "c.toml"
    cfg.write_text("eval_every_steps = 10\n")
    argv = ["pretrain", "--data", str(env.ff), "--out", str(out), *TINY, "--steps", "100",
            "--batch-size", "8", "--lr", "5e-3", "--val-fraction", "0.25", "--config", str(cfg),
            "--no-progress", "--device", "cpu"]  # fmt: skip
    assert main(argv) == 0
    assert "force MAE" in capsys.readouterr().out
    _, meta = load_checkpoint(out)
    hist = meta["extra"]["history"]
    first, best = hist[0], min(hist, key=lambda h: h["score"])
    assert best["force_mae_meV_per_A"] < 0.75 * first["force_mae_meV_per_A"]
    assert best["energy_mae_meV_per_atom"] < first["energy_mae_meV_per_atom"]
    assert meta["extra"]["metrics"]["n_val"] == 10
    assert not (tmp_path / "p.pt.state.pt").exists()


def test_pretrain_writes_a_readable_manifest_beside_the_checkpoint(env):
    import json

    from atomcollapse.artifacts import sha256_file
    from atomcollapse.models.checkpoint import manifest_path, read_checkpoint, weights_sha256

    manifest = json.loads(manifest_path(env.ckpt).read_text())
    payload = read_checkpoint(env.ckpt)
    assert manifest_path(env.ckpt).name == env.ckpt.with_suffix(".json").name
    assert manifest["file_sha256"] == sha256_file(env.ckpt)
    assert manifest["weights_sha256"] == weights_sha256(payload["state_dict"])
    assert manifest["extra"]["metrics"]["energy_mae_meV_per_atom"] > 0
    assert manifest["extra"]["training_data"]["content_hash"] == payload["training_data_hash"]
    assert "state_dict" not in manifest
