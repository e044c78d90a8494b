"""Bench owns its cells: SIGTERM or SIGINT to ``bench`` stops every running cell (own process
groups); after SIGKILL the kernel stops them (parent-death signal): no orphan keeps writing."""

from __future__ import annotations

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


def _start(benv, tmp_path) -> tuple[subprocess.Popen, Path]:
    spec = benv.spec(strategies=("scratch", "finetune"), seeds=(0,))
    pids = tmp_path / "pids.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "FAKE_TRAIN_PIDS": str(pids),
           "FAKE_TRAIN_SLEEP": "120"}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(FAKE_TRAIN), str(spec),
                             str(tmp_path / "out")], env=env, stdout=subprocess.DEVNULL,
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
