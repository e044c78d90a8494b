"""MACE model files: where a ``--pretrained mace...`` name points, reading the file, and MACE's
architecture as plain model arguments.

Loading policy. A MACE ``.model`` file is a pickled ``torch.nn.Module``: reading it runs a full
unpickle, which can execute code. It is read only from

- the path the user named (``--pretrained mace:PATH.model[:HEAD]``), or
- MACE's own cache (``$XDG_CACHE_HOME/mace``, default ``~/.cache/mace``) for a foundation name
  the user named (``--pretrained mace-mp-0``), downloaded there by mace-torch's own download
  function when it is missing;

never from a file found by looking around (the current folder, a run directory, a checkpoint's
arguments). A fine-tuned model is saved as an atomcollapse checkpoint (tensors and plain
containers, read with ``weights_only=True``) whose arguments rebuild the architecture with
mace-torch's own classes: no unpickling.

mace-torch 0.3.16 needs ``e3nn==0.4.4``, whose import reads a constants file with
``torch.load``; ``import mace`` sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` for that, process-wide.
:func:`mace_modules` imports it and puts the variable back as it was, so that later
``torch.load`` calls of this process keep torch's safe default.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atomcollapse.errors import InputError, not_a_file

INSTALL = "make setup-mace (the 'mace' extra, mace-torch==0.3.16, in its own environment)"

#: foundation name -> (MACE family, MACE's key for it). The ``mp`` keys are those of
#: ``mace.calculators.foundations_models.mace_mp_urls``, the ``off`` keys of ``mace_off_urls``.
FOUNDATIONS: dict[str, tuple[str, str]] = {
    "mace-mp-0": ("mp", "medium"),
    "mace-mp-0-small": ("mp", "small"),
    "mace-mp-0-medium": ("mp", "medium"),
    "mace-mp-0-large": ("mp", "large"),
    "mace-mp-0b3-medium": ("mp", "medium-0b3"),
    "mace-mpa-0-medium": ("mp", "medium-mpa-0"),
    "mace-omat-0-small": ("mp", "small-omat-0"),
    "mace-omat-0-medium": ("mp", "medium-omat-0"),
    "mace-off-small": ("off", "small"),
    "mace-off-medium": ("off", "medium"),
    "mace-off-large": ("off", "large"),
}
_ENV = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"


@functools.lru_cache(maxsize=1)
def mace_modules() -> Any:
    """``mace.modules`` (typed ``Any``: mace-torch ships no types); InputError when absent."""
    before = os.environ.get(_ENV)
    try:
        os.environ[_ENV] = "1"  # e3nn 0.4.4 reads its constants with a plain torch.load
        with contextlib.redirect_stdout(sys.stderr):  # mace prints notes on import
            import mace.modules
            import mace.tools.scripts_utils
    except ImportError as e:
        raise InputError(f"the MACE adapter needs mace-torch ({e}); {INSTALL}") from None
    finally:
        if before is None:
            os.environ.pop(_ENV, None)
        else:
            os.environ[_ENV] = before
    return mace.modules


def split_name(name: str) -> tuple[str, str | None, bool]:
    """``(path or foundation name, head or None, is_foundation)`` of a ``--pretrained`` name:
    ``mace:PATH.model``, ``mace:PATH.model:HEAD``, ``mace-mp-0`` or ``mace-mp-0:HEAD``."""
    name = name.strip()
    if name.lower().startswith("mace:"):
        rest = name[len("mace:") :]
        if Path(rest).is_file() or ":" not in rest:
            return rest, None, False
        path, head = rest.rsplit(":", 1)
        return path, head or None, False
    base, _, head = name.partition(":")
    return base.lower(), head or None, True


def foundation_path(name: str, *, download: bool = True) -> Path:
    """The file of a foundation name in MACE's cache; with ``download``, fetched there by
    mace-torch's own download function when missing. One-line InputError offline."""
    if name not in FOUNDATIONS:
        raise InputError(
            f"unknown MACE foundation model {name!r}; known: {', '.join(FOUNDATIONS)} "
            "(or mace:PATH.model[:HEAD] for a file)"
        )
    family, key = FOUNDATIONS[name]
    url, path = _cache_entry(family, key)
    if path.is_file() or not download:
        return path
    from mace.calculators import foundations_models as fm

    try:
        with contextlib.redirect_stdout(sys.stderr):  # MACE prints its progress
            if family == "mp":
                got = Path(fm.download_mace_mp_checkpoint(key))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                fm._urlretrieve_with_timeout(url, str(path))
                got = path
    except (OSError, RuntimeError, ValueError) as e:
        reason = str(e).strip().splitlines()[0][:120] if str(e).strip() else type(e).__name__
        raise InputError(
            f"cannot download MACE foundation model {name!r} from {url} ({reason}); without "
            f"network, fetch that file elsewhere and put it at {path}"
        ) from None
    return got


