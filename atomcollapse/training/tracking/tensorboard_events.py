"""TensorBoard event files under ``<run>/tensorboard`` (one run directory per cell, so
``tensorboard --logdir <bench out>/runs`` lists every cell).

Opening removes the event files an earlier (killed) process of the same run wrote: the tracker
replays the restored history, so the new file alone holds every value, each once. (A purge
marker is not enough: TensorBoard orders files by their names, whose time is in whole seconds,
so a run resumed within the second of its kill could be read before the killed one's.) The
run's tags go in as a text table and as hparams (so the HParams tab can group cells).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from atomcollapse.training.tracking import RunInfo

DIR = "tensorboard"


class TensorBoardEvents:
    def __init__(self, run_dir: Path, info: RunInfo):
        from torch.utils.tensorboard import SummaryWriter
        from torch.utils.tensorboard.summary import hparams

        folder = Path(run_dir) / DIR
        for old in folder.glob("events.out.tfevents.*"):
            old.unlink()
        self.writer = SummaryWriter(log_dir=str(folder))
        tags = {k: str(v) for k, v in info.tags.items()}
        rows = "\n".join(f"| {k} | {v} |" for k, v in tags.items())
        self.writer.add_text("run", f"**{info.name}**\n\n| tag | value |\n|---|---|\n{rows}", 0)
        if tags:
            experiment, start, _ = hparams(tags, {"best/val_mae": 0.0})
            events = self.writer.file_writer  # opened by add_text
            assert events is not None
            events.add_summary(experiment)
            events.add_summary(start)

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        for name, value in scalars.items():
            self.writer.add_scalar(name, float(value), int(step))

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
