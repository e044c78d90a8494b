"""QM9 ingestion: three source formats give one identical store; bad input is one clear error."""

from __future__ import annotations

import hashlib
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from rdkit import Chem

from atomcollapse.cli import main
from atomcollapse.constants import QM9_TARGETS, QM9_XYZ_ORDER
from atomcollapse.data.sources import qm9 as qm9_module
from atomcollapse.data.sources.qm9 import load_qm9, read_uncharacterized
from atomcollapse.data.store import open_store
from atomcollapse.errors import InputError

from . import qm9_fixtures as fx

IDS = ["dsgdb9nsd_000001", "dsgdb9nsd_000003", "dsgdb9nsd_000004", "dsgdb9nsd_000005"]


@pytest.fixture
def sources(tmp_path):
    """The same four molecules in every format a user may bring."""
    return {
        "tarball": fx.write_tarball(tmp_path / "dsgdb9nsd.xyz.tar.bz2"),
        "folder": fx.write_xyz_folder(tmp_path / "xyz"),
        "csv": fx.write_qm9pack_csv(tmp_path / "qm9pack" / "qm9_part1.csv"),
        "sdf": fx.write_pyg_raw(tmp_path / "pyg"),
    }


def _ingest(tmp_path, *args: str, name: str = "qm9") -> int:
    return main(["--data-root", str(tmp_path / "root"), "ingest", "qm9", "--name", name, *args])


def test_all_formats_give_the_same_molecules(sources):
    loaded = {k: load_qm9(p).structures for k, p in sources.items()}
    ref = loaded["tarball"]
    assert list(ref.ids) == IDS
    assert ref.numbers.tolist() == [6, 1, 1, 1, 1, 8, 1, 1, 6, 6, 1, 1, 6, 7, 1]
    for kind, s in loaded.items():
        assert list(s.ids) == IDS, kind
        np.testing.assert_array_equal(s.numbers, ref.numbers)
        np.testing.assert_array_equal(s.offsets, ref.offsets)
        tol = 5.01e-5 if kind == "sdf" else 0.0  # the SDF rounds positions to 4 decimals
        np.testing.assert_allclose(s.positions, ref.positions, rtol=0, atol=tol)
        assert list(s.targets) == list(QM9_XYZ_ORDER)
        for t in QM9_XYZ_ORDER:
            np.testing.assert_array_equal(s.targets[t], ref.targets[t], err_msg=f"{kind} {t}")
        assert s.target_units == {t: QM9_TARGETS[t].unit for t in QM9_XYZ_ORDER}
        assert sorted(s.columns) == ["inchi", "smiles"]
    for kind in ("folder", "csv"):
        for col in ("smiles", "inchi"):
            assert list(loaded[kind].columns[col]) == list(ref.columns[col])
    canon = [Chem.CanonSmiles(s) for s in ref.columns["smiles"]]
    assert [Chem.CanonSmiles(s) for s in loaded["sdf"].columns["smiles"]] == canon


def test_known_values_and_mathematica_exponents(sources):
    s = load_qm9(sources["tarball"]).structures
    assert s.targets["gap"][0] == pytest.approx(0.5048)  # methane, Hartree
    assert s.targets["u0"][0] == pytest.approx(-40.47893)
    assert s.targets["alpha"][1] == pytest.approx(6.31)
    water_h1 = s.positions[s.offsets[1] + 1]
    assert water_h1[2] == pytest.approx(1.5346341e-3, abs=0)  # written "1.5346341*^-3"
    np.testing.assert_array_equal(s.positions[s.offsets[2]], [0.5995394918, 0.0, 1.0])


def test_store_manifest_through_cli(sources, tmp_path, capsys):
    assert _ingest(tmp_path, "--source", str(sources["tarball"])) == 0
    store = open_store("qm9", tmp_path / "root")
    m = store.manifest
    assert m["kind"] == "molecules" and m["n_structures"] == 4
    src = m["source"]
    assert src["format"] == "qm9-xyz" and src["n_read"] == 4
    assert src["n_dropped_uncharacterized"] == 0
    digest = hashlib.sha256(sources["tarball"].read_bytes()).hexdigest()
    assert src["files"] == [{"name": "dsgdb9nsd.xyz.tar.bz2", "sha256": digest}]
    assert "Hartree" in src["note"] and "130,831" in src["note"] and "133,885" in src["note"]
    gap = m["targets"]["gap"]
    assert gap["unit"] == "Ha" and gap["report_unit"] == "meV" and gap["readout"] == "mean"
    assert m["targets"]["zpve"]["readout"] == "sum" and m["targets"]["zpve"]["benchmark"]
    assert str(tmp_path) not in json.dumps(m)
    assert store.table()["smiles"].tolist() == ["C", "O", "C#C", "C#N"]
    assert main(["--data-root", str(tmp_path / "root"), "datasets", "show", "qm9"]) == 0
    out = capsys.readouterr().out
    assert "gap" in out and "meV" in out and "dsgdb9nsd.xyz.tar.bz2" in out


