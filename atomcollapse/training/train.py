"""The ``train`` command's work: adapt a (pretrained) model to one target with one strategy.

Every input is checked before the run directory is touched; then the model, strategy, batch
streams and loop are built, trained (or resumed), and the best weights evaluated on every
partition of the split.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from atomcollapse.artifacts import header, now_utc, sha256_arrays
from atomcollapse.constants import SYMBOLS, atomic_number
from atomcollapse.data.batching import atom_rows
from atomcollapse.data.store import Store
from atomcollapse.errors import InputError
from atomcollapse.models.checkpoint import save_checkpoint
from atomcollapse.models.model import AtomisticModel
from atomcollapse.training import distributed
from atomcollapse.training.config import TrainConfig, with_added_defaults
from atomcollapse.training.inputs import EVAL_PARTITIONS, Checked, TrainInputs, check_inputs
from atomcollapse.training.loop import Loop, TaskSpec, want_progress
from atomcollapse.training.model_setup import (
    build_model,
    element_numbers,
    loss_scale,
    new_backbone,
    new_property_head,
    painn_args,
    store_elements,
    uses_atom_refs,
)
from atomcollapse.training.rundir import BEST, CONFIG, LAST, METRICS, STATE, RunDir, restore
from atomcollapse.training.schedule import build_optimizer
from atomcollapse.training.seeding import make_deterministic
from atomcollapse.training.strategies import steps_for_primary_batches
from atomcollapse.training.streams import BatchStream
from atomcollapse.training.tasks import (
    ForceFieldTask,
    PropertyTask,
    autocast_factory,
    ff_errors,
    mae_rmse,
    predict_ff,
    predict_property,
    resolve_device,
)
from atomcollapse.training.tracking import RunInfo, Tracker
from atomcollapse.units import factor as unit_factor

__all__ = ["Session", "TrainInputs", "build_session", "check_inputs", "run_train"]

#: settings a resumed run may change (they do not change the numbers on CPU)
RESUMABLE_CHANGES = ("device", "bf16", "log")


def _identity(inp: TrainInputs, cfg: TrainConfig, c: Checked) -> dict[str, Any]:
    """The manifest fields a resumed run must share with the original."""
    ident = {
        "dataset": {"name": c.store.name, "content_hash": c.store.content_hash},
        "split": {
            "hash": c.split.hash,
            "method": c.split.manifest.get("method"),
            "target": c.split.target,
        },
        "pretrained": None if c.pretrained is None else {"hash": c.pretrained.hash},
        "aux_data": None,
    }
    if c.aux is not None:
        ident["aux_data"] = {
            "name": c.aux.store.name,
            "content_hash": c.aux.store.content_hash,
            "n_structures": len(c.aux.rows),
            "n_left_out_test_overlap": c.aux.n_test_overlap,
            "n_held_out_forgetting": c.aux.n_held_out,
            "labels": cfg.strategy.settings.labels,
        }
    f = c.forgetting
    ident["forgetting_data"] = None if f is None else {
        "name": f.store.name, "content_hash": f.store.content_hash, "n_structures": len(f.rows),
    }  # fmt: skip
    return ident


def _check_resume(run: RunDir, cfg: TrainConfig, ident: dict[str, Any]) -> None:
    old = with_added_defaults(run.read_json(CONFIG))  # a run from before a setting existed
    new = cfg.to_dict()
    for key in sorted(set(old) | set(new)):
        if key not in RESUMABLE_CHANGES and old.get(key) != _jsonish(new.get(key)):
            raise InputError(
                f"--resume with a different setting {key!r} ({old.get(key)!r} in the "
                f"run, {new.get(key)!r} now)",
                file=run.path,
            )
    manifest = run.read_json("manifest.json")
    for key, value in ident.items():
        if _without_path(manifest.get(key)) != _jsonish(value):
            raise InputError(
                f"--resume with a different {key} than the run was started with", file=run.path
            )


def _without_path(x: Any) -> Any:
    """A manifest entry without its ``path`` (a moved split is still the same split)."""
    return {k: v for k, v in x.items() if k != "path"} if isinstance(x, dict) else x


def _jsonish(x: Any) -> Any:
    import json

    return json.loads(json.dumps(x, default=str))


def _tensor_hash(module: torch.nn.Module) -> str:
    return sha256_arrays({k: v.detach().cpu().numpy() for k, v in module.state_dict().items()})


def run_train(inp: TrainInputs, cfg: TrainConfig) -> dict[str, Any]:
    """Train (or resume, or report a finished run) holding the run directory's lock (one
    writer; the main rank holds it for all); returns the metrics."""
    with distributed.main_rank_lock(inp.out, "train") as holder:
        if holder:
            RunDir(inp.out).clean_temporaries()
        return _run_train(inp, cfg)


def _run_train(inp: TrainInputs, cfg: TrainConfig) -> dict[str, Any]:
    c = check_inputs(inp, cfg)
    ident = _identity(inp, cfg, c)
    run = c.run
    resuming = inp.resume and run.is_run()
    if resuming:
        _check_resume(run, cfg, ident)
        if run.finished:
            return run.read_json(METRICS)
    dev = resolve_device(cfg.device)
    dist = distributed.init(dev)
    dev = resolve_device(cfg.device, dist)
    make_deterministic()
    try:
        return _train(inp, cfg, c, ident, dist, dev, resuming)
    finally:
        distributed.shutdown(dist)


@dataclass
class Session:
    """A built training run: model, loop and what the final evaluation needs."""

    model: AtomisticModel
    loop: Loop
    prop: PropertyTask
    values: np.ndarray
    head_hash: str
    total: int
    autocast: Any
    #: the force-field task and the untouched pretrained model's (energies, forces) on the
    #: held-out force-field structures, taken before any step
    forgetting_before: tuple[ForceFieldTask, tuple[np.ndarray, np.ndarray]] | None = None
    energy_head: torch.nn.Module | None = None


def build_session(inp: TrainInputs, cfg: TrainConfig, c: Checked, dist, dev) -> Session:
    """Model (pretrained or fresh backbone + new property head), strategy, streams and loop."""
    run, strategy, seeds, store = c.run, c.strategy, c.seeds, c.store
    target = cfg.target
    heads: dict[str, torch.nn.Module] = {}
    pre = c.pretrained
    forgetting_before = None
    if pre is not None and c.forgetting is not None:
        forgetting_before = _forgetting_predictions(pre.model, c, cfg, dist, dev)
    if pre is None or strategy.fresh_backbone:
        args = pre.model.backbone.model_args() if pre else painn_args(cfg.model)
        backbone = new_backbone(args, seeds.init)
    else:
        backbone = pre.model.backbone
        if "energy" in strategy.heads:
            heads["energy"] = pre.model.heads["energy"]
    head = new_property_head(backbone, store, c.train_rows, target, cfg.head, seeds.head)
    heads["property"] = head
    head_hash = _tensor_hash(head)
    model = build_model(backbone, heads).to(dev)
    strategy.prepare(model)
    optimizer = build_optimizer(strategy.param_groups(model, cfg.optim.lr), cfg.optim)
    autocast = autocast_factory(dev, cfg.bf16)
    cutoff = float(backbone.cutoff)
    values = np.asarray(store.target(target), dtype=np.float64)
    scale = loss_scale(head, store, c.train_rows, target)
    prop = PropertyTask(store, target, cutoff, dev, scale=scale, convention=cfg.loss_convention)
    stream = BatchStream(c.train_rows, cfg.batch_size, seeds.data, store.n_atoms)
    tasks = {"property": TaskSpec(stream, prop.make_batch, prop.loss, store.n_atoms)}
    if c.aux is not None:
        mft = cfg.strategy.settings
        ff = ForceFieldTask(c.aux.store, cutoff, dev, cfg.ff_loss, convention=cfg.loss_convention)
        if mft.labels == "pseudo":
            assert pre is not None  # aux data is loaded only with a pretrained model
            ff.labels = _pseudo_labels(pre.model, ff, c.aux.rows, cfg.eval_batch_size, dist)
        aux_atoms = c.aux.store.n_atoms
        ff_stream = BatchStream(c.aux.rows, mft.ff_batch_size, seeds.aux_data, aux_atoms)
        tasks["ff"] = TaskSpec(ff_stream, ff.make_batch, ff.loss, aux_atoms)
    total = cfg.steps or steps_for_primary_batches(strategy, stream.batches_in_epochs(cfg.epochs))
    val_rows = c.rows["val"]

    def evaluate() -> dict[str, float]:
        pred = predict_property(model, prop, val_rows, cfg.eval_batch_size, dist, autocast)
        mae, rmse = mae_rmse(pred, values[val_rows])
        return {"score": mae, "val_mae": mae, "val_rmse": rmse}

    main = dist.is_main
    loop = Loop(
        model=model,
        strategy=strategy,
        optimizer=optimizer,
        optim_cfg=cfg.optim,
        tasks=tasks,
        evaluate=evaluate,
        total_steps=total,
        patience=cfg.patience,
        eval_every_steps=cfg.eval_every_steps,
        state_every_steps=cfg.state_every_steps,
        dist=dist,
        save_state=run.save_state,
        log=run.log if main else None,
        progress=main and want_progress(inp.progress),
        autocast=autocast,
    )
    energy_head = pre.model.heads["energy"] if pre is not None and c.forgetting else None
    return Session(model, loop, prop, values, head_hash, total, autocast, forgetting_before,
                   energy_head)  # fmt: skip


def _forgetting_predictions(model: AtomisticModel, c: Checked, cfg: TrainConfig, dist, dev):
    """Energies and forces of ``model``'s energy head on the held-out force-field structures
    (the pretraining task), with ``model`` in eval mode."""
    f = c.forgetting
    assert f is not None
    task = ForceFieldTask(f.store, float(model.backbone.cutoff), dev, cfg.ff_loss)
    was_training = model.training
    model.eval()
    try:
        return task, predict_ff(model.to(dev), task, f.rows, cfg.eval_batch_size, dist)
    finally:
        model.train(was_training)


def _forgetting(sess: Session, c: Checked, cfg: TrainConfig, dist, dev) -> dict[str, Any] | None:
    """The pretraining task before and after (for mft its trained energy head, else the
    pretrained energy head on the adapted backbone), scored against the force-field store's
    reference labels, and the drift: the same errors against the untouched pretrained model's
    own predictions, which measure how far adaptation moved the pretrained function whatever
    the offset between the model's potential-energy surface and the reference labels'."""
    f = c.forgetting
    if f is None or sess.forgetting_before is None:
        return None
    model = sess.model
    if "energy" in model.heads:
        head, scored = model, "the force-field head trained by mft, on the adapted backbone"
    else:
        assert sess.energy_head is not None
        head = build_model(model.backbone, {"energy": sess.energy_head}).to(dev)
        scored = "the pretrained energy head (untouched) on the adapted backbone"
    task, before = sess.forgetting_before
    _, after = _forgetting_predictions(head, c, cfg, dist, dev)
    return {"data": f.store.name, "content_hash": f.store.content_hash, "setting": f.setting,
            "n": len(f.rows), "head": scored, "before": ff_errors(task, f.rows, before),
            "after": ff_errors(task, f.rows, after),
            "drift": ff_errors(task, f.rows, after, before)}  # fmt: skip


def _train(inp, cfg, c: Checked, ident, dist, dev, resuming) -> dict[str, Any]:
    run, strategy, store = c.run, c.strategy, c.store
    sess = build_session(inp, cfg, c, dist, dev)
    model, loop, total, main = sess.model, sess.loop, sess.total, dist.is_main
    state = run.load_state() if resuming else None
    fresh = False
    if state is not None:
        restore(loop, state, run.file(STATE))
        if main:
            run.log(f"resumed at step {loop.state.step}")
    elif main:
        fresh = not run.path.exists() or not any(run.path.iterdir())
        run.create(overwrite=inp.overwrite)
        run.write_json(CONFIG, cfg.to_dict())
        run.write_json(
            "manifest.json", _manifest(inp, cfg, c, ident, sess.head_hash, total, dist, dev)
        )
        run.log(
            f"start: {strategy.name} on {cfg.target}, {len(c.train_rows)} train structures, "
            f"{total} steps"
        )
        for note in c.drop_notes:
            run.log(note)
    distributed.barrier(dist)
    tracker = _tracker(inp, cfg, c, run) if main else None
    try:
        if tracker is not None:
            tracker.open(loop.logged())
            loop.tracker = tracker
        final = loop.run()
    except Exception:
        if tracker is not None:
            tracker.close()
        if main and fresh and not run.file(STATE).exists():
            run.remove()  # it made the folder and nothing resumable is in it: leave no trace
        raise
    last_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if final.best_model is not None:
        model.load_state_dict(final.best_model)
    metrics, frame = _final_metrics(
        model, sess.prop, c, sess.values, cfg, dist, sess.autocast, final, loop, total
    )
    metrics["forgetting"] = _forgetting(sess, c, cfg, dist, dev)
    if main:
        elements, meta = _checkpoint_meta(cfg, c, ident, store)
        for name, step in ((BEST, final.best_step), (LAST, final.step)):
            if name == LAST:
                model.load_state_dict(last_state)
            save_checkpoint(
                run.file(name),
                model,
                elements=elements,
                training_data_hash=store.content_hash,
                inputs=_inputs(inp, c, ident),
                extra={**meta, "step": step},
            )
        run.write_predictions(frame)
        manifest = run.read_json("manifest.json")
        manifest.update(
            status="finished",
            finished_at=now_utc(),
            train_seconds={"wall": round(final.wall_s, 3), "cpu": round(final.cpu_s, 3)},
        )
        run.write_json("manifest.json", manifest)
        assert tracker is not None
        tracker.write(final.step, {f"best/{p}_{k}": m[k] for p, m in metrics["partitions"].items()
                                   for k in ("mae", "rmse")})  # fmt: skip
        tracker.close()
        run.write_json(METRICS, metrics)
        run.drop_state()
    distributed.barrier(dist)
    return metrics


def _tracker(inp: TrainInputs, cfg: TrainConfig, c: Checked, run: RunDir) -> Tracker:
    """The run's tracking backends, tagged with what the run is (the tags of ``inp`` win)."""
    pre = c.pretrained
    model = (pre.meta.get("name") or Path(str(inp.pretrained)).stem) if pre else "painn"
    tags = {"dataset": c.store.name, "split": Path(inp.split).name, "target": cfg.target,
            "model": str(model), "strategy": cfg.strategy.name, "seed": str(cfg.seed),
            **dict(inp.tags)}  # fmt: skip
    created = str(run.read_json("manifest.json").get("created_at"))
    run_id = hashlib.sha256(f"{created} {run.path.resolve()}".encode()).hexdigest()[:16]
    info = RunInfo(name=run.path.name, run_id=run_id, tags=tags, config=_jsonish(cfg.to_dict()))
    return Tracker(cfg.log, run.path, info)


