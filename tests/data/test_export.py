"""``datasets export``: a store as extxyz that ASE and ``ingest extxyz`` read back unchanged."""

from __future__ import annotations

import ase.io
import numpy as np
import pytest
from ase.io import write

from atomcollapse.cli import main
from atomcollapse.data.store import open_store
from tests.data.test_extxyz_sources import frames
from tests.training.synthetic import write_molecule_store


def _ingest(files, name, root, capsys) -> object:
    rc = main(["--data-root", str(root), "ingest", "extxyz", *map(str, files), "--name", name])
    assert rc == 0, capsys.readouterr().err
    return open_store(name, root)


def test_round_trip_through_ingest_extxyz(tmp_path, capsys):
    src = tmp_path / "in.xyz"
    many = frames() + frames(np.random.default_rng(5))
    write(src, many, format="extxyz")
    first = _ingest([src], "first", tmp_path, capsys)
    out = tmp_path / "first.extxyz"
    argv = ["--data-root", str(tmp_path), "datasets", "export", "first", "--format", "extxyz",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0, capsys.readouterr().err
    again = _ingest([out], "again", tmp_path, capsys)
    assert len(again) == len(first) == 4
    np.testing.assert_array_equal(again.numbers, first.numbers)
    np.testing.assert_array_equal(again.offsets, first.offsets)
    np.testing.assert_allclose(again.positions, first.positions, atol=1e-8)
    np.testing.assert_array_equal(again.cell, first.cell)
    np.testing.assert_array_equal(again.pbc, first.pbc)
    assert again.pbc[0].all() and not again.pbc[1].any()
    np.testing.assert_array_equal(again.target("energy"), first.target("energy"))
    np.testing.assert_allclose(again.atom_array("forces"), first.atom_array("forces"), atol=1e-8)
    np.testing.assert_allclose(
        again.structure_array("stress"), first.structure_array("stress"), rtol=1e-12
    )
    back = ase.io.read(out, index=":")
    assert [a.info["id"] for a in back] == list(first.ids)
    assert {a.info["energy_unit"] for a in back} == {"eV"}
    assert {a.info["dataset_hash"] for a in back} == {first.content_hash}
    # refused without --overwrite, the file untouched; replaced with it
    before = out.read_bytes()
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == before
    assert main([*argv, "--overwrite"]) == 0


def test_molecule_targets_units_and_text_columns(tmp_path):
    from atomcollapse.data.export import export_store

    store = open_store(write_molecule_store(tmp_path / "mols", n=7))
    out = export_store(store, tmp_path / "mols.extxyz")
    back = ase.io.read(out, index=":")
    assert [a.info["id"] for a in back] == list(store.ids)
    np.testing.assert_array_equal([a.info["gap"] for a in back], store.target("gap"))
    np.testing.assert_array_equal([a.info["alpha"] for a in back], store.target("alpha"))
    assert {a.info["gap_unit"] for a in back} == {"Ha"}
    assert {a.info["alpha_unit"] for a in back} == {"a0^3"}
    for k, a in enumerate(back):
        s = store.structure(k)
        np.testing.assert_array_equal(a.numbers, s.numbers)
        np.testing.assert_allclose(a.positions, s.positions, atol=1e-8)
        assert not a.pbc.any()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "xyz"], "--format must be one of extxyz, not 'xyz'"),
        (["--format", "extxyz", "--out", "."], "is a directory"),
        (["--format", "extxyz", "NOPE"], "dataset store not found"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    write_molecule_store(tmp_path / "stores" / "mols", n=5)
    out = ["--out", str(tmp_path / "x.extxyz")] if "--out" not in args else []
    name = [] if "NOPE" in args else ["mols"]
    argv = ["--data-root", str(tmp_path), "datasets", "export", *name, *args, *out]
    assert main([a if a != "." else str(tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "x.extxyz").exists()
