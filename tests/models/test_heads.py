"""Heads: atom references, standardisation, readouts, seeded initialisation, forces."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from atomcollapse.models.base import BackboneOutput
from atomcollapse.models.heads import EnergyHead, PropertyHead, element_counts, fit_atom_refs
from atomcollapse.models.model import AtomisticModel
from atomcollapse.models.painn import PaiNN
from tests.models import contract


def _packed(rng: np.random.Generator, n: int = 40):
    sizes = rng.integers(2, 9, size=n)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    numbers = rng.choice([1, 6, 7, 8], size=offsets[-1])
    return numbers, offsets


def test_fit_atom_refs_recovers_per_element_energies():
    rng = np.random.default_rng(0)
    numbers, offsets = _packed(rng)
    true = {1: -0.5, 6: -37.8, 7: -54.6, 8: -75.0}
    values = np.add.reduceat(np.array([true[z] for z in numbers]), offsets[:-1])
    refs = fit_atom_refs(numbers, offsets, values, elements=["H", "C", "N", "O"])
    assert refs.shape == (119,)
    for z, e in true.items():
        assert refs[z] == pytest.approx(e, abs=1e-9)
    assert np.count_nonzero(refs) == 4


def test_element_counts_and_unknown_element():
    counts = element_counts(np.array([1, 1, 6, 8, 1]), np.array([0, 3, 5]), np.array([1, 6, 8]))
    np.testing.assert_array_equal(counts, [[2, 1, 0], [1, 0, 1]])
    with pytest.raises(ValueError, match="element F"):
        element_counts(np.array([9]), np.array([0, 1]), np.array([1, 6]))


def _features(n: int, dim: int = 8) -> BackboneOutput:
    x = torch.randn(n, dim)
    return BackboneOutput(node=x, layers=[x])


def _prediction_without_mlp(head, numbers, offsets, rng) -> np.ndarray:
    """The head's predictions with its MLP's output set to zero (normalisation and references
    only), on random positions of the packed structures."""
    with torch.no_grad():
        head.mlp[-1].weight.zero_()
        head.mlp[-1].bias.zero_()
    parts = [
        (numbers[a:b], rng.normal(size=(b - a, 3)), None, None)
        for a, b in itertools.pairwise(offsets)
    ]
    batch = contract.make_batch(parts, 2.0)
    return head(_features(len(numbers)), batch).detach().double().numpy()


def test_property_head_standardisation_sum_readout():
    """With the MLP output zero, predictions are exactly atom refs + per-atom mean * n_atoms."""
    rng = np.random.default_rng(1)
    numbers, offsets = _packed(rng)
    n_atoms = np.diff(offsets)
    refs_true = {1: 1.0, 6: 3.0, 7: 2.0, 8: -1.0}
    values = np.add.reduceat(np.array([refs_true[z] for z in numbers]), offsets[:-1])
    values = values + 0.25 * n_atoms + rng.normal(scale=0.01, size=n_atoms.size) * n_atoms
    head = PropertyHead(8, readout="sum", seed=0)
    stats = head.fit_normalisation(numbers, offsets, values)
    assert stats["atom_refs"]
    residual = (
        values - np.add.reduceat(head.atom_refs.double().numpy()[numbers], offsets[:-1])
    ) / n_atoms
    assert float(head.mean) == pytest.approx(residual.mean(), rel=1e-5)
    assert float(head.std) == pytest.approx(residual.std(), rel=1e-5)
    pred = _prediction_without_mlp(head, numbers, offsets, rng)
    expected = np.add.reduceat(head.atom_refs.double().numpy()[numbers], offsets[:-1])
    expected = expected + float(head.mean) * n_atoms
    np.testing.assert_allclose(pred, expected, rtol=1e-5)
    np.testing.assert_allclose(pred, values, atol=0.05 * n_atoms.max())


def test_property_head_mean_readout_with_atom_refs_recovers_a_composition_linear_target():
    """An energy per atom (mean readout) whose value is the composition's mean atom energy: the
    references carry it all, so the prediction with the MLP output zero equals it."""
    rng = np.random.default_rng(2)
    numbers, offsets = _packed(rng)
    n_atoms = np.diff(offsets)
    refs_true = np.zeros(10)
    refs_true[[1, 6, 7, 8]] = [-13.6, -1030.0, -1485.0, -2040.0]
    values = np.add.reduceat(refs_true[numbers], offsets[:-1]) / n_atoms
    head = PropertyHead(8, readout="mean", seed=0)
    assert not head.fit_normalisation(numbers, offsets, values)["atom_refs"]  # default: none
    stats = head.fit_normalisation(numbers, offsets, values, atom_refs=True)
    assert stats["atom_refs"] and abs(stats["mean"]) < 1e-6
    np.testing.assert_allclose(head.atom_refs.double().numpy()[[1, 6, 7, 8]],
                               refs_true[[1, 6, 7, 8]], rtol=1e-5)  # fmt: skip
    pred = _prediction_without_mlp(head, numbers, offsets, rng)
    np.testing.assert_allclose(pred, values, rtol=1e-5)


def test_mean_vs_sum_readout():
    rng = np.random.default_rng(2)
    structures = [contract.random_molecule(rng, k) for k in (3, 5, 2)]
    batch = contract.make_batch(structures, 3.0)
    feats = _features(batch.numbers.numel())
    mean_head = PropertyHead(8, readout="mean", seed=7)
    sum_head = PropertyHead(8, readout="sum", seed=7)
    per_atom = mean_head.mlp(feats.node).squeeze(-1)
    sums = torch.stack([per_atom[a:b].sum() for a, b in itertools.pairwise(batch.offsets)])
    n = torch.tensor([3.0, 5.0, 2.0])
    torch.testing.assert_close(sum_head(feats, batch), sums)
    torch.testing.assert_close(mean_head(feats, batch), sums / n)
    mean_head.set_normalisation(mean=10.0, std=2.0)
    torch.testing.assert_close(mean_head(feats, batch), sums / n * 2 + 10)
    with pytest.raises(ValueError, match="readout"):
        PropertyHead(8, readout="max")


def test_mean_readout_fit_has_no_atom_refs_by_default():
    rng = np.random.default_rng(3)
    numbers, offsets = _packed(rng)
    values = rng.normal(5.0, 2.0, size=len(offsets) - 1)
    head = PropertyHead(8, readout="mean")
    head.fit_normalisation(numbers, offsets, values)
    assert head.atom_refs.abs().max() == 0
    assert float(head.mean) == pytest.approx(values.mean(), rel=1e-6)
    assert float(head.std) == pytest.approx(values.std(), rel=1e-6)


def test_seed_fixes_initial_weights_whatever_came_before():
    torch.manual_seed(0)
    a = PropertyHead(16, seed=42)
    torch.randn(1000)
    PaiNN(hidden=8, layers=1)
    b = PropertyHead(16, seed=42)
    c = PropertyHead(16, seed=43)
    for pa, pb, pc in zip(a.parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)
    # the head's seed does not disturb the global RNG
    torch.manual_seed(5)
    x = torch.rand(3)
    torch.manual_seed(5)
    PropertyHead(16, seed=1)
    assert torch.equal(torch.rand(3), x)


def test_normalisers_are_saved_in_state_dict():
    head = EnergyHead(8)
    head.set_normalisation(scale=2.0, shift=-1.0, atom_refs=np.arange(119.0))
    other = EnergyHead(8)
    other.load_state_dict(head.state_dict())
    assert float(other.scale) == 2.0 and float(other.shift) == -1.0
    assert float(other.atom_refs[6]) == 6.0


def test_energy_head_fit_and_forces():
    rng = np.random.default_rng(4)
    numbers, offsets = _packed(rng)
    energies = np.add.reduceat(np.where(numbers == 1, -13.6, -1000.0), offsets[:-1])
    forces = rng.normal(scale=0.5, size=(len(numbers), 3))
    head = EnergyHead(8)
    stats = head.fit_normalisation(numbers, offsets, energies, forces)
    assert stats["scale"] == pytest.approx(np.sqrt(np.mean(forces**2)), rel=1e-6)
    assert float(head.atom_refs[1]) == pytest.approx(-13.6, rel=1e-5)
    model = AtomisticModel(PaiNN(hidden=8, layers=1, cutoff=3.0), {"energy": head}).double()
    batch = contract.make_batch([contract.random_molecule(rng, 4)], 3.0)
    model.train()
    out = model(batch, tasks=("energy",), compute_forces=True)
    assert out["forces"].shape == (4, 3) and out["forces"].requires_grad  # create_graph in training
    (out["forces"] ** 2).sum().backward()
    assert model.backbone.embedding.weight.grad is not None
    model.eval()
    out = model(batch, tasks=("energy",), compute_forces=True)
    assert not out["forces"].requires_grad
    with pytest.raises(KeyError, match="property"):
        model(batch, tasks=("property",))
