"""The strategy interface: what every adaptation strategy declares and may override.

A strategy decides which parameters train and at which learning-rate multiplier, which task(s)
each optimiser step trains (``"property"``, ``"ff"`` = energy + forces, each with a loss weight)
and any extra loss. It declares, as class attributes, its name, what it needs (a pretrained
model, force-field data, a freshly initialised backbone), the heads it trains, its place in
reports, a one-line summary for the CLI, and its own frozen ``Settings`` dataclass: the knobs
that a ``[strategy]`` table may set for it, every one of which changes the run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from atomcollapse.models.model import AtomisticModel

Task = tuple[str, float]  # (task name, loss weight)


@dataclass(frozen=True)
class NoSettings:
    """A strategy without knobs."""


def trainable(module: nn.Module) -> list[nn.Parameter]:
    return list(module.parameters())


class Strategy:
    """Base: every parameter of the backbone and of the used heads at multiplier 1."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    #: position in reports and listings (the study's order)
    order: ClassVar[int] = 100
    needs_pretrained: ClassVar[bool] = True
    needs_ff: ClassVar[bool] = False
    #: the backbone is re-initialised from the init seed (same architecture as the checkpoint)
    fresh_backbone: ClassVar[bool] = False
    heads: ClassVar[tuple[str, ...]] = ("property",)
    primary: ClassVar[str] = "property"
    Settings: ClassVar[type] = NoSettings

    def __init__(self, settings: Any = None, task_seed: int = 0):
        self.settings = self.Settings() if settings is None else settings
        if not isinstance(self.settings, self.Settings):
            raise TypeError(f"{self.name}: settings must be {self.Settings.__name__}")
        self.task_seed = task_seed

    def param_groups(self, model: AtomisticModel, lr: float) -> list[dict]:
        groups = [{"name": "backbone", "params": trainable(model.backbone), "base_lr": lr}]
        for h in self.heads:
            groups.append({"name": f"head:{h}", "params": trainable(model.heads[h]), "base_lr": lr})
        return groups

    def prepare(self, model: AtomisticModel) -> None:
        """Called once on the freshly built (pretrained) model, before any resume state loads."""

    def before_step(self, model: AtomisticModel, step: int, total_steps: int) -> None:
        """Called before every optimiser step (phase changes)."""

    def tasks(self, step: int) -> list[Task]:
        return [(self.primary, 1.0)]

    def penalty(self, model: AtomisticModel) -> torch.Tensor | None:
        return None

    def effective_settings(self) -> dict[str, Any]:
        """The settings that act on this run (a setting another one switches off is left out)."""
        return asdict(self.settings)

    def describe(self) -> dict[str, Any]:
        """What the run manifest records about this strategy: every value that took effect."""
        init = "random" if self.fresh_backbone else "pretrained"
        return {"name": self.name, "backbone_init": init, **self.effective_settings()}


def layer_multipliers(n_layers: int, anchors: tuple[float, ...]) -> list[float]:
    """``anchors`` (first to last block) linearly interpolated to ``n_layers`` layers."""
    if len(anchors) == n_layers:
        return [float(a) for a in anchors]
    if n_layers == 1:
        return [float(anchors[-1])]
    x = np.linspace(0.0, 1.0, n_layers)
    xp = np.linspace(0.0, 1.0, len(anchors))
    return [float(v) for v in np.interp(x, xp, anchors)]


class Pretrain(Strategy):
    """Energy + force training of a fresh model (the ``pretrain`` command; not a strategy
    of ``train``, so not in the registry)."""

    name = "pretrain"
    needs_pretrained = False
    fresh_backbone = True
    heads = ("energy",)
    primary = "ff"
