"""A MatBench-style task of the user's own, ingested, split on its own folds and trained."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from atomcollapse.cli import main
from tests.data.test_matbench_sources import structures, write_folds, write_task

TASK = "my_moduli"


@pytest.mark.slow
def test_custom_task_ingested_split_and_trained_end_to_end(tmp_path):
    n = 30
    rows = [[s.as_dict(), 50.0 + 3.0 * i] for i, s in enumerate(structures(n))]
    src = write_task(tmp_path / f"{TASK}.json.gz", rows, columns=("structure", "K_VRH"))
    ids = [f"my-moduli-{i:02d}" for i in range(1, n + 1)]
    folds = write_folds(tmp_path / "folds.json", TASK, [ids[0::3], ids[1::3], ids[2::3]])
    root = tmp_path / "root"
    base = ["--data-root", str(root)]
    assert main([*base, "ingest", "matbench", TASK, "--source", str(src), "--unit", "GPa",
                 "--folds", str(folds)]) == 0  # fmt: skip
    split = tmp_path / "split"
    assert main([*base, "split", TASK, "--method", "matbench-fold", "--fold", "1",
                 "--target", "k_vrh", "--out", str(split)]) == 0  # fmt: skip
    config = tmp_path / "tiny.toml"
    config.write_text("[model]\nhidden = 16\nlayers = 2\nrbf = 8\ncutoff = 4.0\n")
    run = tmp_path / "run"
    assert main([*base, "train", "--data", TASK, "--split", str(split), "--target", "k_vrh",
                 "--strategy", "scratch", "--epochs", "2", "--batch-size", "8", "--device", "cpu",
                 "--config", str(config), "--out", str(run), "--no-progress"]) == 0  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["unit"] == "GPa" and metrics["target"] == "k_vrh"
    pred = pd.read_csv(run / "predictions.csv")
    test_ids = set(pred.loc[pred["partition"] == "id_test", "id"])
    assert test_ids == set(ids[1::3])  # fold 1 is the test set
    assert (pred["unit"] == "GPa").all()
