"""Batch order: each epoch a seeded permutation of the training rows, cut into batches.

A batch is either a fixed number of structures or, as DeePMD-kit's ``auto:N``, as many
structures as it takes to reach ``N`` atoms (for equal-sized structures ``ceil(N / atoms)``; at
least one structure, and the last batch of an epoch may be short). The order of an epoch is a
function of ``(seed, epoch)`` only, and the cut of it a function of the order and the atom
counts, so a stream's whole state is ``(epoch, cursor)``: cheap to save, exact to resume, and
the same for every strategy that uses the same seed. Under data parallelism every rank walks
the same global order and takes its shard ``rows[rank::world]`` of each global batch.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

import numpy as np

from atomcollapse.training.seeding import permutation

AUTO = "auto:"


@dataclass(frozen=True)
class BatchSize:
    """``atoms`` False: ``n`` structures per batch; True: structures until ``n`` atoms."""

    n: int
    atoms: bool = False

    def __str__(self) -> str:
        return f"{AUTO}{self.n}" if self.atoms else str(self.n)


def batch_size_problem(value: int | str) -> str | None:
    """Why ``value`` is not a batch size (a positive count or ``auto:N``), or None."""
    try:
        parse_batch_size(value)
    except ValueError as e:
        return str(e)
    return None


def parse_batch_size(value: int | str | BatchSize) -> BatchSize:
    """``32`` / ``"32"`` (structures) or ``"auto:512"`` (atoms); ValueError otherwise."""
    if isinstance(value, BatchSize):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a batch size")
    text = str(value).strip()
    atoms = text.startswith(AUTO)
    digits = text[len(AUTO) :] if atoms else text
    if not digits.isdigit() or int(digits) <= 0:
        raise ValueError(
            f"{value!r} is not a batch size (a positive number of structures, or auto:N with "
            f"N a positive number of atoms)"
        )
    return BatchSize(int(digits), atoms)


def cut(n_atoms: np.ndarray, size: BatchSize) -> np.ndarray:
    """Batch boundaries ``[0, b1, ..., len]`` of structures with ``n_atoms`` atoms, in order."""
    n = len(n_atoms)
    if not size.atoms:
        return np.append(np.arange(0, n, size.n), n)
    total = np.cumsum(n_atoms, dtype=np.int64)
    bounds = [0]
    start = 0
    while start < n:
        before = total[start - 1] if start else 0
        # the first structure at which the batch holds at least size.n atoms, inclusive
        end = int(np.searchsorted(total, before + size.n, side="left")) + 1
        start = min(max(end, start + 1), n)
        bounds.append(start)
    return np.asarray(bounds, dtype=np.int64)


def chunks(rows: np.ndarray, size: BatchSize, n_atoms: np.ndarray):
    """``rows`` in order, cut into batches (``n_atoms``: atoms per store row)."""
    rows = np.asarray(rows)
    bounds = cut(np.asarray(n_atoms)[rows], size) if len(rows) else np.zeros(1, dtype=np.int64)
    for a, b in itertools.pairwise(bounds):
        yield rows[a:b]


class BatchStream:
    """Endless batches of store rows; the last batch of an epoch may be short.

    ``n_atoms`` (atoms per store row) is needed for ``auto:N`` batches. ``order_hash`` chains
    sha256 over every batch drawn so far, in order, so two runs can show that they saw the same
    batches.
    """

    def __init__(
        self,
        rows: np.ndarray,
        batch_size: int | str | BatchSize,
        seed: int,
        n_atoms: np.ndarray | None = None,
    ):
        if len(rows) == 0:
            raise ValueError("a batch stream needs at least one row")
        self.rows = np.asarray(rows, dtype=np.int64)
        self.size = parse_batch_size(batch_size)
        if self.size.atoms and n_atoms is None:
            raise ValueError("auto:N batches need the atom counts")
        self._atoms = None if n_atoms is None else np.asarray(n_atoms)
        self.seed = int(seed)
        self.epoch = 0
        self.cursor = 0
        self._order: np.ndarray | None = None
        self._bounds: np.ndarray | None = None
        self.order_hash = hashlib.sha256(b"").hexdigest()
        self.batches_drawn = 0

    @property
    def batch_size(self) -> str:
        return str(self.size)

    def _cut(self, order: np.ndarray) -> np.ndarray:
        atoms = self._atoms[order] if self._atoms is not None else np.ones(len(order), np.int64)
        return cut(atoms, self.size)

    def batches_in_epoch(self, epoch: int) -> int:
        order = self.rows[permutation(self.seed, epoch, len(self.rows))]
        return len(self._cut(order)) - 1

    def batches_in_epochs(self, n_epochs: int) -> int:
        """Batches in the first ``n_epochs`` epochs (their cuts differ under ``auto:N``)."""
        if not self.size.atoms:
            return n_epochs * -(-len(self.rows) // self.size.n)
        return sum(self.batches_in_epoch(e) for e in range(n_epochs))

    def _epoch(self) -> tuple[np.ndarray, np.ndarray]:
        if self._order is None or self._bounds is None:
            self._order = self.rows[permutation(self.seed, self.epoch, len(self.rows))]
            self._bounds = self._cut(self._order)
        return self._order, self._bounds

    def next(self) -> tuple[np.ndarray, bool]:
        """The next global batch of rows, and whether it ends an epoch."""
        order, bounds = self._epoch()
        end = int(bounds[np.searchsorted(bounds, self.cursor, side="right")])
        batch = order[self.cursor : end]
        self.cursor = end
        self.order_hash = hashlib.sha256(self.order_hash.encode() + batch.tobytes()).hexdigest()
        self.batches_drawn += 1
        ended = self.cursor >= len(order)
        if ended:
            self.epoch += 1
            self.cursor = 0
            self._order = self._bounds = None
        return batch, ended

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "cursor": self.cursor,
            "batches_drawn": self.batches_drawn,
            "order_hash": self.order_hash,
        }

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])
        self.batches_drawn = int(state["batches_drawn"])
        self.order_hash = str(state["order_hash"])
        self._order = self._bounds = None


def shard(rows: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This rank's part of a global batch."""
    return rows[rank::world] if world > 1 else rows
