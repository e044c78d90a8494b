"""Every strategy setting the manifest records changes the run, and loss conventions are exact."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from torch import nn

from atomcollapse.cli import main
from atomcollapse.data.store import open_store
from atomcollapse.training.config import ForceFieldLossConfig, load_config
from atomcollapse.training.distributed import DistInfo
from atomcollapse.training.loop import Counts
from atomcollapse.training.strategies import strategy_class, strategy_names
from atomcollapse.training.tasks import ForceFieldTask, PropertyTask
from atomcollapse.training.train import TrainInputs, build_session, check_inputs

#: a value other than the default for every setting of every registered strategy
OTHER = {
    ("finetune-llrd", "embedding"): 0.9,
    ("finetune-llrd", "layers"): (1.0, 0.1),
    ("finetune-llrd", "heads"): 0.25,
    ("lp-ft", "lp_fraction"): 0.25,
    ("l2-sp", "alpha"): 50.0,
    ("mft", "mixing"): "sum",
    ("mft", "property_prob"): 0.2,
    ("mft", "aux_weight"): 0.001,
    ("mft", "labels"): "pseudo",
    ("mft", "ff_batch_size"): 3,
}


def _settings():
    return {(n, f.name) for n in strategy_names()
            for f in dataclasses.fields(strategy_class(n).Settings)}  # fmt: skip


def test_the_table_covers_every_setting_of_every_strategy():
    assert set(OTHER) == _settings()


def _weights_after(env, tmp_path, strategy, settings, steps=8):
    over = {f"strategy.{k}": v for k, v in settings.items()}
    cfg = load_config(None, {"target": "gap", "seed": 3, "strategy.name": strategy,
                             "batch_size": 8, "device": "cpu", "steps": steps, **over})  # fmt: skip
    inp = TrainInputs(data=str(env.mols), split=env.split, out=tmp_path / "run",
                      pretrained=env.ckpt, ff_data=str(env.ff) if strategy == "mft" else None)  # fmt: skip
    sess = build_session(inp, cfg, check_inputs(inp, cfg), DistInfo(), torch.device("cpu"))
    sess.model.train()
    for _ in range(steps):
        sess.loop.step()
    return {k: v.detach().clone() for k, v in sess.model.state_dict().items()}


@pytest.mark.parametrize(("strategy", "key"), sorted(OTHER))
def test_every_setting_changes_the_trained_weights(env, tmp_path, strategy, key):
    base = _weights_after(env, tmp_path, strategy, {})
    changed = _weights_after(env, tmp_path, strategy, {key: OTHER[(strategy, key)]})
    assert base.keys() == changed.keys()
    assert any(not torch.equal(base[k], changed[k]) for k in base), (strategy, key)


def test_aux_weight_acts_in_sample_mixing_and_the_manifest_records_what_acted(env, tmp_path):
    runs = {}
    for w in ("1.0", "0.001"):
        out = tmp_path / f"w{w}"
        assert main(env.train_args(out, "mft", "--aux-weight", w)) == 0
        runs[w] = out
    preds = {w: (o / "predictions.csv").read_bytes() for w, o in runs.items()}
    assert preds["1.0"] != preds["0.001"]
    m = json.loads((runs["0.001"] / "manifest.json").read_text())
    assert m["strategy"] == {"name": "mft", "backbone_init": "pretrained", "mixing": "sample",
                             "property_prob": 0.5, "aux_weight": 0.001, "labels": "reference",
                             "ff_batch_size": "auto:128"}  # fmt: skip
    assert m["aux_weight"] == 0.001 and m["loss_convention"] == "deepmd"
    summed = tmp_path / "sum"
    assert main(env.train_args(summed, "mft", "--mixing", "sum")) == 0
    s = json.loads((summed / "manifest.json").read_text())["strategy"]
    assert "property_prob" not in s  # no draws in sum mixing: not recorded as if it acted


class _Fixed(nn.Module):
    """A stand-in model whose outputs are the batch's labels plus fixed errors."""

    def __init__(self, d_prop=None, d_energy=None, d_forces=None):
        super().__init__()
        self.d_prop, self.d_energy, self.d_forces = d_prop, d_energy, d_forces

    def forward(self, batch, tasks, compute_forces=False):
        if "property" in tasks:
            return {"property": batch.labels["gap"] + self.d_prop}
        return {"energy": batch.labels["energy"] + self.d_energy,
                "forces": batch.labels["forces"] + self.d_forces}  # fmt: skip


