import numpy as np
import pytest

from atomcollapse.cli import main
from atomcollapse.data.store import open_store, write_store
from atomcollapse.errors import InputError
from tests.conftest import make_molecules


def test_round_trip_preserves_arrays_and_table(tmp_path):
    s = make_molecules(7)
    path = write_store(s, tmp_path / "st", name="st", kind="molecules", source={"format": "test"})
    st = open_store(path)
    assert len(st) == 7
    assert np.array_equal(st.numbers, s.numbers)
    assert np.array_equal(st.positions, s.positions)
    for i in range(7):
        v = st.structure(i)
        a, b = s.offsets[i], s.offsets[i + 1]
        assert v.id == f"m{i:03d}"
        assert np.array_equal(v.positions, s.positions[a:b])
    assert st.target_unit("y") == "eV"
    assert np.array_equal(st.target("y"), s.targets["y"])
    assert list(st.table().columns) == ["id", "smiles", "y"]
    st.verify()


def test_content_hash_is_deterministic_and_sensitive(tmp_path):
    a = write_store(make_molecules(), tmp_path / "a", name="a", kind="molecules", source={})
    b = write_store(make_molecules(), tmp_path / "b", name="b", kind="molecules", source={})
    s = make_molecules()
    s.positions[0, 0] += 1e-9
    c = write_store(s, tmp_path / "c", name="c", kind="molecules", source={})
    ha, hb, hc = (open_store(p).content_hash for p in (a, b, c))
    assert ha == hb != hc


def test_tampered_store_fails_verify(tmp_path):
    p = write_store(make_molecules(), tmp_path / "a", name="a", kind="molecules", source={})
    arr = np.load(p / "target.y.npy")
    arr[0] += 1
    np.save(p / "target.y.npy", arr)
    with pytest.raises(InputError, match="content hash mismatch"):
        open_store(p).verify()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.targets["y"].__setitem__(2, np.nan), "target 'y' is nan"),
        (lambda s: s.numbers.__setitem__(0, 200), "unknown element"),
        (lambda s: s.ids.__setitem__(1, s.ids[0]), "duplicate id"),
    ],
)
def test_invalid_structures_name_the_record_and_write_nothing(tmp_path, mutate, message):
    s = make_molecules()
    mutate(s)
    with pytest.raises(InputError, match=message) as e:
        write_store(s, tmp_path / "bad", name="bad", kind="molecules", source={"label": "src.csv"})
    assert "src.csv" in e.value.line()
    assert not (tmp_path / "bad").exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_store_needs_overwrite(tmp_path):
    p = write_store(make_molecules(), tmp_path / "a", name="a", kind="molecules", source={})
    with pytest.raises(InputError, match="already exists"):
        write_store(make_molecules(3), p, name="a", kind="molecules", source={})
    write_store(make_molecules(3), p, name="a", kind="molecules", source={}, overwrite=True)
    assert len(open_store(p)) == 3
    assert [q.name for q in tmp_path.iterdir()] == ["a"]


def test_failed_write_leaves_no_partial_directory(tmp_path, monkeypatch):
    import atomcollapse.data.store as store_mod

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(store_mod, "write_json_atomic", boom)
    with pytest.raises(RuntimeError):
        write_store(make_molecules(), tmp_path / "a", name="a", kind="molecules", source={})
    assert list(tmp_path.iterdir()) == []


def test_datasets_cli_lists_and_shows_units(tmp_path, capsys):
    write_store(
        make_molecules(), tmp_path / "stores" / "tiny", name="tiny", kind="molecules",
        source={"format": "test"}, target_info={"y": {"report_unit": "meV", "description": "thing"}},
    )  # fmt: skip
    assert main(["--data-root", str(tmp_path), "datasets", "list"]) == 0
    out = capsys.readouterr().out
    assert "tiny" in out and "molecules" in out
    assert main(["--data-root", str(tmp_path), "datasets", "show", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "meV" in out and "thing" in out


def test_missing_store_is_one_line_exit_2(tmp_path, capsys):
    assert main(["--data-root", str(tmp_path), "datasets", "show", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope" in err and "Traceback" not in err


def test_corrupt_manifest_is_input_error(tmp_path):
    p = write_store(make_molecules(), tmp_path / "a", name="a", kind="molecules", source={})
    (p / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="corrupt manifest"):
        open_store(p)


def test_subset_keeps_rows_atoms_and_arrays(tmp_path, capsys):
    s = make_molecules(9)
    s.atom_arrays["forces"] = np.arange(s.n_atoms * 3, dtype=float).reshape(-1, 3)
    s.array_units["forces"] = "eV/A"
    src = write_store(s, tmp_path / "stores" / "src", name="src", kind="forcefield", source={})
    rc = main(
        ["--data-root", str(tmp_path), "datasets", "subset", "src", "--n", "4", "--out", "sub"]
    )
    assert rc == 0
    sub = open_store(tmp_path / "stores" / "sub")
    assert len(sub) == 4 and sub.manifest["source"]["parent_hash"] == open_store(src).content_hash
    full = open_store(src)
    rows = [list(full.ids).index(i) for i in sub.ids]
    assert rows == sorted(rows)
    for k, r in enumerate(rows):
        a, b = full.offsets[r], full.offsets[r + 1]
        c, d = sub.offsets[k], sub.offsets[k + 1]
        assert np.array_equal(sub.positions[c:d], full.positions[a:b])
        assert np.array_equal(sub.atom_array("forces")[c:d], full.atom_array("forces")[a:b])
        assert sub.target("y")[k] == full.target("y")[r]
    assert (
        main(["--data-root", str(tmp_path), "datasets", "subset", "src", "--n", "99", "--out", "x"])
        == 2
    )
    assert "subset size 99" in capsys.readouterr().err
