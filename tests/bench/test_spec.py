"""Spec parsing and validation: a good spec becomes frozen dataclasses; a bad one, one line."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from atomcollapse.bench.spec import load_spec
from atomcollapse.errors import InputError
from atomcollapse.training.config import from_dict
from tests.bench.conftest import bench_main

BENCHMARKS = Path(__file__).parents[2] / "benchmarks"


def test_good_spec_parses(benv):
    spec = load_spec(benv.spec(extra="[train.by_strategy.finetune]\noptim.lr = 3e-4\n"))
    assert spec.name == "tiny"
    assert spec.strategies == ("scratch", "finetune", "mft")
    assert spec.seeds == (0, 1)
    (d,) = spec.datasets
    assert d.store.path == benv.store and d.targets == ("gap",)
    assert d.splits[0].artifact_path("gap") == benv.split
    (m,) = spec.models
    assert m.checkpoint == benv.ckpt and m.ff_data.path == benv.ff
    assert spec.train_table("finetune") == {"epochs": 1, "batch_size": 8, "optim": {"lr": 3e-4}}
    assert spec.train_table("scratch") == {"epochs": 1, "batch_size": 8}
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "other"


def test_relative_paths_are_relative_to_the_spec(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "s.toml"
    path.write_text('strategies = ["finetune"]\nseeds = [0]\n'
                    '[[datasets]]\nstore = "qm9"\ntargets = ["gap"]\n'
                    '[[datasets.splits]]\nmethod = "scaffold"\nartifact = "../splits/scaffold"\n'
                    '[[models]]\ncheckpoint = "../pre/ckpt.pt"\n')  # fmt: skip
    spec = load_spec(path)
    assert spec.datasets[0].store.path is None and spec.datasets[0].store.name == "qm9"
    assert Path(spec.datasets[0].splits[0].artifact) == tmp_path / "splits" / "scaffold"
    assert spec.models[0].checkpoint == tmp_path / "pre" / "ckpt.pt"
    assert spec.models[0].name == "pre"
    assert not spec.datasets[0].splits[0].per_target


BAD = [
    (
        'strategies = ["scratch", "finetune", "mft"]',
        'strategies = ["finetune", "magic"]',
        "unknown strategy 'magic'",
    ),
    ('strategies = ["scratch", "finetune", "mft"]', "", "missing required key 'strategies'"),
    ("seeds = [0, 1]", 'seeds = "0"', "'seeds' must be list, not str"),
    ("seeds = [0, 1]", "seeds = [0, 0]", "'seeds' has duplicates"),
    ('name = "tiny"', 'name = "tiny"\ncolour = "red"', "unknown key 'colour'"),
    ('targets = ["gap"]', "targets = []", "'datasets[0].targets' must not be empty"),
    ('method = "random"', 'method = "coin-flip"', "unknown split method 'coin-flip'"),
    ("batch_size = 8", 'batch_size = "big"', "setting 'batch_size' 'big' is not a batch size"),
    ("batch_size = 8", "batch_size = 8\nlearning = 1", "unknown setting 'learning'"),
    ("batch_size = 8", "batch_size = 8\nseed = 3", "'train.seed' is set per cell"),
    ('ff_data = "', 'xx_data = "', "unknown key 'models[0].xx_data'"),
]


@pytest.mark.parametrize(("old", "new", "message"), BAD)
def test_bad_specs_raise_one_clear_error(benv, old, new, message):
    path = benv.spec()
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(InputError) as e:
        load_spec(path)
    assert message in e.value.line()
    assert str(path) in e.value.line()


def test_mft_without_force_field_data_is_refused(benv):
    path = benv.spec()
    path.write_text("\n".join(ln for ln in path.read_text().splitlines()
                              if not ln.startswith("ff_data")))  # fmt: skip
    with pytest.raises(InputError, match="strategy 'mft' needs 'ff_data'"):
        load_spec(path)


def test_bad_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("strategies = [\n")
    with pytest.raises(InputError, match="invalid TOML"):
        load_spec(bad)
    with pytest.raises(InputError, match="benchmark spec not found"):
        load_spec(tmp_path / "absent.toml")


def test_bad_spec_through_the_cli_is_one_line_and_exit_2(benv, capsys, tmp_path):
    path = benv.spec(strategies=("finetune", "magic"))
    rc = bench_main([str(path), "--dry-run", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and "unknown strategy" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--launcher", "pbs"], "--launcher must be local or slurm"),
    (["--dry-run", "--collect"], "exclude each other"),
])  # fmt: skip
def test_bad_options_exit_2(benv, capsys, args, message):
    rc = bench_main([str(benv.spec()), *args])
    assert rc == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(p.stem for p in BENCHMARKS.glob("*.toml")))
def test_shipped_specs_are_valid(name):
    spec = load_spec(BENCHMARKS / f"{name}.toml")
    assert spec.name == name
    if name == "smoke":  # every cell is scored on the same 1,000 structures per partition
        cfg = from_dict(spec.train_table("mft"))
        assert (cfg.max_eval, cfg.eval_seed, cfg.max_train) == (1000, 0, 2000)


def test_per_target_settings_merge_under_the_strategy_ones(benv):
    extra = ("[train.by_target.gap]\nepochs = 3\noptim.lr = 1e-4\n"
             "[train.by_strategy.finetune]\noptim.lr = 3e-4\n")  # fmt: skip
    spec = load_spec(benv.spec(extra=extra))
    assert spec.train_table("scratch", "gap") == {"epochs": 3, "batch_size": 8,
                                                  "optim": {"lr": 1e-4}}  # fmt: skip
    assert spec.train_table("finetune", "gap")["optim"] == {"lr": 3e-4}  # strategy wins
    assert spec.train_table("scratch") == {"epochs": 1, "batch_size": 8}
    from atomcollapse.bench.pipeline import make_plan

    plan = make_plan(spec, benv.root / "out", None, create=True)
    assert {c.identity["config"]["epochs"] for c in plan.cells} == {3}


@pytest.mark.parametrize(
    ("extra", "message"),
    [("[train.by_target.homo]\nepochs = 3\n", "'homo' is not among the spec's targets"),
     ("[train.by_target.gap]\nseed = 3\n", "cannot be set per target"),
     ("[train.by_target.gap]\nepochs = -1\n", "epochs")],
)  # fmt: skip
def test_bad_per_target_settings_are_one_clear_error(benv, extra, message):
    with pytest.raises(InputError, match=message):
        load_spec(benv.spec(extra=extra))


def _two_targets(benv, extra: str) -> Path:
    path = benv.spec(extra=extra)
    path.write_text(path.read_text().replace('targets = ["gap"]', 'targets = ["gap", "alpha"]'))
    return path


def test_strategies_by_target_restricts_the_cells_of_one_target(benv):
    from atomcollapse.bench.cells import expand
    from atomcollapse.bench.pipeline import make_plan

    spec = load_spec(_two_targets(benv, '[strategies_by_target]\nalpha = ["finetune"]\n'))
    assert spec.target_strategies == {"alpha": ("finetune",)}
    (m,) = spec.models
    assert spec.strategies_for(m, "gap") == ("scratch", "finetune", "mft")
    assert spec.strategies_for(m, "alpha") == ("finetune",)
    cells = {(k.target, k.strategy, k.seed) for k in expand(spec)}
    assert cells == {(t, s, seed) for t, s in [("gap", "scratch"), ("gap", "finetune"),
                                               ("gap", "mft"), ("alpha", "finetune")]
                     for seed in (0, 1)}  # fmt: skip
    plan = make_plan(spec, benv.root / "out", None, create=True)
    planned = [(c.key.target, c.key.strategy) for c in plan.cells]
    assert len(planned) == 8 and planned.count(("alpha", "finetune")) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [('[strategies_by_target]\nhomo = ["finetune"]\n', "'homo' is not among the spec's targets"),
     ('[strategies_by_target]\nalpha = ["l2-sp"]\n', "'l2-sp' is not among the spec's strategies"),
     ("[strategies_by_target]\nalpha = []\n", "'strategies_by_target.alpha' must not be empty"),
     ('[strategies_by_target]\nalpha = "finetune"\n', "must be list, not str")],
)  # fmt: skip
def test_bad_strategies_by_target_is_one_clear_error(benv, extra, message):
    with pytest.raises(InputError, match=message):
        load_spec(_two_targets(benv, extra))


def test_the_evidence_study_runs_lp_ft_and_l2_sp_on_the_gap_only():
    from atomcollapse.bench.cells import expand

    keys = expand(load_spec(BENCHMARKS / "evidence-cpu.toml"))
    per_target = {t: {k.strategy for k in keys if k.target == t} for t in ("gap", "cv")}
    four = {"scratch", "finetune", "linear-probe", "mft"}
    assert per_target == {"gap": four | {"lp-ft", "l2-sp"}, "cv": four}
    assert len(keys) == 30 and {k.seed for k in keys} == {0, 1, 2}
