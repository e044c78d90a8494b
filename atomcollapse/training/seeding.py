"""Seeds: one per purpose, so that model initialisation, data order and task draws are independent.

Changing the strategy changes how many random numbers model construction consumes; deriving
every stream from its own seed keeps data order, MFT task draws and the new head's weights the
same across strategies.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch

_PURPOSES = {"init": 1, "head": 2, "data": 3, "task": 4, "aux_data": 5, "subset": 6, "split": 7}


def derive(seed: int, purpose: str) -> int:
    """A 63-bit seed for ``purpose``, derived from ``seed`` (stable across versions)."""
    state = np.random.SeedSequence([int(seed), _PURPOSES[purpose]]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1]))


@dataclass(frozen=True)
class Seeds:
    """Seeds of a run: backbone init, new head, data order, MFT task draws, aux data order."""

    seed: int
    init: int
    head: int
    data: int
    task: int
    aux_data: int
    subset: int
    split: int

    @classmethod
    def from_seed(
        cls, seed: int, init_seed: int | None = None, data_seed: int | None = None
    ) -> Seeds:
        """Everything from ``seed``; ``init_seed`` / ``data_seed`` override their streams' roots."""
        i = seed if init_seed is None else init_seed
        d = seed if data_seed is None else data_seed
        return cls(
            seed=seed,
            init=derive(i, "init"),
            head=derive(i, "head"),
            data=derive(d, "data"),
            task=derive(d, "task"),
            aux_data=derive(d, "aux_data"),
            subset=derive(d, "subset"),
            split=derive(d, "split"),
        )

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block (e.g. building a module) under a fixed torch seed, restoring the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed % (2**63))
        yield


def make_deterministic(threads: int | None = None) -> None:
    """Deterministic kernels where torch has them (CPU results are then bit-for-bit repeatable)."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads:
        torch.set_num_threads(threads)


def uniform(seed: int, counter: int) -> float:
    """A uniform draw in [0, 1) that depends only on ``(seed, counter)`` (resumable by counter)."""
    return float(np.random.default_rng([seed, counter]).random())


def permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of epoch ``epoch``: a function of ``(seed, epoch)`` alone."""
    return np.random.default_rng([seed, epoch]).permutation(n)
