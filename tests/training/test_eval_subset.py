"""``max_eval`` (one evaluation subset for every seed) and the split's path in the manifest."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from atomcollapse.analysis.runs import load_run
from atomcollapse.cli import main
from atomcollapse.data.store import open_store
from atomcollapse.splits.artifact import load_split
from atomcollapse.training.inputs import EVAL_PARTITIONS, eval_rows

MAX_EVAL = 4


def _json(path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def two_seeds(env, tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    runs = {}
    for seed in ("1", "2"):
        runs[seed] = root / f"seed{seed}"
        argv = env.train_args(runs[seed], "finetune", "--steps", "1", "--max-eval", str(MAX_EVAL))
        argv[argv.index("--seed") + 1] = seed
        assert main(argv) == 0
    return runs


def test_max_eval_scores_every_seed_on_the_same_structures(env, two_seeds):
    split, store = load_split(env.split), open_store(env.mols)
    preds = {s: pd.read_csv(r / "predictions.csv") for s, r in two_seeds.items()}
    for p in EVAL_PARTITIONS:
        ids = [sorted(df[df.partition == p].id) for df in preds.values()]
        assert ids[0] == ids[1]
        assert len(ids[0]) == min(MAX_EVAL, len(split.indices(p)))
        assert set(ids[0]) <= set(np.asarray(store.ids)[split.indices(p)])
    for s, run in two_seeds.items():
        man, m = _json(run / "manifest.json"), _json(run / "metrics.json")
        assert man["seeds"]["seed"] == int(s)
        assert (man["max_eval"], man["eval_seed"]) == (MAX_EVAL, 0)
        assert man["n_eval"] == {p: m["partitions"][p]["n"] for p in EVAL_PARTITIONS}
        assert _json(run / "config.json")["max_eval"] == MAX_EVAL
    assert any(len(split.indices(p)) > MAX_EVAL for p in EVAL_PARTITIONS)  # a real subset


def test_eval_rows_depend_on_the_eval_seed_only(env):
    split = load_split(env.split)
    val = split.indices("val")
    a = eval_rows(split, "val", 3, 0)
    assert len(a) == 3 and set(a) <= set(val) and np.array_equal(a, np.sort(a))
    assert np.array_equal(a, eval_rows(split, "val", 3, 0))
    assert any(not np.array_equal(a, eval_rows(split, "val", 3, s)) for s in range(1, 6))
    assert np.array_equal(eval_rows(split, "val", 0, 0), val)
    assert np.array_equal(eval_rows(split, "val", len(val) + 5, 7), val)


def test_a_relative_split_path_is_recorded_absolute(env, tmp_path, monkeypatch):
    monkeypatch.chdir(env.root)
    run = tmp_path / "rel"
    argv = env.train_args(run, "linear-probe", "--steps", "1")
    argv[argv.index("--split") + 1] = env.split.name
    assert main(argv) == 0
    man = _json(run / "manifest.json")
    assert man["split"]["path"] == str(env.split.resolve())  # usable from any folder
    assert man["split"]["hash"] == load_split(env.split).hash
    assert load_run(run).split_path == str(env.split.resolve())
    # the same split under another spelling of its path still resumes the finished run
    assert main(env.train_args(run, "linear-probe", "--steps", "1", "--resume")) == 0


def test_bad_max_eval_exits_2(env, tmp_path, capsys):
    capsys.readouterr()
    argv = env.train_args(tmp_path / "run", "finetune", "--max-eval", "-1")
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "max_eval" in err
    assert not (tmp_path / "run").exists()