def _pseudo_labels(
    pretrained: AtomisticModel, ff: ForceFieldTask, rows, batch_size, dist
) -> tuple[np.ndarray, np.ndarray]:
    """Energies (eV) and forces (eV/A) on the aux rows from a frozen copy of the pretrained
    model as loaded (MACE-style replay); computed once, before any step, so training the shared
    backbone never moves them."""
    frozen = copy.deepcopy(pretrained).to(ff.device).eval().requires_grad_(False)
    energy, forces = predict_ff(frozen, ff, rows, batch_size, dist)
    del frozen
    e = np.zeros(len(ff.store))
    f = np.zeros((int(ff.store.offsets[-1]), 3))
    e[rows] = energy
    atoms, _ = atom_rows(ff.store, rows)
    f[atoms] = forces
    return e, f


def _manifest(inp, cfg, c: Checked, ident, head_hash, total, dist, dev) -> dict[str, Any]:
    info = c.store.manifest["targets"][cfg.target]
    s = c.strategy.describe()
    heads = {"property": f"random (head seed {c.seeds.head})"}
    labels = label_source = None
    if c.aux is not None and c.pretrained is not None:
        source = c.pretrained.meta.get("name") or "checkpoint"
        heads["energy"] = f"pretrained {source} {c.pretrained.hash[:16]}"
        labels = cfg.strategy.settings.labels
        label_source = (
            f"frozen copy of the pretrained model {c.pretrained.hash[:16]}"
            if labels == "pseudo"
            else f"reference labels of {c.aux.store.name!r}"
        )
    return {
        **header("run", schema_version=1, inputs=_inputs(inp, c, ident)),
        "command": "train",
        "status": "running",
        "strategy": s,
        "target": cfg.target,
        "unit": info["unit"],
        "report_unit": info.get("report_unit", info["unit"]),
        **ident,
        # absolute, so that report and collapse find them from any folder
        "dataset": {**ident["dataset"], "path": str(c.store.path.resolve())},
        "split": {**ident["split"], "path": str(Path(inp.split).resolve())},
        "loss_convention": cfg.loss_convention,
        "feature_layer": cfg.head.feature_layer,
        "head_atom_refs": uses_atom_refs(c.store, cfg.target, cfg.head),
        "batch_size": str(cfg.batch_size),
        "mixing": s.get("mixing"),
        "aux_weight": s.get("aux_weight"),
        "aux_labels": labels,
        "aux_label_source": label_source,
        "pretrained_path": _absolute(inp.pretrained),
        "pretrained_name": (c.pretrained.meta.get("name") if c.pretrained else None),
        "heads": heads,
        "property_head_init_hash": head_hash,
        "seeds": c.seeds.as_dict(),
        "n_train": len(c.train_rows),
        "max_eval": cfg.max_eval,
        "eval_seed": cfg.eval_seed,
        "n_eval": {p: len(c.rows[p]) for p in EVAL_PARTITIONS},
        "drop_unsupported_elements": cfg.drop_unsupported_elements,
        "dropped": c.dropped,
        "dropped_notes": c.drop_notes,
        "elements": list(cfg.elements),
        "elements_not_in_training": c.unseen_elements,
        "total_steps": total,
        "world_size": dist.world,
        "device": str(dev),
    }


