"""MatBench structure tasks: ``<task>.json.gz`` (pandas ``orient="split"``) and the v0.1 folds.

The file is ``{"index": [...], "columns": ["structure", <target>], "data": [[{...}, y], ...]}``
with Monty-encoded pymatgen Structures. Each structure dict is turned into arrays while the JSON
is parsed (lattice rows in A, Cartesian positions = fractional coordinates x lattice), so the
132,752 structures of ``matbench_mp_e_form`` never exist as Python dicts all at once; dicts the
fast path does not know are handed to ``pymatgen.core.Structure.from_dict``.

Row ids follow matbench (``matbench.data_ops.load``): ``mb-<task with dashes>-<index + 1>``,
zero-padded to ``floor(log10(n)) + 1`` digits, e.g. ``mb-jdft2d-001``. String ids in the file's
``index`` are kept as they are. The official folds (``matbench_v0.1_validation.json``: 5-fold
KFold, shuffled, random_state 18012019) become a ``fold`` column: the test fold of each structure.

Tasks of the user's own: any other name reads a file of the same format. Its target is the
column named by ``target`` (or the one column besides ``structure``), its unit is given
(``unit``, one of :func:`atomcollapse.units.known_units`), and its folds, if any, come from a
file in the validation layout keyed by the task's name: ``{"splits": {NAME: {"fold_0":
{"train": [...], "test": [...]}, ...}}}`` (never from the official file).
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import math
import re
import warnings
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from atomcollapse.artifacts import sha256_file
from atomcollapse.constants import (
    MATBENCH_COMPOSITION_TASKS,
    MATBENCH_STRUCTURE_TASKS,
    SYMBOLS,
    atomic_number,
)
from atomcollapse.data.download import fetch
from atomcollapse.data.schema import pack
from atomcollapse.data.sources import Ingested
from atomcollapse.data.store import data_root as _data_root
from atomcollapse.errors import InputError, not_a_file
from atomcollapse.units import known_units

URL = "https://ml.materialsproject.org/projects/{task}.json.gz"
FOLDS_FILE = "matbench_v0.1_validation.json"

#: sha256 of the task files, from matminer 0.10.1 ``matminer/datasets/dataset_metadata.json``.
SHA256: dict[str, str] = {
    "matbench_mp_is_metal": "9a028ed5750a4c76ca36e9f3c8d48fe0bf3fb21b76ec2289e58ae7048d527919",
    "matbench_mp_gap": "58b65746bd88329986ed66031a2ac1369c7c522f7bc9f9081528e07097c2c057",
    "matbench_mp_e_form": "dedcb1d4ba2e3e50dbdd45ba5bc647a00e9c2bcf8f8bf556dc8e92caa39eb21f",
    "matbench_log_gvrh": "098af941f4c663270f1fe21abf20ffad6fb85ecbfcba5786ceac03983ac29da7",
    "matbench_log_kvrh": "44b113ddb7e23aa18731a62c74afa7e5aa654199e0db5f951c8248a00955c9cd",
    "matbench_dielectric": "83befa09bc2ec2f4b6143afc413157827a90e5e2e42c1eb507ccfa01bf26a1d6",
    "matbench_jdft2d": "26057dc4524e193e32abffb296ce819b58b6e11d1278cae329a2f97817a4eddf",
    "matbench_perovskites": "4641e2417f8ec8b50096d2230864468dfa08278dc9d257c327f65d0305278483",
    "matbench_phonons": "4db551f21ec5f577e6202725f10e34dfc509aa7df3a6bdaac497da7f6dbbb9b3",
}


class _Bad:
    """A structure dict that could not be decoded; the reason is reported with its row id."""

    def __init__(self, problem: str):
        self.problem = problem


_Decoded = tuple[np.ndarray, np.ndarray, np.ndarray]  # numbers, positions (A), cell (A)


def matbench_id(task: str, index: int, n: int) -> str:
    """matbench's id of row ``index`` (0-based) of a task with ``n`` rows."""
    width = math.floor(math.log(n, 10)) + 1
    return f"{task.replace('matbench', 'mb').replace('_', '-')}-{index + 1:0{width}d}"


def target_name(column: str) -> str:
    """A clean store name for a MatBench target column: ``log10(G_VRH)`` -> ``log10_g_vrh``."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", column).strip("_").lower()


@lru_cache(maxsize=1 << 16)
def _formula_of(counts: tuple[tuple[int, int], ...]) -> str:
    from pymatgen.core import Composition

    with warnings.catch_warnings():  # pymatgen warns about noble gases' electronegativity
        warnings.simplefilter("ignore", UserWarning)
        return Composition({SYMBOLS[z]: c for z, c in counts}).reduced_formula


def reduced_formula(numbers: np.ndarray) -> str:
    """pymatgen's reduced formula (electronegativity order) of a list of atomic numbers."""
    z, c = np.unique(np.asarray(numbers), return_counts=True)
    return _formula_of(tuple(zip(z.tolist(), c.tolist(), strict=True)))


