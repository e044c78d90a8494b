"""The run directory: everything a training run reads back or reports, written atomically.

```
config.json       the fully resolved configuration
manifest.json     split / checkpoint / data hashes, seeds, code version, status
train.log         one line per evaluation (appended; a resumed run notes where it resumed)
state.pt          resumable state (model, optimiser, streams, RNGs, step, best, early stop):
                  tensors and plain containers only, read back with ``weights_only=True`` so
                  that a crafted file can never run code
best.pt, last.pt  checkpoints (best = lowest validation MAE)
metrics.json      final metrics (written last: its presence marks a finished run)
predictions.csv   id, partition, target, prediction, reference, unit
scalars.csv       step, name, value of every scalar logged (validation metrics, training loss
                  terms, steps per task, lr; best/* at the end): see training.tracking
tensorboard/      event files (``--log tensorboard``); wandb/ (``--log wandb``)
```
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from atomcollapse.artifacts import MANIFEST, atomic_file, now_utc, write_json_atomic
from atomcollapse.errors import InputError
from atomcollapse.process import fault

CONFIG = "config.json"
METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"
LOG = "train.log"
STATE = "state.pt"
BEST = "best.pt"
LAST = "last.pt"


def save_torch_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` to a temporary name, then rename (a kill leaves the old file)."""
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)
        fault("torch-tmp-written")


#: marks a resume state written by this code (and the layout :func:`load_resume_state` reads)
STATE_FORMAT = "atomcollapse.resume-state/1"
_STATE_KEYS = {"loop", "model", "optimizer", "streams", "torch_rng", "cuda_rng"}


def save_resume_state(state: dict[str, Any], path: str | Path) -> None:
    """Write a :meth:`Loop.state_dict` as tensors and plain containers only (atomically).

    The loop's dataclass becomes a plain dict so that the file loads with ``weights_only=True``.
    """
    loop = state["loop"]
    plain = dict(loop) if isinstance(loop, dict) else dataclasses.asdict(loop)
    save_torch_atomic({**state, "loop": plain, "format": STATE_FORMAT}, path)
    fault("state-saved")


def load_resume_state(path: str | Path) -> dict[str, Any]:
    """Read a resume state without executing anything: ``torch.load(weights_only=True)``.

    A crafted pickle, a foreign file or a state of another layout is one InputError naming
    ``path``; the loop state comes back as the dataclass :class:`Loop` expects.
    """
    from atomcollapse.models.checkpoint import load_plain
    from atomcollapse.training.loop import LoopState

    path = Path(path)
    try:
        state = load_plain(path, "resume state")
    except InputError as e:
        raise InputError(f"{e.problem}; delete it or pass --overwrite", file=path) from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise InputError(
            f"not a resume state of this atomcollapse version (expected format {STATE_FORMAT}); "
            "delete it or pass --overwrite",
            file=path,
        )
    missing = sorted(_STATE_KEYS - set(state))
    loop = state.get("loop")
    names = {f.name for f in dataclasses.fields(LoopState)}
    if isinstance(loop, dict):  # states written before the loop kept its running times
        loop = {"wall_s": 0.0, "cpu_s": 0.0, **loop}
    if missing or not isinstance(loop, dict) or set(loop) != names:
        what = f"missing {', '.join(missing)}" if missing else "its loop state has other fields"
        raise InputError(f"incomplete resume state ({what})", file=path)
    if (
        not isinstance(loop["step"], int)
        or loop["step"] < 0
        or not isinstance(loop["best_score"], float)
        or math.isnan(loop["best_score"])
    ):
        raise InputError("resume state holds an impossible step or best score", file=path)
    return {**state, "loop": LoopState(**loop)}


def restore(loop: Any, state: dict[str, Any], path: str | Path) -> None:
    """``loop.load_state_dict(state)``, a state that does not fit the model being one line."""
    try:
        loop.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as e:
        raise InputError(
            f"resume state does not fit this run ({type(e).__name__}: {_first_line(e)})",
            file=path,
        ) from None


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else "")[:200]


class RunDir:
    """A run directory opened for a fresh start, a resume, or an overwrite."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def prepare(cls, path: str | Path, *, resume: bool, overwrite: bool) -> RunDir:
        """Check what is at ``path`` against the flags; nothing is created yet (see :meth:`create`).

        A fresh run needs a missing or empty directory; ``--resume`` continues (or finds finished)
        an existing run, or starts one where there is none; ``--overwrite`` replaces a run.
        """
        run = cls(path)
        p = run.path
        if resume and overwrite:
            raise InputError("--resume and --overwrite exclude each other", file=p)
        if p.exists() and not p.is_dir():
            raise InputError("exists and is not a directory", file=p)
        occupied = p.is_dir() and any(p.iterdir())
        if occupied and not run.is_run():
            raise InputError("exists and is not a run directory; choose another --out", file=p)
        if occupied and not (resume or overwrite):
            raise InputError(
                "run directory exists (pass --resume to continue it or --overwrite to replace it)",
                file=p,
            )
        return run

    def is_run(self) -> bool:
        m = self.path / MANIFEST
        if not m.is_file():
            return False
        try:
            return json.loads(m.read_text()).get("artifact") == "run"
        except json.JSONDecodeError:
            return False

    def create(self, *, overwrite: bool) -> None:
        if overwrite and self.path.is_dir() and self.is_run():
            shutil.rmtree(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(
                f"cannot create the run directory ({e.strerror})", file=self.path
            ) from None

    def clean_temporaries(self) -> None:
        """Remove temporary files a killed writer left inside the run (call under its lock)."""
        if self.path.is_dir():
            for p in self.path.glob(".*.tmp"):
                p.unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    @property
    def finished(self) -> bool:
        return (self.path / METRICS).is_file()

    def file(self, name: str) -> Path:
        return self.path / name

    def read_json(self, name: str) -> dict[str, Any]:
        f = self.path / name
        try:
            data = json.loads(f.read_text())
        except FileNotFoundError:
            raise InputError("missing from the run directory", file=f) from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise InputError(f"corrupt JSON ({e})", file=f) from None
        if not isinstance(data, dict):
            raise InputError("expected a JSON object", file=f)
        return data

    def write_json(self, name: str, obj: Any) -> None:
        write_json_atomic(self.path / name, obj)

    def log(self, line: str) -> None:
        with open(self.path / LOG, "a") as f:
            f.write(f"{now_utc()} {line}\n")

    def save_state(self, state: dict[str, Any]) -> None:
        save_resume_state(state, self.path / STATE)

    def load_state(self) -> dict[str, Any] | None:
        f = self.path / STATE
        return load_resume_state(f) if f.is_file() else None

    def drop_state(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.path / STATE).unlink()

    def write_predictions(self, frame: pd.DataFrame) -> None:
        with atomic_file(self.path / PREDICTIONS) as tmp:
            frame.to_csv(tmp, index=False, float_format="%.10g")
