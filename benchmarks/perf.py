"""Runs every performance benchmark script and prints one table of ratios against references.

    python benchmarks/perf.py --quick                 # a few minutes on 2 cores
    python benchmarks/perf.py                         # full sizes (about half an hour on 2 cores)
    python benchmarks/perf.py --only throughput splits

Each script runs in its own subprocess, one after the other, with its own options and timeout;
``--quick`` is passed through to all. Their ``PERF`` lines (see ``_perf.py``) are collected into
one table (ratio = ours / reference; the "better" column says which way is good) and written to
``results/perf.json``. A script that fails, times out or lacks an optional package never stops
the others: its row says why. Exit code 1 when any script failed or timed out, else 0.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from _perf import parse_perf_line
from rich.console import Console
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
Status = Literal["ok", "skipped", "failed", "timeout"]
COLUMNS = ("benchmark", "metric", "ours", "reference", "ratio", "unit", "better")


@dataclass(frozen=True)
class Script:
    """One benchmark script, its options, and its timeouts in seconds (full / quick)."""

    name: str
    file: str
    args: tuple[str, ...] = ()
    timeout_s: float = 900.0
    quick_timeout_s: float = 240.0


@dataclass
class ScriptResult:
    """What one script run gave: its PERF records and, when it did not finish well, why."""

    name: str
    status: Status
    records: list[dict[str, Any]] = field(default_factory=list)
    note: str | None = None
    returncode: int | None = None
    seconds: float = 0.0
    command: list[str] = field(default_factory=list)


def plan(data_root: Path) -> list[Script]:
    """The scripts in the order they run; real QM9 inputs are used wherever they exist."""
    root = ("--data-root", str(data_root))
    mft_inputs = {
        "--data": data_root / "stores" / "qm9",
        "--split": ROOT / "splits" / "qm9" / "property-tail-gap",
        "--pretrained": ROOT / "pretrained" / "painn-qm9-xtb" / "checkpoint.pt",
        "--ff-data": ROOT / "pretrained" / "qm9-xtb-2k",
    }
    mft_args: tuple[str, ...] = ()
    if all(p.exists() for p in mft_inputs.values()):
        mft_args = (*(x for k, p in mft_inputs.items() for x in (k, str(p))), "--target", "gap")
    return [
        Script("ingest", "bench_ingest.py", root, 900, 240),
        Script("neighbors", "bench_neighbors.py", root, 900, 180),
        Script("splits", "bench_splits.py", root, 1200, 240),
        Script("throughput", "bench_throughput.py", root, 3600, 360),
        Script("mft_step", "bench_mft_step.py", mft_args, 900, 240),
        Script("xtb", "bench_xtb.py", root, 900, 180),
        Script("collapse", "bench_collapse.py", (), 1200, 240),
    ]


def collect(lines: Iterable[str]) -> list[dict[str, Any]]:
    """The PERF records among a script's output lines, in order."""
    return [rec for line in lines if (rec := parse_perf_line(line.rstrip("\n"))) is not None]


def diagnose(
    returncode: int | None, tail: list[str], timeout_s: float
) -> tuple[Status, str | None]:
    """Status and one-line reason from a finished (or killed) script's exit code and output."""
    if returncode is None:
        return "timeout", f"timed out after {timeout_s:.0f} s"
    if returncode == 0:
        return "ok", None
    text = "\n".join(tail)
    missing = re.findall(r"No module named '([\w.]+)'", text)
    if missing:
        return "skipped", f"skipped: {missing[-1].split('.')[0]} not installed"
    last = next((s.strip() for s in reversed(tail) if s.strip()), "no output")
    return "failed", f"failed (exit {returncode}): {last[:160]}"


def run_script(script: Script, quick: bool, timeout_s: float | None = None) -> ScriptResult:
    """Run one script, echoing its human-readable lines, and collect its PERF lines."""
    timeout = timeout_s or (script.quick_timeout_s if quick else script.timeout_s)
    cmd = [sys.executable, str(HERE / script.file), *script.args, *(["--quick"] if quick else [])]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    lines: list[str] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)  # fmt: skip

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if not line.startswith("PERF "):
                print(f"  [{script.name}] {line}", end="", flush=True)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        rc: int | None = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        rc = None
    reader.join(timeout=10)
    status, note = diagnose(rc, lines[-40:], timeout)
    records = collect(lines)
    if status == "ok" and not records:
        status, note = "failed", "failed: printed no PERF line"
    return ScriptResult(script.name, status, records, note, rc, time.perf_counter() - t0, cmd)


