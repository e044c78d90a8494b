"""Processes: a run killed with SIGKILL and resumed equals an uninterrupted one (bit for bit on
CPU); two data-parallel CPU processes (gloo) match one process."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from atomcollapse.cli import main

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def _metrics(run):
    return json.loads((run / "metrics.json").read_text())


def _tensorboard(run, name):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(name)]


@pytest.mark.slow
def test_resume_after_sigkill_equals_uninterrupted(env, tmp_path):
    ref, killed = tmp_path / "ref", tmp_path / "killed"
    extra = ("--epochs", "10", "--batch-size", "4", "--config", str(tmp_path / "c.toml"))
    tb = importlib.util.find_spec("tensorboard") is not None
    logs = '"tensorboard"' if tb else ""
    (tmp_path / "c.toml").write_text(f"state_every_steps = 1\nlog = [{logs}]\n")
    assert main(env.train_args(ref, "mft", *extra)) == 0
    argv = env.train_args(killed, "mft", *extra)
    cmd = [sys.executable, "-m", "atomcollapse", *argv]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state = killed / "state.pt"
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(0.05)  # let it run on past the first saved state
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
    assert state.exists() and not (killed / "metrics.json").exists()
    assert main([*argv, "--resume"]) == 0
    log = (killed / "train.log").read_text()
    assert "resumed at step" in log
    assert (killed / "metrics.json").read_bytes() == (ref / "metrics.json").read_bytes()
    assert (killed / "predictions.csv").read_bytes() == (ref / "predictions.csv").read_bytes()
    assert (killed / "scalars.csv").read_bytes() == (ref / "scalars.csv").read_bytes()
    if tb:  # the killed process's events are replaced by the replayed history
        for name in ("val_mae", "lr", "train_ff_force_loss", "best/ood_test_mae"):
            assert _tensorboard(killed, name) == _tensorboard(ref, name)
    a = torch.load(killed / "best.pt", weights_only=True)["state_dict"]
    b = torch.load(ref / "best.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_two_gloo_processes_match_one(env, tmp_path):
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    if torchrun is None:
        pytest.skip("torchrun not installed")
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(env.train_args(one, "mft")) == 0
    cmd = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "atomcollapse",
           *env.train_args(two, "mft")]  # fmt: skip
    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    a, b = _metrics(one), _metrics(two)
    assert a["data_order"] == b["data_order"] and a["steps"] == b["steps"]
    assert b["best_val_mae"] == pytest.approx(a["best_val_mae"], rel=1e-4)
    for p in ("id_test", "ood_test"):
        assert b["partitions"][p]["mae"] == pytest.approx(a["partitions"][p]["mae"], rel=1e-4)
    assert json.loads((two / "manifest.json").read_text())["world_size"] == 2
