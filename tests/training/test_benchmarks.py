"""The training benchmarks run end to end on synthetic data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


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
