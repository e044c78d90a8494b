"""A tiny molecule store (H2O, CH4, NH3, and NH3 again under another id) for the xTB tests."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import molecule

from atomcollapse.data.schema import pack
from atomcollapse.data.store import open_store, write_store

MOLECULES = [
    ("w1", "H2O", "O", "InChI=1S/H2O/h1H2"),
    ("m1", "CH4", "C", "InChI=1S/CH4/h1H4"),
    ("a1", "NH3", "N", "InChI=1S/H3N/h1H3"),
]


def tiny_molecules(extra_ammonia: bool = False):
    rows = MOLECULES + ([("a2", "NH3", "N", "InChI=1S/H3N/h1H3")] if extra_ammonia else [])
    atoms = [molecule(formula) for _, formula, _, _ in rows]
    if extra_ammonia:
        atoms[-1].positions = atoms[-1].positions[[0, 2, 1, 3]]
        atoms[-1].numbers = atoms[-1].numbers[[0, 2, 1, 3]]
    s = pack([a.numbers for a in atoms], [a.positions for a in atoms], ids=[r[0] for r in rows])
    s.columns["smiles"] = np.array([r[2] for r in rows])
    s.columns["inchi"] = np.array([r[3] for r in rows])
    s.targets["y"] = np.arange(len(rows), dtype=float)
    s.target_units["y"] = "eV"
    return s


@pytest.fixture(autouse=True)
def _one_openmp_thread():
    """tblite's OpenMP threads only contend on a small shared machine; the job uses one too."""
    pytest.importorskip("tblite")
    import tblite.interface  # noqa: F401  (load libgomp so that the limit reaches it)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


@pytest.fixture
def data_root(tmp_path):
    """A data root holding the store ``tiny`` (3 molecules) and ``tiny4`` (plus a2 = NH3 again)."""
    for name, extra in (("tiny", False), ("tiny4", True)):
        write_store(
            tiny_molecules(extra),
            tmp_path / "stores" / name,
            name=name,
            kind="molecules",
            source={"format": "test"},
        )
    return tmp_path


@pytest.fixture
def tiny(data_root):
    return open_store("tiny", data_root)
