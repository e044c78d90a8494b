"""The split artifact: round trip, hashes, dataset checks, tampering."""

from __future__ import annotations

import json

import numpy as np
import pytest

from atomcollapse.artifacts import HEADER_KEYS
from atomcollapse.errors import InputError
from atomcollapse.splits import PARTITIONS, SplitConfig, load_split, make_split, split_hash
from tests.splits.conftest import distinct_smiles, molecule_store


def _split(data_root, n: int = 200, name: str = "mols"):
    y = np.random.default_rng(0).normal(size=n)
    smiles = distinct_smiles(n) if n <= 800 else ["CCO"] * n
    store = molecule_store(data_root, smiles, {"y": y}, name=name, with_smiles=n <= 800)
    return store, make_split(store, SplitConfig(method="property-tail", target="y", n_ood=20))


def test_round_trip(data_root, tmp_path) -> None:
    store, split = _split(data_root)
    split.save(tmp_path / "s")
    back = load_split(tmp_path / "s")
    for p in PARTITIONS:
        assert np.array_equal(back.indices(p), split.indices(p))
        assert back.indices(p).dtype.kind == "i"
    assert back.hash == split.hash == back.manifest["split_hash"]
    assert back.target == "y" and back.method == "property-tail"
    assert back.counts() == split.manifest["counts"]
    assert sorted(np.concatenate([back.indices(p) for p in PARTITIONS]).tolist()) == list(
        range(200)
    )
    back.check_dataset(store)
    m = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert m["dataset"]["content_hash"] == store.content_hash
    assert list(m)[:5] == list(HEADER_KEYS) and m["artifact"] == "split" and m["code_version"]
    assert m["inputs"]["dataset"]["content_hash"] == store.content_hash


def test_hash_is_content_not_file(data_root, tmp_path) -> None:
    _, split = _split(data_root)
    assert split_hash(split.codes.copy()) == split.hash
    codes = split.codes.copy()
    codes[0] = 3 if codes[0] != 3 else 0
    assert split_hash(codes) != split.hash


def test_artifact_is_small(data_root, tmp_path) -> None:
    _, split = _split(data_root, n=2000)
    split.save(tmp_path / "s")
    assert (tmp_path / "s" / "partition.npz").stat().st_size < 2000


def test_tampered_partition_file_is_refused(data_root, tmp_path) -> None:
    _, split = _split(data_root)
    split.save(tmp_path / "s")
    codes = split.codes.copy()
    codes[:5] = 0
    np.savez_compressed(tmp_path / "s" / "partition.npz", partition=codes)
    with pytest.raises(InputError, match="split hash mismatch"):
        load_split(tmp_path / "s")


def test_other_dataset_is_refused(data_root, tmp_path) -> None:
    _, split = _split(data_root)
    other, _ = _split(data_root, n=201, name="other")
    with pytest.raises(InputError, match="made for dataset 'mols'"):
        split.check_dataset(other)


def test_not_a_split(tmp_path) -> None:
    with pytest.raises(InputError, match="split not found"):
        load_split(tmp_path / "nothing")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "manifest.json").write_text('{"artifact": "dataset"}')
    with pytest.raises(InputError, match="not a split"):
        load_split(tmp_path / "x")


def test_existing_target_is_kept_unless_overwrite(data_root, tmp_path) -> None:
    _, split = _split(data_root)
    split.save(tmp_path / "s")
    with pytest.raises(InputError, match="already exists"):
        split.save(tmp_path / "s")
    split.save(tmp_path / "s", overwrite=True)
    assert load_split(tmp_path / "s").hash == split.hash
    with pytest.raises(InputError, match="unknown partition"):
        split.indices("test")
