"""A benchmark end to end: inputs, cells and their state, the runs, then report and collapse."""

from __future__ import annotations

import contextlib
import fnmatch
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from atomcollapse.artifacts import (
    MANIFEST,
    header,
    sha256_file,
    write_json_atomic,
    write_text_atomic,
)
from atomcollapse.bench.cells import Cell, RunState, resolve, scan_runs, toml_text
from atomcollapse.bench.prepare import Inputs, resolve_inputs
from atomcollapse.bench.runner import Job, Outcome, program
from atomcollapse.bench.spec import Spec
from atomcollapse.errors import InputError

LOGS, STATUS = "logs", "status"
SUMMARY = "bench.json"


@dataclass
class Plan:
    """Every cell of a spec with what is already there for it."""

    spec: Spec
    out: Path
    root: str | Path | None
    inputs: Inputs
    cells: list[Cell]
    runs: dict[str, list[RunState]]
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)

    def run_of(self, cell: Cell) -> RunState | None:
        found = self.runs.get(cell.cell_id or "", [])
        return found[0] if found else None

    def state(self, cell: Cell) -> str:
        """``done``, ``resume`` (an unfinished run), ``failed`` (last attempt), ``new``, ``blocked``.
        A cell stopped together with ``bench`` (a signal) has not failed: it resumes."""
        if cell.identity is None:
            return "blocked"
        run = self.run_of(cell)
        if run is not None and run.finished:
            return "done"
        status = self.statuses.get(cell.cell_id or "") or {}
        if status.get("returncode", 0) != 0 and not status.get("stopped"):
            return "failed"
        return "resume" if run is not None else "new"

    def run_dir(self, cell: Cell) -> Path:
        run = self.run_of(cell)
        return run.path if run is not None else cell.default_run_dir(self.out)

    def done_runs(self, model: str | None = None) -> list[tuple[Cell, Path]]:
        return [(c, self.run_dir(c)) for c in self.cells
                if self.state(c) == "done" and model in (None, c.key.model)]  # fmt: skip

    def job(self, cell: Cell) -> Job:
        cid = cell.cell_id or ""
        run_dir = self.run_dir(cell)
        argv = (
            *program(self.spec.run.gpus_per_cell),
            *cell.train_args(self.out, run_dir, self.spec.name),
        )
        return Job(cid, cell.key.label, argv, run_dir, self.out / LOGS / f"{cid[:16]}.log",
                   self.out / STATUS / f"{cid[:16]}.json")  # fmt: skip


def make_plan(spec: Spec, out: Path, root: str | Path | None, *, create: bool,
              say=lambda _: None) -> Plan:  # fmt: skip
    inputs = resolve_inputs(spec, out, root, create=create, say=say)
    cells = resolve(spec, inputs)
    plan = Plan(spec, out, root, inputs, cells, scan_runs(out))
    for c in cells:
        if c.cell_id is not None:
            status = out / STATUS / f"{c.cell_id[:16]}.json"
            if status.is_file():
                with contextlib.suppress(json.JSONDecodeError):
                    plan.statuses[c.cell_id] = json.loads(status.read_text())
    return plan


def _arm(cell: Cell) -> tuple[str, ...]:
    k = cell.key
    return (k.dataset, k.split, k.target, k.model, k.strategy)


