"""Stores are checked every time they are opened (files present, shapes and sizes) and re-hashed
before they are used to split or train (cached by file fingerprint); ``datasets verify``
always re-hashes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from atomcollapse.cli import main
from atomcollapse.data.store import open_store, write_store
from atomcollapse.errors import InputError
from tests.conftest import make_molecules


@pytest.fixture
def store(tmp_path):
    path = write_store(make_molecules(8), tmp_path / "stores" / "s", name="s", kind="molecules",
                       source={"format": "test"})  # fmt: skip
    return path


def _change_one_value(path, key="target.y"):
    a = np.load(path / f"{key}.npy")
    a[0] += 1.0
    np.save(path / f"{key}.npy", a)


def test_open_refuses_a_missing_array(store):
    (store / "numbers.npy").unlink()
    with pytest.raises(InputError, match=r"numbers.npy: array file missing"):
        open_store(store)


def test_open_refuses_a_truncated_array(store):
    data = (store / "positions.npy").read_bytes()
    (store / "positions.npy").write_bytes(data[:-16])
    with pytest.raises(InputError, match=r"positions.npy: truncated or padded"):
        open_store(store)


def test_open_refuses_an_array_of_another_shape(store):
    np.save(store / "target.y.npy", np.zeros(3))
    with pytest.raises(InputError, match=r"target.y.npy: holds"):
        open_store(store)


def test_a_changed_value_is_found_and_named(store):
    _change_one_value(store)
    s = open_store(store)  # shapes and sizes are fine
    with pytest.raises(InputError, match=r"target.y.npy changed"):
        s.verify_content()


def test_the_cache_skips_unchanged_stores_and_sees_rewrites(store):
    s = open_store(store)
    assert s.verify_content() is True  # hashed
    assert s.verify_content() is False  # cached: nothing changed
    st = (store / "target.y.npy").stat()
    _change_one_value(store)
    os.utime(store / "target.y.npy", ns=(st.st_atime_ns, st.st_mtime_ns))  # mtime put back
    with pytest.raises(InputError, match="changed"):
        open_store(store).verify_content()


def test_stores_without_per_array_records_still_open_and_verify(store):
    m = json.loads((store / "manifest.json").read_text())
    del m["arrays"]
    (store / "manifest.json").write_text(json.dumps(m))
    open_store(store).verify_content(cached=False)
    _change_one_value(store)
    with pytest.raises(InputError, match="an array's values changed"):
        open_store(store).verify_content(cached=False)


def test_datasets_verify_cli(store, tmp_path, capsys):
    root = ["--data-root", str(tmp_path)]
    assert main([*root, "datasets", "verify", "s"]) == 0
    assert "content hash" in capsys.readouterr().out
    _change_one_value(store)
    assert main([*root, "datasets", "verify", "s"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "target.y.npy changed" in err


def test_one_broken_store_does_not_hide_the_others(store, tmp_path, capsys):
    other = write_store(make_molecules(4), tmp_path / "stores" / "t", name="t", kind="molecules",
                        source={"format": "test"})  # fmt: skip
    (other / "manifest.json").write_text("{ not json")
    assert main(["--data-root", str(tmp_path), "datasets", "list"]) == 0
    out = capsys.readouterr()
    assert "s" in out.out and "unreadable" in out.out
    assert len(out.err.strip().splitlines()) == 1 and "t/manifest.json" in out.err