def _cache_entry(family: str, key: str) -> tuple[str, Path]:
    """(URL, cached file) of a foundation model, named as mace-torch names its cache files."""
    modules = mace_modules()  # noqa: F841  (mace's import side effects, undone)
    from mace.calculators import foundations_models as fm
    from mace.tools.utils import get_cache_dir

    if family == "mp":
        url = fm.mace_mp_urls[key]
        if key == "medium-mpa-0" and os.path.isfile(fm.local_model_path):
            return url, Path(fm.local_model_path)  # shipped inside mace-torch
        base = "".join(c for c in os.path.basename(url) if c.isalnum() or c in "_")
    else:
        url = fm.mace_off_urls[key]
        base = os.path.basename(url).split("?")[0]
    return url, Path(get_cache_dir()) / base


def read_model_file(path: str | Path) -> torch.nn.Module:
    """The MACE model pickled in ``path`` (see the loading policy above); InputError for a file
    that is not one, or a MACE model this adapter does not take."""
    path = Path(path)
    if not path.is_file():
        raise not_a_file(path, "MACE model file")
    mace_modules()
    try:
        # The full unpickle of the loading policy: a path the user named, or MACE's cache.
        model = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a foreign file can fail anywhere inside the unpickler
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:100]
        raise InputError(f"not a MACE model file ({first})", file=path) from None
    kind = type(model).__name__
    if not isinstance(model, torch.nn.Module) or not hasattr(model, "interactions"):
        what = "a dict (a training checkpoint or state dict?)" if isinstance(model, dict) else kind
        raise InputError(
            f"not a MACE model file: it holds {what}, not a model saved with torch.save(model)",
            file=path,
        )
    if kind != "ScaleShiftMACE":
        raise InputError(
            f"MACE model class {kind} is not supported (only ScaleShiftMACE energy models)",
            file=path,
        )
    if getattr(model, "embedding_specs", None) is not None:
        raise InputError(
            "MACE models with extra embeddings (charge, spin, ...) are not supported", file=path
        )
    if getattr(getattr(model, "cueq_config", None), "enabled", False):
        raise InputError(
            "a cuEquivariance MACE model: convert it back with mace's convert_cueq_e3nn first",
            file=path,
        )
    return model


def plain_config(model: torch.nn.Module) -> dict[str, Any]:
    """MACE's own architecture description (``extract_config_mace_model``) as plain values
    (strings, numbers, lists) that a weights-only checkpoint can hold."""
    from mace.tools.scripts_utils import extract_config_mace_model

    cfg = extract_config_mace_model(model)
    if "error" in cfg:
        raise InputError(f"MACE model: {cfg['error']}")
    gates = {f: name for name, f in mace_modules().gate_dict.items() if f is not None}
    if cfg["gate"] is not None and cfg["gate"] not in gates:
        raise InputError(f"MACE model: unknown gate {cfg['gate']!r}")
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        if key in ("interaction_cls", "interaction_cls_first", "readout_cls"):
            out[key] = value.__name__
        elif key == "gate":
            out[key] = gates.get(value, "None")
        elif key in ("hidden_irreps", "MLP_irreps", "edge_irreps"):
            out[key] = None if value is None else str(value)
        elif isinstance(value, (np.ndarray, torch.Tensor)):
            out[key] = np.asarray(value.cpu() if isinstance(value, torch.Tensor) else value,
                                  dtype=np.float64 if key != "atomic_numbers" else np.int64
                                  ).tolist()  # fmt: skip
        elif key == "distance_transform":
            out[key] = "None" if value is None else str(value)
        else:
            out[key] = value
    out["atomic_numbers"] = [int(z) for z in out["atomic_numbers"]]
    out["heads"] = [str(h) for h in out["heads"]]
    return out


def native_config(config: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``mace.modules.ScaleShiftMACE`` from :func:`plain_config`."""
    from e3nn import o3

    modules = mace_modules()
    cfg = dict(config)
    for key in ("interaction_cls", "interaction_cls_first"):
        cfg[key] = modules.interaction_classes[cfg[key]]
    cfg["readout_cls"] = modules.readout_classes[cfg["readout_cls"]]
    cfg["gate"] = modules.gate_dict[cfg["gate"]]
    for key in ("hidden_irreps", "MLP_irreps", "edge_irreps"):
        cfg[key] = None if cfg.get(key) is None else o3.Irreps(cfg[key])
    for key in ("atomic_energies", "atomic_inter_scale", "atomic_inter_shift"):
        cfg[key] = np.asarray(cfg[key], dtype=np.float64)
    return cfg


def build(config: dict[str, Any]) -> torch.nn.Module:
    """A fresh ``ScaleShiftMACE`` (MACE's own initialisation, float64) of ``config``.

    Built with float64 as the default dtype, so that the constants e3nn computes at
    construction are exact; the caller chooses the working dtype afterwards.
    """
    modules = mace_modules()
    default = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.float64)
        with contextlib.redirect_stdout(sys.stderr):
            return modules.ScaleShiftMACE(**native_config(config))
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise InputError(f"invalid MACE model arguments ({type(e).__name__}: {e})") from None
    finally:
        torch.set_default_dtype(default)
