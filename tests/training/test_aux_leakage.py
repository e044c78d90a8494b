"""MFT never trains on the split's test structures through its force-field data."""

from __future__ import annotations

import json
import math

import numpy as np

from atomcollapse.cli import main
from atomcollapse.data.schema import pack
from atomcollapse.data.store import open_store, subset_structures, write_store, write_subset
from atomcollapse.splits.artifact import load_split
from atomcollapse.training.inputs import aux_test_overlap, lineage
from tests.training.conftest import write_split


def _test_rows(split_path) -> np.ndarray:
    split = load_split(split_path)
    return np.sort(np.concatenate([split.indices("id_test"), split.indices("ood_test")]))


def test_mft_on_its_own_store_leaves_out_the_test_structures(env, tmp_path, capsys):
    split = write_split(env.ff, tmp_path / "ff-split", seed=4)
    out = tmp_path / "run"
    rc = main(["train", "--data", str(env.ff), "--split", str(split), "--target", "energy",
               "--strategy", "mft", "--seed", "0", "--pretrained", str(env.ckpt),
               "--ff-data", str(env.ff), "--epochs", "1", "--batch-size", "8",
               "--device", "cpu", "--no-progress", "--out", str(out)])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    n_test = len(_test_rows(split))
    aux = json.loads((out / "manifest.json").read_text())["aux_data"]
    assert n_test > 0
    assert aux["n_left_out_test_overlap"] == n_test
    held = aux["n_held_out_forgetting"]
    assert held == math.ceil(0.1 * (len(open_store(env.ff)) - n_test))
    assert aux["n_structures"] == len(open_store(env.ff)) - n_test - held
    assert "id_test / ood_test" in (out / "train.log").read_text()


def test_overlap_follows_subsets_and_conformer_parents(env, tmp_path):
    store = open_store(env.ff)
    split = load_split(write_split(env.ff, tmp_path / "split", seed=5))
    test = _test_rows(tmp_path / "split")
    ids = np.asarray(store.ids).astype(str)

    # a subset store of the same dataset: matched by id
    sub = open_store(write_subset(store, len(store) // 2, tmp_path / "sub", name="sub", seed=0))
    hit = aux_test_overlap(sub, store, split)
    expected = np.flatnonzero(np.isin(np.asarray(sub.ids).astype(str), ids[test]))
    assert len(expected) and np.array_equal(hit, expected)

    # conformers labelled from it: matched by parent_id
    parents = ids[[int(test[0]), 0, int(test[-1]), 1]]
    conf = pack([np.array([1, 1])] * 4, [np.array([[0, 0, 0], [0.74, 0, 0]])] * 4,
                ids=[f"{p}-k0" for p in parents])  # fmt: skip
    conf.columns["parent_id"] = parents
    src = {"format": "xtb-labelled", "store": store.name, "store_content_hash": store.content_hash}
    conf_store = open_store(write_store(conf, tmp_path / "conf", name="c", kind="forcefield",
                                        source=src))  # fmt: skip
    assert store.content_hash in lineage(conf_store.manifest)
    expected = [k for k, p in enumerate(parents) if p in set(ids[test])]
    assert aux_test_overlap(conf_store, store, split).tolist() == expected

    # an unrelated store with the same ids is not matched
    other = pack([np.array([1, 1])] * 2, [np.array([[0, 0, 0], [0.74, 0, 0]])] * 2,
                 ids=[str(ids[test[0]]), str(ids[test[-1]])])  # fmt: skip
    other_store = open_store(write_store(other, tmp_path / "o", name="o", kind="forcefield",
                                         source={"format": "synthetic"}))  # fmt: skip
    assert aux_test_overlap(other_store, store, split).size == 0


def test_mft_refuses_aux_data_that_is_all_test_structures(env, tmp_path, capsys):
    split = write_split(env.ff, tmp_path / "split", seed=6, probs=(0.5, 0.2, 0.3, 0.0))
    test = _test_rows(split)
    store = open_store(env.ff)
    src = {"format": "subset", "parent": store.name, "parent_hash": store.content_hash}
    only_test = write_store(subset_structures(store.to_structures(), test), tmp_path / "only-test",
                            name="only-test", kind="forcefield", source=src)  # fmt: skip
    rc = main(["train", "--data", str(env.ff), "--split", str(split), "--target", "energy",
               "--strategy", "mft", "--seed", "0", "--pretrained", str(env.ckpt),
               "--ff-data", str(only_test), "--epochs", "1", "--device", "cpu",
               "--no-progress", "--out", str(tmp_path / "run")])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 2
    assert "outside the split's id_test and ood_test" in err
    assert not (tmp_path / "run").exists()