class _DecodeError(Exception):
    pass


def _species_number(species: list[dict[str, Any]]) -> int:
    if len(species) != 1 or abs(float(species[0].get("occu", 1.0)) - 1.0) > 1e-8:
        raise _DecodeError("disordered site (partial occupancy); atomcollapse needs ordered sites")
    symbol = species[0]["element"]
    try:
        return atomic_number(symbol)
    except KeyError:
        raise _DecodeError(f"unknown element {symbol!r}") from None


def _fast(d: dict[str, Any]) -> _Decoded:
    cell = np.asarray(d["lattice"]["matrix"], dtype=np.float64).reshape(3, 3)
    sites = d["sites"]
    frac = np.asarray([s["abc"] for s in sites], dtype=np.float64).reshape(len(sites), 3)
    numbers = np.fromiter((_species_number(s["species"]) for s in sites), np.int16, len(sites))
    return numbers, frac @ cell, cell


def _via_pymatgen(d: dict[str, Any]) -> _Decoded:
    from pymatgen.core import Structure

    s = Structure.from_dict(d)
    if not s.is_ordered:
        raise _DecodeError("disordered site (partial occupancy); atomcollapse needs ordered sites")
    numbers = np.asarray(s.atomic_numbers, dtype=np.int16)
    return numbers, np.asarray(s.cart_coords, dtype=np.float64), np.array(s.lattice.matrix)


def decode_structure(d: dict[str, Any]) -> _Decoded | _Bad:
    """Arrays of one Monty/pymatgen Structure dict, or :class:`_Bad` with the reason."""
    if d.get("@class", "Structure") not in ("Structure", "IStructure"):
        return _Bad(f"not a pymatgen Structure (@class {d.get('@class')!r})")
    try:
        return _fast(d)
    except _DecodeError as e:
        return _Bad(str(e))
    except (KeyError, TypeError, ValueError, IndexError):
        pass
    try:
        return _via_pymatgen(d)
    except _DecodeError as e:
        return _Bad(str(e))
    except Exception as e:  # pymatgen raises many types for malformed dicts
        return _Bad(f"structure does not decode ({type(e).__name__}: {e})".replace("\n", " "))


def _hook(d: dict[str, Any]) -> Any:
    if "sites" in d and "lattice" in d:
        return decode_structure(d)
    return d


def read_split_json(path: Path) -> dict[str, Any]:
    """Parse a (gzipped) pandas split-orient JSON, decoding structure dicts on the fly."""
    if not path.is_file():
        raise not_a_file(path)
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        opener = gzip.open if gz else open
        with opener(path, "rb") as f:
            obj = json.load(f, object_hook=_hook)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise InputError(f"corrupt or truncated gzip ({e})", file=path.name) from None
    except json.JSONDecodeError as e:
        raise InputError(
            f"not JSON ({e.msg} at line {e.lineno} column {e.colno})", file=path.name
        ) from None
    except UnicodeDecodeError:
        raise InputError(
            "not JSON (not UTF-8 text; expected a .json.gz file)", file=path.name
        ) from None
    if (
        not isinstance(obj, dict)
        or not {"columns", "data"} <= set(obj)
        or set(obj) - {"index", "columns", "data"}
    ):
        keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise InputError(
            f'not pandas orient="split" JSON (expected index/columns/data, found {keys})',
            file=path.name,
        )
    return obj


def _ids(task: str, index: list[Any] | None, n: int, file: str) -> list[str]:
    if index is None:
        return [matbench_id(task, i, n) for i in range(n)]
    if len(index) != n:
        raise InputError(f"index has {len(index)} entries for {n} rows", file=file)
    out = []
    for i, v in enumerate(index):
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            raise InputError(
                f"index entry {v!r} is neither an integer nor a string",
                file=file,
                record=f"row {i}",
            )
        out.append(v if isinstance(v, str) else matbench_id(task, v, n))
    return out


