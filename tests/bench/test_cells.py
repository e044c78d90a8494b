"""Cell expansion, identities, and "done" decided by a run's manifest, never by its name."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from atomcollapse.bench.cells import expand, toml_text
from atomcollapse.bench.pipeline import make_plan, pending_jobs
from atomcollapse.bench.spec import load_spec
from atomcollapse.errors import InputError
from tests.bench import fake_train

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


def test_paper_grid_has_120_cells():
    keys = expand(load_spec(BENCHMARKS / "paper-qm9.toml"))
    assert len(keys) == 8 * 5 * 3 == len(set(keys))
    assert {k.target for k in keys} == {"mu", "alpha", "homo", "lumo", "gap", "r2", "zpve", "cv"}
    assert {k.seed for k in keys} == {0, 1, 2}


def test_expansion_is_the_product_with_model_restrictions(benv):
    extra = f'[[models]]\nname = "other"\ncheckpoint = "{benv.ckpt}"\nstrategies = ["finetune"]\n'
    path = benv.spec(seeds=(0, 1, 2), extra=extra)
    text = path.read_text().replace('targets = ["gap"]', 'targets = ["gap", "alpha"]')
    text = text.replace('[[models]]\nname = "tinypre"',
                        '[[datasets.splits]]\nname = "again"\nmethod = "random"\n'
                        f'artifact = "{benv.split}"\n\n[[models]]\nname = "tinypre"')  # fmt: skip
    path.write_text(text)
    keys = expand(load_spec(path))
    # 2 splits x 2 targets x (3 strategies of tinypre + 1 of other) x 3 seeds
    assert len(keys) == 2 * 2 * (3 + 1) * 3
    assert {k.strategy for k in keys if k.model == "other"} == {"finetune"}
    assert [k.seed for k in keys[:3]] == [0, 1, 2]


def test_identities_follow_the_resolved_config(benv, tmp_path):
    out = tmp_path / "out"
    plan = make_plan(load_spec(benv.spec()), out, None, create=True)
    ids = {c.key: c.cell_id for c in plan.cells}
    assert len(set(ids.values())) == 6
    again = make_plan(load_spec(benv.spec(name="same.toml")), out, None, create=True)
    assert {c.key: c.cell_id for c in again.cells} == ids
    device = benv.spec(extra="", name="dev.toml")
    device.write_text(
        device.read_text().replace("batch_size = 8", 'batch_size = 8\ndevice = "cpu"')
    )
    assert {c.key: c.cell_id for c in make_plan(load_spec(device), out, None,
                                                create=True).cells} == ids  # fmt: skip
    other = benv.spec(name="other.toml")
    other.write_text(other.read_text().replace("batch_size = 8", "batch_size = 4"))
    changed = {c.key: c.cell_id for c in make_plan(load_spec(other), out, None, create=True).cells}
    assert not set(changed.values()) & set(ids.values())
    by_strategy = {c.key.strategy: c.identity for c in plan.cells}
    assert (
        by_strategy["mft"]["aux_data"] is not None and by_strategy["finetune"]["aux_data"] is None
    )
    assert by_strategy["finetune"]["config"]["strategy"]["name"] == "finetune"


def test_every_pretrained_cell_scores_forgetting_on_the_models_force_field_store(benv, tmp_path):
    out = tmp_path / "out"
    plan = make_plan(load_spec(benv.spec()), out, None, create=True)
    for cell in plan.cells:
        args = cell.train_args(out, out / "run")
        flags = {a for a in args if a.startswith("--")}
        if cell.key.strategy == "mft":
            # mft scores forgetting on held-out structures of its own --ff-data
            assert "--ff-data" in flags and "--forgetting-data" not in flags
        else:
            assert "--forgetting-data" in flags and "--ff-data" not in flags
            i = args.index("--forgetting-data")
            assert args[i + 1] == cell.forgetting_data == str(benv.ff)


def test_config_table_round_trips_through_toml():
    table = {"epochs": 2, "lr_list": [0.5, 1e-5], "flag": True, "name": 'a "q"',
             "optim": {"lr": 1e-3, "betas": [0.9, 0.999]}, "strategy": {"layers": [0.3]},
             "nested": {"deeper": {"x": 1}}}  # fmt: skip
    assert tomllib.loads(toml_text(table)) == table


def _finished_run(plan, cell, where: Path) -> Path:
    """A run directory as ``train`` leaves it, at a path that says nothing about the cell."""
    config = cell.config_path(plan.out)
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(toml_text(cell.table))
    assert fake_train.main(cell.train_args(plan.out, where)) == 0
    return where


def test_a_finished_run_with_the_same_identity_is_done_whatever_its_name(benv, tmp_path):
    out = tmp_path / "out"
    plan = make_plan(load_spec(benv.spec()), out, None, create=True)
    cell = next(c for c in plan.cells if c.key.strategy == "finetune" and c.key.seed == 1)
    run = _finished_run(plan, cell, out / "runs" / "renamed" / "whatever")
    plan = make_plan(plan.spec, out, None, create=False)
    states = {c.key: plan.state(c) for c in plan.cells}
    assert states[cell.key] == "done" and plan.run_dir(cell) == run
    assert sorted(states.values()).count("done") == 1 and list(states.values()).count("new") == 5


def test_a_run_with_another_identity_is_not_done(benv, tmp_path):
    out = tmp_path / "out"
    plan = make_plan(load_spec(benv.spec()), out, None, create=True)
    cell = next(c for c in plan.cells if c.key.strategy == "mft" and c.key.seed == 0)
    run = _finished_run(plan, cell, cell.default_run_dir(out))
    config = json.loads((run / "config.json").read_text())
    config["optim"]["lr"] = 0.5
    (run / "config.json").write_text(json.dumps(config))
    plan = make_plan(plan.spec, out, None, create=False)
    assert plan.state(next(c for c in plan.cells if c.key == cell.key)) == "new"
    manifest = json.loads((run / "manifest.json").read_text())
    config["optim"]["lr"] = cell.config["optim"]["lr"]
    (run / "config.json").write_text(json.dumps(config))
    manifest["split"]["hash"] = "0" * 64
    (run / "manifest.json").write_text(json.dumps(manifest))
    plan = make_plan(plan.spec, out, None, create=False)
    assert plan.state(next(c for c in plan.cells if c.key == cell.key)) == "new"


def test_an_unfinished_run_is_resumed_in_place(benv, tmp_path):
    out = tmp_path / "out"
    plan = make_plan(load_spec(benv.spec()), out, None, create=True)
    cell = plan.cells[0]
    run = _finished_run(plan, cell, out / "runs" / "killed")
    (run / "metrics.json").unlink()
    plan = make_plan(plan.spec, out, None, create=False)
    c = next(x for x in plan.cells if x.key == cell.key)
    assert plan.state(c) == "resume" and plan.run_dir(c) == run
    args = plan.job(c).argv
    assert "--resume" in args and args[args.index("--out") + 1] == str(run)
    status = plan.job(c).status
    status.parent.mkdir(parents=True, exist_ok=True)
    for last, state in (({"returncode": -15, "stopped": True}, "resume"),  # stopped with bench
                        ({"returncode": 3}, "failed")):  # fmt: skip
        status.write_text(json.dumps(last))
        plan = make_plan(plan.spec, out, None, create=False)
        assert plan.state(next(x for x in plan.cells if x.key == cell.key)) == state


def test_cells_start_unfinished_first_then_seed_by_seed(benv, tmp_path):
    """A study stopped part-way leaves whole seeds (the units of its paired differences)."""
    out = tmp_path / "out"
    plan = make_plan(load_spec(benv.spec()), out, None, create=True)
    done = next(c for c in plan.cells if c.key.strategy == "scratch" and c.key.seed == 0)
    _finished_run(plan, done, out / "runs" / "done")
    killed = next(c for c in plan.cells if c.key.strategy == "mft" and c.key.seed == 1)
    (_finished_run(plan, killed, out / "runs" / "killed") / "metrics.json").unlink()
    status = plan.job(killed).status  # stopped by a signal: "failed", yet resumed first
    status.parent.mkdir(parents=True, exist_ok=True)
    status.write_text(json.dumps({"returncode": -15}))
    plan = make_plan(plan.spec, out, None, create=False)
    assert plan.state(next(c for c in plan.cells if c.key == killed.key)) == "failed"
    order = [(j.label.split("/")[-2], j.label.split("/")[-1]) for j in pending_jobs(plan)]
    assert order == [("mft", "seed1"), ("finetune", "seed0"), ("mft", "seed0"),
                     ("scratch", "seed1"), ("finetune", "seed1")]  # fmt: skip


def test_within_a_seed_the_arms_that_trained_longest_start_first(benv, tmp_path):
    """Seed 0 finished (finetune took longest, then mft): seed 1 starts finetune, mft, scratch,
    so the study does not end on its longest cell alone."""
    out = tmp_path / "out"
    plan = make_plan(load_spec(benv.spec()), out, None, create=True)
    took = {"scratch": 10.0, "finetune": 30.0, "mft": 20.0}
    for c in (c for c in plan.cells if c.key.seed == 0):
        run = _finished_run(plan, c, out / "runs" / c.key.strategy)
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["train_seconds"] = {"wall": took[c.key.strategy], "cpu": 1.0}
        (run / "manifest.json").write_text(json.dumps(manifest))
    plan = make_plan(plan.spec, out, None, create=False)
    order = [j.label.split("/")[-2] for j in pending_jobs(plan)]
    assert order == ["finetune", "mft", "scratch"]


def test_dry_run_lists_cells_and_writes_nothing(benv, tmp_path, capsys):
    from tests.bench.conftest import bench_main

    out = tmp_path / "out"
    plan = make_plan(load_spec(benv.spec()), out, None, create=True)
    done = next(c for c in plan.cells if c.key.strategy == "scratch" and c.key.seed == 0)
    _finished_run(plan, done, out / "runs" / "x")
    shutil.rmtree(out / "configs", ignore_errors=True)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    capsys.readouterr()
    assert bench_main([str(plan.spec.path), "--dry-run", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert "6 cells: 1 done, 5 new" in text
    assert done.cell_id[:12] in text
    for strategy in ("scratch", "finetune", "mft"):
        assert strategy in text


def test_dry_run_names_what_is_missing(benv, tmp_path, capsys):
    from tests.bench.conftest import bench_main

    path = benv.spec()
    path.write_text(path.read_text().replace(str(benv.ckpt), str(tmp_path / "absent.pt")))
    assert bench_main([str(path), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    text = capsys.readouterr().out
    assert "6 cells: 6 blocked" in text and "absent.pt is missing" in text
    assert not (tmp_path / "out").exists()


def test_tracking_does_not_change_identities_and_cells_are_tagged(benv, tmp_path):
    out = tmp_path / "out"
    plan = make_plan(load_spec(benv.spec()), out, None, create=True)
    logged = benv.spec(name="logged.toml")
    logged.write_text(logged.read_text().replace("batch_size = 8", 'batch_size = 8\nlog = ["csv"]'))
    again = make_plan(load_spec(logged), out, None, create=True)
    assert {c.key: c.cell_id for c in again.cells} == {c.key: c.cell_id for c in plan.cells}
    cell = again.cells[0]
    assert tomllib.loads(toml_text(cell.table))["log"] == ["csv"]
    args = cell.train_args(out, out / "run", "tiny")
    tags = [args[i + 1] for i, a in enumerate(args) if a == "--tag"]
    k = cell.key
    assert tags[:6] == [f"dataset={k.dataset}", f"split={k.split}", f"target={k.target}",
                        f"model={k.model}", f"strategy={k.strategy}", f"seed={k.seed}"]  # fmt: skip
    assert "bench=tiny" in tags


def test_a_tracking_backend_that_is_not_installed_is_refused_at_spec_load(benv, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    spec = benv.spec(name="wandb.toml")
    spec.write_text(spec.read_text().replace("batch_size = 8", 'batch_size = 8\nlog = ["wandb"]'))
    with pytest.raises(InputError, match=r"wandb.*not installed"):
        load_spec(spec)


#: Every setting in a bench cell's identity (strategy settings aside). A setting added to
#: TrainConfig changes the resolved config of every cell, which would turn every finished cell
#: of every study into a new one: register it in ``cells.ADDED_SETTINGS`` with its default, then
#: add it here.
IDENTITY_KEYS = [
    "batch_size", "bf16", "data_seed", "drop_unsupported_elements", "epochs", "eval_batch_size",
    "eval_every_steps", "eval_seed", "ff_loss.energy_weight", "ff_loss.energy_weight_end",
    "ff_loss.force_weight", "ff_loss.force_weight_end", "ff_loss.ramp", "head.atom_refs",
    "head.feature_layer", "head.hidden", "init_seed", "loss_convention", "max_eval", "max_ff",
    "max_forgetting", "max_train", "model.cutoff", "model.hidden", "model.layers", "model.rbf",
    "optim.betas", "optim.decay_steps", "optim.grad_clip", "optim.lr", "optim.lr_end",
    "optim.optimizer", "optim.schedule", "optim.warmup_steps", "optim.weight_decay", "patience",
    "seed", "state_every_steps", "steps", "strategy", "target", "val_fraction",
]  # fmt: skip


def _keys(d: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in d.items():
        out += (
            _keys(v, f"{prefix}{k}.") if isinstance(v, dict) and k != "strategy" else [prefix + k]
        )
    return out


def test_a_new_setting_at_its_default_leaves_finished_cells_finished():
    from atomcollapse.bench.cells import ADDED_SETTINGS, identity_config
    from atomcollapse.training.config import TrainConfig

    config = json.loads(json.dumps(TrainConfig().to_dict()))
    assert sorted(_keys(identity_config(config))) == sorted(IDENTITY_KEYS), (
        "a TrainConfig setting was added or removed: see IDENTITY_KEYS"
    )
    older = {k: v for k, v in config.items() if k not in ADDED_SETTINGS}  # config.json before
    assert identity_config(older) == identity_config(config)
    assert identity_config({**config, "elements": ["H", "C"]}) != identity_config(config)
    assert identity_config({**config, "device": "cuda", "log": ["csv"]}) == identity_config(config)
