"""compare_models on synthetic embeddings: the pretrained row is the identity, collapse shows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import ortho_group

from atomcollapse.analysis.collapse import compare_models


def synthetic(seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(5), 60)
    centers = rng.normal(size=(5, 12)) * 6.0
    noise = rng.normal(size=(len(labels), 12))
    pre = centers[labels] + noise
    collapsed = 0.15 * centers[labels] + noise  # class centres pulled together
    rotated = pre @ ortho_group.rvs(12, random_state=3)
    shifted = pre + 2.0
    emb = {name: {"atoms": x, "edges": x[:100]}
           for name, x in (("pretrained", pre), ("collapsed", collapsed),
                           ("rotated", rotated), ("shifted", shifted))}  # fmt: skip
    return emb, {"atoms": labels, "edges": labels[:100]}, pre


def test_reference_row_is_identity_and_collapse_is_detected():
    emb, labels, pre = synthetic()
    res = compare_models(emb, labels, reference="pretrained", tsne=False)
    rows = {(r["model"], r["set"]): r for r in res.rows}
    ref = rows[("pretrained", "atoms")]
    assert ref["db_raw_ratio"] == pytest.approx(1.0)
    assert ref["w1_per_dim"] == 0.0 and ref["w1_sliced"] == 0.0
    assert ref["cka"] == pytest.approx(1.0)
    col = rows[("collapsed", "atoms")]
    assert col["db_raw_ratio"] > 3.0 and col["cka"] < 0.95 and col["w1_per_dim"] > 0.3
    rot = rows[("rotated", "atoms")]
    assert rot["db_raw_ratio"] == pytest.approx(1.0) and rot["cka"] == pytest.approx(1.0)
    sh = rows[("shifted", "atoms")]
    assert sh["w1_per_dim"] == pytest.approx(np.mean(2.0 / pre.std(axis=0)))
    assert sh["cka"] == pytest.approx(1.0) and sh["db_raw_ratio"] == pytest.approx(1.0)
    assert rows[("collapsed", "edges")]["n"] == 100
    assert np.isnan(col["db_tsne"]) and res.tsne == {"atoms": {}, "edges": {}}


def test_tsne_ratio_shows_collapse():
    emb, labels, _ = synthetic()
    emb = {k: {"atoms": v["atoms"]} for k, v in emb.items() if k in ("pretrained", "collapsed")}
    res = compare_models(emb, {"atoms": labels["atoms"]}, reference="pretrained", tsne_max_iter=250,
                         threads=1)  # fmt: skip
    rows = {r["model"]: r for r in res.rows}
    assert rows["pretrained"]["db_tsne_ratio"] == pytest.approx(1.0)
    assert rows["collapsed"]["db_tsne_ratio"] > 1.5
    assert res.tsne["atoms"]["collapsed"].shape == (300, 2)
