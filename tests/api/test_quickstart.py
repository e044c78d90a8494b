"""``examples/quickstart.py`` runs end to end (CI runs it through ``make test``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quickstart_runs_and_reports(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "quickstart.py"), str(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "store emt: 160 structures, targets ['energy', 'energy_per_atom']" in out
    assert "predicted 16 ood_test structures" in out
    assert f"report written to {tmp_path / 'report'}" in out
    metrics = json.loads((tmp_path / "runs" / "scratch" / "metrics.json").read_text())
    cell = json.loads((tmp_path / "report" / "report.json").read_text())["cells"][0]
    assert cell["strategy"] == "scratch" and cell["unit"] == "meV/atom"
    assert cell["ood_mae_mean"] == pytest.approx(metrics["partitions"]["ood_test"]["mae_report"])
