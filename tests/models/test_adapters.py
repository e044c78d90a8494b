"""Adapters for pretrained models from wheels: ANI-1x (torchani 2.0) and SevenNet-0 (sevenn).

Each adapter passes the backbone contract and reproduces its package's own energies and forces.
The tests of an adapter skip when its extra is not installed.
"""

from __future__ import annotations

import copy
import importlib.util
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from atomcollapse.errors import InputError
from atomcollapse.models import adapters
from atomcollapse.models.adapters.elements import element_table, species_of
from atomcollapse.units import HARTREE_EV
from tests.models import adapter_checks, contract


def _need(package: str, extra: str) -> None:
    """Skip unless ``package`` is installed (torchani 2.0 cannot be imported plainly on
    setuptools >= 81, so ``importorskip`` would skip it wrongly; the adapter handles that)."""
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"the {extra!r} extra ({package}) is not installed")


# ---- names and element handling (no extra needed) ---------------------------------------------


def test_pretrained_names_resolve_through_the_registry(tmp_path, monkeypatch):
    from atomcollapse.models import registry

    assert registry.entry_for("ani1x").module.endswith(".ani")
    assert registry.entry_for("ANI1x:3").name == "ani1x"
    assert registry.entry_for("ani1x:9") is None
    assert registry.entry_for("sevennet-0").extra == "sevenn"
    assert registry.entry_for("sevennet-l3i5").name == "sevennet"
    assert registry.entry_for("sevennet-0:1") is None and registry.entry_for("painn.pt") is None
    assert adapters.is_pretrained_name("ani1ccx") and not adapters.is_pretrained_name("x.pt")
    with pytest.raises(InputError, match="unknown pretrained model 'bogus'; known: ani1x"):
        registry.load_named("bogus")
    # a file of that name in the current folder is a checkpoint path, not the bundled model
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ani1x").write_bytes(b"x")
    assert not adapters.is_pretrained_name("ani1x")


def test_unknown_element_is_refused_with_structure_named():
    batch = contract.make_batch(
        [(np.array([6, 1]), np.eye(3)[:2] * 1.1, None, None),
         (np.array([6, 9, 1]), np.eye(3) * 1.2, None, None)], 5.0,
    )  # fmt: skip
    batch = replace(batch, index=torch.tensor([10, 42]))
    with pytest.raises(InputError, match=r"structure 42: element F is not supported by M"):
        species_of(batch, element_table((1, 6, 7, 8)), "M")


def test_rows_with_elements_drops_and_counts():
    numbers = np.array([6, 1, 1, 9, 6, 8, 7, 1])
    offsets = np.array([0, 3, 4, 6, 8])  # CHH | F | CO | NH
    kept, dropped = adapters.rows_with_elements(
        numbers, offsets, np.array([3, 1, 0, 2]), (1, 6, 7, 8)
    )
    assert kept.tolist() == [3, 0, 2] and dropped == 1
    line = adapters.describe_drop(dropped, 4, (1, 6, 7, 8), "train")
    assert line.startswith("left out 1 of 4 train structures") and "H, C, N, O" in line


# ---- shared checks ---------------------------------------------------------------------------


def _check_molecule_forces(factory, seed: int = 3, h: float = 1e-5) -> None:
    """Forces equal minus the central finite difference of the energy (float64)."""
    model = factory().double().eval()
    z, p, _, _ = contract.random_molecule(np.random.default_rng(seed), 5)
    forces = contract.predict(model, [(z, p, None, None)])["forces"].numpy()
    fd = np.zeros_like(p)
    for a in range(len(z)):
        for k in range(3):
            e = []
            for sign in (1, -1):
                q = p.copy()
                q[a, k] += sign * h
                e.append(float(contract.predict(model, [(z, q, None, None)])["energy"][0]))
            fd[a, k] = -(e[0] - e[1]) / (2 * h)
    assert np.abs(forces).max() > 1e-3
    np.testing.assert_allclose(forces, fd, rtol=1e-5, atol=1e-6)


