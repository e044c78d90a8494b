"""Bad input to ``train`` / ``pretrain``: one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import pytest

from atomcollapse.cli import main
from tests.training.conftest import TINY, write_split
from tests.training.synthetic import write_molecule_store


def _fails(argv, capsys, out, *needles):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    assert not out.exists()


def test_split_of_another_dataset(env, capsys, tmp_path):
    other = write_molecule_store(tmp_path / "other", n=20, seed=9, name="other")
    split = write_split(other, tmp_path / "other-split")
    argv = env.train_args(tmp_path / "run", "finetune")
    argv[argv.index("--split") + 1] = str(split)
    _fails(argv, capsys, tmp_path / "run", "split was made for dataset 'other'")


def test_target_the_dataset_lacks(env, capsys, tmp_path):
    argv = env.train_args(tmp_path / "run", "finetune")
    argv[argv.index("--target") + 1] = "homo"
    _fails(argv, capsys, tmp_path / "run", "no target 'homo'", "gap")


def test_elements_missing_from_the_checkpoint(env, capsys, tmp_path):
    mols = write_molecule_store(tmp_path / "fluoro", n=24, seed=4, elements=(1, 6, 9))
    split = write_split(mols, tmp_path / "fluoro-split")
    argv = env.train_args(tmp_path / "run", "finetune")
    argv[argv.index("--data") + 1] = str(mols)
    argv[argv.index("--split") + 1] = str(split)
    _fails(argv, capsys, tmp_path / "run", "elements F", "not in the checkpoint's element set")


def test_checkpoint_of_another_kind(env, capsys, tmp_path):
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"not a checkpoint")
    argv = env.train_args(tmp_path / "run", "finetune")
    argv[argv.index("--pretrained") + 1] = str(bogus)
    _fails(argv, capsys, tmp_path / "run", "bogus.pt")


def test_finetuned_checkpoint_is_not_a_force_field(env, capsys, tmp_path):
    run = tmp_path / "first"
    assert main(env.train_args(run, "linear-probe", "--steps", "1")) == 0
    argv = env.train_args(tmp_path / "run", "mft")
    argv[argv.index("--pretrained") + 1] = str(run / "best.pt")
    _fails(argv, capsys, tmp_path / "run", "no energy/force head")


@pytest.mark.parametrize(
    ("strategy", "drop", "needle"),
    [
        ("finetune", "--pretrained", "needs a pretrained checkpoint"),
        ("lp-ft", "--pretrained", "needs a pretrained checkpoint"),
        ("mft", "--ff-data", "needs force-field data"),
    ],
)
def test_strategy_without_what_it_needs(env, capsys, tmp_path, strategy, drop, needle):
    argv = env.train_args(tmp_path / "run", strategy)
    i = argv.index(drop)
    del argv[i : i + 2]
    _fails(argv, capsys, tmp_path / "run", needle)


def test_unknown_strategy_and_bad_config(env, capsys, tmp_path):
    _fails(env.train_args(tmp_path / "run", "magic"), capsys, tmp_path / "run", "strategy.name")
    cfg = tmp_path / "c.toml"
    cfg.write_text("[optim]\nlr = -1\n")
    _fails(env.train_args(tmp_path / "run", "finetune", "--config", str(cfg)), capsys,
           tmp_path / "run", "c.toml")  # fmt: skip


def test_not_a_run_directory_is_never_overwritten(env, capsys, tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    capsys.readouterr()
    assert main(env.train_args(out, "finetune", "--overwrite")) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert (out / "thesis.tex").read_text() == "keep me"


def test_pretrain_bad_inputs(env, capsys, tmp_path):
    out = tmp_path / "p.pt"
    argv = ["pretrain", "--data", str(env.mols), "--out", str(out), *TINY, "--steps", "1"]
    _fails(argv, capsys, out, "no target 'energy'")
    argv = ["pretrain", "--data", str(env.ff), "--out", str(env.ckpt), *TINY, "--steps", "1"]
    capsys.readouterr()
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("strategy", "extra", "needles"),
    [
        ("finetune", ["--batch-size", "auto:0"], ["'batch_size'", "auto:0"]),
        ("finetune", ["--batch-size", "auto:abc"], ["'batch_size'", "auto:abc"]),
        ("mft", ["--ff-batch-size", "auto:0"], ["'strategy.ff_batch_size'"]),
        ("mft", ["--aux-weight", "-0.5"], ["'strategy.aux_weight' must not be negative"]),
        ("finetune", ["--aux-weight", "0.5"], ["'strategy.aux_weight' does not apply", "finetune"]),
        ("finetune", ["--loss-convention", "sum"], ["'loss_convention'", "deepmd | mean"]),
    ],
)
def test_bad_mft_fidelity_settings(env, capsys, tmp_path, strategy, extra, needles):
    _fails(env.train_args(tmp_path / "run", strategy, *extra), capsys, tmp_path / "run", *needles)


def test_forgetting_data_without_energies_and_forces(env, capsys, tmp_path):
    argv = env.train_args(tmp_path / "run", "finetune", "--forgetting-data", str(env.mols))
    _fails(argv, capsys, tmp_path / "run", "--forgetting-data", "no reference energies and forces")


def test_forgetting_data_with_the_splits_test_structures(env, capsys, tmp_path):
    split = write_split(env.ff, tmp_path / "ff-split", seed=4)
    argv = ["train", "--data", str(env.ff), "--split", str(split), "--target", "energy",
            "--strategy", "finetune", "--pretrained", str(env.ckpt), "--forgetting-data",
            str(env.ff), "--steps", "1", "--device", "cpu", "--no-progress",
            "--out", str(tmp_path / "run")]  # fmt: skip
    _fails(argv, capsys, tmp_path / "run", "--forgetting-data", "id_test / ood_test")
