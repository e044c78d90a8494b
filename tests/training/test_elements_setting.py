"""The ``elements`` setting (the same molecules for every arm, whatever the model's element set)
and the warning for an element the test sets hold but no training structure does."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from atomcollapse.analysis.aggregate import aggregate
from atomcollapse.analysis.runs import load_runs
from atomcollapse.cli import main
from atomcollapse.data.store import open_store
from atomcollapse.models.checkpoint import load_checkpoint
from atomcollapse.splits.artifact import load_split
from tests.training.conftest import write_split
from tests.training.synthetic import write_molecule_store

N = 40


@pytest.fixture(scope="module")
def fluorine(tmp_path_factory):
    """40 molecules; fluorine in one val and two ood_test molecules, in no train molecule."""
    root = tmp_path_factory.mktemp("fluorine")
    plain = write_molecule_store(root / "plain", n=N)
    codes = load_split(write_split(plain, root / "plain-split")).codes
    val, ood = np.flatnonzero(codes == 1)[:1], np.flatnonzero(codes == 3)[:2]
    store = write_molecule_store(root / "mols", n=N, fluorinated={*val.tolist(), *ood.tolist()})
    split = write_split(store, root / "split")
    assert (load_split(split).codes == codes).all()  # same seed, same partitions
    return root, store, split


def _train(root, store, split, out, *extra):
    argv = ["train", "--data", str(store), "--split", str(split), "--target", "gap",
            "--strategy", "scratch", "--seed", "0", "--out", str(root / "runs" / out), "--steps", "2",
            "--batch-size", "8", "--device", "cpu", "--no-progress", *extra]  # fmt: skip
    assert main(argv) == 0
    return root / "runs" / out


def test_an_element_no_training_structure_holds_is_warned_and_flagged(fluorine):
    root, store, split = fluorine
    run = _train(root, store, split, "plain")
    man = json.loads((run / "manifest.json").read_text())
    assert man["elements_not_in_training"] == {"F": {"val": 1, "ood_test": 2}}
    assert (
        "warning: element F is in 1 val, 2 ood_test structures but in no training"
        in (run / "train.log").read_text()
    )
    cell = aggregate(load_runs([run])).cells[0]
    assert "F in val/test sets but in no training structure (1 of 1 seeds)" in cell.flags


def test_elements_setting_leaves_out_the_same_structures_from_every_partition(fluorine):
    root, store, split = fluorine
    cfg = root / "hcno.toml"
    cfg.write_text('elements = ["H", "C", "N", "O"]\n')
    run = _train(root, store, split, "hcno", "--config", str(cfg))
    man = json.loads((run / "manifest.json").read_text())
    assert man["elements"] == ["H", "C", "N", "O"]
    assert man["dropped"] == {"train": 0, "val": 1, "id_test": 0, "ood_test": 2}
    assert man["elements_not_in_training"] == {}
    assert any("outside the setting 'elements' (H, C, N, O)" in n for n in man["dropped_notes"])
    ids = set(pd.read_csv(run / "predictions.csv").id)
    s = open_store(store)
    has_f = {s.ids[i] for i in range(len(s)) if 9 in s.numbers[s.offsets[i] : s.offsets[i + 1]]}
    assert len(has_f) == 3 and not ids & has_f
    _, meta = load_checkpoint(run / "best.pt")
    assert meta["elements"] == ["H", "C", "N", "O"]


def test_an_unknown_element_symbol_is_refused_in_one_line(fluorine, capsys):
    root, store, split = fluorine
    cfg = root / "bad.toml"
    cfg.write_text('elements = ["H", "Xx"]\n')
    argv = ["train", "--data", str(store), "--split", str(split), "--target", "gap",
            "--strategy", "scratch", "--out", str(root / "bad"), "--config", str(cfg)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "'elements'" in err and "'Xx' is not an element symbol" in err
    assert len(err.splitlines()) == 1 and not (root / "bad").exists()


def test_a_run_from_before_the_setting_existed_still_resumes(fluorine):
    root, store, split = fluorine
    run = _train(root, store, split, "old")
    config = json.loads((run / "config.json").read_text())
    del config["elements"]  # as written before the setting existed
    (run / "config.json").write_text(json.dumps(config))
    metrics = (run / "metrics.json").read_bytes()
    _train(root, store, split, "old", "--resume")  # finished: nothing to train, metrics kept
    assert (run / "metrics.json").read_bytes() == metrics
    cfg = root / "hc.toml"
    cfg.write_text('elements = ["H", "C", "N", "O"]\n')
    argv = ["train", "--data", str(store), "--split", str(split), "--target", "gap",
            "--strategy", "scratch", "--seed", "0", "--out", str(run), "--steps", "2",
            "--batch-size", "8", "--device", "cpu", "--no-progress", "--resume",
            "--config", str(cfg)]  # fmt: skip
    assert main(argv) == 2  # another element set is another run


def test_elements_are_one_set_whatever_the_order():
    from atomcollapse.training.config import load_config

    assert load_config(None, {"elements": ["O", "H", "C", "H"]}).elements == ("H", "C", "O")
