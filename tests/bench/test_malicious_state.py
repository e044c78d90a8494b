"""``bench`` resumes unfinished cells by itself: a crafted ``state.pt`` in a cell's run directory
must fail that cell with one line and never run code."""

from __future__ import annotations

import json

import pytest

from atomcollapse.cli import main
from tests.bench.conftest import bench_main
from tests.malicious import write_malicious_pt

TINY = ["--hidden", "16", "--layers", "2", "--rbf", "8", "--cutoff", "4.0"]


@pytest.mark.slow
def test_bench_never_executes_a_crafted_state(benv, tmp_path, capsys):
    ckpt = tmp_path / "pre.pt"
    assert main(["pretrain", "--data", str(benv.ff), "--out", str(ckpt), *TINY, "--epochs", "1",
                 "--batch-size", "8", "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    spec = benv.spec(strategies=("finetune",), seeds=(0,))
    spec.write_text(spec.read_text().replace(str(benv.ckpt), str(ckpt))
                    .replace("batch_size = 8", 'batch_size = 8\ndevice = "cpu"'))  # fmt: skip
    out = tmp_path / "out"
    assert bench_main([str(spec), "--out", str(out)]) == 0
    (cell,) = json.loads((out / "bench.json").read_text())["cells"]
    run = out.parent / cell["run_dir"]
    (run / "metrics.json").unlink()  # an unfinished cell: the next bench resumes it
    marker = tmp_path / "pwned"
    write_malicious_pt(run / "state.pt", marker)
    capsys.readouterr()
    assert bench_main([str(spec), "--out", str(out)]) != 0
    assert not marker.exists()
    logs = "".join(p.read_text() for p in out.rglob("*.log"))
    assert "refusing to load" in logs and "Traceback" not in logs
