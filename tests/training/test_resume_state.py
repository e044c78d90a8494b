"""Resume state holds tensors and plain containers only: a crafted ``state.pt`` never runs code,
and a foreign or incompatible one is one line naming the file, exit 2, nothing changed."""

from __future__ import annotations

import pytest
import torch

from atomcollapse.cli import main
from atomcollapse.training.loop import LoopState
from atomcollapse.training.rundir import load_resume_state, save_resume_state
from tests.malicious import payload_works, write_malicious_pt
from tests.snapshot import snapshot
from tests.training.conftest import TINY


def _fails(argv, capsys, *needles):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err
    return err


@pytest.fixture(scope="module")
def unfinished(env, tmp_path_factory):
    """A run directory whose run has not finished (metrics.json removed)."""
    run = tmp_path_factory.mktemp("unfinished") / "run"
    argv = env.train_args(run, "finetune", "--steps", "2")
    assert main(argv) == 0
    (run / "metrics.json").unlink()
    return run, argv


def test_the_test_payload_really_executes_under_pickle(tmp_path):
    assert payload_works(tmp_path)


def test_state_round_trips_without_pickle(tmp_path):
    state = {"loop": LoopState(step=3, best_score=1.5, history=[{"step": 1, "best": True}],
                               task_steps={"property": 3}),
             "model": {"w": torch.ones(2)}, "optimizer": {"state": {}, "param_groups": []},
             "streams": {"property": {"epoch": 0, "cursor": 4, "batches_drawn": 1,
                                      "order_hash": "ab"}},
             "torch_rng": torch.get_rng_state(), "cuda_rng": None}  # fmt: skip
    save_resume_state(state, tmp_path / "state.pt")
    torch.load(tmp_path / "state.pt", weights_only=True)  # plain containers only
    back = load_resume_state(tmp_path / "state.pt")
    assert back["loop"] == state["loop"]
    assert torch.equal(back["torch_rng"], state["torch_rng"])


def test_train_resume_never_executes_a_crafted_state(unfinished, capsys, tmp_path):
    run, argv = unfinished
    marker = tmp_path / "pwned"
    write_malicious_pt(run / "state.pt", marker)
    before = snapshot(run)
    _fails([*argv, "--resume"], capsys, "state.pt", "refusing to load")
    assert not marker.exists()
    assert snapshot(run) == before


@pytest.mark.parametrize(
    "content, needle",
    [({"loop": 1}, "not a resume state"),  # the audit's KeyError: 'loop' shape, reversed
     ({"step": 3}, "not a resume state"),
     ({"format": "atomcollapse.resume-state/1", "loop": {"step": 1}}, "incomplete resume state"),
     (b"garbage", "not a readable resume state")],
)  # fmt: skip
def test_train_resume_with_a_foreign_state(unfinished, capsys, content, needle):
    run, argv = unfinished
    if isinstance(content, bytes):
        (run / "state.pt").write_bytes(content)
    else:
        torch.save(content, run / "state.pt")
    before = snapshot(run)
    _fails([*argv, "--resume"], capsys, "state.pt", needle)
    assert snapshot(run) == before


def test_train_resume_with_a_state_of_another_model(unfinished, capsys):
    run, argv = unfinished
    state = {"loop": LoopState(step=1), "model": {"not.a.parameter": torch.zeros(3)},
             "optimizer": {"state": {}, "param_groups": []}, "streams": {},
             "torch_rng": torch.get_rng_state(), "cuda_rng": None}  # fmt: skip
    save_resume_state(state, run / "state.pt")
    before = snapshot(run)
    _fails([*argv, "--resume"], capsys, "state.pt", "does not fit this run")
    assert snapshot(run) == before


def test_pretrain_resume_never_executes_a_crafted_state(env, capsys, tmp_path):
    out = tmp_path / "pre.pt"
    marker = tmp_path / "pwned"
    write_malicious_pt(tmp_path / "pre.pt.state.pt", marker)
    before = snapshot(tmp_path)
    argv = ["pretrain", "--data", str(env.ff), "--out", str(out), *TINY, "--epochs", "1",
            "--batch-size", "8", "--device", "cpu", "--no-progress", "--resume"]  # fmt: skip
    _fails(argv, capsys, "pre.pt.state.pt", "refusing to load")
    assert not marker.exists()
    assert snapshot(tmp_path) == before
