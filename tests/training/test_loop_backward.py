"""The loop's backward pass (parameters only) and bf16 autocast, which runs on CPU as on CUDA."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from atomcollapse.cli import main
from atomcollapse.errors import InputError
from atomcollapse.models.heads import EnergyHead, PropertyHead
from atomcollapse.models.model import AtomisticModel
from atomcollapse.models.painn import PaiNN
from atomcollapse.training.loop import backward_to_params
from atomcollapse.training.tasks import autocast_factory
from tests.models import contract


def _model() -> AtomisticModel:
    torch.manual_seed(0)
    backbone = PaiNN(hidden=16, layers=2, n_rbf=8, cutoff=4.5)
    heads = {"energy": EnergyHead(16, seed=1), "property": PropertyHead(16, seed=2)}
    return AtomisticModel(backbone, heads).double().train()


def _batch():
    rng = np.random.default_rng(0)
    return contract.make_batch(
        [contract.random_molecule(rng, 7), contract.random_crystal(rng)], 4.5
    )


def _force_loss(model, batch):
    out = model(batch, tasks=("energy",), compute_forces=True)
    return out["energy"].pow(2).sum() + out["forces"].pow(2).sum(), out


def test_backward_to_params_gives_the_plain_gradients_bit_for_bit():
    batch = _batch()
    plain, pruned = _model(), _model()
    loss, _ = _force_loss(plain, batch)
    loss.backward()
    loss2, _ = _force_loss(pruned, batch)
    params = list(pruned.parameters())
    backward_to_params(loss2, params)
    for (name, a), b in zip(plain.named_parameters(), params, strict=True):
        if a.grad is None:
            assert b.grad is None, name
        else:
            assert torch.equal(a.grad, b.grad), name
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)


def test_backward_to_params_leaves_the_positions_leaf_alone():
    model, batch = _model(), _batch()
    positions = batch.positions.clone().requires_grad_(True)
    b = replace(batch, positions=positions)
    energy = model.heads["energy"](model.backbone(b), b)
    (grad,) = torch.autograd.grad(energy.sum(), positions, create_graph=True)
    loss = grad.pow(2).sum()
    backward_to_params(loss, list(model.parameters()))
    assert positions.grad is None
    assert model.backbone.embedding.weight.grad is not None


def test_backward_to_params_skips_frozen_parameters():
    model, batch = _model(), _batch()
    model.backbone.requires_grad_(False)
    out = model(batch, tasks=("property",))
    backward_to_params(out["property"].sum(), list(model.parameters()))
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.heads["property"].parameters())


def test_bf16_autocast_runs_on_cpu_and_returns_float32():
    assert autocast_factory(torch.device("cpu"), False) is None
    ctx = autocast_factory(torch.device("cpu"), True)
    assert ctx is not None
    model, batch = _model().float(), _batch().to("cpu", torch.float32)
    ref = model(batch, tasks=("property", "energy"), compute_forces=True)
    with ctx():
        out = model(batch, tasks=("property", "energy"), compute_forces=True)
        assert torch.nn.Linear(4, 4)(torch.ones(2, 4)).dtype == torch.bfloat16
    for key in ("property", "energy", "forces"):
        assert out[key].dtype == torch.float32, key
        assert torch.isfinite(out[key]).all(), key
        assert not torch.equal(out[key], ref[key]), key  # bf16 products really ran
    # bf16 keeps about three significant digits of the float32 result
    torch.testing.assert_close(out["energy"], ref["energy"], rtol=0.05, atol=0.05)
    loss = out["property"].pow(2).sum() + out["forces"].pow(2).sum()
    backward_to_params(loss, list(model.parameters()))
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)


def test_bf16_needs_a_cuda_or_cpu_device():
    with pytest.raises(InputError, match="bf16"):
        autocast_factory(torch.device("meta"), True)


@pytest.mark.slow
def test_train_with_bf16_on_cpu(env, tmp_path):
    runs = {}
    for flag in ("--no-bf16", "--bf16"):
        out = tmp_path / flag.strip("-")
        assert main(env.train_args(out, "mft", flag)) == 0
        runs[flag] = out
    config = json.loads((runs["--bf16"] / "config.json").read_text())
    assert config["bf16"] is True
    m32, m16 = (json.loads((runs[f] / "metrics.json").read_text()) for f in runs)
    for part in ("id_test", "ood_test"):
        mae16, mae32 = m16["partitions"][part]["mae"], m32["partitions"][part]["mae"]
        assert np.isfinite(mae16) and mae16 != mae32
        assert mae16 == pytest.approx(mae32, rel=0.5)
