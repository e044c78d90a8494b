"""Reusable model-contract checks, in the manner of nequip's model tests.

Shipped inside the package so that an adapter written outside this repository can run the
same suite. Every backbone (native or adapter) is checked through an :class:`AtomisticModel` with an
``"energy"`` head and a ``"property"`` head. Each check takes ``factory``, a callable returning a
fresh model; checks run it in float64 and eval mode. Use them from a backbone's test module::

    from atomcollapse.testing import contract

    @pytest.mark.parametrize("check", contract.ALL_CHECKS)
    def test_contract(check):
        check(make_model)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from atomcollapse.data.batch import AtomsBatch
from atomcollapse.data.neighbors import radius_graph
from atomcollapse.models.model import AtomisticModel

Factory = Callable[[], AtomisticModel]
Structure = tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]
RTOL, ATOL = 1e-9, 1e-9
#: Li, O, Si: the species of the random crystals, unless a backbone's element set lacks them
CRYSTAL_SPECIES = (3, 8, 14)


def random_molecule(rng: np.random.Generator, n: int, spread: float = 1.6) -> Structure:
    """``n`` atoms of H, C, N, O at least 0.9 A apart (positions in Angstrom)."""
    pos = np.zeros((0, 3))
    while len(pos) < n:
        p = rng.normal(scale=spread, size=3)
        if len(pos) == 0 or np.linalg.norm(pos - p, axis=1).min() > 0.9:
            pos = np.vstack([pos, p])
    return rng.choice([1, 6, 7, 8], size=n), pos, None, None


def random_crystal(
    rng: np.random.Generator, n: int = 3, species: Sequence[int] = CRYSTAL_SPECIES
) -> Structure:
    """A small triclinic cell (edges ~3 A) with ``n`` atoms of ``species``, periodic in all
    directions."""
    cell = np.diag([3.0, 3.2, 3.4]) + rng.uniform(-0.5, 0.5, size=(3, 3))
    frac = rng.uniform(size=(n, 3))
    return rng.choice(list(species), size=n), frac @ cell, cell, np.ones(3, bool)


def crystal_species(model: AtomisticModel) -> tuple[int, ...]:
    """:data:`CRYSTAL_SPECIES`, or the three heaviest elements of a backbone's ``elements`` when
    it declares a set without them."""
    known = getattr(model.backbone, "elements", None)
    if known is None or set(CRYSTAL_SPECIES) <= set(known):
        return CRYSTAL_SPECIES
    return tuple(sorted(int(z) for z in known)[-3:])


def make_batch(structures: Sequence[Structure], cutoff: float) -> AtomsBatch:
    """Concatenate structures (float64) and build their radius graph."""
    numbers = torch.tensor(np.concatenate([s[0] for s in structures]), dtype=torch.long)
    positions = torch.tensor(np.concatenate([s[1] for s in structures]), dtype=torch.float64)
    counts = torch.tensor([len(s[0]) for s in structures])
    offsets = torch.zeros(len(structures) + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(counts, 0)
    periodic = any(s[2] is not None for s in structures)
    cell = pbc = None
    if periodic:
        cell = torch.tensor(
            np.stack([np.zeros((3, 3)) if s[2] is None else s[2] for s in structures])
        )
        pbc = torch.tensor(
            np.stack([np.zeros(3, bool) if s[3] is None else s[3] for s in structures])
        )
    edge_index, shifts = radius_graph(positions, offsets, cutoff, cell, pbc)
    return AtomsBatch(
        numbers=numbers, positions=positions,
        batch=torch.repeat_interleave(torch.arange(len(structures)), counts), offsets=offsets,
        edge_index=edge_index, shifts=shifts, cell=cell, pbc=pbc,
    )  # fmt: skip


def _model(factory: Factory) -> AtomisticModel:
    model = factory().double().eval()
    assert {"energy", "property"} <= set(model.heads), "contract needs energy and property heads"
    return model


def predict(model: AtomisticModel, structures: Sequence[Structure]) -> dict[str, torch.Tensor]:
    batch = make_batch(structures, model.backbone.cutoff)
    out = model(batch, tasks=("energy", "property"), compute_forces=True)
    return {k: out[k].detach() for k in ("energy", "property", "forces")}


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _close(
    a: torch.Tensor, b: torch.Tensor, what: str, rtol: float = RTOL, atol: float = ATOL
) -> None:
    torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=lambda m: f"{what}: {m}")


def _assert_nontrivial(out: dict[str, torch.Tensor]) -> None:
    assert out["forces"].abs().max() > 1e-6, "forces are zero: the check would be vacuous"


def check_rotation_translation(factory: Factory, seed: int = 0) -> None:
    """Energy and property invariant, forces equivariant under rotation + translation."""
    rng = np.random.default_rng(seed)
    model = _model(factory)
    mols = [random_molecule(rng, 7), random_molecule(rng, 5)]
    ref = predict(model, mols)
    _assert_nontrivial(ref)
    rot, t = _rotation(rng), rng.normal(size=3) * 3
    moved = [(z, p @ rot.T + t, c, b) for z, p, c, b in mols]
    out = predict(model, moved)
    _close(out["energy"], ref["energy"], "energy under rotation")
    _close(out["property"], ref["property"], "property under rotation")
    _close(out["forces"], ref["forces"] @ torch.tensor(rot.T), "forces under rotation")


def check_periodic_rotation(factory: Factory, seed: int = 1) -> None:
    """A crystal rotated with its cell keeps its energy; forces rotate with it."""
    rng = np.random.default_rng(seed)
    model = _model(factory)
    z, p, cell, pbc = random_crystal(rng, species=crystal_species(model))
    ref = predict(model, [(z, p, cell, pbc)])
    rot = _rotation(rng)
    out = predict(model, [(z, p @ rot.T + 0.7, cell @ rot.T, pbc)])
    _close(out["energy"], ref["energy"], "crystal energy under rotation")
    _close(out["forces"], ref["forces"] @ torch.tensor(rot.T), "crystal forces under rotation")


def check_permutation(factory: Factory, seed: int = 2) -> None:
    """Permuting atoms permutes forces and leaves energy and property unchanged."""
    rng = np.random.default_rng(seed)
    model = _model(factory)
    z, p, _, _ = random_molecule(rng, 8)
    ref = predict(model, [(z, p, None, None)])
    perm = rng.permutation(len(z))
    out = predict(model, [(z[perm], p[perm], None, None)])
    _close(out["energy"], ref["energy"], "energy under permutation")
    _close(out["property"], ref["property"], "property under permutation")
    _close(out["forces"], ref["forces"][perm], "forces under permutation")


def check_forces_finite_differences(factory: Factory, seed: int = 3, h: float = 1e-5) -> None:
    """Forces equal minus the central finite difference of the energy (float64)."""
    rng = np.random.default_rng(seed)
    model = _model(factory)
    mol = random_molecule(rng, 6)
    crystal = random_crystal(rng, 2, crystal_species(model))
    for z, p, cell, pbc in (mol, crystal):
        forces = predict(model, [(z, p, cell, pbc)])["forces"].numpy()
        fd = np.zeros_like(p)
        for a in range(len(z)):
            for k in range(3):
                energies = []
                for sign in (1, -1):
                    q = p.copy()
                    q[a, k] += sign * h
                    energies.append(float(predict(model, [(z, q, cell, pbc)])["energy"][0]))
                fd[a, k] = -(energies[0] - energies[1]) / (2 * h)
        np.testing.assert_allclose(forces, fd, rtol=1e-5, atol=1e-7, err_msg="forces vs -dE/dR")


def check_batch_independence(factory: Factory, seed: int = 4) -> None:
    """A structure's outputs do not depend on what else is in its batch."""
    rng = np.random.default_rng(seed)
    model = _model(factory)
    a, b = random_molecule(rng, 6), random_molecule(rng, 9)
    c = random_crystal(rng, species=crystal_species(model))
    alone = predict(model, [b])
    together = predict(model, [a, b, c])
    n_a, n_b = len(a[0]), len(b[0])
    _close(together["energy"][1:2], alone["energy"], "energy in a batch")
    _close(together["property"][1:2], alone["property"], "property in a batch")
    _close(together["forces"][n_a : n_a + n_b], alone["forces"], "forces in a batch")


