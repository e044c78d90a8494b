"""The labelling job: store contents, resume after a kill, determinism, failures, exclusions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from atomcollapse.data.store import open_store
from atomcollapse.errors import InputError
from atomcollapse.forcefield import LabelJob, SamplingConfig, run_label_job, work_dir, xtb
from atomcollapse.splits import artifact
from atomcollapse.splits.artifact import load_split

SAMPLING = SamplingConfig(methods=("rattle", "rdkit"), per_molecule=2, seed=3)


def _job(**kw) -> LabelJob:
    return LabelJob(**{"name": "ff", "store": "tiny", "sampling": SAMPLING, "chunk_size": 2, **kw})


def _arrays(root, name="ff") -> dict[str, np.ndarray]:
    s = open_store(name, root)
    return {p.stem: np.load(p) for p in s.path.glob("*.npy")}


def test_store_holds_labelled_conformers_with_units_and_provenance(data_root, tiny):
    out = run_label_job(_job(), root=data_root, workers=1)
    assert (out.n_tasks, out.n_labelled, out.n_failed, out.n_chunks) == (6, 6, 0, 3)
    s = open_store("ff", data_root)
    assert s.kind == "forcefield" and len(s) == 6
    t = s.table()
    assert list(t["parent_id"]) == ["w1", "w1", "m1", "m1", "a1", "a1"]
    assert list(t["method"]) == ["rattle", "rdkit"] * 3
    assert list(t["smiles"]) == ["O", "O", "C", "C", "N", "N"]
    assert list(t["id"]) == ["w1-k0", "w1-k1", "m1-k0", "m1-k1", "a1-k0", "a1-k1"]
    units = {k: v["unit"] for k, v in s.manifest["targets"].items()}
    assert units == {
        "energy": "eV",
        "energy_per_atom": "eV/atom",
        "xtb_gap": "eV",
        "xtb_dipole": "D",
    }
    assert s.manifest["atom_arrays"]["forces"]["unit"] == "eV/A"
    # each row is the xTB label of its own geometry
    for i in (0, 3):
        v = s.structure(i)
        lab = xtb.label_structure(np.asarray(v.numbers), np.asarray(v.positions))
        a, b = s.offsets[i], s.offsets[i + 1]
        assert s.target("energy")[i] == lab.energy
        assert np.array_equal(s.atom_array("forces")[a:b], lab.forces)
        assert s.target("energy_per_atom")[i] == pytest.approx(lab.energy / (b - a))
    rattled = s.structure(0).positions - tiny.structure(0).positions
    assert 0.01 < np.abs(rattled).mean() < 0.1
    extra = s.manifest["extra"]
    assert extra["level_of_theory"].startswith("GFN2-xTB via tblite ")
    assert extra["sampling"]["seed"] == 3 and extra["sampling"]["methods"] == ["rattle", "rdkit"]
    assert extra["source_store"]["content_hash"] == tiny.content_hash
    assert extra["counts"] == {"n_tasks": 6, "n_labelled": 6, "n_failed": 0, "failed_by_stage": {}}


def test_resume_after_a_kill_gives_the_uninterrupted_result(data_root, tmp_path):
    first = run_label_job(_job(), root=data_root, workers=1, max_chunks=1)
    assert first.store_path is None and first.n_chunks_done == 1
    wd = work_dir("ff", data_root)
    assert sorted(p.name for p in wd.glob("chunk-*.npz")) == ["chunk-00000.npz"]
    assert not (data_root / "stores" / "ff").exists()
    done = run_label_job(_job(), root=data_root, workers=1, resume=True)
    assert done.store_path is not None and done.n_chunks_done == 3

    other = tmp_path / "other"
    (other / "stores").mkdir(parents=True)
    (data_root / "stores" / "tiny").rename(other / "stores" / "tiny")
    run_label_job(_job(), root=other, workers=1)
    a, b = _arrays(data_root), _arrays(other)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def test_same_seed_gives_identical_bits_with_one_or_two_workers(data_root):
    run_label_job(_job(name="one"), root=data_root, workers=1)
    run_label_job(_job(name="two"), root=data_root, workers=2)
    a, b = _arrays(data_root, "one"), _arrays(data_root, "two")
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert open_store("one", data_root).content_hash == open_store("two", data_root).content_hash
    run_label_job(
        _job(
            name="seed4",
            sampling=SamplingConfig(methods=("rattle", "rdkit"), per_molecule=2, seed=4),
        ),
        root=data_root,
        workers=1,
    )
    assert not np.array_equal(a["positions"], _arrays(data_root, "seed4")["positions"])


def test_a_kill_inside_a_chunk_leaves_only_whole_chunks_and_resumes(data_root, monkeypatch):
    real, calls = xtb.label_structure, []

    def killed_at_the_fourth(numbers, positions):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return real(numbers, positions)

    monkeypatch.setattr(xtb, "label_structure", killed_at_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        run_label_job(_job(), root=data_root, workers=1)
    wd = work_dir("ff", data_root)
    assert sorted(p.name for p in wd.iterdir()) == [
        "chunk-00000.npz",
        "failures.jsonl",
        "state.json",
    ]
    monkeypatch.setattr(xtb, "label_structure", real)
    run_label_job(_job(), root=data_root, workers=1)
    run_label_job(_job(name="clean"), root=data_root, workers=1)
    assert open_store("ff", data_root).content_hash == open_store("clean", data_root).content_hash


def test_normal_mode_and_md_conformers_are_labelled(data_root, tiny):
    sampling = SamplingConfig(
        methods=("normal-modes", "md"), per_molecule=2, md_steps=5, temperature=300.0
    )
    out = run_label_job(_job(sampling=sampling, fraction=0.5), root=data_root, workers=1)
    s = open_store("ff", data_root)
    assert out.n_labelled == 4 and list(s.column("method")) == ["normal-modes", "md"] * 2
    for i in range(len(s)):
        parent = tiny.structure(list(tiny.ids).index(s.column("parent_id")[i]))
        shift = np.linalg.norm(s.structure(i).positions - parent.positions, axis=1)
        assert 1e-3 < shift.mean() < 0.3
    assert s.manifest["extra"]["selection"]["n_molecules"] == 2


def test_failed_structures_are_counted_logged_and_skipped(data_root, monkeypatch):
    real = xtb.label_structure

    def flaky(numbers, positions):
        if len(numbers) == 5:  # methane
            raise RuntimeError("SCF not converged in 250 cycles")
        return real(numbers, positions)

    monkeypatch.setattr(xtb, "label_structure", flaky)
    out = run_label_job(_job(), root=data_root, workers=1)
    assert (out.n_labelled, out.n_failed) == (4, 2)
    s = open_store("ff", data_root)
    assert "m1" not in set(s.column("parent_id")) and len(s) == 4
    assert s.manifest["extra"]["counts"]["n_failed"] == 2
    assert s.manifest["extra"]["counts"]["failed_by_stage"] == {"labelling": 2}
    lines = (work_dir("ff", data_root) / "failures.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    assert [(r["parent_id"], r["k"], r["method"]) for r in records] == [
        ("m1", 0, "rattle"),
        ("m1", 1, "rdkit"),
    ]
    assert all("SCF not converged" in r["error"] for r in records)


def test_a_run_where_everything_fails_says_so(data_root, monkeypatch):
    def broken(numbers, positions):
        raise RuntimeError("SCF not converged")

    monkeypatch.setattr(xtb, "label_structure", broken)
    with pytest.raises(InputError, match="no structure could be labelled \\(6 failures\\)"):
        run_label_job(_job(), root=data_root, workers=1)
    assert len((work_dir("ff", data_root) / "failures.jsonl").read_text().splitlines()) == 6
    assert not (data_root / "stores" / "ff").exists()


def _split(path, dataset, id_test: list[int], ood_test: list[int]) -> str:
    """A split artifact of ``dataset`` (a Store, or a (name, content hash, size) stand-in)."""
    name, h, n = (
        (dataset.name, dataset.content_hash, len(dataset)) if hasattr(dataset, "name") else dataset
    )
    codes = np.zeros(n, dtype=np.uint8)
    codes[id_test] = artifact.ID_TEST
    codes[ood_test] = artifact.OOD_TEST
    manifest = {
        "artifact": "split",
        "schema_version": artifact.SCHEMA_VERSION,
        "method": "test",
        "dataset": {"name": name, "content_hash": h, "n_structures": n},
    }
    artifact.Split(codes=codes, manifest=manifest).save(path)
    return str(path)


def test_exclude_split_leaves_out_test_molecules_also_under_other_ids(data_root, tmp_path):
    tiny4 = open_store("tiny4", data_root)
    split = _split(tmp_path / "gap_split", tiny4, [0], [2])
    run_label_job(_job(store="tiny4", exclude_splits=(split,)), root=data_root, workers=1)
    s = open_store("ff", data_root)
    assert set(s.column("parent_id")) == {"m1"}  # w1 (id_test), a1 (ood_test) and a2 (same InChI)
    (rec,) = s.manifest["extra"]["excluded_splits"]
    assert rec["hash"] == load_split(split).hash and rec["parts"] == ["id_test", "ood_test"]
    assert rec["n_test_molecules"] == 2 and rec["n_excluded_rows"] == 3
    assert s.manifest["extra"]["selection"]["n_excluded"] == 3


def test_split_of_another_dataset_is_refused_before_anything_is_written(
    data_root, tmp_path, capsys
):
    from atomcollapse.cli import main

    split_dir = _split(tmp_path / "other_split", ("qm9", "0" * 64, 3), [0], [1])
    with pytest.raises(InputError, match="split was made from dataset 000000000000"):
        run_label_job(_job(exclude_splits=(split_dir,)), root=data_root, workers=1)
    rc = main(
        [
            "--data-root",
            str(data_root),
            "label",
            "xtb",
            "--data",
            "tiny",
            "--name",
            "ff",
            "--exclude-split",
            split_dir,
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "not from store 'tiny'" in err and "Traceback" not in err
    assert not work_dir("ff", data_root).exists() and not (data_root / "stores" / "ff").exists()


def test_cli_runs_and_refuses_bad_input_with_one_line(data_root, capsys):
    from atomcollapse.cli import main

    base = [
        "--data-root",
        str(data_root),
        "label",
        "xtb",
        "--data",
        "tiny",
        "--name",
        "ff",
        "--per-molecule",
        "1",
        "--workers",
        "1",
        "--seed",
        "1",
    ]
    assert main([*base, "--n-molecules", "2"]) == 0
    assert len(open_store("ff", data_root)) == 2
    bad = {
        "dataset store not found": ["--data", "nope"],
        "store already exists": [],
        "more than the 3 molecules": ["--name", "x", "--n-molecules", "4"],
        "not both": ["--name", "x", "--n-molecules", "1", "--fraction", "0.5"],
        "unknown sampling method 'wiggle'": ["--name", "x", "--method", "wiggle"],
        "nothing to resume": ["--name", "x", "--resume"],
        "needs a molecule store": ["--name", "x", "--data", "ff"],
    }
    for problem, extra in bad.items():
        capsys.readouterr()
        assert main([*base, *extra]) == 2, problem
        err = capsys.readouterr().err
        assert problem in err and len(err.strip().splitlines()) == 1, err
    assert not (data_root / "stores" / "x").exists() and not work_dir("x", data_root).exists()


def test_changed_settings_do_not_mix_with_an_old_work_folder(data_root):
    run_label_job(_job(), root=data_root, workers=1, max_chunks=1)
    with pytest.raises(InputError, match="other settings"):
        run_label_job(
            _job(sampling=SamplingConfig(per_molecule=2, seed=9)), root=data_root, workers=1
        )


@pytest.mark.slow
@pytest.mark.parametrize("point", ["label-task-done:3", "chunk-tmp-written:2"])
def test_sigkill_mid_chunk_then_resume_gives_the_uninterrupted_store(data_root, tmp_path, point):
    """``label xtb`` killed (SIGKILL) inside a chunk or with a chunk half-renamed, run again with
    --resume: the store equals an uninterrupted run's, no temporary or lock file is left."""
    import os
    import shutil
    import signal
    import subprocess
    import sys

    from tests.cli.test_fault_injection import content, leftovers

    ref_root = tmp_path / "ref"
    shutil.copytree(data_root, ref_root)
    args = ["label", "xtb", "--data", "tiny", "--name", "ff", "--per-molecule", "2",
            "--workers", "1", "--seed", "1", "--method", "rattle", "--chunk-size", "2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    run = [sys.executable, "-m", "atomcollapse"]
    ok = subprocess.run([*run, "--data-root", str(ref_root), *args], env=env, check=False)
    assert ok.returncode == 0
    killed = subprocess.run([*run, "--data-root", str(data_root), *args], capture_output=True,
                            env={**env, "ATOMCOLLAPSE_FAULT": point}, check=False)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert not (data_root / "stores" / "ff").exists()
    again = subprocess.run([*run, "--data-root", str(data_root), *args, "--resume"], env=env,
                           capture_output=True, check=False)  # fmt: skip
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    store, ref = data_root / "stores" / "ff", ref_root / "stores" / "ff"
    assert content(store, data_root) == content(ref, ref_root)
    assert (work_dir("ff", data_root) / "failures.jsonl").read_bytes() == (
        work_dir("ff", ref_root) / "failures.jsonl"
    ).read_bytes()
    assert leftovers(data_root) == []
