"""The training benchmarks run end to end on synthetic data."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
# the scripts import this checkout's package, wherever the installed one points
ENV = {**os.environ, "OMP_NUM_THREADS": "1",
       "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}  # fmt: skip


@pytest.mark.slow
def test_all_strategies_prints_a_table(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks/all_strategies.py"), "--synthetic", "--out",
           str(tmp_path), "--epochs", "1", "--pretrain-epochs", "1", "--device", "cpu"]  # fmt: skip
    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = json.loads((tmp_path / "table.json").read_text())
    assert [r["strategy"] for r in rows] == ["scratch", "finetune", "finetune-llrd",
                                             "linear-probe", "mft", "lp-ft", "l2-sp"]  # fmt: skip
    assert all(r["id_mae"] > 0 and r["ood_mae"] > 0 and r["unit"] == "meV" for r in rows)
    assert "OOD/ID" in out.stdout


@pytest.mark.slow
def test_mft_step_benchmark_quick():
    cmd = [sys.executable, str(ROOT / "benchmarks/bench_mft_step.py"), "--quick", "--device",
           "cpu"]  # fmt: skip
    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "ratio mft/finetune: step time" in out.stdout


@pytest.mark.slow
def test_throughput_benchmark_quick_on_synthetic_molecules(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks/bench_throughput.py"), "--quick",
           "--no-schnetpack", "--default-allocator", "--data-root", str(tmp_path),
           "--hidden", "16", "--batch-sizes", "8", "--threads", "1"]  # fmt: skip
    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "random QM9-like molecules" in out.stdout
    records = [json.loads(line[5:]) for line in out.stdout.splitlines() if line.startswith("PERF ")]
    assert [(r["metric"].split(",")[0]) for r in records] == [
        "PaiNN property only", "PaiNN property only", "PaiNN energy+forces", "PaiNN energy+forces"
    ]  # fmt: skip
    assert all(r["ours"] > 0 and r["ratio"] is None for r in records)
    assert all(r["note"] == "skipped: --no-schnetpack" for r in records)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_throughput_benchmark_refuses_cuda_without_a_gpu():
    cmd = [sys.executable, str(ROOT / "benchmarks/bench_throughput.py"), "--device", "cuda"]
    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].endswith("no CUDA device is available")


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("so3krates_torch") is None, reason="the 'so3lr' extra is absent"
)
def test_adapter_step_benchmark_quick_on_synthetic_molecules(tmp_path):
    cmd = [sys.executable, str(ROOT / "benchmarks/bench_adapter_step.py"), "--pretrained",
           "so3lr", "--quick", "--data-root", str(tmp_path), "--threads", "1"]  # fmt: skip
    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "random QM9-like molecules" in out.stdout
    records = [json.loads(line[5:]) for line in out.stdout.splitlines() if line.startswith("PERF ")]
    assert [r["metric"].split(" (")[0] for r in records] == [
        "property step per molecule", "property peak RSS",
        "energy+forces step per molecule", "energy+forces peak RSS",
    ]  # fmt: skip
    assert all(r["ours"] > 0 for r in records)


@pytest.mark.slow
def test_predict_benchmark_makes_its_run_and_prints_the_ratio(tmp_path):
    from tests.training.synthetic import write_molecule_store

    store = write_molecule_store(tmp_path / "stores" / "mols", n=60)
    before = sorted(p.name for p in store.iterdir())
    cmd = [sys.executable, str(ROOT / "benchmarks/bench_predict.py"), "--data-root", str(tmp_path),
           "--store", "mols", "--train-n", "20", "--rounds", "1", "--threads", "1"]  # fmt: skip
    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=600, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    (rec,) = [json.loads(line[5:]) for line in out.stdout.splitlines() if line.startswith("PERF ")]
    assert rec["benchmark"] == "predict" and rec["unit"] == "molecules/s"
    assert rec["ours"] > 0 and rec["reference"] > 0 and rec["ratio"] > 0
    assert "mols 60 molecules" in rec["metric"] and "ratio predict / train eval" in out.stdout
    assert sorted(p.name for p in store.iterdir()) == before  # the store is only read
