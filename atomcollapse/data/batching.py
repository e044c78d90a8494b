"""From store rows to :class:`~atomcollapse.data.batch.AtomsBatch`: collation.

Rows are gathered from the memory-mapped store with one precomputed atom-index array (no loop
over atoms or structures); the neighbour list is built per batch by
:func:`~atomcollapse.data.neighbors.radius_graph`. Which rows make a batch, and in what order,
is the training layer's business (:class:`atomcollapse.training.streams.BatchStream`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from atomcollapse.data.batch import AtomsBatch
from atomcollapse.data.neighbors import radius_graph
from atomcollapse.data.store import Store
from atomcollapse.errors import InputError


def atom_rows(store: Store, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the per-atom arrays for ``indices`` (concatenated) and the batch's offsets (B+1,)."""
    idx = np.asarray(indices, dtype=np.int64)
    all_offsets = store.offsets
    starts = np.asarray(all_offsets[idx], dtype=np.int64)
    counts = np.asarray(all_offsets[idx + 1], dtype=np.int64) - starts
    offsets = np.zeros(idx.size + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    rows = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1], dtype=np.int64)
    return rows, offsets


def packed_numbers(
    store: Store, indices: Sequence[int] | np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Atomic numbers and offsets of the selected structures (e.g. to fit atom references)."""
    rows, offsets = atom_rows(store, np.asarray(indices, dtype=np.int64))
    return np.asarray(store.numbers[rows], dtype=np.int64), offsets


def collate(
    store: Store,
    indices: Sequence[int] | np.ndarray,
    cutoff: float,
    *,
    targets: Sequence[str] = (),
    forces: bool = False,
    dtype: torch.dtype = torch.float32,
) -> AtomsBatch:
    """Structures ``indices`` of ``store`` as one batch with its radius graph (Angstrom).

    ``labels`` holds each of ``targets`` (B,) in its stored unit and, with ``forces``, the
    store's per-atom ``forces`` (N, 3).
    """
    idx = np.asarray(indices, dtype=np.int64)
    if idx.ndim != 1 or idx.size == 0:
        raise ValueError("indices must be a non-empty 1-D sequence")
    if idx.min() < 0 or idx.max() >= len(store):
        raise InputError(f"structure index out of range (store has {len(store)})", file=store.path)
    rows, offsets = atom_rows(store, idx)
    numbers = torch.from_numpy(np.asarray(store.numbers[rows], dtype=np.int64))
    positions = torch.from_numpy(np.asarray(store.positions[rows])).to(dtype)
    offsets_t = torch.from_numpy(offsets)
    pbc_np = np.asarray(store.pbc[idx], dtype=bool)
    cell = pbc = None
    if pbc_np.any():
        cell = torch.from_numpy(np.asarray(store.cell[idx])).to(dtype)
        pbc = torch.from_numpy(pbc_np)
    edge_index, shifts = radius_graph(positions, offsets_t, cutoff, cell, pbc)
    counts = offsets_t[1:] - offsets_t[:-1]
    labels = {
        name: torch.from_numpy(np.asarray(store.target(name)[idx], dtype=np.float64)).to(dtype)
        for name in targets
    }
    if forces:
        labels["forces"] = torch.from_numpy(np.asarray(store.atom_array("forces")[rows])).to(dtype)
    return AtomsBatch(
        numbers=numbers,
        positions=positions,
        batch=torch.repeat_interleave(torch.arange(idx.size), counts),
        offsets=offsets_t,
        edge_index=edge_index,
        shifts=shifts,
        cell=cell,
        pbc=pbc,
        index=torch.from_numpy(idx.copy()),
        labels=labels,
    )


def batch_of(
    numbers: Sequence[np.ndarray],
    positions: Sequence[np.ndarray],
    cutoff: float,
    *,
    cells: Sequence[np.ndarray | None] | None = None,
    pbcs: Sequence[np.ndarray | None] | None = None,
    dtype: torch.dtype = torch.float32,
) -> AtomsBatch:
    """In-memory structures (e.g. ASE ``Atoms``: numbers, positions in Angstrom, cell, pbc) as
    one batch with its radius graph, as :func:`collate` makes from a store."""
    n = len(numbers)
    counts = torch.tensor([len(z) for z in numbers], dtype=torch.long)
    offsets = torch.zeros(n + 1, dtype=torch.long)
    offsets[1:] = torch.cumsum(counts, 0)
    z = torch.from_numpy(np.concatenate([np.asarray(x, dtype=np.int64) for x in numbers]))
    pos = torch.from_numpy(np.concatenate([np.asarray(p, dtype=np.float64) for p in positions]))
    pos = pos.reshape(-1, 3).to(dtype)
    pbc_np = np.zeros((n, 3), bool)
    cell_np = np.zeros((n, 3, 3))
    for k in range(n):
        if pbcs is not None and pbcs[k] is not None:
            pbc_np[k] = np.asarray(pbcs[k], dtype=bool)
        if cells is not None and cells[k] is not None:
            cell_np[k] = np.asarray(cells[k], dtype=np.float64).reshape(3, 3)
    cell = pbc = None
    if pbc_np.any():
        cell, pbc = torch.from_numpy(cell_np).to(dtype), torch.from_numpy(pbc_np)
    edge_index, shifts = radius_graph(pos, offsets, cutoff, cell, pbc)
    return AtomsBatch(
        numbers=z, positions=pos, batch=torch.repeat_interleave(torch.arange(n), counts),
        offsets=offsets, edge_index=edge_index, shifts=shifts, cell=cell, pbc=pbc,
    )  # fmt: skip
