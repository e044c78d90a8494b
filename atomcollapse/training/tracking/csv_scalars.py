"""``scalars.csv`` in the run directory: one row per logged scalar (``step,name,value``).

The whole file is rewritten (atomically) from the rows held in memory after each evaluation,
so a killed run leaves the last complete file and a resumed run, which replays the restored
history first, ends with the same bytes as an uninterrupted one. Values are written with
``repr`` (they read back as the same float).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from atomcollapse.artifacts import write_text_atomic

FILE = "scalars.csv"
HEADER = "step,name,value"


class CsvScalars:
    def __init__(self, run_dir: Path, info: object = None):
        self.path = Path(run_dir) / FILE
        self._rows: list[str] = []

    def write(self, step: int, scalars: Mapping[str, float]) -> None:
        self._rows += [f"{int(step)},{name},{float(v)!r}" for name, v in scalars.items()]

    def flush(self) -> None:
        write_text_atomic(self.path, "\n".join([HEADER, *self._rows]) + "\n")

    def close(self) -> None:
        return None  # every write is already on disk
