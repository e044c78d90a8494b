"""Apply a fine-tuned run (or any checkpoint) to structures: the property, energies and forces.

A run directory is read through its best checkpoint (``best.pt``) and its manifest (target and
units); a checkpoint file alone works too (units from a run manifest beside it, when there is
one). Structures come from a store (optionally one partition of a split) or from in-memory
arrays (ASE frames). The property comes back in the target's stored unit, energies in eV and
forces in eV/A, exactly as ``train`` evaluates them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from atomcollapse.constants import SYMBOLS
from atomcollapse.data.batch import AtomsBatch
from atomcollapse.data.batching import batch_of, collate
from atomcollapse.data.store import Store
from atomcollapse.errors import InputError
from atomcollapse.models.checkpoint import load_checkpoint
from atomcollapse.models.model import AtomisticModel
from atomcollapse.training.model_setup import element_numbers
from atomcollapse.training.streams import chunks, parse_batch_size

BEST = "best.pt"


@dataclass
class Predictor:
    """A trained model with what its outputs mean."""

    model: AtomisticModel
    target: str | None
    unit: str
    elements: set[int]
    source: Path

    @property
    def has_property(self) -> bool:
        return "property" in self.model.heads

    @property
    def has_energy(self) -> bool:
        return "energy" in self.model.heads

    def check_elements(self, numbers: np.ndarray, where: str | Path) -> None:
        unknown = sorted(set(np.unique(np.asarray(numbers)).tolist()) - self.elements)
        if self.elements and unknown:
            names = ", ".join(SYMBOLS[z] if 0 < z < len(SYMBOLS) else str(z) for z in unknown)
            raise InputError(f"elements {names} are not in the model's element set", file=where)

    def outputs(self, batch: AtomsBatch, forces: bool) -> dict[str, torch.Tensor]:
        tasks = tuple(t for t in ("property", "energy") if t in self.model.heads)
        if forces and self.has_energy:
            return self.model(batch, tasks=tasks, compute_forces=True)
        with torch.no_grad():
            return self.model(batch, tasks=tasks)


def load_predictor(path: str | Path) -> Predictor:
    """A run directory (its ``best.pt``) or a checkpoint file, in eval mode."""
    path = Path(path)
    if not path.exists():
        raise InputError("no such run directory or checkpoint", file=path)
    ckpt = path / BEST if path.is_dir() else path
    if path.is_dir() and not ckpt.is_file():
        raise InputError(f"run directory has no best checkpoint ({BEST})", file=path)
    model, meta = load_checkpoint(ckpt)
    extra = meta.get("extra") or {}
    manifest = _run_manifest(ckpt.parent)
    target = manifest.get("target") or extra.get("target")
    unit = str(manifest.get("unit") or "")
    return Predictor(model.eval(), target, unit, element_numbers(meta.get("elements", [])), ckpt)


def _run_manifest(folder: Path) -> dict[str, Any]:
    try:
        m = json.loads((folder / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    return m if isinstance(m, dict) and m.get("artifact") == "run" else {}


def _frames(
    pred: Predictor, batches: Iterator[tuple[AtomsBatch, list[str]]], forces: bool
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    rows, force_rows = [], []
    for batch, ids in batches:
        out = pred.outputs(batch, forces)
        n_atoms = (batch.offsets[1:] - batch.offsets[:-1]).numpy()
        table: dict[str, Any] = {"id": ids, "n_atoms": n_atoms}
        if pred.has_property:
            table["prediction"] = out["property"].detach().double().numpy()
            table["unit"] = pred.unit
        if pred.has_energy:
            table["energy_eV"] = out["energy"].detach().double().numpy()
        rows.append(pd.DataFrame(table))
        if forces and pred.has_energy:
            f = out["forces"].detach().double().numpy()
            force_rows.append(pd.DataFrame({
                "id": np.repeat(ids, n_atoms), "atom": np.concatenate([np.arange(n) for n in n_atoms]),
                "fx_eV_per_A": f[:, 0], "fy_eV_per_A": f[:, 1], "fz_eV_per_A": f[:, 2],
            }))  # fmt: skip
    frame = pd.concat(rows, ignore_index=True)
    return frame, (pd.concat(force_rows, ignore_index=True) if force_rows else None)


def predict_store(
    pred: Predictor,
    store: Store,
    rows: np.ndarray,
    *,
    batch_size: int | str = "auto:4096",
    forces: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Per-structure predictions for ``rows`` of ``store`` (in order), and per-atom forces."""
    rows = np.asarray(rows, dtype=np.int64)
    if len(rows) == 0:
        raise InputError("no structures to predict", file=store.path)
    pred.check_elements(np.asarray(store.numbers)[_atoms(store, rows)], store.path)
    ids = np.asarray(store.ids).astype(str)
    cutoff = float(pred.model.backbone.cutoff)

    def batches() -> Iterator[tuple[AtomsBatch, list[str]]]:
        for chunk in chunks(rows, parse_batch_size(batch_size), store.n_atoms):
            yield collate(store, chunk, cutoff), ids[chunk].tolist()

    return _frames(pred, batches(), forces)


