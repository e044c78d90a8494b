"""The end of a benchmark: summary, reports, collapse analysis and the study page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console


def finish(
    spec: Any,
    out: Path,
    outcomes: list[Any],
    t0: float,
    *,
    data_root: Path | None,
    console: Console,
    err_console: Console,
) -> bool:
    """Report, collapse and the study page over the finished cells (``bench`` ends here and
    ``bench --collect`` does only this); False when a cell is missing or failed."""
    import time
    from collections import Counter

    from atomcollapse.bench.analysis import (
        run_collapse_analysis,
        write_reports,
        write_study_page,
    )
    from atomcollapse.bench.pipeline import make_plan, summary_line, write_summary

    plan = make_plan(spec, out, data_root, create=False)
    summary = write_summary(plan, outcomes)
    files: list[Path] = []
    problems: list[str] = []
    aggs: dict = {}
    folders: list[Path] = []
    if spec.report:
        files, aggs = write_reports(plan, console)
    if spec.collapse.enabled:
        folders, problems = run_collapse_analysis(plan, console)
        files += [f for d in folders for f in sorted(d.rglob("*")) if f.is_file()]
    plots = [f for f in files if f.suffix in (".png", ".svg")]
    if plots:
        console.print("plots:", highlight=False)
        for f in plots:
            console.print(f"  {f}", highlight=False, soft_wrap=True)
    counts = Counter(plan.state(c) for c in plan.cells)
    missing = [c for c in plan.cells if plan.state(c) != "done"]
    if missing:
        _print_submitted(out, missing, err_console)
    for c in missing:
        detail = c.blocked or (plan.statuses.get(c.cell_id or "") or {}).get("error") or ""
        err_console.print(f"not done: {c.key.label} ({plan.state(c)}) {detail}", highlight=False,
                          soft_wrap=True)  # fmt: skip
    for p in problems:
        err_console.print(p, highlight=False, soft_wrap=True)
    not_done = [f"not done: {c.key.label} ({plan.state(c)}) "
                f"{c.blocked or (plan.statuses.get(c.cell_id or '') or {}).get('error') or ''}".strip()
                for c in missing]  # fmt: skip
    failed = [f"failed in this invocation: {f['cell']} (exit {f['returncode']}): {f['error']}; "
              f"log {f['log']}" for f in summary["failures"]]  # fmt: skip
    page = write_study_page(plan, aggs, folders, [*not_done, *failed, *problems],
                            time.perf_counter() - t0)  # fmt: skip
    console.print(f"{summary_line(counts)}; summary in {out / 'bench.json'}; the study on one "
                  f"page: {page}", highlight=False, soft_wrap=True)  # fmt: skip
    return not (missing or problems or summary["failures"])


def _print_submitted(out: Path, missing: list[Any], err_console: Console) -> None:
    from atomcollapse.bench.slurm import load_submitted

    record = load_submitted(out)
    for c in missing:
        entry = record.get(c.cell_id or "")
        if entry and not Path(entry["status"]).is_file():
            err_console.print(f"{c.key.label}: job {entry['job_id']} has not finished",
                              highlight=False)  # fmt: skip