_TASK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def _check_task(task: str, target: str | None, unit: str | None, download: bool) -> str | None:
    """The official target column of ``task`` (None for a task of the user's own), after
    checking ``target`` / ``unit`` / ``download`` against it."""
    if task in MATBENCH_COMPOSITION_TASKS:
        raise InputError(
            "composition-only task, no structures; atomcollapse needs structures", record=task
        )
    if task in MATBENCH_STRUCTURE_TASKS:
        column, known_unit = MATBENCH_STRUCTURE_TASKS[task]
        if target is not None and target != column:
            raise InputError(
                f"the official task's target is {column!r}, not {target!r} (a task of your own "
                "needs a name of its own)",
                record=task,
            )
        if unit is not None and unit != known_unit:
            raise InputError(
                f"the official task's unit is {known_unit!r}, not {unit!r}", record=task
            )
        return column
    if not _TASK_NAME.fullmatch(task):
        raise InputError(
            "task name must be letters, digits, '_', '-' or '.' (at most 128)", record=task
        )
    if download:
        known = ", ".join(MATBENCH_STRUCTURE_TASKS)
        raise InputError(
            f"not an official MatBench task, nothing to download (official: {known}); "
            "pass your file with --source",
            record=task,
        )
    if unit is None:
        raise InputError(
            f"not an official MatBench task ({', '.join(MATBENCH_STRUCTURE_TASKS)}); a task of "
            f"your own needs its target's unit: --unit, one of {', '.join(known_units())}",
            record=task,
        )
    if unit not in known_units():
        raise InputError(f"unknown unit {unit!r}; known: {', '.join(known_units())}", record=task)
    return None


def check_options(
    task: str,
    target: str | None = None,
    unit: str | None = None,
    download: bool = False,
    folds: str | Path | None = None,
) -> None:
    """Refuse a task's options before any file is read (the ingest-source registry's check):
    an official task's target and unit are its own; a task of your own needs its unit."""
    _check_task(task, target, unit, download)


def _target_column(columns: list[Any], target: str | None, task: str, file: str) -> str:
    """The target column of a task of the user's own (``target``, or the only one there is)."""
    others = [c for c in columns if c != "structure"]
    listed = ", ".join(repr(c) for c in others) or "none"
    if "structure" not in columns:
        raise InputError(f"no 'structure' column (columns: {columns})", file=file)
    if target is not None:
        if target not in others:
            raise InputError(f"no column {target!r} (target columns: {listed})", file=file)
        return target
    if len(others) != 1:
        raise InputError(f"{len(others)} target columns ({listed}); choose one with --target",
                         file=file, record=task)  # fmt: skip
    return str(others[0])


def _source_path(
    task: str, source: str | Path | None, download: bool, root: str | Path | None
) -> Path:
    if source is not None:
        return Path(source)
    default = _data_root(root) / "raw" / "matbench" / f"{task}.json.gz"
    if download:
        return fetch(
            URL.format(task=task), default, checksum=SHA256[task],
            offline_hint=f"download {task}.json.gz elsewhere and pass --source FILE",
        )  # fmt: skip
    if default.is_file():
        return default
    raise InputError(
        f"no --source given and {default} does not exist; pass --source FILE or --download",
        record=task,
    )


def installed_folds_file() -> Path | None:
    """``matbench_v0.1_validation.json`` inside an installed ``matbench`` package, if any."""
    try:
        spec = importlib.util.find_spec("matbench")
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (p := Path(folder) / FOLDS_FILE).is_file():
            return p
    return None


def default_folds_file(root: str | Path | None = None) -> Path | None:
    """Folds file of an installed ``matbench``, else in ``<data root>/raw/matbench/``, else None."""
    if (p := installed_folds_file()) is not None:
        return p
    p = _data_root(root) / "raw" / "matbench" / FOLDS_FILE
    return p if p.is_file() else None


