"""PaiNN: the model contract, agreement with a plain reference formulation, and its interface."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from atomcollapse.models.heads import EnergyHead, PropertyHead
from atomcollapse.models.model import AtomisticModel
from atomcollapse.models.painn import PaiNN
from tests.models import contract


def make_model(**kwargs) -> AtomisticModel:
    torch.manual_seed(0)
    args = {"hidden": 16, "layers": 2, "n_rbf": 8, "cutoff": 4.5, **kwargs}
    backbone = PaiNN(**args)
    heads = {
        "energy": EnergyHead(backbone.feature_dim, seed=1),
        "property": PropertyHead(backbone.feature_dim, readout="mean", seed=2),
    }
    return AtomisticModel(backbone, heads)


@pytest.mark.parametrize("check", contract.ALL_CHECKS, ids=lambda c: c.__name__)
def test_contract(check):
    check(make_model)


def test_contract_shared_filters():
    contract.check_rotation_translation(lambda: make_model(shared_filters=True))
    contract.check_supercell(lambda: make_model(shared_filters=True))


def reference_painn(model: PaiNN, batch) -> torch.Tensor:
    """Textbook PaiNN on directed edges (the schnetpack formulation), with ``model``'s weights."""
    i, j = batch.edge_index
    r = batch.positions[j] - batch.positions[i] + batch.shifts
    d = r.norm(dim=1, keepdim=True)
    n = torch.arange(1, model.n_rbf + 1, dtype=d.dtype)
    rbf = torch.sin(d * n * math.pi / model.cutoff) / d
    fcut = 0.5 * (torch.cos(d * math.pi / model.cutoff) + 1) * (d < model.cutoff)
    h = model.hidden
    s = model.embedding(batch.numbers)
    v = torch.zeros(len(s), 3, h, dtype=s.dtype)
    for msg, upd in zip(model.messages, model.updates, strict=True):
        w = msg.filter(rbf) * fcut
        x = msg.context(s)[j] * w
        ds, dvr, dvv = torch.split(x, h, dim=-1)
        dv = dvr[:, None, :] * (r / d)[:, :, None] + dvv[:, None, :] * v[j]
        s = s + torch.zeros_like(s).index_add(0, i, ds)
        v = v + torch.zeros_like(v).index_add(0, i, dv)
        vv, vu = torch.split(upd.mix(v), h, dim=-1)
        norm = torch.sqrt((vv**2).sum(1) + upd.epsilon)
        a_ss, a_sv, a_vv = torch.split(upd.context(torch.cat([s, norm], -1)), h, dim=-1)
        s = s + a_ss + a_sv * (vv * vu).sum(1)
        v = v + a_vv[:, None, :] * vu
    return s


def test_matches_reference_formulation():
    rng = np.random.default_rng(0)
    model = make_model().double().eval()
    structures = [
        contract.random_molecule(rng, 7),
        contract.random_crystal(rng),
        contract.random_molecule(rng, 4),
    ]
    batch = contract.make_batch(structures, model.backbone.cutoff)
    out = model.backbone(batch)
    torch.testing.assert_close(
        out.node, reference_painn(model.backbone, batch), rtol=1e-10, atol=1e-10
    )
    # a graph that is not symmetric takes the directed path and still matches the reference
    keep = torch.ones(batch.edge_index.shape[1], dtype=torch.bool)
    keep[3] = False
    from dataclasses import replace

    one_way = replace(batch, edge_index=batch.edge_index[:, keep], shifts=batch.shifts[keep])
    torch.testing.assert_close(
        model.backbone(one_way).node,
        reference_painn(model.backbone, one_way),
        rtol=1e-10,
        atol=1e-10,
    )


def test_outputs_layers_and_edges():
    rng = np.random.default_rng(1)
    model = make_model().double()
    batch = contract.make_batch(
        [contract.random_molecule(rng, 5), contract.random_crystal(rng)], 4.5
    )
    model.eval()
    out = model.backbone(batch)
    n, e = batch.numbers.numel(), batch.edge_index.shape[1]
    assert len(out.layers) == 3 and all(t.shape == (n, 16) for t in out.layers)
    torch.testing.assert_close(out.layers[-1], out.node)
    assert out.vector.shape == (n, 3, 16)
    assert out.edge is not None and out.edge.shape == (e, 16)
    # edge features are invariant: a pair's two directions at the same distance share the filter
    assert torch.isfinite(out.edge).all() and out.edge.abs().sum() > 0
    model.train()
    assert model.backbone(batch).edge is None


def test_parameter_blocks_cover_every_parameter_once():
    for shared in (False, True):
        backbone = make_model(layers=3, shared_filters=shared).backbone
        blocks = backbone.parameter_blocks()
        assert [name for name, _ in blocks] == ["embedding", "layer1", "layer2", "layer3"]
        ids = [id(p) for _, params in blocks for p in params]
        assert len(ids) == len(set(ids))
        assert set(ids) == {id(p) for p in backbone.parameters()}
        layer2 = {id(p) for p in blocks[2][1]}
        assert id(backbone.messages[1].context[0].weight) in layer2
        assert id(backbone.updates[1].mix.weight) in layer2
        assert (id(backbone.messages[1].filter.weight) in layer2) is (not shared)


def test_model_args_rebuild_same_architecture():
    backbone = make_model(layers=3).backbone
    args = backbone.model_args()
    assert args["type"] == "painn"
    rebuilt = PaiNN(**{k: v for k, v in args.items() if k != "type"})
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in backbone.state_dict().items()
    }


def test_first_layer_vector_weights_get_zero_gradient():
    """Vector features start at zero, so the first layer's vector-vector weights cannot learn
    (as in the reference formulation); the gradient must still exist (zeros) for optimisers."""
    rng = np.random.default_rng(2)
    model = make_model().double().train()
    batch = contract.make_batch([contract.random_molecule(rng, 6)], 4.5)
    model(batch, tasks=("energy",))["energy"].sum().backward()
    g = model.backbone.messages[0].filter.weight.grad
    assert g is not None and g[32:].abs().max() == 0 and g[:32].abs().max() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    rng = np.random.default_rng(3)
    model = make_model().double().eval()
    batch = contract.make_batch(
        [contract.random_molecule(rng, 6), contract.random_crystal(rng)], 4.5
    )
    cpu = model(batch, tasks=("energy",), compute_forces=True)
    gpu = model.to("cuda")(batch.to("cuda"), tasks=("energy",), compute_forces=True)
    torch.testing.assert_close(gpu["forces"].cpu(), cpu["forces"], rtol=1e-8, atol=1e-10)


def test_isolated_atom_has_no_edges_and_zero_force():
    model = make_model().double().eval()
    batch = contract.make_batch([(np.array([8]), np.zeros((1, 3)), None, None)], 4.5)
    assert batch.edge_index.shape == (2, 0)
    out = model(batch, tasks=("energy", "property"), compute_forces=True)
    assert torch.isfinite(out["energy"]).all() and torch.equal(
        out["forces"], torch.zeros(1, 3, dtype=torch.float64)
    )
    assert out["features"].edge.shape == (0, 16)