def _check_molecule_batch(factory, seed: int = 4) -> None:
    """A molecule's outputs do not depend on what else (smaller, larger) is in its batch."""
    model = factory().double().eval()
    rng = np.random.default_rng(seed)
    a, b, c = (contract.random_molecule(rng, n) for n in (3, 6, 11))
    alone, together = contract.predict(model, [b]), contract.predict(model, [a, b, c])
    for key in ("energy", "property"):
        torch.testing.assert_close(together[key][1:2], alone[key], rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(together["forces"][3:9], alone["forces"], rtol=1e-9, atol=1e-9)


# ---- ANI-1x ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ani():
    _need("torchani", "ani")
    return adapters.load_pretrained_with_meta("ani1x:0")


def _ani_factory(ani):
    return lambda: adapter_checks.with_property_head(copy.deepcopy(ani[0]))


@pytest.mark.parametrize(
    "check",
    [contract.check_rotation_translation, contract.check_permutation,
     _check_molecule_forces, _check_molecule_batch, contract.check_parameter_blocks,
     contract.check_model_args_round_trip, contract.check_reinitialize],
    ids=lambda c: c.__name__,
)  # fmt: skip
def test_ani_contract(ani, check):
    check(_ani_factory(ani))


def test_ani_energies_equal_torchani():
    _need("torchani", "ani")
    from ase.build import molecule

    from atomcollapse.models.adapters.ani import _builtin

    model = adapter_checks.with_property_head(adapters.load_pretrained("ani1x")).double().eval()
    reference = copy.deepcopy(_builtin("ani1x")).double()
    mols = [molecule(name) for name in ("CH4", "H2O", "C6H6", "CH3CONH2")]
    for atoms in mols:
        atoms.rattle(0.05, seed=1)
    out = contract.predict(model, [(a.numbers, a.positions, None, None) for a in mols])
    start = 0
    for k, atoms in enumerate(mols):
        species = torch.tensor([["HCNO".index(s) for s in atoms.get_chemical_symbols()]])
        pos = torch.tensor(atoms.positions[None], requires_grad=True)
        energy = reference((species, pos)).energies
        (grad,) = torch.autograd.grad(energy.sum(), pos)
        expected = float(energy.detach()) * HARTREE_EV
        assert float(out["energy"][k]) == pytest.approx(expected, abs=1e-6)
        n = len(atoms)
        forces = out["forces"][start : start + n].numpy()
        np.testing.assert_allclose(forces, -grad[0].numpy() * HARTREE_EV, atol=1e-8)
        start += n


def test_ani_features_blocks_and_refusals(ani):
    model, meta, digest = ani
    assert meta["elements"] == ["H", "C", "N", "O"] and len(digest) == 64
    assert meta["source"].startswith("torchani 2.0")
    backbone = model.backbone
    rng = np.random.default_rng(5)
    batch = contract.make_batch([contract.random_molecule(rng, 6)], backbone.cutoff)
    batch = batch.to("cpu", torch.float32)
    out = backbone(batch)
    assert [t.shape[1] for t in out.layers] == [384, 160, 128, 96] and backbone.feature_dim == 96
    assert out.node is out.layers[-1] and out.edge is None
    adapter_checks.check_blocks(backbone, 3)
    assert backbone.model_args() == {"type": "ani", "weights": "ani1x", "model_index": 0}
    periodic = replace(batch, cell=torch.eye(3)[None] * 10, pbc=torch.ones(1, 3, dtype=torch.bool))
    with pytest.raises(InputError, match="periodic"):
        backbone(periodic)
    with pytest.raises(InputError, match="element F"):
        backbone(replace(batch, numbers=torch.tensor([6, 9, 1, 1, 1, 1])))


def test_ani_checkpoint_training_and_scratch(ani, tmp_path):
    model = ani[0]
    rng = np.random.default_rng(6)
    mols = [contract.random_molecule(rng, 4), contract.random_molecule(rng, 7)]
    adapter_checks.check_checkpoint_round_trip(model, mols, ["H", "C", "N", "O"], tmp_path)
    adapter_checks.check_training_step(model, mols)
    args = model.backbone.model_args()
    a, b = adapters.scratch_backbone(args, 1), adapters.scratch_backbone(args, 1)
    c = adapters.scratch_backbone(args, 2)
    wa, wb, wc = (x.networks["C"][0][0].weight for x in (a, b, c))
    pretrained = model.backbone.networks["C"][0][0].weight
    assert torch.equal(wa, wb) and not torch.equal(wa, wc) and not torch.equal(wa, pretrained)


# ---- SevenNet-0 -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sevennet():
    _need("sevenn", "sevenn")
    return adapters.load_pretrained_with_meta("sevennet-0")


@pytest.mark.slow
@pytest.mark.parametrize("check", contract.ALL_CHECKS, ids=lambda c: c.__name__)
def test_sevennet_contract(sevennet, check):
    check(lambda: adapter_checks.with_property_head(copy.deepcopy(sevennet[0])))


@pytest.mark.slow
def test_sevennet_energies_equal_sevenn_calculator(sevennet):
    from ase.build import bulk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sevenn.calculator import SevenNetCalculator

        calc = SevenNetCalculator("7net-0", device="cpu")
    si = bulk("Si", "diamond", a=5.43)
    si.rattle(0.05, seed=1)
    nacl = bulk("NaCl", "rocksalt", a=5.64).repeat((1, 1, 2))
    nacl.rattle(0.05, seed=2)
    crystals = [si, nacl]
    model = copy.deepcopy(sevennet[0]).float().eval()
    structures = [(a.numbers, a.positions, np.array(a.cell), a.pbc) for a in crystals]
    batch = contract.make_batch(structures, model.backbone.cutoff).to("cpu", torch.float32)
    out = model(batch, tasks=("energy",), compute_forces=True)
    start = 0
    for k, atoms in enumerate(crystals):
        atoms.calc = calc
        assert float(out["energy"][k]) == pytest.approx(atoms.get_potential_energy(), abs=1e-4)
        n = len(atoms)
        reference = atoms.get_forces()
        assert np.abs(reference).max() > 0.1
        np.testing.assert_allclose(out["forces"][start : start + n].numpy(), reference, atol=1e-4)
        start += n


@pytest.mark.slow
def test_sevennet_features_blocks_checkpoint_and_training(sevennet, tmp_path):
    model, meta, _ = sevennet
    assert len(meta["elements"]) == 89 and meta["source"].startswith("sevenn 0.13")
    backbone = model.backbone
    assert backbone.cutoff == 5.0 and backbone.feature_dim == 128
    rng = np.random.default_rng(7)
    crystal = contract.random_crystal(rng, 2)
    out = backbone(contract.make_batch([crystal], backbone.cutoff).to("cpu", torch.float32))
    assert len(out.layers) == 6 and all(t.shape == (2, 128) for t in out.layers)
    adapter_checks.check_blocks(backbone, 5)
    adapter_checks.check_checkpoint_round_trip(model, [crystal], meta["elements"], tmp_path)
    adapter_checks.check_training_step(model, [crystal, contract.random_molecule(rng, 4)])
    scratch = adapters.scratch_backbone(backbone.model_args(), 3)
    first = next(scratch.blocks[0].parameters())
    assert not torch.equal(first, next(backbone.blocks[0].parameters()))
    assert torch.equal(
        first, next(adapters.scratch_backbone(backbone.model_args(), 3).blocks[0].parameters())
    )


@pytest.mark.slow
def test_sevennet_l3i5_energies_equal_sevenn_calculator():
    _need("sevenn", "sevenn")
    from ase.build import bulk

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sevenn.calculator import SevenNetCalculator

        calc = SevenNetCalculator("7net-l3i5", device="cpu")
    model, meta, _ = adapters.load_pretrained_with_meta("sevennet-l3i5")
    assert meta["name"] == "sevennet-l3i5" and len(meta["elements"]) == 89
    si = bulk("Si", "diamond", a=5.43)
    si.rattle(0.05, seed=3)
    model = model.float().eval()
    batch = contract.make_batch([(si.numbers, si.positions, np.array(si.cell), si.pbc)],
                                model.backbone.cutoff).to("cpu", torch.float32)  # fmt: skip
    out = model(batch, tasks=("energy",), compute_forces=True)
    si.calc = calc
    assert float(out["energy"][0]) == pytest.approx(si.get_potential_energy(), abs=1e-4)
    np.testing.assert_allclose(out["forces"].numpy(), si.get_forces(), atol=1e-4)


def test_sevennet_weights_load_from_the_package_never_the_current_folder(tmp_path, monkeypatch):
    _need("sevenn", "sevenn")
    from atomcollapse.models.adapters import sevenn as adapter

    util = adapter._sevenn_util()
    monkeypatch.chdir(tmp_path)
    for name in ("7net-0", "7net-l3i5"):
        (tmp_path / name).write_bytes(b"a stray file that must never be unpickled")
    for weights in ("sevennet-0", "sevennet-l3i5"):
        path = Path(adapter._packaged_path(util, weights))
        assert path.is_absolute() and path.is_file()
        assert tmp_path not in path.parents and "sevenn" in path.parts
