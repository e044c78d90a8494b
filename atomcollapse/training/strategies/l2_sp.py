"""l2-sp: fine-tuning plus ``alpha * ||theta - theta_pretrained||^2`` over the backbone."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from atomcollapse.models.model import AtomisticModel
from atomcollapse.training.strategies.base import Strategy


@dataclass(frozen=True)
class L2SPSettings:
    """``alpha``: weight of the squared distance from the pretrained backbone weights."""

    alpha: float = 0.01

    def problems(self) -> list[tuple[str, str]]:
        return [] if self.alpha >= 0 else [("alpha", "must not be negative")]


class L2SP(Strategy):
    name = "l2-sp"
    summary = "fine-tuning, penalising the distance from the pretrained weights (alpha)"
    order = 60
    Settings = L2SPSettings

    def __init__(self, settings=None, task_seed: int = 0):
        super().__init__(settings, task_seed)
        self.reference: list[torch.Tensor] = []

    def prepare(self, model: AtomisticModel) -> None:
        self.reference = [p.detach().clone() for p in model.backbone.parameters()]

    def penalty(self, model: AtomisticModel) -> torch.Tensor | None:
        if self.settings.alpha == 0:
            return None
        pairs = zip(model.backbone.parameters(), self.reference, strict=True)
        return self.settings.alpha * torch.stack([((p - r) ** 2).sum() for p, r in pairs]).sum()


STRATEGY = L2SP
