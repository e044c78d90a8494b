"""Per-atom and per-pair embeddings of the sampled atoms, from a backbone or a checkpoint.

Atom embeddings are a chosen layer's invariant features (``BackboneOutput.layers[layer]``;
-1 = the last layer). Pair embeddings are the backbone's own edge features
(``BackboneOutput.edge``) when it has them and its cutoff reaches every pair class
(``mode="backbone"``); otherwise ``[h_i, h_j, d]``: the two atoms' embeddings of the same layer
and the distance in Angstrom (``mode="pair"``). ``mode="auto"`` picks the first when it can.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import torch

from atomcollapse.analysis.collapse import EDGE_MAX_DISTANCE, Sample
from atomcollapse.errors import InputError, not_a_file

if TYPE_CHECKING:
    from atomcollapse.models.base import Backbone

EDGE_MODES = ("auto", "backbone", "pair")


@dataclass
class Embeddings:
    atoms: np.ndarray  # (n_sampled_atoms, F), rows in Sample order
    edges: np.ndarray  # (n_sampled_pairs, F_e), rows in Sample order
    edge_mode: str  # "backbone" or "pair"


def load_backbone(path: str | Path) -> Backbone:
    """The backbone of a checkpoint file, of a run directory's best checkpoint, or of a
    registered model given by name (a ``str`` such as ``ani1x:0``), in eval mode."""
    from atomcollapse.analysis.runs import BEST_CHECKPOINT, is_run_dir
    from atomcollapse.models import adapters
    from atomcollapse.models.checkpoint import load_checkpoint

    if isinstance(path, str) and adapters.is_pretrained_name(path):
        from atomcollapse.training.model_setup import load_pretrained

        pretrained, _, _ = load_pretrained(path)
        return cast("Backbone", pretrained.backbone).eval()
    p = Path(path)
    if p.is_dir():
        if not is_run_dir(p):
            raise InputError("not a run directory or a checkpoint file", file=p)
        p = p / BEST_CHECKPOINT
    if not p.is_file():
        raise not_a_file(p, "checkpoint file")
    model, _ = load_checkpoint(p)
    backbone = cast("Backbone", getattr(model, "backbone", model))
    return backbone.eval()


def _batch(store, rows: np.ndarray, cutoff: float):
    from atomcollapse.data.batching import collate

    return collate(store, rows, cutoff)


def _match_edges(
    edge_index: np.ndarray, shifts: np.ndarray, i: np.ndarray, j: np.ndarray, shift: np.ndarray
) -> np.ndarray:
    """Column of ``edge_index`` holding each (i, j, shift) query, -1 when absent."""
    q = np.round(shift * 1e3).astype(np.int64)
    g = np.round(shifts * 1e3).astype(np.int64)
    graph = np.column_stack([edge_index[0], edge_index[1], g])
    query = np.column_stack([i, j, q])
    both = np.concatenate([graph, query])
    _, inv = np.unique(both, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    where = np.full(inv.max() + 1 if inv.size else 0, -1, dtype=np.int64)
    where[inv[: len(graph)][::-1]] = np.arange(len(graph))[::-1]
    return where[inv[len(graph) :]]


@torch.no_grad()
def extract(
    backbone: Backbone,
    store,
    sample: Sample,
    *,
    layer: int = -1,
    edge_mode: str = "auto",
    batch_size: int = 64,
) -> Embeddings:
    """Embeddings of ``sample``'s atoms and pairs in ``backbone`` (run in eval mode, on CPU)."""
    if edge_mode not in EDGE_MODES:
        raise InputError(f"edge mode must be one of {', '.join(EDGE_MODES)}, not {edge_mode!r}")
    backbone.eval()
    dtype = next(backbone.parameters()).dtype
    structures = sample.structures
    atoms: np.ndarray | None = None
    edges: np.ndarray | None = None
    mode = edge_mode
    for start in range(0, len(structures), batch_size):
        rows = structures[start : start + batch_size]
        batch = _batch(store, rows, float(backbone.cutoff)).to("cpu", dtype=dtype)
        out = backbone(batch)
        n_layers = len(out.layers)
        if not -n_layers <= layer < n_layers:
            raise InputError(f"--layer {layer} out of range: the backbone has {n_layers} "
                             f"feature layers (0 = embedding, -1 = last)")  # fmt: skip
        h = out.layers[layer].double().numpy()
        offsets = batch.offsets.numpy()
        if mode == "auto":
            reach = float(backbone.cutoff) >= EDGE_MAX_DISTANCE
            mode = "backbone" if out.edge is not None and reach else "pair"
        if mode == "backbone" and out.edge is None:
            raise InputError("the backbone has no edge features; use edge mode 'pair'")
        sel_a = np.flatnonzero(np.isin(sample.atom_structure, rows))
        ga = offsets[np.searchsorted(rows, sample.atom_structure[sel_a])] + sample.atom_local[sel_a]
        if atoms is None:
            atoms = np.zeros((len(sample.atom_structure), h.shape[1]))
        atoms[sel_a] = h[ga]
        sel_e = np.flatnonzero(np.isin(sample.edge_structure, rows))
        base = offsets[np.searchsorted(rows, sample.edge_structure[sel_e])]
        gi, gj = base + sample.edge_i[sel_e], base + sample.edge_j[sel_e]
        if mode == "backbone":
            col = _match_edges(batch.edge_index.numpy(), batch.shifts.double().numpy(), gi, gj,
                               sample.edge_shift[sel_e])  # fmt: skip
            if (col < 0).any():
                raise InputError("a sampled pair lies beyond the backbone's cutoff; use 'pair'")
            e = out.edge.double().numpy()[col]
        else:
            e = np.column_stack([h[gi], h[gj], sample.edge_distance[sel_e]])
        if edges is None:
            edges = np.zeros((len(sample.edge_structure), e.shape[1]))
        edges[sel_e] = e
    width = 0 if atoms is None else atoms.shape[1]
    return Embeddings(
        atoms=atoms if atoms is not None else np.zeros((0, width)),
        edges=edges if edges is not None else np.zeros((0, 2 * width + 1)),
        edge_mode=mode,
    )
