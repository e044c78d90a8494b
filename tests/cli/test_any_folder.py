"""Paths given relative to one folder are stored absolute, so report and collapse work on a run
from any other folder (and without the data root the run was made with)."""

from __future__ import annotations

import json
from pathlib import Path

from atomcollapse.cli import main
from tests.cli.test_bad_input_corpus import TRAIN


def test_a_run_made_with_relative_paths_is_usable_from_elsewhere(ws: Path, tmp_path, monkeypatch):
    assert main(["--data-root", "data", *TRAIN, "--out", "rel-run"]) == 0
    m = json.loads((ws / "rel-run" / "manifest.json").read_text())
    assert m["split"]["path"] == str(ws / "split")
    assert m["dataset"]["path"] == str(ws / "data" / "stores" / "mols")
    assert m["pretrained_path"] == str(ws / "pre.pt")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("ATOMCOLLAPSE_DATA", raising=False)
    assert main(["collapse", "--pretrained", str(ws / "pre.pt"), str(ws / "rel-run"), "--no-tsne",
                 "--max-per-class", "5", "--projections", "4", "--format", "csv"]) == 0  # fmt: skip
    assert main(["report", str(ws / "rel-run"), "--format", "csv"]) == 0
