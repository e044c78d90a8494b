"""A teacher target: the pretrained model's own energy per atom, as a new store's target.

The positive control of the evidence study: the pretrained representation holds this target
exactly (its energy head reads it off the last layer), so a linear probe and MFT must beat a
randomly initialised backbone out of distribution. The new store is the source store (every
structure, target and column) plus ``teacher_energy_per_atom`` (eV/atom, mean readout with per-element references: the
property head then learns the same interaction energy the energy head holds), or the
structures the model can take when elements outside its set are dropped (counted in the source
record); its provenance names the pretrained model's hash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from atomcollapse.data.batching import collate
from atomcollapse.data.store import Store, subset_structures, write_store
from atomcollapse.errors import InputError
from atomcollapse.models.adapters import rows_with_elements
from atomcollapse.training.model_setup import element_numbers, load_pretrained
from atomcollapse.training.streams import chunks, parse_batch_size

TARGET = "teacher_energy_per_atom"


def teacher_energies(model, store: Store, rows: np.ndarray, batch_size: int | str = "auto:4096"):
    """Energies (eV) of ``rows`` from the model's energy head, in order (no forces)."""
    model = model.eval()
    out = []
    with torch.no_grad():
        for chunk in chunks(rows, parse_batch_size(batch_size), store.n_atoms):
            batch = collate(store, chunk, float(model.backbone.cutoff))
            out.append(model(batch, tasks=("energy",))["energy"].double().numpy())
    return np.concatenate(out) if out else np.zeros(0)


def write_teacher_store(
    store: Store,
    pretrained: str | Path,
    out: Path,
    *,
    name: str,
    drop_unsupported_elements: bool = False,
    overwrite: bool = False,
) -> tuple[Path, dict[str, Any]]:
    """Write ``store`` plus the teacher target to ``out``; returns the path and its record."""
    model, meta, digest = load_pretrained(pretrained)
    rows = np.arange(len(store))
    known = element_numbers(meta.get("elements", []))
    dropped = 0
    if known:
        rows, dropped = rows_with_elements(store.numbers, store.offsets, rows, known)
        if dropped and not drop_unsupported_elements:
            raise InputError(
                f"{dropped:,} structures have elements outside the model's set; pass "
                f"--drop-unsupported-elements to leave them out",
                file=store.path,
            )
    if len(rows) == 0:
        raise InputError("no structures left with the model's elements", file=store.path)
    energies = teacher_energies(model, store, rows)
    structures = store.to_structures()
    if dropped:
        structures = subset_structures(structures, rows)
    n_atoms = np.diff(structures.offsets)
    structures.targets[TARGET] = energies / n_atoms
    structures.target_units[TARGET] = "eV"
    m = store.manifest
    info = {t: {k: v for k, v in d.items() if k not in ("count", "mean", "std", "min", "max", "unit")}
            for t, d in m["targets"].items()}  # fmt: skip
    info[TARGET] = {"readout": "mean", "atom_refs": True, "report_unit": "meV",
                    "description": "the pretrained model's own energy per atom (teacher target)"}  # fmt: skip
    record = {"format": "teacher", "parent": m["name"], "parent_hash": m["content_hash"],
              "pretrained": str(pretrained), "pretrained_hash": digest,
              "n_dropped_unsupported_elements": int(dropped), "parent_source": m["source"]}  # fmt: skip
    path = write_store(structures, out, name=name, kind=m["kind"], source=record,
                       target_info=info, extra=m.get("extra", {}), overwrite=overwrite)  # fmt: skip
    return path, record
