"""Short run of all seven strategies from one pretrained checkpoint; prints an ID/OOD MAE table.

Real data (the lead's smoke run)::

    python benchmarks/all_strategies.py --data qm9 --split splits/qm9/property-tail-gap \
        --target gap --ff-data <ff-store> --max-train 2000 --epochs 3 --out runs/all-strategies

Synthetic data (seconds; checks the machinery, not the science)::

    python benchmarks/all_strategies.py --synthetic --out /tmp/all-strategies

Without ``--pretrained`` a small PaiNN is first pretrained on ``--ff-data``. Every strategy uses
the same seed, so the same batches and the same initial property head. A short CPU run shows that
everything works end to end; it is not evidence for or against any strategy.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from atomcollapse.cli import main  # noqa: E402
from atomcollapse.training.strategies import strategy_class, strategy_names  # noqa: E402

STRATEGIES = strategy_names()


def synthetic_inputs(folder: Path) -> dict[str, str]:
    """Tiny molecule + force-field stores and a random split (uses the test generators)."""
    import numpy as np

    from atomcollapse.data.store import open_store
    from atomcollapse.splits.artifact import Split
    from tests.training.synthetic import write_ff_store, write_molecule_store

    mols = write_molecule_store(folder / "mols", n=160)
    ff = write_ff_store(folder / "ff", n=120)
    store = open_store(mols)
    codes = np.random.default_rng(0).choice(4, size=len(store), p=[0.6, 0.1, 0.15, 0.15])
    manifest = {
        "artifact": "split",
        "schema_version": 1,
        "method": "random",
        "target": "gap",
        "dataset": {
            "name": store.name,
            "content_hash": store.content_hash,
            "n_structures": len(store),
        },
    }
    Split(codes=codes.astype(np.uint8), manifest=manifest).save(folder / "split")
    return {"data": str(mols), "split": str(folder / "split"), "ff_data": str(ff), "target": "gap"}


def _run(argv: list[str]) -> None:
    print("$ atomcollapse " + " ".join(argv), flush=True)
    rc = main(argv)
    if rc != 0:
        raise SystemExit(f"command failed with exit code {rc}")


def main_(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="Dataset store (name or path).")
    ap.add_argument("--split", help="Split artifact directory.")
    ap.add_argument("--target", default="gap")
    ap.add_argument("--ff-data", help="Force-field store for pretraining and mft.")
    ap.add_argument("--pretrained", help="Use this checkpoint instead of pretraining one.")
    ap.add_argument("--synthetic", action="store_true", help="Make tiny synthetic inputs.")
    ap.add_argument("--out", required=True, help="Folder for the checkpoint, runs and table.")
    ap.add_argument("--data-root", help="Data root for store names.")
    ap.add_argument("--max-train", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--cutoff", type=float, default=5.0)
    ap.add_argument("--pretrain-epochs", type=int, default=5)
    ap.add_argument("--pretrain-max", type=int, default=0, help="Frames to pretrain on (0: all).")
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--device", default="auto")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.synthetic:
        inputs = (
            synthetic_inputs(out / "inputs")
            if not (out / "inputs").exists()
            else {
                "data": str(out / "inputs/mols"),
                "split": str(out / "inputs/split"),
                "ff_data": str(out / "inputs/ff"),
                "target": "gap",
            }
        )
        args.data, args.split, args.ff_data, args.target = (
            inputs[k] for k in ("data", "split", "ff_data", "target")
        )
        args.hidden, args.layers, args.max_train = min(args.hidden, 16), min(args.layers, 2), 0
    if not (args.data and args.split and args.ff_data):
        ap.error("--data, --split and --ff-data are required (or --synthetic)")
    root = ["--data-root", args.data_root] if args.data_root else []
    ckpt = Path(args.pretrained) if args.pretrained else out / "pretrained.pt"
    t0 = time.monotonic()
    if not args.pretrained and not ckpt.exists():
        cmd = [
            *root,
            "pretrain",
            "--data",
            args.ff_data,
            "--out",
            str(ckpt),
            "--hidden",
            str(args.hidden),
            "--layers",
            str(args.layers),
            "--cutoff",
            str(args.cutoff),
            "--epochs",
            str(args.pretrain_epochs),
            "--batch-size",
            str(args.batch_size),
            "--seed",
            str(args.seed),
            "--device",
            args.device,
            "--no-progress",
        ]
        if args.pretrain_max:
            cmd += ["--max-train", str(args.pretrain_max)]
        _run(cmd)
    rows = []
    for s in args.strategies.split(","):
        run = out / "runs" / s
        cmd = [
            *root,
            "train",
            "--data",
            args.data,
            "--split",
            args.split,
            "--target",
            args.target,
            "--strategy",
            s,
            "--seed",
            str(args.seed),
            "--pretrained",
            str(ckpt),
            "--out",
            str(run),
            "--epochs",
            str(args.epochs),
            "--batch-size",
            str(args.batch_size),
            "--device",
            args.device,
            "--resume",
            "--no-progress",
        ]
        if args.max_train:
            cmd += ["--max-train", str(args.max_train)]
        if strategy_class(s).needs_ff:
            cmd += ["--ff-data", args.ff_data]
        else:
            cmd += ["--forgetting-data", args.ff_data]
        t = time.monotonic()
        _run(cmd)
        m = json.loads((run / "metrics.json").read_text())
        p = m["partitions"]
        rows.append(
            {
                "strategy": s,
                "unit": m["report_unit"],
                "seconds": time.monotonic() - t,
                "id_mae": p.get("id_test", {}).get("mae_report"),
                "ood_mae": p.get("ood_test", {}).get("mae_report"),
                "val_mae": m["best_val_mae"],
                "steps": m["steps"],
            }
        )
    (out / "table.json").write_text(json.dumps(rows, indent=2))
    unit = rows[0]["unit"] if rows else ""
    print(f"\n{args.target} MAE ({unit}); total {time.monotonic() - t0:.0f} s")
    print(f"{'strategy':<15}{'ID':>12}{'OOD':>12}{'OOD/ID':>9}{'steps':>8}{'s':>8}")
    for r in rows:
        ratio = r["ood_mae"] / r["id_mae"] if r["id_mae"] and r["ood_mae"] else float("nan")
        print(
            f"{r['strategy']:<15}{r['id_mae']:>12.4g}{r['ood_mae']:>12.4g}{ratio:>9.2f}"
            f"{r['steps']:>8}{r['seconds']:>8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main_())
