"""``atomcollapse report`` (tables, plots over runs) and ``atomcollapse collapse`` (embeddings)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from atomcollapse.cli.common import console, err_console
from atomcollapse.errors import InputError


def report(
    runs: Annotated[list[Path], typer.Argument(help="Run directories, or folders of runs.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="table | md | csv | latex | json | html (html: the self-contained page on "
            "stdout, or only into --out).",
        ),
    ] = "table",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for report.{md,csv,tex,json,html}, summary.csv, plots/.",
        ),
    ] = None,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Figures.")] = True,
    collapse_dirs: Annotated[
        list[Path] | None,
        typer.Option("--collapse", help="A `collapse --out` folder to show in report.html."),
    ] = None,
    title: Annotated[str | None, typer.Option("--title", help="Title of report.html.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out.")] = False,
) -> None:
    """ID/OOD MAE per dataset, split, target and strategy: mean ± std over seeds, gains, flags."""
    from atomcollapse.analysis.aggregate import aggregate
    from atomcollapse.analysis.outputs import (
        HTML,
        check_collapse_folders,
        html_page,
        write_report,
    )
    from atomcollapse.analysis.report import FORMATS, render, render_rich
    from atomcollapse.analysis.runs import load_runs

    if fmt not in (*FORMATS, "html"):
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, html, not {fmt!r}")
    check_collapse_folders(collapse_dirs or [])
    _check_out(out, "report", overwrite)
    agg = aggregate(load_runs(runs))
    if out is not None:
        inputs = {"runs": [str(p.resolve()) for p in runs]}
        written = write_report(agg, out, plots=plots, overwrite=overwrite, title=title,
                               collapse=collapse_dirs or [], inputs=inputs)  # fmt: skip
    if fmt == "table":
        render_rich(agg, console)
    elif fmt == "html" and out is None:
        page = Path.cwd() / HTML
        typer.echo(html_page(agg, plots=plots, title=title or "atomcollapse report",
                             collapse=collapse_dirs or [], page=page), nl=False)  # fmt: skip
    elif fmt != "html":
        typer.echo(render(agg, fmt), nl=False)
    if out is not None:
        err_console.print(f"wrote {len(written)} files to {out} (page: {out / HTML})",
                          highlight=False)  # fmt: skip


def collapse(
    pretrained: Annotated[
        str,
        typer.Option(
            "--pretrained",
            help="The pretrained checkpoint the runs started from, or its registered name "
            "(ani1x:0, so3lr, ...: atomcollapse models).",
        ),
    ],
    run_dirs: Annotated[
        list[Path] | None, typer.Argument(help="Run directories (or folders of runs) to compare.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for collapse.{csv,md,tex,json} and plots.")
    ] = None,
    layer: Annotated[int, typer.Option("--layer", help="Feature layer (0 = embedding).")] = -1,
    max_per_class: Annotated[
        int, typer.Option("--max-per-class", help="Atoms (pairs) per class at most.")
    ] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of sampling, t-SNE, projections.")] = 0,
    data: Annotated[
        str | None, typer.Option("--data", help="Store name or path \\[default: the runs'].")
    ] = None,
    split: Annotated[
        Path | None, typer.Option("--split", help="Split artifact \\[default: the runs'].")
    ] = None,
    partition: Annotated[
        str, typer.Option("--partition", help="Partition of the split to sample from.")
    ] = "ood_test",
    edges: Annotated[str, typer.Option("--edges", help="auto | backbone | pair.")] = "auto",
    tsne: Annotated[
        bool, typer.Option("--tsne/--no-tsne", help="t-SNE measures and plots.")
    ] = True,
    tsne_max_iter: Annotated[int, typer.Option("--tsne-max-iter", help="t-SNE iterations.")] = 1000,
    tsne_backend: Annotated[
        str,
        typer.Option(
            "--tsne-backend",
            help="auto (openTSNE's FFT t-SNE from 5,000 points, scikit-learn's Barnes-Hut "
            "below) | opentsne | sklearn.",
        ),
    ] = "auto",
    projections: Annotated[
        int, typer.Option("--projections", help="Random directions of the sliced W1.")
    ] = 128,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Structures per forward.")] = 64,
    threads: Annotated[
        int | None, typer.Option("--threads", help="CPU threads \\[default: all].")
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="table | md | csv | latex | json.")
    ] = "table",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace --out.")] = False,
) -> None:
    """Embedding collapse of adapted models relative to the pretrained one, on the same atoms."""
    from atomcollapse.analysis.pipeline import (
        CollapseSettings,
        collapse_record,
        resolve_inputs,
        run_collapse,
        torch_threads,
        write_collapse,
    )
    from atomcollapse.analysis.report import FORMATS, render_collapse
    from atomcollapse.cli.common import state

    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    cfg = CollapseSettings(layer=layer, max_per_class=max_per_class, seed=seed, edges=edges,
                           tsne=tsne, tsne_max_iter=tsne_max_iter, projections=projections,
                           batch_size=batch_size, threads=threads,
                           tsne_backend=tsne_backend).validate()  # fmt: skip
    _check_out(out, "collapse", overwrite)
    inputs = resolve_inputs(pretrained, list(run_dirs or []), data=data, split=split,
                            partition=partition, data_root=state.data_root)  # fmt: skip
    with torch_threads(threads):
        result, sample, notes = run_collapse(inputs, cfg)
    if out is not None:
        made_from = collapse_record(pretrained, list(run_dirs or []), data=data, split=split,
                                    partition=partition, settings=cfg)  # fmt: skip
        write_collapse(result, sample, out, notes=notes, overwrite=overwrite, inputs=made_from)
    if fmt == "table":
        render_collapse(result.rows, "table", console)
        for n in notes:
            console.print(n, highlight=False, soft_wrap=True)
    else:
        typer.echo(render_collapse(result.rows, fmt), nl=False)
    if out is not None:
        err_console.print(f"wrote {out}", highlight=False)


def _check_out(out: Path | None, kind: str, overwrite: bool) -> None:
    """Refuse an --out that may not be written before any work is done (the write checks again)."""
    from atomcollapse.artifacts import check_replaceable

    if out is not None:
        check_replaceable(out, kind, overwrite=overwrite)


def register(app: typer.Typer) -> None:
    app.command("report")(report)
    app.command("collapse")(collapse)
