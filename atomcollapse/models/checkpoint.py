"""Self-describing checkpoints: model arguments, weights, normalisers, element set, provenance.

A checkpoint is one ``torch.save`` file holding only plain containers and tensors (so it loads
with ``weights_only=True``)::

    {"format": "atomcollapse-checkpoint", "version": 1,
     "model_args": {"backbone": {...,"type": "painn"}, "heads": {name: {..., "type": ...}}},
     "state_dict": {...}, "elements": [...], "training_data_hash": str | None,
     "code_version": str, "extra": {...}}

Head normalisers (atom references, mean/std, scale/shift) are buffers inside ``state_dict``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from atomcollapse.artifacts import code_version as current_code_version
from atomcollapse.artifacts import sha256_file
from atomcollapse.errors import InputError
from atomcollapse.models.base import Backbone
from atomcollapse.models.heads import build_head
from atomcollapse.models.model import AtomisticModel
from atomcollapse.models.painn import PaiNN

FORMAT = "atomcollapse-checkpoint"
VERSION = 1

#: Backbone constructors by ``model_args()["type"]``; adapters register themselves here.
BACKBONES: dict[str, Callable[..., Backbone]] = {"painn": PaiNN}


def register_backbone(name: str, factory: Callable[..., Backbone]) -> None:
    BACKBONES[name] = factory


def save_checkpoint(
    path: str | Path,
    model: AtomisticModel,
    *,
    elements: Sequence[str],
    training_data_hash: str | None = None,
    code_version: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and its provenance to ``path`` atomically (temporary file + rename)."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model_args": {"backbone": model.backbone.model_args(), "heads": model.head_args()},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "elements": list(elements),
        "training_data_hash": training_data_hash,
        "code_version": code_version or current_code_version(),
        "extra": extra or {},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's payload, validated; InputError for a missing, corrupt or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint not found", file=path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt file can fail anywhere inside the unpickler
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"not a readable checkpoint ({reason[:120]})", file=path) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise InputError("not an atomcollapse checkpoint", file=path)
    if payload.get("version") != VERSION:
        raise InputError(
            f"checkpoint version {payload.get('version')} is not supported (expected {VERSION})",
            file=path,
        )
    for key in ("model_args", "state_dict", "elements"):
        if key not in payload:
            raise InputError(f"checkpoint has no {key!r}", file=path)
    return payload


def build_model(model_args: dict[str, Any], *, source: str | Path | None = None) -> AtomisticModel:
    """An untrained model of the architecture described by ``model_args``."""
    import atomcollapse.models.adapters  # noqa: F401  (registers the adapter types)

    backbone_args = dict(model_args.get("backbone") or {})
    kind = backbone_args.pop("type", None)
    if kind not in BACKBONES:
        raise InputError(
            f"unknown backbone type {kind!r}; known: {', '.join(sorted(BACKBONES))}", file=source
        )
    try:
        backbone = BACKBONES[kind](**backbone_args)
        heads = {name: build_head(args) for name, args in (model_args.get("heads") or {}).items()}
    except (TypeError, KeyError, ValueError) as e:
        raise InputError(f"invalid model arguments ({e})", file=source) from None
    return AtomisticModel(backbone, heads)


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[AtomisticModel, dict[str, Any]]:
    """Rebuild the model from its arguments and load its weights.

    Returns ``(model, meta)`` with ``meta`` the payload without ``state_dict``, plus ``"path"``
    and ``"hash"`` (sha256 of the file).
    """
    payload = read_checkpoint(path)
    model = build_model(payload["model_args"], source=path)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise InputError(
            f"weights do not match the model arguments ({first[:160]})", file=path
        ) from None
    model.to(map_location)
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    meta["path"] = str(path)
    meta["hash"] = checkpoint_hash(path)
    return model, meta


def checkpoint_hash(path: str | Path) -> str:
    """sha256 of the checkpoint file."""
    return sha256_file(path)
