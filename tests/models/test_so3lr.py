"""SO3LR (so3krates-torch 0.2.1) through its adapter: the package's own energies and forces, the
backbone contract, features, blocks, checkpoints, training reach and the scratch arm.

Skips when so3krates-torch (the ``so3lr`` extra) is not installed.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
import torch

from atomcollapse.errors import InputError
from atomcollapse.models import adapters
from tests.models import adapter_checks, contract

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("so3krates_torch") is None,
    reason="the 'so3lr' extra (so3krates-torch==0.2.1) is not installed",
)

#: QM9-size molecules (at most 9 heavy atoms), two with fluorine
SMILES = ("CC(=O)NC", "Oc1ccccc1", "FC(F)C#N", "Fc1cccnc1", "O=c1[nH]cc(F)c(=O)[nH]1")
SYMBOLS = ["H", "C", "N", "O", "F", "P", "S", "Cl"]


@pytest.fixture(scope="module")
def so3lr():
    return adapters.load_pretrained_with_meta("so3lr")


def _factory(so3lr):
    return lambda: adapter_checks.with_property_head(copy.deepcopy(so3lr[0]))


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """so3krates-torch builds its input tensors in torch's default dtype (its calculator sets it)."""
    before = torch.get_default_dtype()
    try:
        torch.set_default_dtype(dtype)
        yield
    finally:
        torch.set_default_dtype(before)


def _molecules():
    """RDKit conformers (seeded), rattled so that no molecule sits at a minimum."""
    from ase import Atoms
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mols = []
    for k, smiles in enumerate(SMILES):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        assert AllChem.EmbedMolecule(mol, randomSeed=k) == 0, smiles
        atoms = Atoms(
            numbers=[a.GetAtomicNum() for a in mol.GetAtoms()],
            positions=mol.GetConformer().GetPositions(),
        )
        atoms.rattle(0.05, seed=k)
        mols.append(atoms)
    return mols


def test_energies_and_forces_equal_the_so3lr_calculator(so3lr):
    from so3krates_torch.calculator.so3 import SO3LRCalculator

    mols = _molecules()
    assert any(9 in a.numbers for a in mols) and max(sum(a.numbers > 1) for a in mols) <= 9
    model = _factory(so3lr)().double().eval()
    out = contract.predict(model, [(a.numbers, a.positions, None, None) for a in mols])
    with _default_dtype(torch.float64), contextlib.redirect_stdout(None):
        calc = SO3LRCalculator(default_dtype="float64")
        expected = []
        for atoms in mols:
            atoms.calc = calc
            expected.append((atoms.get_potential_energy(), atoms.get_forces()))
    d_e = np.abs(out["energy"].numpy() - np.array([e for e, _ in expected])).max()
    forces = np.concatenate([f for _, f in expected])
    d_f = np.abs(out["forces"].numpy() - forces).max()
    assert np.abs(forces).max() > 0.5  # a vacuous comparison would pass too
    assert d_e <= 1e-5 and d_f <= 1e-5, (d_e, d_f)


@pytest.mark.parametrize("check", contract.ALL_CHECKS, ids=lambda c: c.__name__)
def test_contract(so3lr, check):
    check(_factory(so3lr))


def test_meta_elements_features_and_blocks(so3lr):
    model, meta, digest = so3lr
    assert meta["elements"] == SYMBOLS and len(digest) == 64
    assert meta["source"] == "so3krates-torch 0.2.1" and meta["name"] == "so3lr"
    # the element set is exactly the elements whose learned energy scale left its start (1.0)
    scales = model.heads["energy"].atomic_energy.energy_scales.weight.detach()[0]
    trained = [z + 1 for z in range(scales.numel()) if float(scales[z]) != 1.0]
    assert trained == list(model.backbone.elements)
    backbone = model.backbone
    assert backbone.cutoff == 4.5 and backbone.feature_dim == 128
    rng = np.random.default_rng(5)
    batch = contract.make_batch([contract.random_molecule(rng, 6)], backbone.cutoff)
    out = backbone(batch.to("cpu", torch.float32))
    assert [t.shape for t in out.layers] == [(6, 128)] * 4 and out.node is out.layers[-1]
    adapter_checks.check_blocks(backbone, 3)
    assert backbone.model_args() == {"type": "so3lr", "weights": "so3lr"}
    head_args = model.heads["energy"].head_args()
    assert head_args["type"] == "so3lr-energy" and head_args["lr_cutoff"] == 12.0
    with pytest.raises(InputError, match="element Li is not supported by SO3LR"):
        backbone(replace(batch, numbers=torch.tensor([6, 3, 1, 1, 1, 1])))


def test_long_range_terms_reach_12_angstrom_and_stop_there(so3lr):
    """A molecule moved away from another in the same structure changes the energy through
    electrostatics and dispersion beyond the 4.5 A graph, and not at all beyond 12 A."""
    model = _factory(so3lr)().double().eval()
    rng = np.random.default_rng(8)
    (za, pa, _, _), (zb, pb, _, _) = (
        contract.random_molecule(rng, 5),
        contract.random_molecule(rng, 4),
    )
    span = (
        np.linalg.norm(pa - pa.mean(0), axis=1).max()
        + np.linalg.norm(pb - pb.mean(0), axis=1).max()
    )
    energies = {}
    for gap in (6.0, 8.0, 13.0, 20.0):  # least distance between the molecules' atoms >= gap
        far = pb - pb.mean(0) + pa.mean(0) + np.array([gap + span, 0.0, 0.0])
        joint = (np.concatenate([za, zb]), np.concatenate([pa, far]), None, None)
        energies[gap] = float(contract.predict(model, [joint])["energy"][0])
    assert abs(energies[13.0] - energies[20.0]) < 1e-9
    assert abs(energies[6.0] - energies[8.0]) > 1e-4


def test_checkpoint_training_reach_and_scratch(so3lr, tmp_path):
    model = so3lr[0]
    rng = np.random.default_rng(6)
    mols = [contract.random_molecule(rng, 4), contract.random_molecule(rng, 7)]
    adapter_checks.check_checkpoint_round_trip(model, mols, SYMBOLS, tmp_path)
    adapter_checks.check_training_step(model, mols)
    head = model.heads["energy"]
    assert all(p.requires_grad for p in head.parameters())
    assert {n.split(".")[0] for n, _ in head.named_parameters()} == {
        "atomic_energy", "zbl", "charges", "hirshfeld"
    }  # fmt: skip
    args = model.backbone.model_args()
    a, b = adapters.scratch_backbone(args, 1), adapters.scratch_backbone(args, 1)
    c = adapters.scratch_backbone(args, 2)
    first = [next(x.layers[0].parameters()) for x in (a, b, c, model.backbone)]
    assert torch.equal(first[0], first[1]) and not torch.equal(first[0], first[2])
    assert not torch.equal(first[0], first[3]) and first[0].shape == first[3].shape
    scratch = adapter_checks.with_property_head(adapters.load_pretrained("so3lr"))
    scratch.backbone = a
    out = contract.predict(scratch.double().eval(), mols)
    assert torch.isfinite(out["energy"]).all() and torch.isfinite(out["forces"]).all()
