"""Report and collapse on run directories written by the real ``train`` command."""

from __future__ import annotations

import json

import pytest

from atomcollapse.cli import main
from tests.analysis.molecules import mini_store, tiny_checkpoint


@pytest.mark.slow
def test_report_and_collapse_on_trained_runs(tmp_path, capsys):
    store = mini_store(tmp_path / "mini", copies=10)
    pre = tiny_checkpoint(tmp_path / "pre.pt", seed=0)
    split = tmp_path / "split"
    assert main(["split", str(store.path), "--method", "property-tail", "--target", "gap",
                 "--n-ood", "10", "--id-frac", "0.2", "--val-frac", "0.2", "--dedupe", "none",
                 "--out", str(split)]) == 0  # fmt: skip
    runs = tmp_path / "runs"
    for strategy in ("scratch", "finetune", "linear-probe"):
        assert main(["train", "--data", str(store.path), "--split", str(split), "--target", "gap",
                     "--strategy", strategy, "--pretrained", str(pre), "--steps", "3",
                     "--batch-size", "8", "--no-progress",
                     "--out", str(runs / strategy)]) == 0  # fmt: skip
    capsys.readouterr()

    assert main(["report", str(runs), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    cells = {c["strategy"]: c for c in report["cells"]}
    assert set(cells) == {"scratch", "finetune", "linear-probe"}
    assert all(c["n_seeds"] == 1 and c["id_mae_mean"] > 0 for c in cells.values())
    assert not report["excluded"]
    metrics = json.loads((runs / "finetune" / "metrics.json").read_text())
    scale = {"Ha": 1.0, "meV": 27211.386245988}[cells["finetune"]["unit"]]
    assert cells["finetune"]["ood_mae_mean"] == pytest.approx(
        metrics["partitions"]["ood_test"]["mae"] * scale
    )

    assert main(["collapse", "--pretrained", str(pre), str(runs), "--data", str(store.path),
                 "--split", str(split), "--max-per-class", "6", "--no-tsne",
                 "--format", "json"]) == 0  # fmt: skip
    rows = json.loads(capsys.readouterr().out)["rows"]
    probe = next(r for r in rows if r["model"].startswith("linear-probe") and r["set"] == "atoms")
    # a linear probe freezes the backbone: its embeddings are the pretrained ones
    assert probe["w1_per_dim"] == pytest.approx(0.0, abs=1e-9)
    assert probe["cka"] == pytest.approx(1.0)
    scratch = next(r for r in rows if r["model"].startswith("scratch") and r["set"] == "atoms")
    assert scratch["cka"] < 0.99 and scratch["w1_per_dim"] > 0.05
