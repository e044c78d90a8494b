"""Batch order: each epoch a seeded permutation of the training rows, cut into batches.

The order of an epoch is a function of ``(seed, epoch)`` only, so a stream's whole state is
``(epoch, cursor)``: cheap to save, exact to resume, and the same for every strategy that uses
the same seed. Under data parallelism every rank walks the same global order and takes its
shard ``rows[rank::world]`` of each global batch.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np

from atomcollapse.training.seeding import permutation


class BatchStream:
    """Endless batches of store rows; the last batch of an epoch may be short.

    ``order_hash`` chains sha256 over every batch drawn so far, in order, so two runs can show
    that they saw the same batches.
    """

    def __init__(self, rows: np.ndarray, batch_size: int, seed: int):
        if len(rows) == 0:
            raise ValueError("a batch stream needs at least one row")
        self.rows = np.asarray(rows, dtype=np.int64)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.epoch = 0
        self.cursor = 0
        self._order: np.ndarray | None = None
        self.order_hash = hashlib.sha256(b"").hexdigest()
        self.batches_drawn = 0

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)

    def _epoch_order(self) -> np.ndarray:
        if self._order is None:
            self._order = self.rows[permutation(self.seed, self.epoch, len(self.rows))]
        return self._order

    def next(self) -> tuple[np.ndarray, bool]:
        """The next global batch of rows, and whether it ends an epoch."""
        order = self._epoch_order()
        batch = order[self.cursor : self.cursor + self.batch_size]
        self.cursor += len(batch)
        self.order_hash = hashlib.sha256(self.order_hash.encode() + batch.tobytes()).hexdigest()
        self.batches_drawn += 1
        ended = self.cursor >= len(order)
        if ended:
            self.epoch += 1
            self.cursor = 0
            self._order = None
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
        self._order = None


def shard(rows: np.ndarray, rank: int, world: int) -> np.ndarray:
    """This rank's part of a global batch."""
    return rows[rank::world] if world > 1 else rows
