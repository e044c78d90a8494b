"""Verification catches straddling groups, duplicates across partitions and wrong datasets."""

from __future__ import annotations

import numpy as np

from atomcollapse.splits import Split, SplitConfig, make_split
from atomcollapse.splits.verify import verify_split
from tests.splits.conftest import crystal_store, distinct_smiles, molecule_store
from tests.splits.test_scaffold import SMILES


def _moved(split: Split, index: int, code: int) -> Split:
    codes = split.codes.copy()
    codes[index] = code
    return Split(codes=codes, manifest=dict(split.manifest, counts=None))


def test_clean_scaffold_split_verifies(data_root) -> None:
    store = molecule_store(data_root, SMILES)
    split = make_split(store, SplitConfig(method="scaffold", n_ood=3))
    report = verify_split(split, store, regenerate=True)
    assert report.ok, report.problems
    assert ("regenerate", "identical indices") in report.checks


def test_straddling_scaffold_group_fails(data_root) -> None:
    store = molecule_store(data_root, SMILES)
    split = make_split(store, SplitConfig(method="scaffold", n_ood=3))
    i = int(split.indices("ood_test")[0])
    bad = _moved(split, i, 0)
    report = verify_split(bad, store)
    assert not report.ok
    assert any("straddle the pool and ood_test" in p for p in report.problems)
    assert any("counts differ" in p for p in report.problems)


def test_duplicates_across_partitions_fail(data_root) -> None:
    smiles = ["C1=CC=CC=C1", "c1ccccc1", *distinct_smiles(60)]
    y = np.concatenate([[9.0, 0.0], np.linspace(-1, 1, 60)])
    store = molecule_store(data_root, smiles, {"y": y})
    loose = make_split(store, SplitConfig(method="property-tail", target="y", n_ood=1,
                                          dedupe="none"))  # fmt: skip
    report = verify_split(loose, store)
    assert any("1 duplicate groups span two partitions" in p for p in report.problems)
    grouped = make_split(store, SplitConfig(method="property-tail", target="y", n_ood=1))
    assert verify_split(grouped, store).ok


def test_wrong_dataset_fails_first(data_root) -> None:
    store = molecule_store(data_root, SMILES)
    other = molecule_store(data_root, SMILES[:-1], name="other")
    split = make_split(store, SplitConfig(method="scaffold", n_ood=3))
    report = verify_split(split, other)
    assert not report.ok and report.checks[0][0] == "dataset hash" and len(report.checks) == 1


def test_ks_statistics_show_the_shift(data_root) -> None:
    rng = np.random.default_rng(0)
    y = rng.exponential(1.0, 740)  # one long tail: the lowest density is its far end
    store = molecule_store(data_root, distinct_smiles(len(y)), {"y": y})
    split = make_split(store, SplitConfig(method="property-tail", target="y", n_ood=40))
    ks = verify_split(split, store).ks["y"]
    assert ks["ood_test"] > 0.9 and ks["id_test"] < 0.4  # id_test holds ~35 values
    random_split = make_split(store, SplitConfig(method="random"))
    assert verify_split(random_split, store).ks["y"]["ood_test"] is None


def test_composition_and_size_checks(data_root) -> None:
    store = crystal_store(data_root, [{"Na": 1, "Cl": 1}, {"Li": 1, "F": 1}, {"K": 1, "Cl": 1},
                                      {"Li": 2, "O": 1}, {"Si": 1, "O": 2}])  # fmt: skip
    split = make_split(store, SplitConfig(method="composition", labels=("Li",), val_frac=0,
                                          id_frac=0))  # fmt: skip
    assert verify_split(split, store).ok
    assert not verify_split(_moved(split, 1, 0), store).ok
    size = make_split(store, SplitConfig(method="size", n_ood=1, id_frac=0, val_frac=0))
    assert verify_split(size, store).ok
    assert not verify_split(_moved(size, 0, 3), store).ok
