"""Adaptation strategies as small objects over one training loop.

A strategy decides which parameters train and at which learning-rate multiplier, which task(s)
each optimiser step trains (``"property"``, ``"ff"`` = energy + forces), and any extra loss.
The model is an :class:`~atomcollapse.models.model.AtomisticModel` with ``.backbone`` and
``.heads`` (``"property"``, and ``"energy"`` where the strategy uses the force-field head).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from atomcollapse.models.model import AtomisticModel
from atomcollapse.training.config import StrategyConfig
from atomcollapse.training.seeding import uniform

Task = tuple[str, float]  # (task name, loss weight)


def layer_multipliers(n_layers: int, anchors: tuple[float, ...]) -> list[float]:
    """``anchors`` (first to last block) linearly interpolated to ``n_layers`` layers."""
    if len(anchors) == n_layers:
        return [float(a) for a in anchors]
    if n_layers == 1:
        return [float(anchors[-1])]
    x = np.linspace(0.0, 1.0, n_layers)
    xp = np.linspace(0.0, 1.0, len(anchors))
    return [float(v) for v in np.interp(x, xp, anchors)]


def _params(module: nn.Module) -> list[nn.Parameter]:
    return list(module.parameters())


@dataclass
class Strategy:
    """Base: every parameter of the backbone and of the used heads at multiplier 1."""

    cfg: StrategyConfig
    name: str = "finetune"
    needs_pretrained: bool = True
    needs_ff: bool = False
    heads: tuple[str, ...] = ("property",)
    primary: str = "property"

    def param_groups(self, model: AtomisticModel, lr: float) -> list[dict]:
        groups = [{"name": "backbone", "params": _params(model.backbone), "base_lr": lr}]
        for h in self.heads:
            groups.append({"name": f"head:{h}", "params": _params(model.heads[h]), "base_lr": lr})
        return groups

    def prepare(self, model: AtomisticModel) -> None:
        """Called once on the freshly built (pretrained) model, before any resume state loads."""

    def before_step(self, model: AtomisticModel, step: int, total_steps: int) -> None:
        """Called before every optimiser step (phase changes)."""

    def tasks(self, step: int) -> list[Task]:
        return [(self.primary, 1.0)]

    def penalty(self, model: AtomisticModel) -> torch.Tensor | None:
        return None

    def describe(self) -> dict:
        """What the run manifest records about this strategy."""
        return {"name": self.name}


class Scratch(Strategy):
    def __init__(self, cfg: StrategyConfig):
        super().__init__(cfg, name="scratch", needs_pretrained=False)

    def describe(self) -> dict:
        return {"name": self.name, "backbone_init": "random"}


class Finetune(Strategy):
    def __init__(self, cfg: StrategyConfig):
        super().__init__(cfg, name="finetune")

    def describe(self) -> dict:
        return {"name": self.name, "backbone_init": "pretrained"}


class FinetuneLLRD(Strategy):
    """Layer-wise learning rates: embedding, then each layer, then heads (JMP's recipe)."""

    def __init__(self, cfg: StrategyConfig):
        super().__init__(cfg, name="finetune-llrd")

    def multipliers(self, model: AtomisticModel) -> dict[str, float]:
        blocks = [name for name, _ in model.backbone.parameter_blocks()]
        layers = [b for b in blocks if b != "embedding"]
        mults = dict(zip(layers, layer_multipliers(len(layers), self.cfg.llrd_layers), strict=True))
        mults["embedding"] = self.cfg.llrd_embedding
        return mults

    def param_groups(self, model: AtomisticModel, lr: float) -> list[dict]:
        mults = self.multipliers(model)
        groups: list[dict] = []
        seen: set[int] = set()
        last = 1.0
        for name, params in model.backbone.parameter_blocks():
            last = mults[name]
            groups.append({"name": name, "params": list(params), "base_lr": lr * last})
            seen.update(id(p) for p in params)
        rest = [p for p in model.backbone.parameters() if id(p) not in seen]
        if rest:
            groups.append({"name": "backbone:other", "params": rest, "base_lr": lr * last})
        for h in self.heads:
            groups.append(
                {
                    "name": f"head:{h}",
                    "params": _params(model.heads[h]),
                    "base_lr": lr * self.cfg.llrd_heads,
                }
            )
        return groups

    def describe(self) -> dict:
        return {
            "name": self.name,
            "backbone_init": "pretrained",
            "llrd_embedding": self.cfg.llrd_embedding,
            "llrd_layers": list(self.cfg.llrd_layers),
            "llrd_heads": self.cfg.llrd_heads,
        }


class LinearProbe(Strategy):
    """Backbone frozen; only the new property head trains."""

    def __init__(self, cfg: StrategyConfig):
        super().__init__(cfg, name="linear-probe")

    def param_groups(self, model: AtomisticModel, lr: float) -> list[dict]:
        return [
            {"name": "head:property", "params": _params(model.heads["property"]), "base_lr": lr}
        ]

    def prepare(self, model: AtomisticModel) -> None:
        model.backbone.requires_grad_(False)

    def describe(self) -> dict:
        return {"name": self.name, "backbone_init": "pretrained", "backbone": "frozen"}


class LPFT(Strategy):
    """Linear probe for the first ``lp_fraction`` of the steps, then full fine-tuning."""

    def __init__(self, cfg: StrategyConfig):
        super().__init__(cfg, name="lp-ft")

    def switch_step(self, total_steps: int) -> int:
        return round(self.cfg.lp_fraction * total_steps)

    def before_step(self, model: AtomisticModel, step: int, total_steps: int) -> None:
        model.backbone.requires_grad_(step >= self.switch_step(total_steps))

    def describe(self) -> dict:
        return {
            "name": self.name,
            "backbone_init": "pretrained",
            "lp_fraction": self.cfg.lp_fraction,
        }


class L2SP(Strategy):
    """Fine-tuning plus ``alpha * ||theta - theta_pretrained||^2`` over the backbone."""

    def __init__(self, cfg: StrategyConfig):
        super().__init__(cfg, name="l2-sp")
        self.reference: list[torch.Tensor] = []

    def prepare(self, model: AtomisticModel) -> None:
        self.reference = [p.detach().clone() for p in model.backbone.parameters()]

    def penalty(self, model: AtomisticModel) -> torch.Tensor | None:
        if self.cfg.l2sp_alpha == 0:
            return None
        sq = [((p - r) ** 2).sum() for p, r in zip(model.backbone.parameters(), self.reference,
                                                   strict=True)]  # fmt: skip
        return self.cfg.l2sp_alpha * torch.stack(sq).sum()

    def describe(self) -> dict:
        return {"name": self.name, "backbone_init": "pretrained", "l2sp_alpha": self.cfg.l2sp_alpha}


class MFT(Strategy):
    """Multi-task fine-tuning: the pretrained energy/force head keeps training on force-field data.

    ``sample`` mixing (the study): each step trains one task, the property task with probability
    ``mft_property_prob``, drawn from ``(task_seed, step)`` alone. ``sum``: every step trains
    ``L_prop + mft_aux_weight * L_ff``.
    """

    def __init__(self, cfg: StrategyConfig, task_seed: int = 0):
        super().__init__(cfg, name="mft", needs_ff=True, heads=("property", "energy"))
        self.task_seed = task_seed

    def tasks(self, step: int) -> list[Task]:
        if self.cfg.mft_mixing == "sum":
            return [("property", 1.0), ("ff", self.cfg.mft_aux_weight)]
        if uniform(self.task_seed, step) < self.cfg.mft_property_prob:
            return [("property", 1.0)]
        return [("ff", 1.0)]

    def describe(self) -> dict:
        return {
            "name": self.name,
            "backbone_init": "pretrained",
            "mixing": self.cfg.mft_mixing,
            "property_prob": self.cfg.mft_property_prob
            if self.cfg.mft_mixing == "sample"
            else None,
            "aux_weight": self.cfg.mft_aux_weight,
            "labels": self.cfg.mft_labels,
        }


class Pretrain(Strategy):
    """Energy + force training of a fresh model (the ``pretrain`` command)."""

    def __init__(self, cfg: StrategyConfig):
        super().__init__(
            cfg, name="pretrain", needs_pretrained=False, heads=("energy",), primary="ff"
        )


_BY_NAME = {
    "scratch": Scratch,
    "finetune": Finetune,
    "finetune-llrd": FinetuneLLRD,
    "linear-probe": LinearProbe,
    "lp-ft": LPFT,
    "l2-sp": L2SP,
}


def make_strategy(cfg: StrategyConfig, task_seed: int = 0) -> Strategy:
    if cfg.name == "mft":
        return MFT(cfg, task_seed)
    return _BY_NAME[cfg.name](cfg)


def steps_for_primary_batches(strategy: Strategy, n_batches: int) -> int:
    """Optimiser steps until the primary task has trained ``n_batches`` batches."""
    step = seen = 0
    while seen < n_batches:
        seen += any(t == strategy.primary for t, _ in strategy.tasks(step))
        step += 1
    return step
