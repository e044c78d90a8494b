"""What each method hands back before the shared i.i.d. draw."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from atomcollapse.splits.artifact import OOD_TEST, TRAIN


@dataclass
class Selection:
    """Per-structure codes (OOD_TEST, a fixed ID_TEST, or TRAIN = the pool) and what was done.

    Only representatives' codes count; duplicates follow them afterwards. ``groups`` (a label per
    structure: scaffold, formula, cluster, ...) must never straddle the pool and ood_test.
    """

    codes: np.ndarray
    details: dict[str, Any]
    groups: np.ndarray | None = None
    group_kind: str | None = None
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    draw_id: bool = True


def codes_with_ood(n: int, ood: np.ndarray) -> np.ndarray:
    codes = np.full(n, TRAIN, dtype=np.uint8)
    codes[ood] = OOD_TEST
    return codes
