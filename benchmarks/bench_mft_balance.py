"""Loss balance of ``mft`` at the first optimiser step: backbone gradient norm per task.

    python benchmarks/bench_mft_balance.py                   # QM9 gap, defaults below
    python benchmarks/bench_mft_balance.py --data-root /elsewhere/data --json
    python benchmarks/bench_mft_balance.py --set strategy.aux_weight=0.1 --set optim.grad_clip=10

Builds the run exactly as ``atomcollapse train --strategy mft`` does (defaults: the QM9 gap
property-tail split, the bundled xTB-pretrained PaiNN and its 2,000-molecule xTB force-field
store, paths relative to this repository). Then, for each task on its own (``property``;
``ff`` = energy + forces), with the gradients zeroed: the first batch of that task's stream, its
loss at step 0's schedule factor, times the weight the strategy's ``tasks(step)`` gives the task
(at the first step that draws it; ``sample`` mixing draws one task per step), backpropagated.
``--batches K`` also averages the backbone norm over the first K batches of each task (same
weights, no step). Reported per task: the L2 gradient norm over the backbone's parameters (what the two tasks
share) and over all trained parameters (backbone + heads: the norm ``optim.grad_clip`` clips,
so whether that batch alone would be clipped). The ratio is force-field / property: the
reference is the property batch, so a ratio far above 1 means force-field steps dominate the
backbone's updates. ``--set KEY=VALUE`` adds config overrides (value parsed as JSON, else a
string). ``--threads`` caps torch's CPU threads.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from _perf import perf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TASKS = ("property", "ff")


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"target": args.target, "strategy.name": "mft", "seed": args.seed,
                           "max_train": args.max_train, "device": args.device}  # fmt: skip
    if args.batch_size is not None:
        out["batch_size"] = _value(args.batch_size)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set wants KEY=VALUE, not {item!r}")
        out[key.strip()] = _value(value)
    return out


def _task_weight(strategy: Any, name: str, horizon: int) -> tuple[float, int | None]:
    """The weight ``strategy.tasks(step)`` gives ``name`` at the first step that trains it."""
    tasks = getattr(strategy, "tasks", None)
    if tasks is None:
        return 1.0, None
    for step in range(horizon):
        for entry in tasks(step):
            t, w = entry if isinstance(entry, tuple) else (entry.name, entry.weight)
            if t == name:
                return float(w), step
    return 1.0, None


def _norm(params: list) -> float:
    import torch

    grads = [p.grad.detach().float().norm() for p in params if p.grad is not None]
    return float(torch.stack(grads).norm()) if grads else 0.0


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Build the mft run and take each task's first batch's gradient (no optimiser step)."""
    import torch

    from atomcollapse.training import seeding
    from atomcollapse.training.config import load_config
    from atomcollapse.training.distributed import DistInfo
    from atomcollapse.training.loop import Counts
    from atomcollapse.training.schedule import lr_factor
    from atomcollapse.training.tasks import resolve_device
    from atomcollapse.training.train import TrainInputs, build_session, check_inputs

    cfg = load_config(None, _overrides(args))
    deterministic = getattr(seeding, "make_deterministic", None)
    if deterministic is not None:
        deterministic(args.threads or None)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        inp = TrainInputs(data=args.data, split=Path(args.split), out=Path(tmp) / "run",
                          pretrained=Path(args.pretrained), data_root=Path(args.data_root),
                          ff_data=args.ff_data, progress=False)  # fmt: skip
        checked = check_inputs(inp, cfg)
        dev = resolve_device(cfg.device)
        sess = build_session(inp, cfg, checked, DistInfo(), dev)
        model, loop = sess.model, sess.loop
        strategy, total = loop.strategy, getattr(sess, "total", loop.total_steps)
        model.train()
        strategy.before_step(model, 0, total)
        factor = lr_factor(0, total, cfg.optim)
        params = [p for p in loop.params if p.requires_grad]
        trained = {id(p) for p in params}
        backbone = [p for p in model.backbone.parameters() if id(p) in trained]
        heads = {h: [p for p in m.parameters() if id(p) in trained]
                 for h, m in model.heads.items()}  # fmt: skip
        autocast = getattr(loop, "autocast", None)
        step0 = [e if isinstance(e, tuple) else (e.name, e.weight) for e in strategy.tasks(0)]
        rows_out: dict[str, Any] = {}
        for name in TASKS:
            task = loop.tasks[name]
            weight, first_step = _task_weight(strategy, name, max(total, 1))
            backbone_norms = []
            for _ in range(args.batches):
                loop.optimizer.zero_grad(set_to_none=True)
                model.zero_grad(set_to_none=True)
                rows, _ = task.stream.next()
                counts = Counts(structures=len(rows), atoms=int(task.n_atoms[rows].sum()))
                batch = task.make_batch(rows)
                with autocast() if autocast is not None else contextlib.nullcontext():
                    loss, parts = task.loss(model, batch, counts, factor)
                (weight * loss).backward(inputs=params)
                backbone_norms.append(_norm(backbone))
                if len(backbone_norms) == 1:
                    first = (counts, loss, parts, _norm(params), backbone_norms[0])
            counts, loss, parts, total_norm, first_backbone = first
            rows_out[name] = {
                "backbone_norm_mean": sum(backbone_norms) / len(backbone_norms),
                "backbone_norms": backbone_norms,
                "structures": counts.structures, "atoms": counts.atoms, "weight": weight,
                "weight_from_step": first_step, "loss": float(loss.detach()),
                "weighted_loss": weight * float(loss.detach()),
                "parts": {k: float(v) for k, v in parts.items()},
                "backbone_norm": first_backbone, "total_norm": total_norm,
                "head_norms": {h: _norm(ps) for h, ps in heads.items() if ps},
                "clipped": 0 < cfg.optim.grad_clip < total_norm,
                "clip_scale": min(1.0, cfg.optim.grad_clip / total_norm)
                if cfg.optim.grad_clip > 0 and total_norm > 0 else 1.0,
            }  # fmt: skip
        loop.optimizer.zero_grad(set_to_none=True)
    ff, prop = rows_out["ff"], rows_out["property"]
    run = {"target": cfg.target, "batch_size": cfg.batch_size, "seed": cfg.seed,
           "max_train": cfg.max_train, "grad_clip": cfg.optim.grad_clip,
           "lr_factor_step0": factor, "total_steps": total, "device": str(dev),
           "mixing": getattr(getattr(cfg.strategy, "settings", None), "mixing", None)
           or getattr(cfg.strategy, "mft_mixing", None),
           "overrides": _overrides(args)}  # fmt: skip
    return {
        "config": run,
        "step0_tasks": step0,
        "tasks": rows_out,
        "ratio_backbone_ff_over_property": ff["backbone_norm"] / prop["backbone_norm"],
        "ratio_total_ff_over_property": ff["total_norm"] / prop["total_norm"],
        "ratio_backbone_mean_ff_over_property": ff["backbone_norm_mean"]
        / prop["backbone_norm_mean"],
    }


