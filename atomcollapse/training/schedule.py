"""Optimisers and learning-rate schedules, as pure functions of the step (nothing to resume).

Each parameter group carries ``base_lr`` (the configured lr times the group's multiplier); every
step sets ``lr = base_lr * lr_factor(step)``.
"""

from __future__ import annotations

import math

import torch

from atomcollapse.training.config import OptimConfig


def effective_decay_steps(decay_steps: int, total_steps: int) -> int:
    """DeePMD-kit's rule: a decay interval as long as the run is shortened."""
    if decay_steps < total_steps:
        return decay_steps
    return 100 if total_steps // 10 > 100 else total_steps // 100 + 1


def lr_factor(step: int, total_steps: int, cfg: OptimConfig) -> float:
    """Learning rate at ``step`` (0-based) divided by ``cfg.lr``.

    ``exponential``: staircase decay reaching ``lr_end`` at ``total_steps`` (the study);
    ``cosine``: cosine from ``lr`` to ``lr_end`` (JMP); ``constant``. A linear warm-up from
    ``lr_end`` over ``warmup_steps`` precedes any of them.
    """
    end = cfg.lr_end / cfg.lr
    warm = min(cfg.warmup_steps, max(total_steps - 1, 0))
    if step < warm:
        return end + (1.0 - end) * step / warm
    span = max(total_steps - warm, 1)
    t = min(step - warm, span)
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "cosine":
        return end + (1.0 - end) * 0.5 * (1.0 + math.cos(math.pi * t / span))
    ds = effective_decay_steps(cfg.decay_steps, span)
    rate = math.exp(math.log(end) * ds / span)
    return max(rate ** (t // ds), end)


def ramp_weight(start: float, end: float, factor: float, ramp: bool) -> float:
    """DeePMD-kit prefactor ramp: ``end + (start - end) * lr / lr0`` (``start`` without ramp)."""
    return start * factor + end * (1.0 - factor) if ramp else start


def build_optimizer(groups: list[dict], cfg: OptimConfig) -> torch.optim.Optimizer:
    """Adam or AdamW over parameter groups with a ``base_lr`` each."""
    for g in groups:
        g["lr"] = g["base_lr"]
    betas = (cfg.betas[0], cfg.betas[1])
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(groups, lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay)


def set_lr(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for g in optimizer.param_groups:
        g["lr"] = g["base_lr"] * factor
