"""Strategy behaviour step by step, on a built training session (no run directory written)."""

from __future__ import annotations

import pytest
import torch

from atomcollapse.training.config import load_config
from atomcollapse.training.distributed import DistInfo
from atomcollapse.training.tasks import ForceFieldTask
from atomcollapse.training.train import TrainInputs, build_session, check_inputs


def _session(env, tmp_path, strategy, **settings):
    cfg = load_config(None, {"target": "gap", "seed": 3, "strategy.name": strategy,
                             "batch_size": 8, "device": "cpu", **settings})  # fmt: skip
    inp = TrainInputs(data=str(env.mols), split=env.split, out=tmp_path / "run",
                      pretrained=env.ckpt, ff_data=str(env.ff) if strategy == "mft" else None)  # fmt: skip
    sess = build_session(inp, cfg, check_inputs(inp, cfg), DistInfo(), torch.device("cpu"))
    sess.model.train()
    return sess


def _backbone(sess):
    return [p.detach().clone() for p in sess.model.backbone.parameters()]


def _moved(a, b):
    return any(not torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_lpft_backbone_frozen_in_first_phase_only(env, tmp_path):
    sess = _session(env, tmp_path, "lp-ft", steps=6, **{"strategy.lp_fraction": 0.5})
    head0 = [p.detach().clone() for p in sess.model.heads["property"].parameters()]
    start = _backbone(sess)
    for _ in range(3):
        sess.loop.step()
    assert not _moved(start, _backbone(sess))
    assert _moved(head0, [p.detach() for p in sess.model.heads["property"].parameters()])
    sess.loop.step()
    assert _moved(start, _backbone(sess))


def test_l2sp_penalty_is_zero_at_start_and_grows(env, tmp_path):
    sess = _session(env, tmp_path, "l2-sp", steps=10, **{"strategy.alpha": 1.0})
    strategy, model = sess.loop.strategy, sess.model
    assert float(strategy.penalty(model).detach()) == 0.0
    values = []
    for _ in range(4):
        sess.loop.step()
        values.append(float(strategy.penalty(model).detach()))
    assert 0 < values[0] < values[-1]
    assert sess.loop.last_losses["penalty"] > 0


def test_llrd_optimizer_groups(env, tmp_path):
    sess = _session(env, tmp_path, "finetune-llrd", steps=4, **{"optim.lr": 2e-3})
    lrs = {g["name"]: g["base_lr"] for g in sess.loop.optimizer.param_groups}
    assert lrs == pytest.approx({"embedding": 0.6e-3, "layer1": 1.1e-3, "layer2": 1.25e-3,
                                 "head:property": 2e-3})  # fmt: skip
    sess.loop.step()
    assert {g["name"]: g["lr"] for g in sess.loop.optimizer.param_groups} == pytest.approx(lrs)


def test_mft_trains_both_heads_on_drawn_tasks(env, tmp_path):
    sess = _session(env, tmp_path, "mft", steps=12)
    energy0 = [p.detach().clone() for p in sess.model.heads["energy"].parameters()]
    drawn = []
    for _ in range(12):
        drawn.append(sess.loop.strategy.tasks(sess.loop.state.step)[0][0])
        sess.loop.step()
    assert set(drawn) == {"property", "ff"}
    tasks = sess.loop.tasks
    assert tasks["property"].stream.batches_drawn == drawn.count("property")
    assert tasks["ff"].stream.batches_drawn == drawn.count("ff")
    assert _moved(energy0, [p.detach() for p in sess.model.heads["energy"].parameters()])
    assert {"ff_energy_loss", "ff_force_loss", "property_loss"} <= set(sess.loop.last_losses)
    assert sess.loop.state.task_steps == {"property": drawn.count("property"),
                                          "ff": drawn.count("ff")}  # fmt: skip


def test_mft_sum_mode_with_pseudo_labels(env, tmp_path):
    sess = _session(env, tmp_path, "mft", steps=3, **{"strategy.mixing": "sum",
                    "strategy.labels": "pseudo", "strategy.aux_weight": 0.5})  # fmt: skip
    ff = sess.loop.tasks["ff"]
    batch = ff.make_batch(ff.stream.rows[:4])
    with torch.no_grad():
        sess.model.eval()
        out = sess.model(batch, tasks=("energy",), compute_forces=True)
    # before any step the pretrained head reproduces its own pseudo-labels
    assert torch.allclose(out["energy"], batch.labels["energy"], rtol=1e-5, atol=1e-4)
    assert torch.allclose(out["forces"], batch.labels["forces"], rtol=1e-4, atol=1e-4)
    sess.model.train()
    for _ in range(3):
        sess.loop.step()
    assert ff.stream.batches_drawn == sess.loop.tasks["property"].stream.batches_drawn == 3


def test_force_loss_weights_ramp_with_the_learning_rate():
    ff = ForceFieldTask(None, 4.0, torch.device("cpu"), load_config().ff_loss)
    assert ff.current_weights(1.0) == pytest.approx((0.2, 100.0))
    assert ff.current_weights(0.5) == pytest.approx((10.1, 80.0))
    assert ff.current_weights(0.0) == pytest.approx((20.0, 60.0))


def test_max_train_is_one_seeded_subset_for_every_strategy(env, tmp_path):
    rows = {}
    for s in ("finetune", "linear-probe", "mft"):
        sess = _session(env, tmp_path / s, s, steps=1, max_train=10)
        rows[s] = sess.loop.tasks["property"].stream.rows
    assert len(rows["finetune"]) == 10
    assert all((r == rows["finetune"]).all() for r in rows.values())
    other = _session(env, tmp_path / "o", "finetune", steps=1, max_train=10, seed=4)
    assert not (other.loop.tasks["property"].stream.rows == rows["finetune"]).all()


def test_early_stopping_keeps_the_best_weights(env, tmp_path):
    sess = _session(env, tmp_path, "finetune", steps=50, patience=2, eval_every_steps=1)
    loop = sess.loop
    scores = iter([3.0, 2.0, 2.5, 2.6, 1.0])
    snapshots = {}

    def evaluate():
        snapshots[loop.state.step] = {k: v.clone() for k, v in sess.model.state_dict().items()}
        return {"score": next(scores)}

    lines = []
    loop.evaluate, loop._log, loop._save = evaluate, lines.append, None
    loop.progress = True  # the rich bar must not disturb anything
    final = loop.run()
    assert final.stopped and final.step == 4
    assert (final.best_step, final.best_score) == (2, 2.0)
    assert [h["best"] for h in final.history] == [True, True, False, False]
    assert all(torch.equal(final.best_model[k], snapshots[2][k]) for k in snapshots[2])
    assert sum("val_score" in line for line in lines) == 4
