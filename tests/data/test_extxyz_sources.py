"""extxyz force-field ingestion (energy/forces/stress, units, ids) and the MatterSim fetcher."""

from __future__ import annotations

import io
import subprocess
import tarfile

import numpy as np
import pytest
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from atomcollapse.artifacts import sha256_file
from atomcollapse.cli import main
from atomcollapse.data.sources import mattersim
from atomcollapse.data.sources.extxyz import load_extxyz
from atomcollapse.data.store import open_store
from atomcollapse.errors import InputError
from atomcollapse.units import EV_A3_GPA

VOIGT = np.array([0.01, 0.02, 0.03, -0.004, 0.005, -0.006])  # eV/A^3: xx yy zz yz xz xy
STRESS_3X3 = np.array([[0.01, -0.006, 0.005], [-0.006, 0.02, -0.004], [0.005, -0.004, 0.03]])


def _with_calc(atoms: Atoms, energy, forces, stress=None) -> Atoms:
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces, stress=stress)
    return atoms


def frames(rng=None) -> list[Atoms]:
    rng = rng or np.random.default_rng(0)
    cell = [[4.0, 0.0, 0.0], [1.1, 5.0, 0.0], [-0.7, 0.9, 6.0]]
    crystal = Atoms("Fe2O3", positions=rng.random((5, 3)) * 3, cell=cell, pbc=True)
    crystal.info["config_type"] = "bulk"
    molecule = Atoms("CH4", positions=[[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63],
                                       [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]])  # fmt: skip
    molecule.info["config_type"] = "molecule"
    return [
        _with_calc(crystal, -42.5, rng.normal(size=(5, 3)), VOIGT),
        _with_calc(molecule, -24.0, rng.normal(size=(5, 3)), VOIGT * 2),
    ]


@pytest.fixture
def xyz(tmp_path):
    path = tmp_path / "tiny.xyz"
    write(path, frames(), format="extxyz")
    return path


def test_values_units_and_ids(xyz):
    ref = frames()
    ing = load_extxyz([xyz])
    s = ing.structures
    assert ing.kind == "forcefield"
    assert list(s.ids) == ["tiny-0", "tiny-1"]
    np.testing.assert_allclose(s.targets["energy"], [-42.5, -24.0])
    np.testing.assert_allclose(s.targets["energy_per_atom"], [-8.5, -4.8])
    assert s.target_units == {"energy": "eV", "energy_per_atom": "eV/atom"}
    np.testing.assert_allclose(
        s.atom_arrays["forces"], np.concatenate([a.get_forces() for a in ref])
    )
    np.testing.assert_allclose(s.positions, np.concatenate([a.positions for a in ref]))
    np.testing.assert_allclose(s.cell[0], ref[0].cell.array)
    np.testing.assert_array_equal(s.cell[1], np.zeros((3, 3)))
    np.testing.assert_array_equal(s.pbc, [[True] * 3, [False] * 3])
    assert s.array_units == {"forces": "eV/A", "stress": "GPa"}
    np.testing.assert_allclose(s.structure_arrays["stress"][0], STRESS_3X3 * EV_A3_GPA)
    np.testing.assert_allclose(s.structure_arrays["stress"][1], 2 * STRESS_3X3 * 160.21766208)
    assert list(s.columns["formula"]) == ["Fe2O3", "H4C"]  # pymatgen: electronegativity order
    assert list(s.columns["config_type"]) == ["bulk", "molecule"]
    assert list(s.columns["source_file"]) == ["tiny.xyz"] * 2
    assert ing.source["files"][0] == {"name": "tiny.xyz", "sha256": sha256_file(xyz)}


def test_stress_kept_only_when_every_frame_has_one(tmp_path):
    fr = frames()
    fr[1] = _with_calc(fr[1].copy(), -24.0, np.zeros((5, 3)))
    a, b = tmp_path / "a.xyz", tmp_path / "b.xyz"
    write(a, fr[:1], format="extxyz")
    write(b, fr[1:] * 11, format="extxyz")
    ing = load_extxyz([a, b])
    assert "stress" not in ing.structures.structure_arrays
    assert ing.extra["frames_with_stress"] == 1
    assert ing.extra["frames_per_file"] == {"a.xyz": 1, "b.xyz": 11}
    ids = list(ing.structures.ids)
    assert ids[:3] == ["a-0", "b-00", "b-01"] and ids[-1] == "b-10"


def test_custom_keys(tmp_path):
    path = tmp_path / "custom.xyz"
    atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]])
    atoms.info["dft_energy"] = -31.5
    atoms.arrays["dft_forces"] = np.array([[0, 0, -1.5], [0, 0, 1.5]])
    write(path, [atoms], format="extxyz")
    with pytest.raises(InputError, match="no energy") as e:
        load_extxyz([path])
    assert e.value.file == "custom.xyz" and e.value.record == "frame 0"
    ing = load_extxyz([path], energy_key="dft_energy", forces_key="dft_forces")
    assert ing.structures.targets["energy"].tolist() == [-31.5]
    assert ing.structures.atom_arrays["forces"][1].tolist() == [0, 0, 1.5]
    assert "config_type" not in ing.structures.columns and ing.source["energy_key"] == "dft_energy"


