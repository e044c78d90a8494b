"""The ``train`` command's inputs, checked before anything is written.

Rows of each partition are chosen here, in this order: seeded subsets first (``max_train`` from
the run's data seed; ``max_eval`` of val, id_test and ood_test from ``eval_seed`` alone, so
that every cell of a benchmark is scored on the same structures), then, with
``drop_unsupported_elements``, the structures with elements outside the pretrained model's set
are left out, so an adapter's rows are a subset of a native model's rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from atomcollapse.constants import SYMBOLS, atomic_number
from atomcollapse.data.batching import atom_rows
from atomcollapse.data.store import Store, open_store
from atomcollapse.errors import InputError
from atomcollapse.models.adapters import describe_drop, rows_with_elements
from atomcollapse.models.model import AtomisticModel
from atomcollapse.splits.artifact import Split, load_split
from atomcollapse.training.config import TrainConfig
from atomcollapse.training.model_setup import check_elements, element_numbers, load_pretrained
from atomcollapse.training.rundir import RunDir
from atomcollapse.training.seeding import Seeds
from atomcollapse.training.strategies import Strategy, make_strategy
from atomcollapse.training.tracking import check_available

EVAL_PARTITIONS = ("val", "id_test", "ood_test")
#: mixed into ``eval_seed`` so the evaluation subsets never coincide with another seeded stream
_EVAL_STREAM = 8
_FORGETTING_STREAM = 9
#: at most this share of a force-field store is held out to measure forgetting
FORGETTING_SHARE = 0.1


@dataclass(frozen=True)
class TrainInputs:
    """What the ``train`` command reads and writes besides the configuration.

    ``pretrained`` is a checkpoint file or a bundled model's name (``ani1x``, ``ani1x:0``,
    ``ani1ccx``, ``sevennet-0``, ``sevennet-mf-0:PBE``, ``so3lr``, ``chgnet``; see
    :mod:`atomcollapse.models.adapters`).
    Forgetting is scored on held-out structures of ``forgetting_data``, else of ``ff_data``.
    ``tags``: ``(key, value)`` pairs the tracking backends show, over the defaults (dataset,
    split, target, model, strategy, seed).
    """

    data: str
    split: Path
    out: Path
    pretrained: Path | None = None
    ff_data: str | None = None
    forgetting_data: str | None = None
    data_root: Path | None = None
    resume: bool = False
    overwrite: bool = False
    progress: bool | None = None
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Pretrained:
    model: AtomisticModel
    meta: dict[str, Any]
    hash: str


@dataclass(frozen=True)
class Aux:
    """Force-field data of mft: the store and the rows used."""

    store: Store
    rows: np.ndarray
    n_test_overlap: int = 0  # structures left out as (made from) the split's test structures
    n_held_out: int = 0  # structures held out to score forgetting


@dataclass(frozen=True)
class Forgetting:
    """Held-out force-field structures on which the pretraining task is scored after training
    (never trained on by mft, never the split's test structures)."""

    store: Store
    rows: np.ndarray
    setting: str  # the option that named the store


@dataclass
class Checked:
    """Checked inputs: the store, split, strategy, seeds and the rows of every partition.

    ``rows`` holds train (after ``max_train``) and the evaluated partitions (after
    ``max_eval``); ``dropped`` the structures left out per partition (and ``aux``) for their
    elements (``elements``, ``drop_unsupported_elements``); ``drop_notes`` says so in words.
    """

    store: Store
    split: Split
    strategy: Strategy
    seeds: Seeds
    rows: dict[str, np.ndarray]
    pretrained: Pretrained | None
    aux: Aux | None
    run: RunDir
    dropped: dict[str, int] = field(default_factory=dict)
    drop_notes: list[str] = field(default_factory=list)
    forgetting: Forgetting | None = None
    #: elements of the evaluated partitions that no training structure holds (symbol ->
    #: {partition: structures}); see :func:`elements_not_in_training`
    unseen_elements: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def train_rows(self) -> np.ndarray:
        return self.rows["train"]


def subset(rows: np.ndarray, n: int, seed: int | tuple[int, ...]) -> np.ndarray:
    """A sorted random subset of ``n`` of ``rows`` (all of them when ``n`` is 0 or too big)."""
    if not n or n >= len(rows):
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size=n, replace=False))


