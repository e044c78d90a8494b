"""MatBench ingestion: split-orient JSON with pymatgen Structures, ids, units, folds, bad input."""

from __future__ import annotations

import gzip
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from atomcollapse.cli import main
from atomcollapse.data.sources import matbench as mb
from atomcollapse.data.sources.matbench import load_matbench, matbench_id, target_name
from atomcollapse.data.store import open_store
from atomcollapse.errors import InputError

TASK = "matbench_jdft2d"  # target "exfoliation_en", meV/atom


@pytest.fixture(autouse=True)
def _no_ambient_folds(tmp_path, monkeypatch):
    """Default folds come from an installed matbench or the data root: make both empty."""
    monkeypatch.setattr(mb, "installed_folds_file", lambda: None)
    monkeypatch.setenv("ATOMCOLLAPSE_DATA", str(tmp_path / "ambient"))


FCC = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]


def nacl() -> Structure:
    """Rocksalt NaCl, conventional cell (8 atoms)."""
    cl = [[(x + 0.5) % 1, y, z] for x, y, z in FCC]
    return Structure(Lattice.cubic(5.64), ["Na"] * 4 + ["Cl"] * 4, FCC + cl)


def si() -> Structure:
    """Diamond Si, conventional cell (8 atoms)."""
    shifted = [[x + 0.25, y + 0.25, z + 0.25] for x, y, z in FCC]
    return Structure(Lattice.cubic(5.431), ["Si"] * 8, FCC + shifted)


def triclinic() -> Structure:
    lat = Lattice.from_parameters(4.1, 5.3, 6.7, 81.0, 97.5, 112.3)
    frac = [[0.1, 0.2, 0.3], [0.55, 0.61, 0.07], [0.93, 0.4, 0.77], [1.2, -0.3, 0.5]]
    s = Structure(lat, ["Fe", "O", "O", "Li"], frac)
    s.add_oxidation_state_by_element({"Fe": 3, "O": -2, "Li": 1})
    return s


def structures(n: int = 12) -> list[Structure]:
    base = [nacl(), si(), triclinic()]
    return [base[i % 3] for i in range(n)]


def write_task(path, rows, *, columns=("structure", "exfoliation_en"), index="default"):
    doc = {"columns": list(columns), "data": rows}
    if index == "default":
        doc = {"index": list(range(len(rows))), **doc}
    elif index is not None:
        doc = {"index": index, **doc}
    with gzip.open(path, "wt") as f:
        json.dump(doc, f)
    return path


@pytest.fixture
def task_file(tmp_path):
    rows = [[s.as_dict(), 10.0 * i + 0.5] for i, s in enumerate(structures())]
    return write_task(tmp_path / f"{TASK}.json.gz", rows)


def write_folds(path, task, tests, n_folds=3):
    all_ids = [i for t in tests for i in t]
    splits = {
        f"fold_{k}": {"train": [i for i in all_ids if i not in tests[k]], "test": tests[k]}
        for k in range(n_folds)
    }
    meta = {"n_splits": n_folds, "random_state": 18012019, "shuffle": True}
    path.write_text(json.dumps({"metadata": meta, "splits": {task: splits}}))
    return path


def ids12() -> list[str]:
    return [f"mb-jdft2d-{i:02d}" for i in range(1, 13)]


def test_matbench_id_matches_matbench_convention():
    assert matbench_id("matbench_mp_gap", 0, 106113) == "mb-mp-gap-000001"
    assert matbench_id("matbench_mp_e_form", 132751, 132752) == "mb-mp-e-form-132752"
    assert matbench_id("matbench_jdft2d", 11, 636) == "mb-jdft2d-012"
    assert matbench_id("matbench_dielectric", 7, 4764) == "mb-dielectric-0008"
    assert target_name("log10(G_VRH)") == "log10_g_vrh"
    assert target_name("gap pbe") == "gap_pbe"


