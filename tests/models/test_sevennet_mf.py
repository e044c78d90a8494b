"""SevenNet-MF-0 (``sevenn``'s multi-fidelity weights): ``sevennet-mf-0:MODAL``.

The modal (fidelity) reaches sevenn's modules as it does in sevenn (a one-hot per structure for
the modal-aware linear maps, an index for the modal-wise shift); energies and forces equal
``SevenNetCalculator(model=<packaged path>, modal=...)``; one adapted model is one modal, kept in
its ``model_args``. Skips when the ``sevenn`` extra is not installed.
"""

from __future__ import annotations

import copy
import importlib.util
import warnings

import numpy as np
import pytest
import torch

from atomcollapse.errors import InputError
from atomcollapse.models import adapters, registry
from tests.models import adapter_checks, contract

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("sevenn") is None, reason="the 'sevenn' extra (sevenn) is absent"
)

#: QM9 molecules (every one has at most 9 heavy atoms) and their ase names
MOLECULES = ("CH4", "NH3", "H2O", "CH3OH", "HCOOH", "CH3CN", "C2H6")


@pytest.fixture(scope="module")
def mf_pbe():
    return adapters.load_pretrained_with_meta("sevennet-mf-0:PBE")


def test_listed_modals_are_the_checkpoints_own():
    from atomcollapse.models.adapters import sevenn as adapter

    modals = adapter.modals("sevennet-mf-0")
    assert set(modals) == {"PBE", "R2SCAN"} and sorted(modals.values()) == [0, 1]
    listed = [n for n in registry.known_names() if n.startswith("sevennet-mf-0")]
    assert sorted(listed) == sorted(f"sevennet-mf-0:{m}" for m in modals)
    assert adapter.modals("sevennet-0") == {}
    assert adapter.resolve_modal("sevennet-mf-0", "r2scan") == "R2SCAN"
    assert registry.entry_for("SevenNet-MF-0:pbe").name == "sevennet-mf"


@pytest.mark.parametrize(
    ("name", "needle"),
    [("sevennet-mf-0", "name a modal, --pretrained sevennet-mf-0:MODAL with MODAL one of"),
     ("sevennet-mf-0:", "name a modal"),
     ("sevennet-mf-0:hse06", "unknown modal 'hse06' of sevennet-mf-0; its modals:")],
)  # fmt: skip
def test_missing_or_unknown_modal_is_refused_naming_the_modals(name, needle):
    with pytest.raises(InputError) as info:
        registry.load_named(name)
    message = str(info.value)
    assert needle in message and "R2SCAN" in message and "PBE" in message
    assert "\n" not in message


def test_single_fidelity_weights_take_no_modal():
    from atomcollapse.models.adapters import sevenn as adapter

    with pytest.raises(InputError, match="have no modals"):
        adapter.resolve_modal("sevennet-0", "PBE")


@pytest.mark.slow
def test_energies_and_forces_equal_the_sevenn_calculator_for_each_modal():
    """float32 on both sides (sevenn's calculator casts its inputs to float32)."""
    from ase.build import bulk, molecule

    from atomcollapse.models.adapters import sevenn as adapter

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from sevenn.calculator import SevenNetCalculator

    path = adapter._packaged_path(adapter._sevenn_util(), "sevennet-mf-0")
    mols = [molecule(name) for name in MOLECULES]
    for atoms in mols:
        atoms.rattle(0.05, seed=1)
    si = bulk("Si", "diamond", a=5.43)
    si.rattle(0.05, seed=1)
    structures = [(a.numbers, a.positions, None, None) for a in mols]
    structures.append((si.numbers, si.positions, np.array(si.cell), si.pbc))
    energies = {}
    for modal in ("PBE", "R2SCAN"):
        model = adapters.load_pretrained(f"sevennet-mf-0:{modal}").float().eval()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            calc = SevenNetCalculator(model=path, modal=modal, device="cpu")
        batch = contract.make_batch(structures, model.backbone.cutoff).to("cpu", torch.float32)
        out = model(batch, tasks=("energy",), compute_forces=True)
        start = 0
        for k, atoms in enumerate([*mols, si]):
            atoms.calc = calc
            assert float(out["energy"][k]) == pytest.approx(atoms.get_potential_energy(), abs=1e-5)
            n = len(atoms)
            reference = atoms.get_forces()
            assert np.abs(reference).max() > 0.1
            got = out["forces"][start : start + n].detach().numpy()
            np.testing.assert_allclose(got, reference, rtol=0, atol=1e-5)
            start += n
        energies[modal] = out["energy"].detach().numpy()
    assert np.abs(energies["PBE"] - energies["R2SCAN"]).min() > 0.5  # eV: the modals differ


@pytest.mark.slow
@pytest.mark.parametrize("check", contract.ALL_CHECKS, ids=lambda c: c.__name__)
def test_contract(mf_pbe, check):
    check(lambda: adapter_checks.with_property_head(copy.deepcopy(mf_pbe[0])))


@pytest.mark.slow
def test_modal_in_args_meta_checkpoint_and_scratch(mf_pbe, tmp_path):
    model, meta, digest = mf_pbe
    args = {"type": "sevennet", "weights": "sevennet-mf-0", "modal": "PBE"}
    assert model.backbone.model_args() == args
    assert model.head_args()["energy"]["modal"] == "PBE"
    assert meta["name"] == "sevennet-mf-0:PBE" and len(meta["elements"]) == 89
    _, _, r2scan_digest = adapters.load_pretrained_with_meta("sevennet-mf-0:R2SCAN")
    assert digest != r2scan_digest  # same weights, another modal: another pretrained hash
    adapter_checks.check_blocks(model.backbone, 5)
    rng = np.random.default_rng(7)
    crystal = contract.random_crystal(rng, 2)
    adapter_checks.check_checkpoint_round_trip(model, [crystal], meta["elements"], tmp_path)
    adapter_checks.check_training_step(model, [crystal, contract.random_molecule(rng, 4)])
    scratch = adapters.scratch_backbone(args, 3)
    assert scratch.model_args() == args
    first = next(scratch.blocks[0].parameters())
    assert not torch.equal(first, next(model.backbone.blocks[0].parameters()))
