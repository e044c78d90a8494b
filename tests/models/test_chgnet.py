"""The CHGNet adapter: chgnet's own inference reproduced on our batch, the backbone contract,
checkpoints, scratch weights. Skips when chgnet (the ``chgnet`` extra) is not importable."""

from __future__ import annotations

import copy
import warnings
from dataclasses import replace

import numpy as np
import pytest
import torch

from atomcollapse.errors import InputError
from atomcollapse.models import adapters, registry
from atomcollapse.models.adapters import chgnet as adapter
from tests.models import contract
from tests.models.adapter_checks import check_blocks as _check_blocks
from tests.models.adapter_checks import check_checkpoint_round_trip as _check_checkpoint_round_trip
from tests.models.adapter_checks import check_training_step as _check_training_step
from tests.models.adapter_checks import with_property_head as _with_property_head

pytest.importorskip("chgnet.model", reason="the 'chgnet' extra (chgnet==0.4.2) is not installed")

VERSIONS = ("0.3.0", "0.2.0", "r2scan")


@pytest.fixture(scope="module")
def chgnet():
    return adapters.load_pretrained_with_meta("chgnet")


def _crystals():
    """Rattled small crystals (magnetic Fe, ionic NaCl and Li2O, covalent Si, and Cs whose
    bonds are all longer than 3 A: no angles) and ethanol."""
    from ase.build import bulk, molecule

    structures = [bulk("Si", "diamond", a=5.43), bulk("NaCl", "rocksalt", a=5.64).repeat((1, 1, 2)),
                  bulk("Fe", "bcc", a=2.87).repeat((2, 1, 1)), bulk("Li2O", "fluorite", a=4.6),
                  bulk("Cs", "bcc", a=5.0, cubic=True)]  # fmt: skip
    ethanol = molecule("CH3CH2OH")
    for seed, atoms in enumerate([*structures, ethanol]):
        atoms.rattle(0.05, seed=seed + 1)
    return structures, ethanol


