"""The local runner: cells as subprocesses, in parallel, failures recorded, finished cells skipped."""

from __future__ import annotations

import json
import sys

import pytest

from atomcollapse.bench import runner
from atomcollapse.bench.runner import clear_dead_start, cpu_cores, program, slot_envs
from tests.bench.conftest import bench_main


def _calls(path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_jobs_2_runs_every_cell_then_reports(benv, fake_train, tmp_path, capsys):
    out = tmp_path / "out"
    spec = benv.spec(strategies=("finetune", "mft"))
    assert bench_main([str(spec), "--out", str(out), "--jobs", "2"]) == 0
    calls = _calls(fake_train)
    assert sorted(c.split(" threads")[0] for c in calls) == sorted(
        f"{s} {k}" for s in ("finetune", "mft") for k in (0, 1)
    )
    threads = max(1, cpu_cores() // 2)
    assert all(c.endswith(f"threads={threads}") for c in calls)
    summary = json.loads((out / "bench.json").read_text())
    assert summary["counts"] == {"done": 4} and summary["failures"] == []
    report = (out / "report" / "tinypre" / "report.md").read_text()
    for strategy in ("finetune", "mft"):
        assert f"| {strategy}" in report
    assert "4 cells: 4 done" in capsys.readouterr().out
    # a second invocation finds every cell done and trains nothing
    assert bench_main([str(spec), "--out", str(out), "--jobs", "2"]) == 0
    assert len(_calls(fake_train)) == 4


def test_a_failing_cell_is_recorded_and_the_rest_run(benv, fake_train, tmp_path, monkeypatch,
                                                     capsys):  # fmt: skip
    out = tmp_path / "out"
    monkeypatch.setenv("FAKE_TRAIN_FAIL", "mft")
    spec = benv.spec(strategies=("finetune", "mft"))
    assert bench_main([str(spec), "--out", str(out), "--jobs", "2"]) == 1
    summary = json.loads((out / "bench.json").read_text())
    assert summary["counts"] == {"done": 2, "failed": 2}
    assert {f["cell"].split("/")[-2] for f in summary["failures"]} == {"mft"}
    assert all(f["returncode"] == 3 and f["error"] == "error: mft exploded"
               for f in summary["failures"])  # fmt: skip
    statuses = [json.loads(p.read_text()) for p in (out / "status").glob("*.json")]
    assert sorted(s["returncode"] for s in statuses) == [0, 0, 3, 3]
    err = capsys.readouterr().err
    assert err.count("not done:") == 2 and "mft exploded" in err
    # the report holds the finished cells
    assert "| finetune" in (out / "report" / "tinypre" / "report.md").read_text()
    monkeypatch.delenv("FAKE_TRAIN_FAIL")
    assert bench_main([str(spec), "--out", str(out)]) == 0
    assert [c.split(" threads")[0] for c in _calls(fake_train)[4:]] == ["mft 0", "mft 1"]


def test_a_crashing_program_does_not_stop_the_sweep(benv, fake_train, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "TRAIN_PROGRAM", [sys.executable, "-c", "import os; os.abort()"])
    out = tmp_path / "out"
    assert bench_main([str(benv.spec(strategies=("finetune",))), "--out", str(out)]) == 1
    summary = json.loads((out / "bench.json").read_text())
    assert summary["counts"] == {"failed": 2}
    assert all(f["returncode"] < 0 for f in summary["failures"])


def test_slot_environments_divide_cores_and_gpus():
    assert (
        slot_envs(2, 1, cores=8, gpus=[]) == [{"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"}] * 2
    )
    assert slot_envs(3, 1, cores=2, gpus=[])[0]["OMP_NUM_THREADS"] == "1"
    envs = slot_envs(2, 1, cores=16, gpus=["0", "1", "2", "3"])
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1"]
    assert envs[0]["OMP_NUM_THREADS"] == "8"
    envs = slot_envs(4, 2, cores=16, gpus=["0", "1", "2", "3"])  # only two jobs fit
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0,1", "2,3"]
    assert envs[0]["OMP_NUM_THREADS"] == "4"
    assert all("CUDA_VISIBLE_DEVICES" not in e for e in slot_envs(2, 1, cores=4, gpus=["0"]))


def test_several_gpus_per_cell_use_torchrun_and_need_the_gpus():
    assert program(1) == runner.TRAIN_PROGRAM
    argv = program(2)
    assert argv[1:4] == ["-m", "torch.distributed.run", "--standalone"]
    assert argv[argv.index("--nproc-per-node") + 1] == "2" and argv[-2:] == ["-m", "atomcollapse"]
    from atomcollapse.errors import InputError

    with pytest.raises(InputError, match="gpus_per_cell is 2 but 1 GPU"):
        slot_envs(1, 2, cores=4, gpus=["0"])


def test_a_dead_start_is_cleared_but_a_run_is_kept(tmp_path):
    dead = tmp_path / "dead"
    dead.mkdir()
    (dead / "config.json").write_text("{}")
    clear_dead_start(dead)
    assert not dead.exists()
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    (run / "manifest.json").write_text("{}")
    clear_dead_start(run)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    clear_dead_start(other)
    assert (run / "manifest.json").exists() and (other / "notes.txt").exists()


def test_only_trains_the_matching_cells_and_a_later_run_the_rest(benv, fake_train, tmp_path,
                                                                 capsys):  # fmt: skip
    out = tmp_path / "out"
    spec = benv.spec(strategies=("finetune", "mft"))
    argv = [str(spec), "--out", str(out), "--jobs", "1"]
    # exit 1 as for any study with cells not done; they are listed as such
    assert bench_main([*argv, "--only", "*/mft/seed1", "--only", "*/finetune/seed1"]) == 1
    assert sorted(c.split(" threads")[0] for c in _calls(fake_train)) == ["finetune 1", "mft 1"]
    assert "--only: 2 of the cells not done match" in capsys.readouterr().out
    assert json.loads((out / "bench.json").read_text())["counts"] == {"done": 2, "new": 2}
    assert bench_main(argv) == 0  # the rest, and nothing twice
    assert sorted(c.split(" threads")[0] for c in _calls(fake_train)[2:]) == ["finetune 0", "mft 0"]


def test_only_with_a_glob_that_matches_no_cell_is_refused(benv, fake_train, tmp_path, capsys):
    spec = benv.spec(strategies=("finetune",))
    assert bench_main([str(spec), "--out", str(tmp_path / "out"), "--only", "*/mtf/*"]) == 2
    err = capsys.readouterr().err
    assert "--only '*/mtf/*' matches no cell of the spec" in err and "/finetune/seed0" in err
    assert _calls(fake_train) == []


def test_bench_never_writes_into_a_published_study(benv, fake_train, tmp_path, capsys):
    out = tmp_path / "published"
    out.mkdir()
    (out / "compute.json").write_text("{}")
    spec = benv.spec(strategies=("finetune",))
    assert bench_main([str(spec), "--out", str(out)]) == 2
    assert "a published study" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["compute.json"] and _calls(fake_train) == []
