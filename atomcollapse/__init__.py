"""atomcollapse: measure representation collapse and OOD error of adapted atomistic models.

The Python API (:mod:`atomcollapse.api`) is re-exported here and imported on first use, so
``import atomcollapse`` stays fast: ``atomcollapse.train(...)``, ``atomcollapse.report(...)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "HeadConfig", "InputError", "ModelConfig", "OptimConfig", "Report", "Run", "StrategyConfig",
    "TrainConfig", "__version__", "collapse", "evaluate", "export_dataset", "export_split",
    "ingest_extxyz", "ingest_matbench", "ingest_qm9", "load_run", "load_split", "make_split",
    "open_dataset", "predict", "report", "train",
]  # fmt: skip
#: names of :mod:`atomcollapse.api` available at the top level (imported on first use)
_API = frozenset(__all__) - {"__version__"}

if TYPE_CHECKING:
    from atomcollapse.api import (
        HeadConfig,
        ModelConfig,
        OptimConfig,
        Report,
        Run,
        StrategyConfig,
        TrainConfig,
        collapse,
        evaluate,
        export_dataset,
        export_split,
        ingest_extxyz,
        ingest_matbench,
        ingest_qm9,
        load_run,
        load_split,
        make_split,
        open_dataset,
        predict,
        report,
        train,
    )
    from atomcollapse.errors import InputError


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        module = importlib.import_module("atomcollapse.api")
        return getattr(module, name)
    raise AttributeError(f"module 'atomcollapse' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_API})