def eval_rows(split: Split, partition: str, max_eval: int, eval_seed: int) -> np.ndarray:
    """The rows of ``partition`` that are evaluated: a function of the split and
    ``(max_eval, eval_seed)`` only, never of the run's seed."""
    index = EVAL_PARTITIONS.index(partition)
    return subset(split.indices(partition), max_eval, (eval_seed, _EVAL_STREAM, index))


def _pretrained_name(inp: TrainInputs) -> str:
    return str(inp.pretrained)


def check_inputs(inp: TrainInputs, cfg: TrainConfig) -> Checked:
    """Every bad-input check of ``train``; raises InputError, creates nothing."""
    check_available(cfg.log)
    store = open_store(inp.data, inp.data_root)
    split = load_split(inp.split)
    split.check_dataset(store)
    store.verify_content()
    if not cfg.target:
        raise InputError("no target given (--target)")
    store.target(cfg.target)
    seeds = Seeds.from_seed(cfg.seed, cfg.init_seed, cfg.data_seed)
    strategy = make_strategy(cfg.strategy.name, cfg.strategy.settings, seeds.task)
    if strategy.needs_pretrained and inp.pretrained is None:
        raise InputError(f"strategy {strategy.name!r} needs a pretrained checkpoint (--pretrained)")
    if strategy.needs_ff and inp.ff_data is None:
        raise InputError(f"strategy {strategy.name!r} needs force-field data (--ff-data)")
    rows = {"train": subset(split.indices("train"), cfg.max_train, seeds.subset)}
    for p in EVAL_PARTITIONS:
        rows[p] = eval_rows(split, p, cfg.max_eval, cfg.eval_seed)
    for p in ("train", "val"):
        if len(split.indices(p)) == 0:
            raise InputError(f"split has no {p} structures", file=inp.split)
    pretrained: Pretrained | None = None
    dropped: dict[str, int] = {}
    notes: list[str] = []
    if cfg.elements:
        known = [atomic_number(s) for s in cfg.elements]
        rows, dropped, notes = _keep_elements(store, rows, known, "the setting 'elements'")
        _need_train_and_val(rows, "elements outside the setting 'elements'", inp.split)
    if inp.pretrained is not None:
        pretrained = Pretrained(*load_pretrained(inp.pretrained))
        _check_periodic(store, rows, pretrained, _pretrained_name(inp))
        rows, model_dropped, model_notes = _supported(store, rows, pretrained, cfg,
                                                      _pretrained_name(inp))  # fmt: skip
        for p, n in model_dropped.items():
            dropped[p] = dropped.get(p, 0) + n
        notes += model_notes
        _need_train_and_val(rows, "elements outside the pretrained model's set", inp.split)
    unseen = elements_not_in_training(store, rows)
    notes += [describe_unseen(symbol, where) for symbol, where in unseen.items()]
    forgetting = None
    if pretrained is not None:
        forgetting, f_notes = _forgetting(inp, cfg, pretrained, store, split)
        notes += f_notes
    aux = None
    if strategy.needs_ff and inp.ff_data is not None and pretrained is not None:
        aux, aux_dropped, aux_notes = _aux(inp, cfg, seeds, pretrained, store, split, forgetting)
        dropped.update(aux_dropped)
        notes += aux_notes
    for other in {id(s.store): s.store for s in (aux, forgetting) if s is not None}.values():
        other.verify_content()
    run = RunDir.prepare(inp.out, resume=inp.resume, overwrite=inp.overwrite)
    return Checked(store, split, strategy, seeds, rows, pretrained, aux, run, dropped, notes,
                   forgetting, unseen)  # fmt: skip


def _need_train_and_val(rows: dict[str, np.ndarray], why: str, split_file) -> None:
    for p in ("train", "val"):
        if len(rows[p]) == 0:
            raise InputError(f"no {p} structures left after leaving out {why}", file=split_file)


def _keep_elements(
    store: Store, rows: dict[str, np.ndarray], known, whose: str = "the pretrained model's set"
) -> tuple[dict[str, np.ndarray], dict[str, int], list[str]]:
    """``rows`` without the structures that hold an element outside ``known`` (atomic numbers),
    the number left out per partition, and a line for each partition that lost some."""
    kept, dropped, notes = {}, {}, []
    for p, r in rows.items():
        kept[p], n = rows_with_elements(store.numbers, store.offsets, r, known)
        dropped[p] = n
        if n:
            notes.append(describe_drop(n, len(r), known, p, whose))
    return kept, dropped, notes


