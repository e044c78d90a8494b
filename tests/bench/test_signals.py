"""Bench owns its cells: SIGTERM or SIGINT to ``bench`` stops every running cell (own process
groups); after SIGKILL the kernel stops them (parent-death signal): no orphan keeps writing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.bench.conftest import FAKE_TRAIN, bench_main

DRIVER = """
import sys
from atomcollapse.bench import runner
runner.TRAIN_PROGRAM = [sys.executable, sys.argv[1]]
from atomcollapse.cli import main
sys.exit(main(["bench", sys.argv[2], "--out", sys.argv[3], "--jobs", "2"]))
"""


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has finished
    except FileNotFoundError:
        return False


def _start(benv, tmp_path, seeds=(0,), stdout=subprocess.DEVNULL) -> tuple[subprocess.Popen, Path]:
    spec = benv.spec(strategies=("scratch", "finetune"), seeds=seeds)
    pids = tmp_path / "pids.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "FAKE_TRAIN_PIDS": str(pids),
           "FAKE_TRAIN_SLEEP": "120"}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(FAKE_TRAIN), str(spec),
                             str(tmp_path / "out")], env=env, stdout=stdout,
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 60
    while not (pids.exists() and len(pids.read_text().split()) == 2):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "cells did not start"
        time.sleep(0.05)
    return proc, pids


def _all_gone(pids: list[int], within: float = 20) -> bool:
    deadline = time.monotonic() + within
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not any(alive(p) for p in pids)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_stopping_bench_stops_its_cells(benv, tmp_path, sig, fake_train, monkeypatch):
    proc, pids = _start(benv, tmp_path)
    cells = [int(p) for p in pids.read_text().split()]
    proc.send_signal(sig)
    try:
        rc = proc.wait(timeout=30)
    finally:
        proc.kill()
    assert _all_gone(cells), "a cell outlived bench"
    if sig != signal.SIGKILL:
        assert rc == 130
    # the rerun finishes every cell and leaves no lock or temporary file behind
    monkeypatch.setenv("FAKE_TRAIN_SLEEP", "0")
    spec = tmp_path / "spec.toml"
    assert bench_main([str(spec), "--out", str(tmp_path / "out")]) == 0
    left = [p for p in tmp_path.rglob(".*") if ".tmp" in p.name or p.name.endswith(".lock")]
    assert left == []


def test_cells_waiting_when_bench_is_stopped_are_left_untouched(benv, tmp_path, fake_train):
    """Two cells run, two wait; SIGTERM stops the running two (recorded as stopped, not failed),
    and the waiting two are neither announced nor started nor given a status."""
    proc, pids = _start(benv, tmp_path, seeds=(0, 1), stdout=subprocess.PIPE)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert _all_gone([int(p) for p in pids.read_text().split()])
    started = [line for line in out.decode().splitlines() if line.startswith("start ")]
    assert len(started) == 2, out.decode()
    statuses = [json.loads(p.read_text()) for p in (tmp_path / "out" / "status").glob("*.json")]
    assert {tuple(s["cell"].split("/")[-2:]) for s in statuses} == {
        ("scratch", "seed0"), ("finetune", "seed0")}  # fmt: skip
    assert all(s["returncode"] < 0 and s["stopped"] for s in statuses), statuses
    from atomcollapse.bench.pipeline import make_plan
    from atomcollapse.bench.spec import load_spec

    plan = make_plan(load_spec(tmp_path / "spec.toml"), tmp_path / "out", None, create=False)
    assert [plan.state(c) for c in plan.cells] == ["new"] * 4  # stopped before a run dir


@pytest.mark.slow
def test_bench_killed_while_a_real_cell_trains_then_rerun_equals_uninterrupted(benv, tmp_path):
    """SIGKILL to ``bench`` while its (real) ``train`` cell is between two steps: the cell stops
    (no orphan, the run is not finished), and a rerun of the bench resumes it to the run an
    uninterrupted bench makes, leaving no temporary or lock file."""
    from atomcollapse.cli import main
    from tests.bench.test_end_to_end import TINY
    from tests.cli.test_fault_injection import content, leftovers

    ckpt = tmp_path / "pre.pt"
    assert main(["pretrain", "--data", str(benv.ff), "--out", str(ckpt), *TINY, "--epochs", "1",
                 "--batch-size", "8", "--device", "cpu", "--no-progress"]) == 0  # fmt: skip
    spec = benv.spec(strategies=("finetune",), seeds=(0,))
    train = 'epochs = 12\nstate_every_steps = 1\ndevice = "cpu"'
    spec.write_text(spec.read_text().replace(str(benv.ckpt), str(ckpt))
                    .replace("epochs = 1", train))  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
           "PYTHONPATH": os.pathsep.join(sys.path)}  # fmt: skip
    bench = [sys.executable, "-m", "atomcollapse", "bench", str(spec), "--out"]
    ref, out = tmp_path / "ref", tmp_path / "killed"
    done = subprocess.run([*bench, str(ref)], env=env, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()[-2000:]

    proc = subprocess.Popen([*bench, str(out)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(out.rglob("state.pt")):
        assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
        assert time.monotonic() < deadline, "the cell did not start training"
        time.sleep(0.02)
    from atomcollapse.process import lock_path

    (state,) = list(out.rglob("state.pt"))
    cell = int(lock_path(state.parent).read_text().split()[1])  # "pid N train"
    os.kill(cell, signal.SIGSTOP)  # hold the cell mid-training while bench dies
    proc.kill()
    proc.wait(timeout=30)
    os.kill(cell, signal.SIGCONT)
    assert _all_gone([cell]), "the cell outlived bench"
    assert not list(out.rglob("metrics.json")), "the cell finished before bench was killed"

    again = subprocess.run([*bench, str(out)], env=env, capture_output=True, check=False)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    assert content(out / "runs", out) == content(ref / "runs", ref)
    assert leftovers(out) == []
