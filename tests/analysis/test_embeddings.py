"""Embedding extraction: the right rows of the right layer, for the same atoms in every model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from atomcollapse.analysis.collapse import sample_environments
from atomcollapse.analysis.embeddings import extract, load_backbone
from atomcollapse.data.batch import AtomsBatch
from atomcollapse.data.neighbors import radius_graph
from atomcollapse.errors import InputError
from tests.analysis.molecules import mini_store, tiny_checkpoint


def single(store, row: int, cutoff: float) -> AtomsBatch:
    """One structure as a batch, built here independently of the project's collate."""
    m = store.structure(row)
    pos = torch.tensor(np.asarray(m.positions), dtype=torch.float32)
    offsets = torch.tensor([0, len(pos)])
    ei, sh = radius_graph(pos, offsets, cutoff)
    return AtomsBatch(numbers=torch.tensor(np.asarray(m.numbers), dtype=torch.long),
                      positions=pos, batch=torch.zeros(len(pos), dtype=torch.long),
                      offsets=offsets, edge_index=ei, shifts=sh)  # fmt: skip


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("emb")
    store = mini_store(root / "mini", copies=3)
    ckpt = tiny_checkpoint(root / "pre.pt", seed=0)
    sample = sample_environments(store, max_per_class=5, seed=0)
    return store, ckpt, sample


def test_atom_embeddings_are_the_layer_features_of_each_atom(setup):
    store, ckpt, sample = setup
    backbone = load_backbone(ckpt)
    with torch.no_grad():
        outs = {int(r): backbone(single(store, int(r), backbone.cutoff)) for r in sample.structures}
    for layer in (-1, 0, 1):
        emb = extract(backbone, store, sample, layer=layer, batch_size=4)
        assert emb.atoms.shape == (len(sample.atom_label), backbone.feature_dim)
        for k, (row, local) in enumerate(
            zip(sample.atom_structure, sample.atom_local, strict=True)
        ):
            expected = outs[int(row)].layers[layer][int(local)].numpy()
            np.testing.assert_allclose(emb.atoms[k], expected, atol=1e-5)


def test_edge_embeddings_backbone_and_pair_modes(setup):
    store, ckpt, sample = setup
    backbone = load_backbone(ckpt)  # cutoff 6.5 A reaches every pair class
    emb = extract(backbone, store, sample)
    assert emb.edge_mode == "backbone"
    pair = extract(backbone, store, sample, edge_mode="pair")
    f = backbone.feature_dim
    assert pair.edges.shape == (len(sample.edge_label), 2 * f + 1)
    np.testing.assert_allclose(pair.edges[:, -1], sample.edge_distance)
    with torch.no_grad():
        for k in range(0, len(sample.edge_label), 4):
            row = int(sample.edge_structure[k])
            i, j = int(sample.edge_i[k]), int(sample.edge_j[k])
            b = single(store, row, backbone.cutoff)
            out = backbone(b)
            e = int(
                np.flatnonzero((b.edge_index[0] == i).numpy() & (b.edge_index[1] == j).numpy())[0]
            )
            np.testing.assert_allclose(emb.edges[k], out.edge[e].numpy(), atol=1e-5)
            np.testing.assert_allclose(pair.edges[k, :f], out.node[i].numpy(), atol=1e-5)
            np.testing.assert_allclose(pair.edges[k, f : 2 * f], out.node[j].numpy(), atol=1e-5)


def test_short_cutoff_falls_back_to_pair_mode_and_refuses_backbone(setup, tmp_path):
    store, _, sample = setup
    short = load_backbone(tiny_checkpoint(tmp_path / "short.pt", seed=1, cutoff=3.0))
    assert extract(short, store, sample).edge_mode == "pair"
    with pytest.raises(InputError, match="beyond the backbone's cutoff"):
        extract(short, store, sample, edge_mode="backbone")


def test_batch_size_does_not_change_embeddings(setup):
    store, ckpt, sample = setup
    backbone = load_backbone(ckpt)
    a = extract(backbone, store, sample, batch_size=1)
    b = extract(backbone, store, sample, batch_size=64)
    np.testing.assert_allclose(a.atoms, b.atoms, atol=1e-5)
    np.testing.assert_allclose(a.edges, b.edges, atol=1e-5)


def test_layer_out_of_range_and_bad_checkpoint(setup, tmp_path):
    store, ckpt, sample = setup
    with pytest.raises(InputError, match="out of range"):
        extract(load_backbone(ckpt), store, sample, layer=7)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError):
        load_backbone(tmp_path / "junk.pt")
    with pytest.raises(InputError, match="not found"):
        load_backbone(tmp_path / "missing.pt")