def test_structures_round_trip(task_file):
    ing = load_matbench(TASK, task_file)
    s = ing.structures
    assert ing.kind == "crystals"
    assert list(s.ids) == ids12()
    ref = structures()
    for i, st in enumerate(ref):
        a, b = s.offsets[i], s.offsets[i + 1]
        np.testing.assert_allclose(s.positions[a:b], st.cart_coords, rtol=0, atol=1e-10)
        np.testing.assert_allclose(s.cell[i], st.lattice.matrix, rtol=0, atol=1e-10)
        assert s.numbers[a:b].tolist() == list(st.atomic_numbers)
    assert s.pbc.all()
    assert s.n_atoms == 4 * (8 + 8 + 4)
    assert list(s.columns["formula"][:3]) == [st.composition.reduced_formula for st in ref[:3]]
    assert list(s.columns["formula"][:2]) == ["NaCl", "Si"]
    np.testing.assert_array_equal(s.targets["exfoliation_en"], 10.0 * np.arange(12) + 0.5)
    assert s.target_units == {"exfoliation_en": "meV/atom"}
    info = ing.target_info["exfoliation_en"]
    assert info["column"] == "exfoliation_en" and info["task_type"] == "regression"
    assert ing.source["files"][0]["name"] == f"{TASK}.json.gz"


def test_fast_decoder_agrees_with_pymatgen():
    st = triclinic()
    d = json.loads(json.dumps(st.as_dict()))
    z, pos, cell = mb._fast(d)
    z2, pos2, cell2 = mb._via_pymatgen(d)
    np.testing.assert_array_equal(z, z2)
    np.testing.assert_allclose(pos, pos2, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cell, cell2, rtol=0, atol=1e-12)


def test_string_index_kept_and_no_index_numbered(tmp_path):
    rows = [[nacl().as_dict(), 1.0], [si().as_dict(), 2.0]]
    p = write_task(tmp_path / "a.json.gz", rows, index=["mine-a", "mine-b"])
    assert list(load_matbench(TASK, p).structures.ids) == ["mine-a", "mine-b"]
    p = write_task(tmp_path / "b.json.gz", rows, index=None)
    assert list(load_matbench(TASK, p).structures.ids) == ["mb-jdft2d-1", "mb-jdft2d-2"]


def test_boolean_target_becomes_0_1(tmp_path):
    rows = [[nacl().as_dict(), True], [si().as_dict(), False], [triclinic().as_dict(), True]]
    p = write_task(tmp_path / "m.json.gz", rows, columns=("structure", "is_metal"))
    ing = load_matbench("matbench_mp_is_metal", p)
    np.testing.assert_array_equal(ing.structures.targets["is_metal"], [1.0, 0.0, 1.0])
    assert ing.structures.target_units["is_metal"] == "1"
    assert ing.target_info["is_metal"]["task_type"] == "classification"
    assert ing.structures.ids[0] == "mb-mp-is-metal-1"


def test_folds_become_a_fold_column(task_file, tmp_path, monkeypatch):
    ids = ids12()
    folds = write_folds(tmp_path / "folds.json", TASK, [ids[0::3], ids[1::3], ids[2::3]])
    ing = load_matbench(TASK, task_file, folds=folds)
    assert ing.structures.columns["fold"].tolist() == [str(i % 3) for i in range(12)]
    f = ing.extra["matbench"]["folds"]
    assert f["n_folds"] == 3 and f["test_sizes"] == [4, 4, 4]
    assert f["metadata"]["random_state"] == 18012019
    assert [x["name"] for x in ing.source["files"]] == [f"{TASK}.json.gz", "folds.json"]
    monkeypatch.setattr(mb, "installed_folds_file", lambda: folds)
    assert "fold" in load_matbench(TASK, task_file).structures.columns
    monkeypatch.setattr(mb, "installed_folds_file", lambda: None)
    ing = load_matbench(TASK, task_file, data_root=tmp_path)
    assert "fold" not in ing.structures.columns
    assert ing.extra["matbench"]["folds"].startswith("none")
    raw = tmp_path / "raw" / "matbench" / mb.FOLDS_FILE
    raw.parent.mkdir(parents=True)
    raw.write_bytes(folds.read_bytes())
    ing = load_matbench(TASK, task_file, data_root=tmp_path)
    assert ing.structures.columns["fold"].tolist()[:3] == ["0", "1", "2"]


