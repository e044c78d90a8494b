"""A backbone plus named heads: the model every strategy trains."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from atomcollapse.data.batch import AtomsBatch
from atomcollapse.models.base import Backbone


class AtomisticModel(nn.Module):
    """``backbone`` shared by ``heads`` (e.g. ``{"property": PropertyHead, "energy": EnergyHead}``).

    ``forward(batch, tasks, compute_forces)`` returns ``{task: (B,) prediction, "features":
    BackboneOutput}`` and, with ``compute_forces``, ``"forces"`` (N, 3) = -dE/dR of the
    ``"energy"`` head (eV/A for an energy in eV). The force graph is kept (``create_graph``) in
    training mode so that a force loss trains the weights.
    """

    def __init__(self, backbone: Backbone, heads: dict[str, nn.Module]) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleDict(heads)

    def forward(
        self,
        batch: AtomsBatch,
        tasks: Sequence[str] = ("property",),
        compute_forces: bool = False,
    ) -> dict:
        tasks = (tasks,) if isinstance(tasks, str) else tuple(tasks)
        if compute_forces and "energy" not in tasks:
            tasks = (*tasks, "energy")
        for task in tasks:
            if task not in self.heads:
                raise KeyError(f"model has no head {task!r}; it has: {', '.join(self.heads)}")
        with torch.enable_grad() if compute_forces else contextlib.nullcontext():
            positions = batch.positions
            if compute_forces:
                positions = positions.detach().requires_grad_(True)
                batch = replace(batch, positions=positions)
            features = self.backbone(batch)
            out: dict = {"features": features}
            for task in tasks:
                out[task] = self.heads[task](features, batch)
            if compute_forces:
                (grad,) = torch.autograd.grad(
                    out["energy"].sum(), positions, create_graph=self.training
                )
                out["forces"] = -grad
                if not self.training:
                    out["energy"] = out["energy"].detach()
        return out

    def head_args(self) -> dict[str, dict]:
        return {name: head.head_args() for name, head in self.heads.items()}  # type: ignore[operator]
