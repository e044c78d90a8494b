"""Checksummed downloads of public data files, with a one-line message when offline."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from pathlib import Path

from atomcollapse.artifacts import atomic_file
from atomcollapse.errors import InputError


def fetch(
    url: str,
    dest: str | Path,
    *,
    checksum: str | None,
    algorithm: str = "sha256",
    offline_hint: str,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` unless a file with the right checksum is already there.

    The file is streamed to a temporary name, its checksum checked, then renamed into place.
    When the network is unreachable an :class:`InputError` says so and repeats ``offline_hint``
    (which ``--source`` to pass instead); a checksum mismatch is an error and nothing is kept.
    """
    dest = Path(dest)
    if dest.is_file() and (checksum is None or _digest(dest, algorithm) == checksum):
        return dest
    try:
        with atomic_file(dest, suffix=".part") as tmp:
            h = hashlib.new(algorithm)
            with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                while block := resp.read(1 << 20):
                    h.update(block)
                    out.write(block)
            if checksum is not None and h.hexdigest() != checksum:
                raise InputError(
                    f"{algorithm} mismatch: got {h.hexdigest()[:16]}..., "
                    f"expected {checksum[:16]}...",
                    file=url,
                )
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise InputError(f"cannot download ({reason}); offline? {offline_hint}", file=url) from None
    return dest


def _digest(path: Path, algorithm: str) -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()
