"""Shared CLI state and output helpers (the CLI only wires layers together)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


class _State:
    data_root: Path | None = None


state = _State()
