"""``atomcollapse ingest ...``: read a source format and write one canonical store."""

from __future__ import annotations

from pathlib import Path

import typer

from atomcollapse.artifacts import check_replaceable
from atomcollapse.cli.common import console, state
from atomcollapse.data.sources import Ingested, read_source, write_ingested
from atomcollapse.data.store import new_store_path

app = typer.Typer(
    help="Read QM9, MatBench or extxyz data into a canonical dataset store.", no_args_is_help=True
)


def _target(name: str, overwrite: bool) -> None:
    """Check the name and what is there before any reading or downloading."""
    check_replaceable(new_store_path(name, state.data_root), "dataset", overwrite=overwrite)


def _write(ing: Ingested, name: str, overwrite: bool) -> None:
    target = write_ingested(ing, name, state.data_root, overwrite=overwrite)
    console.print(f"wrote [bold]{name}[/]: {len(ing.structures):,} structures, "
                  f"{ing.structures.n_atoms:,} atoms -> {target}")  # fmt: skip


def _exists(name: str) -> bool:
    return (new_store_path(name, state.data_root) / "manifest.json").is_file()


@app.command("qm9")
def qm9(
    source: Path | None = typer.Option(
        None,
        "--source",
        help="dsgdb9nsd.xyz.tar.bz2, a folder of its .xyz files, PyG's raw gdb9.sdf "
        "(with gdb9.sdf.csv beside it), or qm9pack-style qm9_part*.csv (a file or folder). "
        "Default: the qm9pack package's CSVs.",
    ),
    uncharacterized: Path | None = typer.Option(
        None, "--uncharacterized", help="uncharacterized.txt: drop the 3,054 molecules it lists."
    ),
    download: bool = typer.Option(
        False,
        "--download",
        help="Download the original tarball (checksummed) and its "
        "uncharacterized.txt, keeping the 130,831 consistent molecules.",
    ),
    name: str = typer.Option("qm9", "--name", help="Store name."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store."),
    skip_existing: bool = typer.Option(
        False, "--skip-existing", help="Do nothing if the store exists."
    ),
) -> None:
    """QM9: 130,831 molecules (qm9pack) or 133,885 (original tarball), 15 properties in raw units."""
    if skip_existing and _exists(name):
        console.print(f"store [bold]{name}[/] exists; skipping ingest")
        return
    _target(name, overwrite)
    ing = read_source("qm9", [source] if source else [], data_root=state.data_root,
                      uncharacterized=uncharacterized, download=download)  # fmt: skip
    _write(ing, name, overwrite)


@app.command("matbench")
def matbench(
    task: str = typer.Argument(
        ..., help="MatBench task, e.g. matbench_mp_gap, or a name for a task of your own."
    ),
    source: Path | None = typer.Option(
        None, "--source", help="<task>.json.gz in MatBench's format."
    ),
    folds: Path | None = typer.Option(
        None,
        "--folds",
        help="matbench_v0.1_validation.json (official folds; default: from the "
        "matbench package if installed, else <data-root>/raw/matbench/), or a file in its "
        "layout with your task's name.",
    ),
    target: str | None = typer.Option(
        None,
        "--target",
        help="Your task's target column \\[default: the one column besides 'structure'].",
    ),
    unit: str | None = typer.Option(
        None, "--unit", help="Your task's target unit (e.g. eV, eV/atom, GPa, 1)."
    ),
    download: bool = typer.Option(
        False, "--download", help="Download the task file (checksummed)."
    ),
    name: str | None = typer.Option(None, "--name", help="Store name \\[default: the task name]."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store."),
) -> None:
    """A MatBench structure task, official or your own: pymatgen structures and their target."""
    _target(name or task, overwrite)
    ing = read_source("matbench", [source] if source else [], data_root=state.data_root,
                      task=task, folds=folds, download=download, target=target, unit=unit)  # fmt: skip
    _write(ing, name or task, overwrite)


@app.command("extxyz")
def extxyz(
    files: list[Path] = typer.Argument(
        ..., help="extxyz (or other ASE-readable) files with energy/forces."
    ),
    name: str = typer.Option(..., "--name", help="Store name."),
    energy_key: str | None = typer.Option(
        None, "--energy-key", help="info key of the energy \\[default: ASE's]."
    ),
    forces_key: str | None = typer.Option(
        None, "--forces-key", help="arrays key of the forces \\[default: ASE's]."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store."),
) -> None:
    """Force-field frames (energy in eV, forces in eV/A, stress in GPa) into a force-field store."""
    _target(name, overwrite)
    ing = read_source("extxyz", files, energy_key=energy_key, forces_key=forces_key)
    _write(ing, name, overwrite)
