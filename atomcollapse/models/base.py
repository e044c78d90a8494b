"""The contract between data, backbones, heads and the training loop.

A batch is a set of structures packed as in the store. A backbone maps it to per-atom features;
heads map features to energies/forces or to a property. Every backbone (native PaiNN, adapters
for external pretrained models) implements :class:`Backbone`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch
from torch import nn

from atomcollapse.constants import MAX_Z


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


@dataclass
class BackboneOutput:
    """Per-atom features after the last layer, after each layer, and per-edge features if any."""

    node: torch.Tensor  # (N, F) invariant features of the last layer
    layers: list[torch.Tensor]  # per layer (N, F), index 0 = after the embedding
    edge: torch.Tensor | None = None  # (E, F_e) invariant pair features, if the backbone has them
    vector: torch.Tensor | None = None  # (N, 3, F) equivariant features, if any


class Backbone(nn.Module):
    """Interface every backbone implements."""

    #: width of ``BackboneOutput.node``
    feature_dim: int
    #: radial cutoff in Angstrom used to build the batch's graph
    cutoff: float
    #: atomic numbers the backbone takes (an adapter: those of its pretrained model)
    elements: tuple[int, ...] = tuple(range(1, MAX_Z + 1))

    def forward(self, batch: AtomsBatch) -> BackboneOutput:  # pragma: no cover - interface
        raise NotImplementedError

    def parameter_blocks(self) -> list[tuple[str, list[nn.Parameter]]]:
        """Parameters in ordered blocks (``embedding``, ``layer1`` .. ``layerL``) for layer-wise LR."""
        raise NotImplementedError

    def model_args(self) -> dict:
        """Keyword arguments (plus ``"type"``) that rebuild this backbone (checkpoints carry them)."""
        raise NotImplementedError

    def reinitialize(self, seed: int) -> None:
        """Random weights from ``seed`` for the same architecture (the scratch arm): by default
        those of a fresh instance built from :meth:`model_args` under ``seed``."""
        args = dict(self.model_args())
        args.pop("type", None)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = type(self)(**args)
        self.load_state_dict(fresh.state_dict())
