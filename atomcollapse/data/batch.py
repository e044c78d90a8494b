"""The unit of data every backbone, head and loop consumes: structures of one batch, concatenated.

Made by :func:`atomcollapse.data.batching.collate` (from a store) and
:func:`atomcollapse.data.batching.batch_of` (from in-memory structures); models import it from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch


@dataclass
class AtomsBatch:
    """Structures of one batch, concatenated.

    ``edge_index`` / ``shifts`` come from :func:`atomcollapse.data.neighbors.radius_graph`; the edge
    vector of edge ``e = (i, j)`` is ``positions[j] - positions[i] + shifts[e]``, computed inside the
    backbone so that forces (-dE/dR) flow through it. Units: Angstrom.
    """

    numbers: torch.Tensor  # (N,) int64 atomic numbers
    positions: torch.Tensor  # (N, 3) float
    batch: torch.Tensor  # (N,) int64 structure index of each atom
    offsets: torch.Tensor  # (B + 1,) int64
    edge_index: torch.Tensor  # (2, E) int64
    shifts: torch.Tensor  # (E, 3) float
    cell: torch.Tensor | None = None  # (B, 3, 3)
    pbc: torch.Tensor | None = None  # (B, 3) bool
    index: torch.Tensor | None = None  # (B,) int64 row of each structure in its store
    # e.g. "gap" (B,), "energy" (B,), "forces" (N, 3)
    labels: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def n_structures(self) -> int:
        return int(self.offsets.numel() - 1)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> AtomsBatch:
        def mv(t: torch.Tensor) -> torch.Tensor:
            if dtype is not None and t.is_floating_point():
                return t.to(device=device, dtype=dtype, non_blocking=True)
            return t.to(device=device, non_blocking=True)

        def mv_opt(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else mv(t)

        return replace(
            self,
            numbers=mv(self.numbers), positions=mv(self.positions), batch=mv(self.batch),
            offsets=mv(self.offsets), edge_index=mv(self.edge_index), shifts=mv(self.shifts),
            cell=mv_opt(self.cell), pbc=mv_opt(self.pbc), index=mv_opt(self.index),
            labels={k: mv(v) for k, v in self.labels.items()},
        )  # fmt: skip
