"""From store rows to :class:`~atomcollapse.data.batch.AtomsBatch`: collation and a batch loader.

Rows are gathered from the memory-mapped store with one precomputed atom-index array (no loop
over atoms or structures); the neighbour list is built per batch by
:func:`~atomcollapse.data.neighbors.radius_graph`. Batch order depends only on ``(seed, epoch)``,
so every strategy run with the same seed sees the same batches in the same order.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

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


class BatchLoader:
    """Batches of ``indices`` from ``store``, reshuffled per epoch from ``(seed, epoch)`` alone.

    With ``world_size > 1`` every global batch is split into ``world_size`` contiguous parts and
    this loader yields part ``rank``: together the ranks see exactly the single-process batches.
    """

    def __init__(
        self,
        store: Store,
        indices: Sequence[int] | np.ndarray,
        *,
        batch_size: int,
        cutoff: float,
        targets: Sequence[str] = (),
        forces: bool = False,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        dtype: torch.dtype = torch.float32,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if not 0 <= rank < world_size:
            raise ValueError("need 0 <= rank < world_size")
        self.store = store
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch_size = batch_size
        self.cutoff = cutoff
        self.targets = tuple(targets)
        self.forces = forces
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.dtype = dtype
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self, epoch: int | None = None) -> np.ndarray:
        """Store rows in the order of ``epoch`` (default: the current one)."""
        if not self.shuffle:
            return self.indices
        e = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, e])
        return self.indices[rng.permutation(self.indices.size)]

    def batch_indices(self, epoch: int | None = None) -> list[np.ndarray]:
        """Global batches of ``epoch`` as arrays of store rows."""
        order = self.order(epoch)
        n = len(self)
        return [order[k * self.batch_size : (k + 1) * self.batch_size] for k in range(n)]

    def __len__(self) -> int:
        n = self.indices.size
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def iter_epoch(self, epoch: int | None = None, start: int = 0) -> Iterator[AtomsBatch]:
        """Batches of ``epoch``, skipping the first ``start`` (to resume mid-epoch)."""
        for rows in self.batch_indices(epoch)[start:]:
            part = np.array_split(rows, self.world_size)[self.rank]
            if part.size == 0:
                part = rows[-1:]
            yield collate(
                self.store, part, self.cutoff, targets=self.targets, forces=self.forces,
                dtype=self.dtype,
            )  # fmt: skip

    def __iter__(self) -> Iterator[AtomsBatch]:
        return self.iter_epoch()


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