def _atoms(store: Store, rows: np.ndarray) -> np.ndarray:
    from atomcollapse.data.batching import atom_rows

    return atom_rows(store, rows)[0]


def predict_frames(
    pred: Predictor,
    frames: Sequence[Any],
    ids: Sequence[str],
    *,
    batch_size: int = 64,
    forces: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Predictions for ASE ``Atoms`` (anything with numbers, positions, cell, pbc)."""
    if not frames:
        raise InputError("no structures to predict")
    cutoff = float(pred.model.backbone.cutoff)

    def batches() -> Iterator[tuple[AtomsBatch, list[str]]]:
        for a in range(0, len(frames), batch_size):
            part = frames[a : a + batch_size]
            yield (
                batch_of([f.numbers for f in part], [f.positions for f in part], cutoff,
                         cells=[np.asarray(f.cell) for f in part], pbcs=[f.pbc for f in part]),
                list(ids[a : a + batch_size]),
            )  # fmt: skip

    return _frames(pred, batches(), forces)


@dataclass
class Predictions:
    """Per-structure predictions and, when asked for, per-atom forces (eV/A)."""

    structures: pd.DataFrame
    forces: pd.DataFrame | None = None


def predict(
    pred: Predictor,
    data: Sequence[str | Path],
    *,
    split: str | Path | None = None,
    partition: str | None = None,
    forces: bool = False,
    data_root: str | Path | None = None,
) -> Predictions:
    """Predictions for one store (all of it, or one ``partition`` of ``split``, with the
    partition and the reference values) or for the frames of ASE-readable files (ids from
    their ``id`` info, else ``<file name>:<frame>``)."""
    from atomcollapse.data.store import open_store, store_path

    if (split is None) != (partition is None):
        raise InputError("--split and --partition go together")
    if not data:
        raise InputError("no data given")
    found = store_path(data[0], data_root) if len(data) == 1 else None
    if found is not None and (found / "manifest.json").is_file():
        from atomcollapse.splits.artifact import load_split

        store = open_store(found)
        rows = np.arange(len(store))
        if split is not None and partition is not None:
            s = load_split(split)
            s.check_dataset(store)
            rows = s.indices(partition)
        frame, f_frame = predict_store(pred, store, rows, forces=forces)
        if partition is not None:
            frame.insert(1, "partition", partition)
            if pred.target and pred.target in store.target_names:
                frame["reference"] = np.asarray(store.target(pred.target))[rows]
        return Predictions(frame, f_frame)
    if split is not None:
        raise InputError("--split needs --data to name a store", file=split)
    from atomcollapse.data.sources.extxyz import read_frames

    frames, ids = [], []
    for f in data:
        for k, atoms in enumerate(read_frames(Path(f))):
            pred.check_elements(atoms.numbers, f"{f} frame {k}")
            frames.append(atoms)
            ids.append(str(atoms.info.get("id", f"{Path(f).name}:{k}")))
    return Predictions(*predict_frames(pred, frames, ids, forces=forces))
