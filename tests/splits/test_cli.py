"""``atomcollapse split DATASET ...``, ``split show``, ``split verify`` and their bad input."""

from __future__ import annotations

import numpy as np
import pytest

from atomcollapse.cli import main
from atomcollapse.splits import Split, load_split
from tests.splits.conftest import crystal_store, distinct_smiles, molecule_store
from tests.splits.test_scaffold import SMILES


@pytest.fixture
def mols(data_root):
    y = np.random.default_rng(0).normal(size=300)
    return molecule_store(data_root, distinct_smiles(300), {"y": y, "z": -y})


def _run(data_root, *args: str) -> int:
    return main(["--data-root", str(data_root), *args])


def test_make_show_verify(data_root, mols, tmp_path, capsys) -> None:
    out = tmp_path / "splits" / "tail"
    rc = _run(data_root, "split", "mols", "--method", "property-tail", "--target", "y",
              "--n-ood", "30", "--out", str(out))  # fmt: skip
    assert rc == 0
    split = load_split(out)
    assert split.counts()["ood_test"] == 30 and split.target == "y"
    assert "split hash" in capsys.readouterr().out
    assert _run(data_root, "split", "show", str(out)) == 0
    shown = capsys.readouterr().out
    assert "property-tail" in shown and "ood_test" in shown and "two clean tails" in shown
    assert _run(data_root, "split", "verify", str(out)) == 0
    text = capsys.readouterr().out
    assert "KS ood_test vs train" in text and "verified against mols" in text


def test_make_subcommand_and_path_dataset(data_root, mols, tmp_path) -> None:
    out = tmp_path / "r"
    assert _run(data_root, "split", "make", str(mols.path), "-m", "random", "-o", str(out)) == 0
    assert load_split(out).counts()["ood_test"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "property-tail", "--target", "nope"], "no target 'nope'"),
        (["--method", "property-tail", "--target", "y", "--n-ood", "300"], "smaller than"),
        (["--method", "magic"], "unknown method 'magic'"),
        (["--method", "composition", "--label", "C"], "holds molecules"),
        (["--method", "property-tail", "--target", "y", "--bandwidth", "wide"], "bandwidth"),
    ],
)
def test_bad_input_is_one_line_exit_2(data_root, mols, tmp_path, capsys, args, message) -> None:
    out = tmp_path / "bad"
    assert _run(data_root, "split", "mols", *args, "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") <= 3
    assert not out.exists()
    assert not list(tmp_path.glob(".bad*"))


def test_scaffold_without_smiles_and_unknown_dataset(data_root, tmp_path, capsys) -> None:
    molecule_store(data_root, SMILES, with_smiles=False, name="nosmiles")
    assert _run(data_root, "split", "nosmiles", "-m", "scaffold", "-o", str(tmp_path / "s")) == 2
    assert "smiles" in capsys.readouterr().err
    assert _run(data_root, "split", "ghost", "-m", "random", "-o", str(tmp_path / "g")) == 2
    assert "not found" in capsys.readouterr().err


def test_split_used_with_another_dataset(data_root, mols, tmp_path, capsys) -> None:
    crystal_store(data_root, [{"Na": 1, "Cl": 1}] * 3, name="other")
    out = tmp_path / "s"
    assert _run(data_root, "split", "mols", "-m", "random", "-o", str(out)) == 0
    assert _run(data_root, "split", "verify", str(out), "--data", "other") == 2
    assert "split was made for dataset 'mols'" in capsys.readouterr().err


def test_verify_fails_on_a_straddling_group(data_root, tmp_path, capsys) -> None:
    molecule_store(data_root, SMILES, name="scaf")
    out = tmp_path / "s"
    assert _run(data_root, "split", "scaf", "-m", "scaffold", "--n-ood", "3", "-o", str(out)) == 0
    split = load_split(out)
    codes = split.codes.copy()
    codes[split.indices("ood_test")[0]] = 0
    manifest = dict(split.manifest, counts=Split(codes=codes, manifest={}).counts())
    Split(codes=codes, manifest=manifest).save(tmp_path / "bad")
    assert _run(data_root, "split", "verify", str(tmp_path / "bad")) == 2
    err = capsys.readouterr().err
    assert "fails verification" in err and "straddle" in err


def test_existing_output_needs_overwrite(data_root, mols, tmp_path, capsys) -> None:
    out = tmp_path / "s"
    assert _run(data_root, "split", "mols", "-m", "random", "-o", str(out)) == 0
    assert _run(data_root, "split", "mols", "-m", "random", "-o", str(out)) == 2
    assert "already exists" in capsys.readouterr().err
    assert _run(data_root, "split", "mols", "-m", "random", "--seed", "1", "-o", str(out),
                "--overwrite") == 0  # fmt: skip
    assert load_split(out).manifest["parameters"]["seed"] == 1