def _inputs(inp, c: Checked, ident: dict[str, Any]) -> dict[str, Any]:
    """What a run (and its checkpoints) was made from: store, split, pretrained checkpoint and
    the auxiliary stores, each with its hash and absolute path."""
    out: dict[str, Any] = {
        "dataset": {**ident["dataset"], "path": str(c.store.path.resolve())},
        "split": {"hash": ident["split"]["hash"], "path": str(Path(inp.split).resolve())},
    }
    if ident["pretrained"] is not None:
        out["pretrained"] = {**ident["pretrained"], "path": _absolute(inp.pretrained)}
    for key, data in (("aux_data", c.aux), ("forgetting_data", c.forgetting)):
        if data is not None:
            out[key] = {"name": data.store.name, "content_hash": data.store.content_hash,
                        "path": str(data.store.path.resolve())}  # fmt: skip
    return out


def _absolute(p: Any) -> str | None:
    """A path made absolute; a registry name (``ani1x``, ``scheme:...``) as given."""
    if not p:
        return None
    return str(Path(p).resolve()) if Path(p).exists() else str(p)


def _checkpoint_meta(cfg, c: Checked, ident, store: Store) -> tuple[list[str], dict[str, Any]]:
    """Element set (symbols) and provenance of a fine-tuned checkpoint."""
    known = element_numbers(c.pretrained.meta.get("elements", [])) if c.pretrained else set()
    if cfg.elements:  # the property task saw these elements only
        allowed = {atomic_number(s) for s in cfg.elements}
        elements = allowed & (known or set(store_elements(store)))
    else:
        dropped = any(c.dropped.values())
        elements = set(known) if dropped else set(store_elements(store)) | known
    return [SYMBOLS[z] for z in sorted(elements)], {
        "kind": "finetuned",
        "strategy": c.strategy.name,
        "target": cfg.target,
        "split_hash": c.split.hash,
        "pretrained_hash": (ident["pretrained"] or {}).get("hash"),
    }


