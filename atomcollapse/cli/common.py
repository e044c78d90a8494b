"""Shared CLI state and output helpers (the CLI only wires layers together)."""

from __future__ import annotations

import sys
from pathlib import Path

from rich.console import Console

# Piped output (make, CI logs) gets a wide console instead of rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 200)


class _State:
    data_root: Path | None = None


state = _State()
