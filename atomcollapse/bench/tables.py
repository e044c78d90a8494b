"""Typed access to the tables of a TOML file: each complaint is one InputError naming file and key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from atomcollapse.errors import InputError


class TableReader:
    """Typed access to one table of the spec; every complaint names the spec file and key."""

    def __init__(self, data: Any, file: Path, where: str):
        self.file, self.where = file, where
        if not isinstance(data, dict):
            self.fail(f"{where or 'spec'} must be a table")
        self.data = data

    def fail(self, problem: str) -> None:
        raise InputError(problem, file=self.file)

    def key(self, k: str) -> str:
        return f"{self.where}.{k}" if self.where else k

    def check_keys(self, known: tuple[str, ...]) -> None:
        unknown = sorted(set(self.data) - set(known))
        if unknown:
            self.fail(f"unknown key {self.key(unknown[0])!r}; known: {', '.join(known)}")

    def get(self, k: str, kind: type | tuple[type, ...], default: Any = ..., *, empty=False) -> Any:
        if k not in self.data:
            if default is ...:
                self.fail(f"missing required key {self.key(k)!r}")
            return default
        v = self.data[k]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        ok = isinstance(v, kinds) and not (isinstance(v, bool) and bool not in kinds)
        if not ok:
            names = " or ".join(t.__name__ for t in kinds)
            self.fail(f"{self.key(k)!r} must be {names}, not {type(v).__name__} ({v!r})")
        if not empty and isinstance(v, (str, list)) and not v:
            self.fail(f"{self.key(k)!r} must not be empty")
        return v

    def strings(self, k: str, default: Any = ...) -> tuple[str, ...] | Any:
        v = self.get(k, list, default)
        if v is default and default is not ...:
            return default
        if not all(isinstance(x, str) and x for x in v):
            self.fail(f"{self.key(k)!r} must be a list of non-empty strings")
        if len(set(v)) != len(v):
            self.fail(f"{self.key(k)!r} has duplicates")
        return tuple(v)

    def table(self, k: str) -> TableReader:
        return TableReader(self.data.get(k, {}), self.file, self.key(k))

    def tables(self, k: str) -> list[TableReader]:
        v = self.get(k, list)
        return [TableReader(t, self.file, f"{self.key(k)}[{i}]") for i, t in enumerate(v)]
