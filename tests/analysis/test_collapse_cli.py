"""``atomcollapse collapse`` end to end on tiny checkpoints, and its bad-input errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from atomcollapse.artifacts import sha256_file
from atomcollapse.cli import main
from tests.analysis.molecules import mini_store, tiny_checkpoint
from tests.analysis.runfactory import make_run


@pytest.fixture
def study(tmp_path):
    store = mini_store(tmp_path / "mini", copies=2)
    pre = tiny_checkpoint(tmp_path / "pre.pt", seed=0)
    runs = []
    for strategy, seed in (("finetune", 1), ("mft", 2)):
        run = make_run(tmp_path / "runs", strategy=strategy, seed=0, dataset="mini",
                       dataset_hash=store.content_hash, pretrained_hash=sha256_file(pre))  # fmt: skip
        tiny_checkpoint(run / "best.pt", seed=seed)
        runs.append(run)
    return tmp_path, store, pre, runs


def test_collapse_table_and_outputs(study, capsys):
    root, store, pre, runs = study
    out = root / "out"
    args = ["collapse", "--pretrained", str(pre), *map(str, runs), "--data", str(store.path),
            "--max-per-class", "4", "--tsne-max-iter", "250", "--threads", "1",
            "--format", "json", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    text = capsys.readouterr().out
    rows = json.loads(text[: text.rindex("}") + 1])["rows"]
    by = {(r["model"], r["set"]): r for r in rows}
    assert set(by) == {(m, s) for m in ("pretrained", "finetune s0", "mft s0")
                       for s in ("atoms", "edges")}  # fmt: skip
    assert by[("pretrained", "atoms")]["cka"] == pytest.approx(1.0)
    assert by[("pretrained", "atoms")]["w1_per_dim"] == 0.0
    assert by[("pretrained", "edges")]["db_tsne_ratio"] == pytest.approx(1.0)
    assert by[("mft s0", "atoms")]["cka"] < 0.999
    # two copies of each molecule: 4 each of C4 C3 H F, 2 each of C2 O2 O1 N2 N1, no N3
    assert by[("mft s0", "atoms")]["n"] == 4 * 4 + 2 * 5
    df = pd.read_csv(out / "collapse.csv")
    assert len(df) == 6 and "cka" in df.columns
    sample = pd.read_csv(out / "sample_atoms.csv")
    assert sample["class"].value_counts().max() == 4
    for stem in ("tsne_atoms", "tsne_edges"):
        assert (out / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
        assert b"<svg" in (out / f"{stem}.svg").read_bytes()[:2000]
    notes = (out / "notes.txt").read_text()
    assert "edge embeddings: backbone" in notes
    assert "t-SNE of atoms (26): scikit-learn" in notes  # below OPENTSNE_MIN


def test_collapse_is_reproducible_with_a_seed(study, capsys):
    _, store, pre, runs = study
    args = ["collapse", "--pretrained", str(pre), str(runs[0]), "--data", str(store.path),
            "--max-per-class", "3", "--no-tsne", "--format", "csv"]  # fmt: skip
    assert main(args) == 0
    first = capsys.readouterr().out
    assert main(args) == 0
    assert capsys.readouterr().out == first


@pytest.mark.parametrize("case", ["no_ckpt", "other_pretrained", "bad_edges", "bad_count",
                                  "other_store", "unfinished", "bad_layer",
                                  "bad_tsne_backend"])  # fmt: skip
def test_collapse_bad_input(study, capsys, case):
    root, store, pre, runs = study
    args = ["collapse", "--pretrained", str(pre), str(runs[0]), "--data", str(store.path),
            "--no-tsne", "--max-per-class", "2"]  # fmt: skip
    if case == "no_ckpt":
        args[2] = str(root / "missing.pt")
    elif case == "other_pretrained":
        args[2] = str(tiny_checkpoint(root / "other.pt", seed=9))
    elif case == "bad_edges":
        args += ["--edges", "sideways"]
    elif case == "bad_count":
        args += ["--max-per-class", "0"]
    elif case == "other_store":
        args[5] = str(mini_store(root / "other", copies=1).path)
    elif case == "unfinished":
        (runs[0] / "best.pt").unlink()
    elif case == "bad_layer":
        args += ["--layer", "9"]
    elif case == "bad_tsne_backend":
        args += ["--tsne-backend", "umap"]
    out = root / "out"
    args += ["--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_collapse_takes_a_registered_model_by_name(tmp_path, capsys):
    """``--pretrained ani1x:0`` (as a bench spec's ``adapter``): the model from the installed
    package, its weights' hash checked against the runs'."""
    import importlib.util

    if importlib.util.find_spec("torchani") is None:  # plain import fails on new setuptools
        pytest.skip("the 'ani' extra (torchani) is not installed")
    from atomcollapse.training.model_setup import load_pretrained
    from tests.training.synthetic import write_molecule_store

    # fluorine in two molecules: ANI-1x knows H, C, N, O, so they are left out, with a note
    store = write_molecule_store(tmp_path / "mols", n=12, fluorinated={0, 1})
    base = ["collapse", "--pretrained", "ani1x:0", "--data", str(store), "--max-per-class", "3",
            "--no-tsne", "--threads", "1", "--format", "json"]  # fmt: skip
    assert main([*base, "--out", str(tmp_path / "out")]) == 0
    notes = (tmp_path / "out" / "notes.txt").read_text()
    assert "left out 2 of 12 structures with elements outside ani1x:0's set (H, C, N, O)" in notes
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert {r["model"] for r in rows} == {"pretrained"}
    assert all(r["cka"] == pytest.approx(1.0) for r in rows)
    _, _, digest = load_pretrained("ani1x:0")
    other = make_run(tmp_path / "runs", strategy="finetune", seed=0, pretrained_hash="e" * 64)
    assert main([*base, str(other)]) == 2
    err = capsys.readouterr().err
    assert "not from ani1x:0" in err and digest[:12] in err
