"""The contract between backbones, heads and the training loop.

A batch (:class:`~atomcollapse.data.batch.AtomsBatch`) is a set of structures packed as in the store. A backbone maps it to per-atom features;
heads map features to energies/forces or to a property. Every backbone (native PaiNN, adapters
for external pretrained models) implements :class:`Backbone`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from atomcollapse.constants import MAX_Z
from atomcollapse.data.batch import AtomsBatch


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