def test_stores_from_tarball_and_csv_have_the_same_content(sources, tmp_path):
    assert _ingest(tmp_path, "--source", str(sources["tarball"]), name="a") == 0
    assert _ingest(tmp_path, "--source", str(sources["csv"].parent), name="b") == 0
    a, b = (open_store(n, tmp_path / "root") for n in "ab")
    assert a.content_hash == b.content_hash


def test_uncharacterized_list_drops_molecules(sources, tmp_path):
    listed = fx.write_uncharacterized(tmp_path / "uncharacterized.txt", [3, 21725])
    assert read_uncharacterized(listed) == [3, 21725]
    for kind in ("tarball", "csv"):
        ing = load_qm9(sources[kind], uncharacterized=listed)
        assert list(ing.structures.ids) == [IDS[0], *IDS[2:]], kind
        assert ing.source["n_read"] == 4 and ing.source["n_dropped_uncharacterized"] == 1
        assert ing.source["uncharacterized"]["n_listed"] == 2
        assert ing.extra["dropped_uncharacterized"] == ["dsgdb9nsd_000003"]
    fx.write_uncharacterized(sources["sdf"].parent / "uncharacterized.txt", [4])
    ing = load_qm9(sources["sdf"])  # PyG's raw folder: the list beside the SDF is used
    assert list(ing.structures.ids) == [*IDS[:2], IDS[3]]
    assert ing.source["uncharacterized"]["name"] == "uncharacterized.txt"


def test_tar_members_in_any_order_and_other_compressions(tmp_path):
    texts = dict(reversed(list(fx.xyz_texts().items())))
    s = load_qm9(fx.write_tarball(tmp_path / "q.tar.gz", texts, mode="w:gz")).structures
    assert list(s.ids) == IDS
    assert s.numbers[s.offsets[3] : s.offsets[4]].tolist() == [6, 7, 1]


def test_default_needs_qm9pack(monkeypatch):
    monkeypatch.setattr("atomcollapse.data.sources.qm9_csv.qm9pack_dir", lambda: None)
    with pytest.raises(InputError) as e:
        load_qm9()
    msg = str(e.value)
    assert "pip install qm9pack" in msg and "--source dsgdb9nsd.xyz.tar.bz2" in msg
    assert "--download" in msg


def test_default_reads_the_package_folder(monkeypatch, sources):
    monkeypatch.setattr("atomcollapse.data.sources.qm9_csv.qm9pack_dir",
                        lambda: sources["csv"].parent)  # fmt: skip
    ing = load_qm9()
    assert ing.source["format"] == "qm9pack-csv" and list(ing.structures.ids) == IDS
    assert ing.source["package"]["name"] == "qm9pack"


