"""Layers import downwards only: every import in the package, lazy or not, points to a lower layer.

Imports are read with :mod:`ast` (module level, inside functions, under ``TYPE_CHECKING``) and so
are registry strings naming a module (``"atomcollapse.models.adapters.ani"``,
``"pkg.mod:Attr"``), since a lazily imported factory is an arrow in the drawing too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import atomcollapse

PACKAGE = Path(atomcollapse.__file__).parent

#: rank of each top-level module or subpackage; a module may import its own layer or a lower rank
RANKS: dict[str, int] = {
    # foundation: the root package (its ``__version__``), names, units, errors, files, processes
    "atomcollapse": 0,
    "units": 0,
    "constants": 0,
    "errors": 0,
    "artifacts": 0,
    "process": 0,
    "parallel": 0,
    # stores, sources, batches (AtomsBatch lives here), neighbour lists
    "data": 1,
    # split artifacts read stores
    "splits": 2,
    # backbones and heads consume data.AtomsBatch
    "models": 3,
    # training reads stores, splits and models; forcefield labels stores (xtb) and selects by
    # split; testing holds the model-contract checks
    "training": 4,
    "forcefield": 4,
    "testing": 4,
    # analysis reads what training writes and orders strategies by training's registry
    "analysis": 5,
    "bench": 6,
    # the Python API and the ASE calculator sit on everything but the CLI
    "api": 7,
    "calculator": 7,
    "cli": 8,
    "__main__": 9,
}

#: the foundation's modules may use each other (one layer, several small modules)
FOUNDATION = {name for name, rank in RANKS.items() if rank == 0}

#: (importing module, imported module) arrows that run upwards on purpose
ALLOWED: dict[tuple[str, str], str] = {
    # ``atomcollapse.train(...)`` etc.: the root re-exports the API, imported on first attribute
    # access (``__getattr__``) and for type checkers only; importing the root imports nothing.
    ("atomcollapse", "atomcollapse.api"): "lazy top-level facade of the Python API",
}

_MODULE_STRING = re.compile(r"atomcollapse(\.\w+)+(:\w+)?")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _exists(module: str) -> bool:
    rel = Path(*module.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def imports_of(path: Path, source: str | None = None) -> set[str]:
    """Every ``atomcollapse`` module that the file at ``path`` (or ``source`` placed there) imports
    or names as a registry string."""
    text = path.read_text() if source is None else source
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(text, filename=str(path))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # ``from atomcollapse.x import y`` imports submodule ``x.y`` when there is one
            subs = [f"{target}.{a.name}" for a in node.names if _exists(f"{target}.{a.name}")]
            out.update(subs or [target])
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and _MODULE_STRING.fullmatch(node.value)
            and _exists(name := node.value.partition(":")[0])
        ):
            out.add(name)
    return {m for m in out if m == "atomcollapse" or m.startswith("atomcollapse.")}


def upward_imports() -> list[tuple[str, str]]:
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        here = layer(module)
        for target in sorted(imports_of(path)):
            there = layer(target)
            if there == here or (here in FOUNDATION and there in FOUNDATION):
                continue
            if RANKS[there] < RANKS[here] or (module, target) in ALLOWED:
                continue
            bad.append((module, target))
    return bad


def test_every_top_level_module_has_a_layer():
    names = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    names |= {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert names - set(RANKS) == set(), "place the new module in RANKS"


def test_no_import_runs_up_a_layer():
    assert upward_imports() == []


def test_allow_list_has_no_stale_entries():
    found = {(module_name(p), t) for p in PACKAGE.rglob("*.py") for t in imports_of(p)}
    assert set(ALLOWED) <= found


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from atomcollapse.models.base import Backbone\n", {"atomcollapse.models.base"}),
        ("def f():\n    import atomcollapse.bench.spec\n", {"atomcollapse.bench.spec"}),
        ("from atomcollapse.data import batching\n", {"atomcollapse.data.batching"}),
        ('REG = {"x": "atomcollapse.training.loop:run"}\n', {"atomcollapse.training.loop"}),
        ('"""See atomcollapse.cli for the commands."""\n', set()),
    ],
)
def test_imports_are_found_wherever_they_are(source, expected):
    assert imports_of(PACKAGE / "data" / "_layer_probe.py", source) == expected


def test_an_upward_import_is_reported(monkeypatch):
    real = imports_of

    def with_probe(path: Path, source: str | None = None) -> set[str]:
        got = real(path, source)
        return (
            got | {"atomcollapse.models.base"}
            if module_name(path) == "atomcollapse.data.store"
            else got
        )

    monkeypatch.setitem(globals(), "imports_of", with_probe)
    assert upward_imports() == [("atomcollapse.data.store", "atomcollapse.models.base")]
