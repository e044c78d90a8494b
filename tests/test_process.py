"""One writer per artifact: a second writer is refused with one line; a dead writer's lock is
taken over and its temporary files removed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atomcollapse.errors import InputError
from atomcollapse.process import artifact_lock, lock_path

HOLD = """
import sys, time
from pathlib import Path
from atomcollapse.process import artifact_lock
with artifact_lock(sys.argv[1], "holder"):
    Path(sys.argv[1] + ".held").write_text("yes")
    time.sleep(60)
"""


def hold_lock(target: Path) -> subprocess.Popen:
    """A separate process holding ``target``'s lock until it is killed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(target)], env=env)
    flag = Path(str(target) + ".held")
    deadline = time.monotonic() + 30
    while not flag.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "lock holder did not start"
        time.sleep(0.02)
    flag.unlink()
    return proc


def test_a_second_writer_is_refused_with_the_holder(tmp_path):
    target = tmp_path / "store"
    proc = hold_lock(target)
    try:
        with pytest.raises(InputError) as e, artifact_lock(target):
            pass
        assert str(target) in e.value.line() and f"pid {proc.pid}" in e.value.line()
    finally:
        proc.kill()
        proc.wait()


def test_a_dead_writers_lock_and_leftovers_are_taken_over(tmp_path):
    target = tmp_path / "store"
    proc = hold_lock(target)
    leftover = tmp_path / ".store.tmp-abc123"
    leftover.mkdir()
    (leftover / "positions.npy").write_bytes(b"half")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert lock_path(target).exists()  # the stale lock file
    with artifact_lock(target):
        assert not leftover.exists()
    assert not lock_path(target).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with artifact_lock(tmp_path / "x"), artifact_lock(tmp_path / "x"):
        assert lock_path(tmp_path / "x").exists()
    assert not lock_path(tmp_path / "x").exists()
