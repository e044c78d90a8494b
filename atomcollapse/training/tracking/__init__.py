"""Experiment tracking: every scalar the training loop logs, sent to a set of backends.

One table maps a backend's name to its lazily imported class; ``csv`` (``scalars.csv`` in the
run directory) is always on, ``tensorboard`` (``torch.utils.tensorboard``, extra
``[tracking]``) and ``wandb`` (offline unless ``WANDB_MODE`` says otherwise) when asked for.
A backend receives ``(step, {name: value})`` rows: each evaluation's history entry (validation
metrics, mean training loss terms, steps per task) with the learning rate, and at the end the
best checkpoint's errors (``best/<partition>_mae``, ``best/<partition>_rmse``, in the target's
unit). A resumed run replays the restored history first, so every backend ends with the same
rows as an uninterrupted run.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from atomcollapse.errors import InputError

__all__ = [
    "BACKENDS",
    "Backend",
    "RunInfo",
    "ScalarSink",
    "Tracker",
    "check_available",
    "check_names",
]

#: the one backend every run writes, asked for or not
ALWAYS = "csv"


@dataclass(frozen=True)
class Backend:
    """A backend: ``module:Class`` (imported on first use) and the import it needs."""

    target: str
    needs: str | None = None
    install: str = ""

    def load(self) -> Any:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


BACKENDS: dict[str, Backend] = {
    "csv": Backend("atomcollapse.training.tracking.csv_scalars:CsvScalars"),
    "tensorboard": Backend(
        "atomcollapse.training.tracking.tensorboard_events:TensorBoardEvents",
        needs="torch.utils.tensorboard",
        install="pip install 'atomcollapse[tracking]'",
    ),
    "wandb": Backend(
        "atomcollapse.training.tracking.wandb_run:WandbRun",
        needs="wandb",
        install="pip install wandb",
    ),
}


@dataclass(frozen=True)
class RunInfo:
    """What a backend may show about a run: its name, a stable id (kept over resumes), the
    tags a benchmark cell is known by (dataset, split, target, model, strategy, seed) and the
    resolved configuration."""

    name: str
    run_id: str
    tags: Mapping[str, str] = field(default_factory=dict)
    config: Mapping[str, Any] = field(default_factory=dict)


class ScalarSink(Protocol):
    """What the training loop calls at each evaluation."""

    def write(self, step: int, scalars: Mapping[str, float]) -> None: ...


class ScalarBackend(Protocol):
    def write(self, step: int, scalars: Mapping[str, float]) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


def check_names(names: Iterable[str], source: str = "configuration") -> None:
    """Refuse a backend name that is not in :data:`BACKENDS`."""
    for n in names:
        if n not in BACKENDS:
            raise InputError(
                f"setting 'log': unknown tracking backend {n!r}; known: {', '.join(BACKENDS)}",
                file=source,
            )


def check_available(names: Iterable[str], source: str = "--log") -> None:
    """Refuse a known backend whose package cannot be imported (before anything is written)."""
    check_names(names, source)
    for n in names:
        b = BACKENDS[n]
        if b.needs is None:
            continue
        try:
            importlib.import_module(b.needs)
        except ImportError as e:
            raise InputError(
                f"tracking backend {n!r} needs {b.needs.split('.')[-1]!r}, which is not "
                f"installed ({type(e).__name__}: {e}); {b.install}",
                file=source,
            ) from None


class Tracker:
    """The backends of one run: opened by :meth:`open` (which replays what the run already
    logged), written by the loop after each evaluation, closed at the end."""

    def __init__(self, names: Iterable[str], run_dir: str | Path, info: RunInfo):
        self.names = tuple(dict.fromkeys([ALWAYS, *names]))
        check_names(self.names)
        self.run_dir, self.info = Path(run_dir), info
        self._backends: list[ScalarBackend] = []

    def open(self, logged: Iterable[tuple[int, Mapping[str, float]]] = ()) -> None:
        """Start every backend and replay ``logged`` (a resumed run's restored history)."""
        self._backends = [BACKENDS[n].load()(self.run_dir, self.info) for n in self.names]
        for step, scalars in logged:
            for b in self._backends:
                b.write(step, scalars)
        self._flush()

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        for b in self._backends:
            b.write(step, scalars)
        self._flush()

    def _flush(self) -> None:
        for b in self._backends:
            b.flush()

    def close(self) -> None:
        backends, self._backends = self._backends, []
        for b in backends:
            b.close()
