"""The ``collapse`` command's pipeline: check inputs, sample atoms, embed, measure, write."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atomcollapse.analysis.aggregate import strategy_rank
from atomcollapse.analysis.collapse import (
    ATOM_CLASSES,
    EDGE_CLASSES,
    CollapseResult,
    Sample,
    compare_models,
    sample_environments,
)
from atomcollapse.analysis.embeddings import extract, load_backbone
from atomcollapse.analysis.measures import tsne_backend, tsne_description
from atomcollapse.errors import InputError, not_a_file


@dataclass
class CollapseInputs:
    """What ``collapse`` compares: the store, the structures to sample from, the models."""

    store: object
    rows: np.ndarray | None
    #: display name -> checkpoint file, run dir or registered name; "pretrained" is the name or
    #: the file's absolute path, as a collapse manifest records it
    models: dict[str, Path | str]
    notes: list[str]


def resolve_inputs(
    pretrained: Path | str,
    run_paths: list[Path],
    *,
    data: str | None,
    split: Path | None,
    partition: str,
    data_root: Path | None,
) -> CollapseInputs:
    """Check that every run adapted ``pretrained`` on one dataset; find the store and split."""
    from atomcollapse.analysis.runs import find_runs, load_run
    from atomcollapse.artifacts import sha256_file
    from atomcollapse.data.store import open_store
    from atomcollapse.models import adapters
    from atomcollapse.splits.artifact import load_split

    named = adapters.is_pretrained_name(str(pretrained))
    known: list = []  # the model's element set, where it declares one
    if named:  # a registered model (ani1x:0, so3lr, ...): its hash is the sha256 of its weights
        from atomcollapse.training.model_setup import load_pretrained

        _, meta, pre_hash = load_pretrained(str(pretrained))
        known = list(meta.get("elements") or [])
    else:
        if not Path(pretrained).is_file():
            raise not_a_file(pretrained, "pretrained checkpoint file or registered model name")
        pre_hash = sha256_file(pretrained)
    runs = [load_run(p) for p in find_runs(run_paths)] if run_paths else []
    notes: list[str] = []
    for r in runs:
        if r.pretrained_hash and r.pretrained_hash != pre_hash:
            raise InputError(f"run was adapted from checkpoint {r.pretrained_hash[:12]}, not from "
                             f"{pretrained if named else Path(pretrained).name} "
                             f"({pre_hash[:12]})", file=r.path)  # fmt: skip
        if not r.best_checkpoint.is_file():
            raise InputError(f"run has no {r.best_checkpoint.name} (unfinished?)", file=r.path)
    hashes = {r.dataset_hash for r in runs if r.dataset_hash}
    if len(hashes) > 1:
        raise InputError("runs were trained on different datasets (content hashes differ)",
                         file=", ".join(str(r.path) for r in runs))  # fmt: skip
    found = (r.dataset_path for r in runs if r.dataset_path and Path(r.dataset_path).is_dir())
    name = data or next(found, None) or next((r.dataset for r in runs if r.dataset != "-"), None)
    if name is None:
        raise InputError("no dataset: pass --data STORE (the runs name none)")
    store = open_store(name, data_root)
    if hashes and store.content_hash not in hashes:
        raise InputError(f"store content hash {store.content_hash[:12]} is not the runs' dataset "
                         f"({next(iter(hashes))[:12]})", file=store.path)  # fmt: skip
    split_path = split or next((Path(r.split_path) for r in runs if r.split_path), None)
    rows = None
    if split_path is not None:
        s = load_split(split_path)
        s.check_dataset(store)
        rows = s.indices(partition)
        if not len(rows):
            raise InputError(f"split has no {partition} structures", file=split_path)
        notes.append(
            f"atoms sampled from {partition} of split {split_path} ({len(rows):,} structures)"
        )
    else:
        notes.append(f"atoms sampled from all {len(store):,} structures of {store.name}")
    if known:  # a model of a fixed element set (ANI-1x: H, C, N, O) cannot embed the others
        from atomcollapse.models.adapters import rows_with_elements
        from atomcollapse.training.model_setup import element_numbers

        every = np.arange(len(store)) if rows is None else rows
        rows, n = rows_with_elements(store.numbers, store.offsets, every, element_numbers(known))
        if n:
            notes.append(f"left out {n:,} of {len(every):,} structures with elements outside "
                         f"{pretrained}'s set ({', '.join(map(str, known))})")  # fmt: skip
        if not len(rows):
            raise InputError(f"no structure holds only elements of {pretrained} "
                             f"({', '.join(map(str, known))})", file=store.path)  # fmt: skip
    models: dict[str, Path | str] = {"pretrained": pretrained_ref(pretrained)}
    for r in sorted(runs, key=lambda r: (strategy_rank(r.strategy), r.seed or 0, str(r.path))):
        label = f"{r.strategy} s{r.seed}" if r.seed is not None else r.strategy
        if label in models:
            label = f"{label} ({r.path.name})"
        models[label] = r.path
    return CollapseInputs(store=store, rows=rows, models=models, notes=notes)


def pretrained_ref(pretrained: Path | str) -> Path | str:
    """A registered model's name as given, or a checkpoint file's absolute path."""
    from atomcollapse.models import adapters

    named = adapters.is_pretrained_name(str(pretrained))
    return str(pretrained) if named else Path(pretrained).resolve()


def collapse_record(
    pretrained: Path | str,
    runs: list[Path],
    *,
    data: Path | str | None,
    split: Path | None,
    partition: str,
    settings: CollapseSettings,
) -> dict:
    """What a collapse analysis was made from, as its manifest records it (``bench --collect``
    keeps an analysis whose record and code version are unchanged): the pretrained model, the
    run directories and the store and split as given (files as absolute paths), the
    partition and every setting."""
    import dataclasses

    def absolute(p: Path | str | None) -> str | None:
        return None if p is None else str(Path(p).resolve()) if Path(p).exists() else str(p)

    return {"pretrained": str(pretrained_ref(pretrained)),
            "runs": sorted(str(Path(r).resolve()) for r in runs), "store": absolute(data),
            "split": absolute(split), "partition": partition,
            "settings": dataclasses.asdict(settings)}  # fmt: skip


@dataclass(frozen=True)
class CollapseSettings:
    """Options of ``collapse``; :meth:`validate` checks them once, at the edge."""

    layer: int = -1
    max_per_class: int = 2000
    seed: int = 0
    edges: str = "auto"
    tsne: bool = True
    tsne_max_iter: int = 1000
    projections: int = 128
    batch_size: int = 64
    threads: int | None = None
    tsne_backend: str = "auto"

    def validate(self) -> CollapseSettings:
        """Raise InputError (naming the CLI option) for a value ``collapse`` cannot use."""
        from atomcollapse.analysis.embeddings import EDGE_MODES
        from atomcollapse.analysis.measures import TSNE_BACKENDS

        if self.edges not in EDGE_MODES:
            raise InputError(f"--edges must be one of {', '.join(EDGE_MODES)}, not {self.edges!r}")
        if self.tsne_backend not in TSNE_BACKENDS:
            raise InputError(f"--tsne-backend must be one of {', '.join(TSNE_BACKENDS)}, "
                             f"not {self.tsne_backend!r}")  # fmt: skip
        limits = {"--max-per-class": (self.max_per_class, 1),
                  "--tsne-max-iter": (self.tsne_max_iter, 250),
                  "--projections": (self.projections, 1), "--batch-size": (self.batch_size, 1),
                  "--threads": (self.threads or 1, 1)}  # fmt: skip
        for name, (v, lo) in limits.items():
            if v < lo:
                raise InputError(f"{name} must be at least {lo}, got {v}")
        return self


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch CPU threads (unchanged when None), then restore."""
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_collapse(
    inputs: CollapseInputs, cfg: CollapseSettings
) -> tuple[CollapseResult, Sample, list[str]]:
    """Sample atoms once, embed them in every model, and compare each with the pretrained one."""
    sample = sample_environments(inputs.store, inputs.rows, max_per_class=cfg.max_per_class,
                                 seed=cfg.seed)  # fmt: skip
    if not len(sample.atom_label):
        raise InputError("no atom of any environment class in the sampled structures")
    embeddings: dict[str, dict[str, np.ndarray]] = {}
    mode = cfg.edges
    for name, path in inputs.models.items():
        emb = extract(load_backbone(path), inputs.store, sample, layer=cfg.layer, edge_mode=mode,
                      batch_size=cfg.batch_size)  # fmt: skip
        mode = emb.edge_mode
        embeddings[name] = {"atoms": emb.atoms, "edges": emb.edges}
    labels = {"atoms": sample.atom_label, "edges": sample.edge_label}
    if not len(sample.edge_label):
        labels.pop("edges")
    result = compare_models(embeddings, labels, reference="pretrained", seed=cfg.seed,
                            tsne=cfg.tsne, tsne_max_iter=cfg.tsne_max_iter,
                            n_projections=cfg.projections, threads=cfg.threads,
                            tsne_backend=cfg.tsne_backend)  # fmt: skip
    notes = [*inputs.notes, f"layer {cfg.layer}; seed {cfg.seed}",
             f"atoms per class: {sample.atom_counts()}",
             f"pairs per class: {sample.edge_counts()} (edge embeddings: {mode})"]  # fmt: skip
    if cfg.tsne:
        notes += [f"t-SNE of {name} ({len(lab):,}): {tsne_description(tsne_backend(len(lab), cfg.tsne_backend))}"
                  for name, lab in labels.items()]  # fmt: skip
    return result, sample, notes


