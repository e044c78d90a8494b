"""Property-tail (BOOM) splits: the right tails, BOOM's draw, duplicates, bad input."""

from __future__ import annotations

import random

import numpy as np
import pytest

from atomcollapse.errors import InputError
from atomcollapse.splits import SplitConfig, make_split
from tests.splits.conftest import distinct_smiles, molecule_store

ALKANES = ["C" * k for k in range(1, 9)]


def _tailed_store(root, n_core: int = 300, seed: int = 0):
    """A bulk around 0 plus known outliers: 3 far below, 2 far above (indices 300..304)."""
    rng = np.random.default_rng(seed)
    y = np.concatenate([rng.normal(0.0, 0.3, n_core), [-9.0, -8.0, -7.5, 8.0, 9.5]])
    return molecule_store(root, distinct_smiles(len(y)), {"y": y}), y


def test_lowest_density_tails_are_ood_and_the_draw_is_boom(data_root) -> None:
    store, y = _tailed_store(data_root)
    split = make_split(
        store, SplitConfig(method="property-tail", target="y", n_ood=5, dedupe="none")
    )
    ood = split.indices("ood_test")
    assert ood.tolist() == [300, 301, 302, 303, 304]
    # BOOM's draw by hand: one random() per non-OOD structure in data order.
    random.seed(42)
    rest = [i for i in range(len(y)) if i not in set(ood)]
    id_test = [i for i in rest if random.random() < 0.05]
    left = [i for i in rest if i not in set(id_test)]
    val = [i for i in left if random.random() < 0.05]
    assert split.indices("id_test").tolist() == id_test
    assert split.indices("val").tolist() == val
    train = sorted(set(left) - set(val))
    assert split.indices("train").tolist() == train
    tails = split.manifest["details"]["tails"]
    assert tails["lower"]["count"] == 3 and tails["upper"]["count"] == 2
    assert tails["lower"]["range"] == [-9.0, -7.5] and tails["two_clean_tails"]
    assert tails["lower"]["range_report"] == [-9000.0, -7500.0]  # eV -> meV
    bw = split.manifest["details"]["bandwidth"]
    assert bw["value"] == pytest.approx(len(y) ** (-1 / 5)) and bw["unit"] == "eV"


def test_deterministic_and_seed_changes_only_the_draw(data_root) -> None:
    store, _ = _tailed_store(data_root)
    cfg = SplitConfig(method="property-tail", target="y", n_ood=5)
    a, b = make_split(store, cfg), make_split(store, cfg)
    assert a.hash == b.hash
    c = make_split(store, SplitConfig(method="property-tail", target="y", n_ood=5, seed=7))
    assert c.hash != a.hash
    assert np.array_equal(c.indices("ood_test"), a.indices("ood_test"))


def test_scipy_scaling_changes_the_bandwidth(data_root) -> None:
    store, y = _tailed_store(data_root)
    cfg = SplitConfig(method="property-tail", target="y", n_ood=5, bandwidth_scaling="scipy")
    split = make_split(store, cfg)
    bw = split.manifest["details"]["bandwidth"]
    assert bw["value"] == pytest.approx(len(y) ** (-1 / 5) * np.std(y, ddof=1))
    assert split.indices("ood_test").tolist() == [300, 301, 302, 303, 304]


def test_duplicate_molecules_stay_together_or_are_dropped(data_root) -> None:
    # Kekulé and aromatic benzene are the same molecule; so are OCC and CCO.
    smiles = ["c1ccccc1", "CCO", "C1=CC=CC=C1", "OCC"] + ALKANES * 5
    y = np.concatenate([[50.0, 0.1, 50.0, 0.1], np.linspace(-1, 1, 40)])
    store = molecule_store(data_root, smiles, {"y": y})
    group = make_split(store, SplitConfig(method="property-tail", target="y", n_ood=1))
    assert group.indices("ood_test").tolist() == [0, 2]
    assert group.codes[1] == group.codes[3]
    assert group.manifest["duplicates"]["n_duplicates"] == 2 + 5 * 8 - 8
    drop = make_split(
        store, SplitConfig(method="property-tail", target="y", n_ood=1, dedupe="drop")
    )
    assert drop.indices("ood_test").tolist() == [0]
    assert drop.counts()["excluded"] == 2 + 32
    none = make_split(
        store, SplitConfig(method="property-tail", target="y", n_ood=1, dedupe="none")
    )
    assert none.indices("ood_test").tolist() == [0]


def test_stats_per_partition_with_units(data_root) -> None:
    store, y = _tailed_store(data_root)
    split = make_split(store, SplitConfig(method="property-tail", target="y", n_ood=5))
    st = split.manifest["target_stats"]["y"]
    assert st["unit"] == "eV" and st["report_unit"] == "meV"
    assert st["ood_test"]["min"] == -9.0 and st["ood_test"]["max_report"] == 9500.0
    tr = split.indices("train")
    assert st["train"]["mean"] == pytest.approx(y[tr].mean())
    assert sum(split.manifest["counts"][p] for p in ("train", "val", "id_test", "ood_test")) == len(
        y
    )


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (SplitConfig(method="property-tail", target="nope"), "no target 'nope'"),
        (SplitConfig(method="property-tail", target="y", n_ood=305), "smaller than the dataset"),
        (SplitConfig(method="property-tail"), "needs --target"),
        (SplitConfig(method="tails", target="y"), "unknown method"),
        (SplitConfig(method="property-tail", target="y", bandwidth="wide"), "unknown bandwidth"),
        (SplitConfig(method="property-tail", target="y", id_frac=1.5), "id-frac"),
    ],
)
def test_bad_input(data_root, cfg: SplitConfig, message: str) -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=305)
    store = molecule_store(data_root, ["C"] * 305, {"y": y, "z": y})
    with pytest.raises(InputError, match=message):
        make_split(store, cfg)