def test_fold_errors_name_the_id(task_file, tmp_path):
    ids = ids12()
    bad = write_folds(tmp_path / "f1.json", TASK, [ids[:4], ids[4:8], [*ids[8:11], "mb-jdft2d-99"]])
    with pytest.raises(InputError, match="not in the data") as e:
        load_matbench(TASK, task_file, folds=bad)
    assert e.value.record == "mb-jdft2d-99" and e.value.file == "f1.json"
    missing = write_folds(tmp_path / "f2.json", TASK, [ids[:4], ids[4:8], ids[8:11]])
    with pytest.raises(InputError, match="no test fold") as e:
        load_matbench(TASK, task_file, folds=missing)
    assert e.value.record == "mb-jdft2d-12"
    twice = write_folds(tmp_path / "f3.json", TASK, [ids[:5], ids[4:8], ids[8:]])
    with pytest.raises(InputError, match="test sets of fold_0 and fold_1"):
        load_matbench(TASK, task_file, folds=twice)
    other = write_folds(tmp_path / "f4.json", "matbench_phonons", [ids[:4], ids[4:8], ids[8:]])
    with pytest.raises(InputError, match="no folds for this task"):
        load_matbench(TASK, task_file, folds=other)


def test_composition_and_unknown_tasks(tmp_path, capsys):
    with pytest.raises(InputError, match="composition-only task"):
        load_matbench("matbench_steels", tmp_path / "x.json.gz")
    rc = main(["--data-root", str(tmp_path), "ingest", "matbench", "matbench_expt_gap"])
    assert rc == 2
    assert "composition-only task, no structures" in capsys.readouterr().err
    with pytest.raises(InputError, match="matbench_mp_gap") as e:
        load_matbench("matbench_nope", tmp_path / "x.json.gz")
    assert "not an official MatBench task" in str(e.value) and "--unit" in str(e.value)


