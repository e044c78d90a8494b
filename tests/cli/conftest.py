"""A template workspace every bad-input case copies: stores under ``data/stores``, a split, a
pretrained checkpoint, a finished run, a report, an extxyz file and a folder atomcollapse did not
make."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.training.conftest import TINY, write_split
from tests.training.synthetic import write_ff_store, write_molecule_store


def write_frames(path: Path, n: int = 4) -> Path:
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator
    from ase.io import write

    rng = np.random.default_rng(0)
    frames = []
    for _ in range(n):
        a = Atoms("H2O", positions=rng.normal(size=(3, 3)) * 1.2)
        a.calc = SinglePointCalculator(
            a, energy=float(rng.normal()), forces=rng.normal(size=(3, 3))
        )
        frames.append(a)
    write(path, frames, format="extxyz")
    return path


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Path:
    from atomcollapse.cli import main

    ws = tmp_path_factory.mktemp("template")
    mols = write_molecule_store(ws / "data" / "stores" / "mols", n=48)
    ff = write_ff_store(ws / "data" / "stores" / "ff", n=40)
    write_split(mols, ws / "split")
    args = ["--device", "cpu", "--no-progress", "--batch-size", "8"]
    assert main(["pretrain", "--data", str(ff), "--out", str(ws / "pre.pt"), *TINY,
                 "--epochs", "1", *args]) == 0  # fmt: skip
    assert main(["train", "--data", str(mols), "--split", str(ws / "split"), "--target", "gap",
                 "--strategy", "finetune", "--pretrained", str(ws / "pre.pt"), "--out",
                 str(ws / "runs" / "run"), "--steps", "2", *args]) == 0  # fmt: skip
    assert main(["report", str(ws / "runs"), "--out", str(ws / "report"), "--no-plots",
                 "--format", "csv"]) == 0  # fmt: skip
    write_frames(ws / "frames.xyz")
    (ws / "thesis").mkdir()
    (ws / "thesis" / "thesis.tex").write_text("\\documentclass{article}\n")
    return ws


@pytest.fixture
def ws(template, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the template workspace, the current folder while the test runs."""
    root = tmp_path / "ws"
    shutil.copytree(template, root, symlinks=True)
    monkeypatch.chdir(root)
    return root
