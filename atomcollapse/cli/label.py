"""``atomcollapse label xtb``: off-equilibrium conformers labelled with GFN2-xTB."""

from __future__ import annotations

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from atomcollapse.cli.common import console, state

app = typer.Typer(
    help="Label structures with quantum chemistry (force-field data).", no_args_is_help=True
)


@app.command("xtb")
def xtb(
    name: str = typer.Option(..., "--name", help="Name of the force-field store to write."),
    data: str = typer.Option("qm9", "--data", help="Molecule store to draw molecules from."),
    n_molecules: int | None = typer.Option(
        None, "--n-molecules", help="Molecules to use \\[default: all]."
    ),
    fraction: float | None = typer.Option(
        None, "--fraction", help="Fraction of the molecules left after exclusions."
    ),
    per_molecule: int = typer.Option(
        4, "--per-molecule", help="Conformers per molecule, all methods together."
    ),
    method: list[str] | None = typer.Option(
        None,
        "--method",
        help="rattle | rdkit | normal-modes | md; repeat to mix (conformer k uses method k mod "
        r"count) \[default: rattle].",
    ),
    scale: float = typer.Option(0.05, "--scale", help="Rattle displacement std (A)."),
    temperature: float = typer.Option(
        500.0, "--temperature", help="Temperature for md and normal-modes (K)."
    ),
    md_steps: int = typer.Option(
        100, "--md-steps", help="Langevin steps of 0.5 fs per md conformer."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for molecule choice and every conformer."),
    exclude_split: list[str] | None = typer.Option(
        None,
        "--exclude-split",
        help="Split (path or name) whose id_test and ood_test molecules are left out.",
    ),
    workers: int | None = typer.Option(
        None, "--workers", help="Worker processes \\[default: all cores]."
    ),
    chunk_size: int = typer.Option(500, "--chunk-size", help="Structures per work chunk."),
    resume: bool = typer.Option(
        False, "--resume", help="Require an existing work folder to continue."
    ),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing store of that name."
    ),
    max_chunks: int | None = typer.Option(
        None, "--max-chunks", help="Stop after this many new chunks."
    ),
) -> None:
    """Draw conformers, label them with GFN2-xTB (energy, forces, gap, dipole), write a store.

    Work is kept in <data-root>/work/NAME in chunks; running the same command again resumes.
    """
    from atomcollapse.forcefield import LabelJob, SamplingConfig, level_of_theory, run_label_job
    from atomcollapse.forcefield.job import default_workers

    sampling = SamplingConfig(
        methods=tuple(method or ["rattle"]),
        per_molecule=per_molecule,
        scale=scale,
        temperature=temperature,
        md_steps=md_steps,
        seed=seed,
    )
    job = LabelJob(
        name=name,
        store=data,
        n_molecules=n_molecules,
        fraction=fraction,
        sampling=sampling,
        exclude_splits=tuple(exclude_split or ()),
        chunk_size=chunk_size,
    )
    n_workers = workers or default_workers()
    console.print(
        f"{level_of_theory()}; {n_workers} worker(s); methods {', '.join(sampling.methods)}"
    )
    columns = (
        TextColumn("labelling"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("xtb", total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        out = run_label_job(
            job,
            root=state.data_root,
            workers=n_workers,
            resume=resume,
            overwrite=overwrite,
            max_chunks=max_chunks,
            on_progress=on_progress,
        )
    console.print(
        f"{out.n_labelled:,} labelled, {out.n_failed:,} failed "
        f"({out.n_chunks_done}/{out.n_chunks} chunks) in {out.work_dir}"
    )
    if out.n_failed:
        console.print(f"failures are listed in {out.work_dir / 'failures.jsonl'}")
    if out.store_path is None:
        console.print("stopped before the last chunk; run the same command again to resume")
    else:
        console.print(f"wrote [bold]{name}[/] -> {out.store_path}")


@app.command("teacher")
def teacher(
    name: str = typer.Option(..., "--name", help="Name of the store to write."),
    pretrained: str = typer.Option(..., "--pretrained", help="Checkpoint or bundled model name."),
    data: str = typer.Option("qm9", "--data", help="Store whose structures to label."),
    drop_unsupported_elements: bool = typer.Option(
        False, "--drop-unsupported-elements", help="Leave out structures the model cannot take."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a store of that name."),
) -> None:
    """Add the pretrained model's own energy per atom as target teacher_energy_per_atom (eV)."""
    from atomcollapse.data.store import open_store, store_path
    from atomcollapse.training.teacher import TARGET, write_teacher_store

    source = open_store(data, state.data_root)
    path, record = write_teacher_store(
        source, pretrained, store_path(name, state.data_root), name=name,
        drop_unsupported_elements=drop_unsupported_elements, overwrite=overwrite,
    )  # fmt: skip
    console.print(f"wrote {name} ({TARGET}, eV/atom; pretrained {record['pretrained_hash'][:12]}, "
                  f"{record['n_dropped_unsupported_elements']:,} structures left out) -> {path}")  # fmt: skip
