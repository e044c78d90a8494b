"""``--launcher slurm`` through submitit's local executor, then ``--collect``."""

from __future__ import annotations

import json
import time

import pytest

from atomcollapse.bench import slurm
from tests.bench.conftest import bench_main

pytest.importorskip("submitit", reason="submitit (the 'slurm' extra) is not installed")

LOCAL = '[slurm]\ncluster = "local"\ntimeout_min = 5\ncpus_per_task = 1\n'


def _wait_for_statuses(out, n: int, timeout: float = 120.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = sorted((out / "status").glob("*.json")) if (out / "status").is_dir() else []
        if len(found) >= n:
            return [json.loads(p.read_text()) for p in found]
        time.sleep(0.5)
    raise AssertionError(f"only {len(found)} of {n} array tasks finished in {timeout} s")


def test_submit_then_collect(benv, fake_train, tmp_path, capsys):
    out = tmp_path / "out"
    spec = benv.spec(strategies=("scratch", "finetune"), extra=LOCAL)
    assert bench_main([str(spec), "--out", str(out), "--launcher", "slurm"]) == 0
    assert "submitted 4 cells" in capsys.readouterr().out
    record = slurm.load_submitted(out)
    assert len(record) == 4 and all(r["job_id"] for r in record.values())
    statuses = _wait_for_statuses(out, 4)
    assert [s["returncode"] for s in statuses] == [0, 0, 0, 0]
    assert {s["launcher"] for s in statuses} == {"submitit-local"}
    assert {s["threads"] for s in statuses} == {"1"}
    assert bench_main([str(spec), "--out", str(out), "--collect"]) == 0
    text = capsys.readouterr().out
    assert "4 cells: 4 done" in text
    assert "| finetune" in (out / "report" / "tinypre" / "report.md").read_text()
    # everything is done: a second submission submits nothing
    assert bench_main([str(spec), "--out", str(out), "--launcher", "slurm"]) == 0
    assert len(fake_train.read_text().splitlines()) == 4


def test_collect_names_cells_that_have_not_run(benv, fake_train, tmp_path, capsys):
    out = tmp_path / "out"
    spec = benv.spec(strategies=("finetune",), seeds=(0,), extra=LOCAL)
    assert bench_main([str(spec), "--out", str(out), "--collect"]) == 1
    err = capsys.readouterr().err
    assert "not done: mols/random/gap/tinypre/finetune/seed0 (new)" in err
    # the study page lists it too
    assert (
        "not done: mols/random/gap/tinypre/finetune/seed0 (new)"
        in (out / "report.html").read_text()
    )


def test_cells_still_queued_are_not_submitted_again(tmp_path):
    import os

    from atomcollapse.artifacts import write_json_atomic

    out = tmp_path / "out"
    alive, gone = str(os.getpid()), "999999999"
    record = {
        cid: {"cell": cid, "job_id": job, "status": str(out / "status" / f"{cid}.json")}
        for cid, job in (("running", alive), ("finished", alive), ("died", gone))
    }
    write_json_atomic(out / "slurm" / slurm.SUBMITTED, record)
    write_json_atomic(out / "status" / "finished.json", {"returncode": 0})
    assert slurm.in_flight(out, {"cluster": "local"}) == {"running"}
