"""The two tasks: a property (standardised squared error) and a force field (energy + forces).

Loss conventions (``loss_convention``), with ``s`` the standard deviation of the train targets
(after atom references), ``B`` the structures of the batch, ``N_i`` their atom counts and ``A``
its atoms (energies in eV, forces in eV/A):

- ``deepmd`` (the study's; DeePMD-kit's ``PropertyLoss`` with reduction "sum" and
  ``EnergyStdLoss`` with ``atom_norm``): ``L_prop = sum_i ((pred_i - y_i) / s)^2`` summed over
  the batch; ``L_ff = w_E * mean_i (dE_i^2 / N_i) + w_F * mean_{A, xyz} dF^2``.
- ``mean`` (this project before 2026-12): ``L_prop = mean_i ((pred_i - y_i) / s)^2``;
  ``L_ff = w_E * mean_i (dE_i / N_i)^2 + w_F * mean_{A, xyz} dF^2``.

Means and sums run over the *global* batch (each rank divides its part by the global counts),
so data-parallel ranks add up to the single-process loss. Predictions come back in the units
of the data: the property in the target's stored unit, energies in eV, forces in eV/A.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from atomcollapse.data.batch import AtomsBatch
from atomcollapse.data.batching import atom_rows, collate
from atomcollapse.data.store import Store
from atomcollapse.errors import InputError
from atomcollapse.training import distributed
from atomcollapse.training.config import ForceFieldLossConfig
from atomcollapse.training.distributed import DistInfo
from atomcollapse.training.loop import Counts
from atomcollapse.training.schedule import ramp_weight
from atomcollapse.training.streams import BatchSize, chunks, parse_batch_size, shard


def resolve_device(name: str, dist: DistInfo | None = None) -> torch.device:
    """``auto``: CUDA when available, else CPU; under torchrun each rank takes its local GPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("--device cuda asked for, but no CUDA device is available")
        if name == "cuda" and dist is not None and dist.enabled:
            name = f"cuda:{dist.local_rank}"
    return torch.device(name)


def autocast_factory(device: torch.device, bf16: bool) -> Callable | None:
    """A context factory for bf16 autocast on ``device`` (CUDA or CPU); None when not asked for.

    The same code path runs on both (torch's autocast op lists): linear layers and the filters run
    in bfloat16, and so do the message products and sums fed by them; the weights, the optimiser
    state and the losses stay float32, and predictions come back as float32.
    """
    if not bf16:
        return None
    if device.type not in ("cuda", "cpu"):
        raise InputError(f"--bf16 needs a CUDA or CPU device, not {device.type}")
    return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)


@dataclass
class PropertyTask:
    """Property regression on the standardised error ``(pred - y) / scale`` (see above)."""

    store: Store
    target: str
    cutoff: float
    device: torch.device
    scale: float
    convention: str = "deepmd"

    def make_batch(self, rows: np.ndarray) -> AtomsBatch:
        return collate(self.store, rows, self.cutoff, targets=(self.target,)).to(self.device)

    def loss(self, model: nn.Module, batch: AtomsBatch, counts: Counts, factor: float):
        pred = model(batch, tasks=("property",))["property"].float()
        y = batch.labels[self.target].to(pred.dtype)
        loss = (((pred - y) / self.scale) ** 2).sum()
        if self.convention == "mean":
            loss = loss / counts.structures
        return loss, {"property_loss": float(loss.detach())}


@dataclass
class ForceFieldTask:
    """Energy + forces with ramped prefactors (see above for the two conventions).

    ``labels`` optionally replaces the store's reference labels by pseudo-labels: per-row energies
    (eV) and per-atom forces (eV/A) in store row order (the store then needs no labels).
    """

    store: Store
    cutoff: float
    device: torch.device
    weights: ForceFieldLossConfig
    labels: tuple[np.ndarray, np.ndarray] | None = None
    convention: str = "deepmd"

    def make_batch(self, rows: np.ndarray) -> AtomsBatch:
        if self.labels is None:
            batch = collate(self.store, rows, self.cutoff, targets=("energy",), forces=True)
            return batch.to(self.device)
        batch = collate(self.store, rows, self.cutoff)
        energy, forces = self.labels
        atoms, _ = atom_rows(self.store, rows)
        batch.labels["energy"] = torch.as_tensor(energy[rows], dtype=batch.positions.dtype)
        batch.labels["forces"] = torch.as_tensor(forces[atoms], dtype=batch.positions.dtype)
        return batch.to(self.device)

    def current_weights(self, factor: float) -> tuple[float, float]:
        w = self.weights
        return (
            ramp_weight(w.energy_weight, w.energy_weight_end, factor, w.ramp),
            ramp_weight(w.force_weight, w.force_weight_end, factor, w.ramp),
        )

    def loss(self, model: nn.Module, batch: AtomsBatch, counts: Counts, factor: float):
        out = model(batch, tasks=("energy",), compute_forces=True)
        energy, forces = out["energy"].float(), out["forces"].float()
        n_atoms = (batch.offsets[1:] - batch.offsets[:-1]).to(energy.dtype)
        de = energy - batch.labels["energy"].to(energy.dtype)
        df = forces - batch.labels["forces"].to(forces.dtype)
        per_atom = de**2 / n_atoms if self.convention == "deepmd" else (de / n_atoms) ** 2
        e_loss = per_atom.sum() / counts.structures
        f_loss = (df**2).sum() / (3 * counts.atoms)
        we, wf = self.current_weights(factor)
        return we * e_loss + wf * f_loss, {
            "ff_energy_loss": float(e_loss.detach()),
            "ff_force_loss": float(f_loss.detach()),
        }


