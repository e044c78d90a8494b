"""Small MACE models built and saved by mace-torch's own code (``ScaleShiftMACE``,
``torch.save(model, path)``, as MACE writes ``.model`` files), for the MACE adapter's tests.
Needs the ``mace`` extra (``make setup-mace``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

#: the reason MACE tests skip in an environment without mace-torch
SKIP = pytest.mark.skipif(
    importlib.util.find_spec("mace") is None,
    reason="the 'mace' extra (mace-torch==0.3.16) lives in its own environment: make test-mace",
)
#: H, C, N, O, F
ELEMENTS = (1, 6, 7, 8, 9)
#: per-element isolated-atom energies (eV), one row per head
E0 = np.array([-13.6, -1029.4, -1485.3, -2042.6, -2713.2])


def save_model(
    path: Path,
    *,
    heads: tuple[str, ...] = ("Default",),
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    pair_repulsion: bool = False,
    layers: int = 2,
    elements: tuple[int, ...] = ELEMENTS,
) -> Path:
    """A 2-layer ScaleShiftMACE (8x0e + 8x1o, l <= 2, r_max 5 A) with random weights drawn
    from ``seed`` (moved off MACE's initialisation, so that every readout matters), saved with
    ``torch.save(model, path)`` in ``dtype``."""
    from atomcollapse.models.adapters.mace_files import mace_modules

    modules = mace_modules()  # imports e3nn 0.4.4 as mace does (first)
    from e3nn import o3

    n = len(heads)
    e0 = np.stack([E0[: len(elements)] + 0.3 * k for k in range(n)])
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        torch.manual_seed(seed)
        model = modules.ScaleShiftMACE(
            r_max=5.0, num_bessel=6, num_polynomial_cutoff=5, max_ell=2,
            interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
            interaction_cls_first=modules.interaction_classes[
                "RealAgnosticResidualInteractionBlock"],
            num_interactions=layers, num_elements=len(elements),
            hidden_irreps=o3.Irreps("8x0e + 8x1o"), MLP_irreps=o3.Irreps("8x0e"),
            gate=torch.nn.functional.silu, atomic_energies=e0 if n > 1 else e0[0],
            avg_num_neighbors=8.0, atomic_numbers=list(elements), correlation=2,
            radial_MLP=[16, 16], pair_repulsion=pair_repulsion, heads=list(heads),
            atomic_inter_scale=[1.3 + 0.2 * k for k in range(n)] if n > 1 else 1.3,
            atomic_inter_shift=[0.1 - 0.05 * k for k in range(n)] if n > 1 else 0.1,
        )  # fmt: skip
    finally:
        torch.set_default_dtype(default)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    torch.save(model.to(dtype), path)
    return path