@pytest.mark.parametrize("version", VERSIONS)
def test_energies_and_forces_equal_chgnet_float64(version, monkeypatch):
    """Our model (float64) against chgnet's ``predict_structure`` run in float64 too (graphs
    built in float64; its AtomRef stays float32, ~3e-7 eV/atom): |dE| and |dF| < 1e-5."""
    import chgnet.graph.converter
    from pymatgen.io.ase import AseAtomsAdaptor

    monkeypatch.setattr(chgnet.graph.converter, "TORCH_DTYPE", torch.float64)
    reference = copy.deepcopy(adapter._pretrained(version)).double()
    reference.composition_model.float()
    model, meta, _ = adapters.load_pretrained_with_meta(f"chgnet:{version}")
    model = model.double().eval()
    crystals, ethanol = _crystals()
    boxed = ethanol.copy()
    boxed.set_cell([20.0, 20.0, 20.0])
    boxed.center()
    boxed.pbc = True
    ours = [(a.numbers, a.positions, np.array(a.cell), a.pbc) for a in crystals]
    ours.append((ethanol.numbers, ethanol.positions, None, None))  # a molecule, not periodic
    batch = contract.make_batch(ours, model.backbone.cutoff)
    out = model(batch, tasks=("energy",), compute_forces=True)
    start = 0
    for k, atoms in enumerate([*crystals, boxed]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = reference.predict_structure(AseAtomsAdaptor.get_structure(atoms), task="ef")
        n = len(atoms)
        assert float(out["energy"][k]) / n == pytest.approx(float(expected["e"]), abs=1e-5)
        forces = out["forces"][start : start + n].numpy()
        assert np.abs(expected["f"]).max() > 0.05 or atoms.get_chemical_formula() == "Cs2"
        np.testing.assert_allclose(forces, expected["f"], rtol=0, atol=1e-5)
        start += n
    assert meta["source"] == f"chgnet 0.4.2 (weights {version})"


@pytest.mark.slow
@pytest.mark.parametrize("check", contract.ALL_CHECKS, ids=lambda c: c.__name__)
def test_chgnet_contract(chgnet, check):
    check(lambda: _with_property_head(copy.deepcopy(chgnet[0])))


def test_features_blocks_args_and_elements(chgnet):
    model, meta, digest = chgnet
    backbone = model.backbone
    assert len(digest) == 64 and meta["name"] == "chgnet"
    assert meta["elements"][0] == "H" and meta["elements"][-1] == "Pu"
    assert len(meta["elements"]) == 94 and backbone.elements == tuple(range(1, 95))
    assert backbone.cutoff == 6.0 and backbone.bond_cutoff == 3.0 and backbone.feature_dim == 64
    assert backbone.model_args() == {"type": "chgnet", "weights": "0.3.0"}
    assert model.head_args()["energy"] == {
        "type": "chgnet-energy", "feature_dim": 64, "weights": "0.3.0"
    }  # fmt: skip
    rng = np.random.default_rng(5)
    batch = contract.make_batch([contract.random_crystal(rng, 3)], backbone.cutoff)
    out = backbone(batch.to("cpu", torch.float32))
    assert len(out.layers) == 5 and all(t.shape == (3, 64) for t in out.layers)
    assert out.node is out.layers[-1]
    _check_blocks(backbone, 4)
    assert "site_wise" not in dict(model.named_modules())  # no magnetic-moment head
    with pytest.raises(InputError, match="element Am is not supported by CHGNet"):
        backbone(replace(batch, numbers=torch.tensor([95, 8, 14])))
    old = adapters.load_pretrained("chgnet:0.2.0").backbone
    assert old.cutoff == 5.0 and old.model_args()["weights"] == "0.2.0"


def test_a_graph_built_for_a_larger_cutoff_gives_the_same_outputs(chgnet):
    model = _with_property_head(copy.deepcopy(chgnet[0])).double().eval()
    rng = np.random.default_rng(8)
    structures = [contract.random_crystal(rng, 3), contract.random_molecule(rng, 6)]
    exact = contract.make_batch(structures, model.backbone.cutoff)
    wide = contract.make_batch(structures, model.backbone.cutoff + 1.5)
    assert wide.edge_index.shape[1] > exact.edge_index.shape[1]
    a = model(exact, tasks=("energy", "property"), compute_forces=True)
    b = model(wide, tasks=("energy", "property"), compute_forces=True)
    for key in ("energy", "property", "forces"):
        torch.testing.assert_close(b[key], a[key], rtol=1e-10, atol=1e-10)


def test_checkpoint_training_and_scratch(chgnet, tmp_path):
    model, meta, _ = chgnet
    rng = np.random.default_rng(6)
    structures = [contract.random_crystal(rng, 3), contract.random_molecule(rng, 5)]
    _check_checkpoint_round_trip(model, structures, meta["elements"], tmp_path)
    _check_training_step(model, structures)
    args = model.backbone.model_args()
    a, b = adapters.scratch_backbone(args, 1), adapters.scratch_backbone(args, 1)
    c = adapters.scratch_backbone(args, 2)
    state_a, state_b, state_c = (x.state_dict() for x in (a, b, c))
    pretrained = model.backbone.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    weight = "atom_convs.0.twoBody_atom.mlp_core.layers.0.weight"
    assert not torch.equal(state_a[weight], state_c[weight])
    assert not torch.equal(state_a[weight], pretrained[weight])
    freq = a.bond_basis.rbf_expansion_ag.frequencies
    torch.testing.assert_close(freq, torch.pi * torch.arange(1.0, freq.numel() + 1))


def test_unknown_version_is_refused_by_name():
    assert registry.entry_for("chgnet:r2scan").name == "chgnet"
    assert registry.entry_for("chgnet:9.9") is None
    assert adapters.is_pretrained_name("chgnet:9.9")
    with pytest.raises(InputError, match=r"unknown chgnet weights 'chgnet:9\.9' .*chgnet:r2scan"):
        registry.load_named("chgnet:9.9")
    with pytest.raises(InputError, match=r"unknown CHGNet version '9\.9'"):
        adapter.load("chgnet:9.9")