def test_download_offline_is_one_line(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert _ingest(tmp_path, "--download") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--source" in err and "figshare" in err
    assert not (tmp_path / "root" / "stores").exists()


def test_download_uses_tarball_and_list(tmp_path, monkeypatch, sources):
    listed = fx.write_uncharacterized(tmp_path / "list.txt", [3, *range(10, 10 + 3053)])

    def fake_fetch(url, dest, *, checksum, offline_hint, **kw):
        src = sources["tarball"] if url == qm9_module.TARBALL_URL else listed
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(src.read_bytes())
        return dest

    monkeypatch.setattr(qm9_module, "fetch", fake_fetch)
    ing = load_qm9(download=True, data_root=tmp_path / "root")
    assert (tmp_path / "root" / "raw" / "qm9" / "dsgdb9nsd.xyz.tar.bz2").is_file()
    assert list(ing.structures.ids) == [IDS[0], *IDS[2:]]
    assert ing.source["download"]["url"].endswith("3195389")


# ---- bad input: one line naming the file, exit code 2, nothing written ----


def _assert_rejected(tmp_path, capsys, source, *needles: str, extra: tuple[str, ...] = ()):
    assert _ingest(tmp_path, "--source", str(source), *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    assert not (tmp_path / "root" / "stores").exists()


def test_truncated_tarball(tmp_path, capsys, sources):
    bad = tmp_path / "cut" / "dsgdb9nsd.xyz.tar.bz2"
    bad.parent.mkdir()
    data = sources["tarball"].read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    _assert_rejected(tmp_path, capsys, bad, "dsgdb9nsd.xyz.tar.bz2", "truncated")


def test_atom_count_mismatch(tmp_path, capsys):
    texts = fx.xyz_texts()
    name = fx.xyz_name(3)
    texts[name] = texts[name].replace("3\n", "4\n", 1)
    tar = fx.write_tarball(tmp_path / "q.tar.bz2", texts)
    _assert_rejected(tmp_path, capsys, tar, name, "dsgdb9nsd_000003", "atom count")


def test_unknown_element(tmp_path, capsys):
    texts = fx.xyz_texts()
    texts[fx.xyz_name(5)] = texts[fx.xyz_name(5)].replace("\nN\t", "\nXq\t")
    folder = fx.write_xyz_folder(tmp_path / "xyz", texts)
    _assert_rejected(tmp_path, capsys, folder, fx.xyz_name(5), "unknown element symbol 'Xq'")


def test_duplicate_index(tmp_path, capsys):
    texts = fx.xyz_texts()
    texts["copy.xyz"] = texts[fx.xyz_name(4)]
    tar = fx.write_tarball(tmp_path / "q.tar.bz2", texts)
    _assert_rejected(tmp_path, capsys, tar, "dsgdb9nsd_000004", "twice")


def test_bad_csv_coordinates(tmp_path, capsys):
    rows = fx.qm9pack_rows()
    rows[2]["XYZ_Ang"] = rows[2]["XYZ_Ang"].replace("0.5995394918", "0.59x5")
    csv = fx.write_qm9pack_csv(tmp_path / "qm9_part1.csv", rows)
    _assert_rejected(tmp_path, capsys, csv, "qm9_part1.csv", "dsgdb9nsd_000004", "XYZ_Ang")


def test_csv_coordinate_count(tmp_path, capsys):
    rows = fx.qm9pack_rows()
    rows[1]["N_atoms"] = 4
    rows[1]["Elements"] = "['O','H','H','H']"
    csv = fx.write_qm9pack_csv(tmp_path / "qm9_part1.csv", rows)
    _assert_rejected(tmp_path, capsys, csv, "qm9_part1.csv", "dsgdb9nsd_000003", "N_atoms is 4")


def test_nan_target(tmp_path, capsys):
    rows = fx.qm9pack_rows()
    rows[0]["HOMO_LUMO_gap_au"] = float("nan")
    csv = fx.write_qm9pack_csv(tmp_path / "qm9_part1.csv", rows)
    _assert_rejected(tmp_path, capsys, csv, "qm9_part1.csv", "dsgdb9nsd_000001", "'gap' is nan")


def test_nan_target_in_xyz(tmp_path, capsys):
    texts = fx.xyz_texts()
    texts[fx.xyz_name(4)] = texts[fx.xyz_name(4)].replace("0.3351", "NaN")
    tar = fx.write_tarball(tmp_path / "q.tar.bz2", texts)
    _assert_rejected(tmp_path, capsys, tar, "q.tar.bz2", "dsgdb9nsd_000004", "'gap' is nan")


def test_missing_file(tmp_path, capsys):
    _assert_rejected(tmp_path, capsys, tmp_path / "nope.tar.bz2", "nope.tar.bz2", "not found")


def test_sdf_without_its_csv(tmp_path, capsys):
    sdf = fx.write_pyg_raw(tmp_path / "pyg", csv=False)
    _assert_rejected(tmp_path, capsys, sdf, "gdb9.sdf", "gdb9.sdf.csv not found")


def test_missing_uncharacterized_list(tmp_path, capsys, sources):
    extra = ("--uncharacterized", str(tmp_path / "missing.txt"))
    _assert_rejected(tmp_path, capsys, sources["tarball"], "missing.txt", "not found", extra=extra)


def test_unrecognised_and_wrong_csv(tmp_path, capsys, sources):
    _assert_rejected(tmp_path, capsys, sources["sdf"].with_suffix(".sdf.csv"), "gdb9.sdf")
    odd = tmp_path / "data.json"
    odd.write_text("{}")
    _assert_rejected(tmp_path, capsys, odd, "data.json", "unrecognised")


def test_uncharacterized_without_rows(tmp_path):
    empty = fx.write_uncharacterized(tmp_path / "u.txt", [])
    with pytest.raises(InputError, match="lists no molecule indices"):
        read_uncharacterized(empty)
