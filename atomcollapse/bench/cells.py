"""Cells of a benchmark: dataset x split x target x model x strategy x seed.

A cell's identity is the hash of what determines its numbers: the dataset and split content
hashes, the pretrained checkpoint's hash (or the adapter's name), the force-field store's hash
(for strategies that use it) and the fully resolved training configuration (less ``device``
and ``log``, which say where, not what). A cell is done when some run directory below ``<out>/runs`` has a
manifest and config with that identity, a finished status and metrics for the cell, whatever
the directory is called.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from atomcollapse.bench.prepare import Inputs, SplitInputs
from atomcollapse.bench.spec import Spec, needs_ff
from atomcollapse.training.config import ADDED_SETTINGS, from_dict

#: configuration keys that do not change a run's numbers (where it runs, where it is logged)
IGNORED = ("device", "log")
RUNS = "runs"
CONFIGS = "configs"


@dataclass(frozen=True)
class CellKey:
    dataset: str
    split: str
    target: str
    model: str
    strategy: str
    seed: int

    @property
    def label(self) -> str:
        return (f"{self.dataset}/{self.split}/{self.target}/{self.model}/{self.strategy}"
                f"/seed{self.seed}")  # fmt: skip


@dataclass(frozen=True)
class Cell:
    """A cell resolved against the inputs: its identity and its ``train`` arguments."""

    key: CellKey
    config: dict[str, Any]  # resolved TrainConfig, JSON-shaped
    table: dict[str, Any]  # the --config table (spec's [train] merged for the strategy)
    identity: dict[str, Any] | None  # None while an input is missing (dry run)
    blocked: str | None  # why the cell cannot be resolved yet
    store: str | None = None
    split_path: Path | None = None
    pretrained: str | None = None
    ff_data: str | None = None
    forgetting_data: str | None = None  # the model's force-field store, to score forgetting

    @property
    def cell_id(self) -> str | None:
        return None if self.identity is None else identity_hash(self.identity)

    def default_run_dir(self, out: Path) -> Path:
        k = self.key
        return (out / RUNS / k.dataset / f"{k.split}-{k.target}" / k.model
                / f"{k.strategy}-s{k.seed}-{(self.cell_id or 'pending')[:8]}")  # fmt: skip

    def config_path(self, out: Path) -> Path:
        return (
            out
            / CONFIGS
            / f"{hashlib.sha256(toml_text(self.table).encode()).hexdigest()[:16]}.toml"
        )

    def tags(self, bench: str | None = None) -> list[str]:
        """``--tag`` arguments naming the cell to the tracking backends (``[train] log``)."""
        k = self.key
        pairs = {"dataset": k.dataset, "split": k.split, "target": k.target, "model": k.model,
                 "strategy": k.strategy, "seed": k.seed, "cell": (self.cell_id or "")[:16]}  # fmt: skip
        if bench:
            pairs["bench"] = bench
        return [a for key, v in pairs.items() for a in ("--tag", f"{key}={v}")]

    def train_args(self, out: Path, run_dir: Path, bench: str | None = None) -> list[str]:
        """``train ...``: the arguments of ``atomcollapse`` for this cell (always ``--resume``)."""
        assert self.identity is not None and self.store and self.split_path
        k = self.key
        args = ["train", "--data", self.store, "--split", str(self.split_path),
                "--target", k.target, "--strategy", k.strategy, "--seed", str(k.seed),
                "--config", str(self.config_path(out)), "--out", str(run_dir),
                "--resume", "--no-progress", *self.tags(bench)]  # fmt: skip
        if self.pretrained is not None:
            args += ["--pretrained", self.pretrained]
        if self.ff_data is not None:
            args += ["--ff-data", self.ff_data]
        elif self.forgetting_data is not None:
            args += ["--forgetting-data", self.forgetting_data]
        return args


def expand(spec: Spec) -> list[CellKey]:
    """Every cell of the spec, in a fixed order (seed innermost)."""
    return [
        CellKey(d.name, s.name, t, m.name, strat, seed)
        for d in spec.datasets
        for s in d.splits
        for t in d.targets
        for m in spec.models
        for strat in spec.strategies_for(m, t)
        for seed in spec.seeds
    ]


def resolve(spec: Spec, inputs: Inputs) -> list[Cell]:
    """Cells with identities wherever the inputs are there; skipped datasets are left out."""
    cells = []
    for key in expand(spec):
        d, m = inputs.datasets[key.dataset], inputs.models[key.model]
        if d.skipped:
            continue
        table = spec.train_table(key.strategy, key.target)
        full = json.loads(json.dumps(table))
        full.setdefault("strategy", {})["name"] = key.strategy
        full.update(target=key.target, seed=key.seed)
        config = _jsonish(from_dict(full, source=str(spec.path)).to_dict())
        split = d.splits.get((key.split, key.target), SplitInputs())
        uses_ff = needs_ff(key.strategy)
        missing = d.missing or split.missing or m.missing or (m.ff_missing if uses_ff else None)
        if missing:
            cells.append(Cell(key, config, table, None, missing))
            continue
        ident = {
            "dataset": d.content_hash,
            "split": split.hash,
            "pretrained": m.identity,
            "aux_data": m.ff_hash if uses_ff else None,
            "config": identity_config(config),
        }
        ff = None if m.ff_path is None or m.ff_missing else str(m.ff_path)
        forgetting = ff if m.pretrained_arg is not None else None
        cells.append(Cell(key, config, table, ident, None, store=str(d.store_path),
                          split_path=split.path, pretrained=m.pretrained_arg,
                          ff_data=ff if uses_ff else None,
                          forgetting_data=forgetting))  # fmt: skip
    return cells


def identity_config(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a resolved run configuration that is a cell's identity: without
    :data:`IGNORED` keys, nor settings of ``config.ADDED_SETTINGS`` at their default (adding a
    setting never turns finished cells, whose config.json predates it, into new ones)."""
    out = json.loads(json.dumps({k: v for k, v in config.items() if k not in IGNORED}))
    for dotted, default in ADDED_SETTINGS.items():
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and leaf in node and node[leaf] == default:
            del node[leaf]
    return out


