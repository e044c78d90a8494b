"""Shared test fixtures: tiny stores built in tmp_path."""

from __future__ import annotations

import numpy as np
import pytest

from atomcollapse.data.schema import pack
from atomcollapse.data.store import open_store, write_store


def make_molecules(n: int = 5, seed: int = 0):
    """``n`` small random H/C/N/O molecules with a target ``y`` (unit eV) and SMILES-like column."""
    rng = np.random.default_rng(seed)
    numbers, positions = [], []
    for _ in range(n):
        k = int(rng.integers(2, 7))
        numbers.append(rng.choice([1, 6, 7, 8], size=k))
        positions.append(rng.normal(scale=1.5, size=(k, 3)))
    s = pack(numbers, positions, ids=[f"m{i:03d}" for i in range(n)])
    s.targets["y"] = rng.normal(size=n)
    s.target_units["y"] = "eV"
    s.columns["smiles"] = np.array(["C"] * n)
    return s


@pytest.fixture
def tiny_store(tmp_path):
    s = make_molecules()
    path = write_store(
        s, tmp_path / "stores" / "tiny", name="tiny", kind="molecules", source={"format": "test"}
    )
    return open_store(path)


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """The verified-store cache lives in the session's temporary folder, never in the home one
    (set before any session fixture runs a command; subprocesses inherit it)."""
    import os

    before = os.environ.get("ATOMCOLLAPSE_CACHE")
    os.environ["ATOMCOLLAPSE_CACHE"] = str(tmp_path_factory.getbasetemp() / "cache")
    yield
    if before is None:
        os.environ.pop("ATOMCOLLAPSE_CACHE", None)
    else:
        os.environ["ATOMCOLLAPSE_CACHE"] = before


@pytest.fixture(scope="session")
def deepmd_checkpoints(tmp_path_factory):
    """A single-task and a two-branch DPA-3 checkpoint trained by DeePMD-kit itself (skips when
    the 'deepmd' extra is absent)."""
    import importlib.util

    if importlib.util.find_spec("deepmd") is None:
        pytest.skip("the 'deepmd' extra (deepmd-kit==3.2.0, `make deepmd`) is not installed")
    from tests.deepmd_models import train_checkpoints

    return train_checkpoints(tmp_path_factory.mktemp("deepmd"))
