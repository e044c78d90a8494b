"""Environment and pair classes of hand-built molecules (exact ASE g2 geometries)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule

from atomcollapse.analysis.collapse import (
    ATOM_CLASSES,
    EDGE_CLASSES,
    atom_class_names,
    coordination_numbers,
    pair_classes,
    sample_environments,
)
from tests.analysis.molecules import mini_store


def classes_of(name: str) -> list[tuple[str, str]]:
    a = molecule(name)
    cn = coordination_numbers(a.numbers, a.positions, np.array([0, len(a)]))
    return list(zip(a.get_chemical_symbols(), atom_class_names(a.numbers, cn), strict=True))


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("CH3CH2OH", ["C4", "C4", "O2"] + ["H"] * 6),
        ("CH3CN", ["C4", "C2", "N1", "H", "H", "H"]),
        ("H2CO", ["O1", "C3", "H", "H"]),
        ("C5H5N", ["N2"] + ["C3"] * 5 + ["H"] * 5),
        ("NH3", ["N3", "H", "H", "H"]),
        ("CF4", ["C4", "F", "F", "F", "F"]),
        ("CH3COOH", ["C3", "O1", "O2", "H", "C4", "H", "H", "H"]),
    ],
)
def test_environment_classes_of_known_molecules(name, expected):
    assert [c for _, c in classes_of(name)] == expected


def test_unlisted_coordination_is_left_out():
    # A lone carbon (CN 0) and an O with three bonded H (hydronium-like) are in no class.
    numbers = np.array([6, 8, 1, 1, 1])
    pos = np.array([[10.0, 0, 0], [0, 0, 0], [0.97, 0, 0], [-0.4, 0.88, 0], [-0.4, -0.44, 0.76]])
    cn = coordination_numbers(numbers, pos, np.array([0, 5]))
    assert cn.tolist() == [0, 3, 1, 1, 1]
    assert atom_class_names(numbers, cn) == ["", "", "H", "H", "H"]


def test_pair_classes_of_ethanol():
    a = molecule("CH3CH2OH")
    i, j, _, lab = pair_classes(a.numbers, a.positions, np.array([0, len(a)]))
    names = sorted(EDGE_CLASSES[k] for k in lab)
    # 5 C-H bonds, one C-O bond, the hydroxyl H about 3.2 A from the methyl C.
    assert names == ["C-H 3-4 A"] + ["C-H bonded"] * 5 + ["C-O bonded"]
    assert set(a.numbers[i]) == {6} and set(a.numbers[j]) <= {1, 8}
    d = np.linalg.norm(a.positions[j] - a.positions[i], axis=1)
    assert np.all(d[lab == EDGE_CLASSES.index("C-H 3-4 A")] >= 3.0)


def test_pair_classes_far_band():
    # A C and an O 5.5 A apart (no other atoms) form one "C-O 5-6 A" pair; 4.5 A forms none.
    for dist, expected in ((5.5, ["C-O 5-6 A"]), (4.5, [])):
        pos = np.array([[0.0, 0, 0], [dist, 0, 0]])
        _, _, _, lab = pair_classes(np.array([6, 8]), pos, np.array([0, 2]))
        assert [EDGE_CLASSES[k] for k in lab] == expected


def test_sample_is_seeded_capped_and_labelled_right(tmp_path):
    store = mini_store(tmp_path / "mini")
    s = sample_environments(store, max_per_class=4, seed=1, chunk=7)
    counts = s.atom_counts()
    assert counts["H"] == 4 and counts["F"] == 4 and counts["N1"] == 4
    assert counts["O1"] == 4 and counts["C2"] == 4 and counts["N3"] == 0
    assert all(v <= 4 for v in s.edge_counts().values())
    for st, loc, lab in zip(s.atom_structure, s.atom_local, s.atom_label, strict=True):
        m = store.structure(int(st))
        cn = coordination_numbers(m.numbers, m.positions, np.array([0, len(m.numbers)]))
        assert atom_class_names(m.numbers, cn)[loc] == ATOM_CLASSES[lab]
    for st, i, j, dist in zip(s.edge_structure, s.edge_i, s.edge_j, s.edge_distance, strict=True):
        m = store.structure(int(st))
        assert m.numbers[i] == 6
        assert np.linalg.norm(m.positions[j] - m.positions[i]) == pytest.approx(dist)
    again = sample_environments(store, max_per_class=4, seed=1, chunk=7)
    np.testing.assert_array_equal(s.atom_structure, again.atom_structure)
    np.testing.assert_array_equal(s.edge_j, again.edge_j)
    other = sample_environments(store, max_per_class=4, seed=2, chunk=7)
    assert not np.array_equal(s.atom_structure, other.atom_structure)


def test_sample_restricted_to_rows(tmp_path):
    store = mini_store(tmp_path / "mini")
    rows = np.array([2, 7])  # two formaldehyde molecules
    s = sample_environments(store, rows, max_per_class=100, seed=0)
    assert set(s.structures.tolist()) == {2, 7}
    assert s.atom_counts()["C3"] == 2 and s.atom_counts()["H"] == 4