def identity_hash(identity: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()


def _jsonish(x: Any) -> Any:
    return json.loads(json.dumps(x))


@dataclass(frozen=True)
class RunState:
    """A run directory found below ``<out>/runs`` and whether it finished its cell."""

    path: Path
    finished: bool


def run_identities(path: Path) -> list[str]:
    """Identity hashes a run directory can stand for (checkpoint hash or adapter name form)."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return []
    if not isinstance(manifest, dict) or manifest.get("artifact") != "run":
        return []
    get = _getter(manifest)
    base = {
        "dataset": get("dataset", "content_hash"),
        "split": get("split", "hash"),
        "aux_data": get("aux_data", "content_hash"),
        "config": identity_config(config),
    }
    forms = []
    pre_hash = get("pretrained", "hash")
    forms.append({**base, "pretrained": None if pre_hash is None else {"hash": pre_hash}})
    if manifest.get("pretrained_path"):
        forms.append({**base, "pretrained": {"adapter": manifest["pretrained_path"]}})
    return [identity_hash(f) for f in forms]


def _getter(d: dict[str, Any]):
    def get(table: str, key: str) -> Any:
        node = d.get(table)
        return node.get(key) if isinstance(node, dict) else None

    return get


def is_finished(path: Path) -> bool:
    """Finished status in the manifest and metrics for the run's own target, strategy, seed."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        config = json.loads((path / "config.json").read_text())
        metrics = json.loads((path / "metrics.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    same = (
        metrics.get("target") == config.get("target")
        and metrics.get("strategy") == config.get("strategy", {}).get("name")
        and metrics.get("seed") == config.get("seed")
    )
    return manifest.get("status") == "finished" and same and bool(metrics.get("partitions"))


def scan_runs(out: Path) -> dict[str, list[RunState]]:
    """Run directories below ``<out>/runs`` by identity hash (finished ones first)."""
    found: dict[str, list[RunState]] = {}
    root = out / RUNS
    if not root.is_dir():
        return found
    for manifest in sorted(root.rglob("manifest.json")):
        path = manifest.parent
        ids = run_identities(path)
        if not ids:
            continue
        state = RunState(path, is_finished(path))
        for i in ids:
            found.setdefault(i, []).append(state)
    for states in found.values():
        states.sort(key=lambda s: (not s.finished, str(s.path)))
    return found


def toml_text(table: dict[str, Any]) -> str:
    """A TOML rendering of a config table (scalars, lists of scalars, nested tables)."""
    lines: list[str] = []
    _emit(table, [], lines)
    return "\n".join(lines) + "\n"


def _emit(table: dict[str, Any], prefix: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if prefix and (scalars or not tables):
        lines.append(f"[{'.'.join(_key(p) for p in prefix)}]")
    for k in sorted(scalars):
        lines.append(f"{_key(k)} = {_value(scalars[k])}")
    for k in sorted(tables):
        _emit(tables[k], [*prefix, k], lines)


def _key(k: str) -> str:
    bare = k and all(c.isalnum() or c in "-_" for c in k)
    return k if bare else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v) if v == v and abs(v) != float("inf") else str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")
