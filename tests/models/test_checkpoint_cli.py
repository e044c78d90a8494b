"""Weights hash, checkpoint diff and ``atomcollapse checkpoint show|diff``."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from atomcollapse.cli import main
from atomcollapse.errors import InputError
from atomcollapse.models import checkpoint as ckpt
from atomcollapse.models.heads import EnergyHead
from atomcollapse.models.model import AtomisticModel
from atomcollapse.models.painn import PaiNN

EXTRA = {
    "kind": "pretrained",
    "created_at": "2026-01-01T00:00:00+00:00",
    "training_data": {"name": "tiny-ff", "content_hash": "d" * 64},
    "metrics": {"energy_mae_meV_per_atom": 12.5, "force_mae_meV_per_A": 40.25, "n_val": 7},
    "log": ["step 10/10 loss=0.5", "finished at step 10 after 3.2 s (best step 10, score 1.5)"],
}


def _model(hidden: int = 8) -> AtomisticModel:
    torch.manual_seed(0)
    energy = EnergyHead(hidden, mlp_hidden=4)
    energy.set_normalisation(scale=0.5, shift=-1.0, atom_refs=np.linspace(0, 1, 119))
    return AtomisticModel(PaiNN(hidden=hidden, layers=1, n_rbf=4, cutoff=4.0), {"energy": energy})


def _save(path, model, *, extra=None, code_version="0.1.0+gaaaaaaa", **kw):
    kw.setdefault("elements", ["H", "C", "O"])
    kw.setdefault("training_data_hash", "d" * 64)
    return ckpt.save_checkpoint(
        path,
        model,
        code_version=code_version,
        extra=copy.deepcopy(EXTRA if extra is None else extra),
        **kw,
    )


@pytest.fixture(scope="module")
def model() -> AtomisticModel:
    return _model()


@pytest.fixture
def base(tmp_path, model):
    return _save(tmp_path / "a.pt", model)


def _diff(capsys, a, b) -> tuple[int, str, str]:
    rc = main(["checkpoint", "diff", str(a), str(b)])
    out = capsys.readouterr()
    return rc, out.out, out.err


# ---- weights hash -------------------------------------------------------------------------------


def _flip_bit(t: torch.Tensor, index: int = 0) -> torch.Tensor:
    bits = t.detach().clone().reshape(-1).view(torch.int32)
    bits[index] ^= 1
    return bits.view(t.dtype).reshape(t.shape)


def test_weights_hash_is_deterministic_and_order_free(model) -> None:
    sd = model.state_dict()
    h = ckpt.weights_sha256(sd)
    assert len(h) == 64 and h == ckpt.weights_sha256(sd)
    clone = {k: v.clone() for k, v in reversed(list(sd.items()))}
    assert ckpt.weights_sha256(clone) == h
    name = "backbone.embedding.weight"
    flipped = {**clone, name: _flip_bit(clone[name], 17)}
    assert ckpt.weights_sha256(flipped) != h
    renamed = {(k + "_" if k == name else k): v for k, v in clone.items()}
    assert ckpt.weights_sha256(renamed) != h
    same_bytes = {**clone, name: clone[name].view(torch.int32)}
    assert ckpt.weights_sha256(same_bytes) != h, "dtype is part of the hash"
    transposed = {**clone, name: clone[name].t().contiguous().t()}
    assert ckpt.weights_sha256(transposed) == h, "memory layout is not part of the hash"


def test_weights_hash_pinned_value() -> None:
    """A fixed dict hashes to a fixed value in any process (little-endian machines)."""
    sd = {
        "b": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "a": torch.tensor([1, -2], dtype=torch.int64),
        "c": torch.tensor(0.5, dtype=torch.bfloat16),
        "d": torch.tensor([True, False]),
    }
    assert ckpt.weights_sha256(sd) == (
        "2021aa05c8aab73274d61f293a55a6ad2db0ecbe1c94839eaefac2cdf7d4b7c2"
    )


# ---- diff (library) -----------------------------------------------------------------------------


def test_rebuild_with_other_timestamp_and_code_version_is_identical(tmp_path, model, base) -> None:
    extra = copy.deepcopy(EXTRA)
    extra["created_at"] = "2026-06-30T12:00:00+00:00"
    extra["log"][-1] = "finished at step 10 after 97.0 s (best step 10, score 1.5)"
    b = _save(tmp_path / "b.pt", model, extra=extra, code_version="0.2.0+gbbbbbbb")
    d = ckpt.diff_checkpoints(base, b)
    assert d.identical and d.same_weights and not d.fields
    assert d.weights_sha256_a == d.weights_sha256_b == ckpt.weights_sha256(model.state_dict())
    assert d.n_tensors_a == len(model.state_dict())
    info = {f.path: (f.a, f.b) for f in d.info}
    assert info["code_version"] == ("0.1.0+gaaaaaaa", "0.2.0+gbbbbbbb")
    assert "extra.created_at" in info and any("wall-clock" in p for p in info)


def test_one_ulp_change_is_found(tmp_path, model, base) -> None:
    changed = copy.deepcopy(model)
    w = changed.backbone.embedding.weight
    with torch.no_grad():
        old = float(w[6, 3])
        w[6, 3] = torch.nextafter(w[6, 3], torch.tensor(np.inf))
    b = _save(tmp_path / "b.pt", changed)
    d = ckpt.diff_checkpoints(base, b)
    assert not d.identical and not d.fields
    (t,) = d.tensors
    assert t.name == "backbone.embedding.weight" and t.kind == "values" and t.n_differ == 1
    assert t.max_abs_diff == pytest.approx(float(np.spacing(np.float32(old))), rel=1e-6)
    assert d.weights_sha256_a != d.weights_sha256_b


def test_negative_zero_differs_bitwise() -> None:
    a = {"format": ckpt.FORMAT, "model_args": {}, "elements": [], "extra": {}}
    b = copy.deepcopy(a)
    a["state_dict"] = {"w": torch.tensor([0.0, 1.0])}
    b["state_dict"] = {"w": torch.tensor([-0.0, 1.0])}
    (t,) = ckpt.diff_checkpoints(a, b).tensors
    assert t.kind == "values" and t.max_abs_diff == 0.0 and t.n_differ == 1


def test_metadata_differences_are_listed(tmp_path, model, base) -> None:
    extra = copy.deepcopy(EXTRA)
    extra["metrics"]["energy_mae_meV_per_atom"] = 12.6
    extra["seeds"] = {"init": 1}
    b = _save(tmp_path / "b.pt", model, extra=extra, elements=["H", "C", "N"],
              training_data_hash="e" * 64)  # fmt: skip
    d = ckpt.diff_checkpoints(base, b)
    assert d.same_weights and not d.identical
    fields = {f.path: (f.a, f.b) for f in d.fields}
    assert fields == {
        "elements": (["H", "C", "O"], ["H", "C", "N"]),
        "training_data_hash": ("d" * 64, "e" * 64),
        "extra.metrics.energy_mae_meV_per_atom": (12.5, 12.6),
        "extra.seeds": (ckpt.ABSENT, {"init": 1}),
    }


def test_other_model_args(tmp_path, base) -> None:
    b = _save(tmp_path / "b.pt", _model(hidden=16))
    d = ckpt.diff_checkpoints(base, b)
    paths = {f.path for f in d.fields}
    assert "model_args.backbone.hidden" in paths and "model_args.heads.energy.feature_dim" in paths
    kinds = {t.name: t.kind for t in d.tensors}
    assert kinds["backbone.embedding.weight"] == "shape"
    assert kinds.get("heads.energy.scale") is None, "scalar buffers equal in both"


def test_missing_and_extra_tensors(base) -> None:
    pa = ckpt.read_checkpoint(base)
    pb = copy.deepcopy(pa)
    pb["state_dict"]["new.buffer"] = pb["state_dict"].pop("heads.energy.shift")
    kinds = {t.name: t.kind for t in ckpt.diff_checkpoints(pa, pb).tensors}
    assert kinds == {"heads.energy.shift": "only in A", "new.buffer": "only in B"}


# ---- CLI ----------------------------------------------------------------------------------------


def test_cli_identical_exit_0(tmp_path, model, base, capsys) -> None:
    extra = {**copy.deepcopy(EXTRA), "created_at": "2027-01-01T00:00:00+00:00"}
    b = _save(tmp_path / "b.pt", model, extra=extra)
    rc, out, err = _diff(capsys, base, b)
    n = len(model.state_dict())
    h = ckpt.weights_sha256(model.state_dict())
    assert rc == 0 and err == ""
    assert f"identical weights ({n} tensors, sha256 {h})" in out
    assert "checkpoints match" in out and "created_at" in out


def test_cli_one_ulp_exit_1_names_tensor(tmp_path, model, base, capsys) -> None:
    changed = copy.deepcopy(model)
    b_ = changed.heads["energy"].mlp[0].bias
    with torch.no_grad():
        b_[2] = torch.nextafter(b_[2], torch.tensor(-np.inf))
    b = _save(tmp_path / "b.pt", changed)
    rc, out, err = _diff(capsys, base, b)
    assert rc == 1 and "Traceback" not in out + err
    assert "heads.energy.mlp.0.bias" in out and "weights differ: 1 of" in out
    assert "checkpoints differ: 1 tensor(s), 0 metadata field(s)" in out


def test_cli_model_args_exit_1(tmp_path, base, capsys) -> None:
    rc, out, _ = _diff(capsys, base, _save(tmp_path / "b.pt", _model(hidden=16)))
    assert rc == 1 and "model_args.backbone.hidden" in out and "shape" in out


@pytest.mark.parametrize("which", ["missing", "garbage", "foreign", "not-tensors"])
@pytest.mark.parametrize("side", [0, 1])
def test_cli_bad_file_exit_2_one_line(tmp_path, base, capsys, which, side) -> None:
    bad = tmp_path / "bad.pt"
    if which == "garbage":
        bad.write_bytes(b"\x00garbage" * 10)
    elif which == "foreign":
        torch.save({"state_dict": {}, "epoch": 1}, bad)
    elif which == "not-tensors":
        payload = ckpt.read_checkpoint(base)
        payload["state_dict"]["backbone.embedding.weight"] = 3
        torch.save(payload, bad)
    args = [str(base), str(bad)] if side else [str(bad), str(base)]
    rc, out, err = _diff(capsys, *args)
    assert rc == 2 and out == "" and "Traceback" not in err
    assert err.startswith("error: ") and err.count("\n") == 1 and "bad.pt" in err


def test_diff_library_bad_file_raises_input_error(tmp_path, base) -> None:
    with pytest.raises(InputError, match="not found"):
        ckpt.diff_checkpoints(base, tmp_path / "nope.pt")


def test_cli_show(model, base, capsys) -> None:
    assert main(["checkpoint", "show", str(base)]) == 0
    out = capsys.readouterr().out
    n_par = sum(p.numel() for p in model.parameters())
    for text in (
        "atomcollapse-checkpoint v1", "painn (", "hidden=8", "layers=1", "head energy",
        f"{n_par:,} parameters", "3: H C O", "tiny-ff", "d" * 64, "0.1.0+gaaaaaaa",
        ckpt.read_checkpoint(base)["created_at"], "energy_mae_meV_per_atom", "12.5", "force_mae_meV_per_A",
        ckpt.weights_sha256(model.state_dict()),
    ):  # fmt: skip
        assert text in out, text


def test_cli_show_abbreviates_elements_and_rejects_garbage(tmp_path, model, capsys) -> None:
    symbols = ["H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si"]
    path = _save(tmp_path / "m.pt", model, elements=symbols, extra={})
    assert main(["checkpoint", "show", str(path)]) == 0
    out = capsys.readouterr().out
    assert "14: H He Li Be B C N O F ... Mg Al Si" in out and "held-out metrics" not in out
    bad = tmp_path / "bad.pt"
    bad.write_text("no")
    assert main(["checkpoint", "show", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.pt" in err
    payload = ckpt.read_checkpoint(path)
    payload["state_dict"]["heads.energy.shift"] = "x"
    torch.save(payload, bad)
    assert main(["checkpoint", "show", str(bad)]) == 2
    assert "not a mapping of tensors" in capsys.readouterr().err


def test_models_lists_every_registered_name_with_its_extra(capsys):
    from atomcollapse.cli import main
    from atomcollapse.models.registry import known_names

    capsys.readouterr()
    assert main(["models", "--no-params"]) == 0
    out = capsys.readouterr().out
    for name in known_names():
        assert name in out
    assert "sevenn" in out and "ani" in out and "energy head" in out
    assert main(["models", "bogus", "--no-params"]) == 2
    assert "unknown pretrained model 'bogus'" in capsys.readouterr().err