def main_(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="qm9", help="store name (under --data-root) or path")
    ap.add_argument("--data-root", default=str(ROOT / "data"))
    ap.add_argument("--split", default=str(ROOT / "splits/qm9/property-tail-gap"))
    ap.add_argument("--target", default="gap")
    ap.add_argument("--pretrained", default=str(ROOT / "pretrained/painn-qm9-xtb/checkpoint.pt"))
    ap.add_argument("--ff-data", default=str(ROOT / "pretrained/qm9-xtb-2k"))
    ap.add_argument("--batch-size", default=None,
                    help="an int, or passed on as a string (default: the config's)")  # fmt: skip
    ap.add_argument("--max-train", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's own)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra config override (dotted key; value JSON, else a string)")  # fmt: skip
    ap.add_argument("--batches", type=int, default=10,
                    help="also average the backbone norm over the first K batches of each task "
                    "(one batch's norm varies ~2x between batches)")  # fmt: skip
    ap.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = ap.parse_args(argv)
    res = measure(args)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    c = res["config"]
    print(f"mft first step: {c['target']}, batch {c['batch_size']}, seed {c['seed']}, "
          f"{c['mixing']} mixing, lr factor {c['lr_factor_step0']:.3g}, "
          f"step 0 trains {', '.join(t for t, _ in res['step0_tasks'])}")  # fmt: skip
    print(f"{'task':<9} {'structs':>7} {'atoms':>6} {'weight':>6} {'w*loss':>10} "
          f"{'backbone |g|':>12} {'all |g|':>10}  clip {c['grad_clip']:g}")  # fmt: skip
    for name, r in res["tasks"].items():
        clip = f"clipped x{r['clip_scale']:.3g}" if r["clipped"] else "not clipped"
        print(f"{name:<9} {r['structures']:>7} {r['atoms']:>6} {r['weight']:>6.3g} "
              f"{r['weighted_loss']:>10.4g} {r['backbone_norm']:>12.4g} "
              f"{r['total_norm']:>10.4g}  {clip}")  # fmt: skip
    print(f"ratio ff/property: backbone {res['ratio_backbone_ff_over_property']:.3g}, "
          f"all trained {res['ratio_total_ff_over_property']:.3g}; backbone, mean of the first "
          f"{args.batches} batches of each task: {res['ratio_backbone_mean_ff_over_property']:.3g} "
          f"({res['tasks']['ff']['backbone_norm_mean']:.4g} / "
          f"{res['tasks']['property']['backbone_norm_mean']:.4g})")  # fmt: skip
    ff, prop = res["tasks"]["ff"], res["tasks"]["property"]
    perf("mft_balance", f"ff backbone grad norm at step 0 ({c['target']}, batch {c['batch_size']})",
         ff["backbone_norm"], "L2 norm", "lower", "property batch", prop["backbone_norm"])  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main_())
