"""A tiny workspace for the API tests: molecule and force-field stores, a split, a checkpoint."""

from __future__ import annotations

import pytest

from tests.training.conftest import TINY, Env, _one_thread, write_split  # noqa: F401 (fixture)
from tests.training.synthetic import write_ff_store, write_molecule_store


@pytest.fixture(scope="session")
def ws(tmp_path_factory) -> Env:
    from atomcollapse.cli import main

    root = tmp_path_factory.mktemp("api")
    mols = write_molecule_store(root / "stores" / "mols", n=48)
    ff = write_ff_store(root / "stores" / "ff", n=40)
    split = write_split(mols, root / "split")
    ckpt = root / "pre.pt"
    rc = main(["pretrain", "--data", str(ff), "--out", str(ckpt), *TINY, "--epochs", "2",
               "--batch-size", "8", "--lr", "3e-3", "--device", "cpu", "--no-progress"])  # fmt: skip
    assert rc == 0
    return Env(root, mols, ff, split, ckpt)