def elements_not_in_training(
    store: Store, rows: dict[str, np.ndarray]
) -> dict[str, dict[str, int]]:
    """Elements of the evaluation partitions that no training structure holds: symbol ->
    {partition: structures holding it}. Per-element references cannot be fitted for them (the
    head's reference stays 0) and the backbone never saw them under the property loss."""
    numbers = np.asarray(store.numbers)

    def holding(r: np.ndarray) -> dict[int, int]:
        if len(r) == 0:
            return {}
        atoms, offsets = atom_rows(store, r)
        struct = np.repeat(np.arange(len(r)), np.diff(offsets))
        pairs = np.unique(np.stack([struct, numbers[atoms]]), axis=1)
        zs, counts = np.unique(pairs[1], return_counts=True)
        return {int(z): int(n) for z, n in zip(zs, counts, strict=True)}

    trained = set(holding(rows["train"]))
    out: dict[str, dict[str, int]] = {}
    for p in EVAL_PARTITIONS:
        for z, n in holding(rows[p]).items():
            if z not in trained:
                out.setdefault(SYMBOLS[z], {})[p] = n
    return dict(sorted(out.items()))


def describe_unseen(symbol: str, where: dict[str, int]) -> str:
    """One line for the log and manifest about an element no training structure holds."""
    counts = ", ".join(f"{n} {p}" for p, n in where.items())
    return (f"warning: element {symbol} is in {counts} structures but in no training structure: "
            "its per-element reference cannot be fitted and the property task never trained on "
            "it; the setting 'elements' (or more training structures) keeps the evaluated sets "
            "to elements the training set holds")  # fmt: skip


def forgetting_rows(ff_store: Store, allowed: np.ndarray, cfg: TrainConfig) -> np.ndarray:
    """The held-out rows that score forgetting: a function of the store's ``allowed`` rows and
    ``(max_forgetting, eval_seed)`` only, so every strategy and seed is scored on the same
    structures; at most ``max_forgetting`` and at most a tenth of them."""
    n = min(cfg.max_forgetting, math.ceil(FORGETTING_SHARE * len(allowed)))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    return subset(allowed, n, (cfg.eval_seed, _FORGETTING_STREAM))


def _forgetting(
    inp: TrainInputs, cfg: TrainConfig, pre: Pretrained, store: Store, split: Split
) -> tuple[Forgetting | None, list[str]]:
    """The forgetting store (``--forgetting-data``, else ``--ff-data``) and its held-out rows."""
    explicit = inp.forgetting_data is not None
    name = inp.forgetting_data if explicit else inp.ff_data
    if name is None or cfg.max_forgetting == 0 or "energy" not in pre.model.heads:
        return None, []
    setting = "--forgetting-data" if explicit else "--ff-data"
    ff_store = open_store(name, inp.data_root)
    labelled = "energy" in ff_store.target_names and "forces" in ff_store.manifest["atom_arrays"]
    if not labelled:
        if explicit:
            raise InputError(
                f"{setting}: the store has no reference energies and forces to score forgetting",
                file=name,
            )
        return None, [f"forgetting not measured: {name} has no reference energies and forces"]
    ff_store.target("energy")
    ff_store.atom_array("forces")
    leaked = aux_test_overlap(ff_store, store, split)
    if explicit and len(leaked):
        raise InputError(
            f"{setting}: {len(leaked):,} structures are (or were made from) id_test / ood_test "
            f"structures of the split; pass a store without them",
            file=name,
        )
    allowed = np.setdiff1d(np.arange(len(ff_store)), leaked)
    rows, _, notes = _supported(ff_store, {"forgetting": forgetting_rows(ff_store, allowed, cfg)},
                                pre, cfg, _pretrained_name(inp))  # fmt: skip
    if len(rows["forgetting"]) == 0:
        return None, ["forgetting not measured: no held-out force-field structures"]
    return Forgetting(ff_store, rows["forgetting"], setting), notes


