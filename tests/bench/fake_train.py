"""A stand-in for ``python -m atomcollapse train`` that writes a run directory in a blink.

It reads the same arguments, resolves the configuration with the real loader and writes the
manifest, config, metrics and predictions that ``train`` writes (the fields the bench matches
on), with made-up errors. ``FAKE_TRAIN_FAIL=<strategy>`` makes that strategy exit 3 with an
error line; ``FAKE_TRAIN_CALLS=<file>`` appends one line per call; ``FAKE_TRAIN_PIDS=<file>``
appends its process id and ``FAKE_TRAIN_SLEEP=<s>`` makes it wait that long first (the signal
tests). Like the real command it asks to die with the bench that started it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from atomcollapse.artifacts import sha256_file, write_json_atomic
from atomcollapse.data.store import open_store
from atomcollapse.process import die_with_parent
from atomcollapse.splits.artifact import load_split
from atomcollapse.training.config import load_config


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("command")
    for opt in ("data", "split", "target", "strategy", "seed", "config", "out", "pretrained",
                "ff-data", "forgetting-data"):  # fmt: skip
        p.add_argument(f"--{opt}")
    p.add_argument("--tag", action="append")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    a = p.parse_args(argv)
    die_with_parent()
    if os.environ.get("FAKE_TRAIN_PIDS"):
        with open(os.environ["FAKE_TRAIN_PIDS"], "a") as f:
            f.write(f"{os.getpid()}\n")
    time.sleep(float(os.environ.get("FAKE_TRAIN_SLEEP", "0")))
    if os.environ.get("FAKE_TRAIN_CALLS"):
        with open(os.environ["FAKE_TRAIN_CALLS"], "a") as f:
            f.write(f"{a.strategy} {a.seed} threads={os.environ.get('OMP_NUM_THREADS')}\n")
    if os.environ.get("FAKE_TRAIN_FAIL") == a.strategy:
        print(f"error: {a.strategy} exploded", file=sys.stderr)
        return 3
    out = Path(a.out)
    if (out / "metrics.json").is_file():
        return 0
    cfg = load_config(a.config, {"target": a.target, "seed": int(a.seed),
                                 "strategy.name": a.strategy})  # fmt: skip
    store = open_store(a.data)
    split = load_split(a.split)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "config.json", cfg.to_dict())
    manifest = {
        "artifact": "run", "status": "finished", "strategy": {"name": a.strategy},
        "target": a.target, "unit": "Ha", "report_unit": "meV",
        "dataset": {"name": store.name, "content_hash": store.content_hash},
        "split": {"hash": split.hash, "method": split.method, "target": split.target},
        "pretrained": {"hash": sha256_file(a.pretrained)} if a.pretrained else None,
        "pretrained_path": a.pretrained,
        "aux_data": None if a.ff_data is None
        else {"name": "ff", "content_hash": open_store(a.ff_data).content_hash},
        "seeds": {"seed": int(a.seed)},
    }  # fmt: skip
    write_json_atomic(out / "manifest.json", manifest)
    values = np.asarray(store.target(a.target))
    rng = np.random.default_rng(int(a.seed))
    frames, parts = [], {}
    for part in ("val", "id_test", "ood_test"):
        rows = split.indices(part)
        pred = values[rows] + rng.normal(scale=0.01, size=len(rows))
        err = np.abs(pred - values[rows])
        parts[part] = {"n": len(rows), "mae": float(err.mean()),
                       "rmse": float(np.sqrt((err**2).mean()))}  # fmt: skip
        frames.append(pd.DataFrame({"id": np.asarray(store.ids)[rows], "partition": part,
                                    "target": a.target, "prediction": pred,
                                    "reference": values[rows], "unit": "Ha"}))  # fmt: skip
    pd.concat(frames).to_csv(out / "predictions.csv", index=False)
    write_json_atomic(out / "metrics.json", {
        "target": a.target, "strategy": a.strategy, "seed": int(a.seed), "unit": "Ha",
        "report_unit": "meV", "best_val_mae": parts["val"]["mae"], "partitions": parts,
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
