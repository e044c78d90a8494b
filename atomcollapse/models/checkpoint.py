"""Self-describing checkpoints: model arguments, weights, normalisers, element set, provenance.

A checkpoint is one ``torch.save`` file holding only plain containers and tensors (so it loads
with ``weights_only=True``)::

    {"artifact": "checkpoint", "schema_version": 1, "code_version": str, "created_at": str,
     "inputs": {...},   # the manifest header (artifacts.header); older files lack all but
                        # code_version, and keep created_at in extra
     "format": "atomcollapse-checkpoint", "version": 1,
     "model_args": {"backbone": {...,"type": "painn"}, "heads": {name: {..., "type": ...}}},
     "state_dict": {...}, "elements": [...], "training_data_hash": str | None,
     "extra": {...}}

Head normalisers (atom references, mean/std, scale/shift) are buffers inside ``state_dict``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from atomcollapse.artifacts import HEADER_KEYS, atomic_file, header, sha256_file, write_json_atomic
from atomcollapse.errors import InputError, not_a_file
from atomcollapse.models.heads import build_head
from atomcollapse.models.model import AtomisticModel
from atomcollapse.process import fault

FORMAT = "atomcollapse-checkpoint"
VERSION = 1


def save_checkpoint(
    path: str | Path,
    model: AtomisticModel,
    *,
    elements: Sequence[str],
    training_data_hash: str | None = None,
    code_version: str | None = None,
    inputs: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and its provenance to ``path`` atomically; ``inputs`` (what it was
    trained from, with hashes) goes into the manifest header the payload starts with."""
    path = Path(path)
    payload = {
        **header("checkpoint", schema_version=VERSION, inputs=inputs),
        "format": FORMAT,
        "version": VERSION,
        "model_args": {"backbone": model.backbone.model_args(), "heads": model.head_args()},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "elements": list(elements),
        "training_data_hash": training_data_hash,
        "extra": extra or {},
    }
    if code_version is not None:
        payload["code_version"] = code_version
    with atomic_file(path, fsync=True) as tmp:
        torch.save(payload, tmp)
        fault("checkpoint-tmp-written")
    return path


def load_plain(path: str | Path, what: str) -> Any:
    """``torch.load(weights_only=True)``: tensors and plain containers, never code. Whatever
    goes wrong is one short InputError naming ``path`` (not PyTorch's paragraph)."""
    import pickle
    import zipfile

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" in str(e).lower():  # torch names the global it refused to import
            raise InputError(
                f"not an atomcollapse {what}: it holds objects other than tensors and plain "
                "containers (refusing to load it)",
                file=path,
            ) from None
        raise InputError(f"not a readable {what} (corrupt PyTorch data)", file=path) from None
    except (zipfile.BadZipFile, EOFError) as e:
        raise InputError(f"not a readable {what} (truncated or corrupt: {e})", file=path) from None
    except Exception as e:  # a corrupt file can fail anywhere inside the unpickler
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        if len(first) > 100:
            first = type(e).__name__
        raise InputError(f"not a readable {what} ({first})", file=path) from None


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's payload, validated; InputError for a missing, corrupt or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise not_a_file(path, "checkpoint file")
    payload = load_plain(path, "checkpoint")
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
    """An untrained model of the architecture described by ``model_args`` (backbone and head
    types from :mod:`atomcollapse.models.registry`)."""
    from atomcollapse.models import registry

    backbone_args = dict(model_args.get("backbone") or {})
    kind = backbone_args.pop("type", None)
    factory = registry.backbone_factory(str(kind))
    if factory is None:
        raise InputError(
            f"unknown backbone type {kind!r}; known: {', '.join(registry.backbone_types())}",
            file=source,
        )
    try:
        backbone = factory(**backbone_args)
        heads = {name: _head(args) for name, args in (model_args.get("heads") or {}).items()}
    except (TypeError, KeyError, ValueError) as e:
        raise InputError(f"invalid model arguments ({e})", file=source) from None
    return AtomisticModel(backbone, heads)


def _head(args: dict[str, Any]) -> torch.nn.Module:
    """A native head (:func:`build_head`), or an adapter's by its registered type."""
    from atomcollapse.models import registry

    factory = registry.head_factory(str(args.get("type")))
    if factory is None:
        return build_head(args)
    rest = {k: v for k, v in args.items() if k not in ("type", "feature_dim")}
    return factory(args["feature_dim"], **rest)


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu"
) -> tuple[AtomisticModel, dict[str, Any]]:
    """Rebuild the model from its arguments and load its weights.

    Returns ``(model, meta)`` with ``meta`` the payload without ``state_dict``, plus ``"path"``
    and ``"hash"`` (sha256 of the file).
    """
    payload = read_checkpoint(path)
    model = model_from_payload(payload, source=path).to(map_location)
    meta = {k: v for k, v in payload.items() if k != "state_dict"}
    meta["path"] = str(path)
    meta["hash"] = checkpoint_hash(path)
    return model, meta


