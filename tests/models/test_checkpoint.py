"""Checkpoints: round trip, provenance, atomic writes, and clear errors for bad files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from atomcollapse.errors import InputError
from atomcollapse.models import checkpoint as ckpt
from atomcollapse.models.heads import EnergyHead, PropertyHead
from atomcollapse.models.model import AtomisticModel
from atomcollapse.models.painn import PaiNN
from tests.models import contract


def _model() -> AtomisticModel:
    torch.manual_seed(0)
    backbone = PaiNN(hidden=8, layers=2, n_rbf=6, cutoff=4.0)
    prop = PropertyHead(8, readout="sum", seed=3)
    prop.set_normalisation(mean=0.5, std=2.0, atom_refs=np.linspace(0, 1, 119))
    energy = EnergyHead(8, mlp_hidden=5)
    energy.set_normalisation(scale=0.3, shift=-2.0)
    return AtomisticModel(backbone, {"property": prop, "energy": energy})


def test_round_trip_same_outputs(tmp_path):
    model = _model().eval()
    path = ckpt.save_checkpoint(
        tmp_path / "m.pt", model, elements=["H", "C", "O"], training_data_hash="abc",
        code_version="1.2.3", extra={"target": "gap", "unit": "Ha"},
    )  # fmt: skip
    loaded, meta = ckpt.load_checkpoint(path)
    assert meta["format"] == "atomcollapse-checkpoint" and meta["version"] == 1
    assert meta["elements"] == ["H", "C", "O"] and meta["training_data_hash"] == "abc"
    assert meta["code_version"] == "1.2.3" and meta["extra"] == {"target": "gap", "unit": "Ha"}
    assert meta["model_args"]["backbone"]["type"] == "painn"
    assert meta["model_args"]["heads"]["energy"]["mlp_hidden"] == 5
    assert meta["hash"] == ckpt.checkpoint_hash(path) and len(meta["hash"]) == 64
    loaded.eval()
    rng = np.random.default_rng(0)
    batch = contract.make_batch(
        [contract.random_molecule(rng, 5), contract.random_crystal(rng)], 4.0
    )
    batch = batch.to("cpu", torch.float32)
    a = model(batch, tasks=("property", "energy"), compute_forces=True)
    b = loaded(batch, tasks=("property", "energy"), compute_forces=True)
    for key in ("property", "energy", "forces"):
        assert torch.equal(a[key], b[key]), key
    assert float(loaded.heads["property"].std) == 2.0
    assert not list(tmp_path.glob(".*tmp")), "temporary file left behind"


def test_hash_changes_with_weights(tmp_path):
    model = _model()
    h1 = ckpt.checkpoint_hash(ckpt.save_checkpoint(tmp_path / "a.pt", model, elements=["H"]))
    with torch.no_grad():
        model.backbone.embedding.weight[1, 0] += 1
    h2 = ckpt.checkpoint_hash(ckpt.save_checkpoint(tmp_path / "b.pt", model, elements=["H"]))
    assert h1 != h2


def test_missing_corrupt_and_foreign_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(InputError, match="not a readable checkpoint"):
        ckpt.load_checkpoint(bad)
    good = ckpt.save_checkpoint(tmp_path / "good.pt", _model(), elements=["H"])
    truncated = tmp_path / "trunc.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(InputError, match="not a readable checkpoint"):
        ckpt.load_checkpoint(truncated)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {}, "epoch": 3}, other)
    with pytest.raises(InputError, match="not an atomcollapse checkpoint"):
        ckpt.load_checkpoint(other)


def _rewrite(tmp_path, change) -> str:
    path = ckpt.save_checkpoint(tmp_path / "x.pt", _model(), elements=["H"])
    payload = torch.load(path, weights_only=True)
    change(payload)
    torch.save(payload, path)
    return path


def test_unknown_backbone_version_and_mismatched_weights(tmp_path):
    path = _rewrite(tmp_path, lambda p: p["model_args"]["backbone"].update(type="gemnet"))
    with pytest.raises(InputError, match="unknown backbone type 'gemnet'"):
        ckpt.load_checkpoint(path)
    path = _rewrite(tmp_path, lambda p: p.update(version=99))
    with pytest.raises(InputError, match="version 99"):
        ckpt.load_checkpoint(path)
    path = _rewrite(tmp_path, lambda p: p["model_args"]["backbone"].update(hidden=16))
    with pytest.raises(InputError, match="weights do not match"):
        ckpt.load_checkpoint(path)
    path = _rewrite(tmp_path, lambda p: p["model_args"]["backbone"].update(bogus=1))
    with pytest.raises(InputError, match="invalid model arguments"):
        ckpt.load_checkpoint(path)


def test_checkpoint_types_come_from_the_model_registry():
    from atomcollapse.models import registry

    assert registry.backbone_factory("painn") is PaiNN
    assert registry.backbone_factory("no-such-type") is None
    assert {"painn", "ani", "sevennet"} <= set(registry.backbone_types())
    with pytest.raises(InputError, match="unknown backbone type 'no-such-type'; known: painn"):
        ckpt.build_model({"backbone": {"type": "no-such-type"}})