def train_seconds_by_arm(plan: Plan) -> dict[tuple[str, ...], float]:
    """The longest training wall time (s, from the run manifests) of each arm's finished seeds."""
    seconds: dict[tuple[str, ...], float] = {}
    for c in plan.cells:
        run = plan.run_of(c)
        if run is None or not run.finished:
            continue
        try:
            wall = float(json.loads((run.path / MANIFEST).read_text())["train_seconds"]["wall"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        seconds[_arm(c)] = max(seconds.get(_arm(c), 0.0), wall)
    return seconds


def pending_jobs(plan: Plan) -> list[Job]:
    """Jobs for every cell not done (one per identity), in the order they start: unfinished runs
    first (whatever their last exit), then seed by seed, so that a study stopped part-way leaves
    whole seeds, the units of its paired differences, rather than whole strategies. Within a
    seed, the arms whose finished seeds trained longest start first (spec order where none has
    finished), so the study does not end on one long cell while the other slots idle. Writes
    their config files."""
    seconds = train_seconds_by_arm(plan)
    order = sorted(range(len(plan.cells)),
                   key=lambda i: (plan.run_of(plan.cells[i]) is None, plan.cells[i].key.seed,
                                  -seconds.get(_arm(plan.cells[i]), 0.0), i))  # fmt: skip
    jobs, seen = [], set()
    for c in (plan.cells[i] for i in order):
        if plan.state(c) in ("done", "blocked") or c.cell_id in seen:
            continue
        seen.add(c.cell_id)
        path = c.config_path(plan.out)
        if not path.is_file():
            write_text_atomic(path, toml_text(c.table))
        jobs.append(plan.job(c))
    return jobs


def select_jobs(plan: Plan, jobs: list[Job], patterns: list[str]) -> list[Job]:
    """The ``jobs`` whose cell label (``dataset/split/target/model/strategy/seedN``) matches one
    of the globs; a glob that matches no cell of the spec is an input error (a typo would
    otherwise train nothing and say nothing)."""
    labels = [c.key.label for c in plan.cells]
    for p in patterns:
        if not any(fnmatch.fnmatchcase(label, p) for label in labels):
            raise InputError(f"--only {p!r} matches no cell of the spec; cells are named like "
                             f"{labels[0] if labels else '-'}")  # fmt: skip
    return [j for j in jobs if any(fnmatch.fnmatchcase(j.label, p) for p in patterns)]


_STYLE = {"done": "green", "resume": "yellow", "new": "cyan", "failed": "red", "blocked": "magenta"}


def print_plan(plan: Plan, console: Console) -> Counter:
    """The dry run's table: every cell, its identity and its state; then why cells wait."""
    table = Table(title=f"benchmark {plan.spec.name}: {len(plan.cells)} cells")
    for col in ("dataset/split/target", "model", "strategy", "seed", "cell id", "state"):
        table.add_column(col, overflow="fold")
    counts: Counter = Counter()
    reasons: Counter = Counter()
    failed = []
    for c in plan.cells:
        state = plan.state(c)
        counts[state] += 1
        k = c.key
        table.add_row(f"{k.dataset}/{k.split}/{k.target}", k.model, k.strategy, str(k.seed),
                      (c.cell_id or "-")[:12], f"[{_STYLE[state]}]{state}[/]")  # fmt: skip
        if state == "blocked":
            reasons[c.blocked] += 1
        if state == "failed":
            failed.append(f"failed before: {k.label}: "
                          f"{plan.statuses[c.cell_id or ''].get('error') or '?'}")  # fmt: skip
    console.print(table)
    for line in [*(f"waiting ({n} cells): {r}" for r, n in reasons.items()), *failed,
                 *plan.inputs.notes]:  # fmt: skip
        console.print(line, highlight=False, soft_wrap=True)
    console.print(f"{summary_line(counts)}; run directories under {plan.out / 'runs'}",
                  highlight=False, soft_wrap=True)  # fmt: skip
    return counts


def summary_line(counts: Counter) -> str:
    parts = [
        f"{counts[s]} {s}" for s in ("done", "resume", "new", "failed", "blocked") if counts[s]
    ]
    return f"{sum(counts.values())} cells: " + (", ".join(parts) or "none")


def write_summary(plan: Plan, outcomes: list[Outcome]) -> dict[str, Any]:
    """``<out>/bench.json``: each cell's state and run directory, and this invocation's failures."""
    cells = [{"cell": c.key.label, "cell_id": c.cell_id, "state": plan.state(c),
              "run_dir": str(plan.run_dir(c)) if c.cell_id else None, "blocked": c.blocked}
             for c in plan.cells]  # fmt: skip
    failures = [{"cell": o.label, "returncode": o.returncode, "error": o.error, "log": str(o.log)}
                for o in outcomes if not o.ok]  # fmt: skip
    spec = Path(plan.spec.path).resolve()
    inputs = {"spec": {"path": str(spec),
                       "sha256": sha256_file(spec) if spec.is_file() else None}}  # fmt: skip
    summary = {**header("bench", inputs=inputs), "spec": str(plan.spec.path),
               "name": plan.spec.name, "cells": cells, "failures": failures, "counts": dict(Counter(c["state"] for c in cells))}  # fmt: skip
    write_json_atomic(plan.out / SUMMARY, summary)
    return summary
