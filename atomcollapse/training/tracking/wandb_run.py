"""Weights & Biases, only when ``wandb`` is installed; offline unless ``WANDB_MODE`` is set
(``wandb sync <run>/wandb/offline-run-*`` uploads later). The W&B run id is the atomcollapse
run's own (kept over resumes); the cell's tags become W&B tags and config, the project is
``WANDB_PROJECT`` or ``atomcollapse``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from atomcollapse.training.tracking import RunInfo


class WandbRun:
    def __init__(self, run_dir: Path, info: RunInfo):
        import wandb

        tags = {k: str(v) for k, v in info.tags.items()}
        self.run = wandb.init(
            project=os.environ.get("WANDB_PROJECT", "atomcollapse"),
            name=info.name,
            id=info.run_id,
            resume="allow",
            dir=str(run_dir),
            mode=os.environ.get("WANDB_MODE", "offline"),
            tags=[f"{k}={v}" for k, v in tags.items()],
            group=tags.get("bench"),
            config={**info.config, "tags": tags},
        )
        # a resumed W&B run continues at its own step counter; earlier steps it already has
        self._last = int(getattr(self.run, "step", 0) or 0)

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        if step >= self._last:  # W&B drops (with a warning) steps below its last one
            self.run.log({k: float(v) for k, v in scalars.items()}, step=int(step))
            self._last = step

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.run.finish()
