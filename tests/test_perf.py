"""The PERF result line and ``benchmarks/perf.py``'s parser, diagnosis and table (no benchmark runs)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def mods(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module("_perf"), importlib.import_module("perf")


def test_perf_line_round_trips_through_the_runner_parser(mods, capsys):
    helper, runner = mods
    sent = helper.perf("neighbors", "molecules", 200.0, "pairs/s", "higher", "ASE", 50.0)
    helper.perf("ingest", "peak RSS", 812.5, "MiB", "lower")
    out = capsys.readouterr().out.splitlines()
    got = runner.collect(["human text", *out, "PERF {not json", 'PERF {"metric": "x"}'])
    assert got[0] == sent
    assert got[0]["ratio"] == 4.0 and list(got[0])[:8] == list(helper.FIELDS)
    assert got[1]["reference"] is None and got[1]["ratio"] is None and got[1]["ours"] == 812.5
    assert len(got) == 2
    assert json.loads(out[0][len("PERF ") :]) == sent


def test_perf_record_edge_cases(mods):
    helper, _ = mods
    assert helper.perf_record("b", "m", float("nan"), "s", "lower", "ref", 1.0)["ours"] is None
    assert helper.perf_record("b", "m", 1.0, "s", "lower", "ref", 0.0)["ratio"] is None
    rec = helper.perf_record("b", "m", 3.0, "s", "lower", "ref", None, note="skipped: x")
    assert rec["ratio"] is None and rec["note"] == "skipped: x"
    with pytest.raises(ValueError, match="better"):
        helper.perf_record("b", "m", 1.0, "s", "faster")


def test_diagnose_names_missing_package_failure_and_timeout(mods):
    _, runner = mods
    tail = ["Traceback (most recent call last):", "ModuleNotFoundError: No module named 'tblite.x'"]
    assert runner.diagnose(1, tail, 60) == ("skipped", "skipped: tblite not installed")
    assert runner.diagnose(2, ["usage: ...", "error: bad option", ""], 60) == (
        "failed",
        "failed (exit 2): error: bad option",
    )
    assert runner.diagnose(None, [], 60) == ("timeout", "timed out after 60 s")
    assert runner.diagnose(0, [], 60) == ("ok", None)


def test_table_marks_skipped_scripts_and_reference_less_rows(mods):
    helper, runner = mods
    ok = runner.ScriptResult(
        "neighbors", "ok", [helper.perf_record("neighbors", "mol", 2e6, "pairs/s", "higher",
                                               "ASE neighbor_list", 4e5)])  # fmt: skip
    status, note = runner.diagnose(1, ["ModuleNotFoundError: No module named 'schnetpack'"], 60)
    skipped = runner.ScriptResult("throughput", status, [], note)
    partial = runner.ScriptResult(
        "throughput", "ok", [helper.perf_record("throughput", "bs 32", 250.0, "molecules/s",
                                                "higher", "schnetpack", None,
                                                note="skipped: schnetpack not installed")])  # fmt: skip
    rows = runner.table_rows([ok, skipped, partial])
    assert [r["benchmark"] for r in rows] == ["neighbors", "throughput", "throughput"]
    assert rows[0]["ratio"] == "5.00x" and rows[0]["reference"] == "ASE neighbor_list: 400,000"
    assert rows[0]["ours"] == "2,000,000"
    assert rows[1]["ratio"] == "skipped: schnetpack not installed" and rows[1]["ours"] == "-"
    assert rows[2]["ratio"] == "skipped: schnetpack not installed" and rows[2]["ours"] == "250"
    assert all(set(r) == set(runner.COLUMNS) for r in rows)
    assert runner.render(rows, "t").row_count == 3


def test_run_script_keeps_records_of_a_script_that_times_out(mods, tmp_path):
    helper, runner = mods
    line = "PERF " + json.dumps(helper.perf_record("fake", "m", 1.0, "s", "lower"))
    fast, slow = tmp_path / "fast.py", tmp_path / "slow.py"
    fast.write_text(f"print('hello')\nprint({line!r})\n")
    slow.write_text(f"import time\nprint({line!r}, flush=True)\ntime.sleep(60)\n")
    res = runner.run_script(runner.Script("fast", str(fast)), quick=False)
    assert res.status == "ok" and res.returncode == 0 and res.records[0]["benchmark"] == "fake"
    res = runner.run_script(runner.Script("slow", str(slow)), quick=False, timeout_s=1.5)
    assert res.status == "timeout" and res.note == "timed out after 2 s"
    assert len(res.records) == 1 and res.seconds < 20
