"""The real QM9 from the qm9pack package: counts, units and a few published values."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from atomcollapse.cli import main
from atomcollapse.constants import QM9_BENCHMARK_TARGETS, QM9_N_CONSISTENT, QM9_TARGETS
from atomcollapse.data.store import open_store

pytestmark = [
    pytest.mark.qm9pack,
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("qm9pack") is None, reason="qm9pack not installed"),
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("qm9pack")
    assert main(["--data-root", str(root), "ingest", "qm9"]) == 0
    return open_store("qm9", root)


def test_counts_and_units(store):
    m = store.manifest
    assert len(store) == QM9_N_CONSISTENT == 130_831
    assert m["source"]["format"] == "qm9pack-csv"
    assert m["source"]["n_read"] == QM9_N_CONSISTENT
    assert [f["name"] for f in m["source"]["files"]] == [f"qm9_part{i}.csv" for i in (1, 2, 3)]
    assert m["elements"] == ["H", "C", "N", "O", "F"]
    assert m["atoms_per_structure"]["min"] == 3 and m["atoms_per_structure"]["max"] == 29
    for t in QM9_BENCHMARK_TARGETS:
        assert store.target_unit(t) == QM9_TARGETS[t].unit
        assert m["targets"][t]["report_unit"] == QM9_TARGETS[t].report_unit
    ids = np.asarray(store.ids)
    assert ids[0] == "dsgdb9nsd_000001" and ids[-1] == "dsgdb9nsd_133885"
    assert (ids[1:] > ids[:-1]).all()


def test_published_values(store):
    methane = store.structure(0)
    assert methane.id == "dsgdb9nsd_000001"
    assert methane.numbers.tolist() == [6, 1, 1, 1, 1]
    np.testing.assert_allclose(methane.positions[0], [-0.0126981359, 1.0858041578, 0.0080009958])
    expected = {"gap": 0.5048, "homo": -0.3877, "lumo": 0.1171, "mu": 0.0, "alpha": 13.21,
                "r2": 35.3641, "zpve": 0.044749, "cv": 6.469, "u0": -40.47893}  # fmt: skip
    for t, v in expected.items():
        assert store.target(t)[0] == pytest.approx(v), t
    water = 2  # dsgdb9nsd_000003
    assert store.ids[water] == "dsgdb9nsd_000003"
    assert store.target("mu")[water] == pytest.approx(1.8511)
    assert store.column("smiles")[:6].tolist() == ["C", "N", "O", "C#C", "C#N", "C=O"]
    assert store.column("inchi")[0] == "InChI=1S/CH4/h1H4"
    gap = np.asarray(store.target("gap"))
    assert gap.min() > 0.02 and gap.max() < 0.7  # Hartree, not eV
