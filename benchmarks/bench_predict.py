"""Throughput of ``predict`` (molecules/s) against ``train``'s evaluation pass, same model, same run.

The script makes its own run directory first (in a temporary folder): a random split of the
store, then ``train`` (finetune from ``--checkpoint``, one epoch on ``--train-n`` molecules), so
the model is a real fine-tuned run with a property head and the checkpoint's energy head. Then,
on the same ``--n`` molecules of the store (default: all of them) and with ``--threads`` CPU
threads, it times, alternating, ``--rounds`` times each:

- ``predict``: what ``atomcollapse predict RUN --data STORE`` computes (``training.predict``:
  load the run's best checkpoint, check elements, collate, both heads, a DataFrame of ids and
  predictions), with its own batch size (``auto:4096`` atoms); writing the CSV is timed apart;
- ``train eval``: the pass ``train`` makes over a partition for its metrics
  (``training.tasks.predict_property``: ``PropertyTask`` batches of ``eval_batch_size`` = 128
  structures, property head only), on the same model loaded from the same checkpoint;

and prints the median molecules/s of each and their ratio (predict / train eval), as PERF lines.
The predictions of the two must agree (checked, so the comparison is of the same work). The
store is only read (the verified-store cache goes to the temporary folder).

    python benchmarks/bench_predict.py --data-root data            # full QM9 store "qm9"
    python benchmarks/bench_predict.py --data-root data --n 5000 --rounds 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _perf import perf

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / "pretrained" / "painn-qm9-xtb" / "checkpoint.pt"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-root", default=str(ROOT / "data"), help="folder holding stores/")
    p.add_argument("--store", default="qm9", help="store name under <data-root>/stores")
    p.add_argument("--target", default="gap")
    p.add_argument("--checkpoint", default=str(CHECKPOINT), help="pretrained checkpoint")
    p.add_argument("--train-n", type=int, default=500, help="molecules the tiny run trains on")
    p.add_argument("--n", type=int, default=0, help="molecules to time (0 = the whole store)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3, help="timed passes of each, alternating")
    return p.parse_args(argv)


def make_run(args: argparse.Namespace, store_path: Path, tmp: Path) -> Path:
    """A one-epoch finetune run on ``--train-n`` molecules (its own random split)."""
    from atomcollapse.api import make_split, train

    make_split(store_path, tmp / "split", method="random")
    out = tmp / "run"
    overrides = {"target": args.target, "epochs": 1, "max_train": args.train_n,
                 "max_eval": min(args.train_n, 1000), "device": "cpu",
                 "strategy.name": "finetune"}  # fmt: skip
    train(store_path, tmp / "split", out, overrides=overrides, pretrained=args.checkpoint)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    store_path = Path(args.data_root) / "stores" / args.store
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["ATOMCOLLAPSE_CACHE"] = str(tmp / "cache")
        from atomcollapse.data.store import open_store
        from atomcollapse.training.config import TrainConfig
        from atomcollapse.training.predict import load_predictor, predict_store
        from atomcollapse.training.tasks import PropertyTask, predict_property

        t0 = time.perf_counter()
        run = make_run(args, store_path, tmp)
        made = time.perf_counter() - t0
        store = open_store(store_path)
        rows = np.arange(len(store) if args.n <= 0 else min(args.n, len(store)))
        eval_batch = TrainConfig().eval_batch_size
        print(f"store {store.name}: timing {len(rows):,} molecules; run made in {made:.1f} s "
              f"(finetune, 1 epoch, {args.train_n} molecules); cpu, {torch.get_num_threads()} "
              f"threads", flush=True)  # fmt: skip

        def predict_pass() -> tuple[float, np.ndarray, float]:
            start = time.perf_counter()
            pred = load_predictor(run)
            frame, _ = predict_store(pred, store, rows)
            seconds = time.perf_counter() - start
            start = time.perf_counter()
            frame.to_csv(tmp / "predictions.csv", index=False)
            return seconds, frame["prediction"].to_numpy(), time.perf_counter() - start

        def eval_pass() -> tuple[float, np.ndarray]:
            model = load_predictor(run).model
            task = PropertyTask(store, args.target, float(model.backbone.cutoff),
                                torch.device("cpu"), scale=1.0)  # fmt: skip
            start = time.perf_counter()
            values = predict_property(model, task, rows, eval_batch)
            return time.perf_counter() - start, values

        times: dict[str, list[float]] = {"predict": [], "eval": [], "csv": []}
        for _ in range(args.rounds):
            seconds, by_predict, csv_seconds = predict_pass()
            times["predict"].append(seconds)
            times["csv"].append(csv_seconds)
            seconds, by_eval = eval_pass()
            times["eval"].append(seconds)
        gap = float(np.max(np.abs(by_predict - by_eval)))
        scale = float(np.max(np.abs(by_eval))) or 1.0
        if gap > 1e-4 * scale:
            print(
                f"predict and train eval disagree by {gap:.3g} ({store.target_unit(args.target)})"
            )
            return 1
    n = len(rows)
    rate = {k: n / statistics.median(v) for k, v in times.items()}
    print(
        f"predict (auto:4096 atoms per batch, both heads): {rate['predict']:,.0f} molecules/s "
        f"(median of {args.rounds}; CSV write {statistics.median(times['csv']):.2f} s apart)"
    )
    print(
        f"train eval pass ({eval_batch} molecules per batch, property head): "
        f"{rate['eval']:,.0f} molecules/s"
    )
    print(f"ratio predict / train eval: {rate['predict'] / rate['eval']:.2f} "
          f"(predictions agree to {gap:.2g})")  # fmt: skip
    metric = f"{store.name} {len(rows)} molecules, cpu {args.threads} threads"
    perf("predict", f"predict vs train eval pass, {metric}", rate["predict"], "molecules/s",
         "higher", reference_name="train evaluation pass", reference=rate["eval"])  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