def _supported(
    store: Store, rows: dict[str, np.ndarray], pre: Pretrained, cfg: TrainConfig, name: str
) -> tuple[dict[str, np.ndarray], dict[str, int], list[str]]:
    """``rows`` without structures the pretrained model cannot take (or an InputError)."""
    known = element_numbers(pre.meta.get("elements", []))
    if not known:
        return rows, {}, []
    if not cfg.drop_unsupported_elements:
        used = np.unique(np.concatenate(list(rows.values())))
        check_elements(store, used, pre.meta, name)
        return rows, {}, []
    return _keep_elements(store, rows, known)


def _check_periodic(store: Store, rows: dict[str, np.ndarray], pre: Pretrained, name: str) -> None:
    """ANI takes molecules only: refuse periodic structures before anything is written."""
    if pre.model.backbone.model_args().get("type") != "ani":
        return
    pbc = np.asarray(store.pbc)
    used = np.unique(np.concatenate(list(rows.values())))
    if len(used) and bool(pbc[used].any()):
        raise InputError(
            f"dataset {store.name!r} has periodic structures; {name} takes molecules only",
            file=name,
        )


def lineage(manifest: dict) -> set[str]:
    """Content hashes of a store and of every store it was made from (subsets, xTB labels)."""
    hashes = {manifest.get("content_hash")}
    source = manifest.get("source")
    while isinstance(source, dict):
        hashes.update(source.get(k) for k in ("parent_hash", "store_content_hash"))
        source = source.get("parent_source")
    return {h for h in hashes if isinstance(h, str)}


def aux_test_overlap(ff_store: Store, store: Store, split: Split) -> np.ndarray:
    """Rows of ``ff_store`` that are, or were made from, id_test / ood_test structures.

    Only for a force-field store made from the split's dataset (same store, a subset of it, or
    xTB conformers of it): matched by structure id, and by the ``parent_id`` column when there
    is one. MFT on them would train the backbone on the test structures.
    """
    if store.content_hash not in lineage(ff_store.manifest):
        return np.zeros(0, dtype=np.int64)
    test = np.concatenate([split.indices("id_test"), split.indices("ood_test")])
    test_ids = np.asarray(store.ids)[test].astype(str)
    hit = np.isin(np.asarray(ff_store.ids).astype(str), test_ids)
    if ff_store.has_column("parent_id"):
        hit |= np.isin(np.asarray(ff_store.column("parent_id")).astype(str), test_ids)
    return np.flatnonzero(hit)


def _aux(
    inp: TrainInputs,
    cfg: TrainConfig,
    seeds: Seeds,
    pre: Pretrained,
    store: Store,
    split: Split,
    forgetting: Forgetting | None,
) -> tuple[Aux, dict[str, int], list[str]]:
    """The force-field store of mft, without the split's test structures and the structures
    held out to score forgetting; reference labels need energies and forces in it."""
    assert inp.ff_data is not None  # _aux is called only with --ff-data
    ff_store = open_store(inp.ff_data, inp.data_root)
    if cfg.strategy.settings.labels == "reference":
        ff_store.target("energy")
        ff_store.atom_array("forces")
    leaked = aux_test_overlap(ff_store, store, split)
    held_out = np.zeros(0, dtype=np.int64)
    if forgetting is not None and forgetting.store.content_hash == ff_store.content_hash:
        held_out = forgetting.rows
    allowed = np.setdiff1d(np.arange(len(ff_store)), np.union1d(leaked, held_out))
    rows = {"aux": subset(allowed, cfg.max_ff, seeds.subset + 1)}
    if not len(rows["aux"]):
        raise InputError(
            "force-field store has no structures"
            + (" outside the split's id_test and ood_test" if len(leaked) else ""),
            file=inp.ff_data,
        )
    rows, dropped, notes = _supported(ff_store, rows, pre, cfg, _pretrained_name(inp))
    if len(leaked):
        notes.append(
            f"left out {len(leaked):,} of {len(ff_store):,} aux structures that are (or were made "
            f"from) id_test / ood_test structures of the split"
        )
    if len(held_out):
        notes.append(
            f"held out {len(held_out):,} of {len(ff_store):,} aux structures to score forgetting"
        )
    if len(rows["aux"]) == 0:
        known = element_numbers(pre.meta.get("elements", []))
        raise InputError(
            "no force-field structures left with only the elements "
            + ", ".join(SYMBOLS[z] for z in sorted(known)),
            file=inp.ff_data,
        )
    return Aux(ff_store, rows["aux"], len(leaked), len(held_out)), dropped, notes
