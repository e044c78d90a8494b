"""A second writer of the same artifact (run, checkpoint, store, split, report, bench folder)
gets one line and exit 2 and changes nothing, while the first holds the artifact's lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from atomcollapse.cli import main
from tests.cli.test_bad_input_corpus import PRETRAIN, TRAIN
from tests.snapshot import snapshot
from tests.test_process import hold_lock

WRITERS = {
    "train": ([*TRAIN, "--out", "runs/run", "--resume"], "runs/run"),
    "train-new": ([*TRAIN, "--out", "new-run"], "new-run"),
    "pretrain": ([*PRETRAIN, "--out", "pre2.pt"], "pre2.pt"),
    "ingest": (["ingest", "extxyz", "frames.xyz", "--name", "new"], "data/stores/new"),
    "split": (["split", "make", "mols", "--method", "random", "--out", "s2"], "s2"),
    "report": (["report", "runs", "--out", "report", "--overwrite", "--no-plots"], "report"),
}


@pytest.mark.parametrize("name", list(WRITERS))
def test_second_writer_is_refused(name, ws: Path, capsys):
    argv, target = WRITERS[name]
    holder = hold_lock(ws / target)
    try:
        before = {k: v for k, v in snapshot(ws).items() if not k.endswith(".lock")}
        capsys.readouterr()
        assert main(["--data-root", "data", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert target in err and "another process is writing it" in err, err
        after = {k: v for k, v in snapshot(ws).items() if not k.endswith(".lock")}
        assert after == before
    finally:
        holder.kill()
        holder.wait()


def test_two_ingests_of_one_name_started_together(ws: Path):
    """Exactly one wins; the other says so in one line with exit 2 (whether it met the lock or
    the finished store); the store is complete and verifies; nothing is left behind."""
    import os
    import subprocess
    import sys

    from atomcollapse.data.store import open_store

    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-m", "atomcollapse", "--data-root", "data", "ingest", "extxyz",
            "frames.xyz", "--name", "new"]  # fmt: skip
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]  # fmt: skip
    results = [(p.wait(timeout=120), p.stderr.read().decode()) for p in procs]  # type: ignore[union-attr]
    assert sorted(rc for rc, _ in results) == [0, 2], results
    (err,) = [e.strip() for rc, e in results if rc == 2]
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "data/stores/new" in err
    assert "another process is writing it" in err or "already exists" in err, err
    store = open_store("new", "data")
    store.verify_content(cached=False)
    assert len(store) == 4
    assert [p.name for p in (ws / "data" / "stores").iterdir() if p.name.startswith(".")] == []