def check_supercell(factory: Factory, seed: int = 5) -> None:
    """A crystal and its 2x1x1 and 2x2x2 supercells give the same energy per atom
    (cutoff larger than the cell, so atoms see their own periodic images)."""
    rng = np.random.default_rng(seed)
    model = _model(factory)
    z, p, cell, pbc = random_crystal(rng, species=crystal_species(model))
    assert cell is not None
    assert model.backbone.cutoff > np.linalg.norm(cell, axis=1).max(), "cutoff must exceed the cell"
    ref = predict(model, [(z, p, cell, pbc)])
    for reps in ((2, 1, 1), (2, 2, 2)):
        grid = np.array(np.meshgrid(*[np.arange(r) for r in reps], indexing="ij")).reshape(3, -1).T
        shifts = grid @ cell
        big_p = (p[None, :, :] + shifts[:, None, :]).reshape(-1, 3)
        big = (np.tile(z, len(grid)), big_p, cell * np.array(reps)[:, None], pbc)
        out = predict(model, [big])
        n = len(grid)
        _close(out["energy"] / (n * len(z)), ref["energy"] / len(z), f"energy/atom {reps}")
        _close(out["forces"], ref["forces"].repeat(n, 1), f"forces {reps}", rtol=1e-7, atol=1e-8)


