"""Training configuration: frozen dataclasses, loaded from TOML plus overrides, validated once.

Precedence: built-in defaults < ``--config FILE.toml`` < command-line options. A TOML file uses
the same nesting as :class:`TrainConfig` (``[optim]``, ``[strategy]``, ``[ff_loss]``, ``[model]``,
``[head]`` tables, scalars at the top level). Unknown keys and out-of-range values are refused
with an :class:`~atomcollapse.errors.InputError` naming the key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from atomcollapse.errors import InputError, not_a_file

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

#: Loss reductions: ``deepmd`` (the study's, DeePMD-kit's) or ``mean`` (before 2026-12; see
#: :mod:`atomcollapse.training.tasks`).
LOSS_CONVENTIONS = ("deepmd", "mean")


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and learning-rate schedule.

    Study (DeePMD-kit): Adam, ``lr`` 1e-3 decaying exponentially (staircase every ``decay_steps``)
    to ``lr_end`` 1e-5 at the last step, gradient-norm clip 5. JMP: AdamW (0.9, 0.95), weight
    decay 0.1, linear warm-up then cosine to ``lr_end``.
    """

    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = 1e-3
    lr_end: float = 1e-5
    schedule: Literal["exponential", "cosine", "constant"] = "exponential"
    decay_steps: int = 1000
    warmup_steps: int = 0
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 5.0


@dataclass(frozen=True)
class ForceFieldLossConfig:
    """Energy and force loss prefactors (energy per atom in eV, forces in eV/A, squared errors).

    With ``ramp`` the weight follows the learning rate as in DeePMD-kit:
    ``w = end + (start - end) * lr / lr0``; the study used energy 0.2 -> 20, force 100 -> 60.
    """

    energy_weight: float = 0.2
    force_weight: float = 100.0
    energy_weight_end: float = 20.0
    force_weight_end: float = 60.0
    ramp: bool = True


@dataclass(frozen=True)
class StrategyConfig:
    """The strategy's name and its own settings (the strategy's ``Settings`` dataclass; see
    :mod:`atomcollapse.training.strategies`). In TOML one ``[strategy]`` table holds ``name``
    and the named strategy's settings, e.g. ``mixing`` and ``aux_weight`` for ``mft``."""

    name: str = "finetune"
    settings: Any = None

    def __post_init__(self) -> None:
        if self.settings is None:
            from atomcollapse.training.strategies import strategy_class

            with contextlib.suppress(KeyError):  # an unknown name is refused by validate()
                object.__setattr__(self, "settings", strategy_class(self.name).Settings())

    def to_dict(self) -> dict[str, Any]:
        fields = dataclasses.asdict(self.settings) if self.settings is not None else {}
        return {"name": self.name, **fields}


@dataclass(frozen=True)
class ModelConfig:
    """PaiNN sizes for ``pretrain`` and for ``scratch`` without a checkpoint (cutoff in A)."""

    hidden: int = 64
    layers: int = 3
    rbf: int = 20
    cutoff: float = 5.0