def model_from_payload(
    payload: dict[str, Any], *, source: str | Path | None = None
) -> AtomisticModel:
    """The model of a checkpoint payload (from :func:`read_checkpoint`) with its weights."""
    model = build_model(payload["model_args"], source=source)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise InputError(
            f"weights do not match the model arguments ({first[:160]})", file=source
        ) from None
    return model


def checkpoint_hash(path: str | Path) -> str:
    """sha256 of the checkpoint file."""
    return sha256_file(path)


#: ``extra`` keys that legitimately differ between rebuilds of the same checkpoint.
VOLATILE_EXTRA: tuple[str, ...] = ("created_at",)
#: Wall-clock durations inside ``extra["log"]`` lines ("finished ... after 440.1 s ...").
_WALL_CLOCK = re.compile(r"\bafter \d+(?:\.\d+)? s\b")


def _raw_bytes(t: torch.Tensor) -> torch.Tensor:
    """The tensor's bytes as a flat uint8 CPU tensor (any dtype, including bfloat16 and bool)."""
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8)


def weights_sha256(state_dict: Mapping[str, torch.Tensor]) -> str:
    """sha256 over the tensors in sorted name order: name, dtype, shape and raw bytes of each.

    Independent of file layout, pickling and provenance, so two checkpoints with the same weights
    hash alike whatever their ``created_at`` or ``code_version``.
    """
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name]
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"state_dict entry {name!r} is a {type(t).__name__}, not a tensor")
        data = _raw_bytes(t).numpy().tobytes()
        header = f"{name}\0{t.dtype}\0{tuple(t.shape)}\0{len(data)}\0"
        h.update(header.encode())
        h.update(data)
    return h.hexdigest()


@dataclass(frozen=True)
class TensorDifference:
    """One state_dict entry that is not bit-for-bit the same in A and B."""

    name: str
    kind: str  # "only in A", "only in B", "shape", "dtype" or "values"
    a: str
    b: str
    max_abs_diff: float | None = None
    n_differ: int | None = None


@dataclass(frozen=True)
class FieldDifference:
    """A metadata value (dotted path, e.g. ``model_args.backbone.hidden``) that differs."""

    path: str
    a: Any
    b: Any


@dataclass(frozen=True)
class CheckpointDiff:
    """What differs between two checkpoints; ``info`` lists differences that do not count."""

    n_tensors_a: int
    n_tensors_b: int
    weights_sha256_a: str
    weights_sha256_b: str
    tensors: tuple[TensorDifference, ...]
    fields: tuple[FieldDifference, ...]
    info: tuple[FieldDifference, ...]

    @property
    def same_weights(self) -> bool:
        return not self.tensors

    @property
    def identical(self) -> bool:
        """Weights, model args, elements, data hash and non-volatile ``extra`` all equal."""
        return not self.tensors and not self.fields


#: Stands for a key that one side of a :class:`FieldDifference` does not have.
ABSENT = "<absent>"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, torch.Tensor):
        return (
            a.dtype == b.dtype and a.shape == b.shape and torch.equal(_raw_bytes(a), _raw_bytes(b))
        )
    return bool(a == b)


def _field_diffs(prefix: str, a: Any, b: Any, *, lists: bool = True) -> list[FieldDifference]:
    """Leaf-by-leaf differences of nested dicts (and of equal-length lists when ``lists``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[FieldDifference] = []
        for k in list(a) + [k for k in b if k not in a]:
            out += _field_diffs(f"{prefix}.{k}", a.get(k, ABSENT), b.get(k, ABSENT))
        return out
    if lists and isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in _field_diffs(f"{prefix}[{i}]", x, y)
        ]
    if _same(a, b):
        return []
    return [FieldDifference(prefix, a, b)]


def _tensor_diff(name: str, a: torch.Tensor, b: torch.Tensor) -> TensorDifference | None:
    if a.dtype != b.dtype:
        return TensorDifference(name, "dtype", str(a.dtype), str(b.dtype))
    if a.shape != b.shape:
        return TensorDifference(name, "shape", str(tuple(a.shape)), str(tuple(b.shape)))
    if torch.equal(_raw_bytes(a), _raw_bytes(b)):
        return None
    x = a.detach().cpu().to(torch.float64) if not a.is_complex() else a.detach().cpu()
    y = b.detach().cpu().to(torch.float64) if not b.is_complex() else b.detach().cpu()
    unequal = ~((x == y) | (torch.isnan(x) & torch.isnan(y)))
    gap = (x - y)[unequal].abs()
    # entries that differ in bits only (0.0 vs -0.0, NaN payloads) still count as one difference
    n_differ = max(int(unequal.sum()), 1)
    max_gap = float(torch.nan_to_num(gap, nan=math.inf).max()) if gap.numel() else 0.0
    shape = str(tuple(a.shape))
    return TensorDifference(name, "values", shape, shape, max_gap, n_differ)


def state_dict_of(payload: Mapping[str, Any], source: str | Path | None) -> dict[str, torch.Tensor]:
    """The payload's state_dict, checked to map names to tensors (InputError otherwise)."""
    sd = payload["state_dict"]
    if not isinstance(sd, dict):
        raise InputError("checkpoint state_dict is not a mapping of tensors", file=source)
    for name, t in sd.items():
        if not isinstance(t, torch.Tensor):
            raise InputError(
                f"checkpoint state_dict is not a mapping of tensors ({name!r} is not a tensor)",
                file=source,
            )
    return sd


