"""The ingest-source registry: one table, readers imported on first use, options checked first."""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest

from atomcollapse.data.sources import SOURCES, read_source, source
from atomcollapse.data.sources import matbench as mb
from atomcollapse.data.sources.matbench import load_matbench
from atomcollapse.errors import InputError
from tests.data.test_matbench_sources import CUSTOM, custom_file


@pytest.fixture(autouse=True)
def _no_ambient_folds(tmp_path, monkeypatch):
    monkeypatch.setattr(mb, "installed_folds_file", lambda: None)
    monkeypatch.setenv("ATOMCOLLAPSE_DATA", str(tmp_path / "ambient"))


def test_the_table_names_every_source_and_imports_none_of_them():
    code = ("import sys; from atomcollapse.data.sources import SOURCES; print(sorted(SOURCES)); "
            "print(sorted(m for m in sys.modules if m.startswith('atomcollapse.data.sources.')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["['extxyz', 'matbench', 'qm9']", "[]"]


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_each_entry_matches_its_reader(name):
    src = SOURCES[name]
    module, _, attr = src.reader.partition(":")
    params = inspect.signature(getattr(__import__(module, fromlist=[attr]), attr)).parameters
    files = "files" if src.files == "some" else "source"
    assert {files, *src.options} <= set(params)
    assert ("data_root" in params) == src.uses_data_root
    assert set(src.required) <= set(src.options)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: source("cif"), "unknown ingest source 'cif'; known: qm9, matbench, extxyz"),
    (lambda: read_source("qm9", unit="eV"), "ingest 'qm9' takes no option 'unit'"),
    (lambda: read_source("matbench", ["x.json.gz"]), "ingest 'matbench' needs the option 'task'"),
    (lambda: read_source("extxyz", []), "ingest 'extxyz' needs at least one file"),
    (lambda: read_source("qm9", ["a.csv", "b.csv"]), "ingest 'qm9' takes one source, not 2"),
    (lambda: read_source("matbench", ["absent.json.gz"], task="mine"), "needs its target's unit"),
    (lambda: read_source("matbench", [], task="matbench_mp_gap", unit="meV"),
     "the official task's unit is 'eV'"),
])  # fmt: skip
def test_bad_options_are_refused_before_any_file_is_read(call, message):
    with pytest.raises(InputError, match=message):
        call()


def test_a_custom_matbench_task_through_the_registry_is_the_reader_s_result(tmp_path):
    src = custom_file(tmp_path, columns=("structure", "band_gap", "comment"))
    via = read_source("matbench", [src], task=CUSTOM, target="band_gap", unit="eV", folds=None)
    direct = load_matbench(CUSTOM, src, target="band_gap", unit="eV")
    assert list(via.structures.ids) == list(direct.structures.ids)
    np.testing.assert_array_equal(via.structures.targets["band_gap"], 0.25 * np.arange(9))
    assert via.structures.target_units == {"band_gap": "eV"}
    assert via.source == direct.source
