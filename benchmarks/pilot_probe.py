"""Pilot: how much does each frozen representation know about each target? (validation only)

    python benchmarks/pilot_probe.py                         # PaiNN + ANI-1x member 0, 8 targets
    python benchmarks/pilot_probe.py --models painn --targets gap,zpve --layers last

For every model x QM9 target x feature layer (``last``: the backbone's output; ``all``: every
layer concatenated), a linear probe (``atomcollapse train --strategy linear-probe
--feature-layer L``, backbone frozen, new property head) on a seeded ``--max-train`` subset of the
committed BOOM property-tail split's train set, scored on a seeded ``--max-eval`` subset of its
*validation* set (never a test set: the pilot chooses settings of the evidence study). The
reference is the property head without its MLP: the train mean, with per-element atom
references for extensive (sum-readout) targets, fitted on the same train rows and scored on the
same validation rows. ``ratio`` = probe MAE / baseline MAE: near 1 means the representation does
not carry the target. Runs are resumable (``--out``); ``--jobs`` cells at once, one thread each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _perf import perf  # noqa: E402

TARGETS = ("mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "cv")
MODELS = {
    "painn": str(ROOT / "pretrained/painn-qm9-xtb/checkpoint.pt"),
    "ani1x:0": "ani1x:0",
}


def _cell_dir(out: Path, model: str, target: str, layer: str) -> Path:
    return out / "runs" / model.replace(":", "-") / f"{target}-{layer}"


def _train(args: argparse.Namespace, model: str, target: str, layer: str) -> Path:
    run = _cell_dir(args.out, model, target, layer)
    if (run / "metrics.json").is_file():
        return run
    cmd = [sys.executable, "-m", "atomcollapse", "--data-root", args.data_root, "train",
           "--data", args.data, "--split", str(ROOT / f"splits/qm9/property-tail-{target}"),
           "--target", target, "--strategy", "linear-probe", "--seed", str(args.seed),
           "--pretrained", MODELS.get(model, model), "--feature-layer", layer,
           "--max-train", str(args.max_train), "--max-eval", str(args.max_eval),
           "--epochs", str(args.epochs), "--device", "cpu", "--drop-unsupported-elements",
           "--resume", "--no-progress", "--out", str(run)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if res.returncode:
        raise SystemExit(f"{model} {target} {layer} failed: {res.stderr.strip()[-500:]}")
    return run


def baseline_val_mae(args: argparse.Namespace, model: str, target: str) -> float:
    """Val MAE (stored unit) of the property head without its MLP (train mean + atom refs),
    on the train and validation rows the probe used."""
    import numpy as np
    import torch

    from atomcollapse.data.batching import collate
    from atomcollapse.models.base import BackboneOutput
    from atomcollapse.training.config import load_config
    from atomcollapse.training.inputs import check_inputs
    from atomcollapse.training.model_setup import new_property_head
    from atomcollapse.training.train import TrainInputs

    run = _cell_dir(args.out, model, target, "last")
    cfg = load_config(None, {"target": target, "seed": args.seed, "max_train": args.max_train,
                             "max_eval": args.max_eval, "strategy.name": "linear-probe",
                             "drop_unsupported_elements": True})  # fmt: skip
    inp = TrainInputs(data=args.data, split=ROOT / f"splits/qm9/property-tail-{target}",
                      out=run, pretrained=Path(MODELS.get(model, model)),
                      data_root=Path(args.data_root), resume=True)  # fmt: skip
    c = check_inputs(inp, cfg)
    assert c.pretrained is not None
    head = new_property_head(c.pretrained.model.backbone, c.store, c.train_rows, target,
                             cfg.head, 0)  # fmt: skip
    with torch.no_grad():
        head.mlp[-1].weight.zero_()
        head.mlp[-1].bias.zero_()
    rows = c.rows["val"]
    values = np.asarray(c.store.target(target), dtype=np.float64)[rows]
    preds = []
    for chunk in np.array_split(rows, max(1, len(rows) // 256)):
        batch = collate(c.store, chunk, 5.0)
        zeros = torch.zeros(len(batch.numbers), head.feature_dim)
        with torch.no_grad():
            preds.append(head(BackboneOutput(node=zeros, layers=[zeros]), batch).double().numpy())
    return float(np.abs(np.concatenate(preds) - values).mean())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="qm9")
    ap.add_argument("--data-root", default=str(ROOT / "data"))
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--targets", default=",".join(TARGETS))
    ap.add_argument("--layers", default="last,all")
    ap.add_argument("--max-train", type=int, default=2000)
    ap.add_argument("--max-eval", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "results/pilot-probe")
    args = ap.parse_args(argv)
    models, targets = args.models.split(","), args.targets.split(",")
    layers = args.layers.split(",")
    cells = [(m, t, layer) for m in models for t in targets for layer in layers]
    t0 = time.monotonic()
    with ThreadPoolExecutor(args.jobs) as pool:
        runs = dict(zip(cells, pool.map(lambda c: _train(args, *c), cells), strict=True))
    rows = []
    for m in models:
        for t in targets:
            base = baseline_val_mae(args, m, t)
            for layer in layers:
                met = json.loads((runs[(m, t, layer)] / "metrics.json").read_text())
                val = met["partitions"]["val"]
                k = val["mae_report"] / val["mae"] if val["mae"] else 1.0
                rows.append({"model": m, "target": t, "layer": layer, "unit": met["report_unit"],
                             "n_val": val["n"], "probe_val_mae": val["mae_report"],
                             "baseline_val_mae": base * k,
                             "ratio": val["mae"] / base if base else float("nan")})  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    # the table grows: rows of other models/targets/layers from earlier invocations are kept
    table = args.out / "pilot.json"
    mine = {(r["model"], r["target"], r["layer"]) for r in rows}
    kept = [r for r in (json.loads(table.read_text()) if table.is_file() else [])
            if (r["model"], r["target"], r["layer"]) not in mine]  # fmt: skip
    table.write_text(json.dumps(kept + rows, indent=2) + "\n")
    print(f"linear probe vs train mean (+ atom refs), validation MAE; "
          f"{args.max_train} train, {args.epochs} epochs, {time.monotonic() - t0:.0f} s")  # fmt: skip
    print(f"{'model':<9} {'target':<6} {'layer':<5} {'unit':<10} {'probe':>10} {'baseline':>10} "
          f"{'ratio':>6}")  # fmt: skip
    for r in rows:
        print(
            f"{r['model']:<9} {r['target']:<6} {r['layer']:<5} {r['unit']:<10} "
            f"{r['probe_val_mae']:>10.4g} {r['baseline_val_mae']:>10.4g} {r['ratio']:>6.3f}"
        )
        perf("pilot_probe", f"{r['model']} {r['target']} {r['layer']} probe val MAE",
             r["probe_val_mae"], r["unit"], "lower", "train mean + atom refs",
             r["baseline_val_mae"])  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
