"""Session fixtures: tiny molecule and force-field stores, a split, a pretrained checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from atomcollapse.data.store import open_store
from atomcollapse.splits.artifact import Split
from tests.training.synthetic import write_ff_store, write_molecule_store

TINY = ["--hidden", "16", "--layers", "2", "--rbf", "8", "--cutoff", "4.0"]


@dataclass(frozen=True)
class Env:
    root: Path
    mols: Path
    ff: Path
    split: Path
    ckpt: Path

    def train_args(self, out: Path, strategy: str, *extra: str) -> list[str]:
        args = ["train", "--data", str(self.mols), "--split", str(self.split), "--target", "gap",
                "--strategy", strategy, "--seed", "3", "--out", str(out), "--epochs", "2",
                "--batch-size", "8", "--device", "cpu", "--no-progress"]  # fmt: skip
        args += ["--pretrained", str(self.ckpt)]
        if strategy == "mft":
            args += ["--ff-data", str(self.ff)]
        return [*args, *extra]


def write_split(store_path: Path, out: Path, seed: int = 0, probs=(0.6, 0.15, 0.1, 0.15)) -> Path:
    store = open_store(store_path)
    codes = np.random.default_rng(seed).choice(4, size=len(store), p=list(probs))
    codes[:4] = [0, 1, 2, 3]
    manifest = {"artifact": "split", "schema_version": 1, "method": "random", "target": "gap",
                "dataset": {"name": store.name, "content_hash": store.content_hash,
                            "n_structures": len(store)}}  # fmt: skip
    return Split(codes=codes.astype(np.uint8), manifest=manifest).save(out)


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Tiny models run fastest (and least disturbed by other processes) on one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def env(tmp_path_factory) -> Env:
    from atomcollapse.cli import main

    root = tmp_path_factory.mktemp("training")
    mols = write_molecule_store(root / "mols", n=48)
    ff = write_ff_store(root / "ff", n=40)
    split = write_split(mols, root / "split")
    ckpt = root / "pre.pt"
    rc = main(["pretrain", "--data", str(ff), "--out", str(ckpt), *TINY, "--epochs", "3",
               "--batch-size", "8", "--lr", "3e-3", "--device", "cpu", "--no-progress"])  # fmt: skip
    assert rc == 0
    return Env(root, mols, ff, split, ckpt)
