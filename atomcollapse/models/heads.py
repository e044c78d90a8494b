"""Heads: per-atom MLPs on backbone features, read out per structure.

- :class:`EnergyHead`: per-atom energies (MLP * scale + shift + per-element reference), summed per
  structure. Forces are -dE/dR, taken by :class:`~atomcollapse.models.model.AtomisticModel`.
- :class:`PropertyHead`: one scalar target with a ``sum`` or ``mean`` readout, optional
  per-element linear atom references (fitted on train with :func:`fit_atom_refs`) and
  standardisation with train statistics. Predictions are in the target's stored unit.

Normalisers are buffers, so they travel with ``state_dict`` and checkpoints. ``seed`` makes the
initial weights a function of the seed alone, whatever the global RNG has done before.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from atomcollapse.constants import MAX_Z, SYMBOLS, atomic_number
from atomcollapse.data.batch import AtomsBatch
from atomcollapse.models.base import BackboneOutput

READOUTS = ("sum", "mean")


def _mlp(n_in: int, hidden: int, seed: int | None) -> nn.Sequential:
    def build() -> nn.Sequential:
        return nn.Sequential(nn.Linear(n_in, hidden), nn.SiLU(), nn.Linear(hidden, 1))

    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _element_numbers(elements: Sequence[str | int] | None, numbers: np.ndarray) -> np.ndarray:
    if elements is None:
        return np.unique(numbers).astype(np.int64)
    return np.array(
        sorted({e if isinstance(e, (int, np.integer)) else atomic_number(e) for e in elements}),
        dtype=np.int64,
    )


def element_counts(numbers: np.ndarray, offsets: np.ndarray, zs: np.ndarray) -> np.ndarray:
    """(B, len(zs)) count of each element in each structure of the packed arrays."""
    numbers = np.asarray(numbers, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    column = np.full(MAX_Z + 1, -1, dtype=np.int64)
    column[zs] = np.arange(zs.size)
    col = column[numbers]
    if (col < 0).any():
        z = int(numbers[np.argmax(col < 0)])
        raise ValueError(f"element {SYMBOLS[z]} is not in the element set")
    struct = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    counts = np.zeros((offsets.size - 1, zs.size))
    np.add.at(counts, (struct, col), 1.0)
    return counts


def fit_atom_refs(
    numbers: np.ndarray,
    offsets: np.ndarray,
    values: np.ndarray,
    elements: Sequence[str | int] | None = None,
) -> np.ndarray:
    """Per-element references by least squares of ``values`` on element counts.

    ``numbers``/``offsets`` are the packed atoms of the (training) structures, ``values`` (B,)
    one value per structure. Returns a (MAX_Z + 1,) array in the unit of ``values`` per atom,
    zero for elements outside ``elements`` (default: those present).
    """
    zs = _element_numbers(elements, numbers)
    counts = element_counts(numbers, offsets, zs)
    coef, *_ = np.linalg.lstsq(counts, np.asarray(values, dtype=np.float64), rcond=None)
    refs = np.zeros(MAX_Z + 1)
    refs[zs] = coef
    return refs


def _readout(per_atom: torch.Tensor, batch: AtomsBatch, mode: str) -> torch.Tensor:
    out = per_atom.new_zeros(batch.n_structures).index_add_(0, batch.batch, per_atom)
    if mode == "mean":
        out = out / (batch.offsets[1:] - batch.offsets[:-1]).to(out.dtype)
    return out


def _copy_atom_refs(buffer: torch.Tensor, atom_refs: np.ndarray | torch.Tensor) -> None:
    """Overwrite a per-element reference buffer (index = atomic number) with ``atom_refs``."""
    refs = torch.as_tensor(np.asarray(atom_refs)[: buffer.numel()])
    buffer.zero_()
    buffer[: refs.numel()] = refs.to(buffer)


def select_features(features: BackboneOutput, layer: int | str = "last") -> torch.Tensor:
    """The per-atom features a property head reads: ``"last"`` (the backbone's ``node``), one
    entry of ``layers`` (0 = after the embedding; negative from the end) or ``"all"`` of them
    concatenated."""
    if layer == "last":
        return features.node
    if layer == "all":
        return torch.cat(list(features.layers), dim=-1)
    return features.layers[int(layer)]


class PropertyHead(nn.Module):
    """MLP on per-atom features -> one scalar per structure, in the target's stored unit.

    ``y = readout_i(mlp(s_i) * std + mean + atom_ref[Z_i])``; with the ``sum`` readout ``mean``
    and ``std`` are per-atom statistics of the residual after atom references. ``feature_layer``
    picks the backbone features ``s_i`` (see :func:`select_features`).
    """

    mean: torch.Tensor
    std: torch.Tensor
    atom_refs: torch.Tensor

    def __init__(
        self,
        feature_dim: int,
        *,
        readout: str = "mean",
        mlp_hidden: int | None = None,
        seed: int | None = None,
        max_z: int = MAX_Z,
        feature_layer: int | str = "last",
    ) -> None:
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        self.feature_dim = feature_dim
        self.feature_layer = feature_layer
        self.readout = readout
        self.mlp_hidden = mlp_hidden or max(feature_dim // 2, 1)
        self.max_z = max_z
        self.mlp = _mlp(feature_dim, self.mlp_hidden, seed)
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("std", torch.ones(()))
        self.register_buffer("atom_refs", torch.zeros(max_z + 1))

    def head_args(self) -> dict:
        return {
            "type": "property",
            "feature_dim": self.feature_dim,
            "readout": self.readout,
            "mlp_hidden": self.mlp_hidden,
            "max_z": self.max_z,
            **({} if self.feature_layer == "last" else {"feature_layer": self.feature_layer}),
        }

    def set_normalisation(
        self, *, mean: float, std: float, atom_refs: np.ndarray | torch.Tensor | None = None
    ) -> None:
        if not std > 0:
            raise ValueError(f"std must be > 0, got {std}")
        self.mean.fill_(float(mean))
        self.std.fill_(float(std))
        if atom_refs is not None:
            _copy_atom_refs(self.atom_refs, atom_refs)

    def fit_normalisation(
        self,
        numbers: np.ndarray,
        offsets: np.ndarray,
        values: np.ndarray,
        *,
        atom_refs: bool | None = None,
        elements: Sequence[str | int] | None = None,
    ) -> dict[str, float]:
        """Fit atom references (default: with the sum readout) and mean/std on training data."""
        values = np.asarray(values, dtype=np.float64)
        n_atoms = np.diff(np.asarray(offsets)).astype(np.float64)
        use_refs = self.readout == "sum" if atom_refs is None else atom_refs
        # references are per-atom contributions to the structure's total (value * N_atoms for
        # the mean readout), so that the readout of ``atom_ref[Z_i]`` is the composition fit
        totals = values if self.readout == "sum" else values * n_atoms
        refs = (
            fit_atom_refs(numbers, offsets, totals, elements) if use_refs else np.zeros(MAX_Z + 1)
        )
        ref_sum = np.add.reduceat(
            refs[np.asarray(numbers, dtype=np.int64)], np.asarray(offsets)[:-1]
        )
        if self.readout == "sum":
            residual = (values - ref_sum) / n_atoms
        else:
            residual = values - ref_sum / n_atoms
        std = float(residual.std())
        std = std if std > 1e-12 else 1.0
        self.set_normalisation(mean=float(residual.mean()), std=std, atom_refs=refs)
        return {"mean": float(residual.mean()), "std": std, "atom_refs": bool(use_refs)}

    def forward(self, features: BackboneOutput, batch: AtomsBatch) -> torch.Tensor:
        s = select_features(features, self.feature_layer)
        per_atom = self.mlp(s).squeeze(-1) * self.std + self.mean
        per_atom = per_atom + self.atom_refs[batch.numbers]
        return _readout(per_atom, batch, self.readout)


class EnergyHead(nn.Module):
    """Per-atom energies ``mlp(s_i) * scale + shift + atom_ref[Z_i]`` summed per structure (eV)."""

    scale: torch.Tensor
    shift: torch.Tensor
    atom_refs: torch.Tensor

    def __init__(
        self,
        feature_dim: int,
        *,
        mlp_hidden: int | None = None,
        seed: int | None = None,
        max_z: int = MAX_Z,
    ) -> None:
        super().__init__()
        self.feature_dim = feature_dim
        self.mlp_hidden = mlp_hidden or max(feature_dim // 2, 1)
        self.max_z = max_z
        self.mlp = _mlp(feature_dim, self.mlp_hidden, seed)
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("shift", torch.zeros(()))
        self.register_buffer("atom_refs", torch.zeros(max_z + 1))

    def head_args(self) -> dict:
        return {
            "type": "energy",
            "feature_dim": self.feature_dim,
            "mlp_hidden": self.mlp_hidden,
            "max_z": self.max_z,
        }

    def set_normalisation(
        self, *, scale: float, shift: float, atom_refs: np.ndarray | torch.Tensor | None = None
    ) -> None:
        if not scale > 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.scale.fill_(float(scale))
        self.shift.fill_(float(shift))
        if atom_refs is not None:
            _copy_atom_refs(self.atom_refs, atom_refs)

    def fit_normalisation(
        self,
        numbers: np.ndarray,
        offsets: np.ndarray,
        energies: np.ndarray,
        forces: np.ndarray | None = None,
        *,
        elements: Sequence[str | int] | None = None,
    ) -> dict[str, float]:
        """Atom references by least squares; shift = mean per-atom residual; scale = force RMS
        (or the per-atom residual's std without forces)."""
        energies = np.asarray(energies, dtype=np.float64)
        refs = fit_atom_refs(numbers, offsets, energies, elements)
        ref_sum = np.add.reduceat(
            refs[np.asarray(numbers, dtype=np.int64)], np.asarray(offsets)[:-1]
        )
        residual = (energies - ref_sum) / np.diff(np.asarray(offsets))
        if forces is not None and np.size(forces):
            scale = float(np.sqrt(np.mean(np.square(forces))))
        else:
            scale = float(residual.std())
        scale = scale if scale > 1e-12 else 1.0
        self.set_normalisation(scale=scale, shift=float(residual.mean()), atom_refs=refs)
        return {"scale": scale, "shift": float(residual.mean())}

    def forward(self, features: BackboneOutput, batch: AtomsBatch) -> torch.Tensor:
        per_atom = self.mlp(features.node).squeeze(-1) * self.scale + self.shift
        per_atom = per_atom + self.atom_refs[batch.numbers]
        return _readout(per_atom, batch, "sum")


HEADS: dict[str, type[nn.Module]] = {"property": PropertyHead, "energy": EnergyHead}


def build_head(args: dict) -> nn.Module:
    """Rebuild a head from its ``head_args()``."""
    args = dict(args)
    kind = args.pop("type", None)
    if kind not in HEADS:
        raise KeyError(f"unknown head type {kind!r}; known: {', '.join(HEADS)}")
    feature_dim = args.pop("feature_dim")
    return HEADS[kind](feature_dim, **args)
