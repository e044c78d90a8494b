"""lp-ft: a linear probe for the first part of the steps, then full fine-tuning."""

from __future__ import annotations

from dataclasses import dataclass

from atomcollapse.models.model import AtomisticModel
from atomcollapse.training.strategies.base import Strategy


@dataclass(frozen=True)
class LPFTSettings:
    """``lp_fraction``: the share of the optimiser steps with the backbone frozen."""

    lp_fraction: float = 0.5

    def problems(self) -> list[tuple[str, str]]:
        ok = 0.0 < self.lp_fraction < 1.0
        return [] if ok else [("lp_fraction", "must be between 0 and 1")]


class LPFT(Strategy):
    name = "lp-ft"
    summary = "linear probe for lp_fraction of the steps, then full fine-tuning"
    order = 50
    Settings = LPFTSettings

    def switch_step(self, total_steps: int) -> int:
        return round(self.settings.lp_fraction * total_steps)

    def before_step(self, model: AtomisticModel, step: int, total_steps: int) -> None:
        model.backbone.requires_grad_(step >= self.switch_step(total_steps))


STRATEGY = LPFT
