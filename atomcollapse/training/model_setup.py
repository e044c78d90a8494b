"""Building models for training: fresh backbones, new heads, pretrained checkpoints, checks.

Every random initialisation runs under its own seed (the backbone's, the head's), so the new
property head starts from the same weights whatever the strategy built before it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from atomcollapse.constants import SYMBOLS, atomic_number
from atomcollapse.data.batching import atom_rows, collate, packed_numbers
from atomcollapse.data.store import Store
from atomcollapse.errors import InputError
from atomcollapse.models import adapters
from atomcollapse.models.base import Backbone
from atomcollapse.models.checkpoint import checkpoint_hash, load_checkpoint
from atomcollapse.models.heads import EnergyHead, PropertyHead, select_features
from atomcollapse.models.model import AtomisticModel
from atomcollapse.models.painn import PaiNN
from atomcollapse.training.config import HeadConfig, ModelConfig
from atomcollapse.training.seeding import seeded


def painn_args(cfg: ModelConfig) -> dict[str, Any]:
    return {
        "type": "painn",
        "hidden": cfg.hidden,
        "layers": cfg.layers,
        "n_rbf": cfg.rbf,
        "cutoff": cfg.cutoff,
    }


def new_backbone(args: dict[str, Any], seed: int) -> Backbone:
    """A randomly initialised backbone from ``model_args``: PaiNN, or an adapter's architecture
    (``ani``, ``sevennet``, ``chgnet``) with random weights (the scratch arm of a bundled model)."""
    args = dict(args)
    kind = args.get("type", "painn")
    if kind != "painn":
        return adapters.scratch_backbone(args, seed)
    args.pop("type", None)
    with seeded(seed):
        return PaiNN(**args)


def store_elements(store: Store, rows: np.ndarray | None = None) -> list[int]:
    """Sorted atomic numbers present in ``rows`` of ``store`` (all rows when None)."""
    numbers = np.asarray(store.numbers)
    if rows is not None:
        numbers = numbers[atom_rows(store, np.asarray(rows, dtype=np.int64))[0]]
    return sorted(int(z) for z in np.unique(numbers))


def new_property_head(
    backbone: Backbone, store: Store, rows: np.ndarray, target: str, cfg: HeadConfig, seed: int
) -> PropertyHead:
    """A property head (readout from the store's manifest) fitted to the train rows' statistics."""
    readout = store.manifest["targets"][target].get("readout", "sum")
    values = np.asarray(store.target(target), dtype=np.float64)[rows]
    width = feature_width(backbone, store, int(rows[0]), cfg.feature_layer)
    head = PropertyHead(width, readout=readout, mlp_hidden=cfg.hidden or None, seed=seed,
                        feature_layer=cfg.feature_layer)  # fmt: skip
    refs = uses_atom_refs(store, target, cfg)
    head.fit_normalisation(*packed_numbers(store, rows), values, atom_refs=refs)
    return head


def uses_atom_refs(store: Store, target: str, cfg: HeadConfig) -> bool:
    """Whether the property head fits per-element references (``head.atom_refs`` resolved)."""
    if isinstance(cfg.atom_refs, bool):
        return cfg.atom_refs
    info = store.manifest["targets"][target]
    return bool(info.get("atom_refs", info.get("readout", "sum") == "sum"))


def feature_width(backbone: Backbone, store: Store, row: int, layer: int | str) -> int:
    """Width of the features ``layer`` selects (one structure through the backbone to see)."""
    if layer == "last":
        return int(backbone.feature_dim)
    device = next(iter(backbone.parameters()), torch.zeros(())).device
    batch = collate(store, np.array([row]), float(backbone.cutoff)).to(device)
    with torch.no_grad():
        out = backbone(batch)
    n = len(out.layers)
    if layer != "all" and not -n <= int(layer) < n:
        raise InputError(
            f"setting 'head.feature_layer': {layer} is outside the backbone's {n} feature "
            f"layers (0 = after the embedding .. {n - 1}, or -1 for the last, or 'all')"
        )
    return int(select_features(out, layer).shape[-1])


def loss_scale(head: PropertyHead, store: Store, rows: np.ndarray, target: str) -> float:
    """Standard deviation (target unit) of the train targets after the head's atom references."""
    numbers, offsets = packed_numbers(store, rows)
    refs = torch.as_tensor(head.atom_refs).detach().cpu().double().numpy()
    ref_part = np.add.reduceat(refs[numbers], offsets[:-1])
    if head.readout == "mean":
        ref_part = ref_part / np.diff(offsets)
    residual = np.asarray(store.target(target), dtype=np.float64)[rows] - ref_part
    std = float(residual.std())
    return std if std > 1e-12 else 1.0


def new_energy_head(backbone: Backbone, store: Store, rows: np.ndarray, seed: int) -> EnergyHead:
    """An energy head with per-element atom energies fitted on the train rows (eV)."""
    numbers, offsets = packed_numbers(store, rows)
    energies = np.asarray(store.target("energy"), dtype=np.float64)[rows]
    atoms, _ = atom_rows(store, rows)
    forces = np.asarray(store.atom_array("forces"))[atoms]
    head = EnergyHead(backbone.feature_dim, seed=seed)
    head.fit_normalisation(numbers, offsets, energies, forces)
    return head


def element_numbers(elements: list) -> set[int]:
    """Atomic numbers of a checkpoint's element set (symbols or numbers)."""
    return {int(e) if not isinstance(e, str) else atomic_number(e) for e in elements}


def load_pretrained(path: str | Path) -> tuple[AtomisticModel, dict[str, Any], str]:
    """The pretrained model, its metadata and its hash; it must carry an energy head.

    ``path`` is a checkpoint file or a bundled model's name (``ani1x``, ``ani1x:0``,
    ``ani1ccx``, ``sevennet-0``, ``chgnet``): its hash is then the sha256 of its weights.
    """
    if adapters.is_pretrained_name(path):
        model, meta, digest = adapters.load_pretrained_with_meta(str(path))
        meta = {**meta, "path": str(path)}
    else:
        model, meta = load_checkpoint(path)
        digest = checkpoint_hash(path)
    if "energy" not in model.heads:
        raise InputError(
            "checkpoint has no energy/force head (not a pretrained force field)", file=path
        )
    return model, meta, digest


def check_elements(
    store: Store, rows: np.ndarray | None, meta: dict[str, Any], ckpt: str | Path
) -> None:
    """Every element of ``rows`` of the data must be in the pretrained model's element set."""
    known = element_numbers(meta.get("elements", []))
    missing = [z for z in store_elements(store, rows) if z not in known]
    if known and missing:
        names = ", ".join(SYMBOLS[z] for z in missing)
        raise InputError(
            f"elements {names} of dataset {store.name!r} are not in the checkpoint's "
            f"element set ({', '.join(SYMBOLS[z] for z in sorted(known))}); pass "
            "--drop-unsupported-elements to leave such structures out",
            file=ckpt,
        )


def build_model(backbone: Backbone, heads: dict[str, nn.Module]) -> AtomisticModel:
    return AtomisticModel(backbone, heads)