#: What the colours of a t-SNE figure are, per embedding set.
LEGEND_TITLES = {
    "atoms": "chemical environment\n(element + number of\nbonded neighbours)",
    "edges": "atom pair\n(bonded, or distance)",
}


def paper_row(coords: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The paper's t-SNE row: pretrained | finetune | mft (the first seed of each), or {} when
    any of the three is missing."""
    pick = {}
    for want in ("pretrained", "finetune", "mft"):
        names = [m for m in coords if m == want or m.startswith(f"{want} ")]
        if not names:
            return {}
        pick[names[0]] = coords[names[0]]
    return pick


def write_collapse(
    result: CollapseResult,
    sample: Sample,
    out: Path,
    *,
    notes: list[str],
    overwrite: bool,
    inputs: dict | None = None,
) -> None:
    """Tables, sampled atoms and t-SNE figures, written into ``out`` atomically."""
    import pandas as pd

    from atomcollapse.analysis.plots import plot_collapse_measures, plot_tsne
    from atomcollapse.analysis.report import render_collapse
    from atomcollapse.artifacts import MANIFEST, atomic_directory, header, write_json_atomic

    labels = {"atoms": sample.atom_label, "edges": sample.edge_label}
    classes = {"atoms": ATOM_CLASSES, "edges": EDGE_CLASSES}
    with atomic_directory(out, kind="collapse", overwrite=overwrite) as tmp:
        write_json_atomic(tmp / MANIFEST, header("collapse", inputs=inputs))
        for fmt, name in (("md", "collapse.md"), ("csv", "collapse.csv"), ("latex", "collapse.tex"),
                          ("json", "collapse.json")):  # fmt: skip
            (tmp / name).write_text(render_collapse(result.rows, fmt))
        (tmp / "notes.txt").write_text("\n".join(notes) + "\n")
        pd.DataFrame({"structure": sample.atom_structure, "atom": sample.atom_local,
                      "class": [classes["atoms"][k] for k in sample.atom_label]}).to_csv(
            tmp / "sample_atoms.csv", index=False)  # fmt: skip
        pd.DataFrame({"structure": sample.edge_structure, "i": sample.edge_i, "j": sample.edge_j,
                      "distance_A": sample.edge_distance,
                      "class": [classes["edges"][k] for k in sample.edge_label]}).to_csv(
            tmp / "sample_pairs.csv", index=False, float_format="%.6g")  # fmt: skip
        plot_collapse_measures(result.rows, tmp / "measures",
                               title="Representation collapse against the pretrained model")  # fmt: skip
        for set_name, coords in result.tsne.items():
            if not coords:
                continue
            scores = {r["model"]: r["db_tsne"] for r in result.rows if r["set"] == set_name}
            plot_tsne(coords, labels[set_name], classes[set_name], tmp / f"tsne_{set_name}",
                      title=f"t-SNE of {set_name} embeddings", scores=scores,
                      legend_title=LEGEND_TITLES[set_name])  # fmt: skip
            row = paper_row(coords)
            if row:
                plot_tsne(row, labels[set_name], classes[set_name], tmp / f"tsne_row_{set_name}",
                          title=f"t-SNE of {set_name} embeddings: pretrained, finetune, MFT",
                          scores=scores, legend_title=LEGEND_TITLES[set_name])  # fmt: skip
