"""``split export``: one file per partition with ids, targets in units and the split hash."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pandas as pd
import pytest

from atomcollapse.cli import main
from atomcollapse.data.store import open_store
from atomcollapse.splits import PARTITIONS, load_split
from tests.training.conftest import write_split
from tests.training.synthetic import write_molecule_store


@pytest.fixture
def made(tmp_path):
    store = write_molecule_store(tmp_path / "stores" / "mols", n=30)
    split = write_split(store, tmp_path / "split")
    return tmp_path, open_store(store), load_split(split)


def _export(root, fmt, *extra):
    return main(["--data-root", str(root), "split", "export", str(root / "split"), "--format",
                 fmt, "--out", str(root / fmt), *extra])  # fmt: skip


def test_csv_files_carry_ids_targets_units_and_hash(made, capsys):
    root, store, split = made
    assert _export(root, "csv") == 0, capsys.readouterr().err
    seen = []
    for p in PARTITIONS:
        df = pd.read_csv(root / "csv" / f"{p}.csv")
        rows = split.indices(p)
        assert list(df.columns) == ["id", "partition", "gap [Ha]", "alpha [a0^3]", "split_hash"]
        assert list(df.id) == list(np.asarray(store.ids)[rows])
        assert set(df.partition) == {p} and set(df.split_hash) == {split.hash}
        np.testing.assert_array_equal(df["gap [Ha]"], store.target("gap")[rows])
        np.testing.assert_array_equal(df["alpha [a0^3]"], store.target("alpha")[rows])
        seen += list(df.id)
    assert sorted(seen) == sorted(store.ids)
    m = json.loads((root / "csv" / "manifest.json").read_text())
    assert m["split_hash"] == split.hash and m["units"] == {"gap": "Ha", "alpha": "a0^3"}
    assert m["counts"] == {p: len(split.indices(p)) for p in PARTITIONS}


def test_extxyz_is_read_by_ase(made, capsys):
    root, store, split = made
    assert _export(root, "extxyz") == 0, capsys.readouterr().err
    for p in PARTITIONS:
        frames = ase.io.read(root / "extxyz" / f"{p}.extxyz", index=":")
        rows = split.indices(p)
        assert [f.info["id"] for f in frames] == list(np.asarray(store.ids)[rows])
        assert {f.info["partition"] for f in frames} == {p}
        assert {f.info["split_hash"] for f in frames} == {split.hash}
        np.testing.assert_array_equal([f.info["gap"] for f in frames], store.target("gap")[rows])
        for f, k in zip(frames, rows, strict=True):
            s = store.structure(int(k))
            np.testing.assert_array_equal(f.numbers, s.numbers)
            np.testing.assert_allclose(f.positions, s.positions, atol=1e-8)


def test_refuses_overwrite_unknown_format_and_another_dataset(made, capsys, tmp_path):
    root, _, _ = made
    assert _export(root, "csv") == 0
    before = (root / "csv" / "train.csv").read_bytes()
    assert _export(root, "csv") == 2
    assert "already exists" in capsys.readouterr().err
    assert (root / "csv" / "train.csv").read_bytes() == before
    assert _export(root, "csv", "--overwrite") == 0
    assert _export(root, "parquet") == 2
    err = capsys.readouterr().err
    assert "--format must be one of extxyz, csv, not 'parquet'" in err
    assert len(err.strip().splitlines()) == 1 and not (root / "parquet").exists()
    write_molecule_store(root / "stores" / "other", n=30, seed=4, name="other")
    assert _export(root, "extxyz", "--data", "other") == 2
    assert "split was made for dataset" in capsys.readouterr().err
    assert not (root / "extxyz").exists()
