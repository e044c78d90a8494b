"""The strategy registry: every module of this package that defines ``STRATEGY`` is one strategy.

Adding a strategy is adding one module here (a :class:`Strategy` subclass with its name,
needs, report order, summary and ``Settings`` dataclass, exported as ``STRATEGY``); the CLI
help, configuration checks, bench specs and reports read this registry. Modules are imported on
first use, not at package import, and nothing registers itself by import side effect.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from atomcollapse.training.strategies.base import Pretrain, Strategy, Task, layer_multipliers

__all__ = [
    "Pretrain",
    "Strategy",
    "Task",
    "layer_multipliers",
    "make_strategy",
    "steps_for_primary_batches",
    "strategy_class",
    "strategy_names",
]


@cache
def _registry() -> dict[str, type[Strategy]]:
    found: dict[str, type[Strategy]] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        cls = getattr(module, "STRATEGY", None)
        if cls is None:
            continue
        if cls.name in found:  # pragma: no cover - a packaging mistake
            raise RuntimeError(f"two strategy modules define {cls.name!r}")
        found[cls.name] = cls
    return dict(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))


def strategy_names() -> tuple[str, ...]:
    """Every registered strategy, in the study's order (scratch, finetune, ...)."""
    return tuple(_registry())


def strategy_class(name: str) -> type[Strategy]:
    """The class of strategy ``name``; KeyError when there is none."""
    return _registry()[name]


def make_strategy(name: str, settings=None, task_seed: int = 0) -> Strategy:
    """A strategy object with its settings (default settings when None)."""
    return strategy_class(name)(settings, task_seed)


def steps_for_primary_batches(strategy: Strategy, n_batches: int) -> int:
    """Optimiser steps until the primary task has trained ``n_batches`` batches."""
    step = seen = 0
    while seen < n_batches:
        seen += any(t == strategy.primary for t, _ in strategy.tasks(step))
        step += 1
    return step