def predict_property(
    model: nn.Module,
    task: PropertyTask,
    rows: np.ndarray,
    batch_size: int | str | BatchSize,
    dist: DistInfo | None = None,
    autocast: Callable | None = None,
) -> np.ndarray:
    """Predictions (target unit, float64) for ``rows``, in that order; ranks share the work."""
    dist = dist or DistInfo()
    mine = shard(np.asarray(rows), dist.rank, dist.world)
    out = []
    size = parse_batch_size(batch_size)
    with torch.no_grad(), autocast() if autocast else contextlib.nullcontext():
        for chunk in chunks(mine, size, task.store.n_atoms):
            batch = task.make_batch(chunk)
            out.append(model(batch, tasks=("property",))["property"].double().cpu().numpy())
    local = np.concatenate(out) if out else np.zeros(0)
    return _unshard(distributed.all_gather(local, dist), len(rows))


def predict_ff(
    model: nn.Module,
    task: ForceFieldTask,
    rows: np.ndarray,
    batch_size: int | str | BatchSize,
    dist: DistInfo | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Energies (eV, per row) and forces (eV/A, atoms of ``rows`` in order) from the model."""
    dist = dist or DistInfo()
    mine = shard(np.asarray(rows), dist.rank, dist.world)
    energies, forces = [], []
    for chunk in chunks(mine, parse_batch_size(batch_size), task.store.n_atoms):
        batch = collate(task.store, chunk, task.cutoff).to(task.device)
        out = model(batch, tasks=("energy",), compute_forces=True)
        energies.append(out["energy"].detach().double().cpu().numpy())
        counts = np.diff(batch.offsets.cpu().numpy())
        f = out["forces"].detach().double().cpu().numpy()
        forces.extend(np.split(f, np.cumsum(counts)[:-1]))
    e_all = _unshard(
        distributed.all_gather(np.concatenate(energies) if energies else np.zeros(0), dist),
        len(rows),
    )
    f_parts = distributed.all_gather(forces, dist)
    order = [f_parts[i % dist.world][i // dist.world] for i in range(len(rows))]
    return e_all, (np.concatenate(order) if order else np.zeros((0, 3)))


def _unshard(parts: list[np.ndarray], n: int) -> np.ndarray:
    """Undo ``rows[rank::world]``."""
    out = np.empty(n, dtype=np.float64)
    for r, p in enumerate(parts):
        out[r :: len(parts)] = p
    return out


def mae_rmse(pred: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    err = np.asarray(pred, dtype=np.float64) - np.asarray(ref, dtype=np.float64)
    if err.size == 0:
        return float("nan"), float("nan")
    return float(np.abs(err).mean()), float(np.sqrt((err**2).mean()))


def ff_metrics(
    model: nn.Module,
    task: ForceFieldTask,
    rows: np.ndarray,
    batch_size: int | str | BatchSize,
    dist: DistInfo | None = None,
) -> dict[str, float]:
    """Energy MAE (meV/atom) and force MAE (meV/A) against the store's reference labels."""
    energy, forces = predict_ff(model, task, rows, batch_size, dist)
    return ff_errors(task, rows, (energy, forces))


def ff_errors(
    task: ForceFieldTask,
    rows: np.ndarray,
    predicted: tuple[np.ndarray, np.ndarray],
    reference: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """Energy (meV/atom) and force (meV/A) MAE/RMSE of ``predicted`` (``predict_ff``'s energies
    and forces on ``rows``) against ``reference`` in the same layout, by default the store's
    reference labels."""
    energy, forces = predicted
    n_atoms = np.diff(np.asarray(task.store.offsets))[rows]
    if reference is None:
        atoms, _ = atom_rows(task.store, rows)
        reference = (np.asarray(task.store.target("energy"))[rows],
                     np.asarray(task.store.atom_array("forces"))[atoms])  # fmt: skip
    e_ref, f_ref = reference
    e_mae, e_rmse = mae_rmse(energy / n_atoms, e_ref / n_atoms)
    f_mae, f_rmse = mae_rmse(forces.ravel(), f_ref.ravel())
    return {
        "energy_mae_meV_per_atom": 1e3 * e_mae,
        "energy_rmse_meV_per_atom": 1e3 * e_rmse,
        "force_mae_meV_per_A": 1e3 * f_mae,
        "force_rmse_meV_per_A": 1e3 * f_rmse,
    }
