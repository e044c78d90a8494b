"""Real pretrained models whose weights ship in wheels, as :class:`AtomisticModel`s.

===================  ===========================  ============================  ===============
name                 model                        elements                      extra
===================  ===========================  ============================  ===============
``ani1x``            ANI-1x, 8-member ensemble    H, C, N, O (molecules only)   ``ani``
``ani1x:K``          ANI-1x member K (0..7)       H, C, N, O (molecules only)   ``ani``
``ani1ccx``          ANI-1ccx, 8-member ensemble  H, C, N, O (molecules only)   ``ani``
``sevennet-0``       SevenNet-0 (MPtrj)           89 elements, periodic         ``sevenn``
``sevennet-l3i5``    SevenNet-l3i5 (MPtrj)        89 elements, periodic         ``sevenn``
``sevennet-mf-0:M``  SevenNet-MF-0, modal M       89 elements, periodic         ``sevenn``
                     (PBE or R2SCAN)
``so3lr``            SO3LR (so3krates-torch)      H C N O F P S Cl, periodic    ``so3lr``
``chgnet``           CHGNet 0.3.0 (MPtrj)         94 elements (H-Pu), periodic  ``chgnet``
``chgnet:V``         CHGNet 0.3.0, 0.2.0, r2scan  94 elements (H-Pu), periodic  ``chgnet``
``mace:PATH[:H]``    a ScaleShiftMACE file, head  the model's z table           ``mace``
``mace-mp-0`` ...    MACE foundation models       the model's z table           ``mace``
``deepmd:PATH[:B]``  a DeePMD checkpoint, branch  its type map                  ``deepmd``
===================  ===========================  ============================  ===============

Which module builds which name, and the backbone/head types of checkpoints, is the registry's
(:mod:`atomcollapse.models.registry`). :func:`load_pretrained_with_meta` gives the backbone with
its own pretrained energy head (``"energy"``, eV) for MFT; a strategy adds the new property head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atomcollapse.artifacts import sha256_arrays
from atomcollapse.errors import InputError
from atomcollapse.models import registry
from atomcollapse.models.adapters.elements import describe_drop, rows_with_elements
from atomcollapse.models.base import Backbone
from atomcollapse.models.checkpoint import load_checkpoint
from atomcollapse.models.model import AtomisticModel

__all__ = [
    "describe_drop", "is_pretrained_name", "load_pretrained", "load_pretrained_with_meta",
    "package_version", "rows_with_elements", "scratch_backbone", "weights_hash",
]  # fmt: skip


def is_pretrained_name(name_or_path: str | Path) -> bool:
    """True when ``name_or_path`` is a registered pretrained name, or a name of a registered
    family with an unknown variant (``chgnet:9.9``: refused by name), and no such file exists."""
    name = str(name_or_path)
    known = registry.entry_for(name) or registry.family_for(name)
    return known is not None and not Path(name_or_path).exists()


def load_pretrained(name_or_path: str | Path) -> AtomisticModel:
    """A bundled pretrained model by name, or any checkpoint file; it has an ``"energy"`` head."""
    return load_pretrained_with_meta(name_or_path)[0]


def load_pretrained_with_meta(name_or_path: str | Path) -> tuple[AtomisticModel, dict, str]:
    """``(model, meta, hash)`` as ``training.model_setup.load_pretrained`` returns for files.

    For a bundled name, ``meta`` holds ``elements`` (symbols), ``name``, ``source`` (package and
    version) and ``kind``; the hash is the sha256 of the weights (``state_dict``), so a run
    records exactly which weights it started from.
    """
    if not is_pretrained_name(name_or_path):
        model, meta = load_checkpoint(name_or_path)
        return model, meta, meta["hash"]
    model, meta = registry.load_named(str(name_or_path))
    return model, meta, meta["hash"]


def weights_hash(model: AtomisticModel) -> str:
    return sha256_arrays({k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})


def scratch_backbone(model_args: dict[str, Any], seed: int) -> Backbone:
    """The adapter's architecture with random weights drawn from ``seed`` (the scratch arm)."""
    args = dict(model_args)
    kind = args.pop("type", None)
    factory = registry.backbone_factory(str(kind)) if kind != "painn" else None
    if factory is None:
        raise InputError(f"not an adapter backbone type: {kind!r}")
    backbone = factory(**args)
    backbone.reinitialize(seed)
    return backbone


def package_version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"
