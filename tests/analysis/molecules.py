"""A small store of exact ASE g2 molecules, and checkpoints of tiny PaiNN models, for tests."""

from __future__ import annotations

from pathlib import Path

import torch
from ase.build import molecule

from atomcollapse.data.schema import pack
from atomcollapse.data.store import open_store, write_store

NAMES = ("CH3CH2OH", "CH3CN", "H2CO", "C5H5N", "CF4")


def mini_store(path: Path, copies: int = 6):
    mols = [molecule(n) for n in NAMES * copies]
    s = pack([m.numbers for m in mols], [m.positions for m in mols],
             ids=[f"m{i}" for i in range(len(mols))])  # fmt: skip
    s.targets["gap"] = torch.linspace(0.1, 0.5, len(mols)).double().numpy()
    s.target_units["gap"] = "Ha"
    return open_store(write_store(s, path, name=path.name, kind="molecules",
                                  source={"format": "test"}))  # fmt: skip


def tiny_checkpoint(path: Path, *, seed: int, cutoff: float = 6.5, hidden: int = 8) -> Path:
    """A randomly initialised PaiNN with an energy head, saved as a (pretrained) checkpoint."""
    from atomcollapse.models.checkpoint import save_checkpoint
    from atomcollapse.models.heads import EnergyHead
    from atomcollapse.models.model import AtomisticModel
    from atomcollapse.models.painn import PaiNN

    torch.manual_seed(seed)
    backbone = PaiNN(hidden=hidden, layers=2, n_rbf=6, cutoff=cutoff)
    model = AtomisticModel(backbone, {"energy": EnergyHead(hidden, seed=seed)})
    return save_checkpoint(path, model, elements=[1, 6, 7, 8, 9])
