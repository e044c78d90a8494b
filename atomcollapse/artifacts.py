"""Manifests, content hashes and atomic writes shared by every artifact (store, split, run)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from atomcollapse import __version__
from atomcollapse.errors import InputError

MANIFEST = "manifest.json"


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_arrays(arrays: dict[str, np.ndarray]) -> str:
    """Hash of named arrays, independent of memory layout and of dict order."""
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.dtype.str).encode())
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def code_version() -> str:
    """Package version plus the git commit when running from a checkout."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=False,
        )  # fmt: skip
        commit = out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{__version__}+g{commit}" if commit else __version__


def now_utc() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


HEADER_KEYS: tuple[str, ...] = (
    "artifact",
    "schema_version",
    "code_version",
    "created_at",
    "inputs",
)


def header(kind: str, *, schema_version: int = 1, inputs: dict[str, Any] | None = None) -> dict:
    """The fields every manifest starts with: what it is, its layout version, the code that made
    it, when, and what it was made from (paths absolute, with their hashes where they have one)."""
    return {
        "artifact": kind,
        "schema_version": schema_version,
        "code_version": code_version(),
        "created_at": now_utc(),
        "inputs": inputs or {},
    }


@dataclass(frozen=True)
class MadeBy:
    """Which code made an artifact and when (None where its manifest does not say)."""

    code_version: str | None
    created_at: str | None


def made_by(manifest: Mapping[str, Any]) -> MadeBy:
    """Which code made an artifact and when, from a manifest (or a checkpoint's payload) in
    either spelling: the :func:`header`'s ``code_version``/``created_at``, or the older
    ``created_by: {"version"}`` of stores and splits and ``extra.created_at`` of checkpoints."""
    version = manifest.get("code_version")
    by = manifest.get("created_by")
    if version is None and isinstance(by, Mapping):
        version = by.get("version")
    created = manifest.get("created_at")
    extra = manifest.get("extra")
    if created is None and isinstance(extra, Mapping):
        created = extra.get("created_at")
    return MadeBy(
        None if version is None else str(version), None if created is None else str(created)
    )


@contextlib.contextmanager
def atomic_file(path: str | Path, *, suffix: str = ".tmp", fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on success rename it into place.

    The one atomic write of the package: a failure (or a kill) before the rename leaves
    ``path`` as it was; on an exception the temporary file is removed. ``fsync`` flushes the
    file to disk before the rename (for files that are expensive to remake). The file gets
    mode 0644.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | Path, data: bytes, *, fsync: bool = False) -> None:
    with atomic_file(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | Path, text: str, *, fsync: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_file`)."""
    write_bytes_atomic(path, text.encode("utf-8"), fsync=fsync)


def write_json_atomic(path: str | Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n"
    write_text_atomic(path, text)


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def artifact_kind(directory: str | Path) -> str | None:
    """The ``artifact`` a directory's manifest names, or None (no manifest, unreadable, other)."""
    path = Path(directory) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    kind = data.get("artifact") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


_NOUNS = {"dataset": "store", "collapse": "collapse output", "run": "run directory"}


def check_replaceable(target: str | Path, kind: str, *, overwrite: bool) -> None:
    """Refuse to write ``target`` unless it is free, or ``overwrite`` and it holds a ``kind``.

    ``--overwrite`` replaces only what atomcollapse made: an artifact of the same kind (its
    manifest says so) or an empty folder. Anything else (a file, a folder of other things, an
    artifact of another kind) is one InputError and stays untouched.
    """
    target = Path(target)
    if not target.exists() and not target.is_symlink():
        return
    if not overwrite:
        noun = _NOUNS.get(kind, kind)
        raise InputError(f"{noun} already exists (pass --overwrite to replace it)", file=target)
    if target.is_symlink() or not target.is_dir():
        raise InputError(
            f"exists and is not a {kind} directory; --overwrite replaces only what atomcollapse "
            "made",
            file=target,
        )
    if not any(target.iterdir()):
        return
    found = artifact_kind(target)
    if found != kind:
        what = f"a {found} artifact" if found else f"not an atomcollapse {kind} (no manifest)"
        raise InputError(
            f"is {what}; --overwrite replaces only a {kind} that atomcollapse made", file=target
        )


def read_manifest(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise InputError("not an atomcollapse artifact (no manifest.json)", file=directory)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"corrupt manifest ({e.msg} at line {e.lineno})", file=path) from None


@contextlib.contextmanager
def atomic_directory(target: str | Path, *, kind: str, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``target``; on success rename it into place.

    On any exception the temporary directory is removed and ``target`` is untouched, so a killed
    or failed write never leaves a half-written artifact under the final name; the artifact's
    lock is held throughout (one writer; a dead writer's leftovers are removed). An existing
    ``target`` is replaced only with ``overwrite`` and only when it is a ``kind`` artifact (see
    :func:`check_replaceable`).
    """
    from atomcollapse.process import artifact_lock, fault

    target = Path(target)
    with artifact_lock(target, f"writing a {kind}"):
        check_replaceable(target, kind, overwrite=overwrite)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        tmp.chmod(0o755)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        fault("before-rename")
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
