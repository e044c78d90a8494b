"""Byte-level snapshots of a folder: what bad input must leave exactly as it was."""

from __future__ import annotations

from pathlib import Path


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Relative path -> bytes (None for a folder) of everything under ``root`` (empty if absent)."""
    root = Path(root)
    if root.is_file():
        return {".": root.read_bytes()}
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}  # fmt: skip
