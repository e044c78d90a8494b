"""THE training loop, shared by ``train`` (every strategy) and ``pretrain``.

Per optimiser step: the strategy names the task(s) to train; each task draws the next batch of
its own stream, computes its loss (reduced over the global batch, so data-parallel ranks sum to
the single-process gradient), scales it by the task's weight and backpropagates; the strategy adds its penalty; gradients
are summed over ranks, clipped, and Adam(W) steps at the scheduled learning rate. The primary
task's epoch ends (or every ``eval_every_steps``) trigger a validation; the best weights are
kept and training stops after ``patience`` evaluations without improvement. Each evaluation's
history entry also holds the mean training loss terms since the previous one
(``train_property_loss``, ``train_ff_energy_loss``, ``train_ff_force_loss``, unweighted) and the
optimiser steps each task has trained so far (``steps_property``, ``steps_ff``). A resumable
state is saved after each evaluation and every ``state_every_steps``. Each entry's numbers and
the learning rate go to the ``tracker`` (see :mod:`atomcollapse.training.tracking`).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from atomcollapse.data.batch import AtomsBatch
from atomcollapse.models.model import AtomisticModel
from atomcollapse.training import distributed
from atomcollapse.training.config import OptimConfig
from atomcollapse.training.distributed import DistInfo
from atomcollapse.training.schedule import lr_factor, set_lr
from atomcollapse.training.strategies import Strategy
from atomcollapse.training.streams import BatchStream, shard
from atomcollapse.training.tracking import ScalarSink

#: loss(model, batch, global_counts, lr_factor) -> (loss, {name: value}); batch may be None
#: (an empty shard on this rank), then the loss must be None.
LossFn = Callable[[nn.Module, AtomsBatch, "Counts", float], tuple[torch.Tensor, dict[str, float]]]


@dataclass(frozen=True)
class Counts:
    """Structures and atoms of the *global* batch (loss denominators)."""

    structures: int
    atoms: int


@dataclass
class TaskSpec:
    """A trainable task: its batch stream, how rows become a batch, and its loss."""

    stream: BatchStream
    make_batch: Callable[[np.ndarray], AtomsBatch]
    loss: LossFn
    n_atoms: np.ndarray  # atoms per store row


@dataclass
class LoopState:
    step: int = 0
    best_score: float = math.inf
    best_step: int = -1
    bad_evals: int = 0
    stopped: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    best_model: dict[str, torch.Tensor] | None = None
    task_steps: dict[str, int] = field(default_factory=dict)
    #: sums and counts of each loss term since the last evaluation
    loss_sums: dict[str, float] = field(default_factory=dict)
    loss_counts: dict[str, int] = field(default_factory=dict)
    #: seconds spent in :meth:`Loop.run` so far, over every resume (wall clock; this process's CPU)
    wall_s: float = 0.0
    cpu_s: float = 0.0


class Loop:
    """One training run's loop; :meth:`run` returns when done, early-stopped or out of steps."""

    _marks: tuple[float, float]  # (wall, cpu) seconds at the last tick

    def __init__(
        self,
        *,
        model: AtomisticModel,
        strategy: Strategy,
        optimizer: torch.optim.Optimizer,
        optim_cfg: OptimConfig,
        tasks: dict[str, TaskSpec],
        evaluate: Callable[[], dict[str, float]],
        total_steps: int,
        patience: int,
        eval_every_steps: int = 0,
        state_every_steps: int = 100,
        dist: DistInfo | None = None,
        save_state: Callable[[dict], None] | None = None,
        log: Callable[[str], None] | None = None,
        progress: bool = False,
        autocast: Callable[[], Any] | None = None,
        tracker: ScalarSink | None = None,
    ):
        self.model, self.strategy, self.optimizer = model, strategy, optimizer
        self.optim_cfg, self.tasks, self.evaluate = optim_cfg, tasks, evaluate
        self.total_steps, self.patience = total_steps, patience
        self.eval_every_steps, self.state_every_steps = eval_every_steps, state_every_steps
        self.dist = dist or DistInfo()
        self._save, self._log = save_state, log or (lambda line: None)
        self.progress = progress
        self.autocast = autocast
        self.tracker = tracker
        self.state = LoopState()
        self._marks: tuple[float, float] = (time.monotonic(), time.process_time())
        self.last_losses: dict[str, float] = {}
        self.params = [p for g in optimizer.param_groups for p in g["params"]]

    # -- resumable state -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "loop": copy.deepcopy(self.state),
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "streams": {k: t.stream.state_dict() for k, t in self.tasks.items()},
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = state["loop"]
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        for k, s in state["streams"].items():
            self.tasks[k].stream.load_state_dict(s)
        torch.set_rng_state(state["torch_rng"])
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])

    def _checkpoint(self) -> None:
        if self._save is not None:
            if self.dist.is_main:
                self._save(self.state_dict())
            distributed.barrier(self.dist)

    # -- one step --------------------------------------------------------------------------
    def _task_loss(self, name: str, weight: float, factor: float) -> tuple[bool, bool]:
        task = self.tasks[name]
        rows, ended = task.stream.next()
        counts = Counts(len(rows), int(task.n_atoms[rows].sum()))
        mine = shard(rows, self.dist.rank, self.dist.world)
        if len(mine) == 0:
            return False, ended
        batch = task.make_batch(mine)
        if self.autocast is not None:
            with self.autocast():
                loss, parts = task.loss(self.model, batch, counts, factor)
        else:
            loss, parts = task.loss(self.model, batch, counts, factor)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite {name} loss at step {self.state.step}")
        backward_to_params(weight * loss, self.params)
        self.last_losses.update(parts)
        st = self.state
        for k, v in parts.items():
            st.loss_sums[k] = st.loss_sums.get(k, 0.0) + v
            st.loss_counts[k] = st.loss_counts.get(k, 0) + 1
        return True, ended

    def step(self) -> bool:
        """One optimiser step; returns whether the primary task finished an epoch."""
        s = self.state.step
        self.strategy.before_step(self.model, s, self.total_steps)
        factor = lr_factor(s, self.total_steps, self.optim_cfg)
        set_lr(self.optimizer, factor)
        self.optimizer.zero_grad(set_to_none=True)
        epoch_end = False
        for name, weight in self.strategy.tasks(s):
            _, ended = self._task_loss(name, weight, factor)
            epoch_end |= ended and name == self.strategy.primary
            self.state.task_steps[name] = self.state.task_steps.get(name, 0) + 1
        penalty = self.strategy.penalty(self.model)
        if penalty is not None:
            # every rank adds the full penalty; dividing by world keeps the summed gradient exact
            backward_to_params(penalty / self.dist.world, self.params)
            self.last_losses["penalty"] = float(penalty.detach())
        distributed.sum_gradients(self.params, self.dist)
        if self.optim_cfg.grad_clip > 0:
            live = [p for p in self.params if p.grad is not None]
            if live:
                torch.nn.utils.clip_grad_norm_(live, self.optim_cfg.grad_clip)
        self.optimizer.step()
        self.state.step += 1
        return epoch_end

    # -- validation / early stopping -------------------------------------------------------
    def _validate(self) -> dict[str, float]:
        self.model.eval()
        try:
            metrics = self.evaluate()
        finally:
            self.model.train()
        st = self.state
        score = float(metrics["score"])
        improved = score < st.best_score
        if improved:
            st.best_score, st.best_step, st.bad_evals = score, st.step, 0
            st.best_model = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            st.bad_evals += 1
            st.stopped = st.bad_evals >= self.patience
        means = {f"train_{k}": st.loss_sums[k] / st.loss_counts[k] for k in sorted(st.loss_sums)}
        steps = {f"steps_{k}": n for k, n in sorted(st.task_steps.items())}
        st.loss_sums, st.loss_counts = {}, {}
        entry = {"step": st.step, **{k: float(v) for k, v in metrics.items()}, **means, **steps,
                 "best": improved}  # fmt: skip
        st.history.append(entry)
        if self.tracker is not None:
            self.tracker.write(st.step, self.scalars(entry))
        self._tick()
        losses = " ".join(f"{k}={v:.4g}" for k, v in {**means, **steps}.items())
        self._log(
            f"step {st.step}/{self.total_steps} {losses} val_score={score:.6g}"
            f"{' *' if improved else ''} (cpu {st.cpu_s:.0f} s, wall {st.wall_s:.0f} s)"
        )
        return metrics

    def scalars(self, entry: dict[str, Any]) -> dict[str, float]:
        """The numbers of a history entry (less its step and best flag) and ``lr``, the base
        learning rate of the step before it (a pure function of the step, so a resumed run
        logs the same values)."""
        out = {k: float(v) for k, v in entry.items()
               if k not in ("step", "best") and isinstance(v, (int, float))}  # fmt: skip
        factor = lr_factor(max(entry["step"] - 1, 0), self.total_steps, self.optim_cfg)
        out["lr"] = self.optim_cfg.lr * factor
        return out

    def logged(self) -> list[tuple[int, dict[str, float]]]:
        """Every evaluation so far as ``(step, scalars)``: what a resumed run replays."""
        return [(e["step"], self.scalars(e)) for e in self.state.history]

    def _tick(self) -> None:
        """Add the time since the last tick to the state's running totals (kept out of metrics,
        so that a resumed run's metrics.json stays bit-identical to an uninterrupted one's)."""
        wall, cpu = time.monotonic(), time.process_time()
        self.state.wall_s += wall - self._marks[0]
        self.state.cpu_s += cpu - self._marks[1]
        self._marks = (wall, cpu)

    def run(self) -> LoopState:
        self.model.train()
        bar = _Progress(self.total_steps, self.state.step) if self.progress else None
        t0 = time.monotonic()
        self._marks = (t0, time.process_time())
        try:
            while self.state.step < self.total_steps and not self.state.stopped:
                epoch_end = self.step()
                s = self.state.step
                due = (s % self.eval_every_steps == 0) if self.eval_every_steps else epoch_end
                if due or s == self.total_steps:
                    self._validate()
                    self._checkpoint()
                elif s % self.state_every_steps == 0:
                    self._tick()
                    self._checkpoint()
                if bar is not None:
                    bar.update(s, self.last_losses, self.state.best_score)
        finally:
            if bar is not None:
                bar.close()
            self._tick()
        self._log(
            f"finished at step {self.state.step} after {time.monotonic() - t0:.1f} s "
            f"(best step {self.state.best_step}, score {self.state.best_score:.6g})"
        )
        return self.state


