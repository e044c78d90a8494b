"""A pickle that would run code when loaded: it creates a marker file (tests assert it never does)."""

from __future__ import annotations

import pathlib
from pathlib import Path

import torch


class _TouchOnLoad:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def write_malicious_pt(path: Path, marker: Path) -> Path:
    """A ``.pt`` file shaped like a resume state whose loading (with pickle) touches ``marker``."""
    torch.save({"format": "atomcollapse.resume-state/1", "loop": _TouchOnLoad(marker)}, path)
    return path


def payload_works(tmp: Path) -> bool:
    """Whether the payload really executes under ``weights_only=False`` (the test's own check)."""
    marker = tmp / "payload-check"
    f = write_malicious_pt(tmp / "payload-check.pt", marker)
    torch.load(f, weights_only=False)
    ok = marker.exists()
    marker.unlink(missing_ok=True)
    f.unlink()
    return ok
