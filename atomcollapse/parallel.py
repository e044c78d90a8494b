"""CPU parallelism shared by the layers: how many cores this process may use, and a map over
chunks of a list in worker processes."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def usable_cpus() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def map_chunks(
    fn: Callable[[list[T]], list[R]], items: Sequence[T], *, workers: int, per_worker: int = 4
) -> list[R]:
    """``fn`` over contiguous chunks of ``items`` in ``workers`` processes; results in order.

    ``fn`` must be a module-level function that maps a chunk to one result per item and touches
    no thread pool (torch, BLAS): the workers are forked (Linux only), which needs no
    ``if __name__ == "__main__"`` guard in the caller's script and starts in milliseconds, and a
    forked child must not use threads its parent held. Elsewhere, with one worker, or with fewer
    items than two per worker, it runs here.
    """
    items = list(items)
    if workers <= 1 or len(items) < 2 * workers or not sys.platform.startswith("linux"):
        return fn(items)
    n_chunks = min(len(items), workers * per_worker)
    bounds = [len(items) * i // n_chunks for i in range(n_chunks + 1)]
    chunks = [items[a:b] for a, b in itertools.pairwise(bounds)]
    with mp.get_context("fork").Pool(workers) as pool:
        parts = pool.map(fn, chunks, chunksize=1)
    return [r for part in parts for r in part]
