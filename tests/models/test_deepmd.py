"""The DeePMD-kit bridge on checkpoints that DeePMD-kit's own trainer made: energies and forces
equal DeePMD's ``DeepPot``, the backbone contract, branches, bad files, published names offline.
Skips when deepmd-kit (the ``deepmd`` extra) is not installed."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from atomcollapse.constants import SYMBOLS
from atomcollapse.errors import InputError
from atomcollapse.models import adapters, registry
from atomcollapse.models.adapters import deepmd as adapter
from tests.models import contract
from tests.models.adapter_checks import (
    check_blocks,
    check_checkpoint_round_trip,
    check_training_step,
    with_property_head,
)

pytest.importorskip("deepmd.pt", reason="the 'deepmd' extra (deepmd-kit==3.2.0) is absent")


@pytest.fixture(scope="module")
def single(deepmd_checkpoints):
    return adapters.load_pretrained_with_meta(f"deepmd:{deepmd_checkpoints['single']}")


#: DeePMD's inference is run eagerly (``no_jit=True``: the same model and code, not compiled to
#: TorchScript): scripting it after other tests of the session have imported torch_geometric
#: fails with a TorchScript error raised from torch_geometric/hash_tensor.py (seen when
#: tests/models/test_adapters.py runs first; alone, both ways pass).
_NO_JIT = True


def _structures(seed: int):
    rng = np.random.default_rng(seed)
    return [contract.random_molecule(rng, n) for n in (5, 9, 3, 12)]


def _parity(model, path, head=None):
    """max |dE| (eV) and max |dF| (eV/A) of our model against DeePMD's DeepPot."""
    from deepmd.infer import DeepPot

    dp = DeepPot(str(path), head=head, no_jit=_NO_JIT)
    type_map = dp.get_type_map()
    structures = _structures(3)
    batch = contract.make_batch(structures, model.backbone.cutoff)
    out = model.eval()(batch, tasks=("energy",), compute_forces=True)
    de = df = fmax = 0.0
    start = 0
    for k, (z, pos, _, _) in enumerate(structures):
        types = [type_map.index(SYMBOLS[int(a)]) for a in z]
        e, f, _ = dp.eval(pos.reshape(1, -1), None, types)
        n = len(z)
        de = max(de, abs(float(out["energy"][k]) - float(np.ravel(e)[0])))
        ours = out["forces"][start : start + n].detach().double().numpy()
        df = max(df, float(np.abs(ours - f.reshape(n, 3)).max()))
        fmax = max(fmax, float(np.abs(f).max()))
        start += n
    assert fmax > 1e-4  # non-trivial forces
    return de, df


def test_energies_and_forces_equal_deeppot(single, deepmd_checkpoints):
    model, meta, digest = single
    de, df = _parity(model, deepmd_checkpoints["single"])
    print(f"single-task DPA-3: max|dE| = {de:.2e} eV, max|dF| = {df:.2e} eV/A")
    assert de < 1e-5 and df < 1e-5
    assert meta["elements"] == ["H", "C", "N", "O"] and meta["branch"] is None
    assert meta["source"].startswith("deepmd-kit 3.2.0 (model.ckpt.pt") and len(digest) == 64


@pytest.mark.parametrize(("branch", "head"), [("Alpha", "Alpha"), ("b", "Beta")])
def test_each_branch_equals_deeppot_with_its_head(deepmd_checkpoints, branch, head):
    path = deepmd_checkpoints["multi"]
    model, meta = registry.load_named(f"deepmd:{path}:{branch}")
    assert meta["branch"] == head  # alias 'B' and case resolved as DeePMD does
    de, df = _parity(model, path, head=head)
    print(f"branch {head}: max|dE| = {de:.2e} eV, max|dF| = {df:.2e} eV/A")
    assert de < 1e-5 and df < 1e-5
    case = model.heads["energy"].fitting.case_embd
    assert torch.equal(case, torch.eye(2, dtype=case.dtype)[["Alpha", "Beta"].index(head)])


def test_branches_differ_in_their_fitting_only(deepmd_checkpoints):
    path = deepmd_checkpoints["multi"]
    alpha, _ = registry.load_named(f"deepmd:{path}:Alpha")
    beta, _ = registry.load_named(f"deepmd:{path}:Beta")
    a, b = alpha.backbone.state_dict(), beta.backbone.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # the shared descriptor
    fa, fb = alpha.heads["energy"].state_dict(), beta.heads["energy"].state_dict()
    assert any(not torch.equal(fa[k], fb[k]) for k in fa)


@pytest.mark.slow
@pytest.mark.parametrize("check", contract.MOLECULE_CHECKS, ids=lambda c: c.__name__)
def test_deepmd_contract(single, check):
    check(lambda: with_property_head(copy.deepcopy(single[0])))


