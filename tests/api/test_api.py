"""The Python API gives what the CLI gives: same runs bit for bit, same report, InputError."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

import atomcollapse as ac
from atomcollapse.cli import main
from atomcollapse.errors import InputError


def _cfg(**kw):
    base = {"target": "gap", "seed": 3, "epochs": 2, "batch_size": 8, "device": "cpu",
            "strategy": ac.StrategyConfig("finetune")}  # fmt: skip
    return ac.TrainConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def runs(ws, tmp_path_factory):
    """The same finetune run made by the CLI and by the API, and a scratch run (API)."""
    root = tmp_path_factory.mktemp("runs")
    cli = root / "runs" / "cli"
    assert main(ws.train_args(cli, "finetune")) == 0
    api = ac.train(ws.mols, ws.split, root / "api", _cfg(), pretrained=ws.ckpt)
    scratch = ac.train(ws.mols, ws.split, root / "runs" / "scratch", _cfg(),
                       overrides={"strategy.name": "scratch"}, pretrained=ws.ckpt)  # fmt: skip
    return root, cli, api, scratch


def test_import_is_lazy_and_names_resolve():
    code = (
        "import sys, atomcollapse as ac; print(sorted(m for m in ('torch', 'pandas', "
        "'numpy', 'atomcollapse.api') if m in sys.modules)); print(ac.train.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    first, second = out.stdout.splitlines()
    assert first == "[]" and second == "atomcollapse.api"
    with pytest.raises(AttributeError):
        ac.no_such_name  # noqa: B018


def test_api_train_equals_cli_train_bit_for_bit(runs):
    _, cli, api, _ = runs
    assert (api.path / "predictions.csv").read_bytes() == (cli / "predictions.csv").read_bytes()
    assert api.metrics_json == json.loads((cli / "metrics.json").read_text())
    assert (api.path / "config.json").read_bytes() == (cli / "config.json").read_bytes()
    mine = torch.load(api.path / "best.pt", weights_only=False)["state_dict"]
    theirs = torch.load(cli / "best.pt", weights_only=False)["state_dict"]
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)


def test_run_object(runs):
    _, cli, api, scratch = runs
    m = api.metrics
    assert list(m.partition) == list(api.metrics_json["partitions"])
    ood = api.metrics_json["partitions"]["ood_test"]
    row = m.set_index("partition").loc["ood_test"]
    assert row["mae"] == ood["mae"] and row["n"] == ood["n"] and row["unit"] == "Ha"
    assert set(api.predictions.partition) >= {"id_test", "ood_test"}
    assert api.manifest["artifact"] == "run" and api.config == _cfg()
    assert scratch.config.strategy.name == "scratch"
    assert isinstance(api.model, torch.nn.Module) and "property" in api.model.heads
    assert ac.load_run(cli).metrics_json == api.metrics_json


def test_predict_and_evaluate_match_the_run(ws, runs):
    _, _, api, _ = runs
    got = ac.predict(api, ws.mols, split=ws.split, partition="id_test").structures
    ref = api.predictions[api.predictions.partition == "id_test"].reset_index(drop=True)
    assert list(got.id) == list(ref.id)
    np.testing.assert_allclose(got.prediction, ref.prediction, rtol=1e-6)
    ev = ac.evaluate(api.path, ws.mols, ws.split, partitions=["id_test", "ood_test"])
    for p in ("id_test", "ood_test"):
        mine = ev.set_index("partition").loc[p]
        want = api.metrics_json["partitions"][p]
        assert mine["n"] == want["n"]
        assert mine["mae"] == pytest.approx(want["mae"], rel=1e-5)
    assert api.predict(ws.mols, forces=True).forces is None  # finetune has no energy head
    with_forces = ac.predict(ws.ckpt, ws.mols, forces=True)  # the pretrained force field
    assert with_forces.forces is not None and "energy_eV" in with_forces.structures
    assert len(with_forces.forces) == with_forces.structures.n_atoms.sum()


def test_report_frames_equal_report_json(runs):
    root, _, _, _ = runs
    rep = ac.report([root / "runs"], out=root / "report", plots=False)
    saved = json.loads((root / "report" / "report.json").read_text())
    assert saved == rep.to_dict()
    cells = rep.cells
    assert len(cells) == len(saved["cells"]) == 2
    for (_, row), want in zip(cells.iterrows(), saved["cells"], strict=True):
        for k, v in want.items():
            got = row[k]
            if v is None:
                assert got is None or (isinstance(got, float) and math.isnan(got)), k
            elif isinstance(v, float):
                assert got == pytest.approx(v, rel=1e-12, abs=0), k
            else:
                assert got == v, k
    summary = rep.summary
    assert list(summary.strategy) == [r["strategy"] for r in saved["summary"]]
    assert rep.render("csv") == (root / "report" / "report.csv").read_text()
    with pytest.raises(InputError, match="already exists"):
        ac.report([root / "runs"], out=root / "report")


def test_split_make_equals_cli_and_exports(ws, tmp_path):
    split = ac.make_split(ws.mols, tmp_path / "api", method="random", seed=5)
    assert main(["split", str(ws.mols), "--method", "random", "--seed", "5", "--out",
                 str(tmp_path / "cli")]) == 0  # fmt: skip
    assert split.hash == ac.load_split(tmp_path / "cli").hash
    files = ac.export_split(tmp_path / "api", tmp_path / "csv", fmt="csv", data=ws.mols)
    df = pd.concat(pd.read_csv(f) for f in files)
    assert sorted(df.id) == sorted(ac.open_dataset(ws.mols).ids)
    assert set(df.split_hash) == {split.hash}


def test_ingest_extxyz_and_export_round_trip(ws, tmp_path):
    out = ac.export_dataset(ws.ff, tmp_path / "ff.extxyz")
    back = ac.ingest_extxyz([out], "back", data_root=tmp_path)
    src = ac.open_dataset(ws.ff)
    np.testing.assert_array_equal(back.numbers, src.numbers)
    np.testing.assert_array_equal(back.target("energy"), src.target("energy"))
    np.testing.assert_allclose(back.atom_array("forces"), src.atom_array("forces"), atol=1e-8)
    with pytest.raises(InputError, match="already exists"):
        ac.ingest_extxyz([out], "back", data_root=tmp_path)


def test_collapse_frame_equals_cli_json(tmp_path, capsys):
    from atomcollapse.analysis.pipeline import CollapseSettings
    from atomcollapse.artifacts import sha256_file
    from tests.analysis.molecules import mini_store, tiny_checkpoint
    from tests.analysis.runfactory import make_run

    store = mini_store(tmp_path / "mini", copies=2)
    pre = tiny_checkpoint(tmp_path / "pre.pt", seed=0)
    run = make_run(tmp_path / "runs", strategy="finetune", seed=0, dataset="mini",
                   dataset_hash=store.content_hash, pretrained_hash=sha256_file(pre))  # fmt: skip
    tiny_checkpoint(run / "best.pt", seed=1)
    cfg = CollapseSettings(max_per_class=4, tsne=False, threads=1)
    df = ac.collapse(pre, [run], settings=cfg, data=str(store.path), out=tmp_path / "api")
    assert main(["collapse", "--pretrained", str(pre), str(run), "--data", str(store.path),
                 "--max-per-class", "4", "--no-tsne", "--threads", "1", "--format", "json",
                 "--out", str(tmp_path / "cli")]) == 0  # fmt: skip
    text = capsys.readouterr().out
    rows = json.loads(text[: text.rindex("}") + 1])["rows"]
    assert list(df.model) == [r["model"] for r in rows]
    np.testing.assert_allclose(df.cka.astype(float), [r["cka"] for r in rows])
    # both record the same inputs, in the shape ``bench --collect`` compares
    made = [
        json.loads((tmp_path / w / "manifest.json").read_text())["inputs"] for w in ("api", "cli")
    ]
    assert made[0] == made[1]
    assert made[0]["pretrained"] == str(pre.resolve()) and made[0]["runs"] == [str(run.resolve())]
    assert made[0]["store"] == str(store.path.resolve()) and made[0]["split"] is None
    assert made[0]["settings"]["max_per_class"] == 4 and made[0]["settings"]["tsne"] is False
    assert any("layer -1" in n for n in df.attrs["notes"])
    with pytest.raises(InputError, match="--edges must be one of"):
        ac.collapse(pre, [run], settings=CollapseSettings(edges="nope"), data=str(store.path))


def test_bad_input_raises_input_error(ws, tmp_path):
    with pytest.raises(InputError, match="no target given"):
        ac.train(ws.mols, ws.split, tmp_path / "r", _cfg(target=""))
    assert not (tmp_path / "r").exists()
    with pytest.raises(InputError, match="unknown split setting"):
        ac.make_split(ws.mols, tmp_path / "s", method="random", colour="red")
    with pytest.raises(InputError, match="unknown setting"):
        ac.train(ws.mols, ws.split, tmp_path / "r", overrides={"optim.nope": 1})
    with pytest.raises(InputError):
        ac.load_run(tmp_path)
    with pytest.raises(InputError, match="--format must be one of"):
        ac.export_split(ws.split, tmp_path / "x", fmt="parquet")
