"""Composition splits on tiny crystal stores whose compositions are known."""

from __future__ import annotations

import numpy as np
import pytest

from atomcollapse.errors import InputError
from atomcollapse.splits import SplitConfig, load_split, make_split
from atomcollapse.splits.composition import (
    chemical_systems,
    composition_counts,
    fold_labels,
    reduced_formulas,
)
from atomcollapse.splits.verify import verify_split
from tests.splits.conftest import crystal_store, molecule_store

FORMULAS = [
    {"Na": 1, "Cl": 1}, {"Na": 4, "Cl": 4}, {"Li": 1, "F": 1}, {"Li": 2, "Cl": 2},
    {"K": 1, "Cl": 1}, {"Fe": 2, "O": 3}, {"Fe": 1, "O": 1}, {"Si": 1, "O": 2},
    {"Si": 2, "O": 4}, {"Li": 1, "Fe": 1, "O": 2}, {"K": 2, "O": 1}, {"Na": 2, "O": 1},
]  # fmt: skip


def _cfg(**kw) -> SplitConfig:
    return SplitConfig(method="composition", id_frac=0.0, val_frac=0.0, **kw)


def test_composition_from_atomic_numbers(data_root) -> None:
    store = crystal_store(data_root, FORMULAS, columns={"formula": ["wrong"] * len(FORMULAS)})
    counts, zs = composition_counts(store)
    f = reduced_formulas(counts, zs)
    assert f[:3].tolist() == ["NaCl", "NaCl", "LiF"]
    assert f[7] == f[8] == "SiO2" and f[5] == "Fe2O3"
    assert chemical_systems(counts, zs)[9] == "Fe-Li-O"


def test_element_hold_out(data_root) -> None:
    store = crystal_store(data_root, FORMULAS)
    split = make_split(store, _cfg(by="element", labels=("Li",)))
    assert split.indices("ood_test").tolist() == [2, 3, 9]
    assert split.indices("train").tolist() == [0, 1, 4, 5, 6, 7, 8, 10, 11]


def test_chemsys_and_formula_labels_are_normalised(data_root) -> None:
    store = crystal_store(data_root, FORMULAS)
    a = make_split(store, _cfg(by="chemsys", labels=("Na-Cl",)))
    assert a.indices("ood_test").tolist() == [0, 1]
    b = make_split(store, _cfg(by="formula", labels=("O2Si", "FeO")))
    assert b.indices("ood_test").tolist() == [6, 7, 8]
    assert b.manifest["details"]["held_out"] == ["SiO2", "FeO"]


def test_label_folds_are_deterministic_and_cover_all_labels(data_root) -> None:
    store = crystal_store(data_root, FORMULAS)
    held, oods = [], []
    for k in range(3):
        s = make_split(store, _cfg(by="chemsys", n_folds=3, fold=k))
        held.append(set(s.manifest["details"]["held_out"]))
        oods.append(set(s.indices("ood_test").tolist()))
        assert s.hash == make_split(store, _cfg(by="chemsys", n_folds=3, fold=k)).hash
    assert not (held[0] & held[1]) and not (held[1] & held[2])
    assert set().union(*oods) == set(range(len(FORMULAS)))
    assert fold_labels(np.array(["a", "b", "c"]), np.array([5, 3, 3]), 2).tolist() == [0, 1, 1]


def test_cluster_hold_out_stores_labels_and_verifies(data_root, tmp_path) -> None:
    store = crystal_store(data_root, FORMULAS * 3, seed=1)
    cfg = _cfg(by="cluster", n_clusters=3, fold=1)
    split = make_split(store, cfg)
    clusters = split.labels["cluster"]
    assert set(clusters.tolist()) == {0, 1, 2}
    assert np.bincount(clusters)[0] >= np.bincount(clusters)[1] >= np.bincount(clusters)[2]
    assert set(np.flatnonzero(clusters == 1)) == set(split.indices("ood_test"))
    # Identical compositions share a cluster.
    counts, _ = composition_counts(store)
    for row in np.unique(counts, axis=0):
        same = (counts == row).all(axis=1)
        assert len(set(clusters[same].tolist())) == 1
    split.save(tmp_path / "loco")
    again = load_split(tmp_path / "loco")
    assert np.array_equal(again.labels["cluster"], clusters)
    assert verify_split(again, store).ok
    assert make_split(store, cfg).hash == split.hash


def test_bad_composition_requests(data_root) -> None:
    store = crystal_store(data_root, FORMULAS)
    with pytest.raises(InputError, match="unknown element 'Xx'"):
        make_split(store, _cfg(by="element", labels=("Xx",)))
    with pytest.raises(InputError, match="no structure has element Au"):
        make_split(store, _cfg(by="element", labels=("Au",)))
    with pytest.raises(InputError, match="give --label or --fold"):
        make_split(store, _cfg(by="formula"))
    with pytest.raises(InputError, match="leaves no training"):
        make_split(store, _cfg(by="element", labels=("Cl", "O", "F")))
    mols = molecule_store(data_root, ["CCO", "CCN", "CCC"])
    with pytest.raises(InputError, match="holds molecules"):
        make_split(mols, _cfg(by="element", labels=("N",)))
