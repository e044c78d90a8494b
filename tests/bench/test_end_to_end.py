"""One tiny benchmark with the real ``train``, ``report`` and ``collapse`` on synthetic data."""

from __future__ import annotations

import importlib.util
import json

import pytest

from atomcollapse.cli import main
from tests.bench.conftest import bench_main

TINY = ["--hidden", "16", "--layers", "2", "--rbf", "8", "--cutoff", "4.0"]
COLLAPSE = """
[collapse]
enabled = true
seeds = [0]
partition = "ood_test"
max_per_class = 30
tsne = false
projections = 8
"""


@pytest.mark.slow
def test_tiny_benchmark_end_to_end(benv, tmp_path, capsys):
    ckpt = tmp_path / "pre.pt"
    rc = main(["pretrain", "--data", str(benv.ff), "--out", str(ckpt), *TINY, "--epochs", "2",
               "--batch-size", "8", "--device", "cpu", "--no-progress"])  # fmt: skip
    assert rc == 0
    spec = benv.spec(strategies=("scratch", "finetune", "mft"), seeds=(0,), extra=COLLAPSE)
    tb = importlib.util.find_spec("tensorboard") is not None
    train = 'batch_size = 8\ndevice = "cpu"' + ('\nlog = ["tensorboard"]' if tb else "")
    spec.write_text(spec.read_text().replace(str(benv.ckpt), str(ckpt))
                    .replace("batch_size = 8", train))  # fmt: skip
    out = tmp_path / "out"
    capsys.readouterr()
    assert bench_main([str(spec), "--out", str(out), "--jobs", "2"]) == 0
    text = capsys.readouterr().out
    assert "3 cells: 3 done" in text
    summary = json.loads((out / "bench.json").read_text())
    runs = [c["run_dir"] for c in summary["cells"]]
    for run in runs:
        metrics = json.loads((out.parent / run / "metrics.json").read_text())
        assert {"id_test", "ood_test"} <= set(metrics["partitions"])
        scalars = (out.parent / run / "scalars.csv").read_text()
        assert "val_mae" in scalars and "best/ood_test_mae" in scalars
        if tb:  # [train] log reached the cell, which is tagged with its key
            tags = _tensorboard_text(out.parent / run / "tensorboard")
            strategy = metrics["strategy"]
            for cell in ("| dataset | mols |", "| model | tinypre |", f"| strategy | {strategy} |",
                         "| seed | 0 |", "| target | gap |", "| bench | tiny |"):  # fmt: skip
                assert cell in tags
    report = (out / "report" / "tinypre" / "report.csv").read_text()
    for strategy in ("scratch", "finetune", "mft"):
        assert strategy in report
    collapse = (out / "collapse" / "tinypre" / "mols" / "random-gap" / "collapse.csv").read_text()
    assert "pretrained" in collapse and "mft s0" in collapse
    page = (out / "report.html").read_text()  # the whole study on one page
    assert page.count("<table") == 3 and "tinypre" in page and "DB t-SNE" in page
    assert "sha256" in page and "Every cell of the study is done" in page
    assert "the study on one page" in text
    mtimes = {r: (out.parent / r / "metrics.json").stat().st_mtime_ns for r in runs}
    made = json.loads((out / "collapse" / "tinypre" / "mols" / "random-gap" / "manifest.json")
                      .read_text())  # fmt: skip
    assert made["inputs"]["partition"] == "ood_test" and len(made["inputs"]["runs"]) == 3
    assert bench_main([str(spec), "--out", str(out)]) == 0  # resumes: nothing left to train
    assert {r: (out.parent / r / "metrics.json").stat().st_mtime_ns for r in runs} == mtimes
    text = capsys.readouterr().out
    assert "same runs and settings as the analysis of" in text  # collapse kept, not redone
    again = json.loads((out / "collapse" / "tinypre" / "mols" / "random-gap" / "manifest.json")
                       .read_text())  # fmt: skip
    assert again["created_at"] == made["created_at"]
    spec.write_text(spec.read_text().replace("projections = 8", "projections = 9"))
    assert bench_main([str(spec), "--out", str(out), "--collect"]) == 0
    assert "same runs and settings" not in capsys.readouterr().out  # a setting changed: redone


def _tensorboard_text(folder) -> str:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return acc.Tensors("run/text_summary")[0].tensor_proto.string_val[0].decode()