def check_parameter_blocks(factory: Factory, seed: int = 6) -> None:
    """``parameter_blocks()`` is ``embedding, layer1 .. layerL``, each parameter exactly once."""
    backbone = _model(factory).backbone
    names = [name for name, _ in backbone.parameter_blocks()]
    assert names == ["embedding", *(f"layer{k}" for k in range(1, len(names)))], names
    ids = [id(p) for _, params in backbone.parameter_blocks() for p in params]
    assert len(ids) == len(set(ids)), "a parameter sits in two blocks"
    assert set(ids) == {id(p) for p in backbone.parameters()}, "a parameter is in no block"


def check_model_args_round_trip(factory: Factory, seed: int = 7) -> None:
    """The model rebuilt from its ``model_args`` / ``head_args`` (as a checkpoint does) and
    given its weights predicts the same."""
    from atomcollapse.models.checkpoint import build_model

    model = _model(factory)
    args = {"backbone": model.backbone.model_args(), "heads": model.head_args()}
    rebuilt = build_model(args).double().eval()
    rebuilt.load_state_dict(model.state_dict())
    structures = [random_molecule(np.random.default_rng(seed), 5)]
    a, b = predict(model, structures), predict(rebuilt, structures)
    for key in a:
        _close(b[key], a[key], f"{key} after the model_args round trip")


def check_reinitialize(factory: Factory, seed: int = 8) -> None:
    """``reinitialize(seed)`` (the scratch arm) gives new weights, the same for the same seed."""
    pretrained = _model(factory).backbone.state_dict()
    a, b, c = (_model(factory).backbone for _ in range(3))
    a.reinitialize(seed)
    b.reinitialize(seed)
    c.reinitialize(seed + 1)
    wa, wb, wc = a.state_dict(), b.state_dict(), c.state_dict()
    trainable = [k for k, v in wa.items() if v.is_floating_point() and v.numel() > 1]
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "same seed, different weights"
    assert any(not torch.equal(wa[k], wc[k]) for k in trainable), "the seed has no effect"
    assert any(not torch.equal(wa[k], pretrained[k]) for k in trainable), "weights unchanged"


MOLECULE_CHECKS = (
    check_rotation_translation,
    check_permutation,
    check_forces_finite_differences,
    check_batch_independence,
    check_parameter_blocks,
    check_model_args_round_trip,
    check_reinitialize,
)
ALL_CHECKS = (*MOLECULE_CHECKS, check_periodic_rotation, check_supercell)
