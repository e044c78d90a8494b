"""Kill a command with SIGKILL at several points (``$ATOMCOLLAPSE_FAULT``), run it again (with
``--resume`` where the command resumes): the artifacts equal those of an uninterrupted run, and
nothing is left behind (no temporary files, no lock files, no running process)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from atomcollapse.cli import main
from tests.cli.test_bad_input_corpus import PRETRAIN, TRAIN

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
       "PYTHONPATH": os.pathsep.join(sys.path)}  # fmt: skip
BASE = ["--data-root", "data"]
STATE_EVERY = ["--config", "every.toml"]  # a resume state after every step


def _train(strategy: str, *extra: str, epochs: int = 2) -> list[str]:
    """``train`` for a few epochs (several evaluations and states) with ``strategy``."""
    argv = [(str(epochs) if a == "2" else "--epochs" if a == "--steps" else a) for a in TRAIN]
    argv[argv.index("finetune")] = strategy
    return [*argv, *extra, *STATE_EVERY, "--out", "r"]


COMMANDS = {
    "ingest": (["ingest", "extxyz", "frames.xyz", "--name", "new"], "data/stores/new", False),
    "split": (["split", "make", "mols", "--method", "random", "--out", "s2"], "s2", False),
    "report": (["report", "runs", "--out", "rep", "--no-plots", "--format", "csv"], "rep", False),
    "train-finetune": (_train("finetune"), "r", True),
    "train-mft": (_train("mft", "--ff-data", "ff", epochs=1), "r", True),
    "pretrain": ([*PRETRAIN, *STATE_EVERY, "--out", "p.pt"], "p.pt", True),
}  # fmt: skip
POINTS = {
    "ingest": ["before-rename"],
    "split": ["before-rename"],
    "report": ["before-rename"],
    "train-finetune": ["state-saved:3", "checkpoint-tmp-written"],
    "train-mft": ["torch-tmp-written:3"],
    "pretrain": ["state-saved:2", "checkpoint-tmp-written"],
}
MATRIX = [(c, p) for c, ps in POINTS.items() for p in ps]


def _strip(obj, root: str):
    """JSON without the fields that name when, how long or by what code (they differ run to
    run), the workspace folder spelled ``<ws>``."""
    if isinstance(obj, dict):
        return {k: _strip(v, root) for k, v in obj.items()
                if k not in ("created_at", "finished_at", "code_version", "created_by",
                              "train_seconds")}  # fmt: skip
    if isinstance(obj, list):
        return [_strip(v, root) for v in obj]
    return obj.replace(root, "<ws>") if isinstance(obj, str) else obj


def content(path: Path, root: Path) -> dict[str, object]:
    """What must be identical: every file's bytes; JSON without times; checkpoints' tensors."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    out: dict[str, object] = {}
    for f in files:
        key = str(f.relative_to(path)) if f != path else f.name
        if f.suffix == ".json":
            out[key] = _strip(json.loads(f.read_text()), str(root))
        elif f.suffix == ".pt":
            sd = torch.load(f, weights_only=True)["state_dict"]
            out[key] = {k: v.numpy().tobytes() for k, v in sd.items()}
        elif f.name == "train.log":
            continue  # times and the "resumed at step" line
        elif f.suffix == ".html":
            out[key] = _page(f.read_text(), str(root))
        else:
            out[key] = f.read_bytes()
    return out


def _page(html: str, root: str) -> str:
    """A report page without what says when and how long: timestamps, durations, the folder."""
    html = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?([+-]\d\d:\d\d|Z)?", "<time>", html)
    html = re.sub(r"\b\d+(\.\d+)? (h|min|s)\b", "<duration>", html)
    return html.replace(root, "<root>")


def leftovers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*")
                  if ".tmp" in p.name or p.name.endswith(".lock") or ".old-" in p.name)  # fmt: skip


@pytest.fixture(scope="module")
def references(template, tmp_path_factory):
    """Each command's uninterrupted result, made once (lazily) in its own workspace copy."""
    made: dict[str, Path] = {}

    def get(command: str) -> Path:
        if command not in made:
            ref_ws = tmp_path_factory.mktemp("ref") / "ws"
            shutil.copytree(template, ref_ws)
            (ref_ws / "every.toml").write_text("state_every_steps = 1\n")
            here = Path.cwd()
            os.chdir(ref_ws)
            try:
                assert main([*BASE, *COMMANDS[command][0]]) == 0
            finally:
                os.chdir(here)
            made[command] = ref_ws
        return made[command]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("command, point", MATRIX, ids=[f"{c}@{p}" for c, p in MATRIX])
def test_killed_then_rerun_equals_uninterrupted(command, point, ws: Path, references):
    argv, out, resumes = COMMANDS[command]
    (ws / "every.toml").write_text("state_every_steps = 1\n")
    ref_ws = references(command)
    proc = subprocess.run([sys.executable, "-m", "atomcollapse", *BASE, *argv],
                          env={**ENV, "ATOMCOLLAPSE_FAULT": point}, capture_output=True,
                          check=False)  # fmt: skip
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    again = [*BASE, *argv, *(["--resume"] if resumes else [])]
    assert main(again) == 0
    assert content(ws / out, ws) == content(ref_ws / out, ref_ws)
    assert leftovers(ws) == []
