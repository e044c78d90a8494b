"""The committed QM9 splits under ``splits/qm9`` are what the code makes from QM9 today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from atomcollapse.constants import QM9_BENCHMARK_TARGETS
from atomcollapse.data.store import Store, store_path, write_store
from atomcollapse.splits import load_split, make_split
from atomcollapse.splits.verify import config_from_manifest, verify_split

pytestmark = [
    pytest.mark.qm9pack,
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("qm9pack") is None, reason="qm9pack not installed"),
]

CANONICAL = Path(__file__).resolve().parents[2] / "splits" / "qm9"
NAMES = [f"property-tail-{t}" for t in QM9_BENCHMARK_TARGETS] + ["scaffold"]


@pytest.fixture(scope="module")
def qm9(tmp_path_factory) -> Store:
    """The local QM9 store if it is the one the splits were made for, else a fresh ingest."""
    wanted = {load_split(CANONICAL / n).dataset_hash for n in NAMES}
    assert len(wanted) == 1, "canonical splits were made for different QM9 stores"
    local = store_path("qm9")
    if (local / "manifest.json").is_file() and Store(local).content_hash in wanted:
        return Store(local)
    from atomcollapse.data.sources.qm9 import load_qm9

    ing = load_qm9(None)
    root = tmp_path_factory.mktemp("qm9")
    path = write_store(ing.structures, root / "qm9", name="qm9", kind=ing.kind, source=ing.source,
                       target_info=ing.target_info, extra=ing.extra)  # fmt: skip
    store = Store(path)
    assert store.content_hash in wanted, (
        f"QM9 ingests to content hash {store.content_hash[:12]}, but splits/qm9 was made for "
        f"{next(iter(wanted))[:12]}: regenerate splits/qm9 (see splits/README.md)"
    )
    return store


def test_canonical_set_is_complete_and_small() -> None:
    for name in NAMES:
        files = list((CANONICAL / name).iterdir())
        assert {f.name for f in files} == {"manifest.json", "partition.npz"}
        assert sum(f.stat().st_size for f in files) < 300_000


@pytest.mark.parametrize("name", NAMES)
def test_regenerating_gives_identical_indices(qm9: Store, name: str) -> None:
    split = load_split(CANONICAL / name)
    split.check_dataset(qm9)
    again = make_split(qm9, config_from_manifest(split.manifest))
    assert np.array_equal(again.codes, split.codes)
    assert again.hash == split.manifest["split_hash"]


def test_gap_split_is_two_tails_and_verifies(qm9: Store) -> None:
    split = load_split(CANONICAL / "property-tail-gap")
    tails = split.manifest["details"]["tails"]
    assert tails["two_clean_tails"] and tails["lower"]["count"] > 0 and tails["upper"]["count"] > 0
    assert split.counts()["ood_test"] >= 10_000
    report = verify_split(split, qm9)
    assert report.ok, report.problems
    assert report.ks["gap"]["ood_test"] > 0.5 > 0.05 > report.ks["gap"]["id_test"]


def test_scaffold_split_never_straddles(qm9: Store) -> None:
    split = load_split(CANONICAL / "scaffold")
    assert split.manifest["groups"]["shared_by_pool_and_ood_test"] == 0
    report = verify_split(split, qm9, targets=["gap"])
    assert report.ok, report.problems
