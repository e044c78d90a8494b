"""The one exception type for bad user input: the CLI prints it as one line and exits 2."""

from __future__ import annotations

from pathlib import Path


class InputError(Exception):
    """Bad input from the user: a file, a record in it, and what is wrong.

    The CLI turns it into one line ``error: <file>: <record>: <problem>`` and exit code 2.
    """

    def __init__(self, problem: str, *, file: str | Path | None = None, record: str | None = None):
        self.problem = problem
        self.file = None if file is None else str(file)
        self.record = record
        super().__init__(self.line())

    def line(self) -> str:
        parts = [p for p in (self.file, self.record) if p]
        return ": ".join([*parts, self.problem])


def not_a_file(path: str | Path, what: str = "file") -> InputError:
    """The error for a path that should be a readable file: missing, a directory, or other."""
    p = Path(path)
    if p.is_dir():
        return InputError(f"is a directory, not a {what}", file=p)
    if p.exists():
        return InputError(f"is not a regular file (expected a {what})", file=p)
    return InputError(f"{what} not found", file=p)
