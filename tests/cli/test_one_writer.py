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
