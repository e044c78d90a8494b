"""Real pretrained models whose weights ship in wheels, as :class:`AtomisticModel`s.

=================  ==========================  ============================  ===============
name               model                       elements                      extra
=================  ==========================  ============================  ===============
``ani1x``          ANI-1x, 8-member ensemble   H, C, N, O (molecules only)   ``ani``
``ani1x:K``        ANI-1x member K (0..7)      H, C, N, O (molecules only)   ``ani``
``ani1ccx``        ANI-1ccx, 8-member ensemble H, C, N, O (molecules only)   ``ani``
``sevennet-0``     SevenNet-0 (MPtrj)          89 elements, periodic         ``sevenn``
``so3lr``          SO3LR (so3krates-torch)     H C N O F P S Cl, periodic    ``so3lr``
=================  ==========================  ============================  ===============

:func:`load_pretrained` gives the backbone with its own pretrained energy head (``"energy"``,
eV) for MFT; a strategy adds the new property head. Importing this package registers the adapter
types in the checkpoint registries (``BACKBONES``, ``HEADS``) so that checkpoints of adapted models
save and load like native ones; torchani / sevenn / so3krates-torch are imported only when a
model is built.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from atomcollapse.artifacts import sha256_arrays
from atomcollapse.constants import SYMBOLS
from atomcollapse.errors import InputError
from atomcollapse.models.adapters.elements import describe_drop, rows_with_elements
from atomcollapse.models.base import Backbone
from atomcollapse.models.checkpoint import BACKBONES, load_checkpoint, register_backbone
from atomcollapse.models.heads import HEADS
from atomcollapse.models.model import AtomisticModel

if TYPE_CHECKING:
    from atomcollapse.models.adapters.ani import AniBackbone
    from atomcollapse.models.adapters.sevenn import SevenNetBackbone
    from atomcollapse.models.adapters.so3lr import So3lrBackbone

__all__ = [
    "PretrainedSpec", "describe_drop", "is_pretrained_name", "load_pretrained",
    "load_pretrained_with_meta", "parse_name", "rows_with_elements", "scratch_backbone",
]  # fmt: skip

ANI_ELEMENTS = (1, 6, 7, 8)
_NAME = re.compile(r"^(?P<base>ani1x|ani1ccx|sevennet-0|so3lr)(?::(?P<index>\d+))?$")
#: backbone type -> the extra that installs its package
EXTRAS = {"ani": "ani", "sevennet": "sevenn", "so3lr": "so3lr"}
#: single-model weight sets: name -> backbone type
_SINGLE = {"sevennet-0": "sevennet", "so3lr": "so3lr"}


@dataclass(frozen=True)
class PretrainedSpec:
    """A pretrained weight set by name: which adapter, which weights, which ensemble member."""

    name: str
    kind: str  # "ani" | "sevennet" | "so3lr"
    weights: str
    model_index: int | None = None

    @property
    def extra(self) -> str:
        return EXTRAS[self.kind]


def parse_name(name: str) -> PretrainedSpec | None:
    """The spec for a pretrained name (``ani1x``, ``ani1x:3``, ``sevennet-0``, ``so3lr``), else
    None."""
    m = _NAME.match(str(name).strip().lower())
    if m is None:
        return None
    base, index = m.group("base"), m.group("index")
    if base in _SINGLE:
        if index is not None:
            raise InputError(f"{base} is a single model; {name!r} names a member")
        return PretrainedSpec(name=base, kind=_SINGLE[base], weights=base)
    return PretrainedSpec(
        name=str(name).strip().lower(), kind="ani", weights=base,
        model_index=None if index is None else int(index),
    )  # fmt: skip


def is_pretrained_name(name_or_path: str | Path) -> bool:
    """True when ``name_or_path`` names a bundled pretrained model and no such file exists."""
    return parse_name(str(name_or_path)) is not None and not Path(name_or_path).exists()


def _ani_backbone(**kwargs: Any) -> Backbone:
    from atomcollapse.models.adapters.ani import AniBackbone

    return AniBackbone(**kwargs)


def _ani_head(feature_dim: int, **kwargs: Any) -> torch.nn.Module:
    from atomcollapse.models.adapters.ani import AniEnergyHead

    return AniEnergyHead(feature_dim, **kwargs)


def _sevennet_backbone(**kwargs: Any) -> SevenNetBackbone:
    from atomcollapse.models.adapters.sevenn import SevenNetBackbone

    return SevenNetBackbone(**kwargs)


def _sevennet_head(feature_dim: int, **kwargs: Any) -> torch.nn.Module:
    from atomcollapse.models.adapters.sevenn import SevenNetEnergyHead

    return SevenNetEnergyHead(feature_dim, **kwargs)


def _so3lr_backbone(**kwargs: Any) -> So3lrBackbone:
    from atomcollapse.models.adapters.so3lr import So3lrBackbone

    return So3lrBackbone(**kwargs)


def _so3lr_head(feature_dim: int, **kwargs: Any) -> torch.nn.Module:
    from atomcollapse.models.adapters.so3lr import So3lrEnergyHead

    return So3lrEnergyHead(feature_dim, **kwargs)


def register() -> None:
    """Add the adapter types to the checkpoint registries (idempotent)."""
    register_backbone("ani", _ani_backbone)
    register_backbone("sevennet", _sevennet_backbone)
    register_backbone("so3lr", _so3lr_backbone)
    HEADS.setdefault("ani-energy", _ani_head)  # type: ignore[arg-type]
    HEADS.setdefault("sevennet-energy", _sevennet_head)  # type: ignore[arg-type]
    HEADS.setdefault("so3lr-energy", _so3lr_head)  # type: ignore[arg-type]


def load_pretrained(name_or_path: str | Path) -> AtomisticModel:
    """A bundled pretrained model by name, or any checkpoint file; it has an ``"energy"`` head."""
    return load_pretrained_with_meta(name_or_path)[0]


def load_pretrained_with_meta(name_or_path: str | Path) -> tuple[AtomisticModel, dict, str]:
    """``(model, meta, hash)`` as ``training.model_setup.load_pretrained`` returns for files.

    For a bundled name, ``meta`` holds ``elements`` (symbols), ``name``, ``source`` (package and
    version) and ``kind``; the hash is the sha256 of the weights (``state_dict``), so a run
    records exactly which weights it started from.
    """
    spec = parse_name(str(name_or_path))
    elements: tuple[int, ...]
    if spec is None or Path(name_or_path).exists():
        model, meta = load_checkpoint(name_or_path)
        return model, meta, meta["hash"]
    if spec.kind == "ani":
        backbone = _ani_backbone(weights=spec.weights, model_index=spec.model_index)
        head = _ani_head(backbone.feature_dim, weights=spec.weights, model_index=spec.model_index)
        elements, package = ANI_ELEMENTS, "torchani"
    elif spec.kind == "sevennet":
        backbone = _sevennet_backbone(weights=spec.weights)
        head = _sevennet_head(backbone.feature_dim, weights=spec.weights)
        elements, package = backbone.elements, "sevenn"
    else:
        backbone = _so3lr_backbone(weights=spec.weights)
        head = _so3lr_head(backbone.feature_dim, weights=spec.weights)
        elements, package = backbone.elements, "so3krates-torch"
    model = AtomisticModel(backbone, {"energy": head})
    digest = sha256_arrays({k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})
    meta = {
        "kind": "pretrained", "name": spec.name, "elements": [SYMBOLS[z] for z in elements],
        "source": f"{package} {_version(package)}", "hash": digest,
        "model_args": {"backbone": backbone.model_args(), "heads": model.head_args()},
    }  # fmt: skip
    return model, meta, digest


def scratch_backbone(model_args: dict[str, Any], seed: int) -> Backbone:
    """The adapter's architecture with random weights drawn from ``seed`` (the scratch arm)."""
    args = dict(model_args)
    kind = args.pop("type", None)
    if kind not in EXTRAS:
        raise InputError(f"not an adapter backbone type: {kind!r}")
    backbone = cast("AniBackbone | SevenNetBackbone | So3lrBackbone", BACKBONES[kind](**args))
    backbone.reinitialize(seed)
    return backbone


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


register()
