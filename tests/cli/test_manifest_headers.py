"""Every artifact's manifest starts with the one header (artifact, schema_version, code_version,
created_at, inputs) and names what it was made from with hashes."""

from __future__ import annotations

import json
from pathlib import Path

from atomcollapse.artifacts import HEADER_KEYS, sha256_file
from atomcollapse.cli import main
from atomcollapse.models.checkpoint import checkpoint_hash, read_checkpoint


def _manifest(path: Path) -> dict:
    m = json.loads(path.read_text())
    assert tuple(m)[: len(HEADER_KEYS)] == HEADER_KEYS, path
    return m


def test_every_writer_starts_with_the_header(ws: Path):
    store = _manifest(ws / "data" / "stores" / "mols" / "manifest.json")
    assert store["artifact"] == "dataset"
    split = json.loads((ws / "split" / "manifest.json").read_text())  # the tests' own writer
    pre = read_checkpoint(ws / "pre.pt")
    assert tuple(pre)[: len(HEADER_KEYS)] == HEADER_KEYS and pre["artifact"] == "checkpoint"
    ff = _manifest(ws / "data" / "stores" / "ff" / "manifest.json")
    assert pre["inputs"]["training_data"]["content_hash"] == ff["content_hash"]
    assert _manifest(ws / "pre.json")["inputs"] == pre["inputs"]
    run = _manifest(ws / "runs" / "run" / "manifest.json")
    assert run["artifact"] == "run"
    assert run["inputs"]["dataset"]["content_hash"] == store["content_hash"]
    assert run["inputs"]["split"]["hash"] == split["split_hash"]
    assert run["inputs"]["pretrained"]["hash"] == checkpoint_hash(ws / "pre.pt")
    assert Path(run["inputs"]["split"]["path"]).is_absolute()
    best = read_checkpoint(ws / "runs" / "run" / "best.pt")
    assert best["artifact"] == "checkpoint" and best["inputs"] == run["inputs"]
    assert _manifest(ws / "report" / "manifest.json")["artifact"] == "report"


def test_split_records_its_dataset(ws: Path):
    args = ["--data-root", "data", "split", "make", "mols", "--method", "random", "--out", "s2"]
    assert main(args) == 0
    split = _manifest(ws / "s2" / "manifest.json")
    store = json.loads((ws / "data" / "stores" / "mols" / "manifest.json").read_text())
    assert split["artifact"] == "split" and "created_by" not in split
    assert split["inputs"]["dataset"]["content_hash"] == store["content_hash"]


def test_ingest_records_its_source_files(ws: Path):
    assert main(["--data-root", "data", "ingest", "extxyz", "frames.xyz", "--name", "new"]) == 0
    m = _manifest(ws / "data" / "stores" / "new" / "manifest.json")
    assert m["inputs"]["files"] == [{"name": "frames.xyz", "sha256": sha256_file("frames.xyz")}]
    assert "created_by" not in m
