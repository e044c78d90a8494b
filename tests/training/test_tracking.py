"""Experiment tracking: scalars.csv (always), TensorBoard event files read back with
TensorBoard's own reader, W&B through a stand-in module, and the refusals."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pandas as pd
import pytest

from atomcollapse.cli import main
from atomcollapse.training.tracking import BACKENDS

HISTORY_SCALARS = ("val_mae", "val_rmse", "train_property_loss", "steps_property")


def _metrics(run):
    return json.loads((run / "metrics.json").read_text())


def _series(history, name):
    return [(h["step"], float(h[name])) for h in history if name in h]


@pytest.fixture(scope="module")
def tb_run(env, tmp_path_factory):
    pytest.importorskip("tensorboard")
    out = tmp_path_factory.mktemp("tracking") / "run"
    argv = env.train_args(out, "finetune", "--epochs", "3", "--log", "tensorboard",
                          "--tag", "bench=demo", "--tag", "model=painn-test")  # fmt: skip
    assert main(argv) == 0
    return out


def test_scalars_csv_holds_every_history_number_exactly(tb_run):
    history = _metrics(tb_run)["history"]
    frame = pd.read_csv(tb_run / "scalars.csv")
    assert list(frame.columns) == ["step", "name", "value"]
    for name in HISTORY_SCALARS:
        rows = frame[frame["name"] == name]
        got = list(zip(rows["step"].tolist(), rows["value"].tolist(), strict=True))
        assert got == _series(history, name) and got
    lr = frame[frame["name"] == "lr"]
    assert lr["step"].tolist() == [h["step"] for h in history]
    assert (lr["value"] > 0).all() and lr["value"].is_monotonic_decreasing
    best = frame[frame["name"].str.startswith("best/")]
    parts = _metrics(tb_run)["partitions"]
    assert set(best["step"]) == {_metrics(tb_run)["steps"]}
    assert dict(zip(best["name"], best["value"], strict=True)) == {
        f"best/{p}_{k}": parts[p][k] for p in parts for k in ("mae", "rmse")
    }


def test_tensorboard_events_read_back_equal_metrics_history(tb_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_run / "tensorboard"))
    acc.Reload()
    history = _metrics(tb_run)["history"]
    for name in HISTORY_SCALARS:
        events = acc.Scalars(name)
        # event files hold 32-bit floats
        assert [(e.step, e.value) for e in events] == [
            (s, float(np.float32(v))) for s, v in _series(history, name)
        ]
    text = acc.Tensors("run/text_summary")[0].tensor_proto.string_val[0].decode()
    for cell in ("| strategy | finetune |", "| target | gap |", "| seed | 3 |",
                 "| bench | demo |", "| model | painn-test |"):  # fmt: skip
        assert cell in text
    assert "best/ood_test_mae" in acc.Tags()["scalars"]


def test_metrics_json_is_the_same_with_or_without_tracking(env, tb_run, tmp_path):
    plain = tmp_path / "plain"
    assert main(env.train_args(plain, "finetune", "--epochs", "3")) == 0
    assert (plain / "metrics.json").read_bytes() == (tb_run / "metrics.json").read_bytes()
    assert (plain / "scalars.csv").read_bytes() == (tb_run / "scalars.csv").read_bytes()
    assert not (plain / "tensorboard").exists()


class _FakeWandb(types.ModuleType):
    """Records what atomcollapse asks of ``wandb`` (no network, no files)."""

    def __init__(self):
        super().__init__("wandb")
        self.inits, self.logged, self.finished = [], [], 0

    def init(self, **kw):
        self.inits.append(kw)
        fake = self

        class Run:
            step = 0

            def log(self, data, step):
                fake.logged.append((step, data))

            def finish(self):
                fake.finished += 1

        return Run()


def test_wandb_gets_tags_offline_mode_and_the_history(env, tmp_path, monkeypatch):
    fake = _FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    out = tmp_path / "run"
    assert main(env.train_args(out, "finetune", "--log", "wandb", "--tag", "bench=b1")) == 0
    (kw,) = fake.inits
    assert kw["mode"] == "offline" and kw["dir"] == str(out) and kw["group"] == "b1"
    assert {"strategy=finetune", "target=gap", "seed=3", "bench=b1"} <= set(kw["tags"])
    assert kw["config"]["strategy"]["name"] == "finetune" and kw["config"]["log"] == ["wandb"]
    history = _metrics(out)["history"]
    val = [(s, d["val_mae"]) for s, d in fake.logged if "val_mae" in d]
    assert val == _series(history, "val_mae") and fake.finished == 1
    # the user's own mode is kept
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert main(env.train_args(tmp_path / "run2", "finetune", "--log", "wandb")) == 0
    assert fake.inits[-1]["mode"] == "disabled"


def test_wandb_missing_is_one_line_before_anything_is_written(env, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    out = tmp_path / "run"
    assert main(env.train_args(out, "finetune", "--log", "wandb")) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'wandb'" in err and "not installed" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "words"),
    [(("--log", "mlflow"), "unknown tracking backend 'mlflow'"),
     (("--tag", "no-equals"), "expected KEY=VALUE")],
)  # fmt: skip
def test_bad_tracking_options_are_refused(env, tmp_path, capsys, extra, words):
    out = tmp_path / "run"
    assert main(env.train_args(out, "finetune", *extra)) == 2
    err = capsys.readouterr().err
    assert words in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_every_backend_is_in_the_registry():
    assert set(BACKENDS) == {"csv", "tensorboard", "wandb"}
    for b in BACKENDS.values():
        assert callable(b.load())  # every module imports (tensorboard's import is lazy)
