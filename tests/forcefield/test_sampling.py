"""Conformer generators: right statistics, atom order kept, seeds independent of everything else."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule

from atomcollapse.errors import InputError
from atomcollapse.forcefield.sampling import (
    SamplingConfig,
    langevin,
    normal_mode_sample,
    normal_modes,
    rattle,
    rdkit_conformer,
    structure_rng,
)
from atomcollapse.forcefield.xtb import xtb_hessian

KB_EV = 8.617333262e-5


def test_rattle_has_the_requested_std_and_seeds_are_per_structure():
    x = np.zeros((2000, 3))
    d = rattle(x, 0.05, structure_rng(7, 3, 1))
    assert d.std() == pytest.approx(0.05, rel=0.03)
    assert np.array_equal(d, rattle(x, 0.05, structure_rng(7, 3, 1)))
    for other in [(8, 3, 1), (7, 4, 1), (7, 3, 2)]:
        assert not np.allclose(d, rattle(x, 0.05, structure_rng(*other)))


def test_methods_alternate_and_bad_settings_are_refused():
    cfg = SamplingConfig(methods=("rattle", "rdkit"), per_molecule=4)
    assert [cfg.method_of(k) for k in range(4)] == ["rattle", "rdkit", "rattle", "rdkit"]
    with pytest.raises(InputError, match="unknown sampling method 'wiggle'"):
        SamplingConfig(methods=("wiggle",))
    with pytest.raises(InputError, match="--scale"):
        SamplingConfig(scale=0.0)
    with pytest.raises(InputError, match="twice"):
        SamplingConfig(methods=("md", "md"))


def test_rdkit_conformer_keeps_atom_order_and_chemistry():
    a = molecule("CH3CH2OH")
    z, x, same = rdkit_conformer(a.numbers, a.positions, "CCO", structure_rng(0, 0, 0))
    assert same and np.array_equal(z, a.numbers)
    assert not np.allclose(x, a.positions, atol=0.05)
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    d0 = np.linalg.norm(a.positions[:, None] - a.positions[None], axis=-1)
    bonded = (d0 < 1.6) & (d0 > 0)
    assert np.abs(d - d0)[bonded].max() < 0.15  # same bonds, lengths close to the parent's
    _, x2, _ = rdkit_conformer(a.numbers, a.positions, "CCO", structure_rng(0, 0, 0))
    assert np.array_equal(x, x2)


def test_rdkit_falls_back_to_smiles_when_the_geometry_is_not_a_molecule():
    z = np.array([6, 1, 1, 1, 1])
    far = np.arange(15, dtype=float).reshape(5, 3) * 3.0  # no bonds can be perceived
    z2, x2, same = rdkit_conformer(z, far, "C", structure_rng(0, 0, 0))
    assert not same and sorted(z2) == sorted(z)
    assert np.linalg.norm(x2[1:] - x2[0], axis=1) == pytest.approx(np.full(4, 1.09), abs=0.05)


def test_normal_mode_samples_have_kt_over_two_per_mode():
    a = molecule("H2O")
    hess = xtb_hessian(a.numbers, a.positions)
    evals, vecs = normal_modes(a.numbers, a.positions, hess)
    assert len(evals) == 3 and (evals > 0).all()
    wavenumbers = np.sqrt(evals / 103.6426965) / (2 * np.pi * 2.99792458e-5)
    assert wavenumbers.min() > 1400 and wavenumbers.max() < 4200  # bend and O-H stretches, cm^-1
    t = 400.0
    rng = np.random.default_rng(0)
    dx = np.stack(
        [
            normal_mode_sample(a.numbers, a.positions, (evals, vecs), t, rng) - a.positions
            for _ in range(4000)
        ]
    ).reshape(4000, -1)
    harmonic = 0.5 * np.einsum("si,ij,sj->s", dx, hess, dx)
    assert harmonic.mean() == pytest.approx(1.5 * KB_EV * t, rel=0.05)
    m = np.array([15.999, 1.008, 1.008])
    com = np.einsum("a,sai->si", m, dx.reshape(4000, 3, 3)) / m.sum()
    assert np.abs(com).max() < 1e-10  # translations projected out


def test_langevin_samples_the_boltzmann_distribution_of_a_harmonic_well():
    n, k, t = 300, 5.0, 600.0
    z = np.ones(n, dtype=np.int64)
    cfg = SamplingConfig(
        methods=("md",), temperature=t, md_steps=400, md_timestep=0.5, md_friction=0.2
    )
    x = langevin(z, np.zeros((n, 3)), lambda _z, pos: -k * pos, cfg, np.random.default_rng(1))
    potential_per_dof = 0.5 * k * (x**2).mean()
    assert potential_per_dof == pytest.approx(0.5 * KB_EV * t, rel=0.1)


STRAINED_CAGE = [  # QM9 dsgdb9nsd_069862, CC12CC1C1OC21C#C, A
    [-0.0318, 1.5541, 0.1382], [0.0175, 0.0583, 0.0534], [-0.9003, -0.893, 0.7683],
    [0.5864, -0.9677, 1.027], [1.3225, -1.6566, -0.1556], [0.3794, -2.076, -1.1422],
    [0.7761, -0.6866, -1.1174], [1.3061, -0.0832, -2.2874], [1.7401, 0.4747, -3.2611],
    [0.9509, 1.9989, -0.0526], [-0.7309, 1.9706, -0.5963], [-0.3602, 1.874, 1.132],
    [-1.4715, -0.4394, 1.5728], [-1.4032, -1.6929, 0.2398], [1.0363, -0.7991, 1.9963],
    [2.2837, -2.156, -0.1338], [2.1282, 0.9543, -4.1254],
]  # fmt: skip


def test_rdkit_drops_3d_stereo_when_a_strained_cage_cannot_be_embedded_with_it():
    from rdkit.Chem import AllChem

    from atomcollapse.forcefield.sampling import _mol_from_geometry

    z = np.array([6, 6, 6, 6, 6, 8, 6, 6, 6] + [1] * 8)
    x = np.array(STRAINED_CAGE)
    with_stereo = _mol_from_geometry(z, x)
    params = AllChem.ETKDGv3()
    params.randomSeed = 5
    assert AllChem.EmbedMolecule(with_stereo, params) == -1  # the case the fallback is for
    z2, x2, same = rdkit_conformer(z, x, "CC12CC1C1OC21C#C", structure_rng(0, 0, 0))
    assert same and np.array_equal(z2, z) and x2.shape == x.shape
    d = np.linalg.norm(x2[:, None] - x2[None], axis=-1)
    d0 = np.linalg.norm(x[:, None] - x[None], axis=-1)
    bonded = (d0 < 1.7) & (d0 > 0)
    assert np.abs(d - d0)[bonded].max() < 0.2