@dataclass(frozen=True)
class HeadConfig:
    """Property-head MLP (one hidden layer): its width (0 = half its input's width), and the
    backbone features it reads: ``"last"`` (the backbone's output), a layer index (0 = after
    the embedding, negative from the end) or ``"all"`` layers concatenated. ``atom_refs``:
    per-element linear references fitted on train and added before the readout (``"auto"``: as
    the store declares for the target, else with the ``sum`` readout only). An energy per atom
    needs them: composition explains all but ~1% of its spread, which an MLP on frozen features
    cannot resolve to meV."""

    hidden: int = 0
    feature_layer: int | str = "last"
    atom_refs: bool | str = "auto"


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run (the resolved copy goes into the run dir).

    ``max_train`` / ``max_ff``: seeded subsets (0 = all) of the train rows and of the force-field
    rows, drawn from the run's data seed. ``max_eval``: at most this many structures of each of
    val, id_test and ood_test, drawn from ``eval_seed`` alone (never the run seed), so that every
    cell of a benchmark is scored on the same molecules. ``drop_unsupported_elements``: leave out
    structures with elements outside the pretrained model's set (else such data is refused).
    ``elements``: element symbols; when given, structures with any other element are left out of
    every partition of the property task (train after its subset, val, id_test, ood_test), alike
    for every arm: to compare models of different element sets on the same molecules, or to keep
    every element of the test sets in a small training set.
    ``log``: tracking backends besides the always written ``scalars.csv`` (``tensorboard``,
    ``wandb``; see :mod:`atomcollapse.training.tracking`); they do not change the numbers.
    """

    target: str = ""
    seed: int = 0
    init_seed: int | None = None
    data_seed: int | None = None
    epochs: int = 50
    steps: int = 0
    batch_size: int | str = "auto:512"
    eval_batch_size: int | str = 128
    loss_convention: Literal["deepmd", "mean"] = "deepmd"
    max_forgetting: int = 500
    patience: int = 10
    eval_every_steps: int = 0
    state_every_steps: int = 100
    max_train: int = 0
    max_ff: int = 0
    max_eval: int = 0
    eval_seed: int = 0
    drop_unsupported_elements: bool = False
    elements: tuple[str, ...] = ()
    val_fraction: float = 0.05
    device: str = "auto"
    bf16: bool = False
    log: tuple[str, ...] = ()
    optim: OptimConfig = field(default_factory=OptimConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    ff_loss: ForceFieldLossConfig = field(default_factory=ForceFieldLossConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    head: HeadConfig = field(default_factory=HeadConfig)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["strategy"] = self.strategy.to_dict()
        return out


#: Settings added after runs and bench cells already existed (dotted key -> default, as JSON):
#: a config.json without one holds its default. A new setting goes here with its default, so that
#: older runs still resume and finished bench cells stay finished.
ADDED_SETTINGS: dict[str, Any] = {"elements": []}


def with_added_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a config dict (``config.json``) with every missing :data:`ADDED_SETTINGS` key
    at its default."""
    out = json.loads(json.dumps(config))
    for dotted, default in ADDED_SETTINGS.items():
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.setdefault(leaf, json.loads(json.dumps(default)))
    return out


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Defaults, then the TOML file, then ``overrides`` (dotted keys, ``None`` values skipped)."""
    data: dict[str, Any] = {}
    source = "configuration"
    if path is not None:
        source = str(path)
        try:
            data = tomllib.loads(Path(path).read_text())
        except (FileNotFoundError, IsADirectoryError):
            raise not_a_file(path, "config file") from None
        except tomllib.TOMLDecodeError as e:
            raise InputError(f"invalid TOML ({e})", file=path) from None
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        *parents, leaf = key.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    cfg = _build(TrainConfig, data, source, "")
    validate(cfg, source)
    return _normalised(cfg)


def _normalised(cfg: TrainConfig) -> TrainConfig:
    """``elements`` in one order (by atomic number, no repeats): the same set, the same run."""
    from atomcollapse.constants import atomic_number

    if not cfg.elements:
        return cfg
    return dataclasses.replace(cfg, elements=tuple(sorted(set(cfg.elements), key=atomic_number)))


def from_dict(data: dict[str, Any], source: str = "config") -> TrainConfig:
    """Rebuild a config written by :meth:`TrainConfig.to_dict` (e.g. a run's config.json)."""
    cfg = _build(TrainConfig, data, source, "")
    validate(cfg, source)
    return _normalised(cfg)


def _build(cls: type, data: dict[str, Any], source: str, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise InputError(f"{prefix.rstrip('.') or 'config'} must be a table", file=source)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise InputError(
            f"unknown setting {prefix + unknown[0]!r}; known: {', '.join(fields)}", file=source
        )
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(hints[name], value, source, prefix + name)
    return cls(**kwargs)


def _build_strategy(data: Any, source: str, key: str) -> StrategyConfig:
    """``[strategy]``: ``name`` and the settings of that strategy (checked against its own
    ``Settings`` dataclass, so a setting of another strategy is refused, never ignored)."""
    from atomcollapse.training.strategies import strategy_class, strategy_names

    if not isinstance(data, dict):
        raise InputError(f"{key} must be a table", file=source)
    rest = dict(data)
    name = _coerce(str, rest.pop("name", StrategyConfig.name), source, key + ".name")
    try:
        cls = strategy_class(name)
    except KeyError:
        raise InputError(
            f"setting {key + '.name'!r}: unknown strategy {name!r}; known: "
            f"{', '.join(strategy_names())}",
            file=source,
        ) from None
    known = [f.name for f in dataclasses.fields(cls.Settings)]
    unknown = sorted(set(rest) - set(known))
    if unknown:
        raise InputError(
            f"setting {key + '.' + unknown[0]!r} does not apply to strategy {name!r} "
            f"(its settings: {', '.join(known) or 'none'})",
            file=source,
        )
    settings = _build(cls.Settings, rest, source, key + ".")
    return StrategyConfig(name=name, settings=settings)


def _coerce(tp: Any, value: Any, source: str, key: str) -> Any:
    if tp is StrategyConfig:
        return _build_strategy(value, source, key)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, source, key + ".")
    origin = get_origin(tp)
    args = get_args(tp)
    bad = InputError(f"setting {key!r}: {value!r} is not a valid {_describe(tp)}", file=source)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        if len(inner) == 1:
            return _coerce(inner[0], value, source, key)
        for option in inner:
            try:
                return _coerce(option, value, source, key)
            except InputError:
                continue
        raise bad
    if origin is Literal:
        if value not in args:
            raise bad
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise bad
        item = args[0]
        if Ellipsis not in args:
            if len(value) != len(args):
                raise bad
            return tuple(_coerce(a, v, source, key) for a, v in zip(args, value, strict=True))
        return tuple(_coerce(item, v, source, key) for v in value)
    if tp is bool:
        if not isinstance(value, bool):
            raise bad
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise bad
        return value
    raise bad  # pragma: no cover - every field type is handled above


def _describe(tp: Any) -> str:
    if get_origin(tp) is Literal:
        return "choice (" + " | ".join(map(str, get_args(tp))) + ")"
    return getattr(tp, "__name__", str(tp))


def validate(cfg: TrainConfig, source: str = "configuration") -> None:
    """Range checks that the types alone do not express."""

    def need(ok: bool, key: str, what: str) -> None:
        if not ok:
            raise InputError(f"setting {key!r} {what}", file=source)

    from atomcollapse.training.streams import batch_size_problem

    s, o, f = cfg.strategy, cfg.optim, cfg.ff_loss
    from atomcollapse.training.strategies import strategy_names

    need(
        s.name in strategy_names(), "strategy.name", f"must be one of {', '.join(strategy_names())}"
    )
    for key, what in getattr(s.settings, "problems", list)():
        need(False, f"strategy.{key}", what)
    need(cfg.epochs > 0 or cfg.steps > 0, "epochs", "or 'steps' must be positive")
    need(cfg.epochs >= 0, "epochs", f"must not be negative, got {cfg.epochs}")
    need(cfg.steps >= 0, "steps", f"must not be negative, got {cfg.steps}")
    for key in ("batch_size", "eval_batch_size"):
        problem = batch_size_problem(getattr(cfg, key))
        need(problem is None, key, str(problem))
    for key in ("patience", "state_every_steps"):
        need(getattr(cfg, key) > 0, key, "must be positive")
    for key in (
        "eval_every_steps",
        "max_train",
        "max_ff",
        "max_eval",
        "eval_seed",
        "max_forgetting",
    ):
        need(getattr(cfg, key) >= 0, key, "must not be negative")
    from atomcollapse.training.tracking import check_names

    check_names(cfg.log, source)
    from atomcollapse.constants import atomic_number

    for symbol in cfg.elements:
        try:
            atomic_number(symbol)
        except KeyError:
            need(False, "elements", f"{symbol!r} is not an element symbol")
    need(0.0 < cfg.val_fraction < 1.0, "val_fraction", "must be between 0 and 1")
    need(
        cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:"),
        "device",
        "must be auto, cpu or cuda",
    )
    need(o.lr > 0, "optim.lr", f"(--lr) must be positive, got {o.lr:g}")
    need(o.lr_end > 0, "optim.lr_end", f"must be positive, got {o.lr_end:g}")
    need(
        o.lr_end <= o.lr,
        "optim.lr",
        f"(--lr) {o.lr:g} is below optim.lr_end {o.lr_end:g}; raise --lr or lower optim.lr_end",
    )
    need(o.decay_steps > 0, "optim.decay_steps", "must be positive")
    need(o.warmup_steps >= 0 and o.weight_decay >= 0, "optim.warmup_steps", "must not be negative")
    need(all(0 <= b < 1 for b in o.betas), "optim.betas", "must lie in [0, 1)")
    need(o.grad_clip >= 0, "optim.grad_clip", "must not be negative (0 disables clipping)")
    weights = (f.energy_weight, f.force_weight, f.energy_weight_end, f.force_weight_end)
    need(all(w >= 0 for w in weights), "ff_loss.energy_weight", "weights must not be negative")
    need(
        cfg.model.hidden > 0 and cfg.model.layers > 0 and cfg.model.rbf > 0,
        "model.hidden",
        "sizes must be positive",
    )
    need(cfg.model.cutoff > 0, "model.cutoff", "must be positive")
    need(cfg.head.hidden >= 0, "head.hidden", "must not be negative")
    layer = cfg.head.feature_layer
    need(
        isinstance(layer, int) or layer in ("last", "all"),
        "head.feature_layer",
        "must be last, all or a layer index",
    )
    need(
        isinstance(cfg.head.atom_refs, bool) or cfg.head.atom_refs == "auto",
        "head.atom_refs",
        "must be true, false or auto",
    )