def test_property_loss_is_summed_under_deepmd_and_averaged_under_mean(env):
    store = open_store(env.mols)
    rows = np.arange(6)
    d = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.5, -0.5], dtype=torch.float64)
    expected = float(((d / 2.0) ** 2).sum())
    for conv, want in (("deepmd", expected), ("mean", expected / 6)):
        task = PropertyTask(store, "gap", 4.0, torch.device("cpu"), scale=2.0, convention=conv)
        batch = task.make_batch(rows)
        loss, parts = task.loss(_Fixed(d_prop=d.to(batch.positions.dtype)), batch,
                                Counts(6, int(store.n_atoms[rows].sum())), 1.0)  # fmt: skip
        assert float(loss) == pytest.approx(want, rel=1e-6)
        assert parts["property_loss"] == pytest.approx(want, rel=1e-6)


def test_energy_term_is_deepmd_atom_norm_and_force_term_a_mean_over_components(env):
    store = open_store(env.ff)
    rows = np.arange(5)
    n = store.n_atoms[rows].astype(np.float64)
    de = np.array([0.3, -0.6, 0.9, 0.1, -0.2])
    weights = ForceFieldLossConfig(energy_weight=2.0, force_weight=3.0, ramp=False)
    for conv, e_term in (("deepmd", np.mean(de**2 / n)), ("mean", np.mean((de / n) ** 2))):
        task = ForceFieldTask(store, 4.0, torch.device("cpu"), weights, convention=conv)
        batch = task.make_batch(rows)
        df = torch.full_like(batch.labels["forces"], 0.1)
        df[0, 1] = -0.4
        model = _Fixed(d_energy=torch.as_tensor(de, dtype=batch.positions.dtype), d_forces=df)
        counts = Counts(5, int(n.sum()))
        loss, parts = task.loss(model, batch, counts, 1.0)
        f_term = float((df.double() ** 2).mean())
        # float32 energies of some eV: 1e-3 is their rounding; the conventions differ by N (3-7)
        assert parts["ff_energy_loss"] == pytest.approx(e_term, rel=1e-3)
        assert parts["ff_force_loss"] == pytest.approx(f_term, rel=1e-6)
        assert float(loss) == pytest.approx(2.0 * e_term + 3.0 * f_term, rel=1e-3)


@pytest.mark.parametrize(("layer", "width"), [("last", 16), ("all", 16 * 3), (0, 16), (-2, 16)])
def test_feature_layer_picks_what_the_property_head_reads(env, tmp_path, layer, width):
    out = tmp_path / "run"
    assert main(env.train_args(out, "linear-probe", "--steps", "2", "--feature-layer",
                               str(layer))) == 0  # fmt: skip
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["feature_layer"] == layer
    from atomcollapse.models.checkpoint import load_checkpoint

    model, _ = load_checkpoint(out / "best.pt")
    head = model.heads["property"]
    assert head.feature_dim == width and head.feature_layer == layer
    assert head.mlp[0].in_features == width


def test_a_feature_layer_the_backbone_lacks_is_one_line(env, tmp_path, capsys):
    capsys.readouterr()
    assert main(env.train_args(tmp_path / "run", "linear-probe", "--feature-layer", "7")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'head.feature_layer'" in err and "3 feature" in err
    assert not (tmp_path / "run").exists()
