"""``atomcollapse bench SPEC.toml``: a whole benchmark, end to end, resumable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from atomcollapse.cli.common import console, err_console, state
from atomcollapse.errors import InputError

LAUNCHERS = ("local", "slurm")


def bench(
    spec: Annotated[
        Path, typer.Argument(help="Benchmark spec (TOML), e.g. benchmarks/smoke.toml.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Output folder \\[default: results/<spec name>].")
    ] = None,
    jobs: Annotated[
        int | None, typer.Option("--jobs", help="Cells at once \\[default: the spec's run.jobs].")
    ] = None,
    launcher: Annotated[str, typer.Option("--launcher", help="local | slurm.")] = "local",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the cells and which are done; run nothing.")
    ] = False,
    collect: Annotated[
        bool, typer.Option("--collect", help="Train nothing: gather finished cells and report.")
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only",
            help="Train only the cells whose label matches this glob (repeatable), e.g. "
            "'*/gap/*/seed0' or '*/mft/*'; the others stay for a later run (and the exit "
            "code is 1 while any is not done). Labels: --dry-run.",
        ),
    ] = None,
) -> None:
    """Ingest, split, train every cell (skipping finished ones; unfinished runs resume first,
    then seed by seed, longest arms first), then report and collapse; ends with
    ``<out>/report.html``, the whole study on one self-contained page."""
    import time

    from atomcollapse.bench.spec import load_spec

    t0 = time.perf_counter()

    if launcher not in LAUNCHERS:
        raise InputError(f"--launcher must be local or slurm, not {launcher!r}")
    if jobs is not None and jobs < 1:
        raise InputError(f"--jobs must be at least 1, got {jobs}")
    if dry_run and collect:
        raise InputError("--dry-run and --collect exclude each other")
    if only and (dry_run or collect):
        raise InputError(
            "--only selects cells to train; it does not go with --dry-run or --collect"
        )
    s = load_spec(spec)
    out = out if out is not None else Path("results") / s.name
    if (out / "compute.json").is_file() and not (out / "runs").is_dir():
        raise InputError(
            "a published study (benchmarks/publish.py), not a bench folder: run into another "
            "--out (e.g. results/bench/<name>) and publish from there",
            file=out,
        )
    if dry_run:
        _dry_run(s, out)
        return
    from atomcollapse.process import artifact_lock

    with artifact_lock(out, "bench"):  # one bench per output folder
        if collect:
            _finish(s, out, [], t0)
        else:
            _run(s, out, jobs or s.run.jobs, launcher, t0, only or [])


def _dry_run(spec, out: Path) -> None:
    from atomcollapse.bench.pipeline import make_plan, print_plan

    plan = make_plan(spec, out, state.data_root, create=False)
    print_plan(plan, console)


def _run(spec, out: Path, n_jobs: int, launcher: str, t0: float, only: list[str]) -> None:
    from collections import Counter

    from atomcollapse.bench.pipeline import make_plan, pending_jobs, select_jobs, summary_line
    from atomcollapse.bench.runner import run_local

    def say(line: str) -> None:
        console.print(line, highlight=False, soft_wrap=True)

    plan = make_plan(spec, out, state.data_root, create=True, say=say)
    say(summary_line(Counter(plan.state(c) for c in plan.cells)))
    jobs = pending_jobs(plan)
    if only:
        jobs = select_jobs(plan, jobs, only)
        say(f"--only: {len(jobs)} of the cells not done match {', '.join(only)}")
    if launcher == "slurm":
        _submit(spec, out, jobs, say, t0)
        return
    total = len(jobs)
    done = [0]

    def started(job, env) -> None:
        where = f"threads {env.get('OMP_NUM_THREADS')}" + (
            f", GPU {env['CUDA_VISIBLE_DEVICES']}" if "CUDA_VISIBLE_DEVICES" in env else "")  # fmt: skip
        say(f"start {job.label} ({where})")

    def finished(o) -> None:
        done[0] += 1
        verdict = "[green]ok[/]" if o.ok else f"[red]failed (exit {o.returncode})[/]: {o.error}"
        console.print(f"[{done[0]}/{total}] {o.label}: {verdict} in {o.seconds:.0f} s",
                      highlight=False)  # fmt: skip

    outcomes = run_local(jobs, n_jobs, gpus_per_cell=spec.run.gpus_per_cell, on_start=started,
                         on_done=finished)  # fmt: skip
    _finish(spec, out, outcomes, t0)


def _submit(spec, out: Path, jobs, say, t0: float) -> None:
    from atomcollapse.bench.slurm import in_flight, submit

    busy = in_flight(out, spec.slurm)
    if busy:
        say(f"{len(busy)} cells are still queued or running from an earlier submission")
    jobs = [j for j in jobs if j.cell_id not in busy]
    if not jobs and not busy:
        _finish(spec, out, [], t0)
        return
    handles = submit(jobs, out, spec.slurm, gpus_per_cell=spec.run.gpus_per_cell, name=spec.name)
    ids = sorted({str(h.job_id).split("_")[0] for h in handles})
    say(f"submitted {len(jobs)} cells ({', '.join(ids) or 'none'}); when they have finished: "
        f"atomcollapse bench {spec.path} --out {out} --collect")  # fmt: skip


def _finish(spec, out: Path, outcomes, t0: float) -> None:
    from atomcollapse.bench.finish import finish

    if not finish(spec, out, outcomes, t0, data_root=state.data_root, console=console,
                  err_console=err_console):  # fmt: skip
        raise SystemExit(1)  # typer.Exit codes are lost under standalone_mode=False


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
