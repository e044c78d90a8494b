"""Store rows -> AtomsBatch: gathered rows, labels, graph (batch order: tests/training)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from atomcollapse.data.batching import collate, packed_numbers
from atomcollapse.data.neighbors import radius_graph
from atomcollapse.data.schema import pack
from atomcollapse.data.store import open_store, write_store
from atomcollapse.errors import InputError


@pytest.fixture
def ff_store(tmp_path):
    """Three molecules and one periodic crystal, with energies and forces."""
    rng = np.random.default_rng(1)
    numbers = [np.array([6, 1, 1]), np.array([8, 1]), np.array([7, 1, 1, 1]), np.array([14, 8])]
    positions = [rng.normal(scale=1.2, size=(len(z), 3)) for z in numbers]
    cells = [np.zeros((3, 3))] * 3 + [np.eye(3) * 3.1]
    pbcs = [np.zeros(3, bool)] * 3 + [np.ones(3, bool)]
    s = pack(numbers, positions, ids=["a", "b", "c", "d"], cells=cells, pbcs=pbcs)
    s.targets["energy"] = rng.normal(size=4)
    s.target_units["energy"] = "eV"
    s.atom_arrays["forces"] = rng.normal(size=(s.n_atoms, 3))
    s.array_units["forces"] = "eV/A"
    path = write_store(s, tmp_path / "ff", name="ff", kind="forcefield", source={"format": "test"})
    return open_store(path)


def test_collate_gathers_rows_labels_and_graph(ff_store):
    batch = collate(ff_store, [3, 0, 2], cutoff=3.0, targets=("energy",), forces=True)
    offs = np.asarray(ff_store.offsets)
    rows = np.concatenate([np.arange(offs[i], offs[i + 1]) for i in (3, 0, 2)])
    assert batch.offsets.tolist() == [0, 2, 5, 9]
    assert batch.batch.tolist() == [0, 0, 1, 1, 1, 2, 2, 2, 2]
    np.testing.assert_array_equal(batch.numbers.numpy(), np.asarray(ff_store.numbers)[rows])
    np.testing.assert_allclose(
        batch.positions.numpy(), np.asarray(ff_store.positions)[rows], rtol=1e-6
    )
    assert batch.positions.dtype == torch.float32 and batch.numbers.dtype == torch.int64
    np.testing.assert_allclose(
        batch.labels["energy"].numpy(), np.asarray(ff_store.target("energy"))[[3, 0, 2]], rtol=1e-6
    )
    np.testing.assert_allclose(
        batch.labels["forces"].numpy(), np.asarray(ff_store.atom_array("forces"))[rows], rtol=1e-6
    )
    assert batch.index.tolist() == [3, 0, 2]
    assert batch.pbc.tolist() == [[True] * 3, [False] * 3, [False] * 3]
    ei, sh = radius_graph(batch.positions, batch.offsets, 3.0, batch.cell, batch.pbc)
    assert torch.equal(batch.edge_index, ei) and torch.equal(batch.shifts, sh)
    # the crystal's atoms see their periodic images
    assert (batch.shifts[batch.edge_index[0] < 2].abs().sum(dim=1) > 0).any()


def test_collate_molecules_only_has_no_cell(ff_store):
    batch = collate(ff_store, [1, 2], cutoff=50.0, dtype=torch.float64)
    assert batch.cell is None and batch.pbc is None and batch.labels == {}
    assert batch.positions.dtype == torch.float64
    assert batch.edge_index.shape[1] == 2 * 1 + 4 * 3  # every pair, both directions


def test_collate_bad_input(ff_store, tiny_store):
    with pytest.raises(InputError, match="no target 'gap'"):
        collate(ff_store, [0], 3.0, targets=("gap",))
    with pytest.raises(InputError, match="no per-atom array 'forces'"):
        collate(tiny_store, [0], 3.0, forces=True)
    with pytest.raises(InputError, match="out of range"):
        collate(ff_store, [4], 3.0)


def test_packed_numbers(ff_store):
    numbers, offsets = packed_numbers(ff_store, [1, 3])
    assert numbers.tolist() == [8, 1, 14, 8] and offsets.tolist() == [0, 2, 4]