def _extra_for_diff(extra: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(compared, volatile) parts of ``extra``; wall-clock times in the log are masked."""
    extra = dict(extra) if isinstance(extra, dict) else {"<extra>": extra}
    volatile = {k: extra.pop(k) for k in VOLATILE_EXTRA if k in extra}
    log = extra.get("log")
    if isinstance(log, list) and all(isinstance(s, str) for s in log):
        extra["log"] = [_WALL_CLOCK.sub("after <t> s", s) for s in log]
        volatile["log wall-clock"] = [m.group(0) for s in log for m in _WALL_CLOCK.finditer(s)]
    return extra, volatile


def diff_checkpoints(
    a: str | Path | Mapping[str, Any], b: str | Path | Mapping[str, Any]
) -> CheckpointDiff:
    """Compare two checkpoints (paths or payloads from :func:`read_checkpoint`).

    Weights are compared bit for bit (names, dtypes, shapes, raw bytes); ``model_args``,
    ``elements``, ``training_data_hash`` and ``extra`` without :data:`VOLATILE_EXTRA` (and
    without wall-clock times in its log) must be equal. ``code_version`` and the volatile keys
    are reported in ``info`` only.
    """
    src_a = None if isinstance(a, Mapping) else a
    src_b = None if isinstance(b, Mapping) else b
    pa = a if isinstance(a, Mapping) else read_checkpoint(a)
    pb = b if isinstance(b, Mapping) else read_checkpoint(b)
    sa, sb = state_dict_of(pa, src_a), state_dict_of(pb, src_b)

    tensors: list[TensorDifference] = []
    for name in sorted(set(sa) | set(sb)):
        if name not in sb:
            t = sa[name]
            tensors.append(TensorDifference(name, "only in A", f"{tuple(t.shape)} {t.dtype}", "-"))
        elif name not in sa:
            t = sb[name]
            tensors.append(TensorDifference(name, "only in B", "-", f"{tuple(t.shape)} {t.dtype}"))
        elif (d := _tensor_diff(name, sa[name], sb[name])) is not None:
            tensors.append(d)

    fields: list[FieldDifference] = []
    fields += _field_diffs("model_args", pa.get("model_args"), pb.get("model_args"))
    fields += _field_diffs("elements", pa.get("elements"), pb.get("elements"), lists=False)
    fields += _field_diffs(
        "training_data_hash", pa.get("training_data_hash"), pb.get("training_data_hash")
    )
    extra_a, vol_a = _extra_for_diff(pa.get("extra") or {})
    extra_b, vol_b = _extra_for_diff(pb.get("extra") or {})
    fields += _field_diffs("extra", extra_a, extra_b)

    info = _field_diffs("code_version", pa.get("code_version"), pb.get("code_version"))
    info += _field_diffs("created_at", pa.get("created_at"), pb.get("created_at"))
    info += _field_diffs("extra", vol_a, vol_b)
    return CheckpointDiff(
        n_tensors_a=len(sa),
        n_tensors_b=len(sb),
        weights_sha256_a=weights_sha256(sa),
        weights_sha256_b=weights_sha256(sb),
        tensors=tuple(tensors),
        fields=tuple(fields),
        info=tuple(info),
    )


def manifest_path(path: str | Path) -> Path:
    """The readable manifest beside a checkpoint: ``model.pt`` -> ``model.json``."""
    return Path(path).with_suffix(".json")


def write_checkpoint_manifest(path: str | Path) -> Path:
    """Write the checkpoint's provenance (everything but the weights) as JSON beside it.

    Adds the sha256 of the file and of the weights (:func:`weights_sha256`), so a reader can
    check a checkpoint against its manifest without loading torch.
    """
    payload = read_checkpoint(path)
    state = state_dict_of(payload, path)
    rest = {k: v for k, v in payload.items() if k != "state_dict"}
    head = {k: rest.pop(k) for k in HEADER_KEYS if k in rest}
    manifest = {
        "artifact": "checkpoint",
        **head,
        "file": Path(path).name,
        "file_sha256": sha256_file(path),
        "weights_sha256": weights_sha256(state),
        "n_values": int(sum(t.numel() for t in state.values())),
        **rest,
    }
    out = manifest_path(path)
    write_json_atomic(out, manifest)
    return out