def test_download_offline_is_one_line(tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    rc = main(["--data-root", str(tmp_path), "ingest", "matbench", TASK, "--download"])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1
    assert "--source" in err and "ml.materialsproject.org" in err
    assert not (tmp_path / "stores").exists()


def test_download_uses_url_and_checksum(task_file, tmp_path, monkeypatch):
    seen = {}

    def fake_fetch(url, dest, *, checksum, offline_hint):
        seen.update(url=url, checksum=checksum, dest=dest)
        return task_file

    monkeypatch.setattr(mb, "fetch", fake_fetch)
    ing = load_matbench(TASK, download=True, data_root=tmp_path)
    assert seen["url"] == f"https://ml.materialsproject.org/projects/{TASK}.json.gz"
    assert seen["checksum"] == mb.SHA256[TASK] and len(seen["checksum"]) == 64
    assert seen["dest"] == tmp_path / "raw" / "matbench" / f"{TASK}.json.gz"
    assert ing.source["url"] == seen["url"]


def test_cli_writes_store_with_units_and_folds(task_file, tmp_path, capsys):
    ids = ids12()
    folds = write_folds(tmp_path / "folds.json", TASK, [ids[0::3], ids[1::3], ids[2::3]])
    root = tmp_path / "root"
    args = ["--data-root", str(root), "ingest", "matbench", TASK, "--source", str(task_file)]
    assert main([*args, "--folds", str(folds), "--name", "jd"]) == 0
    store = open_store("jd", root)
    assert store.kind == "crystals" and len(store) == 12
    assert store.target_unit("exfoliation_en") == "meV/atom"
    assert store.column("fold").tolist()[:4] == ["0", "1", "2", "0"]
    assert store.manifest["elements"] == ["Li", "O", "Na", "Si", "Cl", "Fe"]


def _bad_rows(kind: str) -> tuple[list, object]:
    good = [[nacl().as_dict(), 1.0], [si().as_dict(), 2.0], [triclinic().as_dict(), 3.0]]
    if kind == "undecodable":
        good[1][0] = {"@module": "pymatgen.core.structure", "@class": "Structure", "x": 1}
    elif kind == "bad-lattice":
        good[1][0]["lattice"] = {"matrix": "oops"}
    elif kind == "nan":
        good[1][1] = float("nan")
    elif kind == "null":
        good[1][1] = None
    elif kind == "element":
        good[1][0]["sites"][0]["species"][0]["element"] = "Xx"
    elif kind == "disordered":
        good[1][0]["sites"][0]["species"] = [
            {"element": "Si", "occu": 0.5},
            {"element": "Ge", "occu": 0.5},
        ]
    index = ["a", "b", "a"] if kind == "duplicate" else "default"
    return good, index


@pytest.mark.parametrize(
    ("kind", "message", "record"),
    [
        ("undecodable", "not a pymatgen Structure", "mb-jdft2d-2"),
        ("bad-lattice", "does not decode", "mb-jdft2d-2"),
        ("nan", "is nan", "mb-jdft2d-2"),
        ("null", "is None", "mb-jdft2d-2"),
        ("element", "unknown element 'Xx'", "mb-jdft2d-2"),
        ("disordered", "disordered site", "mb-jdft2d-2"),
        ("duplicate", "duplicate id", "a"),
    ],
)
def test_bad_records_through_cli(tmp_path, capsys, kind, message, record):
    rows, index = _bad_rows(kind)
    p = write_task(tmp_path / "bad.json.gz", rows, index=index)
    root = tmp_path / "root"
    rc = main(["--data-root", str(root), "ingest", "matbench", TASK, "--source", str(p)])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1, err
    assert "bad.json.gz" in err and f": {record}: " in err and message in err
    assert not (root / "stores").exists()


def test_bad_files_through_cli(tmp_path, capsys):
    root = tmp_path / "root"
    good = tmp_path / "good.json.gz"
    write_task(good, [[nacl().as_dict(), 1.0], [si().as_dict(), 2.0]])
    blob = good.read_bytes()
    cases = {
        "plain.json.gz": (b"this is not json", "not JSON"),
        "trunc.json.gz": (blob[: len(blob) // 2], "truncated gzip"),
        "records.json.gz": (gzip.compress(b'[{"structure": 1, "y": 2}]'), 'orient="split"'),
        "cols.json.gz": (
            gzip.compress(json.dumps({"index": [], "columns": ["a"], "data": []}).encode()),
            "expected ['structure', 'exfoliation_en']",
        ),
        "binary.json.gz": (gzip.compress(b"\xff\xfe\x00garbage"), "not JSON"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        rc = main(
            ["--data-root", str(root), "ingest", "matbench", TASK, "--source", str(tmp_path / name)]
        )
        err = capsys.readouterr().err.strip()
        assert rc == 2, name
        assert len(err.splitlines()) == 1 and name in err and message in err, err
    rc = main(
        ["--data-root", str(root), "ingest", "matbench", TASK, "--source", str(tmp_path / "no.gz")]
    )
    assert rc == 2 and "file not found" in capsys.readouterr().err
    rc = main(["--data-root", str(root), "ingest", "matbench", TASK])
    assert rc == 2 and "--download" in capsys.readouterr().err
    assert not (root / "stores").exists()


# -- MatBench-style tasks of the user's own ---------------------------------------------------

CUSTOM = "my_gaps"


def custom_file(tmp_path, *, columns=("structure", "band_gap"), value=None, name=CUSTOM):
    rows = []
    for i, s in enumerate(structures(9)):
        y = 0.25 * i if value is None or i != 4 else value
        rows.append([s.as_dict(), y, f"note {i}"][: len(columns)])
    return write_task(tmp_path / f"{name}.json.gz", rows, columns=columns)


def custom_ids() -> list[str]:
    return [f"my-gaps-{i}" for i in range(1, 10)]


def test_custom_task_with_its_column_unit_and_folds_through_cli(tmp_path, capsys):
    src = custom_file(tmp_path, columns=("structure", "band_gap", "comment"))
    ids = custom_ids()
    folds = write_folds(tmp_path / "my_folds.json", CUSTOM, [ids[0::3], ids[1::3], ids[2::3]])
    root = tmp_path / "root"
    assert main(["--data-root", str(root), "ingest", "matbench", CUSTOM, "--source", str(src),
                 "--target", "band_gap", "--unit", "eV", "--folds", str(folds)]) == 0  # fmt: skip
    store = open_store(CUSTOM, root)
    assert store.kind == "crystals" and len(store) == 9
    assert list(store.ids) == ids
    assert store.target_unit("band_gap") == "eV"
    np.testing.assert_array_equal(store.target("band_gap"), 0.25 * np.arange(9))
    assert store.column("fold").tolist() == [str(i % 3) for i in range(9)]
    assert store.manifest["source"]["official"] is False
    info = store.manifest["targets"]["band_gap"]
    assert info["report_unit"] == "eV" and "of your own" in info["description"]


def test_custom_task_takes_the_only_target_column_and_no_official_folds(tmp_path, monkeypatch):
    src = custom_file(tmp_path, columns=("structure", "Bulk modulus (GPa)"))
    official = write_folds(tmp_path / mb.FOLDS_FILE, TASK, [ids12()[:6], ids12()[6:]], n_folds=2)
    monkeypatch.setattr(mb, "installed_folds_file", lambda: official)
    ing = load_matbench(CUSTOM, src, unit="GPa")
    assert list(ing.structures.targets) == ["bulk_modulus_gpa"]
    assert ing.structures.target_units["bulk_modulus_gpa"] == "GPa"
    assert "fold" not in ing.structures.columns
    assert ing.extra["matbench"] == {
        "task": CUSTOM,
        "official": False,
        "folds": "none (no --folds)",
    }


def test_boolean_custom_target_is_a_classification(tmp_path):
    rows = [[s.as_dict(), i % 2 == 0] for i, s in enumerate(structures(4))]
    src = write_task(tmp_path / "metals.json.gz", rows, columns=("structure", "metal"))
    ing = load_matbench("metals", src, unit="1")
    assert ing.target_info["metal"]["task_type"] == "classification"
    np.testing.assert_array_equal(ing.structures.targets["metal"], [1.0, 0.0, 1.0, 0.0])


def test_official_tasks_keep_their_column_and_unit(task_file):
    with pytest.raises(InputError, match="official task's target is 'exfoliation_en'"):
        load_matbench(TASK, task_file, target="other")
    with pytest.raises(InputError, match="official task's unit is 'meV/atom'"):
        load_matbench(TASK, task_file, unit="eV")
    ing = load_matbench(TASK, task_file, target="exfoliation_en", unit="meV/atom")
    assert ing.structures.target_units["exfoliation_en"] == "meV/atom"
    assert ing.source["official"] is True


def _custom_case(tmp_path, kind):
    """(extra CLI arguments, expected words) of one bad custom-task input."""
    ids = custom_ids()
    good = custom_file(tmp_path)
    if kind == "unknown-column":
        return ["--source", str(good), "--target", "gap", "--unit", "eV"], "no column 'gap'"
    if kind == "two-columns":
        src = custom_file(tmp_path, columns=("structure", "a", "b"))
        return ["--source", str(src), "--unit", "eV"], "2 target columns ('a', 'b')"
    if kind == "nan":
        src = custom_file(tmp_path, value=float("nan"))
        return ["--source", str(src), "--unit", "eV"], "target 'band_gap' is nan"
    if kind == "text":
        src = custom_file(tmp_path, value="big")
        return ["--source", str(src), "--unit", "eV"], "target 'band_gap' is 'big'"
    if kind == "folds-of-another-task":
        folds = write_folds(tmp_path / "f.json", "other_task", [ids[:5], ids[5:]], n_folds=2)
        return ["--source", str(good), "--unit", "eV", "--folds", str(folds)], "no folds for this"
    if kind == "folds-with-foreign-ids":
        folds = write_folds(tmp_path / "f.json", CUSTOM, [ids[:5], [*ids[5:], "x-1"]], n_folds=2)
        return ["--source", str(good), "--unit", "eV", "--folds", str(folds)], "not in the data"
    if kind == "no-unit":
        return ["--source", str(good)], "needs its target's unit: --unit"
    if kind == "unknown-unit":
        return ["--source", str(good), "--unit", "furlongs"], "unknown unit 'furlongs'"
    if kind == "download":
        return ["--download", "--unit", "eV"], "nothing to download"
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    ["unknown-column", "two-columns", "nan", "text", "folds-of-another-task",
     "folds-with-foreign-ids", "no-unit", "unknown-unit", "download"],
)  # fmt: skip
def test_bad_custom_task_input_is_one_line_and_writes_nothing(tmp_path, capsys, kind):
    extra, words = _custom_case(tmp_path, kind)
    root = tmp_path / "root"
    rc = main(["--data-root", str(root), "ingest", "matbench", CUSTOM, *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert words in err
    assert not (root / "stores").exists()
