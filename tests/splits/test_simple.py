"""Size, random and MatBench-fold splits."""

from __future__ import annotations

import random

import numpy as np
import pytest

from atomcollapse.data.schema import pack
from atomcollapse.data.store import Store, write_store
from atomcollapse.errors import InputError
from atomcollapse.splits import SplitConfig, make_split
from tests.splits.conftest import crystal_store, distinct_smiles, molecule_store


def test_size_holds_out_most_heavy_atoms(data_root) -> None:
    # Heavy atoms: 2, 9, 3, 9, 4, 1; the two nines are both C9H20 (ties: data order).
    smiles = ["CC", "CCCCCCCCC", "CCC", "CC(C)(C)CC(C)(C)C", "CCCC", "C"]
    store = molecule_store(data_root, smiles)
    split = make_split(store, SplitConfig(method="size", n_ood=2, id_frac=0, val_frac=0))
    assert split.indices("ood_test").tolist() == [1, 3]
    d = split.manifest["details"]
    assert d["size_key"] == "heavy atoms" and d["ood_min_size"] == 9 and d["pool_max_size"] == 4
    split1 = make_split(store, SplitConfig(method="size", n_ood=1, id_frac=0, val_frac=0))
    assert split1.indices("ood_test").tolist() == [1]
    assert split1.manifest["details"]["cutoff_size_in_pool"] == 1


def test_size_counts_all_atoms_for_crystals(data_root) -> None:
    store = crystal_store(data_root, [{"Na": 1, "Cl": 1}, {"Si": 3, "O": 6}, {"Li": 2, "F": 2}])
    split = make_split(store, SplitConfig(method="size", n_ood=1, id_frac=0, val_frac=0))
    assert split.indices("ood_test").tolist() == [1]
    assert split.manifest["details"]["size_key"] == "atoms"


def test_random_is_id_only(data_root) -> None:
    n = 400
    store = molecule_store(data_root, distinct_smiles(n))
    split = make_split(store, SplitConfig(method="random", id_frac=0.1, val_frac=0.1, seed=3))
    assert split.counts()["ood_test"] == 0
    assert "EMPTY" in split.manifest["details"]["procedure"]
    rng = random.Random(3)
    expected_id = [i for i in range(n) if rng.random() < 0.1]
    assert split.indices("id_test").tolist() == expected_id


def _fold_store(root, *, as_column: bool) -> Store:
    n = 20
    s = pack([np.array([11, 17])] * n, [np.eye(3)[:2] * (1 + i / 10) for i in range(n)],
             ids=[f"mb-{i + 1}" for i in range(n)], cells=[np.eye(3) * 5] * n,
             pbcs=[np.ones(3, bool)] * n)  # fmt: skip
    s.targets["e"] = np.arange(n, dtype=float)
    s.target_units["e"] = "eV/atom"
    folds = np.arange(n) % 4
    extra = {}
    if as_column:
        s.columns["fold"] = folds.astype(str)
    else:
        extra = {"matbench": {"folds": {f"fold_{k}": {"test": [f"mb-{i + 1}" for i in
                                                              np.flatnonzero(folds == k)]}
                                        for k in range(4)}}}  # fmt: skip
    path = write_store(s, root / "stores" / f"mb{as_column}", name="mb", kind="crystals",
                       source={"format": "test"}, extra=extra)  # fmt: skip
    return Store(path)


@pytest.mark.parametrize("as_column", [True, False])
def test_matbench_fold_is_the_id_test(data_root, as_column: bool) -> None:
    store = _fold_store(data_root, as_column=as_column)
    split = make_split(store, SplitConfig(method="matbench-fold", fold=2, val_frac=0.25))
    assert split.indices("id_test").tolist() == [2, 6, 10, 14, 18]
    assert split.counts()["ood_test"] == 0
    rng = random.Random(42)
    others = [i for i in range(20) if i % 4 != 2]
    assert split.indices("val").tolist() == [i for i in others if rng.random() < 0.25]
    with pytest.raises(InputError, match=r"0\.\.3"):
        make_split(store, SplitConfig(method="matbench-fold", fold=4))


def test_matbench_fold_needs_folds(data_root) -> None:
    store = molecule_store(data_root, ["CC", "CCC", "CCCC"])
    with pytest.raises(InputError, match="no MatBench folds"):
        make_split(store, SplitConfig(method="matbench-fold", fold=0))
