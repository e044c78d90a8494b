"""GFN2-xTB labels: forces are -dE/dR, units are eV, eV/A and Debye, the gap counts electrons."""

from __future__ import annotations

import numpy as np
import pytest
from ase import units as ase_units
from ase.build import molecule

from atomcollapse.forcefield.xtb import homo_lumo_gap, label_structure, xtb_hessian
from atomcollapse.units import convert

pytest.importorskip("tblite")

HARTREE_EV = 27.211386245988
BOHR_A = 0.529177210903
EBOHR_DEBYE = 2.541746473


def _rattled(formula: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    a = molecule(formula)
    return a.numbers, a.positions + np.random.default_rng(seed).normal(scale=0.05, size=(len(a), 3))


@pytest.mark.parametrize("formula", ["H2O", "NH3"])
def test_forces_equal_finite_differences_of_the_energy(formula):
    z, x = _rattled(formula)
    forces = label_structure(z, x).forces
    h = 1e-3
    for atom, axis in [(0, 0), (1, 2), (len(z) - 1, 1)]:
        plus, minus = x.copy(), x.copy()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        fd = -(label_structure(z, plus).energy - label_structure(z, minus).energy) / (2 * h)
        assert forces[atom, axis] == pytest.approx(fd, abs=2e-3)
    assert np.abs(forces).max() > 0.1  # a rattled molecule has real forces, so the check bites


def test_labels_are_tblite_atomic_units_converted():
    import tblite.interface as ti

    z, x = _rattled("H2O", seed=1)
    calc = ti.Calculator("GFN2-xTB", z, x / BOHR_A)
    calc.set("verbosity", 0)
    res = calc.singlepoint()
    eps, occ = res.get("orbital-energies"), res.get("orbital-occupations")
    lab = label_structure(z, x)
    assert lab.energy == pytest.approx(res.get("energy") * HARTREE_EV, rel=1e-12)
    assert lab.forces == pytest.approx(-res.get("gradient") * HARTREE_EV / BOHR_A, rel=1e-10)
    assert lab.gap == pytest.approx((eps[4] - eps[3]) * HARTREE_EV, rel=1e-10)  # 8 valence e-
    assert occ[:4].sum() == pytest.approx(8.0, abs=1e-6)
    assert lab.dipole == pytest.approx(np.linalg.norm(res.get("dipole")) * EBOHR_DEBYE, rel=1e-10)
    assert convert(1.0, "e*a0", "D") == pytest.approx(EBOHR_DEBYE)


def test_labels_agree_with_tblites_own_ase_calculator():
    tase = pytest.importorskip("tblite.ase")
    a = molecule("NH3")
    a.positions += np.random.default_rng(2).normal(scale=0.03, size=a.positions.shape)
    a.calc = tase.TBLite(method="GFN2-xTB", verbosity=0)
    lab = label_structure(a.numbers, a.positions)
    # ASE uses CODATA 2014 constants, the project CODATA 2018: they agree to ~1e-8.
    assert lab.energy == pytest.approx(a.get_potential_energy(), rel=1e-7)
    assert lab.forces == pytest.approx(a.get_forces(), rel=1e-6, abs=1e-8)
    # ASE's dipole is in e*A (ase.units.Debye = 0.2082 e*A).
    debye = np.linalg.norm(a.get_dipole_moment()) / ase_units.Debye
    assert lab.dipole == pytest.approx(debye, rel=1e-6)


def test_gap_counts_electrons_through_smearing_and_spin():
    eps = np.array([-0.6, -0.5, -0.30, -0.29, 0.1])
    # restricted, 6 electrons smeared over two near-degenerate orbitals: HOMO is orbital 2
    assert homo_lumo_gap(eps, np.array([2.0, 2.0, 1.2, 0.8, 0.0])) == pytest.approx(0.01)
    # spin-polarised: alpha has 3 electrons, beta 2
    eps2 = np.array([[-0.6, -0.5, -0.4, 0.1], [-0.6, -0.5, -0.2, 0.2]])
    occ2 = np.array([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    assert homo_lumo_gap(eps2, occ2) == pytest.approx(-0.2 - (-0.4))
    assert np.isnan(homo_lumo_gap(np.array([-0.5]), np.array([2.0])))


def test_odd_electron_molecule_is_labelled_as_a_doublet():
    a = molecule("CH3")
    lab = label_structure(a.numbers, a.positions)
    assert np.isfinite(lab.energy) and lab.gap > 0


def test_hessian_is_symmetric_and_matches_force_differences():
    z, x = _rattled("H2O", seed=3)
    hess = xtb_hessian(z, x)
    assert np.allclose(hess, hess.T)
    step = 1e-3
    plus = x.copy()
    plus[1, 0] += step
    df = (label_structure(z, plus).forces - label_structure(z, x).forces).ravel() / step
    assert hess[3] == pytest.approx(-df, abs=0.05 * np.abs(df).max())