def assign_folds(task: str, ids: list[str], path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Test-fold index of every structure, from a matbench validation file; checks coverage."""
    if not path.is_file():
        raise not_a_file(path, "folds file")
    try:
        doc = json.loads(path.read_text())
        splits = doc["splits"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError):
        raise InputError(
            'not a matbench validation file (expected {"metadata", "splits"})', file=path.name
        ) from None
    if task not in splits:
        raise InputError(
            f"no folds for this task (it has: {', '.join(sorted(splits))})",
            file=path.name,
            record=task,
        )
    try:
        names = sorted(splits[task], key=lambda k: int(k.rsplit("_", 1)[-1]))
        tests = [list(splits[task][name]["test"]) for name in names]
    except (KeyError, TypeError, ValueError, AttributeError):
        raise InputError(
            'malformed folds (expected {"fold_0": {"train": [...], "test": [...]}, ...})',
            file=path.name,
            record=task,
        ) from None
    position = {s: i for i, s in enumerate(ids)}
    fold = np.full(len(ids), -1, dtype=np.int64)
    for k, (name, test) in enumerate(zip(names, tests, strict=True)):
        for s in test:
            i = position.get(s)
            if i is None:
                raise InputError(
                    f"{task} {name} test id is not in the data", file=path.name, record=str(s)
                )
            if fold[i] != -1:
                raise InputError(
                    f"id is in the test sets of {names[fold[i]]} and {name}",
                    file=path.name,
                    record=s,
                )
            fold[i] = k
    if (fold < 0).any():
        raise InputError(
            "structure is in no test fold", file=path.name, record=ids[int(np.argmax(fold < 0))]
        )
    info = {
        "file": path.name,
        "sha256": sha256_file(path),
        "n_folds": len(names),
        "metadata": doc.get("metadata", {}),
        "test_sizes": np.bincount(fold, minlength=len(names)).tolist(),
    }
    return fold, info


def load_matbench(
    task: str,
    source: str | Path | None = None,
    *,
    folds: str | Path | None = None,
    download: bool = False,
    data_root: str | Path | None = None,
    target: str | None = None,
    unit: str | None = None,
) -> Ingested:
    """Read a MatBench structure task, official or of the user's own (``target`` column,
    ``unit``), into crystals (positions/cell in A, target in its unit)."""
    official = _check_task(task, target, unit, download)
    path = _source_path(task, source, download, data_root)
    doc = read_split_json(path)
    file = path.name
    columns = doc["columns"]
    if not isinstance(columns, list):
        raise InputError('"columns" is not a list', file=file)
    if official is None:
        column = _target_column(columns, target, task, file)
        assert unit is not None
    else:
        column, unit = MATBENCH_STRUCTURE_TASKS[task]
        if sorted(map(str, columns)) != sorted(["structure", column]):
            raise InputError(
                f"columns are {columns}, expected ['structure', {column!r}] for {task}", file=file
            )
    s_col, t_col = columns.index("structure"), columns.index(column)
    rows = doc["data"]
    if not isinstance(rows, list):
        raise InputError('"data" is not a list of rows', file=file)
    ids = _ids(task, doc.get("index"), len(rows), file)
    numbers, positions, cells = [], [], []
    values = np.empty(len(rows))
    all_bool = bool(rows)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != len(columns):
            raise InputError(
                f"row is not a list of {len(columns)} values", file=file, record=ids[i]
            )
        s, y = row[s_col], row[t_col]
        if isinstance(s, _Bad):
            raise InputError(s.problem, file=file, record=ids[i])
        if not isinstance(s, tuple):
            raise InputError("structure is not a pymatgen Structure dict", file=file, record=ids[i])
        all_bool &= isinstance(y, bool)
        if isinstance(y, bool) or (isinstance(y, (int, float)) and math.isfinite(y)):
            values[i] = float(y)
        else:
            raise InputError(f"target {column!r} is {y!r}", file=file, record=ids[i])
        numbers.append(s[0])
        positions.append(s[1])
        cells.append(s[2])
    structures = pack(numbers, positions, ids=ids, cells=cells, pbcs=[np.ones(3, bool)] * len(rows))
    name = target_name(column)
    if not name:
        raise InputError(f"target column {column!r} gives no usable target name", file=file)
    structures.targets[name] = values
    structures.target_units[name] = unit
    structures.columns["formula"] = np.asarray([reduced_formula(z) for z in numbers], dtype=str)
    structures.validate(file)

    files = [{"name": file, "sha256": sha256_file(path)}]
    if official is None:  # the official folds never hold a task of the user's own
        folds_path = None if folds is None else Path(folds)
    else:
        folds_path = Path(folds) if folds is not None else default_folds_file(data_root)
    fold_info: dict[str, Any] | None = None
    if folds_path is not None:
        fold, fold_info = assign_folds(task, ids, folds_path)
        structures.columns["fold"] = fold.astype(str)
        files.append({"name": fold_info["file"], "sha256": fold_info["sha256"]})
    classification = column == "is_metal" or (official is None and all_bool)
    src: dict[str, Any] = {"format": "matbench", "label": file, "task": task, "files": files,
                           "official": official is not None}  # fmt: skip
    if download:
        src["url"] = URL.format(task=task)
    what = "MatBench" if official is not None else "MatBench-style task of your own,"
    info = {
        "description": f"{what} {task} target {column!r}"
        + (" (1 = metal)" if column == "is_metal" else " (1 = true)" if classification else ""),
        "column": column,
        "report_unit": unit,
        "readout": "mean",
        "task_type": "classification" if classification else "regression",
    }
    no_folds = (
        f"none (no --folds, no matbench package, no raw/matbench/{FOLDS_FILE})"
        if official is not None
        else "none (no --folds)"
    )
    return Ingested(
        structures=structures,
        kind="crystals",
        source=src,
        target_info={name: info},
        extra={
            "matbench": {
                "task": task,
                "official": official is not None,
                "folds": fold_info or no_folds,
            }
        },
    )
