"""``label teacher``: the pretrained model's own energy per atom as a new store's target."""

from __future__ import annotations

import json

import numpy as np
import torch

from atomcollapse.cli import main
from atomcollapse.data.batching import collate
from atomcollapse.data.store import open_store
from atomcollapse.models.checkpoint import load_checkpoint
from tests.training.conftest import write_split
from tests.training.synthetic import write_molecule_store


def test_teacher_target_is_the_models_energy_per_atom(env, tmp_path, capsys):
    root = tmp_path / "root"
    argv = ["--data-root", str(root), "label", "teacher", "--name", "t", "--data", str(env.mols),
            "--pretrained", str(env.ckpt)]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    out, src = open_store(root / "stores" / "t"), open_store(env.mols)
    assert len(out) == len(src) and list(out.ids) == list(src.ids)
    np.testing.assert_array_equal(out.target("gap"), src.target("gap"))
    info = out.manifest["targets"]["teacher_energy_per_atom"]
    assert info["unit"] == "eV" and info["readout"] == "mean"
    model, meta = load_checkpoint(env.ckpt)
    rows = np.arange(5)
    with torch.no_grad():
        e = model.eval()(collate(src, rows, 4.0), tasks=("energy",))["energy"].double().numpy()
    expected = e / src.n_atoms[rows]
    np.testing.assert_allclose(out.target("teacher_energy_per_atom")[:5], expected, rtol=1e-6)
    assert out.manifest["source"]["pretrained_hash"] == meta["hash"]


def test_elements_the_teacher_lacks_are_refused_or_dropped(env, tmp_path, capsys):
    fluoro = write_molecule_store(tmp_path / "fluoro", n=24, seed=4, elements=(1, 6, 9))
    root = tmp_path / "root"
    base = ["--data-root", str(root), "label", "teacher", "--name", "t", "--data", str(fluoro),
            "--pretrained", str(env.ckpt)]  # fmt: skip
    capsys.readouterr()
    assert main(base) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--drop-unsupported-elements" in err
    assert not (root / "stores" / "t").exists()
    assert main([*base, "--drop-unsupported-elements"]) == 0
    store = open_store(root / "stores" / "t")
    assert 0 < len(store) < 24 and 9 not in set(np.asarray(store.numbers).tolist())
    assert store.manifest["source"]["n_dropped_unsupported_elements"] == 24 - len(store)


def _val_mae(run) -> float:
    return json.loads((run / "metrics.json").read_text())["best_val_mae"]


def test_a_linear_probe_reads_the_teacher_target_over_per_element_references(env, tmp_path):
    """Composition explains almost all of an energy per atom's spread: without per-element
    references a probe on frozen features must resolve eV-sized offsets to meV and fails; the
    teacher store declares them, so the probe learns only the interaction part."""
    root = tmp_path / "root"
    assert main(["--data-root", str(root), "label", "teacher", "--name", "t", "--data",
                 str(env.mols), "--pretrained", str(env.ckpt)]) == 0  # fmt: skip
    store = root / "stores" / "t"
    assert open_store(store).manifest["targets"]["teacher_energy_per_atom"]["atom_refs"] is True
    split = write_split(store, tmp_path / "split")
    off = tmp_path / "off.toml"
    off.write_text("[head]\natom_refs = false\n")
    runs = {}
    for name, extra in (("auto", []), ("off", ["--config", str(off)])):
        runs[name] = tmp_path / name
        args = ["train", "--data", str(store), "--split", str(split), "--target",
                "teacher_energy_per_atom", "--strategy", "linear-probe", "--seed", "0", "--out",
                str(runs[name]), "--epochs", "3", "--batch-size", "8", "--device", "cpu",
                "--no-progress", "--pretrained", str(env.ckpt), *extra]  # fmt: skip
        assert main(args) == 0
    manifest = {k: json.loads((r / "manifest.json").read_text()) for k, r in runs.items()}
    assert manifest["auto"]["head_atom_refs"] is True
    assert manifest["off"]["head_atom_refs"] is False
    assert _val_mae(runs["auto"]) < 0.5 * _val_mae(runs["off"])


def test_head_atom_refs_setting_is_checked(env, tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('[head]\natom_refs = "sometimes"\n')
    capsys.readouterr()
    assert main(env.train_args(tmp_path / "run", "finetune", "--config", str(bad))) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "head.atom_refs" in err
    assert not (tmp_path / "run").exists()
