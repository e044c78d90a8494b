"""The ``pretrain`` command's work: energy + force training of a fresh PaiNN on a force-field store.

A random ``val_fraction`` of the store (split seed) is held out; early stopping watches
``energy MAE (meV/atom) + force MAE (meV/A)`` on it. The checkpoint carries the model arguments,
weights (normalisers included), element set, the training data's hash, the code version and the
held-out metrics. A resumable state sits beside the checkpoint as ``<out>.state.pt`` while
training runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from atomcollapse.constants import SYMBOLS
from atomcollapse.data.store import open_store
from atomcollapse.errors import InputError
from atomcollapse.models.checkpoint import save_checkpoint, write_checkpoint_manifest
from atomcollapse.training import distributed
from atomcollapse.training.config import TrainConfig
from atomcollapse.training.loop import Loop, TaskSpec, want_progress
from atomcollapse.training.model_setup import (
    build_model,
    new_backbone,
    new_energy_head,
    painn_args,
    store_elements,
)
from atomcollapse.training.rundir import load_resume_state, restore, save_resume_state
from atomcollapse.training.schedule import build_optimizer
from atomcollapse.training.seeding import Seeds, make_deterministic, permutation
from atomcollapse.training.strategies import Pretrain
from atomcollapse.training.streams import BatchStream
from atomcollapse.training.tasks import ForceFieldTask, autocast_factory, ff_metrics, resolve_device


@dataclass(frozen=True)
class PretrainInputs:
    data: str
    out: Path
    data_root: Path | None = None
    overwrite: bool = False
    resume: bool = False
    progress: bool | None = None


def holdout(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) rows: a seeded random ``fraction`` (at least one) is validation."""
    if n < 2:
        raise InputError(f"need at least 2 structures to hold some out, got {n}")
    order = permutation(seed, 0, n)
    k = min(max(1, math.ceil(fraction * n)), n - 1)
    return np.sort(order[k:]), np.sort(order[:k])


def state_path(out: Path) -> Path:
    return out.with_name(out.name + ".state.pt")


def _check_checkpoint(out: Path) -> None:
    """``--overwrite`` replaces only an atomcollapse checkpoint."""
    from atomcollapse.models.checkpoint import read_checkpoint

    try:
        read_checkpoint(out)
    except InputError:
        raise InputError(
            "is not an atomcollapse checkpoint; --overwrite replaces only a checkpoint that "
            "atomcollapse made",
            file=out,
        ) from None


def run_pretrain(inp: PretrainInputs, cfg: TrainConfig) -> dict[str, Any]:
    """Pretrain and write the checkpoint (holding its lock); returns the held-out metrics."""
    with distributed.main_rank_lock(inp.out, "pretrain"):
        return _run_pretrain(inp, cfg)


def _run_pretrain(inp: PretrainInputs, cfg: TrainConfig) -> dict[str, Any]:
    store = open_store(inp.data, inp.data_root)
    store.verify_content()
    store.target("energy")
    store.atom_array("forces")
    out = Path(inp.out)
    if out.exists() and not (inp.overwrite or inp.resume):
        raise InputError("checkpoint already exists (pass --overwrite to replace it)", file=out)
    if out.exists() and out.is_dir():
        raise InputError("is a directory; --out names the checkpoint file", file=out)
    if out.exists() and inp.overwrite:
        _check_checkpoint(out)
    seeds = Seeds.from_seed(cfg.seed, cfg.init_seed, cfg.data_seed)
    train_rows, val_rows = holdout(len(store), cfg.val_fraction, seeds.split)
    if cfg.max_train and cfg.max_train < len(train_rows):
        train_rows = np.sort(
            np.random.default_rng(seeds.subset).choice(train_rows, cfg.max_train, replace=False)
        )
    dev = resolve_device(cfg.device)
    dist = distributed.init(dev)
    dev = resolve_device(cfg.device, dist)
    make_deterministic()
    try:
        return _pretrain(inp, cfg, store, seeds, train_rows, val_rows, dist, dev)
    finally:
        distributed.shutdown(dist)


def _pretrain(inp, cfg, store, seeds, train_rows, val_rows, dist, dev) -> dict[str, Any]:
    out = Path(inp.out)
    backbone = new_backbone(painn_args(cfg.model), seeds.init)
    head = new_energy_head(backbone, store, train_rows, seeds.head)
    model = build_model(backbone, {"energy": head}).to(dev)
    strategy = Pretrain()
    optimizer = build_optimizer(strategy.param_groups(model, cfg.optim.lr), cfg.optim)
    task = ForceFieldTask(
        store, float(backbone.cutoff), dev, cfg.ff_loss, convention=cfg.loss_convention
    )
    stream = BatchStream(train_rows, cfg.batch_size, seeds.data, store.n_atoms)
    total = cfg.steps or stream.batches_in_epochs(cfg.epochs)

    def evaluate() -> dict[str, float]:
        m = ff_metrics(model, task, val_rows, cfg.eval_batch_size, dist)
        return {"score": m["energy_mae_meV_per_atom"] + m["force_mae_meV_per_A"], **m}

    main = dist.is_main
    log_lines: list[str] = []
    loop = Loop(
        model=model,
        strategy=strategy,
        optimizer=optimizer,
        optim_cfg=cfg.optim,
        tasks={"ff": TaskSpec(stream, task.make_batch, task.loss, store.n_atoms)},
        evaluate=evaluate,
        total_steps=total,
        patience=cfg.patience,
        eval_every_steps=cfg.eval_every_steps,
        state_every_steps=cfg.state_every_steps,
        dist=dist,
        save_state=lambda s: save_resume_state(s, state_path(out)),
        log=log_lines.append,
        progress=main and want_progress(inp.progress),
        autocast=autocast_factory(dev, cfg.bf16),
    )
    if inp.resume and state_path(out).is_file():
        restore(loop, load_resume_state(state_path(out)), state_path(out))
    final = loop.run()
    if final.best_model is not None:
        model.load_state_dict(final.best_model)
    model.eval()
    metrics = {
        k: v for k, v in ff_metrics(model, task, val_rows, cfg.eval_batch_size, dist).items()
    }
    metrics.update(
        n_train=len(train_rows), n_val=len(val_rows), best_step=final.best_step, steps=final.step
    )
    if main:
        meta = {
            "kind": "pretrained",
            "training_data": {"name": store.name, "content_hash": store.content_hash},
            "seeds": seeds.as_dict(),
            "config": cfg.to_dict(),
            "metrics": metrics,
            "history": final.history,
            "log": log_lines,
        }
        symbols = [SYMBOLS[z] for z in store_elements(store)]
        data = {"name": store.name, "content_hash": store.content_hash,
                "path": str(store.path.resolve())}  # fmt: skip
        save_checkpoint(out, model, elements=symbols, training_data_hash=store.content_hash,
                        inputs={"training_data": data}, extra=meta)  # fmt: skip
        write_checkpoint_manifest(out)
        state_path(out).unlink(missing_ok=True)
    distributed.barrier(dist)
    return metrics
