"""mft: multi-task fine-tuning; the pretrained energy/force head keeps training on force-field data.

``sample`` mixing (the study, DeePMD-kit multi-task): each optimiser step trains one task, the
property task with probability ``property_prob``, drawn from ``(task_seed, step)`` alone; a
force-field step's loss is scaled by ``aux_weight`` (1 = the study). ``sum``: every step trains
``L_prop + aux_weight * L_ff``. ``labels``: the force-field store's reference energies and
forces, or ``pseudo`` labels from a frozen copy of the pretrained model (MACE-style replay).
``ff_batch_size``: the force-field batch, ``auto:N`` (structures until N atoms, DeePMD's
``auto:128``) or a structure count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from atomcollapse.training.seeding import uniform
from atomcollapse.training.strategies.base import Strategy, Task
from atomcollapse.training.streams import batch_size_problem


@dataclass(frozen=True)
class MFTSettings:
    mixing: Literal["sample", "sum"] = "sample"
    property_prob: float = 0.5
    aux_weight: float = 1.0
    labels: Literal["reference", "pseudo"] = "reference"
    ff_batch_size: int | str = "auto:128"

    def problems(self) -> list[tuple[str, str]]:
        out = []
        if not 0.0 < self.property_prob < 1.0:
            out.append(("property_prob", "must be in (0, 1)"))
        if not self.aux_weight >= 0:
            out.append(("aux_weight", "must not be negative"))
        problem = batch_size_problem(self.ff_batch_size)
        if problem:
            out.append(("ff_batch_size", problem))
        return out


class MFT(Strategy):
    name = "mft"
    summary = "multi-task: the pretrained energy/force head keeps training on --ff-data"
    order = 40
    needs_ff = True
    heads = ("property", "energy")
    Settings = MFTSettings

    def tasks(self, step: int) -> list[Task]:
        s = self.settings
        if s.mixing == "sum":
            return [("property", 1.0), ("ff", s.aux_weight)]
        if uniform(self.task_seed, step) < s.property_prob:
            return [("property", 1.0)]
        return [("ff", s.aux_weight)]

    def effective_settings(self) -> dict[str, Any]:
        out = super().effective_settings()
        if self.settings.mixing == "sum":
            out.pop("property_prob")
        return out


STRATEGY = MFT