def test_periodic_structures_match_deeppot_and_the_contract(single, deepmd_checkpoints):
    from deepmd.infer import DeepPot

    model = single[0].eval()
    rng = np.random.default_rng(4)
    z, pos, cell, pbc = contract.random_crystal(rng, 3, species=(1, 6, 8))
    out = model(contract.make_batch([(z, pos, cell, pbc)], model.backbone.cutoff),
                tasks=("energy",), compute_forces=True)  # fmt: skip
    dp = DeepPot(str(deepmd_checkpoints["single"]), no_jit=_NO_JIT)
    types = [dp.get_type_map().index(SYMBOLS[int(a)]) for a in z]
    e, f, _ = dp.eval(pos.reshape(1, -1), cell.reshape(1, -1), types)
    assert abs(float(out["energy"][0]) - float(np.ravel(e)[0])) < 1e-5
    np.testing.assert_allclose(out["forces"].detach().numpy(), f.reshape(-1, 3), atol=1e-5)
    for check in (contract.check_periodic_rotation, contract.check_supercell):
        check(lambda: with_property_head(copy.deepcopy(single[0])))


def test_features_blocks_args_scratch_and_checkpoints(single, tmp_path):
    model, meta, _ = single
    backbone = model.backbone
    assert backbone.elements == (1, 6, 7, 8) and backbone.cutoff == 4.0
    batch = contract.make_batch(_structures(1)[:2], backbone.cutoff)
    out = backbone(batch)
    assert len(out.layers) == 3 and all(t.shape == (14, 16) for t in out.layers)
    torch.testing.assert_close(out.node, out.layers[-1])
    check_blocks(backbone, 2)
    args = backbone.model_args()
    assert args["type"] == "deepmd" and args["params"]["descriptor"]["type"] == "dpa3"
    with pytest.raises(InputError, match="element F is not supported by DeePMD"):
        backbone(replace(batch, numbers=torch.where(batch.numbers == 8, 9, batch.numbers)))
    structures = _structures(2)[:2]
    check_checkpoint_round_trip(model, structures, meta["elements"], tmp_path)
    check_training_step(model, structures)
    a, b = adapters.scratch_backbone(args, 1), adapters.scratch_backbone(args, 1)
    c = adapters.scratch_backbone(args, 2)
    key = "descriptor.repflows.layers.0.node_self_mlp.matrix"
    assert torch.equal(a.state_dict()[key], b.state_dict()[key])
    assert not torch.equal(a.state_dict()[key], c.state_dict()[key])
    assert not torch.equal(a.state_dict()[key], backbone.state_dict()[key])
    stats = "descriptor.repflows.stddev"
    assert torch.equal(a.state_dict()[stats], backbone.state_dict()[stats])  # statistics stay


def test_bad_branches_and_files_are_one_line(deepmd_checkpoints, tmp_path):
    multi, single = deepmd_checkpoints["multi"], deepmd_checkpoints["single"]
    with pytest.raises(InputError, match=r"multi-task: name a branch .*branches: Alpha, Beta"):
        registry.load_named(f"deepmd:{multi}")
    with pytest.raises(InputError, match=r"has no branch 'Gamma' .*branches: Alpha, Beta"):
        registry.load_named(f"deepmd:{multi}:Gamma")
    with pytest.raises(InputError, match="single-task DeePMD model"):
        registry.load_named(f"deepmd:{single}:Alpha")
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    with pytest.raises(InputError, match="not a readable DeePMD checkpoint"):
        registry.load_named(f"deepmd:{text}")
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(InputError, match="not a DeePMD PyTorch checkpoint"):
        registry.load_named(f"deepmd:{foreign}")
    with pytest.raises(InputError, match="DeePMD checkpoint not found"):
        registry.load_named(f"deepmd:{tmp_path / 'missing.pt'}")
    frozen = tmp_path / "frozen.pth"
    frozen.write_bytes(b"")
    with pytest.raises(InputError, match=r"frozen DeePMD models \(\.pth"):
        registry.load_named(f"deepmd:{frozen}")


def test_published_name_offline_is_one_line(monkeypatch, tmp_path):
    from deepmd.pretrained import download

    def offline(*_args, **_kwargs):
        raise RuntimeError("Failed to download model 'DPA-3.1-3M' from all sources")

    monkeypatch.setattr(download, "DEFAULT_CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(download, "_download_file", offline)
    monkeypatch.setattr(download, "_rank_download_urls", lambda urls: urls)
    with pytest.raises(InputError) as err:
        registry.load_named("deepmd:dpa-3.1-3m:SPICE2")
    line = str(err.value)
    assert "\n" not in line and "DPA-3.1-3M.pt" in line and str(tmp_path / "cache") in line
    assert "huggingface.co" in line
    assert adapter.weights_present("deepmd:DPA-3.1-3M") is False
    row = registry.describe("deepmd:DPA-3.1-3M")
    assert row["installed"] and row["weights_present"] is False and row["parameters"] is None


def test_the_deepmd_extra_missing_is_one_line(monkeypatch):
    entry = registry.entry_for("deepmd:model.ckpt.pt")
    assert entry is not None and entry.name == "deepmd"
    monkeypatch.setattr(registry.ModelEntry, "installed", lambda self: False)
    with pytest.raises(InputError) as err:
        registry.load_named("deepmd:model.ckpt.pt")
    assert "make deepmd" in str(err.value) and "'deepmd'" in str(err.value)
