"""Checks shared by the adapter tests (ANI, SevenNet, SO3LR): a property head on a pretrained
model, ordered parameter blocks, checkpoint round trips of a trained copy, and that an energy +
force loss reaches every block and the energy head."""

from __future__ import annotations

import copy

import torch

from atomcollapse.models.checkpoint import load_checkpoint, save_checkpoint
from atomcollapse.models.heads import PropertyHead
from atomcollapse.models.model import AtomisticModel
from tests.models import contract


def with_property_head(model: AtomisticModel) -> AtomisticModel:
    heads = dict(model.heads)
    heads["property"] = PropertyHead(model.backbone.feature_dim, readout="mean", seed=2)
    return AtomisticModel(model.backbone, heads)


def check_blocks(backbone, n_layers: int) -> None:
    blocks = backbone.parameter_blocks()
    assert [b for b, _ in blocks] == ["embedding", *(f"layer{k}" for k in range(1, n_layers + 1))]
    ids = [id(p) for _, params in blocks for p in params]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in backbone.parameters()}
    assert all(params for name, params in blocks if name != "embedding")


def check_checkpoint_round_trip(model: AtomisticModel, structures, elements, tmp_path) -> None:
    """A trained (perturbed) adapted model saves and loads with the same outputs."""
    model = with_property_head(copy.deepcopy(model)).float().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.sin(torch.arange(p.numel(), dtype=p.dtype)).view_as(p))
    path = save_checkpoint(tmp_path / "adapted.pt", model, elements=elements)
    loaded, meta = load_checkpoint(path)
    assert meta["model_args"]["backbone"]["type"] == model.backbone.model_args()["type"]
    a = contract.predict(model.double(), structures)
    b = contract.predict(loaded.double().eval(), structures)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-12, atol=1e-10)


def check_training_step(model: AtomisticModel, structures) -> None:
    """An energy + force loss reaches every block and the energy head (MFT trains them)."""
    model = with_property_head(copy.deepcopy(model)).float().train()
    batch = contract.make_batch(structures, model.backbone.cutoff).to("cpu", torch.float32)
    out = model(batch, tasks=("energy", "property"), compute_forces=True)
    loss = out["energy"].square().mean() + out["forces"].square().mean() + out["property"].sum()
    loss.backward()
    for name, params in model.backbone.parameter_blocks():
        grads = [p.grad for p in params if p.requires_grad]
        assert name == "embedding" or any(g is not None and g.abs().max() > 0 for g in grads), name
    assert all(p.grad is not None for p in model.heads["energy"].parameters() if p.requires_grad)