def test_cli_store(xyz, tmp_path):
    root = tmp_path / "root"
    assert main(["--data-root", str(root), "ingest", "extxyz", str(xyz), "--name", "ff"]) == 0
    store = open_store("ff", root)
    assert store.kind == "forcefield" and len(store) == 2
    assert store.manifest["atom_arrays"] == {"forces": {"unit": "eV/A"}}
    assert store.manifest["structure_arrays"] == {"stress": {"unit": "GPa"}}
    assert store.target_unit("energy_per_atom") == "eV/atom"


def _bad_file(tmp_path, kind: str):
    path = tmp_path / f"{kind}.xyz"
    fr = frames()
    if kind == "noforces":
        fr[1] = fr[1].copy()
        fr[1].calc = SinglePointCalculator(fr[1], energy=-1.0)
        write(path, fr, format="extxyz")
    elif kind == "nan":
        fr[1].calc.results["energy"] = float("nan")
        write(path, fr, format="extxyz")
    elif kind == "corrupt":
        write(path, fr, format="extxyz")
        lines = path.read_text().splitlines()
        path.write_text("\n".join([*lines[:4], "Fe 1.0 abc", *lines[5:]]) + "\n")
    elif kind == "empty":
        path.write_text("")
    return path


@pytest.mark.parametrize(
    ("kind", "message", "record"),
    [
        ("noforces", "no forces", "frame 1"),
        ("nan", "energy is nan", "frame 1"),
        ("corrupt", "cannot read with ASE", None),
        ("empty", "no frames", None),
        ("missing", "file not found", None),
    ],
)
def test_bad_input_through_cli(tmp_path, capsys, kind, message, record):
    path = _bad_file(tmp_path, kind)
    root = tmp_path / "root"
    rc = main(["--data-root", str(root), "ingest", "extxyz", str(path), "--name", "bad"])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert f"{kind}.xyz" in err and message in err
    if record:
        assert f": {record}: " in err
    assert not (root / "stores").exists()


def test_same_stem_twice_is_refused(xyz, tmp_path):
    other = tmp_path / "sub"
    other.mkdir()
    (other / "tiny.xyz").write_bytes(xyz.read_bytes())
    with pytest.raises(InputError, match="share this name"):
        load_extxyz([xyz, other / "tiny.xyz"])


# ---- MatterSim fetcher (no network: pip download is replaced by a tiny archive) ----


def _archive(path, members: dict[str, bytes], links=()) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in links:
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)


def _fake_pip(monkeypatch, members, links=()):
    def fake(dest, timeout):
        p = dest / f"mattersim-{mattersim.VERSION}.tar.gz"
        _archive(p, members, links)
        monkeypatch.setattr(mattersim, "SDIST_SHA256", sha256_file(p))
        return p

    monkeypatch.setattr(mattersim, "_pip_download", fake)


def _xyz_text(tmp_path) -> bytes:
    path = tmp_path / "src.xyz"
    write(path, frames() * 2, format="extxyz")
    return path.read_bytes()


def test_mattersim_extracts_only_benchmark_xyz(tmp_path, monkeypatch, capsys):
    data = _xyz_text(tmp_path)
    root = "mattersim-1.2.3"
    _fake_pip(monkeypatch, {
        f"{root}/data/benchmarks/set-a.xyz": data,
        f"{root}/data/benchmarks/README.md": b"x",
        f"{root}/tests/data/water.xyz": data,
        f"{root}/setup.py": b"",
    })  # fmt: skip
    out = tmp_path / "out"
    assert mattersim.main(["--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["mattersim_source.json", "set-a.xyz"]
    assert "set-a.xyz  4 frames" in capsys.readouterr().out
    assert load_extxyz([out / "set-a.xyz"]).structures.ids.tolist()[-1] == "set-a-3"
    monkeypatch.setattr(mattersim, "_pip_download", lambda *a: pytest.fail("downloaded again"))
    assert mattersim.fetch_mattersim(out)[0].frames == 4


def test_mattersim_refuses_unsafe_members(tmp_path, monkeypatch):
    root = "mattersim-1.2.3"
    _fake_pip(monkeypatch, {f"{root}/data/benchmarks/ok.xyz": _xyz_text(tmp_path)},
              links=[f"{root}/data/benchmarks/evil.xyz"])  # fmt: skip
    with pytest.raises(InputError, match="unsafe archive member"):
        mattersim.fetch_mattersim(tmp_path / "out")
    assert not (tmp_path / "out" / "ok.xyz").exists()


def test_mattersim_offline_is_one_line(tmp_path, monkeypatch, capsys):
    def offline(cmd, **kwargs):
        assert "--no-deps" in cmd and f"mattersim=={mattersim.VERSION}" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: Could not find a version\n")

    monkeypatch.setattr(subprocess, "run", offline)
    assert mattersim.main(["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "offline?" in err and "mattersim==1.2.3" in err
    assert not (tmp_path / "out").exists()
