"""``atomcollapse datasets list|show|subset|verify|export``: what stores exist, their counts, elements and targets."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from atomcollapse.cli.common import console, err_console, state
from atomcollapse.constants import QM9_BENCHMARK_TARGETS
from atomcollapse.data.store import data_root, list_stores, new_store_path, open_store, write_subset
from atomcollapse.errors import InputError
from atomcollapse.units import convert

app = typer.Typer(help="List and describe dataset stores.", no_args_is_help=True)


@app.command("list")
def list_() -> None:
    """All stores under the data root."""
    stores = list_stores(state.data_root)
    if not stores:
        console.print(f"no stores under {data_root(state.data_root) / 'stores'}")
        return
    t = Table("name", "kind", "structures", "atoms", "elements", "targets", "content hash")
    broken = [s for s in stores if isinstance(s, InputError)]
    for s in stores:
        if isinstance(s, InputError):
            t.add_row(Path(s.file or "?").name, "[red]unreadable[/]", "", "", "", "", "")
            continue
        m = s.manifest
        t.add_row(
            s.name, s.kind, f"{m['n_structures']:,}", f"{m['n_atoms']:,}", " ".join(m["elements"]),
            str(len(m["targets"])), m["content_hash"][:12],
        )  # fmt: skip
    console.print(t)
    for e in broken:
        err_console.print(f"[red]unreadable store[/]: {e.line()}", highlight=False, soft_wrap=True)


@app.command("show")
def show(name: str = typer.Argument(..., help="Store name or path.")) -> None:
    """Counts, elements and per-target statistics with units."""
    s = open_store(name, state.data_root)
    s.verify_content()
    m = s.manifest
    console.print(f"[bold]{m['name']}[/] ({m['kind']}) at {s.path}")
    aps = m["atoms_per_structure"]
    console.print(
        f"{m['n_structures']:,} structures, {m['n_atoms']:,} atoms "
        f"({aps['min']}-{aps['max']} per structure, mean {aps['mean']:.1f}); "
        f"elements: {' '.join(m['elements'])}"
    )
    src = m["source"]
    console.print(f"source: {src.get('format', '?')}  content hash: {m['content_hash'][:16]}")
    for f in src.get("files", []):
        console.print(f"  {f['name']}  sha256 {f['sha256'][:16]}")
    bench = m["kind"] == "molecules" and set(QM9_BENCHMARK_TARGETS) <= set(m["targets"])
    t = Table("target", "unit", "mean", "std", "min", "max", "stored in", "description")
    for tname, info in m["targets"].items():
        unit = info["unit"]
        rep = info.get("report_unit", unit)
        star = " *" if bench and tname in QM9_BENCHMARK_TARGETS else ""
        stats = [f"{convert(info[k], unit, rep):.5g}" for k in ("mean", "std", "min", "max")]
        t.add_row(tname + star, rep, *stats, unit, info.get("description", ""))
    if bench:
        t.caption = "* the study's 8 benchmark targets; statistics in the unit column"
    console.print(t)
    for group in ("atom_arrays", "structure_arrays"):
        for k, v in m.get(group, {}).items():
            console.print(f"{group[:-7]} array {k} \\[{v.get('unit', '')}]")


@app.command("subset")
def subset(
    name: str = typer.Argument(..., help="Store name or path to draw from."),
    n: int = typer.Option(..., "--n", help="Number of structures."),
    out: str = typer.Option(
        ..., "--out", help="Name (under the data root) or path of the new store."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the random draw."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing store."),
) -> None:
    """A seeded random subset of a store, e.g. a small force-field set to ship with a checkpoint."""
    src = open_store(name, state.data_root)
    as_path = "/" in out or out.startswith(".")
    target = Path(out) if as_path else new_store_path(out, state.data_root)
    write_subset(src, n, target, name=target.name, seed=seed, overwrite=overwrite)
    console.print(f"wrote {target}: {n:,} of {len(src):,} structures of {src.name} (seed {seed})")


@app.command("verify")
def verify(name: str = typer.Argument(..., help="Store name or path.")) -> None:
    """Re-hash every array of a store against its manifest (exit 2 when anything changed)."""
    import time

    s = open_store(name, state.data_root)
    t0 = time.perf_counter()
    s.verify_content(cached=False)
    n = len(list(s.path.glob("*.npy")))
    console.print(
        f"[green]ok[/]: {s.name}: {n} arrays re-hashed in {time.perf_counter() - t0:.2f} s, "
        f"content hash {s.content_hash[:16]} matches its manifest",
        highlight=False,
    )


@app.command("export")
def export(
    name: str = typer.Argument(..., help="Store name or path."),
    fmt: str = typer.Option("extxyz", "--format", help="extxyz."),
    out: Path = typer.Option(..., "--out", help="File to write."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing file."),
) -> None:
    """Every structure with its targets (units named), cell and pbc, energies and forces."""
    from atomcollapse.data.export import (
        STORE_FORMATS,
        check_file_target,
        check_format,
        export_store,
    )

    check_format(fmt, STORE_FORMATS)
    check_file_target(out, overwrite)
    s = open_store(name, state.data_root)
    export_store(s, out, fmt=fmt, overwrite=overwrite)
    console.print(f"wrote {out}: {len(s):,} structures of {s.name} ({fmt})")
