"""``benchmarks/publish.py``: a bench folder's reports and figures, made relative, no runs."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("publish", ROOT / "benchmarks" / "publish.py")
assert _spec is not None and _spec.loader is not None
publish_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(publish_mod)


def _bench_folder(repo: Path, data: Path, extra: str = "") -> Path:
    src = repo / "results" / "bench" / "study"
    model = src / "report" / "m"
    (model / "plots").mkdir(parents=True)
    run = src / "runs" / "qm9" / "finetune-s0"
    run.mkdir(parents=True)
    (run / "best.pt").write_bytes(b"weights")
    (run / "manifest.json").write_text(json.dumps(
        {"strategy": {"name": "finetune"}, "train_seconds": {"wall": 9.0, "cpu": 7200.0}}))  # fmt: skip
    (run / "metrics.json").write_text("{}")
    unfinished = src / "runs" / "qm9" / "mft-s0"  # still training: its time is not counted
    unfinished.mkdir(parents=True)
    (unfinished / "manifest.json").write_text(json.dumps(
        {"strategy": {"name": "mft"}, "train_seconds": {"wall": 9.0, "cpu": 50.0}}))  # fmt: skip
    stale = src / "runs" / "qm9" / "finetune-s0-older-config"  # finished, claimed by no cell
    stale.mkdir(parents=True)
    (stale / "manifest.json").write_text(json.dumps(
        {"strategy": {"name": "finetune"}, "train_seconds": {"wall": 9.0, "cpu": 999.0}}))  # fmt: skip
    (stale / "metrics.json").write_text("{}")
    (src / "bench.json").write_text(json.dumps(
        {"spec": {"path": str(repo / "benchmarks" / "s.toml")}, "run_dir": str(run),
         "data": str(data / "stores" / "qm9"),
         "cells": [{"state": "done", "run_dir": str(run)},
                   {"state": "new", "run_dir": str(src / "runs" / "qm9" / "mft-s0")}]}))  # fmt: skip
    (model / "report.md").write_text(
        f"| finetune | 1.0 meV/Å |\n{run}: left out{extra}\n"
        "see https://doi.org/10.48550/arXiv.2601.08486\n"
    )
    (model / "plots" / "study.png").write_bytes(b"\x89PNG")
    (model / "plots" / "study.svg").write_text("<svg/>")
    (model / "plots" / "parity_x.png").write_bytes(b"\x89PNG")
    col = src / "collapse" / "m" / "qm9" / "tail"
    col.mkdir(parents=True)
    (col / "collapse.json").write_text("{}")
    (col / "measures.png").write_bytes(b"\x89PNG")
    (col / "sample_atoms.csv").write_text("a,b\n")
    return src


def test_publish_copies_reports_and_figures_with_relative_paths(tmp_path):
    repo, data = tmp_path / "repo", tmp_path / "elsewhere" / "data"
    src = _bench_folder(repo, data)
    dest = repo / "results" / "study"
    files = publish_mod.publish(src, dest, repo, data)
    got = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
    assert got == sorted(map(str, files)) == [
        "bench.json", "collapse/m/qm9/tail/collapse.json", "collapse/m/qm9/tail/measures.png",
        "compute.json", "report/m/plots/study.png", "report/m/report.md"]  # fmt: skip
    bench = json.loads((dest / "bench.json").read_text())
    assert bench["spec"]["path"] == "benchmarks/s.toml"
    assert bench["run_dir"] == "results/study/runs/qm9/finetune-s0"
    assert bench["data"] == "data/stores/qm9"
    assert str(tmp_path) not in (dest / "report" / "m" / "report.md").read_text()
    used = json.loads((dest / "compute.json").read_text())
    assert used["finished_runs"] == 1 and used["train_cpu_hours"] == 2.0
    assert used["by_strategy_cpu_seconds"] == {"finetune": 7200.0}


def test_paths_of_every_checkout_named_by_ran_in_become_relative(tmp_path):
    """The cells trained in one worktree and ``--collect`` ran in another: both are the repo."""
    repo, data = tmp_path / "repo", tmp_path / "data"
    trained, collected = tmp_path / "wt-train", tmp_path / "wt-collect"
    src = _bench_folder(repo, data, extra=f" {trained}/splits/a and {collected}/splits/b")
    dest = repo / "results" / "study"
    with pytest.raises(SystemExit, match="an absolute path is left"):
        publish_mod.publish(src, dest, repo, data, [trained])
    assert publish_mod.main([str(src), "--to", str(dest), "--root", str(repo), "--data-root",
                             str(data), "--ran-in", str(trained), "--ran-in", str(collected)]) == 0  # fmt: skip
    assert "left out splits/a and splits/b" in (dest / "report" / "m" / "report.md").read_text()


def test_an_absolute_path_left_stops_the_copy_and_writes_nothing(tmp_path):
    repo, data = tmp_path / "repo", tmp_path / "data"
    src = _bench_folder(repo, data, extra=" (see /opt/other/place/file.txt)")
    dest = repo / "results" / "study"
    with pytest.raises(
        SystemExit, match=r"report\.md: an absolute path is left.*/opt/other/place/"
    ):
        publish_mod.publish(src, dest, repo, data)
    assert not dest.exists()


def test_a_folder_holding_a_bench_run_is_never_replaced(tmp_path):
    repo, data = tmp_path / "repo", tmp_path / "data"
    src = _bench_folder(repo, data)
    with pytest.raises(SystemExit, match="holds a bench run"):
        publish_mod.publish(src, src, repo, data)
    assert (src / "runs" / "qm9" / "finetune-s0" / "best.pt").is_file()


def test_a_path_is_replaced_only_where_it_is_a_whole_folder():
    text = "/r/main/a /r/main /r/main-gpu/b /r/main/results/ct/x /r/main/results/ct-ani/y"
    out = publish_mod.relative_text(text, [("/r/main/results/ct", "results/ct"), ("/r/main", "")])
    assert out == "a . /r/main-gpu/b results/ct/x results/ct-ani/y"
    assert publish_mod.ABSOLUTE.search("/r/main-gpu/b").group(0) == "/r/main-gpu/b"
    for fine in ("1.0 meV/Å", "eV/atom", "(a)/base", "https://doi.org/10.1/x", "1/2"):
        assert publish_mod.ABSOLUTE.search(fine) is None, fine


def test_compute_counts_the_cells_bench_json_claims(tmp_path):
    repo, data = tmp_path / "repo", tmp_path / "data"
    src = _bench_folder(repo, data)
    used = publish_mod.compute(src)
    assert used["finished_runs"] == 1 and used["train_cpu_seconds"] == 7200.0
    assert used["train_wall_seconds_summed_over_cells"] == 9.0  # the unfinished run's 9 s left out


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code = publish_mod.main([str(tmp_path / "empty"), "--to", str(tmp_path / "out"),
                             "--root", str(tmp_path)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "not a bench output folder" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
