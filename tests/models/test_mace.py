"""MACE (mace-torch 0.3.16) through its adapter, on small models that mace-torch's own code
builds and saves: MACECalculator's energies and forces, the backbone contract, features,
blocks, heads of a multi-head model, checkpoints, training reach and bad input.

Skips when mace-torch (the ``mace`` extra, its own environment: ``make test-mace``) is absent.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from atomcollapse.errors import InputError
from atomcollapse.models import adapters, registry
from atomcollapse.testing import contract
from tests.models import adapter_checks
from tests.models.mace_models import SKIP, save_model

pytestmark = SKIP

#: QM9-size molecules (at most 9 heavy atoms), two with fluorine
SMILES = ("CC(=O)NC", "Oc1ccccc1", "FC(F)C#N", "O=c1[nH]cc(F)c(=O)[nH]1")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("mace")
    return {
        "one": save_model(root / "one.model", seed=0),
        # two heads, float32 file, ZBL pair repulsion: MACE's multi-head fine-tuning layout
        "two": save_model(
            root / "two.model",
            heads=("pt_head", "dft"),
            seed=1,
            dtype=torch.float32,
            pair_repulsion=True,
        ),
    }


@pytest.fixture(scope="module")
def one(files):
    return adapters.load_pretrained_with_meta(f"mace:{files['one']}")


def _factory(loaded):
    return lambda: adapter_checks.with_property_head(copy.deepcopy(loaded[0]))


def _molecules():
    """RDKit conformers (seeded), rattled off their minima, and one periodic C/N/O crystal."""
    from ase import Atoms
    from rdkit import Chem
    from rdkit.Chem import AllChem

    out = []
    for k, smiles in enumerate(SMILES):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        assert AllChem.EmbedMolecule(mol, randomSeed=k) == 0, smiles
        atoms = Atoms(numbers=[a.GetAtomicNum() for a in mol.GetAtoms()],
                      positions=mol.GetConformer().GetPositions())  # fmt: skip
        atoms.rattle(0.05, seed=k)
        out.append(atoms)
    z, pos, cell, pbc = contract.random_crystal(np.random.default_rng(3), 4, (6, 7, 8))
    out.append(Atoms(numbers=z, positions=pos, cell=cell, pbc=pbc))
    return out


def _parity(path, name, head=None):
    """max |dE| (eV) and max |dF| (eV/A) between the adapter and MACECalculator (float64)."""
    import warnings

    from mace.calculators import MACECalculator

    model, _, _ = adapters.load_pretrained_with_meta(name)
    model = adapter_checks.with_property_head(model).double().eval()
    atoms = _molecules()
    structures = [(a.numbers, a.positions, np.asarray(a.cell) if a.pbc.any() else None,
                   a.pbc if a.pbc.any() else None) for a in atoms]  # fmt: skip
    out = contract.predict(model, structures)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        calc = MACECalculator(model_paths=str(path), device="cpu", default_dtype="float64",
                              **({"head": head} if head else {}))  # fmt: skip
    de, df, start = 0.0, 0.0, 0
    for k, a in enumerate(atoms):
        a.calc = calc
        n = len(a)
        de = max(de, abs(a.get_potential_energy() - float(out["energy"][k])))
        df = max(df, float(np.abs(a.get_forces() - out["forces"][start : start + n].numpy()).max()))
        start += n
    return de, df


def test_energies_and_forces_equal_mace_calculator(files):
    de, df = _parity(files["one"], f"mace:{files['one']}")
    print(f"single head (float64 file): max |dE| {de:.2e} eV, max |dF| {df:.2e} eV/A")
    assert de < 1e-5 and df < 1e-5


@pytest.mark.parametrize("head", ["pt_head", "dft"])
def test_each_head_of_a_two_head_model_equals_mace_calculator(files, head):
    de, df = _parity(files["two"], f"mace:{files['two']}:{head}", head=head)
    print(f"head {head} (float32 file, ZBL): max |dE| {de:.2e} eV, max |dF| {df:.2e} eV/A")
    assert de < 1e-5 and df < 1e-5


def test_heads_differ_and_the_head_is_recorded(files):
    a, meta_a, _ = adapters.load_pretrained_with_meta(f"mace:{files['two']}:pt_head")
    b, meta_b, _ = adapters.load_pretrained_with_meta(f"mace:{files['two']}:dft")
    assert meta_a["head"] == "pt_head" and meta_b["head"] == "dft"
    assert a.backbone.model_args()["head"] == "pt_head"
    assert a.heads["energy"].head_args()["head"] == "pt_head"
    mol = [contract.random_molecule(np.random.default_rng(0), 6)]
    ea = contract.predict(adapter_checks.with_property_head(a).double().eval(), mol)["energy"]
    eb = contract.predict(adapter_checks.with_property_head(b).double().eval(), mol)["energy"]
    assert abs(float(ea[0] - eb[0])) > 1e-3


@pytest.mark.parametrize("check", contract.ALL_CHECKS, ids=lambda c: c.__name__)
def test_contract(one, check):
    check(_factory(one))


def test_features_blocks_and_elements(one):
    model, meta, digest = one
    backbone = model.backbone
    assert backbone.elements == (1, 6, 7, 8, 9) and meta["elements"] == ["H", "C", "N", "O", "F"]
    assert backbone.cutoff == 5.0 and meta["head"] == "Default" and len(digest) == 64
    out = backbone(contract.make_batch([contract.random_molecule(np.random.default_rng(1), 5)],
                                       5.0).to("cpu", torch.float32))  # fmt: skip
    assert [t.shape for t in out.layers] == [(5, 8)] * 3  # embedding, layer1, layer2: scalars
    assert out.irreps[0].shape == (5, 8 + 8 * 3)  # layer 1 keeps its l = 1 channels for readout
    assert torch.equal(out.node, out.layers[-1]) and backbone.feature_dim == 8
    adapter_checks.check_blocks(backbone, 2)
    assert meta["model_args"]["backbone"]["type"] == "mace"
    assert meta["source"].startswith("mace-torch 0.3.16")


def test_checkpoint_round_trip_and_training_reach(one, tmp_path):
    structures = [contract.random_molecule(np.random.default_rng(2), 6)]
    adapter_checks.check_checkpoint_round_trip(one[0], structures, one[1]["elements"], tmp_path)
    adapter_checks.check_training_step(one[0], structures)


def test_energy_head_trains_the_readouts_only(one):
    head = one[0].heads["energy"]
    trainable = {n.split(".")[0] for n, p in head.named_parameters() if p.requires_grad}
    assert trainable == {"readouts"}  # scale/shift and E0s are buffers, as in MACE
    assert {"scale_shift.scale", "scale_shift.shift", "atomic_energies.atomic_energies"} <= set(
        dict(head.named_buffers())
    )
    assert head.atomic_energies.atomic_energies.dtype == torch.float64  # kept exact


def test_reinitialize_gives_mace_initialised_weights(one):
    a = copy.deepcopy(one[0].backbone)
    a.reinitialize(3)
    fresh = adapters.scratch_backbone(one[0].backbone.model_args(), 3)
    for (k, v), w in zip(a.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.equal(v, w), k


def _refused(name, needle):
    with pytest.raises(InputError) as err:
        adapters.load_pretrained_with_meta(name)
    line = str(err.value)
    assert "\n" not in line and needle in line, line
    return line


def test_bad_files_heads_and_names_are_one_line(files, tmp_path):
    text = tmp_path / "notes.model"
    text.write_text("not a model\n")
    _refused(f"mace:{text}", "not a MACE model file")
    state = tmp_path / "state.model"
    torch.save({"model": torch.zeros(2)}, state)
    _refused(f"mace:{state}", "holds a dict")
    _refused(f"mace:{tmp_path / 'absent.model'}", "MACE model file not found")
    line = _refused(f"mace:{files['two']}:nope", "no head 'nope'")
    assert "pt_head, dft" in line
    _refused(f"mace:{files['two']}", "name one (mace:PATH.model:HEAD): pt_head, dft")
    _refused("mace-mp-9", "unknown MACE foundation model 'mace-mp-9'")


def test_offline_foundation_download_is_one_line(monkeypatch, tmp_path):
    from mace.calculators import foundations_models as fm

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def offline(url, filename, timeout=0):
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(fm, "_urlretrieve_with_timeout", offline)
    for name, url in (("mace-mp-0", fm.mace_mp_urls["medium"]),
                      ("mace-off-small", fm.mace_off_urls["small"])):  # fmt: skip
        line = _refused(name, f"cannot download MACE foundation model {name!r} from {url}")
        assert str(tmp_path / "cache" / "mace") in line
    assert not any((tmp_path / "cache").rglob("*.model"))


def test_foundation_name_reads_mace_cache(files, monkeypatch, tmp_path):
    """A cached foundation file is read from MACE's cache, named as mace-torch names it."""
    from mace.calculators import foundations_models as fm

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cached = tmp_path / "mace" / "MACE-OFF23_small.model"
    cached.parent.mkdir()
    cached.write_bytes(files["one"].read_bytes())
    monkeypatch.setattr(fm, "_urlretrieve_with_timeout", lambda *a, **k: pytest.fail("download"))
    model, meta, _ = adapters.load_pretrained_with_meta("mace-off-small")
    assert meta["file"] == str(cached) and meta["name"] == "mace-off-small"
    row = registry.describe("mace-off-small")
    assert row["weights"].startswith("here") and row["parameters"] == sum(
        p.numel() for p in model.parameters()
    )
    assert registry.describe("mace-mp-0")["weights"].startswith("not here")


def test_models_listing_has_the_mace_entry(capsys):
    from atomcollapse.cli import main

    assert main(["models", "mace-mp-0", "mace:PATH.model", "--no-params"]) == 0
    out = capsys.readouterr().out
    assert "mace-mp-0" in out and "mace:PATH.model" in out


def test_a_stray_file_of_a_foundation_name_is_never_unpickled(files, tmp_path, monkeypatch):
    """``--pretrained mace-mp-0`` with a file of that name here: the file is read as an
    atomcollapse checkpoint (weights only), never unpickled as a MACE model."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mace-mp-0").write_bytes(files["one"].read_bytes())
    with pytest.raises(InputError, match="not an atomcollapse checkpoint"):
        adapters.load_pretrained_with_meta("mace-mp-0")
