"""Bench datasets are ingested through the registry: its options are spec keys, checked at load."""

from __future__ import annotations

import numpy as np
import pytest

from atomcollapse.bench.prepare import resolve_inputs
from atomcollapse.bench.spec import load_spec
from atomcollapse.data.sources import matbench as mb
from atomcollapse.data.store import open_store
from atomcollapse.errors import InputError
from tests.data.test_matbench_sources import CUSTOM, custom_file, custom_ids, write_folds

SPEC = """
strategies = ["scratch"]
seeds = [0]

[[datasets]]
store = "{store}"
ingest = "{ingest}"
{sources}
targets = ["band_gap"]
{options}

[[datasets.splits]]
method = "random"

[[models]]
name = "none"
"""


@pytest.fixture(autouse=True)
def _no_ambient_folds(tmp_path, monkeypatch):
    monkeypatch.setattr(mb, "installed_folds_file", lambda: None)
    monkeypatch.setenv("ATOMCOLLAPSE_DATA", str(tmp_path / "ambient"))


def write_spec(tmp_path, *, ingest="matbench", sources=("my_gaps.json.gz",), options="",
               store=CUSTOM):  # fmt: skip
    path = tmp_path / "spec.toml"
    listed = "" if sources is None else "sources = [" + ", ".join(f'"{s}"' for s in sources) + "]"
    path.write_text(SPEC.format(store=store, ingest=ingest, sources=listed, options=options))
    return path


def test_a_custom_matbench_task_is_ingested_and_split_by_bench(tmp_path):
    custom_file(tmp_path, columns=("structure", "band_gap", "comment"))
    ids = custom_ids()
    write_folds(tmp_path / "folds.json", CUSTOM, [ids[0::3], ids[1::3], ids[2::3]])
    spec = load_spec(write_spec(tmp_path, options=f'task = "{CUSTOM}"\ntarget = "band_gap"\n'
                                                  'unit = "eV"\nfolds = "folds.json"'))  # fmt: skip
    (d,) = spec.datasets
    assert dict(d.ingest_options) == {"task": CUSTOM, "target": "band_gap", "unit": "eV",
                                      "folds": str(tmp_path / "folds.json")}  # fmt: skip
    root = tmp_path / "root"
    inputs = resolve_inputs(spec, tmp_path / "out", root, create=True)
    store = open_store(CUSTOM, root)
    assert store.target_unit("band_gap") == "eV" and list(store.ids) == ids
    np.testing.assert_array_equal(store.target("band_gap"), 0.25 * np.arange(9))
    assert store.column("fold").tolist() == [str(i % 3) for i in range(9)]
    assert inputs.datasets[CUSTOM].content_hash == store.content_hash
    assert inputs.datasets[CUSTOM].splits[("random", "band_gap")].path is not None


def test_dry_run_writes_nothing_and_says_what_will_be_ingested(tmp_path):
    custom_file(tmp_path)
    spec = load_spec(write_spec(tmp_path, options=f'task = "{CUSTOM}"\nunit = "eV"'))
    inputs = resolve_inputs(spec, tmp_path / "out", tmp_path / "root", create=False)
    assert inputs.datasets[CUSTOM].missing.endswith("will be ingested (matbench)")
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"options": f'task = "{CUSTOM}"'}, "needs its target's unit"),
    ({"options": 'task = "matbench_mp_gap"\nunit = "meV"'}, "the official task's unit is 'eV'"),
    ({"options": ""}, "'datasets[0].task': ingest 'matbench' needs it"),
    ({"ingest": "qm9", "options": 'unit = "eV"'}, "'datasets[0].unit': ingest 'qm9' does not take it"),
    ({"ingest": "none", "options": 'task = "x"'}, "'datasets[0].task' is an ingest option"),
    ({"ingest": "qm9", "sources": ("a.csv", "b.csv")}, "ingest 'qm9' takes one source, not 2"),
    ({"ingest": "extxyz", "sources": None}, "ingest 'extxyz' needs the files"),
    ({"options": 'task = "x"\ncolour = "red"'}, "unknown key 'datasets[0].colour'"),
    ({"ingest": "cif"}, "'datasets[0].ingest' must be one of qm9, matbench, extxyz, none"),
])  # fmt: skip
def test_bad_ingest_settings_fail_at_spec_load(tmp_path, kwargs, message):
    path = write_spec(tmp_path, **kwargs)
    with pytest.raises(InputError) as e:
        load_spec(path)
    assert message in e.value.line() and str(path) in e.value.line()
