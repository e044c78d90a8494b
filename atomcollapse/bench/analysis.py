"""After the cells: the report (tables and plots) and the collapse analysis, per model.

Only the runs of this spec's cells are reported (found by identity), never whatever else lies
in the output folder, so a changed spec does not mix old runs into its tables.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from rich.console import Console

from atomcollapse.analysis.aggregate import Aggregate
from atomcollapse.bench.pipeline import Plan
from atomcollapse.errors import InputError

REPORT, COLLAPSE, STUDY_PAGE = "report", "collapse", "report.html"


def write_reports(plan: Plan, console: Console) -> tuple[list[Path], dict[str, Aggregate]]:
    """One report per model into ``<out>/report/<model>``; prints its table; returns its files
    and each model's aggregate."""
    from atomcollapse.analysis.aggregate import aggregate
    from atomcollapse.analysis.outputs import write_report
    from atomcollapse.analysis.report import render_rich
    from atomcollapse.analysis.runs import load_run

    written: list[Path] = []
    aggs: dict[str, Aggregate] = {}
    for m in plan.spec.models:
        runs = [load_run(path) for _, path in plan.done_runs(m.name)]
        if not runs:
            console.print(f"report {m.name}: no finished runs yet", highlight=False)
            continue
        agg = aggs[m.name] = aggregate(runs)
        out = plan.out / REPORT / m.name
        files = write_report(agg, out, plots=plan.spec.plots, overwrite=True)
        console.rule(f"report: {plan.spec.name} / {m.name} ({len(runs)} runs)")
        render_rich(agg, console)
        written += files
    return written, aggs


def write_study_page(
    plan: Plan,
    aggs: dict[str, Aggregate],
    collapse_folders: list[Path],
    problems: list[str],
    wall_seconds: float,
) -> Path:
    """``<out>/report.html``: every model's tables and figures (from ``<out>/report/<model>``),
    the collapse folders, the spec, provenance and the cells not done."""
    from atomcollapse.analysis.html import ModelSection, Study, load_collapse, write_html

    models = [ModelSection(name, agg, sorted((plan.out / REPORT / name / "plots").glob("*")))
              for name, agg in aggs.items()]  # fmt: skip
    collapse = [load_collapse(f, " / ".join(f.relative_to(plan.out / COLLAPSE).parts))
                for f in collapse_folders]  # fmt: skip
    study = Study(f"{plan.spec.name}: atomcollapse study", models, collapse, spec=plan.spec.path,
                  problems=problems, wall_seconds=wall_seconds,
                  description=plan.spec.description)  # fmt: skip
    return write_html(study, plan.out / STUDY_PAGE)


def collapse_groups(plan: Plan) -> dict[tuple[str, str, str, str], list[Path]]:
    """Finished runs per (model, dataset, split, target), of the seeds the spec names."""
    seeds = plan.spec.collapse.seeds or plan.spec.seeds[:1]
    groups: dict[tuple[str, str, str, str], list[Path]] = defaultdict(list)
    for c, path in plan.done_runs():
        k = c.key
        if k.seed in seeds:
            groups[(k.model, k.dataset, k.split, k.target)].append(path)
    return dict(groups)


def _unchanged(out: Path, inputs: dict) -> str | None:
    """When ``out`` holds a collapse analysis of exactly these inputs made by this code: when it
    was made (it is kept: t-SNE of thousands of atoms per model costs minutes)."""
    import json

    from atomcollapse.artifacts import MANIFEST, code_version

    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("inputs") != inputs or manifest.get("code_version") != code_version():
        return None
    return str(manifest.get("created_at") or "?")


def run_collapse_analysis(plan: Plan, console: Console) -> tuple[list[Path], list[str]]:
    """The ``collapse`` analysis per group; returns its folders and problems met. A folder whose
    manifest records the same pretrained model, runs, split, partition and settings, made by
    the same code version, is kept as it is (``bench --collect`` after each batch of cells)."""
    from atomcollapse.analysis.pipeline import (
        CollapseSettings,
        collapse_record,
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
        pretrained = models[model].pretrained_arg  # a checkpoint file or a registered name
        if pretrained is None:
            continue
        cell = cells[key]
        out = plan.out / COLLAPSE / model / dataset / f"{split}-{target}"
        record = collapse_record(pretrained, runs, data=cell.store, split=cell.split_path,
                                 partition=cs.partition, settings=settings)  # fmt: skip
        made = _unchanged(out, record)
        if made is not None:
            console.print(f"collapse {model} / {dataset} / {split} / {target}: same runs and "
                          f"settings as the analysis of {made}, kept", highlight=False)  # fmt: skip
            written.append(out)
            continue
        try:
            inputs = resolve_inputs(pretrained, runs, data=cell.store, split=cell.split_path,
                                    partition=cs.partition,
                                    data_root=None if plan.root is None else Path(plan.root))  # fmt: skip
            result, sample, notes = run_collapse(inputs, settings)
            write_collapse(result, sample, out, notes=notes, overwrite=True, inputs=record)
        except InputError as e:
            problems.append(f"collapse {model} {dataset} {split} {target}: {e.line()}")
            continue
        console.rule(f"collapse: {model} / {dataset} / {split} / {target}")
        render_collapse(result.rows, "table", console)
        written.append(out)
    return written, problems