def _num(x: float | None) -> str:
    if x is None:
        return "-"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.2f}" if abs(x) >= 1 else f"{x:.3g}"


def table_rows(results: Iterable[ScriptResult]) -> list[dict[str, str]]:
    """Display rows (strings keyed by ``COLUMNS``): one per PERF record, plus one per script that
    did not finish well, whose ``ratio`` cell says why (e.g. "skipped: schnetpack not installed").
    """
    rows = []
    for res in results:
        for rec in res.records:
            ref = rec.get("reference")
            name = rec.get("reference_name")
            ratio = f"{rec['ratio']:.2f}x" if rec.get("ratio") is not None else None
            rows.append({
                "benchmark": rec["benchmark"], "metric": rec["metric"], "ours": _num(rec["ours"]),
                "reference": f"{name}: {_num(ref)}" if name and ref is not None else (name or "-"),
                "ratio": ratio or rec.get("note") or "-", "unit": rec["unit"],
                "better": rec["better"],
            })  # fmt: skip
        if res.status != "ok":
            rows.append({"benchmark": res.name, "metric": "-", "ours": "-", "reference": "-",
                         "ratio": res.note or res.status, "unit": "", "better": ""})  # fmt: skip
    return rows


def render(rows: list[dict[str, str]], title: str) -> Table:
    table = Table(title=title)
    for col in COLUMNS:
        table.add_column(col, justify="right" if col in ("ours", "ratio") else "left")
    for row in rows:
        table.add_row(*(row[c] for c in COLUMNS))
    return table


def _version(pkg: str) -> str | None:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return None


def report(results: list[ScriptResult], quick: bool) -> dict[str, Any]:
    """The perf.json document: machine, code version, each script's run and every record."""
    from atomcollapse.artifacts import code_version, now_utc

    return {
        "artifact": "perf",
        "created": now_utc(),
        "quick": quick,
        "code_version": code_version(),
        "machine": {
            "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "platform": platform.platform(),
            "python": platform.python_version(),
            "torch": _version("torch"),
            "schnetpack": _version("schnetpack"),
            "load_average_at_end": list(os.getloadavg()),
        },
        "scripts": [{k: v for k, v in asdict(r).items() if k != "records"} for r in results],
        "results": [{"script": r.name, **rec} for r in results for rec in r.records],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, passed to every script")
    ap.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    ap.add_argument("--data-root", default=None, help="folder holding stores/ (default ./data)")
    ap.add_argument("--out", type=Path, default=Path("results/perf.json"))
    ap.add_argument("--timeout", type=float, default=None, help="seconds per script (override)")
    args = ap.parse_args(argv)

    from atomcollapse.artifacts import write_json_atomic
    from atomcollapse.data.store import data_root

    scripts = plan(data_root(args.data_root))
    if args.only:
        unknown = set(args.only) - {s.name for s in scripts}
        if unknown:
            ap.error(f"unknown benchmark(s) {sorted(unknown)}; known: {[s.name for s in scripts]}")
        scripts = [s for s in scripts if s.name in args.only]
    results = []
    for script in scripts:
        print(f"== {script.name}: {script.file} {' '.join(script.args)}", flush=True)
        res = run_script(script, args.quick, args.timeout)
        print(f"== {script.name}: {res.status} in {res.seconds:.0f} s", flush=True)
        results.append(res)

    mode = "quick" if args.quick else "full"
    console = Console(width=None if sys.stdout.isatty() else 200)
    console.print(render(table_rows(results), f"atomcollapse performance ({mode})"))
    for r in results:
        print(f"{r.name:<11} {r.status:<8} {r.seconds:7.0f} s  {r.note or ''}")
    write_json_atomic(args.out, report(results, args.quick))
    print(f"wrote {args.out}")
    return 1 if any(r.status in ("failed", "timeout") for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
