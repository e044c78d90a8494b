"""The one atomic write (:func:`atomic_file` and the writers built on it) and the one reader of
"which code made this, when" (:func:`made_by`), for manifests of both spellings."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from atomcollapse.artifacts import (
    HEADER_KEYS,
    atomic_file,
    header,
    made_by,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)

ROOT = Path(__file__).resolve().parents[1]


def _temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_file_renames_on_success(tmp_path):
    target = tmp_path / "sub" / "a.bin"
    with atomic_file(target, fsync=True) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".a.bin.")
        assert not target.exists()
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert _temporaries(target.parent) == []


def test_atomic_file_failure_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(target, suffix=".part") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert _temporaries(tmp_path) == []


def test_writers_built_on_it(tmp_path):
    write_bytes_atomic(tmp_path / "b", b"\x00\x01")
    write_text_atomic(tmp_path / "t", "é\n")
    write_json_atomic(tmp_path / "j.json", {"a": Path("x")})
    assert (tmp_path / "b").read_bytes() == b"\x00\x01"
    assert (tmp_path / "t").read_text(encoding="utf-8") == "é\n"
    assert json.loads((tmp_path / "j.json").read_text()) == {"a": "x"}
    assert _temporaries(tmp_path) == []


def test_header_fields_and_order():
    h = header("run", schema_version=2, inputs={"split": {"hash": "ab"}})
    assert tuple(h) == HEADER_KEYS
    assert h["artifact"] == "run" and h["schema_version"] == 2 and h["code_version"]
    assert h["inputs"] == {"split": {"hash": "ab"}}


def test_made_by_reads_both_spellings():
    new = header("dataset")
    assert made_by(new).code_version == new["code_version"]
    assert made_by(new).created_at == new["created_at"]
    old_store = {"created_by": {"tool": "atomcollapse", "version": "0.1.0+g1"},
                 "created_at": "2026-01-01T00:00:00+00:00"}  # fmt: skip
    assert made_by(old_store).code_version == "0.1.0+g1"
    assert made_by(old_store).created_at == "2026-01-01T00:00:00+00:00"
    old_checkpoint = {"code_version": "0.1.0+g2", "extra": {"created_at": "2026-02-02"}}
    assert (made_by(old_checkpoint).code_version, made_by(old_checkpoint).created_at) == (
        "0.1.0+g2", "2026-02-02",
    )  # fmt: skip
    assert (made_by({}).code_version, made_by({}).created_at) == (None, None)


def test_made_by_reads_the_committed_artifacts():
    """Artifacts written before the common header (committed splits, pretrained checkpoints) are
    read as they are: they are never rewritten."""
    splits = sorted((ROOT / "splits").glob("*/*/manifest.json"))
    manifests = [*splits, *sorted((ROOT / "pretrained").glob("*/*.json"))]
    if not manifests:
        pytest.skip("no committed artifacts in this checkout")
    for path in manifests:
        by = made_by(json.loads(path.read_text()))
        assert by.code_version and by.created_at, path
