"""Tiny inputs for the bench tests: stores, a split, a checkpoint file, specs, a fake ``train``."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from atomcollapse.bench import runner
from atomcollapse.data.store import open_store
from atomcollapse.splits.artifact import Split
from tests.training.synthetic import write_ff_store, write_molecule_store

FAKE_TRAIN = Path(__file__).with_name("fake_train.py")

SPEC = """
name = "tiny"
strategies = {strategies}
seeds = {seeds}

[[datasets]]
store = "{store}"
targets = ["gap"]

[[datasets.splits]]
name = "random"
method = "random"
artifact = "{split}"

[[models]]
name = "tinypre"
checkpoint = "{ckpt}"
ff_data = "{ff}"

[train]
epochs = 1
batch_size = 8

[report]
plots = false
{extra}
"""


@dataclass(frozen=True)
class BenchEnv:
    root: Path
    store: Path
    ff: Path
    split: Path
    ckpt: Path

    def spec(self, *, strategies=("scratch", "finetune", "mft"), seeds=(0, 1), extra: str = "",
             name: str = "spec.toml") -> Path:  # fmt: skip
        text = SPEC.format(strategies=_toml_list(strategies), seeds=list(seeds), store=self.store,
                           split=self.split, ckpt=self.ckpt, ff=self.ff, extra=extra)  # fmt: skip
        path = self.root / name
        path.write_text(text)
        return path


def _toml_list(items) -> str:
    return "[" + ", ".join(f'"{s}"' for s in items) + "]"


def write_split(store_path: Path, out: Path, seed: int = 0) -> Path:
    store = open_store(store_path)
    codes = np.random.default_rng(seed).choice(4, size=len(store), p=[0.55, 0.15, 0.15, 0.15])
    codes[:4] = [0, 1, 2, 3]
    manifest = {"artifact": "split", "schema_version": 1, "method": "random", "target": None,
                "dataset": {"name": store.name, "content_hash": store.content_hash,
                            "n_structures": len(store)}}  # fmt: skip
    return Split(codes=codes.astype(np.uint8), manifest=manifest).save(out)


@pytest.fixture(scope="session")
def inputs_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench-inputs")
    store = write_molecule_store(root / "stores" / "mols", n=40)
    write_ff_store(root / "stores" / "ff", n=20)
    write_split(store, root / "split")
    (root / "pre.pt").write_bytes(b"not a real checkpoint: the fake train only hashes it")
    return root


@pytest.fixture
def benv(inputs_dir, tmp_path) -> BenchEnv:
    r = inputs_dir
    return BenchEnv(tmp_path, r / "stores" / "mols", r / "stores" / "ff", r / "split",
                    r / "pre.pt")  # fmt: skip


@pytest.fixture
def fake_train(monkeypatch, tmp_path) -> Path:
    """Cells run the fake train; returns the file where it logs its calls."""
    calls = tmp_path / "calls.txt"
    monkeypatch.setattr(runner, "TRAIN_PROGRAM", [sys.executable, str(FAKE_TRAIN)])
    monkeypatch.setenv("FAKE_TRAIN_CALLS", str(calls))
    monkeypatch.delenv("FAKE_TRAIN_FAIL", raising=False)
    return calls


def bench_main(argv: list[str]) -> int:
    """``atomcollapse bench ...`` on a fresh typer app (the lead wires the real one)."""
    import typer

    from atomcollapse.cli import bench
    from atomcollapse.cli import main as cli_main

    app = typer.Typer(pretty_exceptions_enable=False)
    bench.register(app)

    @app.callback()
    def _root() -> None:  # a group, so the command keeps its name
        pass

    import atomcollapse.cli as cli

    old = cli.app
    cli.app = app
    try:
        return cli_main(["bench", *argv])
    finally:
        cli.app = old