def backward_to_params(loss: torch.Tensor, params: list[nn.Parameter]) -> None:
    """``loss.backward()`` into the trainable ``params`` only.

    Under a force loss the positions are a leaf that requires grad; a plain ``backward()`` would
    also run every node that leads only to them (direction and radial-basis gradients of the
    double backward: 5-14% of a force step on a 2-core CPU) to fill a ``positions.grad`` nobody
    reads. The parameters' gradients are the same either way.
    """
    live = [p for p in params if p.requires_grad]
    if live:
        loss.backward(inputs=live)


class _Progress:
    """A rich progress bar: step, losses, best validation score, time left."""

    def __init__(self, total: int, done: int):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._p = Progress(
            TextColumn("[bold]train"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            transient=False,
        )
        self._p.start()
        self._task = self._p.add_task("train", total=total, completed=done, info="")

    def update(self, step: int, losses: dict[str, float], best: float) -> None:
        info = " ".join(f"{k}={v:.3g}" for k, v in sorted(losses.items()))
        if math.isfinite(best):
            info += f" val={best:.4g}"
        self._p.update(self._task, completed=step, info=info)

    def close(self) -> None:
        self._p.stop()


def want_progress(flag: bool | None) -> bool:
    """Progress bars only on an interactive terminal unless asked explicitly."""
    if flag is not None:
        return flag
    return sys.stderr.isatty()
