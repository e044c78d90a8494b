"""Scaffold splits on hand-built molecules whose scaffold groups are known."""

from __future__ import annotations

import numpy as np
import pytest

from atomcollapse.errors import InputError
from atomcollapse.splits import SplitConfig, make_split
from atomcollapse.splits.scaffold import assign_groups, murcko_scaffolds
from tests.splits.conftest import crystal_store, molecule_store

BENZENES = ["Cc1ccccc1", "CCc1ccccc1", "Oc1ccccc1", "Nc1ccccc1", "Fc1ccccc1", "CC(C)c1ccccc1"]
ACYCLIC = ["CCO", "CCN", "CCCC", "CC(C)O"]
CYCLOHEXANES = ["CC1CCCCC1", "OC1CCCCC1", "NC1CCCCC1"]
PYRIDINES = ["Cc1ccncc1", "Oc1ccncc1"]
NAPHTHALENES = ["Cc1ccc2ccccc2c1"]
# Interleaved so that group order is not data order.
SMILES = [
    *BENZENES[:3], *ACYCLIC[:2], CYCLOHEXANES[0], PYRIDINES[0], NAPHTHALENES[0],
    *BENZENES[3:], *ACYCLIC[2:], *CYCLOHEXANES[1:], PYRIDINES[1],
]  # fmt: skip


def _groups(split, smiles) -> dict[str, set[str]]:
    scaf, _ = murcko_scaffolds(np.asarray(smiles))
    out: dict[str, set[str]] = {}
    for p in ("train", "val", "id_test", "ood_test"):
        out[p] = {str(scaf[i]) for i in split.indices(p)}
    return out


def test_murcko_scaffolds_known_values() -> None:
    scaf, bad = murcko_scaffolds(np.asarray(["Cc1ccccc1", "CCO", "C[C@H](N)C1CC[C@H](C)CC1", "x("]))
    assert scaf[:2].tolist() == ["c1ccccc1", ""]
    assert "@" not in scaf[2] and scaf[2] == "C1CCCCC1"
    assert scaf[3] == "?x(" and bad == 1
    gen, _ = murcko_scaffolds(np.asarray(["Cc1ccncc1", "OC1CCCCC1", "Cc1ccccc1"]), generic=True)
    assert len(set(gen.tolist())) == 1


def test_worker_processes_give_the_same_scaffolds(monkeypatch) -> None:
    smiles = np.asarray([*SMILES, "x(", SMILES[0], "C1CC1C(=O)N"])
    serial, bad_serial = murcko_scaffolds(smiles, generic=True, workers=1)
    parallel, bad_parallel = murcko_scaffolds(smiles, generic=True, workers=2)
    assert parallel.tolist() == serial.tolist() and bad_parallel == bad_serial == 1
    # Above the threshold the default uses every usable core; the answer stays the same.
    monkeypatch.setattr("atomcollapse.splits.scaffold.PARALLEL_MIN", 2)
    monkeypatch.setattr("atomcollapse.splits.scaffold.usable_cpus", lambda: 2)
    assert murcko_scaffolds(smiles, generic=True)[0].tolist() == serial.tolist()


@pytest.mark.parametrize(
    ("ordering", "n_ood", "expected"),
    [
        # largest-first, cap 13: benzene 6, acyclic 4, cyclohexane 3 fill the pool.
        ("largest-first", 3, PYRIDINES + NAPHTHALENES),
        # cap 12: cyclohexane (3) overflows, pyridine (2) still fits, naphthalene does not.
        ("largest-first", 4, CYCLOHEXANES + NAPHTHALENES),
        # smallest first while they fit in 4: naphthalene (1), pyridine (2); cyclohexane no.
        ("smallest-to-test", 4, PYRIDINES + NAPHTHALENES),
    ],
)
def test_orderings_pick_the_expected_groups(data_root, ordering, n_ood, expected) -> None:
    store = molecule_store(data_root, SMILES)
    split = make_split(store, SplitConfig(method="scaffold", ordering=ordering, n_ood=n_ood))
    ood = {SMILES[i] for i in split.indices("ood_test")}
    assert ood == set(expected)
    g = _groups(split, SMILES)
    pool = g["train"] | g["val"] | g["id_test"]
    assert not pool & g["ood_test"]


def test_balanced_is_seeded_and_never_straddles(data_root) -> None:
    store = molecule_store(data_root, SMILES)
    seen = set()
    for seed in range(6):
        cfg = SplitConfig(method="scaffold", ordering="balanced", n_ood=4, seed=seed)
        a, b = make_split(store, cfg), make_split(store, cfg)
        assert a.hash == b.hash
        g = _groups(a, SMILES)
        assert not (g["train"] | g["val"] | g["id_test"]) & g["ood_test"]
        seen.add(frozenset(a.indices("ood_test").tolist()))
    assert len(seen) > 1


def test_group_counts_and_acyclic_share(data_root) -> None:
    store = molecule_store(data_root, SMILES)
    split = make_split(store, SplitConfig(method="scaffold", n_ood=3, id_frac=0.0, val_frac=0.0))
    g = split.manifest["groups"]
    assert g["kind"] == "scaffold" and g["n_total"] == 5
    assert g["ood_test"]["n_groups"] == 2 and g["train"]["n_groups"] == 3
    assert g["train"]["acyclic_share"] == pytest.approx(4 / 13)
    assert g["ood_test"]["acyclic_share"] == 0.0
    assert g["shared_by_pool_and_ood_test"] == 0


def test_generic_scaffolds_merge_rings(data_root) -> None:
    store = molecule_store(data_root, SMILES)
    split = make_split(store, SplitConfig(method="scaffold", generic=True, n_ood=1))
    # Generic groups: six-membered ring (11), acyclic (4), naphthalene skeleton (1).
    assert split.manifest["groups"]["n_total"] == 3
    assert [SMILES[i] for i in split.indices("ood_test")] == NAPHTHALENES


def test_assign_groups_follows_deepchem_rule() -> None:
    sizes = np.array([5, 1, 3, 2])
    first = np.arange(4)
    assert assign_groups(sizes, first, 3, "largest-first", 0).tolist() == [False, True, False, True]


def test_scaffold_refuses_data_without_smiles_or_molecules(data_root) -> None:
    store = molecule_store(data_root, SMILES, with_smiles=False)
    with pytest.raises(InputError, match="needs a 'smiles' column"):
        make_split(store, SplitConfig(method="scaffold", n_ood=3))
    xtals = crystal_store(data_root, [{"Na": 1, "Cl": 1}] * 4)
    with pytest.raises(InputError, match="for molecules"):
        make_split(xtals, SplitConfig(method="scaffold", n_ood=1))
