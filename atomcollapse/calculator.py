"""An ASE calculator for any run or checkpoint: energy, forces, stress and the fine-tuned property.

    from atomcollapse.calculator import AtomCollapseCalculator
    atoms.calc = AtomCollapseCalculator.from_run("runs/mft-s0")
    atoms.get_potential_energy(), atoms.get_forces(), atoms.calc.get_property("property")

Energies come from the run's energy head (eV; MFT keeps one, pretrained checkpoints have one),
forces are -dE/dR (eV/A) and, for periodic structures, the stress is ``(1/V) dE/d(strain)``
(eV/A^3, ASE's Voigt order) by autograd through a strain of positions, cell and periodic
shifts. ``property`` is the fine-tuned target in its stored unit (``calc.unit``), the same
number ``atomcollapse predict`` writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress

from atomcollapse.data.batch import AtomsBatch
from atomcollapse.data.batching import batch_of
from atomcollapse.training.predict import Predictor, load_predictor


class AtomCollapseCalculator(Calculator):
    """ASE calculator over a :class:`~atomcollapse.training.predict.Predictor` (float64)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress", "property"]  # noqa: RUF012

    def __init__(self, predictor: Predictor, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.predictor = predictor
        self.model = predictor.model.double().eval()
        self.unit = predictor.unit
        self.target = predictor.target

    @classmethod
    def from_run(cls, path: str | Path, **kwargs: Any) -> AtomCollapseCalculator:
        """A run directory (its best checkpoint) or a checkpoint file."""
        return cls(load_predictor(path), **kwargs)

    def _batch(self, atoms: Any) -> AtomsBatch:
        self.predictor.check_elements(atoms.numbers, "atoms")
        return batch_of([atoms.numbers], [atoms.positions], float(self.model.backbone.cutoff),
                        cells=[np.asarray(atoms.cell)], pbcs=[atoms.pbc], dtype=torch.float64)  # fmt: skip

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        batch = self._batch(self.atoms)
        model = self.model
        if "property" in model.heads:
            with torch.no_grad():
                self.results["property"] = float(model(batch, tasks=("property",))["property"][0])
        if "energy" not in model.heads:
            return
        periodic = bool(self.atoms.pbc.any())
        strain = torch.zeros(3, 3, dtype=torch.float64, requires_grad=periodic)
        positions = batch.positions.detach().requires_grad_(True)
        deform = torch.eye(3, dtype=torch.float64) + strain
        strained = AtomsBatch(
            numbers=batch.numbers, positions=positions @ deform, batch=batch.batch,
            offsets=batch.offsets, edge_index=batch.edge_index, shifts=batch.shifts @ deform,
            cell=None if batch.cell is None else batch.cell @ deform, pbc=batch.pbc,
        )  # fmt: skip
        with torch.enable_grad():
            energy = model.heads["energy"](model.backbone(strained), strained).sum()
            wrt = [positions, strain] if periodic else [positions]
            grads = torch.autograd.grad(energy, wrt)
        e = float(energy.detach())
        self.results["energy"] = self.results["free_energy"] = e
        self.results["forces"] = -grads[0].numpy()
        if periodic:
            volume = abs(float(np.linalg.det(np.asarray(self.atoms.cell))))
            self.results["stress"] = full_3x3_to_voigt_6_stress(grads[1].numpy() / volume)
