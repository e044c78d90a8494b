"""After the cells: the report (tables and plots) and the collapse analysis, per model.

Only the runs of this spec's cells are reported (found by identity), never whatever else lies
in the output folder, so a changed spec does not mix old runs into its tables.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from rich.console import Console

from atomcollapse.bench.pipeline import Plan
from atomcollapse.errors import InputError

REPORT, COLLAPSE = "report", "collapse"


def write_reports(plan: Plan, console: Console) -> list[Path]:
    """One report per model into ``<out>/report/<model>``; prints its table; returns its files."""
    from atomcollapse.analysis.aggregate import aggregate
    from atomcollapse.analysis.report import render_rich
    from atomcollapse.analysis.runs import load_run
    from atomcollapse.cli.report import write_report

    written: list[Path] = []
    for m in plan.spec.models:
        runs = [load_run(path) for _, path in plan.done_runs(m.name)]
        if not runs:
            console.print(f"report {m.name}: no finished runs yet", highlight=False)
            continue
        agg = aggregate(runs)
        out = plan.out / REPORT / m.name
        files = write_report(agg, out, plots=plan.spec.plots, overwrite=True)
        console.rule(f"report: {plan.spec.name} / {m.name} ({len(runs)} runs)")
        render_rich(agg, console)
        written += files
    return written


def collapse_groups(plan: Plan) -> dict[tuple[str, str, str, str], list[Path]]:
    """Finished runs per (model, dataset, split, target), of the seeds the spec names."""
    seeds = plan.spec.collapse.seeds or plan.spec.seeds[:1]
    groups: dict[tuple[str, str, str, str], list[Path]] = defaultdict(list)
    for c, path in plan.done_runs():
        k = c.key
        if k.seed in seeds:
            groups[(k.model, k.dataset, k.split, k.target)].append(path)
    return dict(groups)


def run_collapse_analysis(plan: Plan, console: Console) -> tuple[list[Path], list[str]]:
    """The ``collapse`` analysis per group; returns folders written and problems met."""
    from atomcollapse.analysis.pipeline import (
        CollapseSettings,
        resolve_inputs,
        run_collapse,
        write_collapse,
    )
    from atomcollapse.analysis.report import render_collapse

    cs = plan.spec.collapse
    settings = CollapseSettings(layer=cs.layer, max_per_class=cs.max_per_class, seed=0,
                                edges=cs.edges, tsne=cs.tsne, tsne_max_iter=cs.tsne_max_iter,
                                projections=cs.projections,
                                tsne_backend=cs.tsne_backend)  # fmt: skip
    models = {m.name: m for m in plan.spec.models}
    cells = {(c.key.model, c.key.dataset, c.key.split, c.key.target): c for c in plan.cells}
    written, problems = [], []
    for key, runs in collapse_groups(plan).items():
        model, dataset, split, target = key
        checkpoint = models[model].checkpoint
        if checkpoint is None:
            console.print(f"collapse {model}: skipped (compares checkpoint files; {model} is "
                          "a named adapter)", highlight=False)  # fmt: skip
            continue
        cell = cells[key]
        out = plan.out / COLLAPSE / model / dataset / f"{split}-{target}"
        try:
            inputs = resolve_inputs(checkpoint, runs, data=cell.store, split=cell.split_path,
                                    partition=cs.partition,
                                    data_root=None if plan.root is None else Path(plan.root))  # fmt: skip
            result, sample, notes = run_collapse(inputs, settings)
            write_collapse(result, sample, out, notes=notes, overwrite=True)
        except InputError as e:
            problems.append(f"collapse {model} {dataset} {split} {target}: {e.line()}")
            continue
        console.rule(f"collapse: {model} / {dataset} / {split} / {target}")
        render_collapse(result.rows, "table", console)
        written.append(out)
    return written, problems