def _final_metrics(model, prop, c: Checked, values, cfg, dist, autocast, final, loop, total):
    info = c.store.manifest["targets"][cfg.target]
    unit = info["unit"]
    report = info.get("report_unit", unit)
    try:
        k = unit_factor(unit, report)
    except ValueError:
        report, k = unit, 1.0
    parts, frames = {}, []
    for p in EVAL_PARTITIONS:
        rows = c.rows[p]
        if len(rows) == 0:
            continue
        pred = predict_property(model, prop, rows, cfg.eval_batch_size, dist, autocast)
        mae, rmse = mae_rmse(pred, values[rows])
        parts[p] = {
            "n": len(rows),
            "mae": mae,
            "rmse": rmse,
            "mae_report": mae * k,
            "rmse_report": rmse * k,
        }
        frames.append(
            pd.DataFrame(
                {
                    "id": np.asarray(c.store.ids)[rows],
                    "partition": p,
                    "target": cfg.target,
                    "prediction": pred,
                    "reference": values[rows],
                    "unit": unit,
                }
            )
        )
    metrics = {
        "target": cfg.target,
        "strategy": c.strategy.name,
        "seed": cfg.seed,
        "unit": unit,
        "report_unit": report,
        "best_val_mae": final.best_score,
        "best_step": final.best_step,
        "steps": final.step,
        "total_steps": total,
        "stopped_early": final.stopped,
        "partitions": parts,
        "data_order": {k: t.stream.order_hash for k, t in loop.tasks.items()},
        "batches": {k: t.stream.batches_drawn for k, t in loop.tasks.items()},
        "history": final.history,
    }
    return metrics, pd.concat(frames, ignore_index=True)
