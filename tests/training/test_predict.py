"""``predict`` and the ASE calculator reproduce what ``train`` evaluates, from stores and files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from atomcollapse.cli import main
from atomcollapse.data.store import open_store
from tests.training.synthetic import write_molecule_store


@pytest.fixture(scope="module")
def mft_run(env, tmp_path_factory):
    out = tmp_path_factory.mktemp("predict") / "mft"
    assert main(env.train_args(out, "mft", "--steps", "6")) == 0
    return out


def _atoms(store, k):
    from ase import Atoms

    s = store.structure(k)
    return Atoms(numbers=s.numbers, positions=s.positions)


def test_predict_equals_the_runs_own_test_predictions(env, mft_run, tmp_path, capsys):
    out = tmp_path / "p.csv"
    argv = ["predict", str(mft_run), "--data", str(env.mols), "--split", str(env.split),
            "--partition", "id_test", "--out", str(out), "--forces"]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    got = pd.read_csv(out)
    ref = pd.read_csv(mft_run / "predictions.csv")
    ref = ref[ref.partition == "id_test"].reset_index(drop=True)
    assert list(got.id) == list(ref.id) and set(got.partition) == {"id_test"}
    np.testing.assert_allclose(got.prediction, ref.prediction, rtol=1e-6)
    np.testing.assert_allclose(got.reference, ref.reference)
    assert set(got.unit) == {"Ha"} and np.isfinite(got.energy_eV).all()
    forces = pd.read_csv(tmp_path / "p.forces.csv")
    assert len(forces) == got.n_atoms.sum()
    assert main(argv) == 2  # exists: refused without --overwrite


def test_files_and_the_ase_calculator_agree_with_the_store(env, mft_run, tmp_path, capsys):
    import ase.io

    from atomcollapse.calculator import AtomCollapseCalculator

    store = open_store(env.mols)
    frames = [_atoms(store, k) for k in range(6)]
    xyz = tmp_path / "mols.extxyz"
    ase.io.write(xyz, frames)
    on_store, on_file = tmp_path / "a.csv", tmp_path / "b.csv"
    assert main(["predict", str(mft_run), "--data", str(env.mols), "--out", str(on_store),
                 "--forces"]) == 0  # fmt: skip
    assert main(["predict", str(mft_run), "--data", str(xyz), "--out", str(on_file)]) == 0
    a, b = pd.read_csv(on_store).head(6), pd.read_csv(on_file)
    assert list(b.id) == [f"mols.extxyz:{k}" for k in range(6)]
    np.testing.assert_allclose(b.prediction, a.prediction, rtol=1e-5)
    np.testing.assert_allclose(b.energy_eV, a.energy_eV, rtol=1e-5)
    calc = AtomCollapseCalculator.from_run(mft_run)
    forces = pd.read_csv(tmp_path / "a.forces.csv")
    for k, atoms in enumerate(frames):
        atoms.calc = calc
        assert atoms.get_potential_energy() == pytest.approx(a.energy_eV[k], rel=1e-5)
        assert calc.get_property("property", atoms) == pytest.approx(a.prediction[k], rel=1e-5)
        mine = forces[forces.id == a.id[k]][["fx_eV_per_A", "fy_eV_per_A", "fz_eV_per_A"]]
        np.testing.assert_allclose(atoms.get_forces(), mine.to_numpy(), atol=2e-5)
    assert calc.unit == "Ha" and calc.target == "gap"


def test_stress_is_the_strain_derivative_of_the_energy(env):
    from ase.build import bulk
    from ase.calculators.fd import calculate_numerical_stress

    from atomcollapse.calculator import AtomCollapseCalculator

    calc = AtomCollapseCalculator.from_run(env.ckpt)  # the pretrained force field
    atoms = bulk("C", "diamond", a=3.57)
    atoms.rattle(0.05, seed=1)
    atoms.calc = calc
    stress = atoms.get_stress()
    numeric = calculate_numerical_stress(atoms, eps=1e-5)
    assert np.abs(stress).max() > 1e-4
    np.testing.assert_allclose(stress, numeric, atol=1e-6)


@pytest.mark.parametrize("case", ["no-best", "elements", "unreadable", "split-alone"])
def test_bad_predict_input_is_one_line(env, mft_run, tmp_path, capsys, case):
    run, data, extra = str(mft_run), [str(env.mols)], []
    if case == "no-best":
        (tmp_path / "empty-run").mkdir()
        run = str(tmp_path / "empty-run")
    elif case == "elements":
        data = [str(write_molecule_store(tmp_path / "f", n=12, seed=4, elements=(1, 6, 9)))]
    elif case == "unreadable":
        bad = tmp_path / "bad.xyz"
        bad.write_text("3\nnot a frame\nX 0 0\n")
        data = [str(bad)]
    else:
        extra = ["--split", str(env.split)]
    out = tmp_path / "p.csv"
    capsys.readouterr()
    argv = ["predict", run, *(x for d in data for x in ("--data", d)), "--out", str(out), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not out.exists()
