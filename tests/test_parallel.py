"""map_chunks: worker processes return what a plain call would, in order."""

from __future__ import annotations

import os

from atomcollapse.parallel import map_chunks, usable_cpus


def _square_with_pid(xs: list[int]) -> list[tuple[int, int]]:
    return [(x * x, os.getpid()) for x in xs]


def test_map_chunks_keeps_order_and_uses_workers() -> None:
    items = list(range(103))
    out = map_chunks(_square_with_pid, items, workers=2)
    assert [v for v, _ in out] == [x * x for x in items]
    assert os.getpid() not in {pid for _, pid in out}


def test_map_chunks_runs_here_when_there_is_nothing_to_share() -> None:
    for workers, items in ((1, list(range(10))), (4, list(range(7))), (2, [])):
        out = map_chunks(_square_with_pid, items, workers=workers)
        assert [v for v, _ in out] == [x * x for x in items]
        assert {pid for _, pid in out} <= {os.getpid()}


def test_usable_cpus_is_positive() -> None:
    assert usable_cpus() >= 1
